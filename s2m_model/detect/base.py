"""The detector interface: :class:`Detection` records and the :class:`Detector` protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from s2m_model.skeletons import get_format

COCO17_NAMES: tuple[str, ...] = get_format("coco17").joint_names
"""COCO-17 keypoint order (left/right from the person's point of view)."""


@dataclass
class Detection:
    """One person found in one image. Pixel coordinates: x right, y down, origin top-left.

    Attributes:
        keypoints: ``(17, 3)`` float32, COCO-17 order (:data:`COCO17_NAMES`): x, y in pixels
            and a confidence in [0, 1]. Points may lie outside the image (predicted, occluded).
        bbox: ``(4,)`` float32 ``x0, y0, x1, y1`` in pixels, clipped to the image.
        score: person score in [0, 1] (its meaning is backend specific, see the backend).
        extra: named extra points beyond COCO-17, each ``(3,)`` float32 x, y (pixels),
            confidence: BlazePose heels, foot_index (toes), pinky/index/thumb; empty if the
            backend has none.
        keypoints_blazepose: ``(33, 4)`` float32 BlazePose landmarks when available:
            x, y (pixels), z_rel (depth relative to the hip midpoint, in pixels at the scale of
            x; smaller = closer to the camera), visibility in [0, 1].
        keypoints_world: ``(33, 3)`` float32 metric BlazePose landmarks when available, in
            metres, origin at the hip midpoint, axes aligned with the camera (x right, y down,
            z forward).
        mask: ``(H, W)`` float32 person probability in [0, 1] (the full image), or ``None``.
    """

    keypoints: np.ndarray
    bbox: np.ndarray
    score: float
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    keypoints_blazepose: np.ndarray | None = None
    keypoints_world: np.ndarray | None = None
    mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.keypoints = np.asarray(self.keypoints, dtype=np.float32)
        self.bbox = np.asarray(self.bbox, dtype=np.float32)
        if self.keypoints.shape != (17, 3):
            raise ValueError(f"keypoints must have shape (17, 3), got {self.keypoints.shape}")
        if self.bbox.shape != (4,):
            raise ValueError(f"bbox must have shape (4,), got {self.bbox.shape}")
        if not (np.isfinite(self.keypoints).all() and np.isfinite(self.bbox).all()):
            raise ValueError("keypoints and bbox must be finite")
        self.score = float(self.score)

    def named(self) -> dict[str, np.ndarray]:
        """All points by name (COCO-17 then extras), each ``(3,)`` x, y, confidence."""
        points = {name: self.keypoints[i] for i, name in enumerate(COCO17_NAMES)}
        points.update(self.extra)
        return points


class DetectorError(RuntimeError):
    """The detector failed on a frame (a native/graph error), as opposed to finding nobody
    (an empty list). The detector stays usable: the next ``detect`` call runs on a fresh
    state. Callers count these failures where users see them (results, diagnostics)."""


@runtime_checkable
class Detector(Protocol):
    """Anything that finds people and their 2D keypoints in an RGB image."""

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Detect people in ``image``.

        Args:
            image: ``(H, W, 3)`` uint8 RGB (other layouts accepted by
                :func:`s2m_model.image.validate_image` are converted).

        Returns:
            Detections, best first; an empty list when nobody is found.

        Raises:
            ValueError: ``image`` is not a valid image (empty, wrong shape, too large, ...).
        """
        ...

    def close(self) -> None:
        """Release native resources; the detector must not be used afterwards."""
        ...
