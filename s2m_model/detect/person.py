"""Person detectors (boxes, before landmarks) and the rotated square crops cut around them.

A *person detector* finds where people are; a landmark model then runs on a crop around each
one (top-down). This module holds the pieces shared by all person detectors:

- :class:`PersonBox`: one person found in one image — an axis-aligned box, a score and, when
  the detector has them, alignment keypoints (BlazePose: hip centre, full-body scale point,
  shoulder centre, upper-body scale point).
- :class:`PersonDetector`: the protocol (``detect_people(image) -> list[PersonBox]``).
- :class:`Roi`: a rotated square region of interest in pixels, built from a box
  (:meth:`Roi.from_box`) or from two alignment points (:meth:`Roi.from_alignment`, MediaPipe's
  ``AlignmentPointsRectsCalculator`` + ``RectTransformationCalculator``), with the affine maps
  between the crop and the image (:meth:`Roi.crop_to_image`, :meth:`Roi.crop`).
- :func:`box_iou` (pairwise IoU matrix) and :func:`weighted_nms` (MediaPipe's weighted
  non-maximum suppression).

Pixel coordinates: x right, y down, origin at the top-left corner of the top-left pixel.
Angles in radians; a positive :attr:`Roi.rotation` turns the crop clockwise on screen (the
image y axis points down).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass
class PersonBox:
    """One person found by a person detector.

    Attributes:
        box: ``(4,)`` float32 ``x0, y0, x1, y1`` in pixels (not clipped: a person cut by the
            border may extend beyond the image).
        score: detector confidence in [0, 1].
        keypoints: ``(K, 2)`` float32 alignment keypoints in pixels, or ``None`` (box-only
            detectors such as HOG). BlazePose: ``K = 4`` — hip centre, full-body scale point,
            shoulder centre, upper-body scale point.
        source: name of the detector (``"blazepose"``, ``"hog"``, ...), for statistics.
    """

    box: np.ndarray
    score: float
    keypoints: np.ndarray | None = None
    source: str = ""

    def __post_init__(self) -> None:
        self.box = np.asarray(self.box, dtype=np.float32).reshape(-1)
        if self.box.shape != (4,) or not np.isfinite(self.box).all():
            raise ValueError(f"box must be 4 finite numbers x0, y0, x1, y1, got {self.box}")
        if self.keypoints is not None:
            self.keypoints = np.asarray(self.keypoints, dtype=np.float32)
            if self.keypoints.ndim != 2 or self.keypoints.shape[1] != 2:
                raise ValueError(f"keypoints must be (K, 2), got {self.keypoints.shape}")
        self.score = float(self.score)

    @property
    def height(self) -> float:
        """Box height in pixels."""
        return float(self.box[3] - self.box[1])


@runtime_checkable
class PersonDetector(Protocol):
    """Anything that finds people (boxes, optionally alignment keypoints) in an RGB image."""

    def detect_people(self, image: np.ndarray) -> list[PersonBox]:
        """People in ``image`` (``(H, W, 3)`` uint8 RGB), best score first; empty if none.

        Raises:
            ValueError: ``image`` is not a valid image.
        """
        ...

    def close(self) -> None:
        """Release native resources."""
        ...


@dataclass(frozen=True)
class Roi:
    """A rotated square region of interest in image pixels.

    Attributes:
        cx, cy: centre (pixels).
        size: side length (pixels).
        rotation: radians; the crop's "up" (-y) maps to the image direction
            ``(sin r, -cos r)``, so ``r = 0`` is an upright crop.
    """

    cx: float
    cy: float
    size: float
    rotation: float = 0.0
    meta: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        values = (self.cx, self.cy, self.size, self.rotation)
        if not all(math.isfinite(v) for v in values) or self.size <= 0:
            raise ValueError(f"Roi needs finite values and size > 0, got {values}")

    @classmethod
    def from_box(cls, box: np.ndarray, scale: float = 1.25, rotation: float = 0.0) -> Roi:
        """Square around a box: side = ``scale`` x the longer box side, same centre."""
        x0, y0, x1, y1 = (float(v) for v in np.asarray(box, dtype=np.float64).reshape(4))
        side = max(x1 - x0, y1 - y0, 1.0) * scale
        return cls(0.5 * (x0 + x1), 0.5 * (y0 + y1), side, rotation)

    @classmethod
    def from_alignment(
        cls,
        centre: np.ndarray,
        scale_point: np.ndarray,
        *,
        scale: float = 1.25,
        target_angle: float = math.pi / 2,
    ) -> Roi:
        """MediaPipe's alignment-points ROI: centred on ``centre``, side = 2 x |scale_point -
        centre| x ``scale``, rotated so that ``centre -> scale_point`` points up in the crop.

        ``centre`` and ``scale_point`` are ``(2,)`` pixels (BlazePose: the hip centre and the
        full-body scale point). ``target_angle`` is the crop-frame angle of that vector
        (90 degrees: straight up), as in ``rotation_vector_target_angle_degrees``.
        """
        c = np.asarray(centre, dtype=np.float64).reshape(2)
        p = np.asarray(scale_point, dtype=np.float64).reshape(2)
        radius = float(np.hypot(*(p - c)))
        rotation = target_angle - math.atan2(-(p[1] - c[1]), p[0] - c[0])
        rotation = (rotation + math.pi) % (2 * math.pi) - math.pi
        return cls(float(c[0]), float(c[1]), max(2.0 * radius * scale, 1.0), rotation)

    def crop_to_image(self, crop_size: int) -> np.ndarray:
        """``(2, 3)`` affine map from crop pixels (``crop_size`` square) to image pixels.

        A point at crop pixel ``(u, v)`` (corner convention, ``0..crop_size``) lies at image
        ``A @ (u, v, 1)``.
        """
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        k = self.size / crop_size
        # Centre the crop, scale to image pixels, rotate, then move to the ROI centre.
        lin = np.array([[c, -s], [s, c]]) * k
        offset = np.array([self.cx, self.cy]) - lin @ np.array([crop_size / 2, crop_size / 2])
        return np.concatenate([lin, offset[:, None]], axis=1)

    def image_to_crop(self, crop_size: int) -> np.ndarray:
        """``(2, 3)`` affine map from image pixels to crop pixels (inverse of the above)."""
        fwd = self.crop_to_image(crop_size)
        lin_inv = np.linalg.inv(fwd[:, :2])
        return np.concatenate([lin_inv, (-lin_inv @ fwd[:, 2])[:, None]], axis=1)

    def crop(
        self, image: np.ndarray, crop_size: int, *, border: str = "replicate"
    ) -> np.ndarray:
        """The ROI resampled to a ``crop_size`` square (bilinear; small people are upscaled).

        Args:
            image: ``(H, W, C)`` array.
            border: ``"replicate"`` (edge pixels, MediaPipe's landmark crop) or ``"zero"``.
        """
        import cv2

        modes = {"replicate": cv2.BORDER_REPLICATE, "zero": cv2.BORDER_CONSTANT}
        if border not in modes:
            raise ValueError(f"border must be one of {sorted(modes)}, got {border!r}")
        # Pixel centres sit at +0.5 in the corner convention used by crop_to_image.
        m = self.crop_to_image(crop_size)
        half = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
        m = (m @ half)[:, :3]
        m[:, 2] -= 0.5
        return cv2.warpAffine(
            image,
            m,
            (crop_size, crop_size),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=modes[border],
        )

    def corners(self) -> np.ndarray:
        """``(4, 2)`` image-pixel corners (top-left, top-right, bottom-right, bottom-left)."""
        m = self.crop_to_image(1)
        unit = np.array([[0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]], dtype=np.float64)
        return unit @ m.T

    def bounds(self) -> np.ndarray:
        """``(4,)`` axis-aligned ``x0, y0, x1, y1`` enclosing the rotated square."""
        pts = self.corners()
        return np.concatenate([pts.min(0), pts.max(0)])


def _boxes_and_overlaps(a, b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(N,)`` and ``(M,)`` areas of the ``x0, y0, x1, y1`` boxes ``a`` and ``b`` and their
    ``(N, M)`` pairwise intersection areas."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0.0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0.0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0.0, None).prod(-1)
    return area_a, area_b, inter


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of ``(N, 4)`` and ``(M, 4)`` ``x0, y0, x1, y1`` boxes -> ``(N, M)``."""
    area_a, area_b, inter = _boxes_and_overlaps(a, b)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def box_inside_fraction(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, M)``: the fraction of each of the ``(N, 4)`` boxes ``a`` that lies inside each of
    the ``(M, 4)`` boxes ``b`` (``x0, y0, x1, y1``; 0 for an empty box)."""
    area_a, _, inter = _boxes_and_overlaps(a, b)
    return np.where(area_a[:, None] > 0, inter / np.maximum(area_a[:, None], 1e-12), 0.0)


def weighted_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    extras: np.ndarray | None = None,
    *,
    iou_threshold: float = 0.3,
    max_out: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """MediaPipe's weighted non-maximum suppression (``algorithm: WEIGHTED``).

    Best score first, every remaining candidate with IoU > ``iou_threshold`` to it joins its
    cluster; the cluster's box (and ``extras``, e.g. keypoints) is the score-weighted mean, its
    score the best one. Averaging the overlapping anchors steadies the boxes a lot compared
    with keeping the single best anchor.

    Args:
        boxes: ``(N, 4)`` ``x0, y0, x1, y1``.
        scores: ``(N,)``.
        extras: optional ``(N, D)`` values averaged with the boxes.
        max_out: keep at most this many clusters.

    Returns:
        ``(boxes (K, 4), scores (K,), extras (K, D) or None)``, best first.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(boxes) != len(scores):
        raise ValueError(f"{len(boxes)} boxes but {len(scores)} scores")
    ex = None if extras is None else np.asarray(extras, dtype=np.float64).reshape(len(boxes), -1)
    order = np.argsort(-scores, kind="stable")
    out_b, out_s, out_e = [], [], []
    while order.size and (max_out is None or len(out_b) < max_out):
        iou = box_iou(boxes[order[:1]], boxes[order])[0]
        cluster = order[iou > iou_threshold]
        if cluster.size == 0:  # a degenerate (zero-area) best box still forms its own cluster
            cluster = order[:1]
        w = scores[cluster] / max(scores[cluster].sum(), 1e-12)
        out_b.append(w @ boxes[cluster])
        out_s.append(scores[order[0]])
        if ex is not None:
            out_e.append(w @ ex[cluster])
        order = order[~np.isin(order, cluster)]
    k = len(out_b)
    return (
        np.asarray(out_b, dtype=np.float64).reshape(k, 4),
        np.asarray(out_s, dtype=np.float64).reshape(k),
        None if ex is None else np.asarray(out_e, dtype=np.float64).reshape(k, ex.shape[1]),
    )


class UnionPersonDetector:
    """Several person detectors as one: all their people, duplicates removed.

    A person found by an earlier detector wins over the same person from a later one (pass
    the detector with alignment keypoints, e.g. BlazePose, first). Two results are the same
    person when their boxes overlap by more than ``iou``.

    Args:
        detectors: the detectors, in order of preference.
        iou: box IoU above which two people are one.
        max_people: keep at most this many.
    """

    def __init__(self, detectors: list[PersonDetector], *, iou: float = 0.5,
                 max_people: int = 6) -> None:
        if not detectors:
            raise ValueError("UnionPersonDetector needs at least one detector")
        self.detectors = list(detectors)
        self.iou, self.max_people = float(iou), int(max_people)

    def detect_people(self, image: np.ndarray) -> list[PersonBox]:
        """Everyone any detector finds, preferred detectors first, then by score."""
        kept: list[PersonBox] = []
        for detector in self.detectors:
            for p in detector.detect_people(image):
                if kept and box_iou(p.box[None], np.stack([k.box for k in kept])).max() > self.iou:
                    continue
                kept.append(p)
        return kept[: self.max_people]

    def reset(self) -> None:
        """Reset every detector that keeps per-stream state."""
        for detector in self.detectors:
            reset = getattr(detector, "reset", None)
            if callable(reset):
                reset()

    def close(self) -> None:
        """Close every detector."""
        for detector in self.detectors:
            detector.close()


class ThrottledPersonDetector:
    """Runs a (slow) person detector only on every ``every``-th call, returning no people on
    the others — for streams where the found people are then followed by other means (e.g.
    :class:`~s2m_model.detect.blazepose_tflite.BlazePoseTFLite`'s ROI tracking)."""

    def __init__(self, detector: PersonDetector, every: int) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.detector, self.every, self._calls = detector, int(every), 0

    def detect_people(self, image: np.ndarray) -> list[PersonBox]:
        """The wrapped detector's people on every ``every``-th call (the first included)."""
        run = self._calls % self.every == 0
        self._calls += 1
        return self.detector.detect_people(image) if run else []

    def reset(self) -> None:
        """Run on the next call again (new stream)."""
        self._calls = 0

    def close(self) -> None:
        """Close the wrapped detector."""
        self.detector.close()
