"""Scoring skeleton -> body methods against ground truth: the maths behind ``s2m eval``.

Methods (all output SMPL-layout parameters that pose the same body model):

- ``dik`` — :func:`s2m_model.dik.solve` on the ground-truth 3D joints of ``--format``.
- ``swing`` — :func:`s2m_model.ik_baselines.swing_only_ik` (DIK without the hinge prior).
- ``iterative`` — :func:`s2m_model.ik_baselines.iterative_ik` (optimisation, to convergence).
- ``pipeline`` — the shipped lifter on the ground-truth 2D ``coco17`` keypoints (visibility as
  confidence) and the camera, then DIK: the 3D part of the s2m pipeline without the detector.
- (``s2m eval --method all`` runs every method above that is available, in one table.)

Metrics (written as ``metrics.json``/``metrics.md`` by :mod:`s2m_model.eval.runner`):
``mpjpe``/``pa_mpjpe`` on all joints of ``--format`` (root = the format's pelvis, or the hips'
midpoint), ``pve``/``pa_pve`` over the mesh (each mesh aligned at its SMPL pelvis joint), all in
mm; ``joint_angle`` in radians (3DPW definition: mean angle of ``R_pred^T R_gt`` over the
*global* rotations of pelvis, hips, knees, shoulders, elbows, scored where the method solved
them) and ``joint_angle_deg``; ``pck`` (% of joints < 150 mm, root-aligned) and ``auc``
(0-150 mm); ``ms_per_sample`` (wall time of the method alone).

Skeleton definitions: the primary metrics regress the mesh joints into the ground truth's own
definition (``--format``: H36M-17 GT -> the H36M-17 regressor, BlazePose GT -> the BlazePose-33
regressor). Beside them, ``limb12_mpjpe_<regressor>`` / ``limb12_pa_mpjpe_<regressor>`` score
the 12 limb points every definition has (shoulders, elbows, wrists, hips, knees, ankles;
root = hips' midpoint) through each regressor of :data:`REGRESSORS`, against the same GT: the
gap shows what scoring in another definition costs (a BlazePose wrist is not an H36M wrist).
:func:`scoring_definition` states which one is primary; it goes into the reports.

Shape: by default each method gets the ground-truth ``betas`` (``--betas gt``), so the scores
isolate the pose solution; ``--betas zero`` uses the mean shape.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

#: The scored methods. Importing this module stays torch-free (``s2m --help`` reads METHODS):
#: torch is imported inside the functions.
METHODS = ("dik", "swing", "iterative", "pipeline")

#: Mesh -> joint regressors the limb-point metrics are reported through.
REGRESSORS = ("h36m17", "blazepose33")

#: The limb points every joint definition shares, left then right; hips at positions 6, 7.
LIMB12 = tuple(f"{side}_{part}" for part in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")
               for side in ("left", "right"))  # fmt: skip


def _canonical(name: str) -> str:
    """Joint name in one spelling: ``L_Wrist`` and ``left_wrist`` -> ``left_wrist``."""
    low = name.lower()
    for short, long in (("l_", "left_"), ("r_", "right_")):
        if low.startswith(short):
            return long + low[len(short) :]
    return low


def limb12_indices(fmt: str) -> list[int] | None:
    """Indices of :data:`LIMB12` in format ``fmt``'s joints, or None if it lacks one of them."""
    from s2m_model.skeletons import get_format

    names = [_canonical(n) for n in get_format(fmt).joint_names]
    if not all(point in names for point in LIMB12):
        return None
    return [names.index(point) for point in LIMB12]


def scoring_definition(fmt: str) -> dict[str, object]:
    """What the reports state about skeleton definitions for ground truth of format ``fmt``."""
    cross = list(_regressible()) if limb12_indices(fmt) is not None else []
    return {
        "gt_definition": fmt,
        "primary": f"mesh joints regressed to {fmt} (the ground truth's own definition)",
        "primary_metrics": ["mpjpe", "pa_mpjpe", "pck", "auc"],
        "limb12_regressors": cross,
        "limb12_points": list(LIMB12),
    }


def _regressible() -> tuple[str, ...]:
    """Regressors usable for the limb-point metrics (those naming all of :data:`LIMB12`)."""
    return tuple(r for r in REGRESSORS if limb12_indices(r) is not None)


