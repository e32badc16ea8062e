"""Bad ROS messages (issue 14), with real messages and no DDS: a Skeleton3D whose joint_names
are reordered or a subset is put in the format's order, garbage names are refused (the node
counts that frame as failed); a CameraInfo with implausible intrinsics (fx = 1e30, NaN, ...) is
rejected and counted, and the last good one stays in use."""

from __future__ import annotations

import types

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")

from sensor_msgs.msg import CameraInfo  # noqa: E402
from test_ros_node_parts import no_people_processor  # noqa: E402

from s2m_model.skeletons import get_format  # noqa: E402
from s2m_ros import convert  # noqa: E402
from s2m_ros.diagnostics import NodeStats, diagnostic_status  # noqa: E402
from s2m_ros.node import S2MNode  # noqa: E402
from s2m_ros.processor import check_camera_info  # noqa: E402

H36M = get_format("h36m17").joint_names


def _skeleton(names, positions, conf=None):
    header = convert.make_header(5, "cam")
    return convert.numpy_to_skeleton_msg(positions, "h36m17", header, conf, joint_names=names)


def _positions(n=17, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 3)) + [0, 0, 3]


def test_reordered_joint_names_are_put_in_format_order():
    pos = _positions()
    perm = np.random.default_rng(1).permutation(17)
    skel = convert.skeleton_msg_to_numpy(_skeleton([H36M[i] for i in perm], pos[perm]))
    np.testing.assert_allclose(skel.positions, pos.astype(np.float32))
    assert skel.joint_names == tuple(H36M) and (skel.confidences == 1).all()


def test_a_subset_of_named_joints_leaves_the_others_missing():
    pos = _positions()
    keep = [0, 4, 11, 16, 8]
    skel = convert.skeleton_msg_to_numpy(_skeleton([H36M[i] for i in keep], pos[keep]))
    assert skel.positions.shape == (17, 3)
    np.testing.assert_allclose(skel.positions[keep], pos[keep].astype(np.float32))
    missing = np.setdiff1d(np.arange(17), keep)
    assert (skel.confidences[missing] == 0).all() and (skel.confidences[keep] == 1).all()


def test_format_order_names_are_unchanged():
    pos = _positions()
    skel = convert.skeleton_msg_to_numpy(_skeleton(list(H36M), pos))
    np.testing.assert_allclose(skel.positions, pos.astype(np.float32))


@pytest.mark.parametrize(
    ("names", "words"),
    [
        ([f"joint_{i}" for i in range(17)], "not joints of format"),
        (["Hip"] * 17, "not joints of format"),
        ([H36M[0]] * 2 + list(H36M[2:]), "repeat"),
    ],
    ids=["garbage", "other-format", "repeated"],
)
def test_garbage_joint_names_are_refused(names, words):
    msg = _skeleton(names, _positions())
    with pytest.raises(ValueError, match=words):
        convert.skeleton_msg_to_numpy(msg)


# --------------------------------------------------------------------------- CameraInfo


def _info(fx=500.0, fy=500.0, cx=320.0, cy=240.0, width=640, height=480):
    return CameraInfo(width=width, height=height, k=[fx, 0, cx, 0, fy, cy, 0, 0, 1])


@pytest.mark.parametrize(
    "info",
    [_info(), _info(width=0, height=0), CameraInfo(width=640, height=480), _info(fx=2.0)],
    ids=["good", "no-size", "uncalibrated", "fisheye-ish"],
)
def test_plausible_camera_info_is_accepted(info):
    check_camera_info(info)


@pytest.mark.parametrize(
    "info",
    [
        _info(fx=1e30),
        _info(fy=1e30),
        _info(fx=-500.0),
        _info(fx=0.0),
        _info(fx=float("nan")),
        _info(cx=float("inf")),
        _info(cx=1e9),
        _info(fx=1e-6),
        _info(width=10**9),
    ],
    ids=["fx1e30", "fy1e30", "negative", "zero-fx", "nan", "inf-cx", "far-cx", "tiny", "huge"],
)
def test_implausible_camera_info_is_rejected(info):
    with pytest.raises(ValueError, match="CameraInfo"):
        check_camera_info(info)


def _fake_node(proc):
    warnings: list[str] = []
    logger = types.SimpleNamespace(warning=lambda text, **kw: warnings.append(text))
    node = types.SimpleNamespace(processor=proc, stats=NodeStats(), get_logger=lambda: logger)
    return node, warnings


def test_node_rejects_a_bad_camera_info_and_keeps_the_last_good_one():
    proc = no_people_processor()
    node, warnings = _fake_node(proc)
    frame = convert.numpy_to_image(np.zeros((480, 640, 3), np.uint8), "rgb8", 1, "cam")
    S2MNode._on_camera_info(node, _info(fx=600.0, fy=610.0))
    S2MNode._on_camera_info(node, _info(fx=1e30))  # rejected
    out = proc.process("image", frame)  # the next good frame works, with the good K
    assert out.bodies.bodies == []
    np.testing.assert_allclose(proc.pipeline.camera.intrinsics, (600.0, 610.0, 320.0, 240.0))
    snap = node.stats.snapshot()
    assert snap["rejected"] == {"camera_info": 1}
    assert snap["failed"] == 0 and snap["frames_in"] == 0  # not a frame
    assert "CameraInfo" in snap["last_error"] and len(warnings) == 1
    values = {kv.key: kv.value for kv in diagnostic_status(snap, "n", "h").values}
    assert values["rejected"] == "camera_info=1"


def test_node_without_good_camera_info_falls_back_to_the_fov():
    proc = no_people_processor()
    node, _ = _fake_node(proc)
    S2MNode._on_camera_info(node, _info(fx=float("nan")))
    frame = convert.numpy_to_image(np.zeros((4, 6, 3), np.uint8), "rgb8", 1, "cam")
    proc.process("image", frame)
    np.testing.assert_allclose(proc.pipeline.camera.intrinsics, (3.0, 3.0, 3.0, 2.0))
