"""Property-based tests (hypothesis) for the message conversions: Body <-> PersonResult,
Skeleton3D <-> numpy, Image <-> numpy. Finite input -> finite output; exact round trips where
the message keeps the numbers (float64 points, uint8 pixels), rotations up to float precision."""

from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402

from s2m_model.results import PersonResult  # noqa: E402
from s2m_model.skeletons import get_format  # noqa: E402
from s2m_ros import convert  # noqa: E402

FAST = settings(max_examples=40, deadline=None, derandomize=True, database=None)
F32 = st.floats(-1e4, 1e4, allow_nan=False, width=32)
ANGLE = st.floats(-3.0, 3.0, allow_nan=False, width=32)  # |rotvec| < pi: a unique axis-angle


def _rotvecs(n):
    return arrays(np.float32, (n, 3), elements=ANGLE).filter(
        lambda r: (np.linalg.norm(r, axis=1) < 3.1).all()
    )


@st.composite
def people(draw):
    rot = draw(_rotvecs(24))
    return PersonResult(
        betas=draw(arrays(np.float32, 10, elements=st.floats(-5, 5, width=32))),
        global_orient=rot[0],
        body_pose=rot[1:],
        transl=draw(arrays(np.float32, 3, elements=F32)),
        joints=draw(arrays(np.float32, (24, 3), elements=F32)),
        solved=draw(arrays(np.bool_, 24)),
        confidence=draw(arrays(np.float32, 24, elements=st.floats(0, 1, width=32))),
        bbox=draw(arrays(np.float32, 4, elements=st.floats(1, 4000, width=32))),
        track_id=draw(st.integers(0, 2**32 - 1)),
    )


def _body_msg_current() -> bool:
    from s2m_ros.msg import Body

    return hasattr(Body(), "joint_status")  # built from the current msg/Body.msg


@FAST
@given(person=people(), stamp=st.integers(0, 2**62))
def test_body_round_trip(person, stamp):
    if not _body_msg_current():
        pytest.skip("s2m_ros messages are older than msg/Body.msg: rebuild them")
    header = convert.make_header(stamp, "cam")
    back = convert.body_msg_to_person(convert.person_to_body_msg(person, header, "m"))
    for name in ("betas", "transl", "joints", "confidence", "bbox"):
        np.testing.assert_array_equal(getattr(back, name), getattr(person, name), err_msg=name)
    np.testing.assert_array_equal(back.solved, person.solved)
    assert back.track_id == person.track_id
    # rotations: the same rotation (quaternion round trip, float32 axis-angle)
    got, want = back.quaternions, person.quaternions
    dots = np.abs(np.sum(got * want, axis=1))
    assert np.isfinite(got).all() and (dots > 1 - 1e-5).all()
    arrays_ = convert.body_msg_to_arrays(convert.person_to_body_msg(person, header))
    assert arrays_["stamp_ns"] == stamp
    np.testing.assert_allclose(np.linalg.norm(arrays_["quaternions"], axis=1), 1.0, atol=1e-6)


H36M = get_format("h36m17").joint_names
POINTS = st.floats(-1e6, 1e6, allow_nan=False)


@FAST
@given(
    pos=arrays(np.float64, (17, 3), elements=POINTS),
    conf=arrays(np.float64, 17, elements=st.floats(0, 1)),
    perm=st.permutations(range(17)),
    named=st.booleans(),
)
def test_skeleton_round_trip(pos, conf, perm, named):
    header = convert.make_header(3, "cam")
    perm = np.asarray(perm)
    names = [H36M[i] for i in perm] if named else []
    order = perm if named else np.arange(17)
    msg = convert.numpy_to_skeleton_msg(pos[order], "h36m17", header, conf[order], names)
    skel = convert.skeleton_msg_to_numpy(msg)
    # float32 out: the points round to float32, the order is the format's
    np.testing.assert_array_equal(skel.positions, pos.astype(np.float32))
    np.testing.assert_array_equal(skel.confidences, conf.astype(np.float32))
    assert np.isfinite(skel.positions).all() and skel.stamp_ns == 3


@FAST
@given(
    pos=arrays(np.float64, (17, 3), elements=st.floats(allow_nan=True, allow_infinity=True)),
)
def test_skeleton_with_non_finite_values_gives_finite_output(pos):
    msg = convert.numpy_to_skeleton_msg(pos, "h36m17", convert.make_header(0, "cam"))
    skel = convert.skeleton_msg_to_numpy(msg)
    assert np.isfinite(skel.positions).all() and np.isfinite(skel.confidences).all()
    bad = ~np.isfinite(pos.astype(np.float32)).all(axis=1)
    assert (skel.confidences[bad] == 0).all()


@st.composite
def images(draw):
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    return draw(arrays(np.uint8, (h, w, 3)))


@FAST
@given(image=images(), encoding=st.sampled_from(["rgb8", "bgr8", "rgba8", "bgra8"]))
def test_image_round_trip_is_exact(image, encoding):
    msg = convert.numpy_to_image(image, encoding, 7, "cam")
    np.testing.assert_array_equal(convert.image_to_numpy(msg, copy=True), image)


@FAST
@given(image=images())
def test_mono_image_round_trip(image):
    grey = image[:, :, 0]
    back = convert.image_to_numpy(convert.numpy_to_image(grey, "mono8"))
    assert back.shape == grey.shape + (3,)
    for c in range(3):
        np.testing.assert_array_equal(back[:, :, c], grey)
