"""Mocap -> SMPL-layout body: fit body parameters to Bandai-Namco and CMU BVH clips.

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

Clips and splits: :func:`list_clips` finds the clips under the shared data folder and assigns
each to ``train``/``val``/``test`` (Bandai, by a hash of the clip's content+style group, so that
takes of the same motion never straddle two splits) or ``test-cmu`` (every CMU clip).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import roma
import torch

from s2m_model.body.free import SMPL_JOINT_NAMES, SMPL_PARENTS
from s2m_model.data.bvh import Motion, iter_bandai_clips, load_bvh
from s2m_model.skeletons import get_format

log = logging.getLogger(__name__)

FIT_VERSION = 1
"""Bump when the fitting method changes: cached fits of another version are ignored."""

DEFAULT_FIT_RATE_HZ = 7.5
"""Default rate of fitted frames: every 4th frame at 30 fps, every 16th at 120 fps."""

DEFAULT_REFINE_STEPS = 20
"""Adam steps of the batched refinement after DIK (see :func:`fit_motions`)."""

SPLITS: tuple[str, ...] = ("train", "val", "test", "test-cmu")
SPLIT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}
BANDAI_ARCHIVES = {"bandai-1": "dataset-1.tar.xz", "bandai-2": "dataset-2.tar.xz"}
KNOWN_DATASETS = ("bandai-1", "bandai-2", "cmu")
CMU_FILES = ("131_01.bvh.xz", "131_02.bvh.xz", "131_03.bvh.xz")  # the scaled_* are duplicates
LICENCES = {
    "bandai": "CC BY-NC 4.0",
    "cmu": "CMU mocap terms (free for research and commercial use; acknowledge "
    "mocap.cs.cmu.edu, NSF EIA-0196217)",
}

_J = {n: i for i, n in enumerate(SMPL_JOINT_NAMES)}
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


# ------------------------------------------------------------------------------ clip listing


@dataclass(frozen=True)
class ClipRef:
    """One mocap clip in the shared data folder.

    Attributes:
        name: stable id used in manifests, e.g. ``"dataset-1/walk_normal_001"``, ``"cmu/131_01"``.
        dataset: ``"bandai-1"``, ``"bandai-2"`` or ``"cmu"``.
        source: the archive (Bandai ``tar.xz``) or ``.bvh.xz`` file holding the clip.
        member: the clip's stem inside a Bandai archive (``dataset-1_walk_normal_001``), else "".
        split: ``"train"``, ``"val"``, ``"test"`` or ``"test-cmu"``.
    """

    name: str
    dataset: str
    source: str
    member: str
    split: str

    @property
    def licence(self) -> str:
        """Licence of the source data (``LICENCES`` entry of the dataset family)."""
        return LICENCES["cmu" if self.dataset == "cmu" else "bandai"]


def bandai_group(name: str) -> str:
    """Split group of a Bandai clip: its name without the take number (content + style)."""
    return re.sub(r"_\d+$", "", name)


def split_of(name: str) -> str:
    """Deterministic split of a clip name (see :func:`list_clips`)."""
    if name.startswith("cmu/"):
        return "test-cmu"
    digest = hashlib.sha256(bandai_group(name).encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < SPLIT_FRACTIONS["train"]:
        return "train"
    return "val" if u < SPLIT_FRACTIONS["train"] + SPLIT_FRACTIONS["val"] else "test"


def _clip_name(dataset: str, stem: str) -> str:
    prefix = "dataset-1" if dataset == "bandai-1" else "dataset-2"
    return f"{prefix}/{stem.removeprefix(prefix + '_')}"


def _archive_stems(archive: Path) -> list[str]:
    """Clip stems of a Bandai archive; the listing (a full decompression) is cached."""
    from s2m_model.util.files import cache_dir

    st = archive.stat()
    index = cache_dir() / "mocap-fits" / f"index-{archive.name}-{st.st_size}.json"
    if index.is_file():
        try:
            stems = json.loads(index.read_text())
            if isinstance(stems, list) and all(isinstance(s, str) for s in stems):
                return stems
        except ValueError:
            pass  # a damaged index is rebuilt below
    import tarfile

    stems = set()
    try:
        with tarfile.open(archive, mode="r|xz") as tar:
            for member in tar:
                path = member.name
                if member.isfile() and path.endswith(".bvh") and "/data/" in f"/{path}":
                    stems.add(Path(path).stem)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ValueError(f"{archive}: unreadable tar.xz archive ({exc})") from None
    out = sorted(stems)
    index.parent.mkdir(parents=True, exist_ok=True)
    tmp = index.with_name(index.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(out))
    os.replace(tmp, index)
    return out


def list_clips(
    shared_data_dir: str | os.PathLike[str],
    datasets: Sequence[str] = ("bandai-1", "bandai-2", "cmu"),
) -> list[ClipRef]:
    """All mocap clips under ``shared_data_dir`` (``../shared/data``), sorted by name.

    Bandai clips go to ``train``/``val``/``test`` (~80/10/10 by a SHA-256 hash of the
    content+style group, e.g. ``dataset-2/walk_active``: all takes of a group share a split);
    CMU clips form the extra ``test-cmu`` split. Missing datasets are skipped; none at all is a
    FileNotFoundError.
    """
    root = Path(shared_data_dir)
    unknown = set(datasets) - {*BANDAI_ARCHIVES, "cmu"}
    if unknown:
        raise ValueError(f"unknown mocap datasets {sorted(unknown)}; known: {KNOWN_DATASETS}")
    refs: list[ClipRef] = []
    for ds, file in BANDAI_ARCHIVES.items():
        archive = root / "bandai-motion" / file
        if ds in datasets and archive.is_file():
            for stem in _archive_stems(archive):
                name = _clip_name(ds, stem)
                refs.append(ClipRef(name, ds, str(archive), stem, split_of(name)))
    if "cmu" in datasets:
        for file in CMU_FILES:
            path = root / "cmu-mocap" / file
            if path.is_file():
                name = "cmu/" + file.removesuffix(".bvh.xz")
                refs.append(ClipRef(name, "cmu", str(path), "", "test-cmu"))
    if not refs:
        raise FileNotFoundError(
            f"no mocap clips under {root} (expected bandai-motion/dataset-*.tar.xz or "
            "cmu-mocap/131_0*.bvh.xz; see ../shared/data/README.md)"
        )
    return sorted(refs, key=lambda r: r.name)


def iter_motions(refs: Iterable[ClipRef]) -> Iterator[tuple[ClipRef, Motion]]:
    """Load the clips ``refs`` (one streaming pass per Bandai archive), in archive order."""
    by_source: dict[str, dict[str, ClipRef]] = {}
    for ref in refs:
        by_source.setdefault(ref.source, {})[ref.member or ref.name] = ref
    for source, wanted in by_source.items():
        first = next(iter(wanted.values()))
        if first.dataset == "cmu":
            for ref in wanted.values():
                yield ref, load_bvh(ref.source)
            continue
        pending = dict(wanted)
        for stem, motion, _ in iter_bandai_clips(source):
            ref = pending.pop(stem, None)
            if ref is not None:
                yield ref, motion
            if not pending:
                break
        if pending:
            raise ValueError(f"{source}: clips not found: {sorted(pending)[:5]}")


# ------------------------------------------------------------------------------ fitting


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


def _forward_joints(body, betas, rotmats, transl) -> torch.Tensor:
    """(N,24,3) posed SMPL joints by forward kinematics only (no vertices: cheap).

    Equals ``body(...).joints`` (smplx's joints are the FK joints, not regressed).
    """
    from smplx.lbs import batch_rigid_transform

    rest = body.rest_joints(betas).to(rotmats.dtype)
    parents = torch.tensor(SMPL_PARENTS, dtype=torch.long, device=rotmats.device)
    joints, _ = batch_rigid_transform(rotmats, rest, parents)
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
class _Layout:
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
    def of(cls, fmt_name: str) -> _Layout:
        fmt = get_format(fmt_name)
        to_src = {smpl: fmt.index(j) for j, smpl in fmt.smpl_map.items()}
        mapped = [n for n in SMPL_JOINT_NAMES if n in to_src]
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
    lengths_m: torch.Tensor, body, layout: _Layout, iterations: int = 5
) -> torch.Tensor:
    """(C,10) betas whose rest bone lengths match ``lengths_m`` (C,L) in the least-squares sense.

    Gauss-Newton on ``|| |r_b(beta) - r_a(beta)| - L ||^2 + BETA_RIDGE |beta|^2`` with rest
    points linear in beta; the result is clipped to +-``BETA_LIMIT``.
    """
    dtype, device = lengths_m.dtype, lengths_m.device
    mean, dirs = body._rest_basis("smpl24")  # (24,3), (24,3,10)
    mean, dirs = mean.to(device, dtype), dirs.to(device, dtype)
    va = torch.stack([mean[b].mean(0) - mean[a].mean(0) for a, b, _, _ in layout.lengths])
    da = torch.stack([dirs[b].mean(0) - dirs[a].mean(0) for a, b, _, _ in layout.lengths])
    betas = lengths_m.new_zeros(lengths_m.shape[0], 10)
    eye = torch.eye(10, dtype=dtype, device=device)
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


def _world_rotations(local: torch.Tensor) -> torch.Tensor:
    """(N,24,3,3) world rotations from SMPL local rotations (N,24,3,3)."""
    world = [local[:, 0]]
    for j in range(1, 24):
        world.append(world[SMPL_PARENTS[j]] @ local[:, j])
    return torch.stack(world, 1)


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
    world = _world_rotations(local)
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
    layout = _Layout.of(fmt_name)
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

    delta = torch.zeros(pos.shape[0], 24, 3, **to, requires_grad=True)
    w_delta = torch.full((24,), W_DELTA, **to)
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


# ------------------------------------------------------------------------------ fit cache


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread inside the block (restored after).

    The batches here are small: a second thread gains little and, on a busy machine, its
    spin-waiting cost 7x the CPU time. One thread also fixes the float summation order, so a
    result does not depend on the machine's core count.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def body_fingerprint(body) -> str:
    """Short hash of a body model's template and shape space (fits are body specific)."""
    h = hashlib.sha256()
    for t in (body.v_template, body.smpl.shapedirs, body.J_regressor):
        h.update(np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32).tobytes())
    return h.hexdigest()[:12]


