"""Tests of s2m_model.temporal: One-Euro filters (R^n and SO(3)) and the person tracker."""

from __future__ import annotations

import math

import numpy as np
import pytest
import roma
import torch

from s2m_model.temporal import OneEuroFilter, SO3OneEuroFilter, Tracker, box_iou, euro_alpha

FPS = 30.0
DT = 1.0 / FPS


def _run(filt, samples) -> torch.Tensor:
    return torch.stack([torch.as_tensor(filt(s, i * DT)) for i, s in enumerate(samples)])


def _rot_y(angles: torch.Tensor) -> torch.Tensor:
    zeros = torch.zeros_like(angles)
    return roma.rotvec_to_rotmat(torch.stack([zeros, angles, zeros], -1))


def _rot_z(angles: torch.Tensor) -> torch.Tensor:
    zeros = torch.zeros_like(angles)
    return roma.rotvec_to_rotmat(torch.stack([zeros, zeros, angles], -1))


def _deg(x: torch.Tensor) -> torch.Tensor:
    return torch.rad2deg(x)


# -------------------------------------------------------------------------- One-Euro on R^n
def test_alpha_limits():
    assert euro_alpha(1.0, 1e-9) < 1e-6
    assert euro_alpha(1.0, 1e3) > 0.999
    assert euro_alpha(2.0, DT) > euro_alpha(1.0, DT)


def test_vector_constant_is_fixed_point():
    x = np.array([0.3, -1.2, 2.5])
    out = _run(OneEuroFilter(), [x] * 20)
    assert torch.allclose(out, torch.as_tensor(x).expand(20, 3), atol=1e-12)


def test_vector_noise_is_reduced():
    rng = np.random.default_rng(1)
    truth = np.array([0.1, 0.2, 3.0])
    noisy = truth + 0.02 * rng.standard_normal((300, 3))
    out = _run(OneEuroFilter(min_cutoff=1.0, beta=2.0), list(noisy)).numpy()
    raw_err = np.linalg.norm(noisy[50:] - truth, axis=1).mean()
    filt_err = np.linalg.norm(out[50:] - truth, axis=1).mean()
    assert filt_err < 0.5 * raw_err


def test_vector_returns_input_type_and_restarts_on_gap():
    f = OneEuroFilter()
    first = f(np.zeros(3), 0.0)
    assert isinstance(first, np.ndarray)
    f(np.zeros(3), DT)
    # a stamp going backwards restarts the filter at the raw sample
    np.testing.assert_allclose(f(np.ones(3), 0.0), np.ones(3))
    # a long gap too
    np.testing.assert_allclose(f(np.full(3, 5.0), 10.0), np.full(3, 5.0))
    with pytest.raises(ValueError):
        f(np.array([np.nan, 0.0, 0.0]), 11.0)
    with pytest.raises(ValueError):
        OneEuroFilter(min_cutoff=0.0)
    with pytest.raises(ValueError):
        OneEuroFilter(beta=-1.0)


# --------------------------------------------------------------------------- One-Euro on SO(3)
def test_so3_constant_rotation_stays_constant():
    rotvecs = torch.tensor([[0.3, -1.0, 2.0], [0.0, 0.0, 3.1]], dtype=torch.float64)
    rot = roma.rotvec_to_rotmat(rotvecs)
    out = _run(SO3OneEuroFilter(), [rot] * 30)
    err = roma.rotmat_geodesic_distance(out, rot.expand(30, 2, 3, 3))
    assert float(err.max()) < 1e-9
    assert roma.is_rotation_matrix(out.reshape(-1, 3, 3), epsilon=1e-6)


def test_so3_noise_is_reduced():
    gen = torch.Generator().manual_seed(0)
    truth = roma.rotvec_to_rotmat(torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64))
    noise = roma.rotvec_to_rotmat(0.03 * torch.randn(200, 3, generator=gen, dtype=torch.float64))
    noisy = truth @ noise
    out = _run(SO3OneEuroFilter(min_cutoff=1.0, beta=1.0), list(noisy))
    raw = roma.rotmat_geodesic_distance(noisy[50:], truth).mean()
    filt = roma.rotmat_geodesic_distance(out[50:], truth).mean()
    assert filt < 0.5 * raw


def test_so3_no_wraparound_across_pi():
    # A slow turn about z through 180 deg: rotation vectors jump from +pi to -pi there, so
    # filtering them as plain vectors blends through the identity; on SO(3) nothing happens.
    angles = torch.linspace(math.radians(160), math.radians(200), 60, dtype=torch.float64)
    truth = _rot_z(angles)
    out = _run(SO3OneEuroFilter(), list(truth))
    err = _deg(roma.rotmat_geodesic_distance(out, truth))
    assert float(err.max()) < 2.0
    naive = _run(OneEuroFilter(), list(roma.rotmat_to_rotvec(truth)))
    naive_err = _deg(roma.rotmat_geodesic_distance(roma.rotvec_to_rotmat(naive), truth))
    assert float(naive_err.max()) > 30.0  # the artefact the SO(3) filter avoids


