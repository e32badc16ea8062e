"""Shape refinement from bone lengths: 3D skeleton -> SMPL betas, closed form per frame.

The body's rest skeleton is linear in the shape coefficients,
``J(beta) = J0 + sum_k beta_k dJ_k`` (a vertex regressor applied to ``v_template + shapedirs
beta``), so a rest bone vector is ``d_b(beta) = d0_b + D_b beta`` and its length ``|d_b(beta)|``
is nearly linear in beta. Posing does not change the length of a rigid bone, so the lengths
measured on a posed skeleton are what the shape must reproduce. We minimise

    sum_b  w_b (|d_b(beta)| - l_b)^2 / length_sigma^2  +  |beta|^2 / beta_sigma^2

by a few Gauss-Newton steps (each a 10x10 linear solve, batched), starting from beta = 0 (or a
given start). The Tikhonov prior keeps the directions that bone lengths cannot see (girth) at
the mean shape, and makes the covariance ``(J^T W J / s^2 + I / s_beta^2)^-1`` a usable
per-frame uncertainty for :class:`s2m_model.refine.shape_track.ShapeTrack`.

Bones: the format's own tree edges plus the hip pair. For formats with a vertex regressor
(``h36m17``, ``coco17``, ``blazepose33``, ``mpi_inf_3dhp17``) the rest points are the body's
T-pose in that format (same definition as the input's joints); for the mocap formats they are
the SMPL joints named by ``smpl_map`` (unmapped joints are skipped: a bone then spans to the
nearest mapped ancestor). A bone whose ends are a rigid SMPL pair (parent-child or siblings
under ``smpl_map``) has weight 1; others (across the spine, the collar, face points) change
length with the pose and get ``nonrigid_weight``.

Lengths are metres; betas are SMPL shape coefficients (~N(0,1) on the shipped bodies).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch

from s2m_model.body.regressors import RECIPES
from s2m_model.skeletons import get_format
from s2m_model.smpl_layout import JOINT_INDEX, NUM_BETAS, PARENTS

__all__ = ["BoneSet", "BoneShapeSolver", "ShapeEstimate", "bone_set", "shape_from_bones"]

#: Bones of the four limbs on each side: the lengths the issue scores ("long bones").
LONG_BONES: tuple[tuple[str, str], ...] = (
    ("left_hip", "left_knee"), ("left_knee", "left_ankle"),
    ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
    ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
    ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
)  # fmt: skip


def _weighted_gram(jac: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``J^T diag(w) J`` per batch: (B,N,L), (B,N) -> (B,L,L). A matmul rather than a
    3-operand einsum, whose contraction-path search (opt_einsum) cost more than the product."""
    return (jac * w[..., None]).transpose(1, 2) @ jac


@dataclass(frozen=True)
class BoneSet:
    """Bones of one format used for shape fitting.

    Attributes:
        fmt: format name.
        pairs: ``(N,2)`` joint indices ``(a, b)`` into the format; the bone is ``b - a``.
        weights: ``(N,)`` weight per bone (1 for rigid bones).
        rigid: ``(N,)`` whether the bone's length is pose-invariant on the body.
        names: ``N`` labels ``"a->b"``.
    """

    fmt: str
    pairs: tuple[tuple[int, int], ...]
    weights: tuple[float, ...]
    rigid: tuple[bool, ...]
    names: tuple[str, ...]

    def long_bone_indices(self) -> list[int]:
        """Indices (into ``pairs``) of the limb long bones, where the format has them."""
        fmt = get_format(self.fmt)
        smpl = {a: b for a, b in fmt.smpl_map.items()}
        out = []
        for k, (a, b) in enumerate(self.pairs):
            ends = (smpl.get(fmt.joint_names[a]), smpl.get(fmt.joint_names[b]))
            if ends in LONG_BONES or ends[::-1] in LONG_BONES:
                out.append(k)
        return out


