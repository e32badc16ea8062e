"""Evaluation metrics for 3D human pose and shape, batched in torch (numpy accepted).

Conventions shared by every function here:

- Positions come in **metres**; position errors go out in **millimetres** (as the field reports
  them), PCK/AUC/IoU in **percent** or ``[0, 1]`` as stated, angles in **radians**.
- Inputs are ``torch.Tensor`` or ``numpy.ndarray`` with any number of leading batch dims, e.g.
  joints ``(..., J, 3)``; outputs are always ``torch.Tensor`` on the input's device, in the promoted
  floating dtype of the inputs.
- ``valid`` (bool, broadcastable to ``(..., J)``) marks the joints to score. NaN/inf coordinates are
  **never** averaged silently: a non-finite value at a joint that is scored raises ``ValueError``;
  mark such joints ``valid=False`` to exclude them.
- ``reduction`` selects the output:

  * ``"mean"``   -> 0-d tensor, pooled over every scored (sample, joint) pair;
    ``ValueError`` when nothing is scored;
  * ``"sample"`` -> ``(...)``, one value per sample (mean over its scored joints);
  * ``"none"``   -> ``(..., J)``, one value per joint.

  In ``"sample"``/``"none"`` outputs an entry with nothing to score (all its joints invalid) is
  NaN: that is the documented "no data" marker, never a computed value.
- Root alignment (``root=``) subtracts the root point of each skeleton from all its joints: an
  ``int`` is a joint index, a sequence of indices averages those joints (e.g. both hips), ``None``
  skips the alignment. A sample whose root joints are not all valid cannot be aligned, so all its
  joints are excluded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import roma
import torch

ArrayLike = torch.Tensor | np.ndarray
Root = int | Sequence[int] | None
Reduction = Literal["mean", "sample", "none"]

M_TO_MM = 1000.0
#: PCK thresholds of the MPI-INF-3DHP convention (``mpii_compute_3d_pck.m``): 0, 5, ..., 150 mm.
PCK_THRESHOLDS_MM: tuple[float, ...] = tuple(5.0 * i for i in range(31))
#: SMPL joints whose *global* rotations the 3DPW evaluation code scores for the joint-angle error
#: (pelvis, hips, knees, shoulders, elbows).
PW3D_ANGLE_JOINTS: tuple[int, ...] = (0, 1, 2, 4, 5, 16, 17, 18, 19)

__all__ = [
    "PCK_THRESHOLDS_MM",
    "PW3D_ANGLE_JOINTS",
    "acceleration_error",
    "auc",
    "joint_angle_error",
    "mpjpe",
    "pa_mpjpe",
    "pa_pve",
    "pck",
    "procrustes_align",
    "pve",
    "silhouette_iou",
]


# --------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------
def to_tensor(x: ArrayLike, name: str) -> torch.Tensor:
    """``x`` as a tensor (numpy/lists without a copy where possible); ValueError naming ``name``
    for anything else (object arrays, other types)."""
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray | list | tuple | float | int):
        arr = np.asarray(x)
        if arr.dtype == object:
            raise ValueError(f"{name}: object arrays are not supported")
        return torch.from_numpy(np.ascontiguousarray(arr))
    raise ValueError(f"{name}: expected a torch.Tensor or numpy array, got {type(x).__name__}")


def float_pair(
    a: ArrayLike, b: ArrayLike, names: tuple[str, str], point_dim: int | None = 3
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two same-shape floating tensors on one device, dtype promoted (ints -> float64)."""
    ta, tb = to_tensor(a, names[0]), to_tensor(b, names[1])
    if ta.shape != tb.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape, got "
            f"{tuple(ta.shape)} and {tuple(tb.shape)}"
        )
    if ta.device != tb.device:
        raise ValueError(f"{names[0]} and {names[1]} are on different devices")
    if point_dim is not None and (ta.ndim < 2 or ta.shape[-1] != point_dim):
        raise ValueError(f"{names[0]}: expected shape (..., N, {point_dim}), got {tuple(ta.shape)}")
    dtype = torch.promote_types(ta.dtype, tb.dtype)
    if not dtype.is_floating_point:
        dtype = torch.float64
    return ta.to(dtype), tb.to(dtype)


