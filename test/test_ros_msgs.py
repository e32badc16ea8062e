"""s2m_ros messages: built and importable, hashes equal to rosbags', body/skeleton/mesh/TF
conversions (no DDS here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")

import roma  # noqa: E402
import torch  # noqa: E402

from s2m_model.smpl_layout import JOINT_NAMES  # noqa: E402
from s2m_ros import convert  # noqa: E402
from s2m_ros.testing import sample_person  # noqa: E402

MESSAGES = ("Body", "BodyArray", "BodyMesh", "MeshFaces", "Skeleton3D")


def _share(package: str) -> Path:
    """Installed share/<package> (venv prefix or an ament prefix)."""
    candidates = [Path(sys.prefix) / "share" / package]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory(package)))
    except Exception:
        pass
    for c in candidates:
        if c.is_dir():
            return c
    pytest.fail(f"share/{package} not found in {candidates}: run `make msgs`")


def test_messages_import_and_source_package_wins():
    import s2m_ros.msg as msgs

    import s2m_ros

    # our sources (not the generated, empty s2m_ros/__init__.py) and the messages form one package
    assert (Path(s2m_ros.__file__).parent / "convert.py").is_file()
    for name in MESSAGES:
        assert hasattr(msgs, name), f"s2m_ros.msg.{name} missing: run `make msgs`"
    from tf2_msgs.msg import TFMessage

    assert TFMessage().transforms == []


def test_import_from_outside_the_repo(tmp_path):
    """The venv layout (editable sources + generated msg elsewhere) works without the repo on
    sys.path, in a fresh interpreter."""
    import subprocess

    code = (
        "import s2m_ros, s2m_ros.convert; from s2m_ros.msg import Body; "
        "print(s2m_ros.__file__); print(Body().joint_names)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert (Path(out.stdout.splitlines()[0]).parent / "convert.py").is_file()


@pytest.mark.parametrize("name", MESSAGES)
def test_rihs01_hash_rosbags_equals_rosidl(name):
    from s2m_ros.bag import s2m_typestore

    built = json.loads((_share("s2m_ros") / "msg" / f"{name}.json").read_text())
    type_name = f"s2m_ros/msg/{name}"
    rosidl = {h["type_name"]: h["hash_string"] for h in built["type_hashes"]}[type_name]
    assert rosidl.startswith("RIHS01_")
    assert s2m_typestore().hash_rihs01(type_name) == rosidl


def test_tf2_msgs_hash_matches_real_ros2():
    """Our tf2_msgs build hashes like the real one (rosbags' Kilted store ships it)."""
    from rosbags.typesys import Stores, get_typestore

    built = json.loads((_share("tf2_msgs") / "msg" / "TFMessage.json").read_text())
    rosidl = built["type_hashes"][0]["hash_string"]
    assert rosidl == get_typestore(Stores.ROS2_KILTED).hash_rihs01("tf2_msgs/msg/TFMessage")


def test_body_msg_round_trip_every_field():
    result = sample_person(7, track_id=42)
    header = convert.make_header(1_700_000_000_123_456_789, "camera_optical")
    msg = convert.person_to_body_msg(result, header, model="s2m-free")
    a = convert.body_msg_to_arrays(msg)
    assert a["track_id"] == 42 and a["model"] == "s2m-free"
    assert a["stamp_ns"] == 1_700_000_000_123_456_789 and a["frame_id"] == "camera_optical"
    np.testing.assert_array_equal(a["betas"], result.betas)
    np.testing.assert_array_equal(a["joints"], result.joints.astype(np.float64))
    np.testing.assert_array_equal(a["transl"], result.transl.astype(np.float64))
    np.testing.assert_array_equal(a["confidence"], result.confidence)
    np.testing.assert_array_equal(a["solved"], result.solved)
    np.testing.assert_array_equal(a["bbox"], result.bbox)
    assert a["joint_names"][0] == "pelvis" and a["joint_names"][23] == "right_hand"
    # quaternions: unit, and the same rotations as the axis-angle input
    q = a["quaternions"]
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-12)
    rotvec = np.concatenate([result.global_orient[None], result.body_pose]).astype(np.float64)
    expected = roma.rotvec_to_rotmat(torch.as_tensor(rotvec))
    got = roma.unitquat_to_rotmat(torch.as_tensor(q))
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)

    back = convert.body_msg_to_person(msg)
    np.testing.assert_allclose(
        roma.rotvec_to_rotmat(torch.as_tensor(back.body_pose, dtype=torch.float64)).numpy(),
        expected[1:].numpy(),
        atol=1e-5,
    )
    assert back.track_id == 42


def test_body_defaults_and_bad_input():
    result = sample_person(1)
    result.confidence = None
    result.solved = None
    result.bbox = None
    msg = convert.person_to_body_msg(result, convert.make_header())
    assert np.all(np.asarray(msg.confidence) == 1.0) and all(msg.solved)
    assert not np.any(np.asarray(msg.bbox))

    bad = sample_person(1)
    bad.joints = bad.joints.copy()
    bad.joints[3, 1] = np.nan
    with pytest.raises(ValueError, match="joints"):
        convert.person_to_body_msg(bad, convert.make_header())
    bad = sample_person(1)
    bad.betas = np.zeros(16, np.float32)
    with pytest.raises(ValueError, match="betas"):
        convert.person_to_body_msg(bad, convert.make_header())
    bad = sample_person(1, track_id=-1)
    with pytest.raises(ValueError, match="track_id"):
        convert.person_to_body_msg(bad, convert.make_header())


