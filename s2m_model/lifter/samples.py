"""Lifter training samples: shard arrays -> virtual-camera tensors, mirroring, and simulated
detector input.

Samples are data-shard dicts (see docs/data-format.md). :func:`prepare` puts each sample in the
virtual camera that looks at its coco17 hips (:func:`s2m_model.lifter.model.virtual_camera`).

Augmentation (both training modes): horizontal mirroring (:func:`mirror`), 2D noise that grows
as the simulated confidence drops, random keypoint dropout (and whole-leg truncation)
(:func:`make_inputs`), so that detector output with missing or shaky joints is in-distribution.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from s2m_model.lifter.model import COCO_HIPS, NUM_IN, centre_and_scale, virtual_camera
from s2m_model.skeletons import get_format

REQUIRED_KEYS = ("keypoints2d_coco17", "keypoints2d_h36m17", "joints3d_h36m17", "camera")
OPTIONAL_KEYS = ("joints3d_coco17", "det_keypoints2d_coco17", "det_detected", "clip_id")
_LEGS = (13, 14, 15, 16)  # coco17 knees + ankles: the usual truncation at the image bottom


@dataclass
class Prepared:
    """Training tensors, all in the virtual camera of each sample (N samples).

    ``xy_coco`` / ``xy_h36m`` (N,17,2) normalised image coordinates (x/z, y/z);
    ``j3d_h36m`` / ``j3d_coco`` (N,17,3) metres relative to the h36m17 pelvis (coco may be
    absent: None).
    """

    xy_coco: torch.Tensor
    xy_h36m: torch.Tensor
    j3d_h36m: torch.Tensor
    j3d_coco: torch.Tensor | None

    def __len__(self) -> int:
        return self.xy_coco.shape[0]

    def to(self, device: torch.device | str) -> Prepared:
        return Prepared(*(t.to(device) if t is not None else None for t in
                          (self.xy_coco, self.xy_h36m, self.j3d_h36m, self.j3d_coco)))

    def take(self, idx: torch.Tensor) -> Prepared:
        return Prepared(*(t[idx] if t is not None else None for t in
                          (self.xy_coco, self.xy_h36m, self.j3d_h36m, self.j3d_coco)))


def load_arrays(folder: str | Path, max_samples: int | None = None) -> dict[str, np.ndarray]:
    """The arrays the lifter needs from a shard folder (masks etc. are not kept in memory).

    Raises:
        FileNotFoundError / ValueError: see :func:`s2m_model.data.shards.iter_shards`.
    """
    from s2m_model.data.shards import iter_shards

    keys = (*REQUIRED_KEYS, *OPTIONAL_KEYS)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    count = 0
    for shard in iter_shards(folder):
        for k in keys:
            if k in shard:
                parts[k].append(shard[k])
        count += len(shard["camera"])
        if max_samples is not None and count >= max_samples:
            break
    out = {k: np.concatenate(v)[:max_samples] for k, v in parts.items() if v}
    check_arrays(out, str(folder))
    return out


def with_detector_keypoints(
    arrays: Mapping[str, np.ndarray],
    clips: Sequence[str] | None = None,
    exclude_styles: Sequence[str] = (),
) -> dict[str, np.ndarray]:
    """Detector-in-the-loop shards (``s2m data build --detector ...``) as lifter samples fed
    the *detector's* COCO-17 keypoints: only the samples where it found the person, with
    ``keypoints2d_coco17`` (pixels, x right / y down, confidence) replaced by
    ``det_keypoints2d_coco17``; the 3D targets, ``keypoints2d_h36m17`` and the camera stay
    exact. Training on these puts real detector behaviour (systematic offsets, depth-blind
    hips, confident misses) in the lifter's input distribution. ``exclude_styles`` (with the
    manifest's ``clips``) also drops the samples of those mocap styles (held out).

    Raises:
        ValueError: the arrays hold no detector output, or the detector found nobody.
    """
    missing = [k for k in ("det_keypoints2d_coco17", "det_detected") if k not in arrays]
    if missing:
        raise ValueError(f"no detector output in the data (missing {missing}); build it with "
                         "`s2m data build --detector mediapipe`")
    from s2m_model.lifter.fused_train import select_samples

    n = len(np.asarray(arrays["det_detected"]))
    keep = np.zeros(n, bool)
    keep[select_samples(arrays, clips, exclude_styles=exclude_styles)] = True
    if not keep.any():
        raise ValueError("the detector found nobody in these samples")
    out = {k: np.asarray(v)[keep] for k, v in arrays.items()
           if np.ndim(v) > 0 and np.shape(v)[0] == n}  # fmt: skip
    out["keypoints2d_coco17"] = out["det_keypoints2d_coco17"].astype(np.float32)
    return out


def check_arrays(arrays: Mapping[str, np.ndarray], source: str) -> int:
    """Validate the keys/shapes the lifter needs; returns the sample count N.

    Raises:
        ValueError: a key is missing, has the wrong shape, or holds NaN/inf.
    """
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"{source}: missing arrays {missing} (see docs/data-format.md)")
    n = int(np.shape(arrays["camera"])[0])
    if n < 1:
        raise ValueError(f"{source}: no samples")
    want = {"camera": (n, 4)}
    for k in ("keypoints2d_coco17", "keypoints2d_h36m17", "joints3d_h36m17", "joints3d_coco17"):
        want[k] = (n, 17, 3)
    for k, shape in want.items():
        if k in arrays:
            got = tuple(np.shape(arrays[k]))
            if got != shape:
                raise ValueError(f"{source}: {k} has shape {got}, expected {shape}")
            if not np.isfinite(np.asarray(arrays[k], dtype=np.float64)).all():
                raise ValueError(f"{source}: {k} contains NaN or inf")
    if (np.asarray(arrays["camera"])[:, :2] <= 0).any():
        raise ValueError(f"{source}: camera focal lengths must be > 0")
    return n


def prepare(arrays: Mapping[str, np.ndarray], source: str = "data") -> Prepared:
    """Shard arrays -> :class:`Prepared` (virtual camera from the coco17 hips of each sample)."""
    n = check_arrays(arrays, source)
    cam = torch.as_tensor(np.asarray(arrays["camera"]), dtype=torch.float32)
    kp_c = torch.as_tensor(np.asarray(arrays["keypoints2d_coco17"]), dtype=torch.float32)
    kp_h = torch.as_tensor(np.asarray(arrays["keypoints2d_h36m17"]), dtype=torch.float32)
    all_valid = torch.ones(n, NUM_IN, dtype=torch.bool)
    # Concatenating both layouts gives them one virtual camera (coco17 first: its hips root it).
    xy, rot = virtual_camera(torch.cat([kp_c[..., :2], kp_h[..., :2]], 1),
                             torch.cat([all_valid, all_valid], 1), cam)
    j3d_h = torch.as_tensor(np.asarray(arrays["joints3d_h36m17"]), dtype=torch.float32)
    pelvis = j3d_h[:, :1]
    j3d_c = None
    if "joints3d_coco17" in arrays:
        j3d_c = (torch.as_tensor(np.asarray(arrays["joints3d_coco17"]), dtype=torch.float32)
                 - pelvis) @ rot.mT
    return Prepared(xy[:, :NUM_IN], xy[:, NUM_IN:], (j3d_h - pelvis) @ rot.mT, j3d_c)


def mirror(batch: Prepared, flip: torch.Tensor) -> Prepared:
    """Mirror the samples where ``flip`` (B,) is True: negate x and swap left/right joints."""
    perm_c = list(get_format("coco17").flip_perm)
    perm_h = list(get_format("h36m17").flip_perm)

    def one(t: torch.Tensor | None, perm: list[int]) -> torch.Tensor | None:
        if t is None:
            return None
        m = t[:, perm].clone()
        m[..., 0] = -m[..., 0]
        return torch.where(flip.view(-1, 1, 1), m, t)

    return Prepared(one(batch.xy_coco, perm_c), one(batch.xy_h36m, perm_h),
                    one(batch.j3d_h36m, perm_h), one(batch.j3d_coco, perm_c))


@dataclass
class Inputs:
    """One augmented batch: ``x`` (B,51) network input, ``valid`` (B,17) kept keypoints,
    ``root`` (B,2) and ``scale`` (B,) of the input normalisation (virtual-camera units)."""

    x: torch.Tensor
    valid: torch.Tensor
    root: torch.Tensor
    scale: torch.Tensor


def make_inputs(
    xy: torch.Tensor, noise: float, drop: float, g: torch.Generator | None
) -> Inputs:
    """Simulate detector output from clean 2D ``xy`` (B,17,2) and normalise it.

    Confidence ~ U(0.2, 1) per keypoint; Gaussian noise with std ``level * size * (1.5 - conf)``
    where ``level ~ U(0, noise)`` per sample and ``size`` is the clean 2D size; half of the
    samples drop keypoints at a rate ~ U(0, drop), 5% lose both legs below the hips; at least
    one hip and 5 keypoints always remain.
    """
    b, dev = xy.shape[0], xy.device

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g, device=dev)

    _, _, size = centre_and_scale(xy, torch.ones(b, NUM_IN, dtype=torch.bool, device=dev))
    conf = 0.2 + 0.8 * rand(b, NUM_IN)
    level = noise * rand(b) * size
    eps = torch.randn(b, NUM_IN, 2, generator=g, device=dev)
    noisy = xy + eps * (level[:, None] * (1.5 - conf))[..., None]
    rate = drop * rand(b) * (rand(b) < 0.5)
    valid = rand(b, NUM_IN) >= rate[:, None]
    legs = (rand(b) < 0.05) & (drop > 0)
    valid[:, list(_LEGS)] &= ~legs[:, None]
    hips = list(COCO_HIPS)
    no_hip = ~valid[:, hips].any(1)
    valid[:, hips] |= no_hip[:, None]
    valid |= (valid.sum(1) < 5)[:, None]
    x2, root, scale = centre_and_scale(noisy, valid)
    c = conf * valid
    return Inputs(torch.cat([x2, c[..., None]], -1).reshape(b, NUM_IN * 3), valid, root, scale)