def method_fn(name: str, body, fmt, optimizer: str, lifter_name: str) -> Callable:
    """(joints (B,J,3), betas (B,10), batch dict) -> DIKResult, for one method."""
    from s2m_model import dik, ik_baselines

    if name == "dik":
        return lambda joints, betas, _: dik.solve(joints, fmt, body, betas=betas)
    if name == "swing":
        return lambda joints, betas, _: ik_baselines.swing_only_ik(joints, fmt, body, betas=betas)
    if name == "iterative":
        return lambda joints, betas, _: ik_baselines.iterative_ik(
            joints, fmt, body, betas=betas, optimizer=optimizer
        )
    if name == "pipeline":
        import torch

        try:
            from s2m_model.lifter import load_lifter

            lifter = load_lifter(lifter_name, device=body.device)
        except (ImportError, FileNotFoundError, ValueError) as exc:
            raise RuntimeError(f"method 'pipeline' is not available yet: {exc}") from None

        def run(joints, betas, batch):
            kp = np.asarray(batch["keypoints2d_coco17"], dtype=np.float32)
            cam = np.asarray(batch["camera"], dtype=np.float32)
            # Samples the lifter cannot normalise stay an all-zero skeleton: scored as failures.
            ok = np.asarray(lifter.usable(kp), dtype=bool).reshape(-1)
            lifted = torch.zeros(len(kp), 17, 3, dtype=joints.dtype, device=joints.device)
            if ok.any():
                lifted[torch.from_numpy(ok)] = torch.as_tensor(
                    lifter.lift(kp[ok], camera=cam[ok])
                ).to(lifted)
            return dik.solve(lifted, "h36m17", body, betas=betas)

        return run
    raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")


class _Tensors:
    """``t("key")``: a batch array as a tensor on the body's device and dtype."""

    def __init__(self, batch: dict[str, np.ndarray], device, dtype) -> None:
        self.batch, self.device, self.dtype = batch, device, dtype

    def __call__(self, key: str) -> torch.Tensor:
        import torch

        return torch.as_tensor(self.batch[key], device=self.device, dtype=self.dtype)


def global_rotmats(global_orient: torch.Tensor, body_pose: torch.Tensor) -> torch.Tensor:
    """(B,24,3,3) world rotations of the SMPL joints from axis-angle ``(B,3)``, ``(B,23,3)``."""
    import roma
    import torch

    from s2m_model.smpl_layout import world_from_local

    local = roma.rotvec_to_rotmat(torch.cat([global_orient[:, None], body_pose], 1))
    return world_from_local(local)


