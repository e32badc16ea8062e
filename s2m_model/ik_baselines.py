"""Baselines for DIK: an iterative (optimisation) IK and the analytic IK without the hinge prior.

Both take the input of :func:`s2m_model.dik.solve` and return a :class:`~s2m_model.dik.DIKResult`,
so evaluation and benchmarks treat the three methods alike.

- :func:`iterative_ik` — Minimal-IK / SMPLify-style fitting without a learned prior: all 72 pose
  parameters and the translation are optimised (Levenberg-Marquardt per sample by default;
  L-BFGS or Adam on the batch) to minimise the squared joint error in the input's format, plus
  a small L2 prior on ``body_pose``; it runs until the objective stops improving (``tol``) or
  ``steps`` is reached. Joints come from :class:`JointModel`, exact and without the mesh.
- :func:`swing_only_ik` — DIK with every elbow/knee hinge replaced by two minimal swings (the
  swing half of HybrIK's swing-twist IK with zero twist): each limb bone gets the shortest
  rotation that aligns its rest direction with the target bone in the parent's frame, so twist
  is inherited from the parent. Root, spine, collars, neck/head, wrists and ankles are DIK's.
  Bone directions match DIK's exactly; only the limbs' twist differs.

Units: metres, radians. The input skeleton's frame is the output frame (as for DIK).
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import roma
import torch

from s2m_model import dik
from s2m_model.dik import DIKResult
from s2m_model.smpl_layout import NUM_BODY_JOINTS, NUM_JOINTS

#: Parameter vector of the iterative IK: [global_orient (3), body_pose (69), transl (3)];
#: ``x[..., :POSE]`` is SMPL's full 72-value axis-angle pose.
POSE = NUM_JOINTS * 3

__all__ = ["IterativeInfo", "JointModel", "iterative_ik", "joint_model", "swing_only_ik"]


def swing_only_ik(
    joints: torch.Tensor,
    fmt,
    body,
    betas: torch.Tensor | None = None,
    confidence: torch.Tensor | None = None,
    prev: DIKResult | None = None,
    min_confidence: float = 0.3,
) -> DIKResult:
    """Analytic IK without the hinge prior (same arguments and result as :func:`dik.solve`).

    Args:
        joints: (B,J,3) or (J,3) metres in format ``fmt``, any right-handed frame; NaN = missing.
        fmt: registered format name or object.
        body: :class:`~s2m_model.body.BodyModel` (its rest skeleton is the zero rotation).
        betas: (B,10) shape; zeros by default.
        confidence: (B,J) in [0,1]; joints below ``min_confidence`` count as missing.
        prev: accepted for signature parity and ignored (a swing needs no temporal fallback).

    Returns:
        :class:`~s2m_model.dik.DIKResult`; ``quality["degenerate"]`` flags zero-length bones.
    """
    del prev  # a swing needs no temporal fallback
    return dik.solve(
        joints,
        fmt,
        body,
        betas=betas,
        confidence=confidence,
        min_confidence=min_confidence,
        hinge_prior=False,
    )


# --------------------------------------------------------------------------------------------
# Iterative IK.
# --------------------------------------------------------------------------------------------
class JointModel(torch.nn.Module):
    """Pose parameters -> joints of one format, without building the mesh.

    Regressed joints are linear in the skinned vertices and skinning is linear in the bone
    transforms, so ``sum_v R_jv sum_k W_vk A_k v~_v = sum_k A_k (sum_v R_jv W_vk v~_v)``: the
    inner sums (template, shape and pose-corrective terms) are precomputed once per format, and
    a step costs O(J x 24) instead of O(V). The result equals
    ``body.regress(body(...).vertices, fmt)`` (``body(...).joints`` for ``smpl24``) to float
    precision; ``mode="mesh"`` computes exactly that, through the full mesh, for comparison.
    Hand-written because no library fuses skinning with a joint regressor.
    """

    def __init__(self, body, fmt, mode: str = "factored") -> None:
        super().__init__()
        if mode not in ("factored", "mesh"):
            raise ValueError(f"mode must be 'factored' or 'mesh', got {mode!r}")
        self.fmt_name = fmt if isinstance(fmt, str) else fmt.name
        self.mode = mode
        # A tuple keeps the body out of this module's children (``.to()`` must not convert it).
        self._body = (body,) if mode == "mesh" else ()
        self.register_buffer("parents", body.parents.clone())
        # The body's own rest-joint basis, so the rest skeleton is exactly body.rest_joints.
        j_mean, j_dirs = body.rest_basis("smpl24")
        self.register_buffer("j_mean", j_mean.clone())  # (24,3)
        self.register_buffer("j_dirs", j_dirs.clone())  # (24,3,10)
        if self.fmt_name == "smpl24" or mode == "mesh":
            return
        with torch.no_grad():
            full = body.regressor(self.fmt_name)
            idx = torch.nonzero(full.abs().sum(0) > 0)[:, 0]
            # rw[j,k,v] = R_jv W_vk over the vertices the regressor reads.
            rw = full[:, None, idx] * body.lbs_weights[idx].T[None]
            num_v = body.num_vertices
            posedirs = body.posedirs.reshape(-1, num_v, 3)[:, idx]
            self.register_buffer("m", rw.sum(-1))  # (J,24)
            self.register_buffer("p0", torch.einsum("jkv,vc->jkc", rw, body.v_template[idx]))
            self.register_buffer("s", torch.einsum("jkv,vcl->jkcl", rw, body.shapedirs[idx]))
            self.register_buffer("q", torch.einsum("jkv,pvc->jkcp", rw, posedirs))

    def forward(
        self, betas: torch.Tensor, pose: torch.Tensor, transl: torch.Tensor
    ) -> torch.Tensor:
        """(B,J,3) joints (metres) for betas (B,10), pose (B,72) axis-angle, transl (B,3)."""
        from smplx.lbs import batch_rigid_transform, batch_rodrigues

        batch = pose.shape[0]
        if self.mode == "mesh":
            # smplx's own skinning (what ``body(...)`` runs, minus its input checks, which
            # torch.func transforms cannot trace), in the body's dtype.
            from smplx.lbs import lbs

            body = self._body[0]
            dtype = pose.dtype
            verts, posed = lbs(
                betas.to(body.dtype), pose.to(body.dtype), body.v_template, body.shapedirs,
                body.posedirs, body.J_regressor, body.parents, body.lbs_weights,
            )  # fmt: skip
            if self.fmt_name == "smpl24":
                return posed.to(dtype) + transl[:, None]
            reg = body.regressor(self.fmt_name)
            return torch.einsum("jv,bvc->bjc", reg, verts).to(dtype) + transl[:, None]
        rot = batch_rodrigues(pose.reshape(-1, 3)).reshape(batch, NUM_JOINTS, 3, 3)
        rest = self.j_mean + torch.einsum("jcl,bl->bjc", self.j_dirs, betas)
        posed, rel = batch_rigid_transform(rot, rest, self.parents, dtype=pose.dtype)
        if self.fmt_name == "smpl24":
            return posed + transl[:, None]
        eye = torch.eye(3, dtype=pose.dtype, device=pose.device)
        feature = (rot[:, 1:] - eye).reshape(batch, -1)
        pts = (
            self.p0
            + torch.einsum("jkcl,bl->bjkc", self.s, betas)
            + torch.einsum("jkcp,bp->bjkc", self.q, feature)
        )
        out = torch.einsum("bkcd,bjkd->bjc", rel[:, :, :3, :3], pts)
        out = out + torch.einsum("bkc,jk->bjc", rel[:, :, :3, 3], self.m)
        return out + transl[:, None]


_MODELS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def joint_model(body, fmt, dtype: torch.dtype, device, mode: str = "factored") -> JointModel:
    """Cached :class:`JointModel` of ``body`` for ``fmt`` on ``dtype``/``device``."""
    name = fmt if isinstance(fmt, str) else fmt.name
    cache = _MODELS.setdefault(body, {})
    key = (name, dtype, str(device), mode)
    if key not in cache:
        cache[key] = JointModel(body, name, mode).to(device=device, dtype=dtype)
    return cache[key]


@dataclass
class IterativeInfo:
    """Convergence record of :func:`iterative_ik`.

    Attributes:
        steps: optimiser iterations taken (L-BFGS: iterations, Adam/LM: steps).
        converged: every sample met the tolerance before the step cap.
        final_loss: (B,) objective per sample (m^2 + prior).
        rmse: (B,) root-mean-square joint error over the valid joints, metres.
    """

    steps: int
    converged: bool
    final_loss: torch.Tensor
    rmse: torch.Tensor


def _root_init(target, rest, valid, torso_idx):
    """Rigid fit of the rest torso points onto the target torso: (B,3,3) R, (B,3) t."""
    w = valid[:, torso_idx].to(target.dtype)
    # Samples without >= 3 valid torso points keep the identity (weights uniform, fit unused).
    ok = w.sum(-1) >= 3
    w = torch.where(ok[:, None], w, torch.ones_like(w))
    R, _ = roma.rigid_points_registration(rest[:, torso_idx], target[:, torso_idx], weights=w)
    eye = torch.eye(3, dtype=R.dtype, device=R.device).expand_as(R)
    R = torch.where(ok[:, None, None], R, eye)
    wn = w / w.sum(-1, keepdim=True)
    centre_t = (wn[..., None] * target[:, torso_idx]).sum(1)
    centre_r = (wn[..., None] * rest[:, torso_idx]).sum(1)
    return R, centre_t - (R @ centre_r[..., None])[..., 0]


OPTIMIZERS = ("lm", "lbfgs", "adam")


def iterative_ik(
    joints: torch.Tensor,
    fmt,
    body,
    betas: torch.Tensor | None = None,
    confidence: torch.Tensor | None = None,
    prev: DIKResult | None = None,
    min_confidence: float = 0.3,
    *,
    optimizer: str = "lm",
    steps: int | None = None,
    lr: float | None = None,
    prior_weight: float = 1e-4,
    tol: float = 1e-4,
    init: str = "torso",
    model: str = "factored",
    return_info: bool = False,
) -> DIKResult | tuple[DIKResult, IterativeInfo]:
    """Fit all 72 pose parameters + translation to a skeleton by iterative optimisation.

    Objective per sample (samples are independent)::

        sum_j valid_j |joints_fmt(theta, t)_j - target_j|^2  +  prior_weight * |body_pose|^2

    in m^2 (joints of format ``fmt`` regressed from the posed mesh, or SMPL joints for
    ``smpl24``, via :class:`JointModel`) and rad^2. The L2 prior keeps unobserved joints
    (hands, feet, ...) at zero, as in Minimal-IK / SMPLify without a learned prior.

    Args:
        joints, fmt, body, betas, confidence, min_confidence: as :func:`dik.solve`.
        prev: a previous result to start from (warm start) instead of ``init``.
        optimizer: ``"lm"`` (default: Levenberg-Marquardt per sample, as Minimal-IK, the
            paper's baseline), ``"lbfgs"`` (torch L-BFGS, strong-Wolfe line search, on the
            batch-mean objective) or ``"adam"``.
        steps: iteration cap; default 100 (LM), 2000 (L-BFGS), 3000 (Adam).
        lr: Adam/L-BFGS step size; default 0.01 (Adam, decayed x0.999 per step), 1.0 (L-BFGS).
        prior_weight: weight of the L2 pose prior (per rad^2, against m^2 joint error).
        tol: convergence: stop once a step lowers the objective by less than ``tol`` times its
            value (LM: every sample, checked per step; L-BFGS and Adam: the batch mean, checked
            every 10 iterations / 50 steps).
        init: ``"torso"`` — zero body pose, root rotation and translation from a rigid fit of
            the rest torso points (hips, pelvis, shoulders, thorax) onto the target; ``"zero"`` —
            zero rotations, translation from the pelvis only.
        model: ``"factored"`` (default, exact and fast, see :class:`JointModel`) or ``"mesh"``
            (the same joints through the full mesh each evaluation: a naive implementation,
            for speed comparisons).
        return_info: also return :class:`IterativeInfo`.

    Returns:
        :class:`~s2m_model.dik.DIKResult` with every rotation marked ``solved`` for samples with
        any valid joint (the optimiser sets all of them), and optionally the convergence info.
    """
    fmt, joints, betas, valid = dik.validate_inputs(joints, fmt, betas, confidence, min_confidence)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if init not in ("torso", "zero"):
        raise ValueError(f"init must be 'torso' or 'zero', got {init!r}")
    if model not in ("factored", "mesh"):
        raise ValueError(f"model must be 'factored' or 'mesh', got {model!r}")
    steps = steps if steps is not None else {"lm": 100, "lbfgs": 2000, "adam": 3000}[optimizer]
    if steps < 1 or not math.isfinite(prior_weight) or prior_weight < 0 or not tol >= 0:
        raise ValueError("steps must be >= 1, prior_weight and tol finite numbers >= 0")
    batch, dtype, device = joints.shape[0], joints.dtype, joints.device
    jmodel = joint_model(body, fmt, dtype, device, model)
    body_betas = betas.to(dtype)
    target = torch.where(valid[..., None], joints, torch.zeros_like(joints)).detach()
    weight = valid.to(dtype)[..., None]
    x0 = _initial_params(target, valid, fmt, body, betas, prev, init)

    def data_residuals(x: torch.Tensor, b: torch.Tensor, tgt: torch.Tensor, w: torch.Tensor):
        """(...,J*3) weighted joint residuals (metres) of params x (...,75)."""
        return (w * (jmodel(b, x[..., :POSE], x[..., POSE:]) - tgt)).flatten(-2)

    def objective(x: torch.Tensor) -> torch.Tensor:
        data = data_residuals(x, body_betas, target, weight)
        return (data**2).sum(-1) + prior_weight * (x[..., 3:POSE] ** 2).sum(-1)

    if optimizer == "lm":
        prior = torch.zeros(x0.shape[-1], dtype=dtype, device=device)
        prior[3:POSE] = prior_weight
        x, steps_taken, converged = _levenberg_marquardt(
            x0, data_residuals, (body_betas, target, weight), prior, steps, tol
        )
    else:
        x, steps_taken, converged = _first_order(x0, objective, optimizer, steps, lr, tol)
    with torch.no_grad():
        final = objective(x)
        pred = jmodel(body_betas, x[:, :POSE], x[:, POSE:])
        count = valid.sum(1).clamp(min=1).to(dtype)
        rmse = ((weight * (pred - target) ** 2).sum((1, 2)) / count).sqrt()
    go, pose, tr = x[:, :3], x[:, 3:POSE].reshape(batch, NUM_BODY_JOINTS, 3), x[:, POSE:]
    rotmats = roma.rotvec_to_rotmat(x[:, :POSE].reshape(batch, NUM_JOINTS, 3))
    any_valid = valid.any(1)
    result = DIKResult(
        global_orient=go,
        body_pose=pose,
        solved=any_valid[:, None].expand(batch, NUM_JOINTS).clone(),
        transl=tr,
        quality={
            "degenerate": torch.zeros(batch, NUM_JOINTS, dtype=torch.bool, device=device),
            "missing": ~any_valid[:, None].expand(batch, NUM_JOINTS).clone(),
        },
        rotmats=rotmats,
    )
    if return_info:
        return result, IterativeInfo(steps_taken, converged, final, rmse)
    return result


def _initial_params(target, valid, fmt, body, betas, prev, init) -> torch.Tensor:
    """(B,75) start: [global_orient (3), body_pose (69), transl (3)]."""
    batch, dtype, device = target.shape[0], target.dtype, target.device
    if prev is not None:
        if prev.global_orient.shape[0] != batch:
            raise ValueError(f"prev has batch {prev.global_orient.shape[0]}, expected {batch}")
        parts = (prev.global_orient, prev.body_pose.reshape(batch, POSE - 3), prev.transl)
        return torch.cat([p.detach().to(device=device, dtype=dtype) for p in parts], 1)
    rest = dik.rest_points(body, fmt, betas.to(body.dtype)).to(dtype)
    j0 = body.rest_joints(betas.to(body.dtype)).to(dtype)[:, 0]
    roles = dik.format_roles(fmt)
    names = ("pelvis", "left_hip", "right_hip", "left_shoulder", "right_shoulder", "thorax")
    torso = sorted({i for n in names for i in roles.get(n, ())})
    if init == "torso" and len(torso) >= 3:
        R, t = _root_init(target, rest, valid, torso)
    else:
        R = torch.eye(3, dtype=dtype, device=device).expand(batch, 3, 3)
        pel = list(roles.get("pelvis", torso[:1] or [0]))
        ok = valid[:, pel].all(-1, keepdim=True)
        t = torch.where(ok, target[:, pel].mean(1) - rest[:, pel].mean(1), 0.0)
    # SMPL rotates about the rest root joint: shift so the rigid fit R x + t holds.
    transl = t + (R @ j0[..., None])[..., 0] - j0
    pose = torch.zeros(batch, POSE - 3, dtype=dtype, device=device)
    return torch.cat([roma.rotmat_to_rotvec(R), pose, transl], 1)


def _levenberg_marquardt(x, residuals, args, prior: torch.Tensor, steps: int, tol: float):
    """Batched LM on ``|residuals(x)|^2 + sum(prior * x^2)``; (B,P) params, (P,) prior.

    Every sample has its own damping and stops on its own; Jacobians are recomputed only for
    samples still running whose last step was accepted. The prior's Jacobian is diagonal, so
    only the data residuals go through autodiff (fewer rows for ``jacrev``).
    """
    from torch.func import jacrev, vmap

    def single(xi, *a):
        return residuals(xi[None], *(t[None] for t in a))[0]

    def total(r, x):
        return (r**2).sum(-1) + (prior * x**2).sum(-1)

    jac = vmap(jacrev(single))
    x = x.detach().clone()
    with torch.no_grad():
        r = residuals(x, *args)
    cost = total(r, x)
    batch, num_p = x.shape
    mu = torch.full_like(cost, 1e-3)
    done = torch.zeros(batch, dtype=torch.bool, device=x.device)
    stale = torch.ones_like(done)
    jm = x.new_zeros(batch, r.shape[-1], num_p)
    eye = torch.eye(num_p, dtype=x.dtype, device=x.device)
    step = 0
    for step in range(1, steps + 1):
        need = stale & ~done
        if bool(need.any()):
            jm[need] = jac(x[need], *(a[need] for a in args))
            stale &= ~need
        act = torch.nonzero(~done)[:, 0]
        with torch.no_grad():
            ja, xa, ra, ma = jm[act], x[act], r[act], mu[act]
            jtj = ja.mT @ ja + torch.diag(prior)
            grad = (ja.mT @ ra[..., None])[..., 0] + prior * xa
            # Marquardt scaling: damping proportional to the curvature of each parameter.
            damp = ma[:, None, None] * (jtj * eye + 1e-12 * eye)
            delta, info = torch.linalg.solve_ex(jtj + damp, -grad)
            x_new = xa + torch.nan_to_num(delta)
            r_new = residuals(x_new, *(a[act] for a in args))
            cost_new = total(r_new, x_new)
            better = torch.isfinite(cost_new) & (cost_new < cost[act]) & (info == 0)
            small = (cost[act] - cost_new) <= tol * cost[act]
            x[act] = torch.where(better[:, None], x_new, xa)
            r[act] = torch.where(better[:, None], r_new, ra)
            cost[act] = torch.where(better, cost_new, cost[act])
            done[act] = (better & small) | (ma > 1e8)
            stale[act] = better
            mu[act] = torch.where(better, ma * 0.3, ma * 10.0).clamp(1e-9, 1e9)
        if bool(done.all()):
            return x, step, True
    return x, step, False


def _first_order(x0, objective, optimizer: str, steps: int, lr, tol: float):
    """Adam or L-BFGS on the batch-mean objective; returns (params, iterations, converged)."""
    x = x0.clone().requires_grad_(True)
    prev_value = None
    if optimizer == "lbfgs":
        chunk = 10
        opt = torch.optim.LBFGS(
            [x], lr=lr or 1.0, max_iter=chunk, tolerance_grad=1e-12, tolerance_change=0.0,
            history_size=20, line_search_fn="strong_wolfe",
        )  # fmt: skip

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = objective(x).mean()
            loss.backward()
            return loss

        done = 0
        while done < steps:
            opt.step(closure)
            taken = int(opt.state[x]["n_iter"])
            with torch.no_grad():
                value = float(objective(x).mean())
            if prev_value is not None and prev_value - value <= tol * prev_value:
                return x.detach(), taken, True
            if taken == done:  # L-BFGS stalled (zero step): nothing left to gain
                return x.detach(), taken, True
            prev_value, done = value, taken
        return x.detach(), done, False
    opt = torch.optim.Adam([x], lr=lr or 0.01)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, 0.999)
    window = 50
    for step in range(1, steps + 1):
        opt.zero_grad()
        loss = objective(x).mean()
        loss.backward()
        opt.step()
        sched.step()
        if step % window == 0:
            value = float(loss.detach())
            if prev_value is not None and abs(prev_value - value) <= tol * prev_value:
                return x.detach(), step, True
            prev_value = value
    return x.detach(), steps, False
