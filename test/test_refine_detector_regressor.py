"""Adaptive regressor fitted to a detector's 2D keypoint definition (back-projected targets)."""

from __future__ import annotations

import pytest
import torch

from s2m_model.refine.detector_regressor import (
    backproject,
    fit_detector_regressor,
    reprojection_px,
)
from s2m_model.refine.synthetic import sample_bodies


def test_fit_learns_a_shifted_keypoint_definition(body):
    posed = sample_bodies(body, 40, seed=11, camera=True)
    cam = torch.tensor([[600.0, 600.0, 320.0, 240.0]], dtype=torch.float64).repeat(40, 1)
    # The "detector" puts every COCO point 3 cm lower and 2 cm to the right of the fixed one.
    pts = body.regress(posed.vertices, "coco17") + torch.tensor([0.02, 0.03, 0.0]).double()
    uv = pts[..., :2] / pts[..., 2:] * 600 + torch.tensor([320.0, 240.0]).double()
    kp = torch.cat([uv, torch.ones(40, 17, 1).double()], -1)
    train, test = slice(0, 30), slice(30, 40)
    reg = fit_detector_regressor(body, "coco17", posed.vertices[train], kp[train], cam[train])
    fixed = reprojection_px(body.regress(posed.vertices[test], "coco17"), kp[test], cam[test])
    adapt = reprojection_px(reg(posed.vertices[test]), kp[test], cam[test])
    assert float(adapt.mean()) < 0.5 * float(fixed.mean()), (adapt.mean(), fixed.mean())


def test_backproject_masks_low_confidence_and_checks_shapes():
    kp = torch.tensor([[[320.0, 240.0, 0.9], [100.0, 100.0, 0.1]]])
    out = backproject(kp, torch.tensor([[500.0, 500.0, 320.0, 240.0]]), torch.tensor([[2.0, 2.0]]))
    assert torch.allclose(out[0, 0], torch.tensor([0.0, 0.0, 2.0]))
    assert torch.isnan(out[0, 1]).all()
    with pytest.raises(ValueError, match="camera"):
        backproject(kp, torch.zeros(2, 4), torch.ones(1, 2))
