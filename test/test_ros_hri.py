"""s2m_ros.hri: ROS4HRI (REP-155) conversions of per-person results (no DDS)."""

from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("hri_msgs.msg", reason="hri_msgs not built (tools/build_msgs.sh)")

import roma  # noqa: E402
import torch  # noqa: E402
from hri_msgs.msg import Skeleton2D  # noqa: E402

from s2m_model.skeletons import get_format  # noqa: E402
from s2m_model.smpl_layout import JOINT_NAMES  # noqa: E402
from s2m_ros import convert, hri  # noqa: E402
from s2m_ros.testing import sample_person  # noqa: E402

W, H = 640, 480
COCO = get_format("coco17").joint_names


def _header():
    return convert.make_header(123_456_789, "camera_optical")


def _keypoints(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    kp = np.column_stack([rng.uniform(0, W, 17), rng.uniform(0, H, 17), rng.uniform(0.1, 1, 17)])
    return kp.astype(np.float32)


def test_body_id_format_deterministic_and_distinct():
    ids = [hri.body_id(t) for t in range(200)]
    assert all(re.fullmatch(r"[a-z]{5}", i) for i in ids)
    assert ids == [hri.body_id(t) for t in range(200)]
    assert len(set(ids)) == 200
    assert hri.body_id(3, salt="run1") != hri.body_id(3, salt="run2")
    with pytest.raises(ValueError, match="integer"):
        hri.body_id("3")
    with pytest.raises(ValueError, match="integer"):
        hri.body_id(True)


def test_body_ids_stable_unique_and_forget(monkeypatch):
    ids = hri.BodyIds(salt="s")
    first = ids.get(7)
    assert ids.get(7) == first == hri.body_id(7, "s")
    assert ids.forget(7) == first and ids.forget(7) is None
    # every track hashing to the same id: the registry still hands out unique ids
    monkeypatch.setattr(hri, "body_id", lambda track_id, salt="": "aaaaa")
    ids = hri.BodyIds()
    got = [ids.get(t) for t in range(5)]
    assert got[0] == "aaaaa" and len(set(got)) == 5
    assert all(re.fullmatch(r"[a-z]{5}", i) for i in got)
    assert ids.active == dict(enumerate(got))


def test_topics_and_frames():
    assert hri.TRACKED_TOPIC == "/humans/bodies/tracked"
    assert hri.body_topic("abcde", "roi") == "/humans/bodies/abcde/roi"
    assert hri.body_topic("abcde", "skeleton2d") == "/humans/bodies/abcde/skeleton2d"
    assert hri.body_topic("abcde", "joint_states") == "/humans/bodies/abcde/joint_states"
    assert hri.body_frame("abcde") == "body_abcde"
    with pytest.raises(ValueError, match="sub-topic"):
        hri.body_topic("abcde", "mesh")
    for bad in ("", "1abc", "ab/cd", "ab cd"):
        with pytest.raises(ValueError, match="body id"):
            hri.body_frame(bad)


def test_ids_list():
    msg = hri.ids_list_msg(["abcde", "fghij"], _header())
    assert list(msg.ids) == ["abcde", "fghij"]
    assert convert.stamp_to_ns(msg.header.stamp) == 123_456_789
    assert list(hri.ids_list_msg([], _header()).ids) == []
    with pytest.raises(ValueError):
        hri.ids_list_msg(["/bad"], _header())


def test_roi_normalised_and_clipped():
    msg = hri.roi_msg([64.0, 48.0, 320.0, 480.0], W, H, _header(), confidence=0.5)
    got = [msg.xmin, msg.ymin, msg.xmax, msg.ymax, msg.c]
    np.testing.assert_allclose(got, [0.1, 0.1, 0.5, 1.0, 0.5], rtol=1e-6)
    edge = hri.roi_msg([-20.0, -5.0, 700.0, 100.0], W, H, _header(), confidence=3.0)
    np.testing.assert_allclose([edge.xmin, edge.ymin, edge.xmax, edge.c], [0, 0, 1, 1])
    for bad in ([1, 2, 3], [0, 0, np.nan, 1], [10, 0, 5, 1]):
        with pytest.raises(ValueError, match="bbox"):
            hri.roi_msg(bad, W, H, _header())
    for w, h in ((0, 480), (640, -1), (640.5, 480)):
        with pytest.raises(ValueError, match="image size"):
            hri.roi_msg([0, 0, 1, 1], w, h, _header())


def test_skeleton2d_maps_every_constant_by_name():
    kp = _keypoints()
    msg = hri.skeleton2d_msg(kp, W, H, _header())
    assert len(msg.skeleton) == 18
    pts = np.array([[p.x, p.y, p.c] for p in msg.skeleton])
    names = [n for n in dir(Skeleton2D) if n.isupper() and n != "SLOT_TYPES"]
    assert len(names) == 18
    for name in names:
        k = getattr(Skeleton2D, name)
        if name == "NECK":
            ls, rs = kp[COCO.index("left_shoulder")], kp[COCO.index("right_shoulder")]
            want = [(ls[0] + rs[0]) / 2 / W, (ls[1] + rs[1]) / 2 / H, min(ls[2], rs[2])]
        else:
            src = kp[COCO.index(name.lower())]
            want = [src[0] / W, src[1] / H, src[2]]
        np.testing.assert_allclose(pts[k], want, rtol=1e-5, err_msg=name)


def test_skeleton2d_blazepose_input_and_bad_points():
    coco = _keypoints(1)
    blaze = np.zeros((33, 3), np.float32)
    blaze[list(get_format("blazepose33").to_formats["coco17"])] = coco
    np.testing.assert_allclose(
        hri.skeleton2d_points(blaze, W, H), hri.skeleton2d_points(coco, W, H)
    )
    coco[COCO.index("left_wrist")] = np.nan
    pts = hri.skeleton2d_points(coco, W, H)
    np.testing.assert_array_equal(pts[Skeleton2D.LEFT_WRIST], [0.0, 0.0, 0.0])
    assert np.isfinite(pts).all()
    with pytest.raises(ValueError, match="COCO-17"):
        hri.skeleton2d_points(np.zeros((25, 3)), W, H)
    with pytest.raises(ValueError, match="keypoints"):
        hri.skeleton2d_points(np.zeros(17), W, H)


def test_joint_states_are_xyz_euler_of_local_rotations():
    person = sample_person(3)
    msg = hri.joint_state_msg(person, _header())
    assert list(msg.name) == list(hri.JOINT_STATE_NAMES)
    assert len(msg.name) == 69 and msg.name[:3] == ["left_hip_x", "left_hip_y", "left_hip_z"]
    assert msg.name[-1] == f"{JOINT_NAMES[-1]}_z"
    angles = np.asarray(msg.position).reshape(23, 3)

    # R = Rx(a) @ Ry(b) @ Rz(c): three revolute joints about x, y, z reproduce the rotation
    def axis(k: int, a: float) -> np.ndarray:
        v = np.zeros(3)
        v[k] = a
        return roma.rotvec_to_rotmat(torch.as_tensor(v)).numpy()

    want = roma.rotvec_to_rotmat(torch.as_tensor(person.body_pose, dtype=torch.float64)).numpy()
    for j in range(23):
        a, b, c = angles[j]
        np.testing.assert_allclose(axis(0, a) @ axis(1, b) @ axis(2, c), want[j], atol=1e-5)
    person.body_pose = person.body_pose[:5]
    with pytest.raises(ValueError, match="body_pose"):
        hri.joint_state_msg(person, _header())


def test_body_transform_and_messages_per_input():
    person = sample_person(4, track_id=9)
    tf = hri.body_transform(person, "abcde", _header())
    assert tf.header.frame_id == "camera_optical" and tf.child_frame_id == "body_abcde"
    t = tf.transform.translation
    np.testing.assert_allclose([t.x, t.y, t.z], person.joints[0], rtol=1e-6)

    person.keypoints_2d = _keypoints(2)
    msgs = hri.body_messages(person, "abcde", W, H, _header())
    assert sorted(msgs) == ["joint_states", "roi", "skeleton2d"]
    np.testing.assert_allclose(msgs["roi"].c, person.keypoints_2d[:, 2].mean(), rtol=1e-5)
    person.bbox, person.keypoints_2d = None, None  # skeleton input: no image-space outputs
    assert sorted(hri.body_messages(person, "abcde", W, H, _header())) == ["joint_states"]
