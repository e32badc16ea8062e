"""Retargeting: SMPL-layout human bodies -> joint positions of a humanoid robot.

Pipeline (each step its own module):

1. :mod:`~s2m_model.retarget.human` — bodies (rotations, joints; SMPL frame y-up or camera
   frame) -> :class:`HumanMotion` in the robot world (z up, x forward, y left).
2. :mod:`~s2m_model.retarget.robot` — an MJCF/URDF robot via MuJoCo, checked against its
   :mod:`~s2m_model.retarget.mapping` table (``s2m_model/assets/robots/*.yaml``).
3. :mod:`~s2m_model.retarget.targets` — per-frame IK targets: bone-length scaling, ground,
   planted feet held in place.
4. :mod:`~s2m_model.retarget.solver` — mink differential IK with joint position, velocity and
   self-collision limits, posture regulariser, warm start; output clipped into the limits.
5. :mod:`~s2m_model.retarget.sequence` — a whole clip (+ One-Euro filter on ``q``);
   :mod:`~s2m_model.retarget.metrics` — its scores.

Example::

    from s2m_model.retarget import load_robot, from_smpl, retarget_motion
    robot = load_robot("g1")                      # Unitree G1 from the mjlab wheel
    motion = from_smpl(local_rotations, joints, t, frame="smpl")
    result = retarget_motion(robot, motion)       # result.q: (T, 29) radians
"""

from s2m_model.retarget.human import HumanMotion, from_smpl
from s2m_model.retarget.mapping import BUILTIN_ROBOTS, MappingTable, builtin_table, load_table
from s2m_model.retarget.robot import Robot, load_robot
from s2m_model.retarget.sequence import JointFilter, RetargetResult, retarget_motion
from s2m_model.retarget.solver import Retargeter, SolverConfig
from s2m_model.retarget.targets import TargetBuilder, TargetConfig

__all__ = [
    "BUILTIN_ROBOTS",
    "HumanMotion",
    "JointFilter",
    "MappingTable",
    "RetargetResult",
    "Retargeter",
    "Robot",
    "SolverConfig",
    "TargetBuilder",
    "TargetConfig",
    "builtin_table",
    "from_smpl",
    "load_robot",
    "load_table",
    "retarget_motion",
]
