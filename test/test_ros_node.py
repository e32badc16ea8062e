"""s2m_node in skeleton mode, as a separate process over DDS, in a namespace with a params file
(as the launch file runs it): Skeleton3D in -> BodyArray, BodyMesh, latched MeshFaces, /tf and
/diagnostics out; the file's values take effect; bad skeletons and bad parameters are reported
and the node keeps going; bad start-up parameters (on the command line or in the file) exit
with the reason.

The input skeletons are regressed from posed bodies of the same body model, so the expected
output (the posed joints) is known."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")

import torch  # noqa: E402
from rclpy.parameter import Parameter, parameter_value_to_python  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402

from s2m_ros import convert  # noqa: E402
from s2m_ros.testing import free_domain_id, ros_env, ros_node, spin_until  # noqa: E402

TIMEOUT_S = 30.0
NS = f"/s2m_node_test_{os.getpid()}"
FRAME = "test_camera"
# Rotations the h36m17 skeleton fully determines (hands and feet stay at rest), radians.
POSE = {
    "left_shoulder": (0.0, 0.0, -1.0), "right_shoulder": (0.0, 0.0, 1.0),
    "left_elbow": (0.0, -0.8, 0.0), "right_elbow": (0.0, 0.6, 0.0),
    "left_hip": (-0.6, 0.0, 0.0), "left_knee": (0.9, 0.0, 0.0),
    "right_hip": (0.3, 0.0, 0.1), "spine1": (0.2, 0.0, 0.0),
}  # fmt: skip


def posed_skeletons(body, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` poses of the body upright in a camera frame (x right, y down, z forward),
    3 m ahead: (h36m17 joints (count, 17, 3), SMPL joints (count, 24, 3)), metres."""
    names = list(body.joint_names)
    pose = torch.zeros(count, 23, 3, dtype=body.dtype)
    for k in range(count):
        for name, rotvec in POSE.items():
            pose[k, names.index(name) - 1] = torch.tensor(rotvec) * (k + 1) / count
    orient = torch.tensor([[np.pi, 0.0, 0.0]], dtype=body.dtype).expand(count, 3)
    transl = torch.tensor([[0.1, 0.2, 3.0]], dtype=body.dtype).expand(count, 3)
    with torch.no_grad():
        out = body(body_pose=pose, global_orient=orient, transl=transl)
        h36m = body.regress(out.vertices, "h36m17")
    return h36m.numpy(), out.joints.numpy()


def write_params(path, values: dict) -> str:
    """A ROS 2 params file for s2m_node under any namespace (the key of config/live.yaml)."""
    path.write_text(yaml.safe_dump({"/**/s2m_node": {"ros__parameters": values}}))
    return str(path)


def start_node(domain: int, *params: str, params_file: str | None = None) -> subprocess.Popen:
    args = [sys.executable, "-m", "s2m_ros.node", "--ros-args", "-r", f"__ns:={NS}"]
    if params_file is not None:
        args += ["--params-file", params_file]
    for p in params:
        args += ["-p", p]
    return subprocess.Popen(
        args, env=ros_env(domain), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def stop_node(child: subprocess.Popen, wait: bool = False) -> str:
    """SIGTERM (after waiting for the exit with ``wait``), then the output."""
    if wait:
        try:
            child.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass
    if child.poll() is None:
        child.terminate()
    try:
        out, err = child.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
    return f"rc={child.returncode}\n{out[-3000:]}\n{err[-3000:]}"


def diag_values(msg) -> dict[str, str]:
    (status,) = [s for s in msg.status if s.name.startswith("s2m_node")]
    return {kv.key: kv.value for kv in status.values} | {"_message": status.message}


# Set through the params file only: the outputs show that the file reached the node in NS.
FILE_PARAMS = {"camera_frame": FRAME, "tf_prefix": "people/", "temporal": False}


@pytest.fixture(scope="module")
def skeleton_node(tmp_path_factory):
    """A running s2m_node subprocess in skeleton mode, namespace NS, part of its parameters
    from a params file: (domain id, process)."""
    domain = free_domain_id()
    params_file = write_params(tmp_path_factory.mktemp("params") / "s2m.yaml", FILE_PARAMS)
    child = start_node(
        domain, "input_mode:=skeleton", "max_rate_hz:=0.0", params_file=params_file
    )
    yield domain, child
    log = stop_node(child)
    assert child.returncode == 0, log
    assert "Traceback" not in log, log


def _setup_probe(node):
    from diagnostic_msgs.msg import DiagnosticArray
    from s2m_ros.msg import BodyArray, BodyMesh, MeshFaces, Skeleton3D
    from tf2_msgs.msg import TFMessage

    got = {"bodies": [], "mesh": [], "faces": [], "tf": [], "diag": []}
    latched = QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
    )
    node.create_subscription(BodyArray, f"{NS}/bodies", got["bodies"].append, 50)
    node.create_subscription(BodyMesh, f"{NS}/mesh", got["mesh"].append, 50)
    node.create_subscription(MeshFaces, f"{NS}/mesh_faces", got["faces"].append, latched)
    node.create_subscription(TFMessage, "/tf", got["tf"].append, 100)
    node.create_subscription(DiagnosticArray, "/diagnostics", got["diag"].append, 10)
    pub = node.create_publisher(Skeleton3D, f"{NS}/skeleton", 10)
    return got, pub