def valid_mask(
    valid: ArrayLike | None, shape: torch.Size, device: torch.device, name: str = "valid"
) -> torch.Tensor:
    """Bool mask of ``shape`` (validity broadcast from ``valid``; all True when None)."""
    if valid is None:
        return torch.ones(shape, dtype=torch.bool, device=device)
    v = to_tensor(valid, name).to(device)
    if v.dtype != torch.bool:
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise ValueError(f"{name} contains NaN/inf")
        v = v != 0
    try:
        return torch.broadcast_to(v, shape).clone()
    except RuntimeError as exc:
        raise ValueError(
            f"{name} of shape {tuple(v.shape)} does not broadcast to {tuple(shape)}"
        ) from exc


def _check_finite(pts: dict[str, torch.Tensor], valid: torch.Tensor) -> dict[str, torch.Tensor]:
    """Refuse non-finite values where scored; zero them where not (so they cannot propagate)."""
    out = {}
    for name, x in pts.items():
        finite = torch.isfinite(x).all(dim=-1)
        bad = valid & ~finite
        if bool(bad.any()):
            raise ValueError(
                f"{name} has NaN/inf at {int(bad.sum())} scored point(s); pass valid=... "
                "(False there) to exclude them instead of averaging them"
            )
        zero = torch.zeros((), dtype=x.dtype, device=x.device)
        out[name] = torch.where(finite[..., None], x, zero)
    return out


def _root_indices(root: Root, n: int) -> list[int] | None:
    if root is None:
        return None
    idx = [int(root)] if isinstance(root, int | np.integer) else [int(r) for r in root]
    if not idx:
        raise ValueError("root must be an index, a non-empty sequence of indices, or None")
    for r in idx:
        if not -n <= r < n:
            raise ValueError(f"root index {r} out of range for {n} joints")
    return idx


def _joint_index(joints: Sequence[int], n: int, device: torch.device) -> torch.Tensor:
    idx = [int(j) for j in joints]
    if not idx or any(not -n <= j < n for j in idx):
        raise ValueError(f"joints must be non-empty indices in [-{n}, {n}), got {idx}")
    return torch.as_tensor([j % n for j in idx], dtype=torch.long, device=device)


