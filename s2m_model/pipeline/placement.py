"""Placement: where a posed body is in the camera frame (metric translation, root depth).

A front end's 3D skeleton is root-relative (the s2m lifter) or hip-centred (MediaPipe's world
landmarks), so DIK gives the pose but not where the person is. After posing the body at the
origin, :func:`place_in_camera` solves the translation ``t`` so that the body's COCO-17 points
project onto the detected keypoints (:func:`estimate_translation`); depth comes from the body's
size (the body model's mean size until shape refinement exists). :func:`skeleton_translation`
is the skeleton-mode counterpart, where the input skeleton itself fixes the position.

Frames: camera frame x right, y down, z forward (metres); pixels from the top-left corner.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from s2m_model.camera import Camera
from s2m_model.skeletons import get_format
from s2m_model.smpl_layout import JOINT_INDEX

__all__ = [
    "COCO_HIPS",
    "COCO_LIMBS_TO_SMPL",
    "MIN_DEPTH_M",
    "estimate_translation",
    "place_in_camera",
    "skeleton_translation",
]

MIN_DEPTH_M = 0.1
"""People whose solved depth is below this (metres) are dropped (behind/at the camera)."""

_COCO = get_format("coco17")
#: COCO-17 keypoint index -> SMPL joint index for the 12 limb keypoints that are SMPL joints
#: (shoulders, elbows, wrists, hips, knees, ankles; the registry's ``smpl_map``): used to place
#: the body when vertices are skipped.
COCO_LIMBS_TO_SMPL: dict[int, int] = {
    _COCO.index(joint): JOINT_INDEX[smpl] for joint, smpl in _COCO.smpl_map.items()
}
#: COCO-17 indices of the left and right hip.
COCO_HIPS: tuple[int, int] = (_COCO.index("left_hip"), _COCO.index("right_hip"))


def estimate_translation(
    points: np.ndarray,
    keypoints: np.ndarray,
    weights: np.ndarray,
    intrinsics: Sequence[float],
) -> np.ndarray:
    """Translation ``t`` (metres) so that ``points + t`` project onto ``keypoints``.

    Linear least squares on the pinhole equations (SPIN's ``estimate_translation_np``): for each
    point ``X`` with pixel ``(u, v)``, ``fx (X_x + t_x) = (u - cx)(X_z + t_z)`` and likewise for y,
    each row weighted by ``sqrt(weight)``. Exact for noise-free projections.

    Args:
        points: (B, K, 3) or (K, 3) 3D points in camera axes (x right, y down, z forward), metres,
            relative to any origin.
        keypoints: (B, K, 2) or (K, 2) pixels.
        weights: (B, K) or (K,) >= 0 (e.g. confidences; 0 = ignore the point).
        intrinsics: ``(fx, fy, cx, cy)`` in pixels.

    Returns:
        (B, 3) or (3,) float64 translations; rows with fewer than 2 usable points, or a
        degenerate system, are NaN (the caller decides what to do with them).
    """
    pts = np.asarray(points, dtype=np.float64)
    kp = np.asarray(keypoints, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    single = pts.ndim == 2
    if single:
        pts, kp, w = pts[None], kp[None], w[None]
    if pts.ndim != 3 or pts.shape[-1] != 3 or kp.shape != pts.shape[:2] + (2,) or (
        w.shape != pts.shape[:2]
    ):
        raise ValueError(
            f"expected points (B,K,3), keypoints (B,K,2), weights (B,K); got {pts.shape}, "
            f"{kp.shape}, {w.shape}"
        )
    fx, fy, cx, cy = (float(v) for v in intrinsics)
    usable = np.isfinite(pts).all(-1) & np.isfinite(kp).all(-1) & np.isfinite(w) & (w > 0)
    w = np.where(usable, w, 0.0)
    pts = np.where(usable[..., None], pts, 0.0)
    kp = np.where(usable[..., None], kp, 0.0)
    du, dv = kp[..., 0] - cx, kp[..., 1] - cy
    zero = np.zeros_like(du)
    # Rows: [fx, 0, -du] t = du Z - fx X ; [0, fy, -dv] t = dv Z - fy Y.
    a = np.concatenate([
        np.stack([np.full_like(du, fx), zero, -du], -1),
        np.stack([zero, np.full_like(dv, fy), -dv], -1),
    ], axis=1)  # fmt: skip
    b = np.concatenate(
        [du * pts[..., 2] - fx * pts[..., 0], dv * pts[..., 2] - fy * pts[..., 1]], axis=1
    )
    sw = np.sqrt(np.concatenate([w, w], axis=1))
    a, b = a * sw[..., None], b * sw
    out = np.full((pts.shape[0], 3), np.nan)
    for i in range(pts.shape[0]):
        if usable[i].sum() < 2:
            continue
        ata = a[i].T @ a[i]
        if np.linalg.cond(ata) > 1e12:
            continue
        out[i] = np.linalg.solve(ata, a[i].T @ b[i])
    return out[0] if single else out


def place_in_camera(
    body,
    body_out,
    keypoints: np.ndarray,
    camera: Camera,
    min_confidence: float,
) -> np.ndarray:
    """Body translations in the camera frame from the detected 2D keypoints.

    Args:
        body: the :class:`~s2m_model.body.BodyModel` that posed ``body_out``.
        body_out: its output for P people posed at the origin (``vertices`` (P,V,3) or None,
            ``joints`` (P,24,3)), camera axes, metres.
        keypoints: (P,17,3) COCO-17 pixels + confidence.
        camera: the image's intrinsics.
        min_confidence: keypoints below it are ignored.

    Returns:
        (P,3) float64 translations (metres); NaN rows could not be placed (too few keypoints,
        or some part of the body would be less than :data:`MIN_DEPTH_M` from the camera).
        With vertices the body's regressed COCO-17 points are matched (the regressor the
        metrics use); without, the 12 limb keypoints against the SMPL limb joints.
    """
    if body_out.vertices is not None:
        points = body.regress(body_out.vertices, "coco17").double().cpu().numpy()
        kp = keypoints
    else:
        points = body_out.joints[:, list(COCO_LIMBS_TO_SMPL.values())].double().cpu().numpy()
        kp = keypoints[:, list(COCO_LIMBS_TO_SMPL)]
    weights = np.where(kp[..., 2] >= min_confidence, kp[..., 2], 0.0)
    transl = estimate_translation(points, kp[..., :2], weights, camera.intrinsics)
    # The whole body must be in front of the camera.
    depth_ok = (transl[:, 2] + points[..., 2].min(1)) > MIN_DEPTH_M
    transl[~depth_ok] = np.nan
    return transl


def skeleton_translation(
    pelvis: torch.Tensor,
    root: torch.Tensor,
    dik_rotmats: torch.Tensor,
    dik_transl: torch.Tensor,
    root_rotmats: torch.Tensor,
) -> np.ndarray:
    """Skeleton mode: the translation that keeps DIK's pelvis placement under a new root
    rotation (the filtered one).

    DIK puts the format's pelvis point (offset ``o`` from the root joint in the rest pose) on the
    input's: ``pelvis = transl + root + R0 o``. With the root rotation changed to ``R0'`` the
    translation becomes ``pelvis - root - R0' o``.

    Args:
        pelvis: (P,3) the input skeleton's pelvis point (metres).
        root: (P,3) the posed body's root joint without translation (it does not move when
            the body rotates).
        dik_rotmats: (P,3,3) DIK's root rotation ``R0``.
        dik_transl: (P,3) DIK's translation.
        root_rotmats: (P,3,3) the root rotation used for the body ``R0'``.

    Returns:
        (P,3) float64 translations (metres).
    """
    offset = dik_rotmats.transpose(-1, -2) @ (pelvis - dik_transl - root)[..., None]
    transl = pelvis - root - (root_rotmats @ offset)[..., 0]
    return transl.double().cpu().numpy()