_FIT_ARRAYS = ("global_orient", "body_pose", "transl", "frame_index", "joint_error_mm",
               "limb_error_mm", "bone_error_deg")  # fmt: skip


def _save_fits(path: Path, fits: Sequence[MocapFit]) -> None:
    from s2m_model.util.files import save_npz_atomic

    arrays: dict[str, np.ndarray] = {
        "names": np.array([f.name for f in fits]),
        "counts": np.array([f.num_frames for f in fits], dtype=np.int64),
        "betas": np.stack([f.betas for f in fits]),
        "source_format": np.array([f.source_format for f in fits]),
        "fps": np.array([f.fps for f in fits]),
        "source_fps": np.array([f.source_fps for f in fits]),
        "subsample": np.array([f.subsample for f in fits], dtype=np.int64),
        "source_frames": np.array([f.source_frames for f in fits], dtype=np.int64),
        "per_joint_error_mm": np.stack([f.per_joint_error_mm for f in fits]),
        "mapped_joints": np.array(fits[0].mapped_joints),
    }
    for key in _FIT_ARRAYS:
        arrays[key] = np.concatenate([getattr(f, key) for f in fits])
    save_npz_atomic(path, arrays)


def _load_fits(path: Path) -> dict[str, MocapFit]:
    from s2m_model.util.files import load_npz

    a = load_npz(path)
    bounds = np.cumsum([0, *a["counts"].tolist()])
    out = {}
    for i, name in enumerate(a["names"].tolist()):
        sl = slice(int(bounds[i]), int(bounds[i + 1]))
        out[name] = MocapFit(
            name=name, betas=a["betas"][i], source_format=str(a["source_format"][i]),
            fps=float(a["fps"][i]), source_fps=float(a["source_fps"][i]),
            subsample=int(a["subsample"][i]), source_frames=int(a["source_frames"][i]),
            per_joint_error_mm=a["per_joint_error_mm"][i],
            mapped_joints=tuple(a["mapped_joints"].tolist()),
            **{k: a[k][sl] for k in _FIT_ARRAYS},
        )  # fmt: skip
    return out


