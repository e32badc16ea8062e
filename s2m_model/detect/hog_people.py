"""OpenCV's built-in HOG + linear-SVM people detector as a
:class:`~s2m_model.detect.person.PersonDetector` (boxes only, no keypoints).

``cv2.HOGDescriptor_getDefaultPeopleDetector()`` (Dalal & Triggs) ships inside OpenCV (the
``opencv-contrib-python`` wheel that mediapipe depends on): nothing to download. Its window is
64x128 pixels with the person ~96 px tall inside, so people under ~100 px are found only when
the image is upscaled first (``upscale``); it works best on upright, walking or standing
people seen from the front, back or side. Boxes are the detection windows (person plus a
margin), merged by :func:`~s2m_model.detect.person.weighted_nms`; the score is the SVM margin
squashed to [0, 1] with a logistic function.
"""

from __future__ import annotations

import threading

import numpy as np

from s2m_model.detect.person import PersonBox, weighted_nms
from s2m_model.image import validate_image


class HogPersonDetector:
    """People boxes from OpenCV's default HOG people detector.

    Args:
        upscale: resize the image by this factor before detection (2.0 finds people down to
            ~50 px tall, at ~4x the cost).
        win_stride: window stride in pixels (of the upscaled image).
        scale: image pyramid step.
        min_score: threshold on the squashed SVM score in [0, 1].
        nms_iou: IoU above which windows are merged.
        max_people: keep at most this many people.

    Raises:
        ValueError: invalid parameters. ImportError: OpenCV is not installed.
    """

    def __init__(self, *, upscale: float = 1.0, win_stride: int = 8, scale: float = 1.05,
                 min_score: float = 0.5, nms_iou: float = 0.4, max_people: int = 6) -> None:
        import cv2

        if upscale <= 0 or win_stride < 1 or scale <= 1.0:
            raise ValueError(f"need upscale > 0, win_stride >= 1 and scale > 1, got {upscale}, "
                             f"{win_stride}, {scale}")
        if not 0.0 <= min_score <= 1.0 or max_people < 1:
            raise ValueError(f"min_score must be in [0, 1] and max_people >= 1, got {min_score}, "
                             f"{max_people}")
        self.upscale, self.win_stride, self.scale = float(upscale), int(win_stride), float(scale)
        self.min_score, self.nms_iou, self.max_people = float(min_score), float(nms_iou), int(
            max_people)
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self._lock = threading.Lock()

    def detect_people(self, image: np.ndarray) -> list[PersonBox]:
        """People in ``image``, best first (see :class:`PersonDetector`)."""
        import cv2

        rgb = validate_image(image)
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        if self.upscale != 1.0:
            grey = cv2.resize(grey, None, fx=self.upscale, fy=self.upscale,
                              interpolation=cv2.INTER_LINEAR)
        if min(grey.shape) < 128:
            return []
        with self._lock:
            if self._hog is None:
                raise RuntimeError("HogPersonDetector is closed")
            rects, weights = self._hog.detectMultiScale(
                grey, winStride=(self.win_stride, self.win_stride), padding=(8, 8),
                scale=self.scale)
        if len(rects) == 0:
            return []
        rects = np.asarray(rects, dtype=np.float64).reshape(-1, 4) / self.upscale
        scores = 1.0 / (1.0 + np.exp(-np.asarray(weights, dtype=np.float64).reshape(-1)))
        keep = scores >= self.min_score
        boxes = np.column_stack([rects[:, :2], rects[:, :2] + rects[:, 2:]])[keep]
        boxes, scores, _ = weighted_nms(boxes, scores[keep], iou_threshold=self.nms_iou,
                                        max_out=self.max_people)
        return [PersonBox(b, float(s), None, source="hog") for b, s in zip(boxes, scores,
                                                                           strict=True)]

    def close(self) -> None:
        """Release the detector; further calls raise RuntimeError."""
        with self._lock:
            self._hog = None
