"""Supervised training of the ``fused`` front end on detector-in-the-loop arrays.

Computation only: the arrays come from :func:`s2m_model.data.shards.load_shards` of a folder
built by ``s2m data build --detector mediapipe`` (the caller does the I/O; see
``bench/frontends.py``). Samples where the detector found nobody are skipped.

Target: the ground-truth ``joints3d_blazepose33`` (the body's mesh regressed to BlazePose's
points, camera frame) minus their hip midpoint, metres. Loss: mean per-joint Euclidean
distance (MPJPE), Adam, cosine learning rate, left/right mirroring as augmentation (negate x of
the rays, the world landmarks and the target, swap left/right points).

Unsupervised mode (``mode="unsupervised"``, no 3D ground truth: real detections), as the paper
trains its lifter: lift the 2D, place the skeleton in the camera (depth from the scale that fits
its 2D projection best, root on the hips' ray), reproject -> loss 1 against the detected 2D;
rotate the lifted skeleton by a random yaw about its root, project that virtual view into
landmarks (and rotate the world landmarks alike), lift again -> loss 2: the re-lifted skeleton
equals the rotated one, loss 3: its reprojection matches the virtual 2D. 2D terms are in
normalised image units (pixels / focal length) weighted by the detector's visibility, the 3D
term in metres (:func:`unsupervised_losses`). ``mode="both"`` adds the supervised loss.
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

__all__ = ["FusedTrainConfig", "clip_styles", "mpjpe_mm", "select_samples", "train_fused",
           "unsupervised_losses"]  # fmt: skip

#: Training modes: 3D ground truth, 2D reprojection + rotation consistency only, or both.
MODES = ("supervised", "unsupervised", "both")

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
    mode: str = "supervised"
    max_yaw: float = math.pi  # radians, the virtual views of the unsupervised mode
    unsup_weight: float = 1.0  # weight of the unsupervised terms in ``mode="both"``

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")


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


def _tensors(
    arrays: Mapping[str, np.ndarray], idx: np.ndarray, with_gt: bool = True
) -> tuple[torch.Tensor, ...]:
    """Landmarks, world landmarks, cameras and hip-centred GT (zeros without ``with_gt``)."""
    lm = torch.from_numpy(np.asarray(arrays["det_landmarks"][idx], np.float32))
    world = torch.from_numpy(np.asarray(arrays["det_world"][idx], np.float32))
    cam = torch.from_numpy(np.asarray(arrays["camera"][idx], np.float32))
    if not with_gt:  # unsupervised: real detections carry no 3D ground truth
        return lm, world, cam, torch.zeros_like(world)
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


def _place(pose: torch.Tensor, rays: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
    """Camera-frame skeleton from a root-relative ``pose`` (B,J,3) m and its 2D ``rays`` (B,J,2)
    (pixels minus principal point, over the focal length): depth = 1 / the visibility-weighted
    least-squares scale of the pose's x, y onto the centred rays; root on the hips' ray."""
    w = vis[..., None]
    total = w.sum(1, keepdim=True).clamp_min(1e-6)
    r_c = rays - (w * rays).sum(1, keepdim=True) / total
    p_c = pose[..., :2] - (w * pose[..., :2]).sum(1, keepdim=True) / total
    scale = (w * r_c * p_c).sum((1, 2)) / (w * p_c * p_c).sum((1, 2)).clamp_min(1e-6)
    depth = 1.0 / scale.clamp_min(0.02)  # a collapsed pose: at most 50 m away
    root_ray = rays[:, list(HIPS)].mean(1)
    root = torch.cat([root_ray * depth[:, None], depth[:, None]], -1)
    return pose + root[:, None]


def _project(points: torch.Tensor) -> torch.Tensor:
    """(B,J,3) camera-frame points -> (B,J,2) rays x/z, y/z (z kept >= 0.1 m)."""
    return points[..., :2] / points[..., 2:].clamp_min(0.1)


def _yaw(angle: torch.Tensor) -> torch.Tensor:
    """(B,) radians -> (B,3,3) rotations about the camera's y axis."""
    c, s = torch.cos(angle), torch.sin(angle)
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    return torch.stack([c, zero, s, zero, one, zero, -s, zero, c], -1).view(-1, 3, 3)


