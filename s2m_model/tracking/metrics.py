"""Multi-person detection and tracking scores: OKS matching, recall by size, CLEAR-MOT counts.

Hand-written (a few lines each) instead of ``motmetrics``, which would pull in pandas:

- :func:`oks_matrix` / :func:`match` — ground-truth people vs detections by COCO OKS
  (:func:`s2m_model.detect.coco_eval.oks`), Hungarian assignment (scipy), a match needs
  ``OKS >= threshold``.
- :class:`MotAccumulator` — CLEAR-MOT (Bernardin & Stiefelhagen 2008): per frame, a ground-truth
  id matched to the same track id as before stays matched if it still passes the threshold;
  the rest is assigned by Hungarian; a match whose track id differs from the ground truth's last
  matched track id is an *id switch*. ``MOTA = 1 - (FN + FP + IDSW) / GT``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from s2m_model.detect.coco_eval import oks


def oks_matrix(
    gt_keypoints: Sequence[np.ndarray],
    gt_areas: Sequence[float],
    det_keypoints: Sequence[np.ndarray],
) -> np.ndarray:
    """``(G, D)`` OKS between ``(17, 3)`` GT keypoints (x, y, COCO visibility) and ``(17, >=2)``
    detected keypoints."""
    out = np.zeros((len(gt_keypoints), len(det_keypoints)))
    for i, (g, area) in enumerate(zip(gt_keypoints, gt_areas, strict=True)):
        for j, d in enumerate(det_keypoints):
            out[i, j] = oks(np.asarray(d)[:, :2], np.asarray(g), float(area))
    return out


def match(similarity: np.ndarray, threshold: float = 0.5) -> list[tuple[int, int]]:
    """Hungarian matching maximising ``similarity`` (``(G, D)``); pairs below ``threshold``
    are dropped. Returns ``(gt index, detection index)`` pairs."""
    sim = np.asarray(similarity, dtype=np.float64)
    if sim.size == 0:
        return []
    rows, cols = linear_sum_assignment(-sim)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if sim[r, c] >= threshold]


@dataclass
class MotAccumulator:
    """CLEAR-MOT counts over a sequence (see the module docstring).

    Attributes:
        threshold: minimum similarity (e.g. OKS) of a match.
        frames, gt, matches, false_positives, misses, id_switches: running counts.
    """

    threshold: float = 0.5
    frames: int = 0
    gt: int = 0
    matches: int = 0
    false_positives: int = 0
    misses: int = 0
    id_switches: int = 0
    _last: dict[int, int] = field(default_factory=dict, repr=False)
    _current: dict[int, int] = field(default_factory=dict, repr=False)

    def update(
        self, gt_ids: Sequence[int], track_ids: Sequence[int], similarity: np.ndarray
    ) -> list[tuple[int, int]]:
        """Add one frame.

        Args:
            gt_ids: ``G`` ground-truth ids present in the frame.
            track_ids: ``D`` tracker ids output in the frame.
            similarity: ``(G, D)`` (e.g. :func:`oks_matrix`).

        Returns:
            The matched ``(gt id, track id)`` pairs.
        """
        sim = np.asarray(similarity, dtype=np.float64).reshape(len(gt_ids), len(track_ids))
        self.frames += 1
        self.gt += len(gt_ids)
        pairs: list[tuple[int, int]] = []
        free_g, free_d = set(range(len(gt_ids))), set(range(len(track_ids)))
        # Keep last frame's correspondences that are still good (no switch there).
        for gi, g in enumerate(gt_ids):
            t = self._current.get(g)
            if t is not None and t in track_ids:
                dj = list(track_ids).index(t)
                if dj in free_d and sim[gi, dj] >= self.threshold:
                    pairs.append((gi, dj))
                    free_g.discard(gi)
                    free_d.discard(dj)
        g_rest, d_rest = sorted(free_g), sorted(free_d)
        for a, b in match(sim[np.ix_(g_rest, d_rest)], self.threshold):
            pairs.append((g_rest[a], d_rest[b]))
        current: dict[int, int] = {}
        for gi, dj in pairs:
            g, t = gt_ids[gi], track_ids[dj]
            if g in self._last and self._last[g] != t:
                self.id_switches += 1
            self._last[g] = t
            current[g] = t
        self._current = current
        self.matches += len(pairs)
        self.misses += len(gt_ids) - len(pairs)
        self.false_positives += len(track_ids) - len(pairs)
        return [(gt_ids[gi], track_ids[dj]) for gi, dj in pairs]

    def new_sequence(self) -> None:
        """Start another sequence (clip): ids of different sequences are unrelated, so the
        correspondences are forgotten (the counts go on)."""
        self._last = {}
        self._current = {}

    @property
    def mota(self) -> float:
        """``1 - (misses + false positives + id switches) / GT`` (1.0 when there is no GT)."""
        if self.gt == 0:
            return 1.0
        return 1.0 - (self.misses + self.false_positives + self.id_switches) / self.gt

    def summary(self) -> dict[str, float | int]:
        """The counts, MOTA and id switches per 100 frames, as a plain dict."""
        return {
            "frames": self.frames,
            "gt": self.gt,
            "matches": self.matches,
            "false_positives": self.false_positives,
            "misses": self.misses,
            "id_switches": self.id_switches,
            "id_switches_per_100_frames": 100.0 * self.id_switches / max(self.frames, 1),
            "mota": self.mota,
        }


@dataclass
class RecallBins:
    """Detection recall of ground-truth people by height (pixels): counts per bin.

    Attributes:
        edges: lower bounds of the cumulative bins (a person counts in every bin whose bound
            its height reaches), e.g. ``(150, 80)`` gives recall for >= 150 px and >= 80 px.
    """

    edges: tuple[float, ...] = (150.0, 80.0)
    total: dict[float, int] = field(default_factory=dict)
    found: dict[float, int] = field(default_factory=dict)

    def add(self, height: float, hit: bool) -> None:
        """Count one ground-truth person of ``height`` px, detected or not."""
        for edge in self.edges:
            if height >= edge:
                self.total[edge] = self.total.get(edge, 0) + 1
                self.found[edge] = self.found.get(edge, 0) + int(hit)

    def summary(self) -> dict[str, dict[str, float | int | None]]:
        """``{">=150px": {"gt", "found", "recall"}, ...}`` (recall None for an empty bin)."""
        out = {}
        for edge in self.edges:
            n, k = self.total.get(edge, 0), self.found.get(edge, 0)
            out[f">={edge:g}px"] = {"gt": n, "found": k, "recall": k / n if n else None}
        return out


def score_frame(
    people: Sequence,
    keypoints: Sequence[np.ndarray],
    *,
    track_ids: Sequence[int] | None = None,
    mot: MotAccumulator | None = None,
    recall: RecallBins | None = None,
    min_visible: float = 0.5,
    threshold: float = 0.5,
) -> list[tuple[int, int]]:
    """Score one frame of detections (and their track ids) against ground truth.

    Ground-truth people (:class:`s2m_model.tracking.synthetic.GtPerson`-like: ``track_id``,
    ``keypoints``, ``area``, ``height``, ``visible_fraction``) less visible than
    ``min_visible`` are *don't care*: detections matched to them are neither hits nor false
    positives. The rest count for ``recall`` (by height) and, with ``track_ids``, for ``mot``.

    Returns:
        The ``(gt index, detection index)`` matches (OKS >= ``threshold``).
    """
    sim = oks_matrix([p.keypoints for p in people], [max(p.area, 1.0) for p in people], keypoints)
    pairs = match(sim, threshold)
    care = [i for i, p in enumerate(people) if p.visible_fraction >= min_visible]
    ignored_dets = {d for g, d in pairs if g not in care}
    hit = {g for g, _ in pairs}
    if recall is not None:
        for i in care:
            recall.add(people[i].height, i in hit)
    if mot is not None and track_ids is not None:
        keep = [d for d in range(len(keypoints)) if d not in ignored_dets]
        mot.update(
            [people[i].track_id for i in care],
            [track_ids[d] for d in keep],
            sim[np.ix_(care, keep)],
        )
    return pairs


def track_summary(ids_per_frame: Sequence[Sequence[int]]) -> dict[str, Any]:
    """Persons per frame and track statistics of a run (for `s2m run` / `s2m eval-bag`).

    Args:
        ids_per_frame: the track ids output in each frame, in order (0 = untracked person,
            counted as a person but not as a track).

    Returns:
        ``persons_per_frame`` (mean/max), ``tracks`` (distinct ids), ``track_length_frames``
        (median/max frames in which an id was output; None without tracks).
    """
    counts = np.array([len(ids) for ids in ids_per_frame], dtype=np.int64)
    lengths: dict[int, int] = {}
    for ids in ids_per_frame:
        for tid in ids:
            if int(tid) > 0:
                lengths[int(tid)] = lengths.get(int(tid), 0) + 1
    values = np.array(list(lengths.values()), dtype=np.int64)
    return {
        "persons_per_frame": {
            "mean": float(counts.mean()) if len(counts) else 0.0,
            "max": int(counts.max()) if len(counts) else 0,
        },
        "tracks": len(lengths),
        "track_length_frames": {
            "median": float(np.median(values)) if len(values) else None,
            "max": int(values.max()) if len(values) else None,
        },
    }
