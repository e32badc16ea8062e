"""Foot contact (:mod:`s2m_model.retarget.contact`): noisy monocular-like ankles still give
contacts, swinging feet do not, hysteresis keeps contacts from flickering."""

from __future__ import annotations

import numpy as np
import pytest

from s2m_model.retarget.contact import ContactConfig, ContactDetector

DT = 1 / 30


def _walk(frames: int = 120, noise: float = 0.0, drift: float = 0.0, seed: int = 0):
    """Left foot planted, right foot swinging (0.12 m high, 2 m/s) every other 0.5 s; the
    whole body shares a depth-like jitter ``noise`` (m, along x) and a height drift."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) * DT
    common = np.zeros((frames, 3))
    common[:, 0] = rng.normal(0.0, noise, frames)  # both ankles and the pelvis move together
    common[:, 2] = drift * t
    left = np.zeros((frames, 3)) + [0.0, 0.1, 0.08]
    swing = (t % 1.0) < 0.5
    right = np.zeros((frames, 3)) + [0.0, -0.1, 0.08]
    phase = (t % 1.0) / 0.5
    step = np.floor(t) * 0.5  # each swing moves the foot 0.5 m forward, then it stays
    right[:, 0] = step + np.where(swing, 0.5 * phase, 0.5)
    right[swing, 2] += 0.12 * np.sin(np.pi * phase[swing])
    pelvis = np.zeros((frames, 3)) + [0.0, 0.0, 0.9]
    return t, left + common, right + common, pelvis + common, swing


def _run(det, t, left, right, pelvis):
    return np.array([[p["left"], p["right"]] for p in
                     (det({"left": left[i], "right": right[i]}, pelvis[i], t[i])
                      for i in range(len(t)))])  # fmt: skip


def test_clean_planted_and_swinging_feet():
    t, left, right, pelvis, swing = _walk()
    planted = _run(ContactDetector(), t, left, right, pelvis)
    assert planted[:, 0].mean() > 0.95  # the standing foot
    assert planted[swing, 1].mean() < 0.2  # the swinging foot (a few frames at lift-off)
    assert planted[~swing, 1].mean() > 0.8


def test_depth_jitter_and_height_drift_still_give_contacts():
    """Common-mode jitter of several m/s frame to frame and a 4 cm/s height drift (what the
    monocular pipeline gives): world speed alone and one clip-wide floor both fail here."""
    t, left, right, pelvis, swing = _walk(noise=0.05, drift=0.04, seed=3)
    planted = _run(ContactDetector(), t, left, right, pelvis)
    assert planted[:, 0].mean() > 0.8
    assert planted[swing, 1].mean() < 0.3
    # the old test (height above the clip's 5th percentile < 6 cm, world speed < 0.35 m/s)
    floor = np.percentile(np.r_[left[:, 2], right[:, 2]], 5)
    speed = np.r_[0.0, np.linalg.norm(np.diff(left[:, :2], axis=0), axis=1) / DT]
    old = (left[:, 2] - floor < 0.06) & (speed < 0.35)
    assert old.mean() < 0.3


def test_hysteresis_keeps_a_contact_through_noise_near_the_threshold():
    det = ContactDetector(("left",), ContactConfig(smoothing_s=0.0))
    ground = {"left": np.array([0.0, 0.0, 0.0])}
    assert det(ground, np.array([0.0, 0.0, 0.9]), 0.0)["left"]  # sets the local ground
    heights = [0.07, 0.05, 0.08, 0.07, 0.085]  # around on_height 0.06, below off 0.09
    states = [det({"left": np.array([0.0, 0.0, h])}, np.array([0.0, 0.0, 0.9]), (i + 1) * DT)
              ["left"] for i, h in enumerate(heights)]  # fmt: skip
    assert all(states)
    assert not det({"left": np.array([0.0, 0.0, 0.2])}, np.zeros(3) + [0, 0, 0.9], 0.3)["left"]
    assert not det({"left": np.array([0.0, 0.0, 0.07])}, np.zeros(3) + [0, 0, 0.9], 0.35)["left"]


def test_missing_foot_and_gaps_release_and_bad_config():
    det = ContactDetector()
    pel = np.array([0.0, 0.0, 0.9])
    out = det({"left": np.zeros(3), "right": np.full(3, np.nan)}, pel, 0.0)
    assert out == {"left": True, "right": False}
    out = det({"left": np.zeros(3), "right": np.zeros(3)}, np.full(3, np.nan), DT)
    assert out["left"]  # no pelvis: world speed only
    det({"left": np.zeros(3), "right": np.zeros(3)}, pel, 5.0)  # a 5 s gap: history reset
    assert det._lows and det._lows[0][0] == 5.0
    with pytest.raises(ValueError, match="on <= off"):
        ContactConfig(on_height=0.1, off_height=0.05)
    with pytest.raises(ValueError, match="window_s"):
        ContactConfig(window_s=0.0)
