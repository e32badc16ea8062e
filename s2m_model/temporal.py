"""Temporal processing for streams: person tracking and One-Euro filters (R^n and SO(3)).

- :class:`OneEuroFilter` — the One-Euro filter (Casiez, Roussel, Vogel, CHI 2012) on vectors:
  a low-pass filter whose cutoff rises with the signal's speed, so slow motion is smoothed
  hard (no jitter) and fast motion is followed with little lag.
- :class:`SO3OneEuroFilter` — the same filter on rotations, done *on* SO(3): the increment from
  the filtered rotation to the new one is taken in the tangent space
  (``delta = log(R_hat^T R_new)``, the shortest rotation, so no wrap-around at pi), the speed is
  the filtered angular velocity ``|delta| / dt`` and the update moves along the geodesic,
  ``R_hat <- R_hat exp(alpha delta)`` (a slerp by the adaptive ``alpha``).
- :class:`Tracker` — per-person track ids across frames from box IoU and keypoint distance,
  with Hungarian assignment.

Timestamps are seconds; rotations are rotation matrices (``(..., 3, 3)`` torch tensors, any
float dtype/device) and angular speeds rad/s; translations metres and m/s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import roma
import torch

__all__ = ["OneEuroFilter", "SO3OneEuroFilter", "Track", "Tracker", "box_iou", "euro_alpha"]


def euro_alpha(cutoff: torch.Tensor | float, dt: float) -> torch.Tensor | float:
    """Smoothing factor of a first-order low-pass filter with ``cutoff`` (Hz) at step ``dt`` (s):
    ``alpha = r / (1 + r)`` with ``r = 2 pi cutoff dt`` (1 = no smoothing)."""
    r = 2.0 * math.pi * cutoff * dt
    return r / (1.0 + r)


def _check_params(min_cutoff: float, beta: float, d_cutoff: float) -> None:
    for name, value, low in (("min_cutoff", min_cutoff, 0.0), ("d_cutoff", d_cutoff, 0.0)):
        if not (math.isfinite(value) and value > low):
            raise ValueError(f"{name} must be a positive number (Hz), got {value}")
    if not (math.isfinite(beta) and beta >= 0.0):
        raise ValueError(f"beta must be >= 0, got {beta}")


class _EuroBase:
    """Shared timestamp handling: the first sample, a non-increasing stamp or a gap longer than
    ``max_gap`` seconds (re)starts the filter at the raw sample."""

    def __init__(self, min_cutoff: float, beta: float, d_cutoff: float, max_gap: float) -> None:
        _check_params(min_cutoff, beta, d_cutoff)
        if not max_gap > 0:
            raise ValueError(f"max_gap must be > 0 seconds, got {max_gap}")
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self.max_gap = float(max_gap)
        self._t: float | None = None

    def _step(self, t: float) -> float | None:
        """dt to the previous sample, or None when the filter must restart."""
        t = float(t)
        if not math.isfinite(t):
            raise ValueError(f"timestamp must be finite, got {t}")
        previous, self._t = self._t, t
        if previous is None:
            return None
        dt = t - previous
        return dt if 0.0 < dt <= self.max_gap else None

    def reset(self) -> None:
        """Forget the state: the next sample passes through unfiltered."""
        self._t = None


class OneEuroFilter(_EuroBase):
    """One-Euro filter on vectors ``(..., D)`` (torch tensors or numpy arrays).

    Hand-written: a few lines, and the isotropic, batched variant used here (the cutoff follows
    the *norm* of the velocity, so it does not depend on the axes) is not in a maintained
    library.

    Args:
        min_cutoff: cutoff (Hz) at rest; lower = smoother, more lag when slow.
        beta: cutoff increase per unit of speed (Hz per unit/s); higher = less lag when fast.
        d_cutoff: cutoff (Hz) of the velocity estimate.
        max_gap: a gap longer than this (s) restarts the filter.
    """

    def __init__(
        self, min_cutoff: float = 1.0, beta: float = 1.0, d_cutoff: float = 1.0,
        max_gap: float = 1.0,
    ) -> None:  # fmt: skip
        super().__init__(min_cutoff, beta, d_cutoff, max_gap)
        self._x: torch.Tensor | None = None
        self._dx: torch.Tensor | None = None

    def __call__(self, x, t: float):
        """Filter sample ``x`` (..., D) taken at time ``t`` (s); returns the same type/shape."""
        is_numpy = isinstance(x, np.ndarray)
        xt = torch.as_tensor(x)
        if not xt.is_floating_point() or xt.ndim < 1:
            raise ValueError(f"x must be a float array of shape (..., D), got {tuple(xt.shape)}")
        if not torch.isfinite(xt).all():
            raise ValueError("x contains NaN or inf")
        dt = self._step(t)
        if dt is None or self._x is None or self._x.shape != xt.shape:
            self._x, self._dx = xt.clone(), torch.zeros_like(xt)
        else:
            dx = (xt - self._x) / dt
            self._dx = self._dx + euro_alpha(self.d_cutoff, dt) * (dx - self._dx)
            speed = self._dx.norm(dim=-1, keepdim=True)
            alpha = euro_alpha(self.min_cutoff + self.beta * speed, dt)
            self._x = self._x + alpha * (xt - self._x)
        out = self._x.clone()
        return out.numpy() if is_numpy else out

    def reset(self) -> None:
        super().reset()
        self._x = self._dx = None


class SO3OneEuroFilter(_EuroBase):
    """One-Euro filter on rotations ``(..., 3, 3)``, each rotation filtered independently.

    With ``R_hat`` the filtered rotation and ``R`` the new sample at step ``dt``:
    ``delta = log(R_hat^T R)`` (axis-angle in R_hat's frame, angle in [0, pi]),
    ``w = delta / dt`` (angular velocity, rad/s), ``w_hat <- w_hat + a_d (w - w_hat)``,
    ``alpha = a(min_cutoff + beta |w_hat|)``, ``R_hat <- R_hat exp(alpha delta)``.
    Every output is a proper rotation; a constant input is a fixed point.

    Args:
        min_cutoff: cutoff (Hz) at rest.
        beta: cutoff increase per rad/s of angular speed (Hz s / rad).
        d_cutoff: cutoff (Hz) of the angular-velocity estimate.
        max_gap: a gap longer than this (s) restarts the filter.
    """

    def __init__(
        self, min_cutoff: float = 1.0, beta: float = 1.0, d_cutoff: float = 1.0,
        max_gap: float = 1.0,
    ) -> None:  # fmt: skip
        super().__init__(min_cutoff, beta, d_cutoff, max_gap)
        self._r: torch.Tensor | None = None
        self._w: torch.Tensor | None = None

    def __call__(self, rotmats: torch.Tensor, t: float) -> torch.Tensor:
        """Filter rotation matrices ``(..., 3, 3)`` sampled at time ``t`` (s)."""
        if not isinstance(rotmats, torch.Tensor):
            rotmats = torch.as_tensor(rotmats)
        if rotmats.ndim < 2 or rotmats.shape[-2:] != (3, 3) or not rotmats.is_floating_point():
            raise ValueError(f"rotmats must be float (..., 3, 3), got {tuple(rotmats.shape)}")
        if not torch.isfinite(rotmats).all():
            raise ValueError("rotmats contain NaN or inf")
        dt = self._step(t)
        if dt is None or self._r is None or self._r.shape != rotmats.shape:
            self._r = rotmats.clone()
            self._w = rotmats.new_zeros(rotmats.shape[:-2] + (3,))
            return self._r.clone()
        delta = roma.rotmat_to_rotvec(self._r.transpose(-1, -2) @ rotmats)
        self._w = self._w + euro_alpha(self.d_cutoff, dt) * (delta / dt - self._w)
        speed = self._w.norm(dim=-1, keepdim=True)
        alpha = euro_alpha(self.min_cutoff + self.beta * speed, dt)
        self._r = self._r @ roma.rotvec_to_rotmat(alpha * delta)
        # Re-orthonormalise so rounding never accumulates over a long stream.
        self._r = roma.special_gramschmidt(self._r)
        return self._r.clone()

    def reset(self) -> None:
        super().reset()
        self._r = self._w = None


# --------------------------------------------------------------------------------------------
# Tracking
# --------------------------------------------------------------------------------------------
def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,M) IoU of boxes ``a`` (N,4) and ``b`` (M,4), ``x0, y0, x1, y1`` (pixels)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


@dataclass
class Track:
    """One tracked person.

    Attributes:
        track_id: stable id (>= 1) for the person's life in the stream.
        points: (K, 2) pixel keypoints or (K, 3) skeleton joints (metres) of the last match.
        confidence: (K,) confidence of ``points`` in [0, 1].
        bbox: (4,) last box (pixels) or None in skeleton mode.
        last_frame: frame counter of the last match.
        state: per-track state owned by the caller (filters, previous IK result, ...).
    """

    track_id: int
    points: np.ndarray
    confidence: np.ndarray
    bbox: np.ndarray | None
    last_frame: int
    state: dict[str, Any] = field(default_factory=dict)


class Tracker:
    """Frame-to-frame person tracking with stable ids.

    The cost of pairing a track with a detection is
    ``iou_weight (1 - IoU) + (1 - iou_weight) min(1, d / scale)`` where ``d`` is the mean
    distance between keypoints confident in both (``min_confidence``) and ``scale`` the
    diagonal of the track's box (or of its points' extent in skeleton mode, where only the
    distance term is used). Pairs are assigned by the Hungarian algorithm (scipy) and kept when
    the cost is at most ``max_cost``; unmatched detections start new tracks, and tracks unseen
    for more than ``max_age`` frames are dropped.
    """

    def __init__(
        self, max_age: int = 10, max_cost: float = 0.75, iou_weight: float = 0.5,
        min_confidence: float = 0.3,
    ) -> None:  # fmt: skip
        if max_age < 0:
            raise ValueError(f"max_age must be >= 0 frames, got {max_age}")
        if not 0.0 < max_cost <= 1.0:
            raise ValueError(f"max_cost must be in (0, 1], got {max_cost}")
        if not 0.0 <= iou_weight <= 1.0:
            raise ValueError(f"iou_weight must be in [0, 1], got {iou_weight}")
        self.max_age, self.max_cost, self.iou_weight = int(max_age), max_cost, iou_weight
        self.min_confidence = float(min_confidence)
        self.tracks: dict[int, Track] = {}
        self._next_id = 1
        self._frame = 0

    def reset(self) -> None:
        """Forget all tracks; ids restart at 1."""
        self.tracks.clear()
        self._next_id = 1
        self._frame = 0

    def _cost(self, track: Track, points, conf, bbox) -> float:
        both = (track.confidence >= self.min_confidence) & (conf >= self.min_confidence)
        ref = track.points[track.confidence >= self.min_confidence]
        if track.bbox is not None:
            scale = float(np.hypot(track.bbox[2] - track.bbox[0], track.bbox[3] - track.bbox[1]))
        elif len(ref):
            scale = float(np.linalg.norm(ref.max(0) - ref.min(0)))
        else:
            scale = 0.0
        if both.any() and scale > 0:
            dist = float(np.linalg.norm(track.points[both] - points[both], axis=-1).mean())
            dist_cost = min(1.0, dist / scale)
        else:
            dist_cost = 1.0
        if bbox is None or track.bbox is None:
            return dist_cost
        iou = float(box_iou(track.bbox, bbox)[0, 0])
        return self.iou_weight * (1.0 - iou) + (1.0 - self.iou_weight) * dist_cost

    def update(
        self,
        points: np.ndarray,
        confidence: np.ndarray | None = None,
        boxes: np.ndarray | None = None,
    ) -> list[Track]:
        """Match this frame's people to tracks.

        Args:
            points: (N, K, 2) pixel keypoints or (N, K, 3) joints of the N people; NaN = missing.
            confidence: (N, K) in [0, 1] (default: 1 where finite).
            boxes: (N, 4) boxes in pixels, or None (skeleton mode).

        Returns:
            The N tracks, in input order (new ones created as needed); their ``points``,
            ``confidence`` and ``bbox`` are updated to this frame.
        """
        points = np.asarray(points, dtype=np.float64)
        if points.ndim != 3 or points.shape[-1] not in (2, 3):
            raise ValueError(f"points must be (N, K, 2|3), got {points.shape}")
        n = points.shape[0]
        finite = np.isfinite(points).all(-1)
        if confidence is None:
            confidence = finite.astype(np.float64)
        confidence = np.where(finite, np.asarray(confidence, dtype=np.float64), 0.0)
        if confidence.shape != points.shape[:2]:
            raise ValueError(f"confidence must be {points.shape[:2]}, got {confidence.shape}")
        points = np.where(finite[..., None], points, 0.0)
        if boxes is not None:
            boxes = np.asarray(boxes, dtype=np.float64).reshape(n, 4)
        self._frame += 1
        stale = [t for t, tr in self.tracks.items() if self._frame - tr.last_frame > self.max_age]
        for tid in stale:
            del self.tracks[tid]

        ids = list(self.tracks)
        assigned: dict[int, int] = {}
        if ids and n:
            from scipy.optimize import linear_sum_assignment

            cost = np.array([
                [self._cost(self.tracks[tid], points[i], confidence[i],
                            None if boxes is None else boxes[i]) for tid in ids]
                for i in range(n)
            ])  # fmt: skip
            rows, cols = linear_sum_assignment(cost)
            for i, c in zip(rows, cols, strict=True):
                if cost[i, c] <= self.max_cost:
                    assigned[int(i)] = ids[c]
        out: list[Track] = []
        for i in range(n):
            bbox = None if boxes is None else boxes[i].copy()
            tid = assigned.get(i)
            if tid is None:
                tid = self._next_id
                self._next_id += 1
                self.tracks[tid] = Track(tid, points[i], confidence[i], bbox, self._frame)
            track = self.tracks[tid]
            track.points, track.confidence, track.bbox = points[i], confidence[i], bbox
            track.last_frame = self._frame
            out.append(track)
        return out
