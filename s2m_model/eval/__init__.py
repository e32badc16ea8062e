"""Evaluation: metrics (mm, percent, radians), scoring, protocol runners and report writers.

- :mod:`s2m_model.eval.metrics` — MPJPE, PA-MPJPE, PVE, PA-PVE, PCK, AUC, joint-angle error,
  silhouette IoU, acceleration error (all batched torch, numpy accepted).
- :mod:`s2m_model.eval.scoring` — scoring skeleton -> body methods against ground truth.
- :mod:`s2m_model.eval.runner` — ``s2m eval``'s driver: shards folder in, reports out.
- :mod:`s2m_model.eval.protocols` — dataset protocols (``h36m-p1``, ``h36m-p2``, ``3dhp``,
  ``surreal``) on top of the metrics.
- :mod:`s2m_model.eval.report` — ``metrics.json``, ``metrics.md`` and PNG plots.

Inputs are metres; position errors are reported in millimetres, as the field does. The metric
names below are loaded lazily (module ``__getattr__``), so importing this package — as
``s2m --help`` does for ``s2m eval`` — does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

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


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("s2m_model.eval.metrics"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