def _root_align(
    x: torch.Tensor, y: torch.Tensor, valid: torch.Tensor, root: Root
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    idx = _root_indices(root, x.shape[-2])
    if idx is None:
        return x, y, valid
    root_ok = valid[..., idx].all(dim=-1, keepdim=True)
    valid = valid & root_ok
    x = x - x[..., idx, :].mean(dim=-2, keepdim=True)
    y = y - y[..., idx, :].mean(dim=-2, keepdim=True)
    return x, y, valid


def _reduce(values: torch.Tensor, valid: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    """Reduce per-joint ``values`` (..., J) under ``valid`` (..., J)."""
    nan = torch.full((), float("nan"), dtype=values.dtype, device=values.device)
    if reduction == "none":
        return torch.where(valid, values, nan)
    if reduction == "sample":
        count = valid.sum(dim=-1)
        total = torch.where(valid, values, torch.zeros_like(values)).sum(dim=-1)
        return torch.where(count > 0, total / count.clamp_min(1).to(values.dtype), nan)
    if reduction == "mean":
        if not bool(valid.any()):
            raise ValueError("nothing to score: every joint/sample is invalid")
        return values[valid].mean()
    raise ValueError(f"reduction must be 'mean', 'sample' or 'none', got {reduction!r}")


def _prepare_joints(
    pred: ArrayLike,
    gt: ArrayLike,
    valid: ArrayLike | None,
    root: Root,
    joints: Sequence[int] | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    p, g = float_pair(pred, gt, ("pred", "gt"))
    v = valid_mask(valid, p.shape[:-1], p.device)
    checked = _check_finite({"pred": p, "gt": g}, v)
    p, g = checked["pred"], checked["gt"]
    p, g, v = _root_align(p, g, v, root)
    if joints is not None:
        idx = _joint_index(joints, p.shape[-2], p.device)
        p, g, v = p.index_select(-2, idx), g.index_select(-2, idx), v.index_select(-1, idx)
    return p, g, v


# --------------------------------------------------------------------------------------------
# position errors
# --------------------------------------------------------------------------------------------
def mpjpe(
    pred: ArrayLike,
    gt: ArrayLike,
    root: Root = 0,
    *,
    joints: Sequence[int] | None = None,
    valid: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Mean per-joint position error after root alignment, in **millimetres**.

    Args:
        pred, gt: ``(..., J, 3)`` joint positions in metres, same frame.
        root: root joint index, list of indices to average (e.g. both hips), or None (no
            alignment). Aligned on all ``J`` joints before ``joints`` are selected.
        joints: optional indices of the joints to score (e.g. the H36M 14-joint subset).
        valid: bool ``(..., J)`` (broadcastable): joints to score; see module docstring.
        reduction: ``"mean"`` (0-d), ``"sample"`` ``(...)`` or ``"none"`` ``(..., J')``.

    Returns:
        Error in mm.
    """
    p, g, v = _prepare_joints(pred, gt, valid, root, joints)
    err = torch.linalg.vector_norm(p - g, dim=-1) * M_TO_MM
    return _reduce(err, v, reduction)


def _similarity_fit(
    p: torch.Tensor, g: torch.Tensor, v: torch.Tensor
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """Fit on finite ``p``, ``g``; returns aligned p, (s, R, t) and the per-sample ``ok`` flag."""
    ok = v.sum(dim=-1) >= 3
    # Samples with < 3 valid points get uniform weights only to keep the batch computable.
    w = torch.where(ok[..., None], v, torch.ones_like(v)).to(p.dtype)
    R, _, s = roma.rigid_points_registration(p, g, weights=w, compute_scaling=True)
    # A prediction collapsed to one point has no spread: the least-squares scale is then 0.
    s = torch.nan_to_num(s, nan=0.0, posinf=0.0, neginf=0.0)
    wn = w / w.sum(dim=-1, keepdim=True)
    p_mean = (wn[..., None] * p).sum(dim=-2)
    g_mean = (wn[..., None] * g).sum(dim=-2)
    t = g_mean - s[..., None] * (R @ p_mean[..., None])[..., 0]
    aligned = s[..., None, None] * (p @ R.mT) + t[..., None, :]
    return aligned, (s, R, t), ok


def procrustes_align(
    pred: ArrayLike,
    gt: ArrayLike,
    valid: ArrayLike | None = None,
    *,
    return_transform: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Similarity-align ``pred`` onto ``gt`` (rotation, translation, uniform scale; no reflection).

    Minimises ``sum_i w_i |s R p_i + t - g_i|^2`` (Umeyama) with ``roma.rigid_points_registration``;
    ``R`` is a proper rotation (``det R = +1``, reflections excluded by the SVD sign fix). A
    prediction collapsed to a single point gets ``s = 0`` (it maps onto the gt centroid).

    Args:
        pred, gt: ``(..., N, 3)`` point sets in metres (joints or vertices).
        valid: bool ``(..., N)``: points used for the fit (at least 3 per sample). Invalid points
            are transformed too; invalid non-finite points come back as 0.
        return_transform: also return ``(s (...), R (..., 3, 3), t (..., 3) metres)`` with
            ``aligned = s * R @ pred + t``.

    Returns:
        Aligned ``pred`` ``(..., N, 3)`` in metres (and the transform if asked).

    Raises:
        ValueError: shape mismatch, fewer than 3 valid points in a sample, or non-finite values
            at valid points.
    """
    p, g = float_pair(pred, gt, ("pred", "gt"))
    v = valid_mask(valid, p.shape[:-1], p.device)
    checked = _check_finite({"pred": p, "gt": g}, v)
    aligned, transform, ok = _similarity_fit(checked["pred"], checked["gt"], v)
    if not bool(ok.all()):
        raise ValueError("procrustes_align needs at least 3 valid points in every sample")
    if return_transform:
        return aligned, transform
    return aligned


def pa_mpjpe(
    pred: ArrayLike,
    gt: ArrayLike,
    *,
    joints: Sequence[int] | None = None,
    valid: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """MPJPE after similarity Procrustes alignment (PA-MPJPE), in **millimetres**.

    Each sample is aligned on its own valid (selected) joints, then scored on them; a sample with
    fewer than 3 valid joints cannot be aligned and counts as having no valid joint.

    Args:
        pred, gt: ``(..., J, 3)`` joint positions in metres.
        joints: optional joint subset; the alignment is fitted on this subset (as in SPIN/HMR).
        valid: bool ``(..., J)``: joints to fit and score (>= 3 per sample).
        reduction: ``"mean"``, ``"sample"`` or ``"none"``.

    Returns:
        Error in mm.
    """
    p, g, v = _prepare_joints(pred, gt, valid, None, joints)
    aligned, _, ok = _similarity_fit(p, g, v)
    err = torch.linalg.vector_norm(aligned - g, dim=-1) * M_TO_MM
    return _reduce(err, v & ok[..., None], reduction)


def pve(
    pred: ArrayLike,
    gt: ArrayLike,
    *,
    pred_root: ArrayLike | None = None,
    gt_root: ArrayLike | None = None,
    valid: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Per-vertex error (PVE / MPVPE), in **millimetres**.

    Args:
        pred, gt: ``(..., V, 3)`` mesh vertices in metres, same topology and frame.
        pred_root, gt_root: optional ``(..., 3)`` points (metres) subtracted from ``pred`` /
            ``gt`` first, e.g. each mesh's pelvis joint (root-aligned PVE). Both or neither.
        valid: bool ``(..., V)`` vertices to score.
        reduction: ``"mean"``, ``"sample"`` or ``"none"`` (per vertex).

    Returns:
        Error in mm.
    """
    if (pred_root is None) != (gt_root is None):
        raise ValueError("pass both pred_root and gt_root, or neither")
    p, g = float_pair(pred, gt, ("pred", "gt"))
    v = valid_mask(valid, p.shape[:-1], p.device)
    checked = _check_finite({"pred": p, "gt": g}, v)
    p, g = checked["pred"], checked["gt"]
    if pred_root is not None:
        pr, gr = float_pair(pred_root, gt_root, ("pred_root", "gt_root"), point_dim=None)
        if pr.shape != p.shape[:-2] + (3,):
            raise ValueError(
                f"pred_root must have shape {tuple(p.shape[:-2]) + (3,)}, got {tuple(pr.shape)}"
            )
        if not (torch.isfinite(pr).all() and torch.isfinite(gr).all()):
            raise ValueError("pred_root/gt_root contain NaN/inf")
        p = p - pr.to(p)[..., None, :]
        g = g - gr.to(g)[..., None, :]
    err = torch.linalg.vector_norm(p - g, dim=-1) * M_TO_MM
    return _reduce(err, v, reduction)


def pa_pve(
    pred: ArrayLike,
    gt: ArrayLike,
    *,
    valid: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Per-vertex error after similarity Procrustes alignment of the meshes, in **millimetres**.

    Args:
        pred, gt: ``(..., V, 3)`` vertices in metres.
        valid: bool ``(..., V)`` vertices to fit and score.
        reduction: ``"mean"``, ``"sample"`` or ``"none"``.
    """
    return pa_mpjpe(pred, gt, valid=valid, reduction=reduction)


# --------------------------------------------------------------------------------------------
# PCK / AUC
# --------------------------------------------------------------------------------------------
def _aligned_errors_mm(
    pred: ArrayLike,
    gt: ArrayLike,
    align: Literal["root", "procrustes", "none"],
    root: Root,
    joints: Sequence[int] | None,
    valid: ArrayLike | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    if align == "root":
        p, g, v = _prepare_joints(pred, gt, valid, root, joints)
    elif align == "procrustes":
        p, g, v = _prepare_joints(pred, gt, valid, None, joints)
        p, _, ok = _similarity_fit(p, g, v)
        v = v & ok[..., None]
    elif align == "none":
        p, g, v = _prepare_joints(pred, gt, valid, None, joints)
    else:
        raise ValueError(f"align must be 'root', 'procrustes' or 'none', got {align!r}")
    return torch.linalg.vector_norm(p - g, dim=-1) * M_TO_MM, v


def pck(
    pred: ArrayLike,
    gt: ArrayLike,
    threshold: float = 150.0,
    *,
    root: Root = 0,
    align: Literal["root", "procrustes", "none"] = "root",
    joints: Sequence[int] | None = None,
    valid: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """3D PCK: share of joints with error strictly below ``threshold`` **mm**, in **percent**.

    MPI-INF-3DHP convention (``error < threshold``, 150 mm, root-aligned by default;
    ``align="procrustes"`` gives the rigid-aligned variant some papers report).

    Args:
        pred, gt: ``(..., J, 3)`` joints in metres.
        threshold: distance threshold in millimetres.
        root: root for ``align="root"`` (index, indices to average, or None).
        align: ``"root"``, ``"procrustes"`` (similarity) or ``"none"``.
        joints, valid, reduction: as in :func:`mpjpe` (``"none"`` gives 0/100 per joint).

    Returns:
        PCK in percent (0-100).
    """
    if not np.isfinite(threshold) or threshold < 0:
        raise ValueError(f"threshold must be a finite number of mm >= 0, got {threshold}")
    err, v = _aligned_errors_mm(pred, gt, align, root, joints, valid)
    hit = (err < threshold).to(err.dtype) * 100.0
    return _reduce(hit, v, reduction)


def auc(
    pred: ArrayLike,
    gt: ArrayLike,
    thresholds: Sequence[float] = PCK_THRESHOLDS_MM,
    *,
    root: Root = 0,
    align: Literal["root", "procrustes", "none"] = "root",
    joints: Sequence[int] | None = None,
    valid: ArrayLike | None = None,
    reduction: Literal["mean", "sample"] = "mean",
) -> torch.Tensor:
    """Area under the PCK curve: mean PCK over ``thresholds`` (mm), in **percent**.

    Default thresholds are 0, 5, ..., 150 mm (31 values, MPI-INF-3DHP ``mpii_compute_3d_pck``).

    Args:
        pred, gt: ``(..., J, 3)`` joints in metres.
        thresholds: PCK thresholds in millimetres.
        root, align, joints, valid: as in :func:`pck`.
        reduction: ``"mean"`` (pooled PCK per threshold, then averaged) or ``"sample"``.

    Returns:
        AUC in percent (0-100).
    """
    th = np.asarray(list(thresholds), dtype=np.float64)
    if th.ndim != 1 or th.size == 0 or not np.isfinite(th).all() or (th < 0).any():
        raise ValueError("thresholds must be a non-empty 1-D sequence of finite mm values >= 0")
    if reduction not in ("mean", "sample"):
        raise ValueError(f"auc reduction must be 'mean' or 'sample', got {reduction!r}")
    err, v = _aligned_errors_mm(pred, gt, align, root, joints, valid)
    th_t = torch.as_tensor(th, dtype=err.dtype, device=err.device)
    hits = (err[..., None] < th_t).to(err.dtype) * 100.0  # (..., J, K)
    per_threshold = torch.stack(
        [_reduce(hits[..., k], v, reduction) for k in range(th.size)], dim=-1
    )
    return per_threshold.mean(dim=-1)


# --------------------------------------------------------------------------------------------
# rotations
# --------------------------------------------------------------------------------------------
def joint_angle_error(
    pred_rotmats: ArrayLike,
    gt_rotmats: ArrayLike,
    *,
    joints: Sequence[int] | None = None,
    valid: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Mean angle of the relative rotation ``R_pred^T R_gt``, in **radians** (3DPW definition).

    The 3DPW evaluation code applies this to *global* joint rotations of the SMPL joints in
    :data:`PW3D_ANGLE_JOINTS` and reports degrees; pass ``joints=PW3D_ANGLE_JOINTS`` for that
    subset and multiply by ``180/pi`` for degrees.

    Args:
        pred_rotmats, gt_rotmats: ``(..., J, 3, 3)`` rotation matrices.
        joints: optional joint subset.
        valid: bool ``(..., J)`` joints to score.
        reduction: ``"mean"``, ``"sample"`` or ``"none"``.

    Returns:
        Angle in radians, in ``[0, pi]``.
    """
    p, g = float_pair(pred_rotmats, gt_rotmats, ("pred_rotmats", "gt_rotmats"), point_dim=None)
    if p.ndim < 3 or p.shape[-2:] != (3, 3):
        raise ValueError(f"pred_rotmats: expected shape (..., J, 3, 3), got {tuple(p.shape)}")
    v = valid_mask(valid, p.shape[:-2], p.device)
    flat = {"pred_rotmats": p.flatten(-2), "gt_rotmats": g.flatten(-2)}
    checked = _check_finite(flat, v)
    p = checked["pred_rotmats"].unflatten(-1, (3, 3))
    g = checked["gt_rotmats"].unflatten(-1, (3, 3))
    if joints is not None:
        idx = _joint_index(joints, p.shape[-3], p.device)
        p, g, v = p.index_select(-3, idx), g.index_select(-3, idx), v.index_select(-1, idx)
    # rotvec norm (via quaternion) stays accurate near 0 and pi, unlike acos/asin formulas.
    angle = torch.linalg.vector_norm(roma.rotmat_to_rotvec(p.mT @ g), dim=-1)
    return _reduce(angle, v, reduction)


# --------------------------------------------------------------------------------------------
# silhouettes
# --------------------------------------------------------------------------------------------
def silhouette_iou(
    mask_a: ArrayLike,
    mask_b: ArrayLike,
    *,
    threshold: float = 0.5,
    reduction: Literal["mean", "sample"] = "mean",
) -> torch.Tensor:
    """Intersection over union of binary silhouettes, in ``[0, 1]``.

    Args:
        mask_a, mask_b: ``(..., H, W)`` bool masks, or float masks binarised as ``> threshold``.
        threshold: binarisation threshold for non-bool masks.
        reduction: ``"mean"`` (mean of per-sample IoU) or ``"sample"`` ``(...)``.

    Returns:
        IoU; two empty masks count as a perfect match (IoU = 1.0), by definition here.
    """
    a, b = to_tensor(mask_a, "mask_a"), to_tensor(mask_b, "mask_b")
    if a.shape != b.shape or a.ndim < 2:
        raise ValueError(
            f"masks must have the same shape (..., H, W), got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.device != b.device:
        raise ValueError("mask_a and mask_b are on different devices")

    def _binary(m: torch.Tensor, name: str) -> torch.Tensor:
        if m.dtype == torch.bool:
            return m
        if m.is_floating_point() and not bool(torch.isfinite(m).all()):
            raise ValueError(f"{name} contains NaN/inf")
        return m > threshold

    a, b = _binary(a, "mask_a"), _binary(b, "mask_b")
    inter = (a & b).flatten(-2).sum(dim=-1).to(torch.float64)
    union = (a | b).flatten(-2).sum(dim=-1).to(torch.float64)
    iou = torch.where(union > 0, inter / union.clamp_min(1.0), torch.ones_like(union))
    if reduction == "sample":
        return iou
    if reduction == "mean":
        return iou.mean()
    raise ValueError(f"reduction must be 'mean' or 'sample', got {reduction!r}")


# --------------------------------------------------------------------------------------------
# temporal
# --------------------------------------------------------------------------------------------
def acceleration_error(
    pred_seq: ArrayLike,
    gt_seq: ArrayLike,
    root: Root = 0,
    *,
    valid: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Acceleration error (HMMR/VIBE), in **millimetres per frame squared**.

    The acceleration is the second finite difference ``x[t-1] - 2 x[t] + x[t+1]`` of the
    root-aligned joints (VIBE aligns on the pelvis first); the error is the distance between the
    predicted and true accelerations, per joint, for the ``T - 2`` interior frames.

    Args:
        pred_seq, gt_seq: ``(..., T, J, 3)`` joint sequences in metres, ``T >= 3``.
        root: root joint(s) for per-frame alignment, or None.
        valid: bool ``(..., T, J)`` per joint or ``(..., T)`` per frame; an acceleration is
            scored only when its three frames are valid.
        reduction: ``"mean"``, ``"sample"`` (one value per interior frame, ``(..., T-2)``) or
            ``"none"`` ``(..., T-2, J)``.

    Returns:
        Error in mm/frame^2.
    """
    p, g = float_pair(pred_seq, gt_seq, ("pred_seq", "gt_seq"))
    if p.ndim < 3 or p.shape[-3] < 3:
        raise ValueError(f"pred_seq: expected shape (..., T>=3, J, 3), got {tuple(p.shape)}")
    if valid is not None:
        vt = to_tensor(valid, "valid")
        if tuple(vt.shape) == tuple(p.shape[:-2]):  # per-frame validity
            valid = vt[..., None]
    p, g, v = _prepare_joints(p, g, valid, root, None)
    acc_p = p[..., :-2, :, :] - 2 * p[..., 1:-1, :, :] + p[..., 2:, :, :]
    acc_g = g[..., :-2, :, :] - 2 * g[..., 1:-1, :, :] + g[..., 2:, :, :]
    v3 = v[..., :-2, :] & v[..., 1:-1, :] & v[..., 2:, :]
    err = torch.linalg.vector_norm(acc_p - acc_g, dim=-1) * M_TO_MM
    return _reduce(err, v3, reduction)
