"""Mocap -> SMPL-layout body: the fitting maths for Bandai-Namco and CMU BVH clips (no I/O).

A fit turns a :class:`~s2m_model.data.bvh.Motion` (joint positions in the mocap world frame:
Y up, metres) into body parameters in the same frame, in four batched steps:

1. **Shape.** ``betas`` once per clip from bone lengths (thighs, shins, upper arms, forearms,
   mid-hip -> mid-shoulder): a few ridge-regularised Gauss-Newton steps (rest joints are linear
   in betas, so each step is a 10x10 solve).
2. **Initial rotations.** :func:`s2m_model.dik.solve` on the mocap joints (formats ``bandai27`` /
   ``cmu31``), solved twice so that every frame gets its predecessor as ``prev`` (temporal
   fallback for straight limbs) without a per-frame Python loop.
3. **Refinement.** A short Adam run over all frames at once on rotation corrections
   ``R = R_dik @ exp(delta)``: limb bone *vectors* (the mocap direction with the body's own bone
   length) and the hip and shoulder lines, a prior keeping ``delta`` small (the torso stays at
   DIK's analytic solution; feet and hands, which the skeleton barely determines, stay near it)
   and temporal smoothness of the rotations. The translation keeps the hips' midpoint on the
   mocap's.
4. **Report.** Per frame the mean distance of the body's mapped joints to the mocap joints
   (``joint_error_mm``) and the mean angle between mapped bones (``bone_error_deg``).

Why bone vectors and not joint positions: the mocap skeletons place some joints differently
from SMPL by construction (Bandai's hip and shoulder joints are 5-7 cm further in, its spine
joints sit at other heights). Pulling the body's joints onto those positions would bend limbs
inwards (thighs and upper arms into the body). Matching directions keeps the motion and the
body's own proportions; ``joint_error_mm`` therefore includes those definition differences and
is reported per joint by ``s2m data fit-report``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import roma
import torch

from s2m_model.data.bvh import Motion
from s2m_model.skeletons import get_format
from s2m_model.smpl_layout import (
    JOINT_INDEX,
    JOINT_NAMES,
    NUM_BETAS,
    NUM_JOINTS,
    forward_kinematics,
    world_from_local,
)
from s2m_model.util.timing import summarize

log = logging.getLogger(__name__)

FIT_VERSION = 1
"""Bump when the fitting method changes: cached fits of another version are ignored."""

DEFAULT_FIT_RATE_HZ = 7.5
"""Default rate of fitted frames: every 4th frame at 30 fps, every 16th at 120 fps."""

DEFAULT_REFINE_STEPS = 20
"""Adam steps of the batched refinement after DIK (see :func:`fit_motions`)."""

_J = JOINT_INDEX
# Lengths used to estimate betas: pairs of (SMPL joint name tuples) whose means are the ends.
_LENGTHS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("left_hip",), ("left_knee",)), (("right_hip",), ("right_knee",)),
    (("left_knee",), ("left_ankle",)), (("right_knee",), ("right_ankle",)),
    (("left_shoulder",), ("left_elbow",)), (("right_shoulder",), ("right_elbow",)),
    (("left_elbow",), ("left_wrist",)), (("right_elbow",), ("right_wrist",)),
    (("left_hip", "right_hip"), ("left_shoulder", "right_shoulder")),
)  # fmt: skip
BETA_RIDGE = 1e-3  # m^2 per unit beta^2: one unit of beta costs as much as ~3 cm on one bone
BETA_LIMIT = 3.0
# Refinement weights (bone vectors and positions in metres, rotations in radians^2).
W_BONE, W_SMOOTH, REFINE_LR = 1.0, 1e-3, 0.01
W_DELTA, W_DELTA_EXTREMITY, W_DELTA_TORSO = 1e-3, 1e-1, 1.0
# The limb bones leave the torso free (hips/shoulders absorb any torso turn), so the torso
# keeps DIK's analytic solution (and the transferred head); feet/hands stay near it.
_TORSO = ("pelvis", "spine1", "spine2", "spine3", "neck", "left_collar", "right_collar", "head")
_EXTREMITIES = ("left_ankle", "right_ankle", "left_foot", "right_foot", "left_wrist",
                "right_wrist", "left_hand", "right_hand")  # fmt: skip



@dataclass
class MocapFit:
    """Body parameters fitted to one clip, in the mocap world frame (Y up, metres). T = frames.

    Attributes:
        name: the clip's name (``ClipRef.name``) or the motion's source.
        betas: (10,) body shape, shared by all frames.
        global_orient: (T,3) root axis-angle (radians), world frame.
        body_pose: (T,23,3) local axis-angle (radians).
        transl: (T,3) SMPL translation (metres): the pelvis is at ``rest_pelvis(betas) + transl``.
        frame_index: (T,) int32 index of each fitted frame in the source clip.
        joint_error_mm: (T,) mean distance (mm) of the body's mapped joints to the mocap joints
            (includes where the two skeletons place joints differently, e.g. hip width).
        limb_error_mm: (T,) mean distance (mm) of knees, ankles, feet, elbows, wrists and the
            head joint after moving their chain's root (hip, shoulder, neck) onto the mocap's:
            the pose error without the skeletons' different hip/shoulder widths.
        bone_error_deg: (T,) mean angle (degrees) between corresponding bones.
        source_format: ``"bandai27"`` or ``"cmu31"``.
        fps: rate of the fitted frames (source rate / ``subsample``).
        source_fps: frame rate of the clip.
        subsample: step between fitted frames.
        source_frames: number of frames of the clip.
        per_joint_error_mm: (M,) mean error per mapped SMPL joint, in ``mapped_joints`` order.
        mapped_joints: names of the SMPL joints with a mocap counterpart.
    """

    name: str
    betas: np.ndarray
    global_orient: np.ndarray
    body_pose: np.ndarray
    transl: np.ndarray
    frame_index: np.ndarray
    joint_error_mm: np.ndarray
    limb_error_mm: np.ndarray
    bone_error_deg: np.ndarray
    source_format: str
    fps: float
    source_fps: float
    subsample: int
    source_frames: int
    per_joint_error_mm: np.ndarray
    mapped_joints: tuple[str, ...]

    @property
    def num_frames(self) -> int:
        """Number of fitted frames ``T``."""
        return int(self.global_orient.shape[0])


def auto_subsample(fps: float, rate_hz: float = DEFAULT_FIT_RATE_HZ) -> int:
    """Frame step giving about ``rate_hz`` fitted frames per second (at least 1)."""
    return max(1, int(round(fps / rate_hz)))


def _forward_joints(
    body, betas: torch.Tensor, rotmats: torch.Tensor, transl: torch.Tensor
) -> torch.Tensor:
    """(N,24,3) posed SMPL joints by forward kinematics only (no vertices: cheap).

    Equals ``body(...).joints`` (smplx's joints are the FK joints, not regressed).
    """
    rest = body.rest_joints(betas).to(rotmats.dtype)
    joints, _ = forward_kinematics(rotmats, rest)
    return joints + transl[:, None]


# Bones compared by direction: those whose end points mean the same in both skeletons (limbs,
# the hip and shoulder lines). The torso comes from DIK (hip line, thorax, shoulder line) and
# the neck/head from the mocap's own head rotation: the spine joints' heights and the neck
# length differ by definition, so their bone directions differ by a constant 5-20 deg.
_BONES: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("right_hip",), ("left_hip",)), (("right_shoulder",), ("left_shoulder",)),
    (("left_hip",), ("left_knee",)), (("left_knee",), ("left_ankle",)),
    (("left_ankle",), ("left_foot",)), (("right_hip",), ("right_knee",)),
    (("right_knee",), ("right_ankle",)), (("right_ankle",), ("right_foot",)),
    (("left_shoulder",), ("left_elbow",)), (("left_elbow",), ("left_wrist",)),
    (("right_shoulder",), ("right_elbow",)), (("right_elbow",), ("right_wrist",)),
)  # fmt: skip
# Limb error: joints compared after moving each chain's root onto the mocap's (joint -> root).
_CHAINS: dict[str, str] = {
    **{f"{s}_{j}": f"{s}_hip" for s in ("left", "right") for j in ("knee", "ankle", "foot")},
    **{f"{s}_{j}": f"{s}_shoulder" for s in ("left", "right") for j in ("elbow", "wrist")},
    "head": "neck",
}


@dataclass
class MocapLayout:
    """Index tables of one mocap format: which mocap joints stand for which SMPL joints."""

    src: list[int]  # mocap joint index per mapped SMPL joint
    dst: list[int]  # SMPL joint index
    names: tuple[str, ...]
    bones: list[tuple[list[int], list[int], list[int], list[int]]]  # (smpl a, smpl b, mocap a, b)
    lengths: list[tuple[list[int], list[int], list[int], list[int]]]
    hips_smpl: list[int]
    hips_src: list[int]
    chain_joint: list[int]  # positions in `dst` of limb joints and of their chain roots
    chain_root: list[int]
    chest_src: int | None  # mocap joints whose rotations give the head's (None: not mapped)
    head_src: int | None

    @classmethod
    def of(cls, fmt_name: str) -> MocapLayout:
        fmt = get_format(fmt_name)
        to_src = {smpl: fmt.index(j) for j, smpl in fmt.smpl_map.items()}
        mapped = [n for n in JOINT_NAMES if n in to_src]
        missing = {"left_hip", "right_hip", "left_knee", "right_knee"} - set(mapped)
        if missing:
            raise ValueError(f"format '{fmt_name}' lacks mapped joints {sorted(missing)}")

        def pairs(table) -> list[tuple[list[int], list[int], list[int], list[int]]]:
            out = []
            for a, b in table:
                if all(n in to_src for n in (*a, *b)):
                    out.append(([_J[n] for n in a], [_J[n] for n in b],
                                [to_src[n] for n in a], [to_src[n] for n in b]))  # fmt: skip
            return out

        chains = [(j, r) for j, r in _CHAINS.items() if j in to_src and r in to_src]
        return cls(
            src=[to_src[n] for n in mapped], dst=[_J[n] for n in mapped], names=tuple(mapped),
            bones=pairs(_BONES), lengths=pairs(_LENGTHS),
            hips_smpl=[_J["left_hip"], _J["right_hip"]],
            hips_src=[to_src["left_hip"], to_src["right_hip"]],
            chain_joint=[mapped.index(j) for j, _ in chains],
            chain_root=[mapped.index(r) for _, r in chains],
            chest_src=to_src.get("spine3"), head_src=to_src.get("head"),
        )  # fmt: skip


def _mean_pts(x: torch.Tensor, idx: list[int]) -> torch.Tensor:
    return x[..., idx, :].mean(-2)


def estimate_betas(
    lengths_m: torch.Tensor, body, layout: MocapLayout, iterations: int = 5
) -> torch.Tensor:
    """(C,10) betas whose rest bone lengths match ``lengths_m`` (C,L) in the least-squares sense.

    Gauss-Newton on ``|| |r_b(beta) - r_a(beta)| - L ||^2 + BETA_RIDGE |beta|^2`` with rest
    points linear in beta; the result is clipped to +-``BETA_LIMIT``.
    """
    dtype, device = lengths_m.dtype, lengths_m.device
    mean, dirs = body.rest_basis("smpl24")  # (24,3), (24,3,10)
    mean, dirs = mean.to(device, dtype), dirs.to(device, dtype)
    va = torch.stack([mean[b].mean(0) - mean[a].mean(0) for a, b, _, _ in layout.lengths])
    da = torch.stack([dirs[b].mean(0) - dirs[a].mean(0) for a, b, _, _ in layout.lengths])
    betas = lengths_m.new_zeros(lengths_m.shape[0], NUM_BETAS)
    eye = torch.eye(NUM_BETAS, dtype=dtype, device=device)
    for _ in range(iterations):
        vec = va + torch.einsum("lck,bk->blc", da, betas)  # (C,L,3)
        length = vec.norm(dim=-1)
        unit = vec / length[..., None].clamp_min(1e-9)
        jac = torch.einsum("blc,lck->blk", unit, da)  # (C,L,10)
        resid = lengths_m - length
        lhs = jac.transpose(1, 2) @ jac + BETA_RIDGE * eye
        rhs = (jac.transpose(1, 2) @ resid[..., None])[..., 0] - BETA_RIDGE * betas
        betas = betas + torch.linalg.solve(lhs, rhs)
    return betas.clamp(-BETA_LIMIT, BETA_LIMIT)


def _transfer_head(
    local: torch.Tensor, mocap_glob: torch.Tensor, clip: torch.Tensor, num_clips: int
) -> torch.Tensor:
    """Neck and head rotations from the mocap's own chest and head rotations.

    ``mocap_glob`` (N,2,3,3) holds the mocap chest and head world rotations. The mocap chest
    frame and the body's spine3 frame differ by a constant rotation ``A`` per clip (the
    skeletons' local axes differ), estimated as the rotation nearest to the sum of
    ``G_chest^T W_spine3`` over the clip. The head's world rotation is then ``G_head A`` and the
    rotation from spine3 to the head is split evenly between neck and head. Positions alone
    cannot give this: head yaw leaves the neck and head-top points in place, and the neck
    joint sits 4-6 cm lower on the mocap skeletons than on SMPL, so aiming SMPL's neck at the
    mocap head point bends it backwards.
    """
    world = world_from_local(local)
    spine3, neck, head = _J["spine3"], _J["neck"], _J["head"]
    rel = mocap_glob[:, 0].transpose(-1, -2) @ world[:, spine3]
    total = rel.new_zeros(num_clips, 3, 3).index_add_(0, clip, rel)
    align = roma.special_procrustes(total)[clip]
    head_world = mocap_glob[:, 1] @ align
    half = roma.rotvec_to_rotmat(
        0.5 * roma.rotmat_to_rotvec(world[:, spine3].transpose(-1, -2) @ head_world)
    )
    out = local.clone()
    out[:, neck] = half
    out[:, head] = half.transpose(-1, -2) @ world[:, spine3].transpose(-1, -2) @ head_world
    return out


def _bone_vectors(pts: torch.Tensor, bones, smpl: bool) -> torch.Tensor:
    """(N,B,3) bone vectors of SMPL joints (``smpl``) or mocap joints."""
    k = 0 if smpl else 2
    return torch.stack([_mean_pts(pts, b[k + 1]) - _mean_pts(pts, b[k]) for b in bones], 1)


def fit_motions(
    motions: Sequence[Motion],
    body,
    *,
    names: Sequence[str] | None = None,
    subsample: int | None = None,
    refine_steps: int = DEFAULT_REFINE_STEPS,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> list[MocapFit]:
    """Fit several clips of one format in one batch (see the module docstring for the method).

    Args:
        motions: clips with ``format`` ``"bandai27"`` or ``"cmu31"`` (all the same).
        body: the :class:`~s2m_model.body.BodyModel` to fit.
        names: one name per clip (default: ``motion.source``).
        subsample: frame step; ``None`` picks :func:`auto_subsample` per clip.
        refine_steps: Adam steps of the refinement (0 keeps DIK's rotations).
        device: where to compute; ``None`` (default) is the body's device, anything else must
            equal it (load the body there: ``load_body_model(..., device=...)``).
        dtype: precision of the fit (the body may be float32 or float64).

    Returns:
        One :class:`MocapFit` per clip, numpy float32 arrays.

    Raises:
        ValueError: unknown or mixed formats, non-finite positions, bad ``subsample``.
    """
    from s2m_model import dik

    if not motions:
        return []
    formats = {m.format for m in motions}
    if len(formats) != 1 or None in formats:
        raise ValueError(f"fit_motions needs clips of one known mocap format, got {formats}")
    fmt_name = formats.pop()
    assert fmt_name is not None
    layout = MocapLayout.of(fmt_name)
    if names is None:
        names = [m.source for m in motions]
    if len(names) != len(motions):
        raise ValueError(f"{len(names)} names for {len(motions)} motions")
    if subsample is not None and subsample < 1:
        raise ValueError(f"subsample must be >= 1, got {subsample}")
    steps = [subsample or auto_subsample(m.fps) for m in motions]
    for m in motions:
        if not np.isfinite(m.positions).all():
            raise ValueError(f"{m.source}: joint positions contain NaN or inf")

    device = body.device if device is None else torch.device(device)
    if device.type != body.device.type or device.index not in (None, body.device.index):
        raise ValueError(f"device {device} differs from the body's {body.device}; load the body "
                         "on that device")  # fmt: skip
    to = {"device": device, "dtype": dtype}
    frames = [np.arange(0, m.num_frames, s) for m, s in zip(motions, steps, strict=True)]
    pos = torch.cat(
        [torch.as_tensor(m.positions[f], **to) for m, f in zip(motions, frames, strict=True)]
    )
    counts = [len(f) for f in frames]
    clip = torch.repeat_interleave(torch.arange(len(motions), device=device),
                                   torch.tensor(counts, device=device))  # fmt: skip

    # 1. shape from the median bone lengths over all frames of each clip
    lengths = []
    for m in motions:
        p = torch.as_tensor(m.positions, **to)
        lengths.append(torch.stack([
            (_mean_pts(p, mb) - _mean_pts(p, ma)).norm(dim=-1).median()
            for _, _, ma, mb in layout.lengths
        ]))  # fmt: skip
    clip_betas = estimate_betas(torch.stack(lengths), body, layout)
    betas = clip_betas[clip]
    body_betas = betas.to(body.dtype)

    # 2. DIK, twice: the second pass sees each frame's predecessor as `prev`
    first = dik.solve(pos, fmt_name, body, betas=betas)
    starts = np.cumsum([0, *counts[:-1]])
    prev_idx = torch.arange(pos.shape[0], device=device) - 1
    prev_idx[torch.as_tensor(starts, device=device)] += 1
    assert first.rotmats is not None
    prev = dik.DIKResult(first.global_orient, first.body_pose, first.solved, first.transl,
                         rotmats=first.rotmats[prev_idx])  # fmt: skip
    init = dik.solve(pos, fmt_name, body, betas=betas, prev=prev).rotmats
    assert init is not None
    init = init.to(dtype)
    if layout.chest_src is not None and layout.head_src is not None:
        glob = [torch.as_tensor(m.global_rotations()[f][:, [layout.chest_src, layout.head_src]],
                                **to) for m, f in zip(motions, frames, strict=True)]  # fmt: skip
        init = _transfer_head(init, torch.cat(glob), clip, len(motions))

    # Targets: mocap bone directions; the hips' midpoint is the best-defined shared point.
    target_bones = _bone_vectors(pos, layout.bones, smpl=False)
    target_dirs = target_bones / target_bones.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    rest = body.rest_joints(body_betas).to(dtype)
    rest_len = _bone_vectors(rest, layout.bones, smpl=True).norm(dim=-1, keepdim=True)
    target_hips = _mean_pts(pos, layout.hips_src)
    zero_t = torch.zeros_like(target_hips)

    # 3. refinement (the translation follows analytically: the hips' midpoint stays on the
    # mocap's, so Adam's fixed-size steps never jitter it)
    def pose_joints(delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rot = init @ roma.rotvec_to_rotmat(delta)
        joints = _forward_joints(body, body_betas, rot, zero_t)
        transl = target_hips - _mean_pts(joints, layout.hips_smpl)
        return rot, joints + transl[:, None], transl

    delta = torch.zeros(pos.shape[0], NUM_JOINTS, 3, **to, requires_grad=True)
    w_delta = torch.full((NUM_JOINTS,), W_DELTA, **to)
    w_delta[[_J[n] for n in _EXTREMITIES]] = W_DELTA_EXTREMITY
    w_delta[[_J[n] for n in _TORSO]] = W_DELTA_TORSO
    same_clip = (clip[1:] == clip[:-1]).to(dtype)
    if refine_steps > 0:
        opt = torch.optim.Adam([delta], lr=REFINE_LR)
        for _ in range(refine_steps):
            opt.zero_grad()
            rot, joints, _ = pose_joints(delta)
            bones = _bone_vectors(joints, layout.bones, smpl=True)
            loss = W_BONE * (bones - rest_len * target_dirs).pow(2).sum(-1).mean()
            loss = loss + (delta.pow(2).sum(-1) * w_delta).mean()
            if pos.shape[0] > 1:
                diff = (rot[1:] - rot[:-1]).pow(2).sum((-1, -2)).mean(-1)
                loss = loss + W_SMOOTH * (diff * same_clip).sum() / same_clip.sum().clamp_min(1)
            loss.backward()
            opt.step()

    # 4. report
    with torch.no_grad():
        rot, joints, transl = pose_joints(delta)
        diff = joints[:, layout.dst] - pos[:, layout.src]
        err = diff.norm(dim=-1) * 1000.0
        limb = (diff[:, layout.chain_joint] - diff[:, layout.chain_root]).norm(dim=-1) * 1000.0
        bones = _bone_vectors(joints, layout.bones, smpl=True)
        cos = torch.nn.functional.cosine_similarity(bones, target_dirs, dim=-1)
        angle = torch.rad2deg(torch.arccos(cos.clamp(-1.0, 1.0)))
        rotvec = roma.rotmat_to_rotvec(rot)
    out = []
    bounds = np.cumsum([0, *counts])
    for c, m in enumerate(motions):
        sl = slice(int(bounds[c]), int(bounds[c + 1]))

        def np32(t: torch.Tensor) -> np.ndarray:
            return t.detach().cpu().numpy().astype(np.float32)

        out.append(MocapFit(
            name=names[c], betas=np32(clip_betas[c]), global_orient=np32(rotvec[sl, 0]),
            body_pose=np32(rotvec[sl, 1:]), transl=np32(transl[sl]),
            frame_index=frames[c].astype(np.int32), joint_error_mm=np32(err[sl].mean(-1)),
            limb_error_mm=np32(limb[sl].mean(-1)),
            bone_error_deg=np32(angle[sl].mean(-1)), source_format=fmt_name,
            fps=float(m.fps / steps[c]), source_fps=float(m.fps), subsample=int(steps[c]),
            source_frames=m.num_frames,
            per_joint_error_mm=np32(err[sl].mean(0)), mapped_joints=layout.names,
        ))  # fmt: skip
    return out


def fit_motion(
    motion: Motion,
    body,
    *,
    subsample: int | None = None,
    refine_steps: int = DEFAULT_REFINE_STEPS,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    name: str | None = None,
) -> MocapFit:
    """Fit one clip; see :func:`fit_motions` (same arguments) and the module docstring."""
    return fit_motions(
        [motion], body, names=[name or motion.source], subsample=subsample,
        refine_steps=refine_steps, device=device, dtype=dtype,
    )[0]  # fmt: skip


# ------------------------------------------------------------------------------ statistics


def _mean_max(values: np.ndarray) -> dict[str, float]:
    s = summarize(np.asarray(values).ravel().tolist(), ndigits=2)
    return {"mean": s["mean"], "max": s["max"]}


def clip_fit_stats(fit: MocapFit) -> dict:
    """Frames, fitted frames and mean/max of the three per-frame errors of one clip's fit."""
    return {
        "frames": fit.source_frames,
        "fitted_frames": fit.num_frames,
        "joint_error_mm": _mean_max(fit.joint_error_mm),
        "limb_error_mm": _mean_max(fit.limb_error_mm),
        "bone_error_deg": _mean_max(fit.bone_error_deg),
    }


def dataset_fit_stats(fits: Sequence[MocapFit]) -> dict:
    """The per-frame errors of several clips' fits pooled, the worst clip, per-joint means.

    Raises:
        ValueError: no fits.
    """
    if not fits:
        raise ValueError("dataset_fit_stats needs at least one fit")
    per_clip = np.array([f.joint_error_mm.mean() for f in fits])
    per_clip_limb = np.array([f.limb_error_mm.mean() for f in fits])
    per_joint = np.round(np.mean([f.per_joint_error_mm for f in fits], 0), 1).tolist()
    return {
        "clips": len(fits),
        "fitted_frames": int(sum(f.num_frames for f in fits)),
        "joint_error_mm": _mean_max(np.concatenate([f.joint_error_mm for f in fits])),
        "limb_error_mm": _mean_max(np.concatenate([f.limb_error_mm for f in fits])),
        "bone_error_deg": _mean_max(np.concatenate([f.bone_error_deg for f in fits])),
        "worst_clip_joint_error_mm": round(float(per_clip.max()), 2),
        "worst_clip_limb_error_mm": round(float(per_clip_limb.max()), 2),
        "per_joint_error_mm": dict(zip(fits[0].mapped_joints, per_joint, strict=True)),
    }
