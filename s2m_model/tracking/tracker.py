"""Multi-person tracker: stable ids for per-frame detections (crossings, short occlusions).

Each frame, :meth:`MultiPersonTracker.update` assigns the frame's
:class:`~s2m_model.detect.base.Detection` objects to tracks:

1. **Predict** every track one frame ahead with a constant-velocity model on its box (centre
   and size velocities smoothed exponentially); its keypoints move with the box centre.
2. **Cost** track x detection (:func:`pair_costs`), in [0, 1]: a weighted mean of
   ``1 - IoU`` (predicted box vs detected box), ``1 - keypoint similarity`` (OKS-like, on the
   keypoints confident in both) and, when appearance features are given, ``1 - cosine
   similarity``. A pair with no box overlap and no keypoint agreement is impossible.
3. **Assign** with the Hungarian algorithm (:func:`scipy.optimize.linear_sum_assignment`) in two
   rounds: tracks seen in the previous frame first, then tracks coasting through an occlusion
   (whose predicted box is widened with the frames missed). Pairs costing more than
   ``max_cost`` are not matched.
3b. **Re-identify** (only with appearance features): a detection still unmatched is given the
   id of a confirmed track that lost its person (coasting, or deleted at most ``reid_max_age``
   frames ago) when their colours agree (cosine >= ``reid_min_similarity``) and the detection
   is within ``reid_radius`` x the track's usual box diagonal of where the track was last seen:
   a person who moved fast or far while undetected (a jump, a crouch the detector missed) keeps
   their id instead of starting a new one. The usual diagonal is a running mean, so the last,
   often partial, detection before a loss does not shrink the search.
4. **Birth / death**: an unmatched detection starts a *tentative* track, unless at least
   ``birth_overlap`` of its box lies inside the box of a detection matched to a confirmed track
   in this frame (a second reading of a tracked person, which would otherwise take the id over
   in the next frames: seen on the demo clip when the man lands from his jump; the price: a
   small person wholly in front of a tracked one is picked up only once they stand apart); it
   is confirmed after ``min_hits`` consecutive matches (a tentative track missed once is
   dropped). A confirmed track survives ``max_age`` frames without a match (coasting) and is
   then deleted.

Only confirmed tracks matched in this frame are returned, each as a :class:`TrackedPerson`
with its ``track_id``: a coasting track is never output (no stale people). Ids start at 1 and
are never reused within a tracker's life (:meth:`reset` starts again).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from s2m_model.detect.base import Detection
from s2m_model.detect.person import box_inside_fraction, box_iou

IMPOSSIBLE = 1e6
"""Cost of a pair that must not be matched."""


@dataclass(frozen=True)
class TrackerConfig:
    """Tracker parameters (frames are the unit of time).

    Attributes:
        min_hits: consecutive matches before a new track is confirmed and output (>= 1).
        max_age: frames a confirmed track may go unmatched before it is deleted (>= 0).
        iou_weight, keypoint_weight, appearance_weight: weights of the cost terms (the
            appearance term only counts when features are passed to ``update``).
        max_cost: pairs above this cost are never matched, in (0, 1].
        min_keypoint_confidence: keypoints below this confidence are ignored in the cost.
        keypoint_sigma: OKS-like falloff, as a fraction of the box size (sqrt of the area).
        velocity_smoothing: weight of the newest velocity measurement in [0, 1] (0: no motion
            model).
        coast_growth: the predicted box of a coasting track grows by this fraction per frame
            missed (its position is less certain).
        reid_min_similarity: appearance cosine a lost track and a detection need for
            re-identification, in [0, 1] (1: off).
        reid_radius: how far (in the track's usual box diagonals) from where a track was last
            seen a detection may be re-identified as it (0: off).
        reid_max_age: frames a deleted confirmed track is remembered for re-identification
            only (never output; 0: only coasting tracks are re-identified).
        birth_overlap: an unmatched detection with at least this fraction of its box inside a
            tracked person's detection starts no track and is not output, in (0, 1] (1:
            only boxes wholly inside; pass a value above 1 to turn it off).
    """

    min_hits: int = 2
    max_age: int = 15
    iou_weight: float = 0.5
    keypoint_weight: float = 0.5
    appearance_weight: float = 0.3
    max_cost: float = 0.85
    min_keypoint_confidence: float = 0.3
    keypoint_sigma: float = 0.15
    velocity_smoothing: float = 0.5
    coast_growth: float = 0.1
    reid_min_similarity: float = 0.9
    reid_radius: float = 1.5
    reid_max_age: int = 30
    birth_overlap: float = 0.6

    def __post_init__(self) -> None:
        if self.min_hits < 1 or self.max_age < 0:
            raise ValueError(f"min_hits must be >= 1 and max_age >= 0, got {self.min_hits}, "
                             f"{self.max_age}")
        weights = (self.iou_weight, self.keypoint_weight, self.appearance_weight)
        if min(weights) < 0 or self.iou_weight + self.keypoint_weight <= 0:
            raise ValueError(f"cost weights must be >= 0 with iou + keypoint > 0, got {weights}")
        if not 0.0 < self.max_cost <= 1.0:
            raise ValueError(f"max_cost must be in (0, 1], got {self.max_cost}")
        if self.reid_radius < 0 or self.reid_max_age < 0:
            raise ValueError(f"reid_radius and reid_max_age must be >= 0, got "
                             f"{self.reid_radius}, {self.reid_max_age}")
        for name in ("min_keypoint_confidence", "velocity_smoothing", "reid_min_similarity"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.birth_overlap <= 0:
            raise ValueError(f"birth_overlap must be > 0, got {self.birth_overlap}")
        if self.keypoint_sigma <= 0 or self.coast_growth < 0:
            raise ValueError("keypoint_sigma must be > 0 and coast_growth >= 0")


@dataclass
class TrackedPerson:
    """One confirmed person in one frame.

    Attributes:
        track_id: stable id (>= 1) for as long as the tracker keeps the person.
        detection: this frame's detection of the person.
        hits: frames the track has been matched in so far.
        age: frames since the track was born.
        state: the track's caller-owned state (e.g. its temporal filters); the same dict in
            every frame of the track.
    """

    track_id: int
    detection: Detection
    hits: int
    age: int
    state: dict[str, Any] = field(default_factory=dict)


@dataclass
class Track:
    """A tracker's state for one person (boxes ``x0, y0, x1, y1`` in pixels); ``state`` is the
    caller's (see :attr:`TrackedPerson.state`)."""

    track_id: int
    box: np.ndarray
    keypoints: np.ndarray
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))
    appearance: np.ndarray | None = None
    hits: int = 1
    age: int = 1
    missed: int = 0
    confirmed: bool = False
    state: dict[str, Any] = field(default_factory=dict)
    diagonal: float = 0.0
    """Running mean of the matched boxes' diagonals (pixels; 0 before the first box)."""

    def __post_init__(self) -> None:
        if self.diagonal <= 0.0:
            self.diagonal = box_diagonal(self.box)

    def predicted(self, coast_growth: float) -> tuple[np.ndarray, np.ndarray]:
        """Box and keypoints one frame after the last update (``missed + 1`` frames of the
        centre's motion), the last box's size widened by ``coast_growth`` per missed frame."""
        # The centre moves with the edges' mean velocity; the size stays. Extrapolating each
        # edge on its own collapsed boxes whose width jumps with an arm (demo clip, frame 138:
        # a box 206 -> 64 px wide predicted inside out, so the same man got a new id).
        steps = self.missed + 1
        shift = 0.5 * (self.velocity[:2] + self.velocity[2:]) * steps
        centre = 0.5 * (self.box[:2] + self.box[2:]) + shift
        half = 0.5 * (self.box[2:] - self.box[:2]) * (1.0 + coast_growth * self.missed)
        kps = self.keypoints.copy()
        kps[:, :2] += shift
        return np.concatenate([centre - half, centre + half]), kps


