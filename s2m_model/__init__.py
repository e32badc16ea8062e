"""s2m_model — Skeleton2Mesh as a pure-Python library (no ROS imports).

Submodules, each named after its concept:

- :mod:`s2m_model.body` — SMPL-layout body models (the free ``s2m-free`` body, real SMPL files).
- :mod:`s2m_model.skeletons` — registered skeleton formats (``smpl24``, ``h36m17``, ``coco17``...).
- :mod:`s2m_model.dik` — analytic differentiable inverse kinematics, skeleton -> SMPL rotations.

Conventions: lengths in metres, angles in radians, rotations as axis-angle ``(..., 3)`` unless
named otherwise. Body frame as in SMPL: Y up, the body faces +Z, its left is +X. Camera frame:
x right, y down, z forward.
"""

__version__ = "0.1.0"