def fit_cache_path(dataset: str, body, subsample: int | None, refine_steps: int) -> Path:
    """``<cache>/mocap-fits/v<FIT_VERSION>/<dataset>-<body>-<hash>-s<step>-r<steps>.npz``."""
    from s2m_model.util.files import cache_dir

    step = "auto" if subsample is None else str(subsample)
    return (
        cache_dir() / "mocap-fits" / f"v{FIT_VERSION}"
        / f"{dataset}-{body.name}-{body_fingerprint(body)}-s{step}-r{refine_steps}.npz"
    )  # fmt: skip


def fit_clips(
    refs: Sequence[ClipRef],
    body,
    *,
    subsample: int | None = None,
    refine_steps: int = DEFAULT_REFINE_STEPS,
    cache: bool = True,
    batch_frames: int = 4096,
    progress: Callable[[int], None] | None = None,
) -> dict[str, MocapFit]:
    """Fits of the clips ``refs`` by name, from the cache or fitted now (and cached).

    A dataset (``bandai-1``, ``bandai-2``, ``cmu``) is fitted and cached as a whole the first
    time any of its clips is asked for (one streaming pass over an archive; ~``batch_frames``
    fitted frames per batch), so later calls for other splits are instant.
    ``progress(n)`` is called with the number of clips just fitted.
    """
    wanted: dict[str, list[ClipRef]] = {}
    for ref in refs:
        wanted.setdefault(ref.dataset, []).append(ref)
    out: dict[str, MocapFit] = {}
    for dataset, ds_refs in wanted.items():
        path = fit_cache_path(dataset, body, subsample, refine_steps)
        fits: dict[str, MocapFit] | None = None
        if cache and path.is_file():
            try:
                fits = _load_fits(path)
            except (ValueError, KeyError) as exc:
                log.warning("ignoring a damaged fit cache %s (%s)", path, exc)
        if fits is None or any(r.name not in fits for r in ds_refs):
            # Fit the whole dataset: its clips come from one archive pass anyway.
            all_refs = [
                r for r in list_clips(Path(ds_refs[0].source).parents[1], [dataset])
                if r.dataset == dataset
            ]
            known = {r.name for r in all_refs}
            all_refs += [r for r in ds_refs if r.name not in known]
            fits = _fit_refs(all_refs, body, subsample, refine_steps, batch_frames, progress)
            if cache:
                _save_fits(path, list(fits.values()))
        missing = [r.name for r in ds_refs if r.name not in fits]
        if missing:
            raise ValueError(f"no fit for clips {missing[:5]}")
        out.update({r.name: fits[r.name] for r in ds_refs})
    return out


