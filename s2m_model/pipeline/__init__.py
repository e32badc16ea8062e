"""The s2m pipeline: RGB frame -> 2D keypoints -> 3D skeleton -> DIK -> posed body in metres.

>>> from s2m_model.pipeline import Pipeline, PipelineConfig
>>> pipe = Pipeline(PipelineConfig(device="cpu"))
>>> for person in pipe.process(frame, camera=(fx, fy, cx, cy), stamp=t):  # doctest: +SKIP
...     person.transl, person.vertices       # camera frame, metres

Stages of :meth:`Pipeline.process` (each timed in ``PersonResult.timings_ms``):

1. ``detect`` — the detector (MediaPipe BlazePose by default, video mode) gives COCO-17
   keypoints in pixels with confidences (and, for MediaPipe, metric world landmarks).
2. ``lift`` — the front end (``config.lifter``, :mod:`~s2m_model.pipeline.front_end`) gives a
   root-relative skeleton in camera axes (x right, y down, z forward, metres): ``s2m`` lifts
   the keypoints to ``h36m17``; ``mediapipe-world`` takes the detector's ``blazepose33`` world
   landmarks as they are.
3. ``dik`` — :func:`s2m_model.dik.solve` gives SMPL-layout local rotations (confidences from
   the detector; the previous frame of the same track as the straight-limb fallback),
   through :class:`~s2m_model.pipeline.dik_runner.DIKRunner`.
4. ``filter`` (temporal mode) — per-track One-Euro filters on the rotations (on SO(3)) and on
   the translation, see :mod:`s2m_model.temporal`.
5. ``body`` — the body model is posed, and its metric position in the camera frame is solved
   by linear least squares so that its projected COCO-17 points match the 2D keypoints
   (:mod:`~s2m_model.pipeline.placement`). Intrinsics come from the ``camera`` argument, else
   a pinhole with ``fov_deg`` horizontal field of view centred on the image
   (:meth:`s2m_model.camera.Camera.coerce`).

:meth:`Pipeline.process_skeleton` skips 1-2 for users with their own 3D estimator: the result
is in the input skeleton's frame.

Modules: :mod:`~s2m_model.pipeline.config` (settings, validation, YAML),
:mod:`~s2m_model.pipeline.front_end`, :mod:`~s2m_model.pipeline.dik_runner`,
:mod:`~s2m_model.pipeline.placement` (geometry), :mod:`~s2m_model.pipeline.confidence`
(per-joint confidence tables), :mod:`~s2m_model.pipeline.orchestrator` (the ``Pipeline``).
"""

from __future__ import annotations

from s2m_model.pipeline.confidence import COCO17_TO_H36M17_CONFIDENCE
from s2m_model.pipeline.config import (
    DEFAULT_THREADS,
    FIELD_RULES,
    LIFTERS,
    PipelineConfig,
    set_torch_threads,
)
from s2m_model.pipeline.orchestrator import COUNTERS, STAGES, DetectedFrame, Pipeline
from s2m_model.pipeline.placement import MIN_DEPTH_M, estimate_translation
from s2m_model.results import PersonResult

__all__ = [
    "COCO17_TO_H36M17_CONFIDENCE",
    "COUNTERS",
    "DEFAULT_THREADS",
    "DetectedFrame",
    "FIELD_RULES",
    "LIFTERS",
    "MIN_DEPTH_M",
    "Pipeline",
    "PipelineConfig",
    "PersonResult",
    "STAGES",
    "estimate_translation",
    "set_torch_threads",
]
