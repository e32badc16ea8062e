"""Front ends scored on detector-in-the-loop data: each front end + DIK + body vs. exact GT.

Computation only (arrays in, metrics out; ``bench/frontends.py`` does the I/O). Each sample is a
render of a ground-truth body with the **real detector's** output stored beside it
(:mod:`s2m_model.data.detector_loop`). Samples where the detector found nobody are not scored
(every front end needs a detection); their share is reported as ``detected``.

Front ends (the pipeline's ``lifter`` setting, :mod:`s2m_model.pipeline.front_end`):

- ``s2m``: the s2m lifter on the detector's COCO-17 keypoints and the camera -> ``h36m17``.
- ``mediapipe-world``: the detector's 33 world landmarks -> ``blazepose33``.
- ``fused``: :class:`s2m_model.lifter.fused.FusedLifter` on both -> ``blazepose33``.

Each skeleton goes through :func:`s2m_model.dik.solve` (confidence as in the pipeline, betas 0
like the pipeline) and the body model; the mesh is then scored by
:func:`s2m_model.eval.scoring.score_batch` with its joints **regressed in each scoring format**
(``h36m17`` and ``blazepose33``): MPJPE / PA-MPJPE (mm), PVE (mm, pelvis-aligned), joint-angle
error (degrees). ``detector`` scores the world landmarks themselves (no DIK, no mesh) on the
BlazePose points, and ``<front end>/raw`` the front end's own skeleton in its format.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "FRONT_ENDS",
    "SCORE_FORMATS",
    "evaluate_frontends",
    "frontend_skeletons",
    "jitter",
    "reprojection_fraction",
]

FRONT_ENDS: tuple[str, ...] = ("s2m", "mediapipe-world", "fused")
SCORE_FORMATS: tuple[str, ...] = ("h36m17", "blazepose33")
REQUIRED = ("det_detected", "det_landmarks", "det_world", "det_keypoints2d_coco17", "camera",
            "betas", "global_orient", "body_pose", "transl")  # fmt: skip


def frontend_skeletons(
    name: str, arrays: Mapping[str, np.ndarray], idx: np.ndarray, models: Mapping[str, Any]
) -> tuple[torch.Tensor, str, torch.Tensor]:
    """3D skeletons of one front end for samples ``idx``.

    Args:
        name: one of :data:`FRONT_ENDS`.
        arrays: detector-in-the-loop arrays.
        models: ``{"s2m": Lifter, "fused": FusedLifter}`` (only the one ``name`` needs).

    Returns:
        ``(joints (B,J,3) float32 metres root-relative camera axes, format name, conf (B,J))``.
    """
    from s2m_model.pipeline.confidence import h36m_confidence

    lm = np.asarray(arrays["det_landmarks"][idx], np.float32)
    world = np.asarray(arrays["det_world"][idx], np.float32)
    cam = np.asarray(arrays["camera"][idx], np.float32)
    vis = torch.from_numpy(np.clip(lm[..., 3], 0.0, 1.0))
    if name == "mediapipe-world":
        return torch.from_numpy(world), "blazepose33", vis
    if name == "fused":
        return models["fused"].lift(lm, world, cam).cpu().float(), "blazepose33", vis
    if name == "s2m":
        kp = np.asarray(arrays["det_keypoints2d_coco17"][idx], np.float32)
        lifter = models["s2m"]
        ok = np.asarray(lifter.usable(kp), dtype=bool).reshape(-1)
        joints = torch.zeros(len(kp), 17, 3)
        if ok.any():  # people the lifter refuses stay all-zero skeletons: scored as failures
            joints[torch.from_numpy(ok)] = torch.as_tensor(
                lifter.lift(kp[ok], camera=cam[ok])).cpu().float()  # fmt: skip
        return joints, "h36m17", torch.from_numpy(h36m_confidence(kp[..., 2]))
    raise ValueError(f"unknown front end {name!r}; choose from {', '.join(FRONT_ENDS)}")


def _root_relative(joints: torch.Tensor, fmt: str) -> torch.Tensor:
    from s2m_model.dik import format_roles
    from s2m_model.skeletons import get_format

    root = list(format_roles(get_format(fmt)).get("pelvis", ()))
    return joints - joints[:, root].mean(1, keepdim=True)


def _points_scores(pred: torch.Tensor, gt: torch.Tensor, fmt: str) -> dict[str, torch.Tensor]:
    from s2m_model.eval import metrics as M

    pred, gt = _root_relative(pred.double(), fmt), _root_relative(gt.double(), fmt)
    # Both root-relative at the format's pelvis (hip midpoint for blazepose33), in mm.
    return {"mpjpe": torch.linalg.vector_norm(pred - gt, dim=-1).mean(-1) * 1000.0,
            "pa_mpjpe": M.pa_mpjpe(pred, gt, reduction="none").mean(-1)}  # fmt: skip


def _summ(parts: dict[str, list[torch.Tensor]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, values in parts.items():
        v = torch.cat([p.reshape(len(p), -1).double() for p in values])
        if key == "joint_angle":
            v = torch.rad2deg(v)
            key = "joint_angle_deg"
        per_sample = torch.nanmean(v, dim=1) if v.shape[1] > 1 else v[:, 0]
        finite = per_sample[torch.isfinite(per_sample)]
        out[key] = float(finite.mean()) if finite.numel() else math.nan
        if key == "pa_mpjpe":  # a few wild detections dominate the mean: the median as well
            out["pa_mpjpe_median"] = float(finite.median()) if finite.numel() else math.nan
    return out


def evaluate_frontends(
    arrays: Mapping[str, np.ndarray],
    body,
    models: Mapping[str, Any],
    front_ends: Sequence[str] = FRONT_ENDS,
    *,
    idx: np.ndarray | None = None,
    score_formats: Sequence[str] = SCORE_FORMATS,
    batch_size: int = 256,
    min_confidence: float = 0.3,
) -> dict[str, Any]:
    """Score each front end + DIK + body, and the detector's own world landmarks.

    Args:
        arrays: detector-in-the-loop arrays (:data:`REQUIRED` plus ``joints3d_<fmt>`` for every
            scoring format).
        body: the body model the data was built with.
        models: loaded front-end models (see :func:`frontend_skeletons`).
        idx: samples to consider (default all); undetected ones are skipped.
        min_confidence: DIK's joint threshold (the pipeline's ``min_keypoint_confidence``).

    Returns:
        ``{"samples", "detected" (share), "scored", "detector": {fmt: {...}},
        "<front end>": {"raw": {...}, "<fmt>": {mpjpe, pa_mpjpe, pve, pa_pve,
        joint_angle_deg}}}`` in mm / degrees.

    Raises:
        ValueError: missing arrays or an unknown front end / format.
    """
    from s2m_model import dik
    from s2m_model.eval.scoring import score_batch
    from s2m_model.skeletons import get_format

    missing = [k for k in (*REQUIRED, *(f"joints3d_{f}" for f in score_formats))
               if k not in arrays]  # fmt: skip
    if missing:
        raise ValueError(f"arrays lack {missing}: not a detector-in-the-loop build "
                         "(s2m data build --detector mediapipe)?")  # fmt: skip
    for name in front_ends:
        if name not in FRONT_ENDS:
            raise ValueError(f"unknown front end {name!r}; choose from {', '.join(FRONT_ENDS)}")
    for f in score_formats:
        get_format(f)
    idx = np.arange(len(arrays["betas"])) if idx is None else np.asarray(idx)
    det = np.asarray(arrays["det_detected"])[idx].astype(bool)
    scored = idx[det]
    out: dict[str, Any] = {"samples": int(len(idx)),
                           "detected": float(det.mean()) if len(idx) else math.nan,
                           "scored": int(len(scored))}  # fmt: skip
    if not len(scored):
        raise ValueError("no sample with a detection to score")
    dtype, device = body.dtype, body.device

    def t(key: str, sl) -> torch.Tensor:
        return torch.as_tensor(np.asarray(arrays[key][sl]), dtype=dtype, device=device)

    world_gt = torch.as_tensor(np.asarray(arrays["joints3d_blazepose33"][scored]))
    out["detector"] = {"blazepose33": _summ({k: [v] for k, v in _points_scores(
        torch.as_tensor(np.asarray(arrays["det_world"][scored])), world_gt, "blazepose33"
    ).items()})}  # fmt: skip
    for name in front_ends:
        parts: dict[str, dict[str, list[torch.Tensor]]] = {f: {} for f in score_formats}
        raw: dict[str, list[torch.Tensor]] = {}
        for start in range(0, len(scored), batch_size):
            sl = scored[start : start + batch_size]
            joints, fmt, conf = frontend_skeletons(name, arrays, sl, models)
            for k, v in _points_scores(joints, torch.as_tensor(
                    np.asarray(arrays[f"joints3d_{fmt}"][sl])), fmt).items():  # fmt: skip
                raw.setdefault(k, []).append(v)
            params = {k: t(k, sl) for k in ("betas", "global_orient", "body_pose", "transl")}
            betas = torch.zeros_like(params["betas"])
            with torch.no_grad():
                res = dik.solve(joints.to(device=device, dtype=dtype), fmt, body, betas=betas,
                                confidence=conf.to(device=device, dtype=dtype),
                                min_confidence=min_confidence)  # fmt: skip
            for f in score_formats:
                s = score_batch(res, t(f"joints3d_{f}", sl), f, body, betas, params)
                for k in ("mpjpe", "pa_mpjpe", "pve", "pa_pve", "joint_angle"):
                    parts[f].setdefault(k, []).append(s[k].cpu())
        out[name] = {"raw_format": fmt, "raw": _summ(raw),
                     **{f: _summ(p) for f, p in parts.items()}}  # fmt: skip
    return out


def reprojection_fraction(
    mesh_uv: np.ndarray, keypoints: np.ndarray, bbox: np.ndarray, min_confidence: float = 0.5
) -> float:
    """Median distance of the mesh's projected COCO-17 joints ``(17,2)`` to the detector's
    keypoints ``(17,3)`` (those with confidence >= ``min_confidence``), as a fraction of the
    box height (``bbox`` x0, y0, x1, y1 pixels); NaN when no keypoint qualifies."""
    keypoints = np.asarray(keypoints, np.float64)
    ok = keypoints[:, 2] >= min_confidence
    height = float(bbox[3] - bbox[1])
    if not ok.any() or height <= 0:
        return math.nan
    err = np.linalg.norm(np.asarray(mesh_uv, np.float64)[ok] - keypoints[ok, :2], axis=1)
    return float(np.median(err) / height)


def jitter(joints: np.ndarray, fps: float) -> float:
    """Mean acceleration magnitude (m/s^2) of joints ``(T,J,3)`` metres sampled at ``fps``
    (second differences); NaN for fewer than 3 frames."""
    joints = np.asarray(joints, np.float64)
    if joints.ndim != 3 or len(joints) < 3:
        return math.nan
    acc = (joints[2:] - 2 * joints[1:-1] + joints[:-2]) * fps**2
    return float(np.linalg.norm(acc, axis=-1).mean())
