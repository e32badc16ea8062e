"""Fit to the image evidence: a few Levenberg-Marquardt steps on keypoints, mask and priors.

Starting from DIK's rotations (and SR's betas), per person we minimise

    sum_k rho(|pi(p_k) - u_k| / s_2d) * c_k       2D keypoints, confidence c_k, robust (Cauchy)
  + sum_j |(P_j - P_root) - (Y_j - Y_root)|^2 / s_3d^2   root-relative lifted 3D skeleton
  + w_mask * (1 - softIoU(rendered, mask))        silhouette (optional)
  + sum_i |log(L_i L0_i^T)|^2 / s_pose_i^2        local rotations stay near DIK's
  + |beta - beta0|^2 / s_beta^2 + |t - t0|^2 / s_t^2

over all 24 rotations, the translation and the betas (85 parameters). The 3D term is
root-relative and the translation is held by its prior: depth stays the front end's job, the
fit corrects what the image sees (limb directions, endpoints, the outline).

Jacobians of the points are analytic (:class:`~s2m_model.refine.points.PointModel`); the
robust term is handled by iteratively re-weighted least squares, the silhouette as one scalar
residual ``sqrt(w_mask (1 - IoU))`` whose gradient comes from autograd through
:mod:`s2m_model.refine.silhouette` (one backward pass per iteration). Rotation steps are
world-frame turns of each joint's subtree (the state is the world rotations, so no step loops
over the tree). A step is kept only if it
lowers the cost (per person); the fit stops when the relative decrease falls below ``tol``
(``converged``) or after ``iterations``. Stopping at the cap while the cost still falls is the
normal case at the pipeline's small budget (2 iterations); what went wrong is ``failed``: a
non-finite result, no step that lowered a cost there was something to gain on, or a 2D
reprojection error that ended more than ``worse_px`` above the start. Units: metres, radians,
image pixels; camera frame x right, y down, z forward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import roma
import torch

from s2m_model.camera import Camera, project_points
from s2m_model.eval.metrics import silhouette_iou
from s2m_model.skeletons import get_format
from s2m_model.smpl_layout import NUM_BETAS, NUM_JOINTS, PARENTS, world_from_local

from .endpoints import REFINED
from .points import PointModel, PosedPoints, skew
from .silhouette import (
    box_grid_coords,
    front_faces,
    posed_subset,
    reduce_mesh,
    soft_iou_loss,
    soft_silhouette,
)

__all__ = ["FitConfig", "FitResult", "ImageFitter"]

NP = NUM_JOINTS * 3 + 3 + NUM_BETAS  # parameters per person: turns, translation, betas
#: A promised cost decrease below this (sigma^2 units: a thousandth of one keypoint at one
#: sigma) is float noise; a fit that cannot realise it is at its minimum, not ``failed``.
_GAIN_FLOOR = 1e-3


@dataclass(frozen=True)
class FitConfig:
    """Weights (as standard deviations) and iteration control of :class:`ImageFitter`.

    Attributes:
        iterations: LM iteration cap.
        tol: stop once a step lowers the cost by less than this fraction.
        sigma_2d: keypoint noise as a fraction of the person's box height.
        robust: Cauchy scale in units of ``sigma_2d`` (residuals beyond it lose weight).
        sigma_3d: lifted-skeleton noise (metres, root-relative). 0.10: the front ends' own
            3D errors are 65-120 mm PA-MPJPE; at 0.05 the skeleton term outweighed the image
            and 2 iterations raised the 2D error on the demo clip (docs/refine.md).
        sigma_pose: spread of the local rotations around DIK's solved ones (radians; the
            prior measures ``sin(angle)``, i.e. the angle up to ~30 deg, saturating at 90).
        sigma_pose_default: the same for joints DIK left at rest (hands, feet, ...).
        sigma_root: the same for the root orientation.
        sigma_beta: spread of betas around the start (SR / the track's estimate).
        sigma_transl: spread of the translation (metres) around the start.
        mask_weight: weight of ``1 - IoU`` against the other terms (which are in sigma^2).
        mask_sigma: silhouette edge softness (grid cells).
        min_confidence: keypoints below it are ignored.
        changed_deg: a rotation that moved more than this is marked REFINED.
        worse_px: a fit whose mean keypoint reprojection error ends more than this many pixels
            above the start's is ``failed`` (the 3D term or the priors pulled the body off the
            image evidence).
    """

    iterations: int = 4
    tol: float = 1e-2
    sigma_2d: float = 0.02
    robust: float = 3.0
    sigma_3d: float = 0.10
    sigma_pose: float = 0.25
    sigma_pose_default: float = 0.5
    sigma_root: float = 1.0
    sigma_beta: float = 0.5
    sigma_transl: float = 0.05
    mask_weight: float = 20.0
    mask_sigma: float = 0.5
    min_confidence: float = 0.3
    changed_deg: float = 1.0
    worse_px: float = 1.0

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")
        for name in ("sigma_2d", "robust", "sigma_3d", "sigma_pose", "sigma_pose_default",
                     "sigma_root", "sigma_beta", "sigma_transl", "mask_sigma"):  # fmt: skip
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.mask_weight < 0 or self.tol < 0 or not self.worse_px >= 0:
            raise ValueError("mask_weight, tol and worse_px must be >= 0")


@dataclass
class FitResult:
    """Refined parameters for B people, and how the fit went.

    Attributes:
        rotmats: (B,24,3,3) local rotations; :attr:`global_orient` (B,3) and :attr:`body_pose`
            (B,23,3) are their axis-angle (radians), converted on first use.
        transl: (B,3) metres; betas: (B,10).
        status: (B,24) int8, REFINED where the fit turned a rotation by > ``changed_deg``.
        converged: (B,) bool, the cost stopped improving before the iteration cap (False at
            the cap is normal for a small ``iterations``: see ``failed``).
        failed: (B,) bool, the fit went wrong: the result or its cost is not finite; or no
            step lowered the cost although the first step promised a decrease of more than
            ``tol`` of it (and more than float noise; the start kept); or ``reproj_px``
            ended more than ``worse_px`` above ``reproj_px_start``.
        iterations: (B,) int, LM iterations run.
        cost_start, cost: (B,) total cost before / after (sigma^2 units).
        reproj_px_start, reproj_px: (B,) mean keypoint reprojection error (pixels) over the
            used keypoints, before / after (NaN if none).
        iou_start, iou: (B,) IoU of the rendered silhouette (coverage > 0.5, reduced mesh)
            with the mask (> 0.5), before / after (NaN without a mask).
    """

    rotmats: torch.Tensor
    transl: torch.Tensor
    betas: torch.Tensor
    status: torch.Tensor
    converged: torch.Tensor
    failed: torch.Tensor
    iterations: torch.Tensor
    cost_start: torch.Tensor
    cost: torch.Tensor
    reproj_px_start: torch.Tensor
    reproj_px: torch.Tensor
    iou_start: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    iou: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    _rotvec: torch.Tensor | None = field(default=None, init=False, repr=False, compare=False)

    def _axis_angle(self) -> torch.Tensor:
        # The pipeline and the Refiner use only ``rotmats``: no conversion unless asked for.
        if self._rotvec is None:
            self._rotvec = roma.rotmat_to_rotvec(self.rotmats)
        return self._rotvec

    @property
    def global_orient(self) -> torch.Tensor:
        """(B,3) axis-angle root orientation (radians)."""
        return self._axis_angle()[:, 0]

    @property
    def body_pose(self) -> torch.Tensor:
        """(B,23,3) axis-angle local rotations of joints 1..23 (radians)."""
        return self._axis_angle()[:, 1:]


def _intrinsics(camera, batch: int, dtype, device) -> torch.Tensor:
    if isinstance(camera, Camera):
        k = torch.tensor(camera.intrinsics, dtype=dtype, device=device)
    else:
        k = torch.as_tensor(camera, dtype=dtype, device=device)
    if k.shape == (4,):
        k = k.expand(batch, 4)
    if k.shape != (batch, 4):
        raise ValueError(f"camera must be a Camera, (4,) or ({batch},4) intrinsics")
    return k


def _rodrigues(w: torch.Tensor) -> torch.Tensor:
    """(...,3,3) rotation matrices of rotation vectors (...,3): fewer ops than a quaternion
    round trip, which matters at batch 1 (series form near zero)."""
    theta2 = (w * w).sum(-1, keepdim=True)[..., None]
    small = theta2 < 1e-8
    # sqrt only of safe values: a where() after an inf gradient still gives NaN.
    safe = torch.where(small, torch.ones_like(theta2), theta2).sqrt()
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(safe) / safe)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(safe)) / (safe * safe))
    k = skew(w)
    return torch.eye(3, dtype=w.dtype, device=w.device) + a * k + b * (k @ k)


def _vee_sin(r: torch.Tensor) -> torch.Tensor:
    """(...,3) ``sin(angle) * axis`` of rotations (...,3,3): the rotation vector to first order
    (exact direction, saturating at 90 deg); a cheap log map for the priors."""
    return 0.5 * torch.stack(
        [r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0], r[..., 1, 0] - r[..., 0, 1]], -1
    )


_PARENT_IDX = [max(p, 0) for p in PARENTS[1:]]


def _local_of(world: torch.Tensor) -> torch.Tensor:
    """(B,24,3,3) local rotations of world rotations (root: its world rotation)."""
    eye = torch.eye(3, dtype=world.dtype, device=world.device).expand(world.shape[0], 1, 3, 3)
    parent = torch.cat([eye, world[:, _PARENT_IDX]], 1)
    return parent.transpose(-1, -2) @ world


def _apply(world: torch.Tensor, d_rot: torch.Tensor, ancestors: torch.Tensor) -> torch.Tensor:
    """World rotations after world-frame subtree turns d_rot (B,24,3) (radians): joint j turns
    by the sum of its own and its ancestors' turns (first-order composition, no tree loop)."""
    return _rodrigues(ancestors @ d_rot) @ world