def send_until_result(executor, pub, got, msg, child) -> object:
    """Publish ``msg`` until the BodyArray with its stamp arrives (best-effort input)."""
    stamp = convert.stamp_to_ns(msg.header.stamp)

    def result():
        return next(
            (b for b in got["bodies"] if convert.stamp_to_ns(b.header.stamp) == stamp), None
        )

    deadline = time.monotonic() + TIMEOUT_S
    while result() is None and time.monotonic() < deadline and child.poll() is None:
        pub.publish(msg)
        spin_until(executor, lambda: result() is not None, 0.5)
    assert result() is not None, f"no BodyArray for stamp {stamp}: {_tail(child)}"
    return result()


def _tail(child) -> str:
    return "node still running" if child.poll() is None else stop_node(child)


def test_skeleton_in_bodies_out(skeleton_node, body):
    domain, child = skeleton_node
    h36m, expected = posed_skeletons(body, 3)
    with ros_node("s2m_node_probe", domain) as (node, executor):
        got, pub = _setup_probe(node)
        assert spin_until(
            executor, lambda: pub.get_subscription_count() > 0 or child.poll() is not None, 60.0
        ), "s2m_node did not subscribe"
        assert child.poll() is None, _tail(child)
        stamps = [1_700_000_000_000_000_000 + k * 33_000_000 for k in range(len(h36m))]
        results = []
        for k, stamp in enumerate(stamps):
            msg = convert.numpy_to_skeleton_msg(
                h36m[k], "h36m17", convert.make_header(stamp, "mocap"), track_id=7
            )
            results.append(send_until_result(executor, pub, got, msg, child))

        def all_outputs() -> bool:
            tf_stamps = {convert.stamp_to_ns(m.transforms[0].header.stamp) for m in got["tf"]}
            return (
                bool(got["faces"]) and len(got["mesh"]) >= len(stamps) and stamps[-1] in tf_stamps
            )

        spin_until(executor, all_outputs, 5.0)

    for k, arr in enumerate(results):
        assert convert.stamp_to_ns(arr.header.stamp) == stamps[k]
        assert arr.header.frame_id == FRAME  # camera_frame overrides the input frame
        (b,) = arr.bodies
        a = convert.body_msg_to_arrays(b)
        assert a["track_id"] == 7 and a["model"] == body.name
        err = np.linalg.norm(a["joints"] - expected[k], axis=1)
        assert err.max() < 0.03 and err.mean() < 0.01, err
    # the joints differ between poses: the output follows the input, not a constant
    first, last = (
        convert.body_msg_to_arrays(r.bodies[0])["joints"] for r in (results[0], results[-1])
    )
    assert np.abs(first - last).max() > 0.1

    (faces_msg,) = got["faces"]
    faces = convert.mesh_faces_to_numpy(faces_msg)
    np.testing.assert_array_equal(faces, body.faces)
    meshes = {convert.stamp_to_ns(m.header.stamp): m for m in got["mesh"]}
    mesh = meshes[stamps[-1]]
    assert mesh.faces_id == faces_msg.faces_id and list(mesh.track_ids) == [7]
    verts = convert.body_mesh_to_numpy(mesh)
    assert verts.shape == (1, body.num_vertices, 3) and np.isfinite(verts).all()

    tf_frames = {
        (t.header.frame_id, t.child_frame_id): t
        for m in got["tf"]
        for t in m.transforms
        if convert.stamp_to_ns(t.header.stamp) == stamps[-1]
    }
    base = tf_frames[(FRAME, "people/7/base")]
    pelvis = convert.body_msg_to_arrays(results[-1].bodies[0])["joints"][0]
    t = base.transform.translation
    np.testing.assert_allclose([t.x, t.y, t.z], pelvis, atol=1e-6)
    assert ("people/7/left_elbow", "people/7/left_wrist") in tf_frames
    assert len(tf_frames) == 25  # camera -> base -> pelvis, then 23 joints


