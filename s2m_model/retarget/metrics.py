"""Scores of a retargeted clip: limits, end-effector error, foot sliding, jitter (no I/O).

Definitions (what ``summary.json``, ``bench/retarget.py`` and ``docs/retarget.md`` report):

* ``joint_limit_violations`` — (frame, joint) entries of ``q`` outside ``[lower, upper]``
  (tolerance 1e-6 rad);
* ``velocity_limit_violations`` — (frame, joint) steps with ``|q[t] - q[t-1]| / dt`` above the
  joint's velocity limit (tolerance 1e-6 relative);
* ``end_effector_err_mm`` — per group (hands, feet, head): distance between the IK target
  points (the scaled human joints, feet on the ground when planted) and the robot frames by
  forward kinematics of the output, median and p95 over frames and group members;
* ``foot_slide_mm_s`` — horizontal speed of a robot sole while the human's foot on that side
  is planted in two consecutive frames (mean, p95; 0 = no sliding);
* ``jitter_rad_s2`` — mean absolute joint acceleration ``|q[t+1] - 2 q[t] + q[t-1]| / dt^2``.
"""

from __future__ import annotations

import numpy as np

from s2m_model.retarget.robot import Robot
from s2m_model.retarget.sequence import RetargetResult
from s2m_model.retarget.targets import robot_reference
from s2m_model.util.timing import summarize

_TOL = 1e-6


def joint_limit_violations(robot: Robot, q: np.ndarray) -> int:
    """Count of ``q`` (T, dof) entries outside the position limits."""
    q = np.asarray(q)
    bad = (q < robot.lower - _TOL) | (q > robot.upper + _TOL) | ~np.isfinite(q)
    return int(bad.sum())


def velocity_limit_violations(robot: Robot, q: np.ndarray, t: np.ndarray) -> int:
    """Count of per-joint steps faster than the velocity limits."""
    if len(q) < 2:
        return 0
    dt = np.diff(np.asarray(t))[:, None]
    speed = np.abs(np.diff(np.asarray(q), axis=0)) / dt
    return int((speed > robot.velocity_limit * (1 + _TOL) + _TOL).sum())


def jitter(q: np.ndarray, t: np.ndarray) -> float:
    """Mean absolute joint acceleration (rad/s^2) of ``q`` (T, dof) sampled at ``t``."""
    if len(q) < 3:
        return 0.0
    dt = float(np.median(np.diff(t)))
    acc = (q[2:] - 2 * q[1:-1] + q[:-2]) / dt**2
    return float(np.abs(acc).mean())


def _stats(values: list[float] | np.ndarray, scale: float = 1.0) -> dict[str, float]:
    s = summarize(np.asarray(values, dtype=np.float64) * scale, ndigits=2)
    return {k: s[k] for k in ("median", "p95", "mean", "max", "count") if k in s}


def end_effector_errors(robot: Robot, result: RetargetResult) -> dict[str, dict[str, float]]:
    """Per group: target-vs-FK distances in mm (see the module docstring)."""
    ref = robot_reference(robot)
    groups = robot.table.end_effectors
    rows = {g: [ref.humans.index(h) for h in hs] for g, hs in groups.items()}
    errors: dict[str, list[float]] = {g: [] for g in groups}
    for i in np.flatnonzero(result.followed):
        qpos = robot.qpos(result.q[i], result.root_pos[i], result.root_quat[i])
        pos, _ = robot.frame_poses(qpos, ref.humans)
        for g, ks in rows.items():
            for k in ks:
                if np.isfinite(result.targets[i, k]).all():
                    errors[g].append(float(np.linalg.norm(pos[k] - result.targets[i, k])))
    return {g: _stats(v, 1e3) for g, v in errors.items()}


def foot_sliding(robot: Robot, result: RetargetResult) -> dict[str, float]:
    """Robot sole speed (mm/s) while the human foot stays planted (see module docstring)."""
    speeds: list[float] = []
    for side, col in (("left", 0), ("right", 1)):
        if side not in robot.table.feet or not robot.table.feet[side][1]:
            continue
        sole = robot.table.feet[side][1]
        prev = None
        for i in range(len(result.t)):
            if not result.planted[i, col]:
                prev = None
                continue
            qpos = robot.qpos(result.q[i], result.root_pos[i], result.root_quat[i])
            p = robot.site_position(qpos, sole)
            if prev is not None:
                speeds.append(float(np.linalg.norm(p[:2] - prev[0][:2]) / (result.t[i] - prev[1])))
            prev = (p, result.t[i])
    return _stats(speeds, 1e3)


def summarize_result(robot: Robot, result: RetargetResult) -> dict:
    """The ``summary.json`` fields of a retargeted clip."""
    return {
        "robot": robot.name,
        "frames": int(len(result.t)),
        "dof": robot.dof,
        "frames_followed": int(result.followed.sum()),
        "joint_limit_violations": joint_limit_violations(robot, result.q),
        "velocity_limit_violations": velocity_limit_violations(robot, result.q, result.t),
        "retarget_ms": _stats(result.retarget_ms),
        "end_effector_err_mm": end_effector_errors(robot, result),
        "foot_slide_mm_s": foot_sliding(robot, result),
        "planted_fraction": {"left": round(float(result.planted[:, 0].mean()), 3),
                             "right": round(float(result.planted[:, 1].mean()), 3)},
        "jitter_rad_s2": {"output": round(jitter(result.q, result.t), 3),
                          "unfiltered": round(jitter(result.q_raw, result.t), 3)},
        "temporal_filter": result.filtered,
        "ik_failures": result.failures,
        "safety_clamps": result.clamps,
        "scale": result.scale,
    }
