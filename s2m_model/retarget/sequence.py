"""Retarget a whole clip: :class:`HumanMotion` -> robot joint trajectory (no I/O)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from s2m_model.retarget.human import HumanMotion
from s2m_model.retarget.robot import Robot
from s2m_model.retarget.solver import Retargeter, SolverConfig
from s2m_model.retarget.targets import (
    TargetBuilder,
    TargetConfig,
    fit_scale,
    floor_height,
    robot_reference,
)
from s2m_model.temporal import OneEuroFilter

#: One-Euro settings of the output filter on q (per joint: Hz, Hz per rad/s).
FILTER_MIN_CUTOFF_HZ = 5.0
FILTER_BETA = 2.0


class JointFilter:
    """One-Euro filter on the robot pose: joint positions ``q`` and the floating base, each
    coordinate with its own adaptive cutoff (shape ``(n, 1)`` for ``OneEuroFilter``).

    Base and joints are filtered alike, so the lag is the same for both (filtering only the
    joints would make planted feet slide). The output is clipped into the joint limits and its
    per-joint steps into ``velocity_limit * dt``: a lagging low-pass filter can otherwise take a
    larger step than its input when it catches up.
    """

    def __init__(self, robot: Robot, min_cutoff: float = FILTER_MIN_CUTOFF_HZ,
                 beta: float = FILTER_BETA) -> None:  # fmt: skip
        self.robot = robot
        self._filter = OneEuroFilter(min_cutoff=min_cutoff, beta=beta, d_cutoff=1.0)
        self._last: tuple[np.ndarray, float] | None = None

    def __call__(
        self, q: np.ndarray, t: float, root_pos: np.ndarray | None = None,
        root_quat: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:  # fmt: skip
        """Filter one sample at time ``t`` (s); returns ``(q, root_pos, root_quat)``."""
        parts = [np.asarray(q, np.float64)]
        if root_pos is not None and root_quat is not None:
            quat = np.asarray(root_quat, np.float64)
            if self._last is not None and self._last[0].size == q.size + 7:
                prev_quat = self._last[0][q.size + 3:]
                quat = -quat if float(quat @ prev_quat) < 0 else quat  # same hemisphere
            parts += [np.asarray(root_pos, np.float64), quat]
        x = np.concatenate(parts)
        out = self._filter(x[:, None], t)[:, 0]
        n = len(q)
        qf = self.robot.clip(out[:n])
        if self._last is not None and self._last[0].size == x.size and t > self._last[1]:
            step = self.robot.velocity_limit * (t - self._last[1])
            prev = self._last[0][:n]
            qf = np.clip(qf, prev - step, prev + step)
        out[:n] = qf
        self._last = (out.copy(), t)
        if len(parts) == 1:
            return qf, None, None
        quat = out[n + 3:]
        return qf, out[n:n + 3], quat / max(np.linalg.norm(quat), 1e-12)

    def reset(self) -> None:
        self._filter.reset()
        self._last = None


@dataclass
class RetargetResult:
    """A retargeted clip (T frames, K mapped rows, dof joints).

    Attributes:
        q: ``(T, dof)`` joint positions (filtered when ``filtered``), radians, within limits.
        q_raw: ``(T, dof)`` the IK output before the temporal filter.
        root_pos / root_quat: ``(T, 3)`` / ``(T, 4)`` floating base (w, x, y, z), world
            (filtered with ``q``).
        t: ``(T,)`` seconds.
        targets: ``(T, K, 3)`` IK target points (NaN where a row had no target).
        planted: ``(T, 2)`` left / right foot contacts of the human.
        followed: ``(T,)`` True where the frame had targets (False: pose held).
        retarget_ms: ``(T,)`` wall time of target building + IK per frame.
        names: joint names (the order of ``q``'s columns).
    """

    q: np.ndarray
    q_raw: np.ndarray
    root_pos: np.ndarray
    root_quat: np.ndarray
    t: np.ndarray
    targets: np.ndarray
    planted: np.ndarray
    followed: np.ndarray
    retarget_ms: np.ndarray
    names: tuple[str, ...]
    filtered: bool
    failures: int = 0
    clamps: int = 0
    scale: dict[str, float] = field(default_factory=dict)


def retarget_motion(
    robot: Robot,
    motion: HumanMotion,
    *,
    solver: SolverConfig | None = None,
    targets: TargetConfig | None = None,
    temporal_filter: bool = True,
) -> RetargetResult:
    """Retarget a clip offline: scale and ground measured on the whole clip, then frame by frame.

    Raises:
        ValueError: no frame where the mapped joints can be measured.
    """
    ref = robot_reference(robot)
    scale = fit_scale(ref, motion.joints)
    floor = floor_height(motion.joints, ref)
    builder = TargetBuilder(robot, ref, scale=scale, floor=floor, config=targets)
    ik = Retargeter(robot, solver)
    filt = JointFilter(robot) if temporal_filter else None
    T, K = len(motion), len(ref.humans)
    q = np.zeros((T, robot.dof))
    q_raw = np.zeros((T, robot.dof))
    root_pos, root_quat = np.zeros((T, 3)), np.zeros((T, 4))
    tgt = np.full((T, K, 3), np.nan)
    planted = np.zeros((T, 2), bool)
    followed = np.zeros(T, bool)
    ms = np.zeros(T)
    dts = np.diff(motion.t)
    default_dt = float(np.median(dts)) if dts.size else 1.0 / 30.0
    pending: list[int] = []  # frames before the first followed one
    for i in range(T):
        start = time.perf_counter()
        frame = builder(motion.joints[i], motion.rotations[i], motion.solved[i], motion.t[i])
        if frame is None and not followed.any():
            # Nothing to follow yet: these frames take the first solved pose afterwards, so the
            # trajectory does not jump from the neutral pose when the person appears.
            pending.append(i)
            ms[i] = (time.perf_counter() - start) * 1e3
            continue
        dt = float(dts[i - 1]) if i > 0 else default_dt
        q_raw[i] = ik.step(frame, dt)
        root_pos[i], root_quat[i] = ik.root_pose
        if filt is not None:
            q[i], root_pos[i], root_quat[i] = filt(q_raw[i], motion.t[i], *ik.root_pose)
        else:
            q[i] = q_raw[i]
        ms[i] = (time.perf_counter() - start) * 1e3
        if frame is not None:
            followed[i] = True
            used = (frame.position_cost > 0)
            tgt[i, used] = frame.positions[used]
            planted[i] = (frame.planted.get("left", False), frame.planted.get("right", False))
            if pending:
                for arr in (q, q_raw, root_pos, root_quat):
                    arr[pending] = arr[i]
                pending = []
    return RetargetResult(
        q=q, q_raw=q_raw, root_pos=root_pos, root_quat=root_quat, t=motion.t.copy(),
        targets=tgt, planted=planted, followed=followed, retarget_ms=ms,
        names=robot.joint_names, filtered=temporal_filter, failures=ik.failures,
        clamps=ik.clamps, scale=scale.as_dict(ref.humans),
    )  # fmt: skip
