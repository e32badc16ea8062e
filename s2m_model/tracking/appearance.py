"""Appearance features for the tracker: a colour histogram of each person's pixels.

Cheap (one OpenCV histogram per person) and enough to tell apart people who wear different
colours when they cross, and to give a person lost for up to ~1 s their id back near where
they were last seen (:class:`~s2m_model.tracking.tracker.MultiPersonTracker`'s
re-identification); it does not identify people across long gaps or changes of lighting.
"""

from __future__ import annotations

import numpy as np

from s2m_model.detect.base import Detection


def color_histogram(image: np.ndarray, detection: Detection, *, bins: tuple[int, int] = (12, 4),
                    min_mask: float = 0.5) -> np.ndarray:
    """Hue x saturation histogram of a person, L2-normalised, ``(bins[0] * bins[1],)`` float64.

    Pixels: the detection's mask above ``min_mask`` when it has one, else the central part of
    its box (the middle 60 % in x, 10-90 % in y, which holds mostly the person). A person
    outside the image gives a zero vector.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        detection: the person.
    """
    import cv2

    height, width = image.shape[:2]
    x0, y0, x1, y1 = detection.bbox.astype(np.float64)
    w, h = x1 - x0, y1 - y0
    ix0, ix1 = int(np.clip(x0 + 0.2 * w, 0, width)), int(np.clip(x1 - 0.2 * w, 0, width))
    iy0, iy1 = int(np.clip(y0 + 0.1 * h, 0, height)), int(np.clip(y1 - 0.1 * h, 0, height))
    if ix1 <= ix0 or iy1 <= iy0:
        return np.zeros(bins[0] * bins[1])
    hsv = cv2.cvtColor(np.ascontiguousarray(image[iy0:iy1, ix0:ix1]), cv2.COLOR_RGB2HSV)
    mask = None
    if detection.mask is not None and detection.mask.shape == (height, width):
        mask = (detection.mask[iy0:iy1, ix0:ix1] > min_mask).astype(np.uint8)
        if not mask.any():
            mask = None
    hist = cv2.calcHist([hsv], [0, 1], mask, list(bins), [0, 180, 0, 256]).reshape(-1)
    norm = float(np.linalg.norm(hist))
    return hist.astype(np.float64) / norm if norm > 0 else hist.astype(np.float64)
