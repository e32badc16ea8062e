"""Front-end scoring helpers: reprojection fraction, jitter, input checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from s2m_model.eval.frontends import evaluate_frontends, jitter, reprojection_fraction


def test_reprojection_fraction_is_median_over_box_height():
    kp = np.zeros((17, 3))
    kp[:, 2] = 1.0
    uv = np.zeros((17, 2))
    uv[:, 0] = np.arange(17)  # errors 0..16 px, median 8
    assert reprojection_fraction(uv, kp, np.array([0, 0, 10, 80])) == pytest.approx(0.1)
    kp[:, 2] = 0.0
    assert math.isnan(reprojection_fraction(uv, kp, np.array([0, 0, 10, 80])))


def test_jitter_constant_acceleration():
    t = np.arange(10) / 30.0
    joints = np.zeros((10, 2, 3))
    joints[..., 1] = 0.5 * 2.0 * t[:, None] ** 2  # 2 m/s^2 along y
    assert jitter(joints, 30.0) == pytest.approx(2.0)
    assert math.isnan(jitter(joints[:2], 30.0))


def test_evaluate_frontends_rejects_other_data():
    with pytest.raises(ValueError, match="detector-in-the-loop"):
        evaluate_frontends({"betas": np.zeros((2, 10))}, body=None, models={})