def test_bad_input_and_bad_parameter_keep_node_up(skeleton_node, body):
    from rclpy.parameter_client import AsyncParameterClient

    domain, child = skeleton_node
    h36m, _ = posed_skeletons(body, 1)
    with ros_node("s2m_node_probe2", domain) as (node, executor):
        got, pub = _setup_probe(node)
        assert spin_until(executor, lambda: pub.get_subscription_count() > 0, 60.0)
        # an all-NaN skeleton fails; the node reports it and goes on
        bad = convert.numpy_to_skeleton_msg(
            np.full((17, 3), np.nan), "h36m17", convert.make_header(5_000_000_000, "mocap")
        )

        def failed_reported() -> bool:
            return any(int(diag_values(m).get("frames_failed", 0)) >= 1 for m in got["diag"])

        # the input is best-effort: one message can be lost, so send it until it is reported
        deadline = time.monotonic() + TIMEOUT_S
        while not failed_reported() and time.monotonic() < deadline and child.poll() is None:
            pub.publish(bad)
            spin_until(executor, failed_reported, 1.5)
        assert failed_reported(), _tail(child)
        values = next(diag_values(m) for m in got["diag"] if diag_values(m)["frames_failed"] != "0")
        assert "no valid joint" in values["last_error"]
        assert "no valid joint" in values["_message"]

        # bad parameter values are rejected with a reason; good ones are applied
        client = AsyncParameterClient(node, f"{NS}/s2m_node")
        assert spin_until(executor, client.services_are_ready, 10.0)
        # the params file's values (not the defaults) are the node's, under NS
        future = client.get_parameters(list(FILE_PARAMS) + ["input_mode", "fov_deg"])
        assert spin_until(executor, future.done, 10.0)
        values = [parameter_value_to_python(v) for v in future.result().values]
        assert values == [*FILE_PARAMS.values(), "skeleton", 55.0]

        def set_param(name, value):
            future = client.set_parameters([Parameter(name, value=value)])
            assert spin_until(executor, future.done, 10.0)
            return future.result().results[0]

        reply = set_param("tf_prefix", "/absolute/")
        assert not reply.successful and "leading '/'" in reply.reason
        reply = set_param("skeleton_format", "no_such_format")
        assert not reply.successful and "not registered" in reply.reason
        assert not set_param("max_rate_hz", -1.0).successful
        assert not set_param("input_mode", "image").successful  # read-only
        assert set_param("tf_prefix", "renamed/").successful

        # the next good frame is processed, with the new TF prefix
        good = convert.numpy_to_skeleton_msg(
            h36m[0], "h36m17", convert.make_header(6_000_000_000, "mocap"), track_id=2
        )
        arr = send_until_result(executor, pub, got, good, child)
        assert len(arr.bodies) == 1
        spin_until(
            executor,
            lambda: any(
                t.child_frame_id == "renamed/2/base" for m in got["tf"] for t in m.transforms
            ),
            5.0,
        )
        assert any(t.child_frame_id == "renamed/2/base" for m in got["tf"] for t in m.transforms)
    assert child.poll() is None, _tail(child)


@pytest.mark.parametrize(
    ("param", "from_file", "reason"),
    [
        ("max_rate_hz:=-2.0", {}, "max_rate_hz"),
        ("skeleton_format:=nope", {}, "not registered"),
        (None, {"device": "banana"}, "device must be cpu, cuda or cuda:N, got 'banana'"),
    ],
)
def test_bad_startup_parameter_exits_with_reason(tmp_path, param, from_file, reason):
    """A bad value stops the start-up with the reason, also from a params file read under a
    namespace (a file ROS ignored would let the node start normally)."""
    params_file = write_params(tmp_path / "bad.yaml", from_file) if from_file else None
    cli = ["input_mode:=skeleton"] + ([param] if param else [])
    child = start_node(free_domain_id(), *cli, params_file=params_file)
    log = stop_node(child, wait=True)
    assert child.returncode == 2, log
    assert reason in log and "cannot start" in log, log
    assert "Traceback" not in log, log