def _where(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample select: ``a`` where ``mask`` (B,), else ``b``."""
    return torch.where(mask.reshape(-1, *([1] * (a.ndim - 1))), a, b)


def _fields(pp: PosedPoints) -> tuple[torch.Tensor, ...]:
    return (pp.points, pp.world, pp.joints, pp.d_rot, pp.d_beta)


class ImageFitter:
    """Fits bodies to 2D keypoints (+ lifted 3D skeleton, + silhouette). See the module doc.

    Args:
        body: the :class:`~s2m_model.body.BodyModel`.
        fmt2d: keypoint format (``"coco17"``, ``"blazepose33"``, ...).
        fmt3d: lifted-skeleton format, or None for no 3D term.
        config: :class:`FitConfig`.
        regressor2d / regressor3d: (K,V) vertex regressors to use instead of the body's fixed
            ones (e.g. :meth:`AdaptiveRegressor.dense`).
        mask_vertices: vertex count of the reduced mesh rendered for the silhouette term.
        dtype: computation dtype (float32 for speed).
    """

    def __init__(
        self,
        body,
        fmt2d: str = "coco17",
        fmt3d: str | None = "h36m17",
        config: FitConfig | None = None,
        regressor2d: torch.Tensor | None = None,
        regressor3d: torch.Tensor | None = None,
        mask_vertices: int = 1000,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.body, self.config, self.dtype = body, config or FitConfig(), dtype
        self.fmt2d = get_format(fmt2d)
        self.fmt3d = get_format(fmt3d) if fmt3d is not None else None
        reg2 = body.regressor(self.fmt2d.name) if regressor2d is None else regressor2d
        regs = [reg2.to(body.dtype)]
        if self.fmt3d is not None:
            reg3 = body.regressor(self.fmt3d.name) if regressor3d is None else regressor3d
            regs.append(reg3.to(body.dtype))
        self.k2 = self.fmt2d.num_joints
        self.points = PointModel(body, torch.cat(regs), dtype).to(body.device)
        self.mask_vertices = mask_vertices
        self._mesh = None

    @property
    def mesh(self):
        if self._mesh is None:
            self._mesh = reduce_mesh(self.body.v_template.cpu().numpy(), self.body.faces,
                                     self.mask_vertices)  # fmt: skip
        return self._mesh

    # -- the pieces of the cost ---------------------------------------------------------------
    def _residuals(self, pp, obs, jacobian: bool):
        """Robust-weighted data residuals and (optionally) their Jacobians (B,R,NP)."""
        cfg, k2 = self.config, self.k2
        batch = pp.points.shape[0]
        p2 = pp.points[:, :k2]
        uv = project_points(p2, obs["k"])
        r2 = (uv - obs["uv"]) / obs["s2d"][:, None, None]  # (B,K,2) in sigma
        norm = r2.norm(dim=-1)
        c = cfg.robust
        rho = c * c * torch.log1p((norm / c) ** 2) * obs["w2"]  # Cauchy cost per keypoint
        irls = obs["w2"] / (1.0 + (norm / c) ** 2)  # IRLS weight
        cost = rho.sum(-1)
        out = {"r2": r2, "irls": irls}
        if self.fmt3d is not None and obs.get("y3") is not None:
            p3 = pp.points[:, k2:]
            root = self.fmt3d.root
            rel = (p3 - p3[:, root : root + 1]) - obs["y3"]
            r3 = rel * obs["w3"][..., None] / self.config.sigma_3d
            cost = cost + (r3**2).sum((1, 2))
            out["r3"] = r3
        if not jacobian:
            return cost, out
        # d uv / d p: pinhole derivative (B,K,2,3).
        z = p2[..., 2].clamp(min=1e-6)
        fx, fy = obs["k"][:, None, 0], obs["k"][:, None, 1]
        zero = torch.zeros_like(z)
        duv = torch.stack(
            [fx / z, zero, -fx * p2[..., 0] / z**2, zero, fy / z, -fy * p2[..., 1] / z**2], -1
        ).reshape(batch, k2, 2, 3)
        d_p = torch.cat(
            [pp.d_rot.flatten(-2), torch.eye(3, dtype=z.dtype).expand(batch, pp.points.shape[1],
             3, 3), pp.d_beta], -1)  # fmt: skip  # (B,K,3,NP)
        j2 = (duv @ d_p[:, :k2]) / obs["s2d"][:, None, None, None]  # (B,K,2,NP)
        out["j2"] = j2
        if "r3" in out:
            d3 = d_p[:, k2:]
            root = self.fmt3d.root
            out["j3"] = (d3 - d3[:, root : root + 1]) * (
                obs["w3"][..., None, None] / self.config.sigma_3d
            )
        return cost, out

    def _prior(self, world, trans, betas, start):
        """Prior residuals (B,24,3), (B,3), (B,10) in sigma and their cost (B,)."""
        rel = _vee_sin(_local_of(world) @ start["local"].transpose(-1, -2))
        r_rot = rel / start["sigma_rot"][..., None]
        r_t = (trans - start["transl"]) / self.config.sigma_transl
        r_b = (betas - start["betas"]) / self.config.sigma_beta
        cost = (r_rot**2).sum((1, 2)) + (r_t**2).sum(-1) + (r_b**2).sum(-1)
        return r_rot, r_t, r_b, cost

    def _render(self, world, trans, betas, obs, d=None) -> torch.Tensor:
        """(B,H,W) soft silhouette on the mask grid for world rotations (B,24,3,3); with ``d``
        (B,NP) requiring grad, differentiable in the step ``d``."""
        if d is not None:
            turns = d[:, : NUM_JOINTS * 3].reshape(-1, NUM_JOINTS, 3)
            world = _apply(world, turns, self.points.subtree.T)
            trans = trans + d[:, NUM_JOINTS * 3 : NUM_JOINTS * 3 + 3]
            betas = betas + d[:, NUM_JOINTS * 3 + 3 :]
        local = _local_of(world)
        mesh = self.mesh
        verts = posed_subset(self.body, mesh.keep, betas, local, trans)
        size = tuple(obs["mask"].shape[-2:])
        coords = box_grid_coords(verts, obs["k"], obs["box"], size)
        front = front_faces(verts, mesh.faces)  # a closed mesh's outline: front faces suffice
        return soft_silhouette(coords, mesh.faces, size, sigma=self.config.mask_sigma,
                               face_mask=front)  # fmt: skip

    def _mask_loss(self, world, trans, betas, obs, d=None) -> torch.Tensor:
        """(B,) ``1 - soft IoU`` of the rendered silhouette with the mask."""
        return soft_iou_loss(self._render(world, trans, betas, obs, d), obs["mask"])

    def _hard_iou(self, world, trans, betas, obs) -> torch.Tensor:
        """(B,) IoU of the rendered silhouette (> 0.5) with the mask (> 0.5)."""
        sil = self._render(world, trans, betas, obs)
        return silhouette_iou(sil > 0.5, obs["mask"] > 0.5, reduction="sample").to(sil.dtype)

    # -- the fit ------------------------------------------------------------------------------
    def fit(
        self,
        rotmats: torch.Tensor,
        transl: torch.Tensor,
        keypoints: torch.Tensor,
        camera,
        *,
        betas: torch.Tensor | None = None,
        confidence: torch.Tensor | None = None,
        skeleton3d: torch.Tensor | None = None,
        solved: torch.Tensor | None = None,
        status: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        box: torch.Tensor | None = None,
    ) -> FitResult:
        """Refine B people.

        Args:
            rotmats: (B,24,3,3) local rotations to start from (DIK's, maybe PR-refined).
            transl: (B,3) start translation (metres, camera frame).
            keypoints: (B,K,2) pixels in ``fmt2d``; NaN = missing.
            camera: :class:`~s2m_model.camera.Camera` or (4,)/(B,4) ``fx, fy, cx, cy``.
            betas: (B,10) start shape (default zeros).
            confidence: (B,K) keypoint confidences in [0,1].
            skeleton3d: (B,J,3) lifted skeleton in ``fmt3d`` (metres; only its root-relative
                shape is used); NaN = missing.
            solved: (B,24) bool, DIK's solved joints (tighter pose prior there).
            status: (B,24) int8 incoming statuses (see :mod:`.endpoints`).
            mask: (B,H,W) person mask on a grid over ``box`` (:func:`.silhouette.mask_to_grid`).
            box: (B,4) ``x0, y0, x1, y1`` image pixels of the mask grid (and the keypoint
                scale); default: the keypoints' bounding box.
        """
        cfg, dtype = self.config, self.dtype
        batch = rotmats.shape[0]
        device = rotmats.device
        if rotmats.shape != (batch, NUM_JOINTS, 3, 3) or transl.shape != (batch, 3):
            raise ValueError("rotmats must be (B,24,3,3) and transl (B,3)")
        if keypoints.shape != (batch, self.k2, 2):
            raise ValueError(
                f"keypoints must be ({batch},{self.k2},2) for {self.fmt2d.name}, "
                f"got {tuple(keypoints.shape)}"
            )
        if batch == 0:  # a frame with nobody placed: nothing to fit (reshapes need B > 0)
            return self._empty_result(rotmats, transl, betas, status)
        local = rotmats.to(dtype).clone()
        world = world_from_local(local)  # the fit's state: world rotations
        trans = transl.to(dtype).clone()
        betas = (torch.zeros(batch, NUM_BETAS) if betas is None else betas).to(dtype).clone()
        obs = self._observations(keypoints, confidence, camera, skeleton3d, mask, box, batch)
        sigma_rot = torch.full((batch, NUM_JOINTS), cfg.sigma_pose_default, dtype=dtype)
        if solved is not None:
            sigma_rot = torch.where(solved.to(device), cfg.sigma_pose, sigma_rot)
        sigma_rot[:, 0] = cfg.sigma_root
        start = {"local": local.clone(), "transl": trans.clone(), "betas": betas.clone(),
                 "sigma_rot": sigma_rot}  # fmt: skip
        use_mask = obs.get("mask") is not None and cfg.mask_weight > 0
        # Without the silhouette nothing needs autograd: inference mode has less per-op cost.
        no_grad = torch.no_grad if use_mask else torch.inference_mode
        eye3 = torch.eye(3, dtype=dtype).expand(batch, 1, 3, 3)
        t0 = NUM_JOINTS * 3
        # The priors' Gauss-Newton Hessian is constant and diagonal (see _normal_equations).
        prior_hess = torch.diag_embed(torch.cat([
            (1.0 / sigma_rot**2).repeat_interleave(3, dim=1),
            torch.full((batch, 3), 1.0 / cfg.sigma_transl**2, dtype=dtype),
            torch.full((batch, NUM_BETAS), 1.0 / cfg.sigma_beta**2, dtype=dtype),
        ], 1))  # fmt: skip
        parent_idx = [max(p, 0) for p in PARENTS[1:]]

        ancestors = self.points.subtree.T

        def evaluate(loc, tr, be):
            """Points with Jacobians, and the total cost (B,), for world rotations ``loc``."""
            pp = self.points.evaluate_world(loc, be, tr, jacobian=True)
            cost, res = self._residuals(pp, obs, jacobian=True)
            prior = self._prior(loc, tr, be, start)
            cost = cost + prior[3]
            if use_mask:
                with torch.no_grad():
                    cost = cost + cfg.mask_weight * self._mask_loss(loc, tr, be, obs)
            return pp, res, prior, cost

        with no_grad():
            pp, res, prior, cost = evaluate(world, trans, betas)
            cost_start = cost.clone()
            reproj_start = self._reproj_px(pp, obs)
            iou_start = self._hard_iou(world, trans, betas, obs) if use_mask else None
        damping = torch.full((batch,), 1e-3, dtype=dtype)
        done = torch.zeros(batch, dtype=torch.bool)
        iters = torch.zeros(batch, dtype=torch.long)
        eye = torch.eye(NP, dtype=dtype)
        gain = None  # (B,) the first step's predicted cost decrease (GN model)
        for _ in range(cfg.iterations):
            active = ~done
            if not bool(active.any()):
                break
            iters += active.long()
            with no_grad():
                hess, grad = self._normal_equations(res, prior, pp, sigma_rot, eye3, parent_idx)
                hess = hess + prior_hess
            if use_mask:
                # The silhouette as one scalar residual r = sqrt(w (1 - IoU)): GN rank-1 term.
                d = torch.zeros(batch, NP, dtype=dtype, requires_grad=True)
                loss = self._mask_loss(world, trans, betas, obs, d)
                (g_mask,) = torch.autograd.grad(loss.sum(), d)
                with torch.no_grad():
                    r_m = (cfg.mask_weight * loss.detach()).clamp(min=1e-12).sqrt()
                    j_m = cfg.mask_weight * g_mask / (2 * r_m[:, None])
                    hess = hess + j_m[:, :, None] * j_m[:, None, :]
                    grad = grad + r_m[:, None] * j_m
            with no_grad():
                diag = torch.diagonal(hess, dim1=-2, dim2=-1)
                lhs = hess + damping[:, None, None] * (torch.diag_embed(diag) + 1e-6 * eye)
                step, info = torch.linalg.solve_ex(lhs, -grad)
                step = torch.where((info == 0)[:, None], torch.nan_to_num(step), 0.0)
                if gain is None:
                    # |r + J s|^2 - |r|^2 = 2 s.g + s^T H s (g = J^T r, H = J^T J); a failed
                    # solve promises everything (a start it cannot leave is a failure).
                    model = (
                        2.0 * (step * grad).sum(-1)
                        + (step[:, None] @ hess @ step[..., None])[:, 0, 0]
                    )
                    gain = torch.where(info == 0, -model, math.inf)
                new_world = _apply(world, step[:, :t0].reshape(batch, NUM_JOINTS, 3), ancestors)
                new_trans = trans + step[:, t0 : t0 + 3]
                new_betas = betas + step[:, t0 + 3 :]
                new = evaluate(new_world, new_trans, new_betas)
                better = active & torch.isfinite(new[3]) & (new[3] < cost)
                small = (cost - new[3]) <= cfg.tol * cost
                if bool(better.all()):  # the usual case: no per-sample merging
                    world, trans, betas = new_world, new_trans, new_betas
                    pp, res, prior, cost = new
                elif bool(better.any()):
                    world = _where(better, new_world, world)
                    trans = _where(better, new_trans, trans)
                    betas = _where(better, new_betas, betas)
                    pp = PosedPoints(*(_where(better, a, b) for a, b in zip(
                        _fields(new[0]), _fields(pp), strict=True)))  # fmt: skip
                    res = {k: _where(better, new[1][k], v) for k, v in res.items()}
                    prior = tuple(_where(better, a, b) for a, b in zip(new[2], prior, strict=True))
                    cost = _where(better, new[3], cost)
                done = done | (better & small) | (active & (damping > 1e6))
                damping = torch.where(better, damping * 0.3, damping * 10.0).clamp(1e-7, 1e7)
        if gain is None:  # no step was tried (no iterations, or nobody): nothing was promised
            gain = torch.zeros(batch, dtype=dtype)
        return self._result(world, trans, betas, start, status, done, iters, cost_start, cost,
                            reproj_start, obs, iou_start, use_mask, pp, gain)  # fmt: skip

    def _normal_equations(self, res, prior, pp, sigma_rot, eye3, parent_idx):
        """Gauss-Newton ``J^T J`` (B,NP,NP) of the data and ``J^T r`` (B,NP) of data and
        priors."""
        batch = pp.points.shape[0]
        irls = res["irls"].sqrt()
        jr = (res["j2"] * irls[..., None, None]).flatten(1, 2)
        rr = (res["r2"] * irls[..., None]).flatten(1, 2)
        if "r3" in res:
            jr = torch.cat([jr, res["j3"].flatten(1, 2)], 1)
            rr = torch.cat([rr, res["r3"].flatten(1, 2)], 1)
        hess = jr.transpose(1, 2) @ jr
        grad = (jr.transpose(1, 2) @ rr[..., None])[..., 0]
        # Pose prior: d log(L L0^T) / d turn ~ parent^T / sigma per joint, so its J^T J is
        # diagonal (1 / sigma^2: parent is a rotation; added by the caller) and
        # J^T r = parent r / sigma.
        r_rot, r_t, r_b, _ = prior
        parent = torch.cat([eye3, pp.world[:, parent_idx]], 1)
        g_rot = (parent @ r_rot[..., None])[..., 0] / sigma_rot[..., None]
        grad = grad + torch.cat(
            [g_rot.reshape(batch, -1), r_t / self.config.sigma_transl,
             r_b / self.config.sigma_beta], 1,
        )  # fmt: skip
        return hess, grad

    def _observations(self, keypoints, confidence, camera, skeleton3d, mask, box, batch):
        cfg, dtype = self.config, self.dtype
        uv = keypoints.to(dtype)
        valid = torch.isfinite(uv).all(-1)
        conf = torch.ones(batch, self.k2, dtype=dtype)
        if confidence is not None:
            if confidence.shape != (batch, self.k2):
                raise ValueError(f"confidence must be ({batch},{self.k2})")
            conf = torch.nan_to_num(confidence.to(dtype), nan=0.0).clamp(0, 1)
            valid = valid & (conf >= cfg.min_confidence)
        uv = torch.where(valid[..., None], uv, 0.0)
        if box is None:
            big = torch.finfo(dtype).max
            lo = torch.where(valid[..., None], uv, big).amin(1)
            hi = torch.where(valid[..., None], uv, -big).amax(1)
            box = torch.cat([lo, hi], -1)
            box = torch.where(valid.any(1)[:, None], box, torch.tensor([0.0, 0.0, 1.0, 1.0]))
        box = box.to(dtype)
        if box.shape != (batch, 4):
            raise ValueError(f"box must be ({batch},4)")
        height = (box[:, 3] - box[:, 1]).clamp(min=1.0)
        obs = {"uv": uv, "w2": torch.where(valid, conf, 0.0), "valid2": valid,
               "k": _intrinsics(camera, batch, dtype, uv.device),
               "s2d": cfg.sigma_2d * height, "box": box}  # fmt: skip
        if skeleton3d is not None and self.fmt3d is not None:
            y = skeleton3d.to(dtype)
            if y.shape != (batch, self.fmt3d.num_joints, 3):
                raise ValueError(f"skeleton3d must be ({batch},{self.fmt3d.num_joints},3)")
            root = self.fmt3d.root
            ok = torch.isfinite(y).all(-1) & torch.isfinite(y[:, root]).all(-1, keepdim=True)
            y = torch.where(ok[..., None], y, 0.0)
            obs["y3"] = y - y[:, root : root + 1]
            obs["w3"] = ok.to(dtype)
        if mask is not None:
            m = torch.as_tensor(mask, dtype=dtype)
            if m.ndim != 3 or m.shape[0] != batch:
                raise ValueError(f"mask must be ({batch},H,W)")
            obs["mask"] = m
        return obs

    def _reproj_px(self, pp: PosedPoints, obs) -> torch.Tensor:
        uv = project_points(pp.points[:, : self.k2], obs["k"])
        err = (uv - obs["uv"]).norm(dim=-1)
        valid = obs["valid2"]
        n = valid.sum(-1)
        return torch.where(n > 0, (err * valid).sum(-1) / n.clamp(min=1), float("nan"))

    def _empty_result(self, rotmats, transl, betas, status) -> FitResult:
        """The result of fitting nobody: every field with batch size 0."""
        dtype = self.dtype
        none = torch.zeros(0, dtype=dtype)
        return FitResult(
            rotmats=rotmats.to(dtype), transl=transl.to(dtype),
            betas=torch.zeros(0, NUM_BETAS, dtype=dtype) if betas is None else betas.to(dtype),
            status=torch.zeros(0, NUM_JOINTS, dtype=torch.int8) if status is None
            else status.to(torch.int8),
            converged=torch.zeros(0, dtype=torch.bool), failed=torch.zeros(0, dtype=torch.bool),
            iterations=torch.zeros(0, dtype=torch.long), cost_start=none, cost=none,
            reproj_px_start=none, reproj_px=none, iou_start=none, iou=none,
        )  # fmt: skip

    def _result(self, world, trans, betas, start, status, done, iters, cost_start, cost,
                reproj_start, obs, iou_start, use_mask, pp, gain) -> FitResult:  # fmt: skip
        batch = world.shape[0]
        cfg = self.config
        local = _local_of(world)
        with torch.no_grad():
            reproj = self._reproj_px(pp, obs)
            iou = self._hard_iou(world, trans, betas, obs) if use_mask else None
        finite = (torch.isfinite(local).flatten(1).all(1) & torch.isfinite(trans).all(1)
                  & torch.isfinite(betas).all(1) & torch.isfinite(cost))  # fmt: skip
        stuck = ~(cost < cost_start) & (gain > torch.clamp(cfg.tol * cost_start, min=_GAIN_FLOOR))
        worse = reproj > reproj_start + cfg.worse_px  # NaN (no keypoints): False
        failed = ~finite | stuck | worse
        moved = roma.rotmat_geodesic_distance(local, start["local"]) > math.radians(
            self.config.changed_deg
        )
        if status is None:
            status = torch.zeros(batch, NUM_JOINTS, dtype=torch.int8)
        status = torch.where(moved, REFINED, status.to(torch.int8)).to(torch.int8)
        nan = torch.full((batch,), float("nan"), dtype=self.dtype)
        return FitResult(
            rotmats=local, transl=trans, betas=betas, status=status, converged=done,
            failed=failed, iterations=iters,
            cost_start=cost_start, cost=cost, reproj_px_start=reproj_start, reproj_px=reproj,
            iou_start=iou_start if iou_start is not None else nan,
            iou=iou if iou is not None else nan,
        )  # fmt: skip