def test_body_array_sorted_by_track_id():
    people = [sample_person(i, track_id=t) for i, t in enumerate((5, 0, 2))]
    arr = convert.results_to_body_array(people, convert.make_header(5, "cam"))
    assert [b.track_id for b in arr.bodies] == [2, 5, 0]
    assert all(b.header.frame_id == "cam" for b in arr.bodies)


def test_skeleton_round_trip_and_missing_joints():
    rng = np.random.default_rng(3)
    pos = rng.normal(size=(17, 3))
    pos[4] = np.nan
    conf = rng.random(17)
    msg = convert.numpy_to_skeleton_msg(
        pos, "h36m17", convert.make_header(9, "mocap"), conf, track_id=4
    )
    sk = convert.skeleton_msg_to_numpy(msg)
    assert sk.format == "h36m17" and sk.track_id == 4 and sk.stamp_ns == 9
    assert sk.positions.shape == (17, 3) and np.isfinite(sk.positions).all()
    assert sk.confidences[4] == 0.0
    keep = np.arange(17) != 4
    np.testing.assert_allclose(sk.positions[keep], pos[keep], atol=1e-6)
    np.testing.assert_allclose(sk.confidences[keep], conf[keep], atol=1e-6)

    msg.confidences = msg.confidences[:5]
    with pytest.raises(ValueError, match="confidences"):
        convert.skeleton_msg_to_numpy(msg)
    msg.confidences = []
    msg.format = ""
    with pytest.raises(ValueError, match="format"):
        convert.skeleton_msg_to_numpy(msg)


def test_mesh_messages_round_trip():
    rng = np.random.default_rng(0)
    verts = rng.normal(size=(2, 50, 3)).astype(np.float32)
    faces = rng.integers(0, 50, size=(30, 3))
    header = convert.make_header(1, "cam")
    faces_msg = convert.mesh_faces_msg(faces, 50, "toy", header)
    mesh_msg = convert.body_mesh_msg(verts, [3, 8], header, faces_msg.faces_id)
    assert mesh_msg.faces_id == faces_msg.faces_id
    assert faces_msg.faces_id.startswith("toy:50:30:")
    np.testing.assert_array_equal(convert.body_mesh_to_numpy(mesh_msg), verts)
    np.testing.assert_array_equal(convert.mesh_faces_to_numpy(faces_msg), faces)
    assert list(mesh_msg.track_ids) == [3, 8]
    # a different face list gets a different id
    assert convert.faces_id("toy", 50, faces[::-1]) != faces_msg.faces_id
    with pytest.raises(ValueError, match="indices"):
        convert.mesh_faces_msg(faces + 50, 50, "toy", header)
    with pytest.raises(ValueError, match="track_ids"):
        convert.body_mesh_msg(verts, [1], header, "x")

    from s2m_ros.markers import mesh_markers

    markers = mesh_markers(verts, faces, header, track_ids=[3, 8])
    assert markers.markers[0].action == markers.markers[0].DELETEALL
    tri = markers.markers[1]
    assert tri.type == tri.TRIANGLE_LIST and tri.id == 3 and len(tri.points) == 90
    p = tri.points[4]  # second triangle's second corner
    np.testing.assert_allclose([p.x, p.y, p.z], verts[0, faces[1, 1]], atol=1e-6)


def _compose(tfs, frame: str, root: str) -> np.ndarray:
    """4x4 pose of ``frame`` in ``root`` by chaining the TransformStamped list."""
    by_child = {t.child_frame_id: t for t in tfs}
    pose = np.eye(4)
    while frame != root:
        t = by_child[frame]
        q = t.transform.rotation
        m = np.eye(4)
        m[:3, :3] = roma.unitquat_to_rotmat(torch.tensor([q.x, q.y, q.z, q.w])).numpy()
        tr = t.transform.translation
        m[:3, 3] = [tr.x, tr.y, tr.z]
        pose = m @ pose
        frame = t.header.frame_id
    return pose


def test_body_to_tf_frames_and_geometry():
    result = sample_person(11, track_id=2)
    header = convert.make_header(77, "camera_optical")
    tfs = convert.body_to_tf(result, header, prefix="s2m/")
    assert len(tfs) == 25
    assert tfs[0].header.frame_id == "camera_optical" and tfs[0].child_frame_id == "s2m/2/base"
    assert all(convert.stamp_to_ns(t.header.stamp) == 77 for t in tfs)
    names = JOINT_NAMES
    # chaining parent->child transforms puts every joint frame's origin at the joint position
    for j, name in enumerate(names):
        pose = _compose(tfs, f"s2m/2/{name}", "camera_optical")
        np.testing.assert_allclose(pose[:3, 3], result.joints[j], atol=1e-5)
    # the pelvis frame's orientation in the camera is global_orient
    pelvis = _compose(tfs, "s2m/2/pelvis", "camera_optical")[:3, :3]
    root = roma.rotvec_to_rotmat(torch.as_tensor(result.global_orient, dtype=torch.float64))
    np.testing.assert_allclose(pelvis, root.numpy(), atol=1e-6)
    # base frame (REP-103): x = facing direction (SMPL +Z), y = left (+X), z = up (+Y)
    base = _compose(tfs, "s2m/2/base", "camera_optical")[:3, :3]
    np.testing.assert_allclose(base[:, 0], pelvis[:, 2], atol=1e-6)
    np.testing.assert_allclose(base[:, 1], pelvis[:, 0], atol=1e-6)
    np.testing.assert_allclose(base[:, 2], pelvis[:, 1], atol=1e-6)
    with pytest.raises(ValueError, match="frame_id"):
        convert.body_to_tf(result, convert.make_header(77, ""))
    with pytest.raises(ValueError, match="prefix"):
        convert.body_to_tf(result, header, prefix="/s2m/")
