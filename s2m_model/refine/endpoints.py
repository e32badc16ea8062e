"""Analytic pose refinement (PR) of the endpoints from BlazePose points.

DIK on a 17-joint skeleton leaves the ankles, wrists and (without face points) the head at the
rest rotation. BlazePose has points on exactly those segments: heel and foot index on the foot,
index/pinky/thumb knuckles on the hand, nose/eyes/ears/mouth on the head. Each segment's world
rotation is the rotation that best maps the segment's points on the body's T-pose (same format,
same shape) onto the observed points: a weighted, centred Kabsch fit (``roma``), so it needs no
joint position and no bone lengths, only point directions. The local rotation is taken relative
to the parent's world rotation from DIK.

Neck/head: the face fixes the head's world rotation; how it splits over neck and head is
invisible from the face alone. With ``neck="aim"`` the neck is swung so the head joint lands
where the face places it (needs the DIK result's translation, i.e. points and skeleton in one
metric frame); with ``neck="spread"`` the neck-to-head rotation is split evenly.

Points must be in the frame of the DIK result (e.g. the camera frame); if they come from
another source (MediaPipe world landmarks), align them first with :func:`align_points`.
Statuses per SMPL joint (:data:`DEFAULT`, :data:`SOLVED`, :data:`REFINED`) say where each
published rotation came from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import roma
import torch

from s2m_model.skeletons import get_format
from s2m_model.smpl_layout import (
    JOINT_INDEX,
    NUM_JOINTS,
    PARENTS,
    world_from_local,
)

__all__ = [
    "DEFAULT", "REFINED", "SEGMENTS", "SOLVED", "EndpointResult", "align_points",
    "joint_status", "refine_endpoints",
]  # fmt: skip

#: Per-joint status: rest rotation (nothing determined it).
DEFAULT = 0
#: Per-joint status: solved by DIK from the 3D skeleton.
SOLVED = 1
#: Per-joint status: set or changed by refinement (endpoint points, image fit).
REFINED = 2

#: SMPL joint -> (BlazePose points on its segment, points that must be valid).
SEGMENTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    **{
        f"{s}_ankle": ((f"{s}_ankle", f"{s}_heel", f"{s}_foot_index"),) * 2
        for s in ("left", "right")
    },
    **{
        f"{s}_wrist": (
            (f"{s}_wrist", f"{s}_index", f"{s}_pinky", f"{s}_thumb"),
            (f"{s}_wrist", f"{s}_index", f"{s}_pinky"),
        )
        for s in ("left", "right")
    },
    "head": (
        ("nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
         "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right"),
        ("nose", "left_ear", "right_ear"),
    ),
}  # fmt: skip
FORMAT = "blazepose33"


@dataclass
class EndpointResult:
    """Refined rotations for a batch of B people.

    Attributes:
        rotmats: ``(B,24,3,3)`` local rotations (root first), DIK's where not refined.
        global_orient: ``(B,3)`` root axis-angle (radians), unchanged from DIK.
        body_pose: ``(B,23,3)`` local axis-angle of SMPL joints 1..23 (radians).
        status: ``(B,24)`` int8 per-joint :data:`DEFAULT` / :data:`SOLVED` / :data:`REFINED`.
        fit_rms: ``(B,24)`` RMS point residual (metres) of each refined segment's rigid fit
            (NaN where not refined): a large value means the points disagree with a rigid
            segment (bad detection, or a different person's points).
    """

    rotmats: torch.Tensor
    global_orient: torch.Tensor
    body_pose: torch.Tensor
    status: torch.Tensor
    fit_rms: torch.Tensor


def joint_status(solved: torch.Tensor) -> torch.Tensor:
    """(B,24) int8 statuses from DIK's ``solved`` (B,24) bool: SOLVED or DEFAULT."""
    return torch.where(solved, SOLVED, DEFAULT).to(torch.int8)


def align_points(
    points: torch.Tensor, reference: torch.Tensor, reference_fmt, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Rigidly move BlazePose points ``(B,33,3)`` onto a skeleton ``reference`` ``(B,J,3)`` of
    format ``reference_fmt`` through the joints both name (hips, shoulders, ...; at least 3).

    Returns the moved points. Use when the points come from another 3D source (e.g. MediaPipe
    world landmarks) than the skeleton DIK solved.
    """
    src = get_format(FORMAT)
    ref = get_format(reference_fmt) if isinstance(reference_fmt, str) else reference_fmt
    ref_of = {v: k for k, v in ref.smpl_map.items()}
    pairs = [(src.index(a), ref.index(ref_of[b])) for a, b in src.smpl_map.items() if b in ref_of]
    if len(pairs) < 3:
        raise ValueError(f"{FORMAT} and {ref.name} share fewer than 3 joints: cannot align")
    ia, ib = [p[0] for p in pairs], [p[1] for p in pairs]
    w = torch.ones(points.shape[0], len(pairs), dtype=points.dtype, device=points.device)
    x, y = points[:, ia], reference[:, ib]
    ok = torch.isfinite(x).all(-1) & torch.isfinite(y).all(-1)
    if valid is not None:
        ok = ok & valid[:, ia]
    w = w * ok
    rot, t = roma.rigid_points_registration(
        torch.nan_to_num(x), torch.nan_to_num(y), weights=w.clamp(min=1e-9)
    )
    return (rot[:, None] @ points[..., None])[..., 0] + t[:, None]


def _kabsch(rest, target, w, prior=None, prior_weight=None):
    """Weighted centred rotation fit over the point axis: (...,3,3) R with
    R (rest - c_r) ~ target - c_t, and the weighted RMS residual (...) in metres.

    With ``prior`` (...,3,3) and ``prior_weight`` (...), the cost gains
    ``prior_weight * sum_k w_k |R x_k - prior x_k|^2`` (a MAP fit pulled towards ``prior``);
    both terms share the cross-covariance form, so it stays one SVD. Kabsch is written out
    (instead of ``roma.rigid_points_registration``) because at batch 1 roma's einsum path
    search costs milliseconds.
    """
    wn = w / w.sum(-1, keepdim=True).clamp(min=1e-12)
    x = rest - (wn[..., None] * rest).sum(-2, keepdim=True)
    y = target - (wn[..., None] * target).sum(-2, keepdim=True)
    aim = y
    if prior is not None:
        px = (prior[..., None, :, :] @ x[..., None])[..., 0]
        aim = y + prior_weight[..., None, None] * px
    cov = (x * wn[..., None]).transpose(-1, -2) @ aim  # sum_k w_k x_k aim_k^T
    u, _, vt = torch.linalg.svd(cov)
    d = torch.sign(torch.linalg.det(vt.transpose(-1, -2) @ u.transpose(-1, -2)))
    fix = torch.ones_like(cov[..., 0])
    fix[..., 2] = torch.where(d == 0, 1.0, d)
    rot = vt.transpose(-1, -2) @ (fix[..., None] * u.transpose(-1, -2))
    resid = ((rot[..., None, :, :] @ x[..., None])[..., 0] - y).norm(dim=-1)
    return rot, (wn * resid**2).sum(-1).sqrt(), x


def _swing(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B,3,3) minimal rotation taking direction a onto b (a, b not opposite)."""
    a = a / a.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    b = b / b.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    q = torch.cat([torch.cross(a, b, dim=-1), 1.0 + (a * b).sum(-1, keepdim=True)], -1)
    return roma.unitquat_to_rotmat(q / q.norm(dim=-1, keepdim=True).clamp(min=1e-12))


def refine_endpoints(
    rotmats: torch.Tensor,
    points: torch.Tensor,
    body,
    betas: torch.Tensor | None = None,
    *,
    transl: torch.Tensor | None = None,
    confidence: torch.Tensor | None = None,
    status: torch.Tensor | None = None,
    joints: tuple[str, ...] = tuple(SEGMENTS),
    neck: str = "aim",
    point_sigma: float = 0.01,
    prior_deg: float | None = 20.0,
    min_confidence: float = 0.3,
) -> EndpointResult:
    """Endpoint rotations (ankles, wrists, head/neck) from BlazePose points.

    Args:
        rotmats: ``(B,24,3,3)`` local rotations from DIK (``DIKResult.rotmats``).
        points: ``(B,33,3)`` BlazePose points (metres) in the DIK result's frame; NaN = missing.
        body: the :class:`~s2m_model.body.BodyModel` DIK solved for.
        betas: ``(B,10)`` shape DIK used (default zeros).
        transl: ``(B,3)`` DIK's translation; needed for ``neck="aim"`` (else "spread" is used).
        confidence: ``(B,33)`` in [0,1]; points below ``min_confidence`` are missing.
        status: ``(B,24)`` incoming statuses (default from nothing: all DEFAULT except the
            root); refined joints become :data:`REFINED`.
        joints: which segments to refine (keys of :data:`SEGMENTS`).
        neck: ``"aim"`` or ``"spread"`` (see the module docstring).
        point_sigma: expected 3D error of one point (metres).
        prior_deg: angular spread (degrees) of the prior that keeps DIK's rotation (the rest
            local rotation for an unsolved endpoint); ``None`` fits the points alone. Segments
            are short (the foot points span ~10 cm), so with centimetre noise the prior
            matters: see ``docs/refine.md``.

    Returns:
        :class:`EndpointResult`. A segment whose required points are missing keeps DIK's
        rotation and status.
    """
    fmt = get_format(FORMAT)
    if rotmats.ndim != 4 or rotmats.shape[1:] != (NUM_JOINTS, 3, 3):
        raise ValueError(f"rotmats must be (B,24,3,3), got {tuple(rotmats.shape)}")
    batch, dtype, device = rotmats.shape[0], rotmats.dtype, rotmats.device
    if points.shape != (batch, fmt.num_joints, 3):
        raise ValueError(f"points must be ({batch},33,3) blazepose33, got {tuple(points.shape)}")
    unknown = [j for j in joints if j not in SEGMENTS]
    if unknown:
        raise ValueError(f"unknown endpoint joints {unknown}; choose from {list(SEGMENTS)}")
    if neck not in ("aim", "spread"):
        raise ValueError(f"neck must be 'aim' or 'spread', got {neck!r}")
    if betas is None:
        betas = torch.zeros(batch, 10, dtype=body.dtype, device=body.device)
    valid = torch.isfinite(points).all(-1)
    conf = torch.ones_like(points[..., 0])
    if confidence is not None:
        if confidence.shape != (batch, fmt.num_joints):
            raise ValueError(f"confidence must be ({batch},33), got {tuple(confidence.shape)}")
        conf = torch.nan_to_num(confidence.to(dtype), nan=0.0).clamp(0, 1)
        valid = valid & (conf >= min_confidence)
    if status is None:
        status = torch.full((batch, NUM_JOINTS), DEFAULT, dtype=torch.int8, device=device)
        status[:, 0] = SOLVED
    status = status.clone()
    pts = torch.where(valid[..., None], points, 0.0).to(dtype)
    rest = body.rest_points(betas.to(body.dtype), FORMAT).to(dtype)
    local = rotmats.clone()
    fit_rms = torch.full((batch, NUM_JOINTS), float("nan"), dtype=dtype, device=device)
    # All segments in one batched Kabsch fit: members padded to the longest with zero weight.
    names = list(joints)
    width = max(len(SEGMENTS[n][0]) for n in names)
    idx = torch.zeros(len(names), width, dtype=torch.long, device=device)
    member = torch.zeros(len(names), width, dtype=torch.bool, device=device)
    ok = torch.zeros(batch, len(names), dtype=torch.bool, device=device)
    for s, name in enumerate(names):
        members, required = SEGMENTS[name]
        idx[s, : len(members)] = torch.tensor([fmt.index(n) for n in members])
        member[s, : len(members)] = True
        ok[:, s] = valid[:, [fmt.index(n) for n in required]].all(-1)
    w = torch.where(valid[:, idx] & member, conf[:, idx], 0.0)  # (B,S,K)
    w = torch.where(ok[..., None], w, member.to(dtype))
    world = world_from_local(rotmats)  # refined segments are not each other's ancestors
    prior = prior_weight = None
    if prior_deg is not None:
        # Prior: the segment keeps DIK's rotation (the rest local rotation for an unsolved
        # endpoint). Its weight turns point noise (point_sigma) and the prior's angular spread
        # into one ratio: a turn by a small angle t moves the points by about
        # t^2 * (2/3) sum w |x|^2 (isotropic spread), which the prior should cost t^2 / s^2.
        joint_idx = [JOINT_INDEX[n] for n in names]
        prior = world[:, joint_idx]
        x = rest[:, idx] - (w[..., None] * rest[:, idx]).sum(-2, keepdim=True) / w.sum(
            -1, keepdim=True
        )[..., None].clamp(min=1e-12)
        spread = (w * (x * x).sum(-1)).sum(-1) / w.sum(-1).clamp(min=1e-12)
        sigma_t = math.radians(prior_deg)
        prior_weight = point_sigma**2 / (sigma_t**2 * (2.0 / 3.0) * spread.clamp(min=1e-8))
        prior_weight = prior_weight / w.sum(-1).clamp(min=1e-12)
    seg_world, rms, _ = _kabsch(rest[:, idx], pts[:, idx], w, prior, prior_weight)
    for s, name in enumerate(names):
        j, use = JOINT_INDEX[name], ok[:, s]
        if name == "head":
            new_neck, new_local = _neck_head(
                local, world, seg_world[:, s], rest[:, idx[s]], pts[:, idx[s]], w[:, s], body,
                betas, transl, neck,
            )  # fmt: skip
            n_j = JOINT_INDEX["neck"]
            local[:, n_j] = torch.where(use[:, None, None], new_neck, local[:, n_j])
            status[:, n_j] = torch.where(use, REFINED, status[:, n_j])
        else:
            new_local = world[:, PARENTS[j]].transpose(-1, -2) @ seg_world[:, s]
        local[:, j] = torch.where(use[:, None, None], new_local, local[:, j])
        status[:, j] = torch.where(use, REFINED, status[:, j])
        fit_rms[:, j] = torch.where(use, rms[:, s], float("nan"))
    rotvec = roma.rotmat_to_rotvec(local)
    return EndpointResult(
        rotmats=local,
        global_orient=rotvec[:, 0],
        body_pose=rotvec[:, 1:],
        status=status,
        fit_rms=fit_rms,
    )


def _neck_head(local, world, head_world, rest_pts, pts, w, body, betas, transl, mode):
    """Local neck and head rotations given the head's world rotation from the face."""
    n_j, h_j = JOINT_INDEX["neck"], JOINT_INDEX["head"]
    parent = world[:, PARENTS[n_j]]  # spine3
    total = parent.transpose(-1, -2) @ head_world  # neck local @ head local
    half = roma.rotvec_to_rotmat(0.5 * roma.rotmat_to_rotvec(total))
    if mode == "spread" or transl is None:
        return half, half.transpose(-1, -2) @ total
    rest_j = body.rest_joints(betas.to(body.dtype)).to(local.dtype)
    # Posed neck position: down the chain pelvis -> spine1..3 -> neck only.
    neck_pos = rest_j[:, 0] + transl.to(local.dtype)
    chain = [n_j]
    while PARENTS[chain[-1]] > 0:
        chain.append(PARENTS[chain[-1]])
    for k in reversed(chain):
        bone = rest_j[:, k] - rest_j[:, PARENTS[k]]
        neck_pos = neck_pos + (world[:, PARENTS[k]] @ bone[..., None])[..., 0]
    wn = w / w.sum(-1, keepdim=True).clamp(min=1e-12)
    c_t = (wn[..., None] * pts).sum(1)
    c_r = (wn[..., None] * rest_pts).sum(1)
    # Where the head joint must be for the face centroid to land on the observed one.
    head_target = c_t - (head_world @ (c_r - rest_j[:, h_j])[..., None])[..., 0]
    bone_rest = rest_j[:, h_j] - rest_j[:, n_j]
    reach = parent.transpose(-1, -2) @ (head_target - neck_pos)[..., None]
    neck_local = _swing((half @ bone_rest[..., None])[..., 0], reach[..., 0]) @ half
    return neck_local, neck_local.transpose(-1, -2) @ total
