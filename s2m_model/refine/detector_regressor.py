"""Adaptive regressors for a detector's keypoint definition (paper Sec. 3.5 on real detections).

A detector's "left hip" or "ankle" is not the body model's joint: it is wherever the detector
puts it on people it sees. Given ground-truth meshes (camera frame) and the detector's 2D
keypoints on renders of them, :func:`backproject` lifts each keypoint to 3D on its camera ray
at the depth of the fixed regressor's joint (a detector gives no metric depth; the regressor
then learns where the detector's points lie across the image plane, which is what a 2D fit and
a reprojection score use), and :func:`fit_detector_regressor` fits an
:class:`~.adaptive_regressor.AdaptiveRegressor` to those targets in closed form.
:func:`reprojection_px` scores a regressor: mean pixel distance of the projected mesh points to
the detector's keypoints. Units: metres, pixels; camera frame x right, y down, z forward.
"""

from __future__ import annotations

import torch

from .adaptive_regressor import AdaptiveRegressor, fit_regressor

__all__ = ["backproject", "fit_detector_regressor", "reprojection_px"]


def _project(points: torch.Tensor, camera: torch.Tensor) -> torch.Tensor:
    z = points[..., 2].clamp(min=1e-3)
    fx, fy, cx, cy = (camera[:, i : i + 1] for i in range(4))
    return torch.stack([fx * points[..., 0] / z + cx, fy * points[..., 1] / z + cy], -1)


def backproject(keypoints: torch.Tensor, camera: torch.Tensor, depth: torch.Tensor,
                min_confidence: float = 0.5) -> torch.Tensor:  # fmt: skip
    """(N,K,3) points on the rays of ``keypoints`` (N,K,3: u, v px, confidence) at ``depth``
    (N,K) metres, for intrinsics ``camera`` (N,4); NaN where the confidence is below
    ``min_confidence`` or the keypoint is not finite."""
    if keypoints.ndim != 3 or keypoints.shape[-1] != 3:
        raise ValueError(f"keypoints must be (N,K,3), got {tuple(keypoints.shape)}")
    if camera.shape != (keypoints.shape[0], 4) or depth.shape != keypoints.shape[:2]:
        raise ValueError("camera must be (N,4) and depth (N,K)")
    fx, fy, cx, cy = (camera[:, i : i + 1] for i in range(4))
    x = (keypoints[..., 0] - cx) / fx * depth
    y = (keypoints[..., 1] - cy) / fy * depth
    out = torch.stack([x, y, depth], -1)
    ok = (keypoints[..., 2] >= min_confidence) & torch.isfinite(out).all(-1)
    return torch.where(ok[..., None], out, torch.full_like(out, float("nan")))


def fit_detector_regressor(body, fmt: str, vertices: torch.Tensor, keypoints: torch.Tensor,
                           camera: torch.Tensor, *, rings: int = 2, ridge: float = 1e-2,
                           min_confidence: float = 0.5) -> AdaptiveRegressor:  # fmt: skip
    """Fit a regressor from GT ``vertices`` (N,V,3, camera frame) to the detector's 2D
    ``keypoints`` (N,K,3) of format ``fmt`` (intrinsics ``camera`` (N,4))."""
    reg = AdaptiveRegressor.from_body(body, fmt, rings=rings)
    with torch.no_grad():
        depth = reg(vertices.to(reg.values.dtype))[..., 2]
    targets = backproject(keypoints.to(depth.dtype), camera.to(depth.dtype), depth,
                          min_confidence)  # fmt: skip
    return fit_regressor(reg, vertices.to(depth.dtype), targets, ridge=ridge)


def reprojection_px(points3d: torch.Tensor, keypoints: torch.Tensor, camera: torch.Tensor,
                    min_confidence: float = 0.5) -> torch.Tensor:  # fmt: skip
    """(N,) mean pixel distance of projected ``points3d`` (N,K,3) to ``keypoints`` (N,K,3)
    with confidence >= ``min_confidence`` (NaN when none qualifies)."""
    uv = _project(points3d, camera.to(points3d.dtype))
    ok = (keypoints[..., 2] >= min_confidence).to(uv.dtype)
    d = (uv - keypoints[..., :2].to(uv.dtype)).norm(dim=-1)
    d = torch.where(ok > 0, d, torch.zeros_like(d))
    return d.sum(1) / ok.sum(1).where(ok.sum(1) > 0, torch.full_like(ok.sum(1), float("nan")))