def keypoint_similarity(a: np.ndarray, b: np.ndarray, box: np.ndarray, *,
                        min_confidence: float = 0.3, sigma: float = 0.15) -> float | None:
    """OKS-like similarity in [0, 1] of two ``(17, 3)`` keypoint sets (x, y, confidence) at
    the scale of ``box``; None when fewer than 3 keypoints are confident in both."""
    both = (a[:, 2] >= min_confidence) & (b[:, 2] >= min_confidence)
    if both.sum() < 3:
        return None
    scale = max(float(np.sqrt(max((box[2] - box[0]) * (box[3] - box[1]), 1.0))), 1.0)
    d2 = ((a[both, :2] - b[both, :2]) ** 2).sum(1)
    return float(np.exp(-d2 / (2.0 * (sigma * scale) ** 2)).mean())


def box_diagonal(box: np.ndarray) -> float:
    """Diagonal of an ``x0, y0, x1, y1`` box (pixels)."""
    return float(np.hypot(box[2] - box[0], box[3] - box[1]))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two feature vectors (0 if either is zero)."""
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def reid_costs(tracks: Sequence[Track], detections: Sequence[Detection],
               features: Sequence[np.ndarray], config: TrackerConfig) -> np.ndarray:
    """``(T, D)`` re-identification costs ``1 - cosine`` of lost tracks and detections;
    :data:`IMPOSSIBLE` below ``reid_min_similarity`` or beyond ``reid_radius`` x the track's
    usual diagonal from the centre of its last box."""
    cost = np.full((len(tracks), len(detections)), IMPOSSIBLE)
    for i, track in enumerate(tracks):
        if track.appearance is None:
            continue
        centre = 0.5 * (track.box[:2] + track.box[2:])
        reach = config.reid_radius * track.diagonal
        for j, det in enumerate(detections):
            box = det.bbox.astype(np.float64)
            if np.hypot(*(0.5 * (box[:2] + box[2:]) - centre)) > reach:
                continue
            sim = cosine(features[j], track.appearance)
            if sim >= config.reid_min_similarity:
                cost[i, j] = 1.0 - sim
    return cost


def pair_costs(tracks: Sequence[Track], detections: Sequence[Detection],
               features: Sequence[np.ndarray] | None, config: TrackerConfig) -> np.ndarray:
    """``(T, D)`` costs in [0, 1] (:data:`IMPOSSIBLE` for pairs that must not match)."""
    cost = np.full((len(tracks), len(detections)), IMPOSSIBLE)
    if not len(tracks) or not len(detections):
        return cost
    predictions = [t.predicted(config.coast_growth) for t in tracks]
    ious = box_iou(np.stack([p[0] for p in predictions]), np.stack([d.bbox for d in detections]))
    for i, (track, (box, kps)) in enumerate(zip(tracks, predictions, strict=True)):
        for j, det in enumerate(detections):
            sim = keypoint_similarity(kps, det.keypoints, box,
                                      min_confidence=config.min_keypoint_confidence,
                                      sigma=config.keypoint_sigma)
            if ious[i, j] <= 0.0 and (sim is None or sim < 0.05):
                continue
            terms = [(config.iou_weight, 1.0 - ious[i, j])]
            if sim is not None:
                terms.append((config.keypoint_weight, 1.0 - sim))
            if features is not None and track.appearance is not None and config.appearance_weight:
                cos = cosine(features[j], track.appearance)
                terms.append((config.appearance_weight, 1.0 - max(cos, 0.0)))
            total = sum(w for w, _ in terms)
            cost[i, j] = sum(w * c for w, c in terms) / max(total, 1e-12)
    return cost


class MultiPersonTracker:
    """Stable person ids over a stream of per-frame detections (see the module docstring).

    Args:
        config: parameters (default :class:`TrackerConfig`).
    """

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self.tracks: list[Track] = []
        self.lost: list[Track] = []
        """Deleted confirmed tracks kept ``reid_max_age`` frames for re-identification only."""
        self._next_id = 1
        self.frame = 0

    def reset(self) -> None:
        """Forget all tracks (start of a new stream); ids start again at 1."""
        self.tracks = []
        self.lost = []
        self._next_id = 1
        self.frame = 0

    @property
    def track_ids(self) -> list[int]:
        """Ids of the tracks alive (confirmed, tentative and coasting)."""
        return [t.track_id for t in self.tracks]

    def update(self, detections: Sequence[Detection],
               features: Sequence[np.ndarray] | None = None) -> list[TrackedPerson]:
        """Assign one frame's detections to tracks.

        Args:
            detections: this frame's people (any order; may be empty).
            features: optional appearance vectors, one per detection (e.g.
                :func:`s2m_model.tracking.appearance.color_histogram`).

        Returns:
            Confirmed tracks matched in this frame, in the order of ``detections``.

        Raises:
            ValueError: ``features`` does not have one entry per detection.
        """
        cfg = self.config
        dets = list(detections)
        feats = None
        if features is not None:
            feats = [np.asarray(f, dtype=np.float64).reshape(-1) for f in features]
            if len(feats) != len(dets):
                raise ValueError(f"{len(feats)} appearance features for {len(dets)} detections")
        self.frame += 1
        assigned: dict[int, int] = {}  # detection index -> track index
        free = list(range(len(dets)))
        # Round 1: tracks seen last frame; round 2: coasting tracks, on what is left; round 3:
        # re-identification of confirmed tracks still unmatched (coasting or lost), by appearance.
        reid = feats is not None and cfg.reid_radius > 0 and cfg.reid_min_similarity < 1
        n_alive = len(self.tracks)
        self.tracks.extend(self.lost)  # indices >= n_alive: lost tracks, reid round only
        for round_ in ("seen", "coasting", "reid"):
            if round_ == "reid":
                if not reid:
                    break
                taken_tracks = set(assigned.values())
                idx = [i for i, t in enumerate(self.tracks)
                       if t.confirmed and t.missed > 0 and i not in taken_tracks]  # fmt: skip
            else:
                idx = [i for i, t in enumerate(self.tracks[:n_alive])
                       if (t.missed > 0) == (round_ == "coasting")]  # fmt: skip
            if not idx or not free:
                continue
            tracks, candidates = [self.tracks[i] for i in idx], [dets[j] for j in free]
            if round_ == "reid":
                cost, limit = reid_costs(tracks, candidates, [feats[j] for j in free], cfg), 1.0
            else:
                cost = pair_costs(tracks, candidates, feats and [feats[j] for j in free], cfg)
                limit = cfg.max_cost
            rows, cols = linear_sum_assignment(cost)
            taken = []
            for r, c in zip(rows, cols, strict=True):
                if cost[r, c] <= limit:
                    assigned[free[c]] = idx[r]
                    taken.append(free[c])
            free = [j for j in free if j not in taken]
        owner: dict[int, Track] = {j: self.tracks[ti] for j, ti in assigned.items()}
        for j, track in owner.items():
            self._correct(track, dets[j], None if feats is None else feats[j])
        survivors, lost = [], []
        for track in self.tracks:
            if not any(track is t for t in owner.values()):
                track.missed += 1
                track.age += 1
                if not track.confirmed or track.missed > cfg.max_age:
                    # A tentative track missed once, or too long unseen: deleted, but a
                    # confirmed one is remembered a while for re-identification.
                    if track.confirmed and track.missed <= cfg.max_age + cfg.reid_max_age:
                        lost.append(track)
                    continue
            survivors.append(track)
        for j in self._births(dets, free, owner):
            d = dets[j]
            track = Track(self._next_id, d.bbox.astype(np.float64).copy(),
                          d.keypoints.astype(np.float64).copy(),
                          appearance=None if feats is None else feats[j],
                          confirmed=cfg.min_hits <= 1)
            self._next_id += 1
            survivors.append(track)
            owner[j] = track
        self.tracks, self.lost = survivors, lost
        return [TrackedPerson(owner[j].track_id, d, owner[j].hits, owner[j].age, owner[j].state)
                for j, d in enumerate(dets) if j in owner and owner[j].confirmed]

    def _births(self, dets: Sequence[Detection], free: list[int],
                owner: dict[int, Track]) -> list[int]:
        """The unmatched detections that start a track: not ``birth_overlap`` inside a
        detection matched to a confirmed track."""
        held = [dets[j].bbox for j, t in owner.items() if t.confirmed]
        if not held or not free or self.config.birth_overlap > 1.0:
            return free
        boxes = np.asarray([dets[j].bbox for j in free], dtype=np.float64)
        inside = box_inside_fraction(boxes, np.asarray(held, dtype=np.float64)).max(1)
        return [j for j, f in zip(free, inside, strict=True)
                if f < self.config.birth_overlap]  # fmt: skip

    def _correct(self, track: Track, det: Detection, feature: np.ndarray | None) -> None:
        """Update a matched track with its detection (velocity, box, keypoints, appearance)."""
        a = self.config.velocity_smoothing
        box = det.bbox.astype(np.float64)
        measured = (box - track.box) / (track.missed + 1)
        # The first velocity is a plain measurement; later ones are smoothed.
        track.velocity = measured if track.hits == 1 else \
            (1.0 - a) * track.velocity + a * measured
        shift = 0.5 * (box[:2] + box[2:] - track.box[:2] - track.box[2:])
        kps = det.keypoints.astype(np.float64)
        # Keypoints not confident now keep their last position, moved with the box: they still
        # help matching through partial occlusions.
        weak = kps[:, 2] < self.config.min_keypoint_confidence
        kps[weak, :2] = track.keypoints[weak, :2] + shift
        kps[weak, 2] = 0.8 * track.keypoints[weak, 2]  # fading trust in remembered points
        track.box = box
        track.diagonal = 0.8 * track.diagonal + 0.2 * box_diagonal(box)
        track.keypoints = kps
        if feature is not None:
            track.appearance = feature if track.appearance is None else \
                0.8 * track.appearance + 0.2 * feature
        track.hits += 1
        track.age += 1
        track.missed = 0
        if track.hits >= self.config.min_hits:
            track.confirmed = True
