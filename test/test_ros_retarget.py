"""``s2m_retarget`` live over DDS: the node runs in a child process; this test publishes
BodyArray at ~25 Hz and checks JointState at the control rate within limits, a NaN body,
then the timeout -> hold -> neutral path (seen on /diagnostics and in the positions)."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")
pytest.importorskip("mink", reason="mink is not installed")

import roma  # noqa: E402
import torch  # noqa: E402

from s2m_model.results import PersonResult  # noqa: E402
from s2m_model.retarget import load_robot, synthetic  # noqa: E402
from s2m_ros import convert  # noqa: E402
from s2m_ros.retarget_node import choose_body  # noqa: E402
from s2m_ros.testing import free_domain_id, ros_env, ros_node, spin_until  # noqa: E402

NS = "/rt_test"
TO_CAM = np.diag([1.0, -1.0, -1.0])


def _people(frames: int) -> list[PersonResult]:
    m = synthetic.motion("wave", frames)
    local = m["local"].copy()
    local[:, 0] = TO_CAM @ local[:, 0]
    rotvec = roma.rotmat_to_rotvec(torch.as_tensor(local)).numpy().astype(np.float32)
    joints = (m["joints"] @ TO_CAM.T + np.array([0.0, 0.8, 3.0])).astype(np.float32)
    return [PersonResult(betas=np.zeros(10, np.float32), global_orient=rotvec[i, 0],
                         body_pose=rotvec[i, 1:], transl=np.zeros(3, np.float32),
                         joints=joints[i], track_id=5) for i in range(frames)]  # fmt: skip


def test_choose_body():
    def body(tid, z, box):
        joints = np.zeros((24, 3))
        joints[0, 2] = z
        return {"track_id": tid, "joints": joints, "bbox": np.array(box, float)}

    bodies = [body(1, 4.0, [0, 0, 100, 300]), body(2, 2.0, [0, 0, 50, 100])]
    assert choose_body(bodies, 0, None, "nearest")["track_id"] == 2
    assert choose_body(bodies, 0, None, "largest")["track_id"] == 1
    assert choose_body(bodies, 0, 1, "nearest")["track_id"] == 1  # locked while present
    assert choose_body(bodies, 3, None, "nearest") is None


def test_retarget_node_live(tmp_path):
    from diagnostic_msgs.msg import DiagnosticArray
    from s2m_ros.msg import BodyArray
    from sensor_msgs.msg import JointState

    robot = load_robot("s2m_humanoid")
    domain = free_domain_id(61)  # 62 when free
    child = subprocess.Popen(
        [sys.executable, "-m", "s2m_ros.retarget_node", "--ros-args", "-r", f"__ns:={NS}",
         "-p", "robot:=s2m_humanoid", "-p", "timeout_s:=0.3", "-p", "hold_s:=0.3",
         "-p", "ease_speed:=3.0", "-p", "control_rate_hz:=50.0"],
        env=ros_env(domain), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    states: list[tuple[float, np.ndarray]] = []
    diags: list[str] = []
    values: dict[str, str] = {}
    try:
        with ros_node("s2m_retarget_test", domain) as (node, executor):
            pub = node.create_publisher(BodyArray, f"{NS}/bodies", 5)

            def on_joint(msg):
                assert list(msg.name) == list(robot.joint_names)
                states.append((time.monotonic(), np.array(msg.position)))

            def on_diag(msg):
                for status in msg.status:
                    if status.name.startswith("s2m_retarget"):
                        diags.append(status.message)
                        values.update({kv.key: kv.value for kv in status.values})

            node.create_subscription(JointState, f"{NS}/joint_states", on_joint, 50)
            node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
            up = spin_until(executor, lambda: (pub.get_subscription_count() > 0 and states)
                            or child.poll() is not None, 60.0)  # fmt: skip
            assert up and child.poll() is None, child.stdout.read() if child.poll() else "no start"
            people = _people(50)
            start = time.monotonic()
            for i, person in enumerate(people):  # 2 s of bodies at 25 Hz
                header = convert.make_header(int((start + i * 0.04) * 1e9), "camera_optical")
                msg = convert.results_to_body_array([person], header)
                if i == 40:  # a body with NaN joints: rejected, the command stays finite
                    nan = type(msg.bodies[0].joints[0])(x=float("nan"), y=0.0, z=0.0)
                    msg.bodies[0].joints = [nan] * 24
                pub.publish(msg)
                spin_until(executor, lambda t=start + (i + 1) * 0.04: time.monotonic() >= t, 1.0)
            tracked_until = time.monotonic()
            spin_until(executor, lambda: "neutral" in diags and time.monotonic() > tracked_until
                       + 2.5, 15.0)  # fmt: skip
    finally:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    times = np.array([s[0] for s in states])
    q = np.stack([s[1] for s in states])
    assert np.isfinite(q).all()
    assert (q >= robot.lower - 1e-6).all() and (q <= robot.upper + 1e-6).all()
    window = (times > start + 0.5) & (times < start + 1.5)
    assert window.sum() >= 35, f"{window.sum()} JointState messages in 1 s (50 Hz wanted)"
    steps = np.abs(np.diff(q, axis=0)) / np.maximum(np.diff(times)[:, None], 1e-3)
    assert np.median(steps.max(1)) < robot.velocity_limit.max()
    during = q[(times > start + 1.0) & (times < tracked_until)]
    assert np.abs(during - robot.neutral).max() > 0.3  # it followed the waving arm
    assert "tracking" in diags and "hold" in diags and "neutral" in diags, diags
    np.testing.assert_allclose(q[-1], robot.neutral, atol=1e-3)  # eased back to neutral
    assert int(values["rejected"]) == 1 and int(values["solved"]) == 49, values
