"""Live retargeting for a control loop: bodies in at camera rate, joint commands out at a fixed
control rate, with a safety state machine. No ROS here (``s2m_ros/retarget_node.py`` wraps it).

* :meth:`LiveRetargeter.update` — one body (SMPL layout, in the camera or SMPL frame) with its
  stamp: converted to the robot world, aligned to the heading of the first body of a tracking
  episode, turned into IK targets (scale and ground measured on the frames seen so far) and
  solved (warm-started mink IK, velocity limits over the stamp interval, optional filter).
  A body without a finite pelvis is rejected (counted; the last command stays).
* :meth:`LiveRetargeter.command` — the joint command at control time ``now``: between two body
  updates, the linear interpolation from the previous solution to the latest over one update
  period (so the output is smooth at e.g. 50 Hz from 15-30 Hz bodies, at the cost of one
  update of latency).

States: ``waiting`` (no body yet: the neutral pose), ``tracking``, ``hold`` (no valid body for
``timeout_s``: the last command is held) and ``neutral`` (held for ``hold_s`` more: eased to the
neutral pose at most ``ease_speed`` rad/s per joint). The next valid body resumes tracking from
the current command (no jump). Every command is finite, within the position limits, and moves
each joint at most ``velocity_limit * dt`` from the previous command; non-finite values keep
their last value.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from s2m_model.retarget.human import from_smpl, heading, yaw_matrix
from s2m_model.retarget.robot import Robot
from s2m_model.retarget.sequence import JointFilter
from s2m_model.retarget.solver import Retargeter, SolverConfig
from s2m_model.retarget.targets import TargetBuilder, TargetConfig, robot_reference
from s2m_model.smpl_layout import JOINT_INDEX

STATES = ("waiting", "tracking", "hold", "neutral")


@dataclass(frozen=True)
class LiveConfig:
    """Timing and safety settings (seconds, Hz, rad/s)."""

    control_rate_hz: float = 50.0
    timeout_s: float = 0.5
    hold_s: float = 1.0
    ease_speed: float = 0.5
    temporal_filter: bool = True
    frame: str = "camera"

    def __post_init__(self) -> None:
        for name in ("control_rate_hz", "timeout_s", "ease_speed"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not (math.isfinite(self.hold_s) and self.hold_s >= 0):
            raise ValueError(f"hold_s must be >= 0, got {self.hold_s!r}")


@dataclass
class _Solution:
    q: np.ndarray
    root_pos: np.ndarray
    root_quat: np.ndarray
    received: float


class LiveRetargeter:
    """Bodies -> rate-controlled, limit-safe joint commands (see the module docstring).

    Attributes:
        state: one of :data:`STATES`.
        q: ``(dof,)`` the last command. root_pos / root_quat: the base pose that goes with it.
        counters: ``bodies``, ``rejected``, ``solved``, ``ik_failures``, ``clamps``.
        solve_ms: wall time of the last update (targets + IK), ms.
    """

    def __init__(self, robot: Robot, config: LiveConfig | None = None,
                 solver: SolverConfig | None = None,
                 targets: TargetConfig | None = None) -> None:  # fmt: skip
        self.robot = robot
        self.config = config or LiveConfig()
        self._ref = robot_reference(robot)
        self._builder = TargetBuilder(robot, self._ref, config=targets)
        self._ik = Retargeter(robot, solver)
        self._filter = JointFilter(robot) if self.config.temporal_filter else None
        self.q = robot.neutral.copy()
        self.root_pos, self.root_quat = self._ik.root_pose
        self.state = "waiting"
        self.counters = {"bodies": 0, "rejected": 0, "solved": 0, "ik_failures": 0, "clamps": 0}
        self.solve_ms = 0.0
        self._latest: _Solution | None = None
        self._prev: _Solution | None = None
        self._align: tuple[np.ndarray, np.ndarray] | None = None
        self._last_stamp: float | None = None
        self._last_received: float | None = None
        self._last_command: float | None = None

    # ----------------------------------------------------------------------------- bodies in

    def _to_world(self, local, joints, solved):
        motion = from_smpl(local[None], joints[None], np.zeros(1), frame=self.config.frame,
                           solved=None if solved is None else solved[None],
                           align_heading=False)  # fmt: skip
        j, r = motion.joints[0], motion.rotations[0]
        if self._align is None:
            pelvis = JOINT_INDEX["pelvis"]
            origin = j[pelvis].copy()
            origin[2] = 0.0
            self._align = (yaw_matrix(-heading(r[pelvis])), origin)
        rz, origin = self._align
        return (j - origin) @ rz.T, rz @ r, motion.solved[0]

    def update(self, joints: np.ndarray, local: np.ndarray, solved: np.ndarray | None,
               stamp: float, received: float) -> bool:  # fmt: skip
        """Take one body; returns True if it was solved.

        Args:
            joints: ``(24, 3)`` metres in the input frame (``config.frame``).
            local: ``(24, 3, 3)`` local rotations or ``(24, 3)`` axis-angle.
            solved: ``(24,)`` rotation flags (None: all).
            stamp: the body's capture time (s) — IK velocity limits use stamp differences.
            received: the caller's clock (s) when it arrived — interpolation and timeouts.
        """
        self.counters["bodies"] += 1
        start = time.perf_counter()
        try:
            joints_w, rot_w, solved_w = self._to_world(np.asarray(local, float),
                                                       np.asarray(joints, float), solved)
        except ValueError:
            self.counters["rejected"] += 1
            return False
        if self.state in ("hold", "neutral", "waiting") and self._latest is not None:
            self._resume()
        dt = 1.0 / 30.0
        if self._last_stamp is not None and stamp > self._last_stamp:
            dt = min(stamp - self._last_stamp, self.config.timeout_s)
        targets = self._builder(joints_w, rot_w, solved_w, stamp)
        if targets is None:
            self.counters["rejected"] += 1
            return False
        failures = self._ik.failures
        q = self._ik.step(targets, dt)
        root_pos, root_quat = self._ik.root_pose
        self.counters["ik_failures"] += self._ik.failures - failures
        if self._filter is not None:
            q, root_pos, root_quat = self._filter(q, stamp, root_pos, root_quat)
        self._prev = self._latest or _Solution(self.q.copy(), root_pos, root_quat, received)
        self._latest = _Solution(q, root_pos, root_quat, received)
        self._last_stamp, self._last_received = stamp, received
        self.state = "tracking"
        self.counters["solved"] += 1
        self.solve_ms = (time.perf_counter() - start) * 1e3
        return True

    def _resume(self) -> None:
        """Restart tracking from the current command (no jump), with a fresh heading."""
        self._ik.reset(self.q, converge=False)
        self._builder.reset()
        if self._filter is not None:
            self._filter.reset()
        self._align = None
        self._latest = None
        self._last_stamp = None

    # ---------------------------------------------------------------------------- commands out

    def _goal(self, now: float) -> np.ndarray:
        cfg = self.config
        if self.state == "tracking" and self._last_received is not None:
            if now - self._last_received > cfg.timeout_s:
                self.state = "hold"
        if self.state == "hold" and self._last_received is not None:
            if now - self._last_received > cfg.timeout_s + cfg.hold_s:
                self.state = "neutral"
        if self.state == "tracking" and self._latest is not None and self._prev is not None:
            period = self._latest.received - self._prev.received
            period = min(max(period, 1.0 / cfg.control_rate_hz), cfg.timeout_s)
            alpha = min(max((now - self._latest.received) / period, 0.0), 1.0)
            prev, latest = self._prev.root_pos, self._latest.root_pos
            self.root_pos = prev + alpha * (latest - prev)
            self.root_quat = self._latest.root_quat
            return self._prev.q + alpha * (self._latest.q - self._prev.q)
        if self.state in ("neutral", "waiting"):
            return self.robot.neutral
        return self.q

    def command(self, now: float) -> np.ndarray:
        """The ``(dof,)`` joint command at control time ``now`` (the caller's clock, s)."""
        dt = 1.0 / self.config.control_rate_hz
        if self._last_command is not None:
            dt = max(now - self._last_command, 0.0)
        goal = np.asarray(self._goal(now), dtype=np.float64)
        goal = np.where(np.isfinite(goal), goal, self.q)
        goal = self.robot.clip(goal)
        speed = self.robot.velocity_limit
        if self.state in ("neutral", "waiting"):
            speed = np.minimum(speed, self.config.ease_speed)
        out = np.clip(goal, self.q - speed * dt, self.q + speed * dt)
        if np.any(np.abs(out - goal) > 1e-9) and self.state == "tracking":
            self.counters["clamps"] += 1
        self.q = self.robot.clip(out)
        self._last_command = now
        return self.q.copy()
