"""A small synthetic data source in the shard layout (tests and quick experiments only).

Random but anatomically plausible poses of the body model (arms raised/lowered, elbows and knees
bent the right way, hips flexed, mild spine bend, plus small noise on every joint), random adult
shapes, random upright orientations, seen by random pinhole cameras that keep the person in the
image. No self-occlusion test: ``keypoints2d_*`` visibility is 1 inside the image, else 0.

The shipped weights are trained on the mocap-derived shards of ``s2m data build`` instead.
"""

from __future__ import annotations

import math

import numpy as np
import roma
import torch

from s2m_model.camera import project_points
from s2m_model.smpl_layout import JOINT_INDEX, NUM_BETAS, NUM_JOINTS

# (SMPL joint, axis, low, high) in radians, body frame (Y up, facing +Z, left = +X).
_RANGES = (
    ("left_hip", 0, -1.3, 0.4), ("right_hip", 0, -1.3, 0.4),  # hips: flexion .. extension
    ("left_hip", 2, -0.1, 0.5), ("right_hip", 2, -0.5, 0.1),  # hips: abduction
    ("left_knee", 0, 0.0, 2.0), ("right_knee", 0, 0.0, 2.0),  # knees bend backwards
    ("spine1", 0, -0.2, 0.5), ("spine2", 0, -0.1, 0.3),  # spine bend forward
    ("left_shoulder", 2, -1.4, 0.4), ("right_shoulder", 2, -0.4, 1.4),  # arm down .. up
    ("left_shoulder", 1, -0.8, 0.8), ("right_shoulder", 1, -0.8, 0.8),  # arm forward/back
    ("left_elbow", 1, -2.2, 0.0), ("right_elbow", 1, 0.0, 2.2),  # elbows bend forwards
    ("neck", 0, -0.3, 0.4), ("head", 1, -0.6, 0.6),  # neck nod, head turn
)  # fmt: skip


def random_poses(n: int, generator: torch.Generator) -> torch.Tensor:
    """(n,23,3) SMPL body_pose axis-angles (radians): uniform in :data:`_RANGES` + N(0, 0.08)."""
    pose = 0.08 * torch.randn(n, NUM_JOINTS, 3, generator=generator)
    for joint, axis, lo, hi in _RANGES:
        pose[:, JOINT_INDEX[joint], axis] += lo + (hi - lo) * torch.rand(n, generator=generator)
    return pose[:, 1:]


def synthetic_samples(
    body,
    n: int,
    seed: int = 0,
    image_size: tuple[int, int] = (640, 480),
    chunk: int = 256,
) -> dict[str, np.ndarray]:
    """``n`` samples with the keys of a data shard that the lifter uses.

    Args:
        body: a :class:`s2m_model.body.BodyModel` (float32 or float64).
        n: number of samples. seed: RNG seed (results are deterministic).
        image_size: (width, height) pixels.
        chunk: samples per body forward (memory bound).

    Returns:
        ``joints3d_h36m17`` / ``joints3d_coco17`` (n,17,3) metres, camera frame;
        ``keypoints2d_h36m17`` / ``keypoints2d_coco17`` (n,17,3) pixels + in-image flag;
        ``camera`` (n,4) fx, fy, cx, cy; ``image_size`` (n,2) int32. float32 arrays.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    g = torch.Generator().manual_seed(seed)
    w, h = image_size
    dtype = body.dtype
    betas = (0.7 * torch.randn(n, NUM_BETAS, generator=g)).clamp(-2, 2)
    body_pose = random_poses(n, g)
    yaw = (2 * torch.rand(n, generator=g) - 1) * math.pi
    pitch = 0.35 * (2 * torch.rand(n, generator=g) - 1)  # camera looking up/down at the person
    roll = 0.1 * torch.randn(n, generator=g)
    # body frame -> camera frame: Y up -> -y (down), facing +Z -> facing the camera (-z).
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
    r_yaw = roma.rotvec_to_rotmat(torch.stack([0 * yaw, yaw, 0 * yaw], -1))
    r_cam = roma.rotvec_to_rotmat(torch.stack([pitch, 0 * pitch, roll], -1))
    orient = roma.rotmat_to_rotvec(r_cam @ flip @ r_yaw)
    focal = 450 + 500 * torch.rand(n, generator=g)
    centre = torch.tensor([w / 2, h / 2]) + 10 * torch.randn(n, 2, generator=g)
    cam = torch.cat([focal[:, None], focal[:, None], centre], dim=-1)
    depth = 2.5 + 5.0 * torch.rand(n, generator=g)
    # Root placed so the ~2 m tall person stays mostly inside the image.
    half_w = (w / 2) / focal * depth - 0.5
    half_h = (h / 2) / focal * depth - 0.9
    root = torch.stack(
        [
            (2 * torch.rand(n, generator=g) - 1) * half_w.clamp_min(0.0),
            (2 * torch.rand(n, generator=g) - 1) * half_h.clamp_min(0.0),
            depth,
        ],
        dim=-1,
    )
    out: dict[str, list[torch.Tensor]] = {"joints3d_h36m17": [], "joints3d_coco17": []}
    with torch.no_grad():
        for s in range(0, n, chunk):
            sl = slice(s, min(n, s + chunk))
            posed = body(betas=betas[sl].to(dtype), global_orient=orient[sl].to(dtype),
                         body_pose=body_pose[sl].to(dtype))
            h36m = body.regress(posed.vertices, "h36m17")
            coco = body.regress(posed.vertices, "coco17")
            shift = root[sl].to(dtype)[:, None] - h36m[:, :1]
            out["joints3d_h36m17"].append((h36m + shift).float())
            out["joints3d_coco17"].append((coco + shift).float())
    result: dict[str, np.ndarray] = {"camera": cam.numpy().astype(np.float32)}
    for fmt in ("h36m17", "coco17"):
        j3d = torch.cat(out[f"joints3d_{fmt}"])
        u, v = project_points(j3d, cam).unbind(-1)
        inside = (u >= 0) & (u < w) & (v >= 0) & (v < h) & (j3d[..., 2] > 0)
        result[f"joints3d_{fmt}"] = j3d.numpy()
        result[f"keypoints2d_{fmt}"] = torch.stack([u, v, inside.float()], -1).numpy()
    result["image_size"] = np.tile(np.array([[w, h]], dtype=np.int32), (n, 1))
    return result