def test_so3_fast_turn_little_lag():
    speed = 6.0  # rad/s, a fast head/arm turn
    angles = torch.tensor([min(i * DT * speed, 3.0) for i in range(40)], dtype=torch.float64)
    truth = _rot_y(angles)
    adaptive = _run(SO3OneEuroFilter(min_cutoff=1.0, beta=1.0), list(truth))
    fixed = _run(SO3OneEuroFilter(min_cutoff=1.0, beta=0.0), list(truth))
    lag = _deg(roma.rotmat_geodesic_distance(adaptive, truth))
    lag_fixed = _deg(roma.rotmat_geodesic_distance(fixed, truth))
    # 0.3 s into the turn (the filter has adapted): little lag, far less than without beta.
    assert float(lag[9]) < 10.0
    assert float(lag[9]) < 0.25 * float(lag_fixed[9])
    # after the turn stops the filter converges onto the target
    assert float(lag[-1]) < 0.1


def test_so3_bad_input():
    f = SO3OneEuroFilter()
    with pytest.raises(ValueError):
        f(torch.zeros(3, 4), 0.0)
    with pytest.raises(ValueError):
        f(torch.full((3, 3), float("nan")), 0.0)
    with pytest.raises(ValueError):
        f(torch.eye(3), float("inf"))


# ------------------------------------------------------------------------------------ tracker
def _person(cx: float, cy: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A 17-point 'person' around (cx, cy) and its box."""
    offsets = np.array([[0, -80], [-8, -85], [8, -85], [-15, -82], [15, -82], [-30, -55],
                        [30, -55], [-40, -20], [40, -20], [-45, 10], [45, 10], [-18, 10],
                        [18, 10], [-20, 55], [20, 55], [-20, 100], [20, 100]], dtype=float)
    pts = np.array([cx, cy]) + offsets + rng.normal(0, 1.5, offsets.shape)
    box = np.r_[pts.min(0) - 5, pts.max(0) + 5]
    return pts, box


def test_box_iou():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    np.testing.assert_allclose(box_iou(a, b), [[1.0, 50 / 150, 0.0]])


def test_tracker_keeps_ids_for_two_people():
    rng = np.random.default_rng(0)
    tracker = Tracker()
    history = []
    for frame in range(20):
        a = _person(150 + 4 * frame, 240, rng)
        b = _person(480 - 3 * frame, 250, rng)
        people = [a, b] if frame % 2 == 0 else [b, a]  # detector order changes
        tracks = tracker.update(np.stack([p[0] for p in people]), None,
                                np.stack([p[1] for p in people]))
        ids = [t.track_id for t in tracks]
        history.append(ids if frame % 2 == 0 else ids[::-1])  # back to (a, b) order
    assert history[0][0] != history[0][1]
    assert all(h == history[0] for h in history)


def test_tracker_new_person_and_expiry():
    rng = np.random.default_rng(0)
    tracker = Tracker(max_age=2)
    pts, box = _person(200, 240, rng)
    (first,) = tracker.update(pts[None], None, box[None])
    far_pts, far_box = _person(520, 240, rng)
    tracks = tracker.update(np.stack([pts, far_pts]), None, np.stack([box, far_box]))
    assert tracks[0].track_id == first.track_id
    assert tracks[1].track_id not in (first.track_id,)
    for _ in range(3):  # nobody for 3 frames > max_age
        tracker.update(np.zeros((0, 17, 2)), None, np.zeros((0, 4)))
    assert tracker.tracks == {}
    (again,) = tracker.update(pts[None], None, box[None])
    assert again.track_id not in (first.track_id, tracks[1].track_id)
    tracker.reset()
    assert tracker.update(pts[None], None, box[None])[0].track_id == 1


def test_tracker_skeleton_mode_3d():
    rng = np.random.default_rng(0)
    base = rng.normal(0, 0.3, (17, 3))
    tracker = Tracker()
    ids = []
    for frame in range(5):
        a = base + np.array([0.0, 0.0, 3.0 + 0.02 * frame])
        b = base + np.array([1.5, 0.0, 4.0 - 0.02 * frame])
        order = [a, b] if frame % 2 else [b, a]
        tracks = tracker.update(np.stack(order))
        got = [t.track_id for t in tracks]
        ids.append(got if frame % 2 else got[::-1])
    assert all(i == ids[0] for i in ids) and ids[0][0] != ids[0][1]


def test_tracker_bad_input():
    with pytest.raises(ValueError):
        Tracker().update(np.zeros((2, 17)))
    with pytest.raises(ValueError):
        Tracker(max_cost=0.0)