def _rigid_smpl_pair(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return False
    ia, ib = JOINT_INDEX[a], JOINT_INDEX[b]
    return PARENTS[ib] == ia or PARENTS[ia] == ib or (PARENTS[ia] == PARENTS[ib] >= 0)


def bone_set(fmt, nonrigid_weight: float = 0.3) -> BoneSet:
    """The bones of format ``fmt`` (name or object) used by :class:`BoneShapeSolver`."""
    fmt = get_format(fmt) if isinstance(fmt, str) else fmt
    if not 0.0 <= nonrigid_weight <= 1.0:
        raise ValueError(f"nonrigid_weight must be in [0, 1], got {nonrigid_weight}")
    has_regressor = fmt.name == "smpl24" or fmt.name in RECIPES
    mapped = dict(fmt.smpl_map)
    pairs: list[tuple[int, int]] = []
    for parent, child in fmt.bones:
        if not has_regressor:
            if fmt.joint_names[child] not in mapped:
                continue
            while parent >= 0 and fmt.joint_names[parent] not in mapped:
                parent = fmt.parents[parent]
            if parent < 0:
                continue
        pairs.append((parent, child))
    names = fmt.joint_names
    inverse = {v: k for k, v in mapped.items()}
    if "left_hip" in inverse and "right_hip" in inverse:
        hips = (fmt.index(inverse["right_hip"]), fmt.index(inverse["left_hip"]))
        if hips not in pairs and hips[::-1] not in pairs:
            pairs.append(hips)
    rigid = tuple(_rigid_smpl_pair(mapped.get(names[a]), mapped.get(names[b])) for a, b in pairs)
    weights = tuple(1.0 if r else nonrigid_weight for r in rigid)
    return BoneSet(
        fmt=fmt.name,
        pairs=tuple(pairs),
        weights=weights,
        rigid=rigid,
        names=tuple(f"{names[a]}->{names[b]}" for a, b in pairs),
    )


def rest_basis(body, fmt) -> tuple[torch.Tensor, torch.Tensor]:
    """``(J0 (J,3), dJ (J,3,10))``: the body's T-pose in format ``fmt`` is ``J0 + dJ @ beta``.

    Taken from the body's (linear) rest-point function, so it matches ``body.rest_points``
    exactly; mocap formats use the SMPL joints their ``smpl_map`` names (zeros elsewhere).
    """
    fmt = get_format(fmt) if isinstance(fmt, str) else fmt
    if fmt.name == "smpl24" or fmt.name in RECIPES:
        return body.rest_basis(fmt.name)
    mean, dirs = body.rest_basis("smpl24")
    pts = mean.new_zeros(fmt.num_joints, 3, NUM_BETAS + 1)
    for joint, target in fmt.smpl_map.items():
        pts[fmt.index(joint), :, 0] = mean[JOINT_INDEX[target]]
        pts[fmt.index(joint), :, 1:] = dirs[JOINT_INDEX[target]]
    return pts[..., 0], pts[..., 1:]


@dataclass
class ShapeEstimate:
    """Result of :class:`BoneShapeSolver` for a batch of B skeletons with N bones.

    Attributes:
        betas: ``(B,10)`` shape coefficients.
        covariance: ``(B,10,10)`` posterior covariance of ``betas`` (Gauss-Newton / Laplace).
        lengths: ``(B,N)`` measured bone lengths (metres; NaN where an end is missing).
        fitted: ``(B,N)`` rest bone lengths of the fitted shape (metres).
        residual: ``(B,)`` weighted RMS of ``fitted - lengths`` over the used bones (metres).
        used: ``(B,)`` number of bones that entered the fit (0: betas are the prior mean).
    """

    betas: torch.Tensor
    covariance: torch.Tensor
    lengths: torch.Tensor
    fitted: torch.Tensor
    residual: torch.Tensor
    used: torch.Tensor


class BoneShapeSolver:
    """Betas from the bone lengths of skeletons in one format, for one body (precomputed basis).

    Args:
        body: the :class:`~s2m_model.body.BodyModel` whose shape space is fitted.
        fmt: format name or object of the input skeletons.
        bones: which bones to use (default :func:`bone_set`).
        length_sigma: expected error of one measured bone length (metres): the data weight.
        beta_sigma: prior standard deviation of each beta (the Tikhonov weight).
        iterations: Gauss-Newton steps (3 reach float precision on the shipped bodies: the
            lengths are near-linear in beta).
    """

    def __init__(
        self,
        body,
        fmt,
        bones: BoneSet | None = None,
        length_sigma: float = 0.01,
        beta_sigma: float = 1.0,
        iterations: int = 3,
    ) -> None:
        self.fmt = get_format(fmt) if isinstance(fmt, str) else fmt
        if not (length_sigma > 0 and beta_sigma > 0):
            raise ValueError("length_sigma and beta_sigma must be > 0")
        if iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {iterations}")
        self.bones = bones if bones is not None else bone_set(self.fmt)
        if self.bones.fmt != self.fmt.name:
            raise ValueError(f"bone set is for {self.bones.fmt!r}, solver for {self.fmt.name!r}")
        if not self.bones.pairs:
            raise ValueError(f"format {self.fmt.name!r} has no bones usable for shape fitting")
        self.length_sigma, self.beta_sigma, self.iterations = length_sigma, beta_sigma, iterations
        mean, dirs = rest_basis(body, self.fmt)
        idx = torch.tensor(self.bones.pairs, device=mean.device)
        self._a, self._b = idx[:, 0], idx[:, 1]
        self.d0 = mean[self._b] - mean[self._a]  # (N,3)
        self.dd = dirs[self._b] - dirs[self._a]  # (N,3,10)
        self.weights = torch.tensor(self.bones.weights, dtype=mean.dtype, device=mean.device)

    def rest_lengths(self, betas: torch.Tensor) -> torch.Tensor:
        """(B,N) rest bone lengths (metres) for betas (B,10)."""
        d = self.d0.to(betas) + torch.einsum("ncl,bl->bnc", self.dd.to(betas), betas)
        return torch.linalg.vector_norm(d, dim=-1)

    def __call__(
        self,
        joints: torch.Tensor,
        confidence: torch.Tensor | None = None,
        betas_init: torch.Tensor | None = None,
        min_confidence: float = 0.3,
    ) -> ShapeEstimate:
        """Fit betas to ``joints`` (B,J,3) or (J,3), metres, any frame; NaN = missing joint.

        ``confidence`` (B,J) in [0,1] scales each bone by its ends' smaller confidence; joints
        below ``min_confidence`` are missing. Returns a :class:`ShapeEstimate`.
        """
        if not isinstance(joints, torch.Tensor):
            raise ValueError(f"joints must be a torch tensor, got {type(joints).__name__}")
        joints = joints[None] if joints.ndim == 2 else joints
        self.fmt.validate_joints(joints, finite=False)
        batch, dtype = joints.shape[0], joints.dtype
        valid = torch.isfinite(joints).all(-1)
        conf = torch.ones_like(joints[..., 0])
        if confidence is not None:
            if confidence.shape != joints.shape[:2]:
                raise ValueError(
                    f"confidence must be {tuple(joints.shape[:2])}, got {tuple(confidence.shape)}"
                )
            conf = torch.nan_to_num(confidence.to(dtype), nan=0.0).clamp(0.0, 1.0)
            valid = valid & (conf >= min_confidence)
        bone = joints[:, self._b] - joints[:, self._a]
        lengths = torch.linalg.vector_norm(bone, dim=-1)
        ok = valid[:, self._a] & valid[:, self._b]
        w = torch.where(ok, torch.minimum(conf[:, self._a], conf[:, self._b]), 0.0)
        w = w * self.weights.to(dtype) / self.length_sigma**2
        target = torch.where(ok, lengths, 0.0)
        d0, dd = self.d0.to(dtype), self.dd.to(dtype)
        prior = torch.eye(NUM_BETAS, dtype=dtype, device=joints.device) / self.beta_sigma**2
        if betas_init is None:
            betas = joints.new_zeros(batch, NUM_BETAS)
        else:
            if betas_init.shape != (batch, NUM_BETAS):
                raise ValueError(f"betas_init must be ({batch},10), got {tuple(betas_init.shape)}")
            betas = betas_init.to(dtype).clone()
        for _ in range(self.iterations):
            d = d0 + torch.einsum("ncl,bl->bnc", dd, betas)
            length = torch.linalg.vector_norm(d, dim=-1).clamp(min=1e-9)
            jac = torch.einsum("bnc,ncl->bnl", d / length[..., None], dd)  # (B,N,10)
            resid = length - target
            hess = _weighted_gram(jac, w) + prior
            grad = torch.einsum("bnl,bn->bl", jac, w * resid) + betas @ prior
            betas = betas - torch.linalg.solve(hess, grad[..., None])[..., 0]
        fitted = self.rest_lengths(betas)
        d = d0 + torch.einsum("ncl,bl->bnc", dd, betas)
        jac = torch.einsum("bnc,ncl->bnl", d / fitted.clamp(min=1e-9)[..., None], dd)
        cov = torch.linalg.inv(_weighted_gram(jac, w) + prior)
        wsum = (w * self.length_sigma**2).sum(-1)
        resid = (w * self.length_sigma**2 * (fitted - target) ** 2).sum(-1)
        rms = torch.where(wsum > 0, (resid / wsum.clamp(min=1e-12)).sqrt(), 0.0)
        return ShapeEstimate(
            betas=betas,
            covariance=cov,
            lengths=torch.where(ok, lengths, float("nan")),
            fitted=fitted,
            residual=rms,
            used=ok.sum(-1),
        )


_SOLVERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def shape_from_bones(joints: torch.Tensor, fmt, body, **kwargs) -> ShapeEstimate:
    """One-call form of :class:`BoneShapeSolver` (the solver is cached per body and format).

    ``kwargs`` go to the call (``confidence``, ``betas_init``, ``min_confidence``); use the
    class directly to change the bone set or the weights.
    """
    name = fmt if isinstance(fmt, str) else fmt.name
    cache = _SOLVERS.setdefault(body, {})
    if name not in cache:
        cache[name] = BoneShapeSolver(body, fmt)
    return cache[name](joints, **kwargs)
