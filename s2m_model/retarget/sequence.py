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
FILTER_MIN_CUTOFF_HZ = 3.0
FILTER_BETA = 0.5


class JointFilter:
    """One-Euro filter on ``q`` (per joint), re-clipped into the limits.

    The filter is a convex blend of past and new samples, so filtered values stay within the
    joint limits and move no faster than the unfiltered ones; the clip only guards rounding.
    """

    def __init__(self, robot: Robot, min_cutoff: float = FILTER_MIN_CUTOFF_HZ,
                 beta: float = FILTER_BETA) -> None:  # fmt: skip
        self.robot = robot
        self._filter = OneEuroFilter(min_cutoff=min_cutoff, beta=beta, d_cutoff=1.0)

    def __call__(self, q: np.ndarray, t: float) -> np.ndarray:
        out = self._filter(np.asarray(q, np.float64)[:, None], t)[:, 0]
        return self.robot.clip(out)

    def reset(self) -> None:
        self._filter.reset()


@dataclass
class RetargetResult:
    """A retargeted clip (T frames, K mapped rows, dof joints).

    Attributes:
        q: ``(T, dof)`` joint positions (filtered when ``filtered``), radians, within limits.
        q_raw: ``(T, dof)`` the IK output before the temporal filter.
        root_pos / root_quat: ``(T, 3)`` / ``(T, 4)`` floating base (w, x, y, z), world.
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
    for i in range(T):
        start = time.perf_counter()
        frame = builder(motion.joints[i], motion.rotations[i], motion.solved[i], motion.t[i])
        dt = float(dts[i - 1]) if i > 0 else default_dt
        q_raw[i] = ik.step(frame, dt)
        q[i] = filt(q_raw[i], motion.t[i]) if filt is not None else q_raw[i]
        ms[i] = (time.perf_counter() - start) * 1e3
        root_pos[i], root_quat[i] = ik.root_pose
        if frame is not None:
            followed[i] = True
            used = (frame.position_cost > 0)
            tgt[i, used] = frame.positions[used]
            planted[i] = (frame.planted.get("left", False), frame.planted.get("right", False))
    return RetargetResult(
        q=q, q_raw=q_raw, root_pos=root_pos, root_quat=root_quat, t=motion.t.copy(),
        targets=tgt, planted=planted, followed=followed, retarget_ms=ms,
        names=robot.joint_names, filtered=temporal_filter, failures=ik.failures,
        clamps=ik.clamps, scale=scale.as_dict(ref.humans),
    )  # fmt: skip
