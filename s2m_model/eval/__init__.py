"""Evaluation: metrics (mm, percent, radians), protocol runners and report writers.

- :mod:`s2m_model.eval.metrics` — MPJPE, PA-MPJPE, PVE, PA-PVE, PCK, AUC, joint-angle error,
  silhouette IoU, acceleration error (all batched torch, numpy accepted).
- :mod:`s2m_model.eval.protocols` — dataset protocols (``h36m-p1``, ``h36m-p2``, ``3dhp``,
  ``surreal``) on top of the metrics.
- :mod:`s2m_model.eval.report` — ``metrics.json``, ``metrics.md`` and PNG plots.

Inputs are metres; position errors are reported in millimetres, as the field does.
"""

from s2m_model.eval.metrics import (
    PCK_THRESHOLDS_MM,
    PW3D_ANGLE_JOINTS,
    acceleration_error,
    auc,
    joint_angle_error,
    mpjpe,
    pa_mpjpe,
    pa_pve,
    pck,
    procrustes_align,
    pve,
    silhouette_iou,
)

__all__ = [
    "PCK_THRESHOLDS_MM",
    "PW3D_ANGLE_JOINTS",
    "acceleration_error",
    "auc",
    "joint_angle_error",
    "mpjpe",
    "pa_mpjpe",
    "pa_pve",
    "pck",
    "procrustes_align",
    "pve",
    "silhouette_iou",
]
