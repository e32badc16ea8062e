"""``s2m_retarget`` — the ROS 2 node that turns s2m bodies into robot joint commands.

Subscribes ``bodies`` (s2m_ros/BodyArray), follows one person and publishes, at a fixed
control rate (``control_rate_hz``, default 50 Hz):

* ``joint_states`` — sensor_msgs/JointState: the robot's joint names (as in its MJCF/URDF, so
  ``robot_state_publisher`` with the same URDF can turn them into link TF), positions (rad)
  within the joint limits, velocities (rad/s) within the velocity limits;
* ``/tf`` — the floating base ``world_frame`` -> ``base_frame`` (default: the robot's root body)
  when ``publish_tf`` is true;
* ``robot_markers`` — visualization_msgs/MarkerArray: the robot's links as spheres and lines
  (``world_frame``), for RViz (about 10 Hz);
* ``/diagnostics`` — diagnostic_msgs/DiagnosticArray at 1 Hz and at every state change: state,
  bodies, solves, rejected bodies, IK failures, clamps, solve time.

The maths and the safety state machine (waiting / tracking / hold after ``timeout_s`` /
ease to neutral after ``hold_s``; NaN bodies rejected, every command finite and within limits)
are :class:`s2m_model.retarget.live.LiveRetargeter`. Person choice: ``track_id`` > 0 follows
that id; 0 locks onto the ``track_select`` person (``nearest`` to the camera or ``largest``
box) and keeps it while it is seen. Input frame: ``input_frame`` ``camera`` (bodies from images,
the default) or ``smpl`` (bodies from mocap/skeletons, y up). Parameters: ``config/retarget.yaml``.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

NODE_NAME = "s2m_retarget"
#: Parameter defaults (name -> value); the types follow the defaults.
PARAMETERS: dict[str, Any] = {
    "robot": "g1",
    "mapping": "",
    "bodies_topic": "bodies",
    "joint_states_topic": "joint_states",
    "markers_topic": "robot_markers",
    "track_id": 0,
    "track_select": "nearest",
    "input_frame": "camera",
    "control_rate_hz": 50.0,
    "timeout_s": 0.5,
    "hold_s": 1.0,
    "ease_speed": 0.5,
    "temporal_filter": True,
    "iterations": 2,
    "velocity_scale": 1.0,
    "collision": True,
    "publish_tf": True,
    "world_frame": "world",
    "base_frame": "",
    "markers_rate_hz": 10.0,
}
TRACK_SELECT = ("nearest", "largest")


def choose_body(bodies: list[dict[str, Any]], track_id: int, locked: int | None,
                select: str) -> dict[str, Any] | None:  # fmt: skip
    """The body to follow among ``convert.body_msg_to_arrays`` dicts of one BodyArray.

    ``track_id`` > 0: that track only. Else the ``locked`` track while present, else the
    nearest (smallest pelvis distance from the frame origin, i.e. the camera) or the largest
    (bounding-box area) body.
    """
    if track_id > 0:
        return next((b for b in bodies if b["track_id"] == track_id), None)
    if locked is not None:
        same = next((b for b in bodies if b["track_id"] == locked), None)
        if same is not None:
            return same
    finite = [b for b in bodies if np.isfinite(b["joints"][0]).all()]
    if not finite:
        return None
    if select == "largest":
        def area(b):
            x0, y0, x1, y1 = b["bbox"]
            return (x1 - x0) * (y1 - y0)

        return max(finite, key=area)
    return min(finite, key=lambda b: float(np.linalg.norm(b["joints"][0])))


def _check(params: dict[str, Any]) -> None:
    if params["track_select"] not in TRACK_SELECT:
        raise ValueError(f"track_select must be one of {TRACK_SELECT}, got "
                         f"{params['track_select']!r}")  # fmt: skip
    if params["input_frame"] not in ("camera", "smpl"):
        raise ValueError(f"input_frame must be 'camera' or 'smpl', got {params['input_frame']!r}")
    if params["track_id"] < 0:
        raise ValueError(f"track_id must be >= 0, got {params['track_id']}")
    for name in ("control_rate_hz", "markers_rate_hz"):
        if not (math.isfinite(params[name]) and params[name] > 0):
            raise ValueError(f"{name} must be > 0, got {params[name]}")


class RetargetNode:
    """The node's wiring (publishers, subscription, timers) around a LiveRetargeter."""

    def __init__(self, node: Any) -> None:
        import roma
        import torch
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import JointState
        from tf2_msgs.msg import TFMessage
        from visualization_msgs.msg import MarkerArray

        from s2m_model.retarget.live import LiveConfig, LiveRetargeter
        from s2m_model.retarget.robot import load_robot
        from s2m_model.retarget.solver import SolverConfig
        from s2m_ros.msg import BodyArray

        self.node = node
        self._roma, self._torch = roma, torch
        p = {name: node.declare_parameter(name, default).value
             for name, default in PARAMETERS.items()}  # fmt: skip
        _check(p)
        self.params = p
        self.robot = load_robot(p["robot"], p["mapping"] or None)
        self.live = LiveRetargeter(
            self.robot,
            LiveConfig(control_rate_hz=p["control_rate_hz"], timeout_s=p["timeout_s"],
                       hold_s=p["hold_s"], ease_speed=p["ease_speed"],
                       temporal_filter=p["temporal_filter"], frame=p["input_frame"]),
            SolverConfig(iterations=p["iterations"], velocity_scale=p["velocity_scale"],
                         collision=p["collision"]),
        )  # fmt: skip
        self.base_frame = p["base_frame"] or self.robot.table.root_body or "base_link"
        self._locked: int | None = None
        self._last_q: np.ndarray | None = None
        self._last_t: float | None = None
        self.published = 0
        self._state = self.live.state
        self._joint_pub = node.create_publisher(JointState, p["joint_states_topic"], 10)
        self._marker_pub = node.create_publisher(MarkerArray, p["markers_topic"], 1)
        self._diag_pub = node.create_publisher(DiagnosticArray, "/diagnostics", 1)
        self._tf_pub = node.create_publisher(TFMessage, "/tf", 100) if p["publish_tf"] else None
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self._sub = node.create_subscription(BodyArray, p["bodies_topic"], self._on_bodies, qos)
        node.create_timer(1.0 / p["control_rate_hz"], self._on_control)
        node.create_timer(1.0 / p["markers_rate_hz"], self._on_markers)
        node.create_timer(1.0, self._on_diagnostics)
        node.get_logger().info(
            f"{NODE_NAME}: {self.robot.name} ({self.robot.dof} DoF) from {self.robot.model_file}; "
            f"bodies on {self._sub.topic_name}, joint states on {self._joint_pub.topic_name} at "
            f"{p['control_rate_hz']:g} Hz")  # fmt: skip

    def _now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def _on_bodies(self, msg: Any) -> None:
        from s2m_ros.convert import body_msg_to_arrays, stamp_to_ns

        bodies = [body_msg_to_arrays(b) for b in msg.bodies]
        body = choose_body(bodies, self.params["track_id"], self._locked,
                           self.params["track_select"])  # fmt: skip
        if body is None:
            return  # nobody: the timeout leads to hold, then neutral
        self._locked = body["track_id"] or None
        quats = body["quaternions"]
        if not np.isfinite(quats).all():
            quats = np.where(np.isfinite(quats), quats, [0.0, 0.0, 0.0, 1.0])
        local = self._roma.unitquat_to_rotmat(self._torch.as_tensor(quats)).numpy()
        stamp = stamp_to_ns(msg.header.stamp) * 1e-9
        self.live.update(body["joints"], local, body["solved"], stamp, self._now())

    def _on_control(self) -> None:
        from sensor_msgs.msg import JointState

        now = self._now()
        q = self.live.command(now)
        velocity = np.zeros_like(q)
        if self._last_q is not None and self._last_t is not None and now > self._last_t:
            velocity = (q - self._last_q) / (now - self._last_t)
        self._last_q, self._last_t = q, now
        stamp = self.node.get_clock().now().to_msg()
        msg = JointState()
        msg.header.stamp = stamp
        msg.name = list(self.robot.joint_names)
        msg.position = [float(v) for v in q]
        msg.velocity = [float(v) for v in velocity]
        self._joint_pub.publish(msg)
        self.published += 1
        if self._tf_pub is not None and self.live.state != "waiting":
            self._publish_base_tf(stamp)
        if self.live.state != self._state:  # state changes are reported at once
            self._state = self.live.state
            self._on_diagnostics()

    def _publish_base_tf(self, stamp: Any) -> None:
        from geometry_msgs.msg import TransformStamped
        from tf2_msgs.msg import TFMessage

        pos, quat = self.live.root_pos, self.live.root_quat  # quat: w x y z
        tf = TransformStamped()
        tf.header.stamp = stamp
        tf.header.frame_id = self.params["world_frame"]
        tf.child_frame_id = self.base_frame
        tf.transform.translation.x, tf.transform.translation.y, tf.transform.translation.z = (
            float(pos[0]), float(pos[1]), float(pos[2]))  # fmt: skip
        r = tf.transform.rotation
        r.w, r.x, r.y, r.z = (float(v) for v in quat)
        self._tf_pub.publish(TFMessage(transforms=[tf]))

    def _on_markers(self) -> None:
        from geometry_msgs.msg import Point
        from visualization_msgs.msg import Marker, MarkerArray

        model = self.robot.model
        data = self.robot.forward(self.robot.qpos(self.live.q, self.live.root_pos,
                                                  self.live.root_quat))  # fmt: skip
        stamp = self.node.get_clock().now().to_msg()
        joints = Marker(type=Marker.SPHERE_LIST, action=Marker.ADD, id=0, ns="robot_links")
        bones = Marker(type=Marker.LINE_LIST, action=Marker.ADD, id=1, ns="robot_links")
        for m in (joints, bones):
            m.header.frame_id = self.params["world_frame"]
            m.header.stamp = stamp
            m.pose.orientation.w = 1.0
            m.color.r, m.color.g, m.color.b, m.color.a = 0.2, 0.6, 1.0, 1.0
        joints.scale.x = joints.scale.y = joints.scale.z = 0.04
        bones.scale.x = 0.015
        for b in range(1, model.nbody):
            p = data.xpos[b]
            joints.points.append(Point(x=float(p[0]), y=float(p[1]), z=float(p[2])))
            parent = model.body_parentid[b]
            if parent > 0:
                q = data.xpos[parent]
                bones.points += [Point(x=float(q[0]), y=float(q[1]), z=float(q[2])),
                                 Point(x=float(p[0]), y=float(p[1]), z=float(p[2]))]
        self._marker_pub.publish(MarkerArray(markers=[joints, bones]))

    def _on_diagnostics(self) -> None:
        from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

        live = self.live
        level = DiagnosticStatus.OK
        if live.state in ("hold", "neutral", "waiting"):
            level = DiagnosticStatus.WARN
        values = {"state": live.state, "robot": self.robot.name, "dof": self.robot.dof,
                  "track_id": self._locked or self.params["track_id"],
                  "joint_states_published": self.published,
                  "solve_ms_last": f"{live.solve_ms:.2f}", **live.counters}  # fmt: skip
        status = DiagnosticStatus(
            level=level, name=f"{NODE_NAME}: retargeting", hardware_id=self.robot.name,
            message=live.state, values=[KeyValue(key=k, value=str(v)) for k, v in values.items()],
        )  # fmt: skip
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.node.get_clock().now().to_msg()
        self._diag_pub.publish(msg)


def main(args: list[str] | None = None) -> int:
    """Entry point of ``s2m_retarget`` (``--ros-args -p robot:=g1 --params-file ...``)."""
    import rclpy
    from rclpy.executors import ExternalShutdownException

    rclpy.init(args=args)
    node = rclpy.create_node(NODE_NAME)
    try:
        RetargetNode(node)
    except (ValueError, FileNotFoundError) as exc:
        node.get_logger().error(f"{NODE_NAME}: {exc}")
        node.destroy_node()
        rclpy.try_shutdown()
        return 2
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
