"""Differential IK with mink: IK targets -> robot joint positions, frame by frame.

Per frame, a few QP steps of mink's differential IK (``mink.solve_ik`` with the DAQP solver)
from the previous solution (warm start, so the motion stays continuous, no flips):

* one ``FrameTask`` per mapped row (position / orientation costs from the table, scaled per
  frame by :class:`~s2m_model.retarget.targets.FrameTargets`), on the floating base and all
  joints;
* a ``PostureTask`` towards the table's neutral pose (regulariser: joints the targets do not
  determine — wrists, waist — stay near it instead of drifting);
* limits: ``ConfigurationLimit`` (joint position limits), ``VelocityLimit`` (the robot's joint
  velocity limits over the frame's ``dt``) and, when the table lists geom pairs,
  ``CollisionAvoidanceLimit`` (self-collision).

The output is then made safe regardless of the QP: joint positions are clipped into the
limits and each joint's step into ``velocity_limit * dt`` (the counts of such clamps are
reported: they should be rare). A QP failure keeps the previous pose and counts a failure.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import mink
import numpy as np

from s2m_model.retarget.robot import Robot
from s2m_model.retarget.targets import FrameTargets

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SolverConfig:
    """IK settings.

    Attributes:
        iterations: QP steps per frame (warm-started).
        first_iterations: QP steps for the first frame (no velocity limit: converge from the
            neutral pose).
        posture_cost: weight of the neutral-pose regulariser (per radian).
        damping: Levenberg-Marquardt damping of the QP.
        velocity_scale: fraction of the robot's joint velocity limits allowed.
        collision: use self-collision avoidance when the table lists geom pairs.
        solver: QP solver name (qpsolvers).
    """

    iterations: int = 2
    first_iterations: int = 40
    posture_cost: float = 0.05
    damping: float = 1e-3
    velocity_scale: float = 1.0
    collision: bool = True
    solver: str = "daqp"

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.first_iterations < 1:
            raise ValueError("iterations and first_iterations must be >= 1")
        if not 0 < self.velocity_scale <= 1.0:
            raise ValueError(f"velocity_scale must be in (0, 1], got {self.velocity_scale}")
        if self.posture_cost < 0 or self.damping < 0:
            raise ValueError("posture_cost and damping must be >= 0")


class Retargeter:
    """Stateful IK: :meth:`step` maps one frame's targets to ``q``; :meth:`reset` restarts.

    Attributes:
        q: ``(dof,)`` last output joint positions (always within limits).
        qpos: last full MuJoCo configuration (base pose + joints).
        failures / clamps: counts of QP failures and of safety clamps applied.
    """

    def __init__(self, robot: Robot, config: SolverConfig | None = None) -> None:
        self.robot = robot
        self.config = config or SolverConfig()
        model = robot.model
        self.configuration = mink.Configuration(model)
        self._tasks = []
        for row in robot.table.frames:
            name, kind = robot.frame(row.human)
            self._tasks.append(mink.FrameTask(name, kind, position_cost=row.position,
                                              orientation_cost=row.orientation, lm_damping=1.0))
        self._costs = [(row.position, row.orientation) for row in robot.table.frames]
        self._posture = mink.PostureTask(model, cost=self.config.posture_cost)
        self._posture.set_target(robot.qpos(robot.neutral))
        scaled = robot.velocity_limit * self.config.velocity_scale
        velocities = dict(zip(robot.joint_names, scaled.tolist(), strict=True))
        self._config_limit = mink.ConfigurationLimit(model)
        self._velocity_limit = mink.VelocityLimit(model, velocities)
        self._limits = [self._config_limit, self._velocity_limit]
        pairs = robot.table.collision_pairs
        if self.config.collision and pairs:
            self._limits.append(mink.CollisionAvoidanceLimit(
                model, [(list(a), list(b)) for a, b in pairs],
                minimum_distance_from_collisions=0.01, collision_detection_distance=0.05))
        self.failures = 0
        self.clamps = 0
        self.reset()

    def reset(self, q: np.ndarray | None = None, converge: bool = True) -> None:
        """Start again from ``q`` (default: the neutral pose), base at the origin.

        ``converge`` (default) lets the next frame converge without velocity limits (a fresh
        start); ``False`` keeps them (resuming from a commanded pose must not jump).
        """
        q0 = self.robot.neutral if q is None else self.robot.clip(np.asarray(q, float))
        self.qpos = self.robot.qpos(q0)
        self.configuration.update(self.qpos)
        self.q = q0.copy()
        self._started = not converge

    def _set_targets(self, targets: FrameTargets) -> list:
        tasks = []
        for k, task in enumerate(self._tasks):
            pc, oc = float(targets.position_cost[k]), float(targets.orientation_cost[k])
            if pc <= 0 and oc <= 0:
                continue
            if (pc, oc) != self._costs[k]:
                task.set_position_cost(pc)
                task.set_orientation_cost(oc)
                self._costs[k] = (pc, oc)
            task.set_target(mink.SE3.from_rotation_and_translation(
                mink.SO3.from_matrix(targets.rotations[k]), targets.positions[k]))
            tasks.append(task)
        return tasks

    def step(self, targets: FrameTargets | None, dt: float) -> np.ndarray:
        """One frame: IK towards ``targets`` over ``dt`` seconds; returns ``q`` (dof,).

        ``targets`` None (nothing to follow) holds the last pose.
        """
        if not (np.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a positive number of seconds, got {dt}")
        if targets is None:
            return self.q.copy()
        tasks = self._set_targets(targets)
        if not tasks:
            return self.q.copy()
        tasks.append(self._posture)
        first = not self._started
        n = self.config.first_iterations if first else self.config.iterations
        limits = [self._config_limit] if first else self._limits
        step_dt = dt / n
        cfg = self.configuration
        try:
            for _ in range(n):
                v = mink.solve_ik(cfg, tasks, step_dt, self.config.solver,
                                  damping=self.config.damping, limits=limits)
                cfg.integrate_inplace(v, step_dt)
        except mink.NoSolutionFound:
            self.failures += 1
            cfg.update(self.qpos)
            return self.q.copy()
        qpos = cfg.q.copy()
        if not np.isfinite(qpos).all():
            self.failures += 1
            cfg.update(self.qpos)
            return self.q.copy()
        q = qpos[self.robot.qpos_index]
        safe = self.robot.clip(q)
        if not first:
            step = self.robot.velocity_limit * self.config.velocity_scale * dt
            safe = np.clip(safe, self.q - step, self.q + step)
        if np.any(np.abs(safe - q) > 1e-9):
            self.clamps += 1
            qpos[self.robot.qpos_index] = safe
            cfg.update(qpos)
        self.q, self.qpos, self._started = safe, qpos, True
        return safe.copy()

    @property
    def root_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """``(position (3,), quaternion w x y z (4,))`` of the floating base."""
        i = self.robot.root_qpos
        return self.qpos[i:i + 3].copy(), self.qpos[i + 3:i + 7].copy()
