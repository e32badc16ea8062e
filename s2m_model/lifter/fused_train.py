"""Supervised training of the ``fused`` front end on detector-in-the-loop arrays.

Computation only: the arrays come from :func:`s2m_model.data.shards.load_shards` of a folder
built by ``s2m data build --detector mediapipe`` (the caller does the I/O; see
``bench/frontends.py``). Samples where the detector found nobody are skipped.

Target: the ground-truth ``joints3d_blazepose33`` (the body's mesh regressed to BlazePose's
points, camera frame) minus their hip midpoint, metres. Loss: mean per-joint Euclidean
distance (MPJPE), Adam, cosine learning rate, left/right mirroring as augmentation (negate x of
the rays, the world landmarks and the target, swap left/right points).

Only the supervised mode is implemented here; the unsupervised mode of the issue (2D
reprojection on real detections) is not.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from s2m_model.lifter.fused import HIPS, FusedConfig, FusedLifter, fused_inputs
from s2m_model.skeletons import get_format

__all__ = ["FusedTrainConfig", "clip_styles", "mpjpe_mm", "select_samples", "train_fused"]

GT_KEY = "joints3d_blazepose33"


@dataclass
class FusedTrainConfig:
    """Training settings. ``epochs`` over the detected samples; ``seed`` fixes everything."""

    epochs: int = 150
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    mirror: bool = True
    seed: int = 0


def clip_styles(clips: Sequence[str]) -> list[str]:
    """Style of each Bandai clip name ``dataset-N/<content>_<style>_<take>`` (CMU: ``"cmu"``)."""
    out = []
    for name in clips:
        parts = name.split("/")[-1].split("_")
        out.append(parts[-2] if len(parts) >= 3 and parts[-1].isdigit() else "cmu")
    return out


def select_samples(
    arrays: Mapping[str, np.ndarray],
    clips: Sequence[str] | None = None,
    exclude_styles: Sequence[str] = (),
    only_styles: Sequence[str] | None = None,
) -> np.ndarray:
    """Indices of the samples with a detection, optionally filtered by clip style.

    Args:
        arrays: shard arrays (``det_detected``, ``clip_id``).
        clips: the manifest's clip names (needed when filtering by style).
        exclude_styles: drop samples of these styles (held out from training).
        only_styles: keep only these styles.
    """
    keep = np.asarray(arrays["det_detected"]).astype(bool)
    if exclude_styles or only_styles is not None:
        if clips is None:
            raise ValueError("filtering by style needs the manifest's clip names")
        styles = np.asarray(clip_styles(clips))[np.asarray(arrays["clip_id"])]
        if exclude_styles:
            keep &= ~np.isin(styles, list(exclude_styles))
        if only_styles is not None:
            keep &= np.isin(styles, list(only_styles))
    return np.flatnonzero(keep)


def _tensors(arrays: Mapping[str, np.ndarray], idx: np.ndarray) -> tuple[torch.Tensor, ...]:
    lm = torch.from_numpy(np.asarray(arrays["det_landmarks"][idx], np.float32))
    world = torch.from_numpy(np.asarray(arrays["det_world"][idx], np.float32))
    cam = torch.from_numpy(np.asarray(arrays["camera"][idx], np.float32))
    gt = torch.from_numpy(np.asarray(arrays[GT_KEY][idx], np.float32))
    gt = gt - gt[:, list(HIPS)].mean(1, keepdim=True)
    return lm, world, cam, gt


def _mirror(lm, world, cam, gt, flip: torch.Tensor):
    perm = list(get_format("blazepose33").flip_perm)
    f = flip.view(-1, 1)
    lm_m = lm[:, perm].clone()
    lm_m[..., 0] = 2 * cam[:, None, 2] - lm_m[..., 0]  # mirror about the principal point
    world_m, gt_m = world[:, perm].clone(), gt[:, perm].clone()
    world_m[..., 0], gt_m[..., 0] = -world_m[..., 0], -gt_m[..., 0]
    pick = lambda a, b: torch.where(f.view(-1, *[1] * (a.ndim - 1)), b, a)  # noqa: E731
    return pick(lm, lm_m), pick(world, world_m), pick(gt, gt_m)


def mpjpe_mm(model: FusedLifter, arrays: Mapping[str, np.ndarray], idx: np.ndarray) -> float:
    """Root-relative (hip midpoint) MPJPE of the model's blazepose33 output, mm."""
    lm, world, cam, gt = _tensors(arrays, idx)
    pred = model.lift(lm, world, cam).cpu()
    return float(torch.linalg.vector_norm(pred - gt, dim=-1).mean() * 1000.0)


def train_fused(
    arrays: Mapping[str, np.ndarray],
    train_idx: np.ndarray,
    val_idx: np.ndarray | None = None,
    config: FusedConfig | None = None,
    train_config: FusedTrainConfig | None = None,
    log=None,
) -> tuple[FusedLifter, list[dict[str, float]]]:
    """Train a :class:`FusedLifter` on ``arrays[train_idx]`` (CPU).

    Args:
        arrays: detector-in-the-loop shard arrays.
        train_idx: samples to train on (from :func:`select_samples`); ``val_idx`` samples to
            report the MPJPE on every 10 epochs (may come from another arrays dict only via a
            separate call of :func:`mpjpe_mm`).
        log: optional ``callable(str)`` for progress lines.

    Returns:
        The model (eval mode) and the history (epoch, train loss mm, val MPJPE mm, seconds).
    """
    tc = train_config or FusedTrainConfig()
    if len(train_idx) < 2:
        raise ValueError(f"need at least 2 training samples with a detection, got {len(train_idx)}")
    torch.manual_seed(tc.seed)
    gen = torch.Generator().manual_seed(tc.seed)
    model = FusedLifter(config or FusedConfig())
    lm, world, cam, gt = _tensors(arrays, train_idx)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    steps_per_epoch = math.ceil(len(lm) / tc.batch_size)
    total = tc.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    )
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    for epoch in range(tc.epochs):
        model.train()
        order = torch.randperm(len(lm), generator=gen)
        losses = []
        for s in range(0, len(lm), tc.batch_size):
            b = order[s : s + tc.batch_size]
            blm, bw, bgt = lm[b], world[b], gt[b]
            if tc.mirror:
                flip = torch.rand(len(b), generator=gen) < 0.5
                blm, bw, bgt = _mirror(blm, bw, cam[b], bgt, flip)
            pred = model(fused_inputs(blm, bw, cam[b]))
            loss = torch.linalg.vector_norm(pred - bgt, dim=-1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        if (epoch + 1) % 10 == 0 or epoch + 1 == tc.epochs:
            row = {"epoch": epoch + 1, "train_mm": float(np.mean(losses)) * 1000.0,
                   "seconds": time.perf_counter() - t0}  # fmt: skip
            if val_idx is not None and len(val_idx):
                row["val_mm"] = mpjpe_mm(model, arrays, val_idx)
            history.append(row)
            if log is not None:
                log(" ".join(f"{k}={v:.1f}" for k, v in row.items()))
    return model.eval(), history