def _fit_refs(refs, body, subsample, refine_steps, batch_frames, progress) -> dict[str, MocapFit]:
    t0 = time.perf_counter()
    fits: dict[str, MocapFit] = {}
    batch: list[tuple[ClipRef, Motion]] = []
    frames = 0

    def flush() -> None:
        nonlocal frames
        by_fmt: dict[str | None, list[tuple[ClipRef, Motion]]] = {}
        for ref, m in batch:
            by_fmt.setdefault(m.format, []).append((ref, m))
        for fmt, items in by_fmt.items():
            if fmt is None:
                raise ValueError(f"{items[0][1].source}: not a Bandai or CMU skeleton")
            with single_thread():
                result = fit_motions(
                    [m for _, m in items], body, names=[r.name for r, _ in items],
                    subsample=subsample, refine_steps=refine_steps,
                )  # fmt: skip
            fits.update({f.name: f for f in result})
        if progress is not None:
            progress(len(batch))
        batch.clear()
        frames = 0

    for ref, motion in iter_motions(refs):
        batch.append((ref, motion))
        frames += -(-motion.num_frames // (subsample or auto_subsample(motion.fps)))
        if frames >= batch_frames:
            flush()
    if batch:
        flush()
    log.info("fitted %d clips in %.1f s", len(fits), time.perf_counter() - t0)
    return {r.name: fits[r.name] for r in refs if r.name in fits}


# ------------------------------------------------------------------------------ report


def _stats(values: np.ndarray) -> dict[str, float]:
    return {"mean": round(float(values.mean()), 2), "max": round(float(values.max()), 2)}


def write_fit_report(
    out: str | os.PathLike[str],
    shared_data_dir: str | os.PathLike[str],
    datasets: Sequence[str] = KNOWN_DATASETS,
    *,
    body_name: str = "s2m-free",
    subsample: int | None = None,
    refine_steps: int = DEFAULT_REFINE_STEPS,
) -> dict:
    """Fit (or load cached fits of) every clip of ``datasets``; write ``fit_report.json`` and
    ``fit_report.png`` into ``out``. Returns the per-dataset summary.

    Per clip: frames, fitted frames, split, and mean/max of ``joint_error_mm``,
    ``limb_error_mm`` and ``bone_error_deg`` over its fitted frames. Per dataset: the same over
    all fitted frames, the per-joint mean error, and the fitting time (0 when cached).
    """
    from s2m_model.body import load_body_model

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    body = load_body_model(body_name)
    refs = list_clips(shared_data_dir, datasets)
    clips, summary = [], {}
    for ds in datasets:
        ds_refs = [r for r in refs if r.dataset == ds]
        if not ds_refs:
            continue
        t0 = time.perf_counter()
        fits = fit_clips(ds_refs, body, subsample=subsample, refine_steps=refine_steps)
        seconds = time.perf_counter() - t0
        for r in ds_refs:
            f = fits[r.name]
            clips.append({
                "name": r.name, "dataset": ds, "split": r.split,
                "frames": f.source_frames, "fitted_frames": f.num_frames,
                "joint_error_mm": _stats(f.joint_error_mm),
                "limb_error_mm": _stats(f.limb_error_mm),
                "bone_error_deg": _stats(f.bone_error_deg),
            })  # fmt: skip
        all_fits = [fits[r.name] for r in ds_refs]
        per_clip = np.array([f.joint_error_mm.mean() for f in all_fits])
        per_clip_limb = np.array([f.limb_error_mm.mean() for f in all_fits])
        summary[ds] = {
            "clips": len(ds_refs),
            "fitted_frames": int(sum(f.num_frames for f in all_fits)),
            "joint_error_mm": _stats(np.concatenate([f.joint_error_mm for f in all_fits])),
            "limb_error_mm": _stats(np.concatenate([f.limb_error_mm for f in all_fits])),
            "bone_error_deg": _stats(np.concatenate([f.bone_error_deg for f in all_fits])),
            "worst_clip_joint_error_mm": round(float(per_clip.max()), 2),
            "worst_clip_limb_error_mm": round(float(per_clip_limb.max()), 2),
            "per_joint_error_mm": dict(zip(
                all_fits[0].mapped_joints,
                np.round(np.mean([f.per_joint_error_mm for f in all_fits], 0), 1).tolist(),
                strict=True,
            )),
            "fit_seconds": round(seconds, 1),
            "splits": {s: sum(r.split == s for r in ds_refs) for s in SPLITS
                       if any(r.split == s for r in ds_refs)},
        }  # fmt: skip
    report = {"fit_version": FIT_VERSION, "body": body_name, "refine_steps": refine_steps,
              "subsample": subsample or "auto", "datasets": summary, "clips": clips}  # fmt: skip
    (out / "fit_report.json").write_text(json.dumps(report, indent=1) + "\n")
    _plot_report(out / "fit_report.png", clips, list(summary))
    return summary


def _plot_report(path: Path, clips: list[dict], datasets: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ("joint_error_mm", "limb_error_mm", "bone_error_deg")
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, key in zip(axes, keys, strict=True):
        for ds in datasets:
            vals = [c[key]["mean"] for c in clips if c["dataset"] == ds]
            ax.hist(vals, bins=30, alpha=0.6, label=f"{ds} ({len(vals)})")
        ax.set_xlabel(f"per-clip mean {key.replace('_', ' ')}")
        ax.set_ylabel("clips")
        ax.legend(fontsize=8)
    fig.suptitle("s2m mocap -> body fit errors")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