def score_batch(
    result,
    joints: torch.Tensor,
    fmt: str,
    body,
    betas: torch.Tensor,
    gt: dict[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """Per-element errors of one batch of results (see the module docstring for definitions).

    Args:
        result: a :class:`~s2m_model.dik.DIKResult` (B samples) in the frame of ``joints``.
        joints: (B,J,3) ground-truth joints of format ``fmt`` (metres).
        body: the body model; ``betas`` (B,10) the shape the method used.
        gt: ground-truth ``betas`` (B,10), ``global_orient`` (B,3), ``body_pose`` (B,23,3),
            ``transl`` (B,3) tensors on the body's device and dtype.

    Returns:
        ``mpjpe``, ``pa_mpjpe``, ``pck`` (B,J); ``pve``, ``pa_pve``, ``auc`` (B,);
        ``joint_angle`` (B,9) radians, NaN where the method did not solve the joint;
        ``limb12_mpjpe_<reg>``, ``limb12_pa_mpjpe_<reg>`` (B,12) for each regressor of
        :data:`REGRESSORS` when ``fmt`` has the 12 limb points.
    """
    import torch

    from s2m_model.dik import format_roles
    from s2m_model.eval import metrics as M
    from s2m_model.skeletons import get_format

    root = list(format_roles(get_format(fmt)).get("pelvis", ()))
    if not root:
        raise ValueError(f"format '{fmt}' has no pelvis or hips to root-align on")
    dtype = body.dtype
    with torch.no_grad():
        gt_out = body(**gt)
        pred = body(
            betas=betas, global_orient=result.global_orient.to(dtype),
            body_pose=result.body_pose.to(dtype), transl=result.transl.to(dtype),
        )  # fmt: skip
        pred_joints = pred.joints if fmt == "smpl24" else body.regress(pred.vertices, fmt)
        out = {
            "mpjpe": M.mpjpe(pred_joints, joints, root, reduction="none"),
            "pa_mpjpe": M.pa_mpjpe(pred_joints, joints, reduction="none"),
            "pve": M.pve(pred.vertices, gt_out.vertices, pred_root=pred.joints[:, 0],
                         gt_root=gt_out.joints[:, 0], reduction="sample"),
            "pa_pve": M.pa_pve(pred.vertices, gt_out.vertices, reduction="sample"),
            "joint_angle": M.joint_angle_error(
                global_rotmats(result.global_orient.to(dtype), result.body_pose.to(dtype)),
                global_rotmats(gt["global_orient"], gt["body_pose"]),
                joints=M.PW3D_ANGLE_JOINTS, valid=result.solved, reduction="none",
            ),
            "pck": M.pck(pred_joints, joints, 150.0, root=root, reduction="none"),
            "auc": M.auc(pred_joints, joints, root=root, reduction="sample"),
        }  # fmt: skip
        gt_idx = limb12_indices(fmt)
        if gt_idx is not None:
            gt_limbs = joints[:, gt_idx]
            for reg in _regressible():
                via = pred_joints if reg == fmt else body.regress(pred.vertices, reg)
                limbs = via[:, limb12_indices(reg)]
                out[f"limb12_mpjpe_{reg}"] = M.mpjpe(limbs, gt_limbs, [6, 7], reduction="none")
                out[f"limb12_pa_mpjpe_{reg}"] = M.pa_mpjpe(limbs, gt_limbs, reduction="none")
        return out


def summarise(scores: dict[str, torch.Tensor]) -> dict[str, float]:
    """Means of :func:`score_batch` outputs (NaN entries = not scored), plus degrees."""
    import torch

    out = {}
    for name, values in scores.items():
        values = values[torch.isfinite(values)].double()
        out[name] = float(values.mean()) if values.numel() else math.nan
    if "joint_angle" in out:
        out["joint_angle_deg"] = math.degrees(out["joint_angle"])
    return out


def evaluate_method(
    method: str,
    gt: dict[str, np.ndarray],
    body,
    fmt: str = "h36m17",
    *,
    batch_size: int = 128,
    betas_mode: str = "gt",
    optimizer: str = "lm",
    lifter: str = "default",
    progress: bool = True,
) -> tuple[dict[str, float], dict[str, float], np.ndarray]:
    """Run ``method`` on every sample of ``gt`` and score it.

    Args:
        method: ``"dik"``, ``"swing"``, ``"iterative"`` or ``"pipeline"``.
        gt: arrays from :func:`s2m_model.eval.runner.load_ground_truth` (camera frame,
            metres, radians).
        body: the :class:`~s2m_model.body.BodyModel` the ground truth was posed with.
        fmt: input skeleton format (``joints3d_<fmt>``).

    Returns:
        ``(metrics, per_joint_mm, per_sample_mpjpe_mm)``; see the module docstring.
    """
    import torch
    from tqdm import tqdm

    from s2m_model.skeletons import get_format

    skel = get_format(fmt)
    fn = method_fn(method, body, skel, optimizer, lifter)
    dtype, device = body.dtype, body.device
    n = len(gt["betas"])
    parts: dict[str, list[torch.Tensor]] = {}
    seconds = 0.0
    batches = range(0, n, batch_size)
    for start in tqdm(batches, desc=f"eval {method}", unit="batch", disable=not progress):
        sl = slice(start, min(start + batch_size, n))
        batch = {k: v[sl] for k, v in gt.items() if k != "body"}
        t = _Tensors(batch, device, dtype)
        params = {k: t(k) for k in ("betas", "global_orient", "body_pose", "transl")}
        betas = params["betas"] if betas_mode == "gt" else torch.zeros_like(params["betas"])
        joints = t(f"joints3d_{fmt}")
        t0 = time.perf_counter()
        result = fn(joints, betas, batch)
        seconds += time.perf_counter() - t0
        for name, values in score_batch(result, joints, fmt, body, betas, params).items():
            parts.setdefault(name, []).append(values.cpu())
    scores = {k: torch.cat(v) for k, v in parts.items()}
    out = summarise(scores)
    out["num_samples"] = float(n)
    out["ms_per_sample"] = seconds / n * 1000.0
    per_joint_mm = scores["mpjpe"].double().mean(0)
    per_joint = {name: float(per_joint_mm[j]) for j, name in enumerate(skel.joint_names)}
    return out, per_joint, scores["mpjpe"].mean(-1).numpy()