def unsupervised_losses(
    model: FusedLifter,
    landmarks: torch.Tensor,
    world: torch.Tensor,
    camera: torch.Tensor,
    generator: torch.Generator | None = None,
    max_yaw: float = math.pi,
) -> dict[str, torch.Tensor]:
    """The unsupervised terms (module docstring) of a batch, no 3D ground truth needed.

    Args:
        landmarks: (B,33,4) detected pixels x, y, relative z, visibility; ``world`` (B,33,3)
            world landmarks, metres; ``camera`` (B,4) fx, fy, cx, cy pixels.
        generator: for the random yaws (uniform in ±``max_yaw`` radians).

    Returns:
        ``reproj`` and ``reproj_rotated`` (mean visibility-weighted 2D distance, normalised
        image units), ``consistency`` (mean per-joint 3D distance, metres) and ``total``.
    """
    vis = landmarks[..., 3].clamp(0.0, 1.0)
    f, c = camera[:, None, :2], camera[:, None, 2:]
    rays = (landmarks[..., :2] - c) / f
    pose = model(fused_inputs(landmarks, world, camera))
    placed = _place(pose, rays, vis)
    wsum = vis.sum(-1).clamp_min(1e-6)
    reproj = (torch.linalg.vector_norm(_project(placed) - rays, dim=-1) * vis).sum(-1) / wsum
    yaw = (torch.rand(len(pose), generator=generator) * 2 - 1) * max_yaw
    rot = _yaw(yaw.to(pose))
    root = placed[:, list(HIPS)].mean(1, keepdim=True)
    rotated = pose @ rot.transpose(1, 2)
    virtual = rotated + root
    v_rays = _project(virtual)
    # Virtual landmarks: pixels of the rotated view, MediaPipe-like relative depth (pixels,
    # hips at 0), the detected visibilities; the detector's world landmarks rotated alike.
    v_z = (virtual[..., 2] - root[..., 2]) * f[..., 0] / root[..., 2].clamp_min(0.1)
    v_lm = torch.cat([v_rays * f + c, v_z[..., None], vis[..., None]], -1)
    v_world = world @ rot.transpose(1, 2)
    again = model(fused_inputs(v_lm, v_world, camera))
    consistency = torch.linalg.vector_norm(again - rotated, dim=-1).mean(-1)
    placed_again = _place(again, v_rays, vis)
    reproj_rot = (torch.linalg.vector_norm(_project(placed_again) - v_rays, dim=-1) * vis).sum(
        -1
    ) / wsum
    out = {"reproj": reproj.mean(), "reproj_rotated": reproj_rot.mean(),
           "consistency": consistency.mean()}  # fmt: skip
    out["total"] = out["reproj"] + out["reproj_rotated"] + out["consistency"]
    return out


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
    init: FusedLifter | None = None,
) -> tuple[FusedLifter, list[dict[str, float]]]:
    """Train a :class:`FusedLifter` on ``arrays[train_idx]`` (CPU).

    Args:
        arrays: detector-in-the-loop shard arrays.
        train_idx: samples to train on (from :func:`select_samples`); ``val_idx`` samples to
            report the MPJPE on every 10 epochs (may come from another arrays dict only via a
            separate call of :func:`mpjpe_mm`).
        log: optional ``callable(str)`` for progress lines.
        init: start from this model (trained further in place) instead of a fresh one.

    Returns:
        The model (eval mode) and the history (epoch, train loss mm, val MPJPE mm, seconds).
    """
    tc = train_config or FusedTrainConfig()
    supervised = tc.mode in ("supervised", "both")
    if len(train_idx) < 2:
        raise ValueError(f"need at least 2 training samples with a detection, got {len(train_idx)}")
    torch.manual_seed(tc.seed)
    gen = torch.Generator().manual_seed(tc.seed)
    model = init if init is not None else FusedLifter(config or FusedConfig())
    lm, world, cam, gt = _tensors(arrays, train_idx, with_gt=supervised)
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
            loss = torch.zeros(())
            if supervised:
                pred = model(fused_inputs(blm, bw, cam[b]))
                loss = torch.linalg.vector_norm(pred - bgt, dim=-1).mean()
            if tc.mode != "supervised":
                unsup = unsupervised_losses(model, blm, bw, cam[b], gen, tc.max_yaw)["total"]
                loss = loss + (tc.unsup_weight if supervised else 1.0) * unsup
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
