"""Multi-person BlazePose: MediaPipe's shipped TFLite models run top-down with LiteRT.

The legacy ``mp.solutions.pose`` graph tracks one person. Here the two models inside the
mediapipe 0.10.21 wheel (found with :mod:`importlib.resources`, never downloaded) are run
directly through ``ai-edge-litert`` (XNNPACK CPU delegate), re-creating MediaPipe's graphs
(``pose_detection_cpu.pbtxt``, ``pose_detection_to_roi.pbtxt``,
``pose_landmark_by_roi_cpu.pbtxt``, ``tensors_to_pose_landmarks_and_segmentation.pbtxt``):

1. **Person detector** ``pose_detection.tflite``
   (:class:`~s2m_model.detect.blazepose_person.BlazePoseBoxDetector`: SSD anchors, decoding,
   weighted NMS, optional tiles for small people), or any other
   :class:`~s2m_model.detect.person.PersonDetector`.
2. **ROI** (:meth:`Roi.from_alignment`): centred on the hip centre, side 2 x |scale point - hip|
   x 1.25, rotated so the hip -> scale point vector points up.
3. **Landmarks** ``pose_landmark_full.tflite`` (:class:`BlazePoseLandmarker`) on each ROI
   resampled to 256x256 (edge pixels replicated, values in [0, 1]): 39 landmarks (33 BlazePose
   + 6 auxiliary) x (x, y, z, visibility logit, presence logit) in crop pixels, refined from the
   64x64 heatmaps (7x7 window, as ``RefineLandmarksFromHeatmapCalculator``), the pose-presence
   score (threshold 0.5), the person mask and 33 world landmarks (metres, rotated by the ROI
   rotation), mapped back to the image.

:class:`BlazePoseTFLite` combines them into an s2m :class:`~s2m_model.detect.base.Detector`
returning up to ``max_people`` :class:`~s2m_model.detect.base.Detection` objects, built by the
same :func:`~s2m_model.detect.mediapipe_pose.landmarks_to_detection` as the legacy backend. In
video mode (default) the ROIs of the previous frame's people (from their auxiliary landmarks,
as the legacy graph does) are tried too, so a person the detector misses for a frame is kept.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from s2m_model.detect.base import Detection
from s2m_model.detect.blazepose_person import (
    BlazePoseBoxDetector,
    make_interpreter,
    mediapipe_model_path,
    round_robin,
    sigmoid,
)
from s2m_model.detect.mediapipe_pose import landmarks_to_detection
from s2m_model.detect.person import (
    PersonBox,
    PersonDetector,
    Roi,
    ThrottledPersonDetector,
    UnionPersonDetector,
)
from s2m_model.image import MAX_IMAGE_SIDE, validate_image
from s2m_model.skeletons import get_format

log = logging.getLogger(__name__)

BLAZEPOSE33_FLIP: tuple[int, ...] = get_format("blazepose33").flip_perm
"""Landmark order with left and right swapped."""

LANDMARK_MODEL = "modules/pose_landmark/pose_landmark_full.tflite"
LANDMARK_SIZE = 256
NUM_LANDMARKS = 39
"""33 BlazePose landmarks + 6 auxiliary (33, 34: full-body ROI points; 35, 36: upper body)."""
ROI_SCALE = 1.25
"""MediaPipe's ROI margin (``RectTransformationCalculator`` scale_x/scale_y)."""


# ------------------------------------------------------------------ landmarks on ROIs


@dataclass
class PoseLandmarks:
    """Landmarks of one person from one ROI, in image coordinates.

    Attributes:
        landmarks: ``(39, 5)`` float32 — x, y (pixels), z (pixels at the scale of x, relative
            to the hips; smaller = closer), visibility and presence in [0, 1]. Rows 33-38 are
            the auxiliary ROI points.
        world: ``(33, 3)`` float32 metres, origin at the hip midpoint, camera-aligned axes.
        presence: the model's pose-presence score in [0, 1].
        roi: the ROI the landmarks were computed on.
        mask: ``(H, W)`` float32 person probability, zero outside the ROI, or ``None``.
    """

    landmarks: np.ndarray
    world: np.ndarray
    presence: float
    roi: Roi
    mask: np.ndarray | None = None

    def next_roi(self) -> Roi:
        """The ROI for the next frame from the auxiliary full-body points (legacy tracking)."""
        return Roi.from_alignment(self.landmarks[33, :2], self.landmarks[34, :2], scale=ROI_SCALE)


def refine_from_heatmap(
    xy: np.ndarray, heatmap: np.ndarray, kernel: int = 7, min_confidence: float = 0.5
) -> np.ndarray:
    """MediaPipe's ``RefineLandmarksFromHeatmapCalculator``: each landmark moves to the
    sigmoid-weighted mean of the ``kernel`` window of its heatmap around it.

    Args:
        xy: ``(L, 2)`` landmarks normalised to the crop ([0, 1]).
        heatmap: ``(h, w, L)`` logits.

    Returns:
        ``(L, 2)`` refined normalised landmarks (unchanged where the window's peak confidence
        is below ``min_confidence`` or the landmark lies outside the heatmap).
    """
    h, w, n = heatmap.shape
    out = np.array(xy, dtype=np.float64, copy=True)
    half = (kernel - 1) // 2
    for i in range(min(n, len(out))):
        col, row = int(out[i, 0] * w), int(out[i, 1] * h)
        if not (0 <= col < w and 0 <= row < h):
            continue
        r0, r1 = max(0, row - half), min(h, row + half + 1)
        c0, c1 = max(0, col - half), min(w, col + half + 1)
        conf = sigmoid(heatmap[r0:r1, c0:c1, i])
        total = conf.sum()
        if conf.max() < min_confidence or total <= 0:
            continue
        rows, cols = np.mgrid[r0:r1, c0:c1]
        out[i] = ((conf * cols).sum() / total / w, (conf * rows).sum() / total / h)
    return out


class BlazePoseLandmarker:
    """BlazePose "full" landmarks (``pose_landmark_full.tflite``) on one ROI at a time.

    Args:
        refine_heatmap: refine the landmarks with the heatmaps (as MediaPipe does).
        num_threads: LiteRT threads (None: the runtime's default).
    """

    def __init__(self, *, refine_heatmap: bool = True, num_threads: int | None = None) -> None:
        self.refine_heatmap = bool(refine_heatmap)
        self._interp = make_interpreter(mediapipe_model_path(LANDMARK_MODEL), num_threads)
        self._input = self._interp.get_input_details()[0]["index"]
        by_shape = {tuple(d["shape"][1:]): d["index"] for d in self._interp.get_output_details()}
        self._out = {
            "landmarks": by_shape[(NUM_LANDMARKS * 5,)],
            "presence": by_shape[(1,)],
            "mask": by_shape[(LANDMARK_SIZE, LANDMARK_SIZE, 1)],
            "heatmap": by_shape[(64, 64, NUM_LANDMARKS)],
            "world": by_shape[(NUM_LANDMARKS * 3,)],
        }
        self._lock = threading.Lock()

    def run(
        self, rgb: np.ndarray, roi: Roi, *, with_mask: bool = False, min_presence: float = 0.5
    ) -> PoseLandmarks | None:
        """Landmarks of the person in ``roi`` of ``rgb`` (``(H, W, 3)`` uint8), or ``None``
        when the pose-presence score is below ``min_presence``."""
        crop = roi.crop(rgb, LANDMARK_SIZE, border="replicate")
        tensor = crop.astype(np.float32)[None] * (1.0 / 255.0)
        with self._lock:
            if self._interp is None:
                raise RuntimeError("BlazePoseLandmarker is closed")
            self._interp.set_tensor(self._input, tensor)
            self._interp.invoke()
            presence = float(self._interp.get_tensor(self._out["presence"]).reshape(-1)[0])
            if presence < min_presence:
                return None
            raw = self._interp.get_tensor(self._out["landmarks"]).reshape(NUM_LANDMARKS, 5)
            world_raw = self._interp.get_tensor(self._out["world"]).reshape(NUM_LANDMARKS, 3)
            heatmap = (
                self._interp.get_tensor(self._out["heatmap"])[0] if self.refine_heatmap else None
            )
            mask_logits = (
                self._interp.get_tensor(self._out["mask"])[0, :, :, 0] if with_mask else None
            )
        xy = raw[:, :2].astype(np.float64) / LANDMARK_SIZE
        if heatmap is not None:
            xy = refine_from_heatmap(xy, heatmap)
        to_image = roi.crop_to_image(1)  # normalised crop -> image pixels
        out = np.empty((NUM_LANDMARKS, 5), dtype=np.float32)
        out[:, :2] = xy @ to_image[:, :2].T + to_image[:, 2]
        out[:, 2] = raw[:, 2] / LANDMARK_SIZE * roi.size
        out[:, 3:5] = sigmoid(raw[:, 3:5])
        c, s = math.cos(roi.rotation), math.sin(roi.rotation)
        world = world_raw[:33].astype(np.float64)
        world[:, :2] = world[:, :2] @ np.array([[c, -s], [s, c]]).T
        mask = None
        if mask_logits is not None:
            mask = paste_crop(sigmoid(mask_logits).astype(np.float32), roi, rgb.shape[:2])
        return PoseLandmarks(out, world.astype(np.float32), presence, roi, mask)

    def close(self) -> None:
        """Free the interpreter; further calls raise RuntimeError."""
        with self._lock:
            self._interp = None


def paste_crop(crop: np.ndarray, roi: Roi, shape: tuple[int, int]) -> np.ndarray:
    """Warp a square ``crop`` (``(S, S)``) of ``roi`` back into an ``(H, W)`` image, 0 outside."""
    import cv2

    size = crop.shape[0]
    m = roi.image_to_crop(size)
    # Index convention for OpenCV: pixel centres at +0.5 (see Roi.crop).
    m_idx = m.copy()
    m_idx[:, 2] = m[:, 2] + m[:, :2] @ np.array([0.5, 0.5]) - 0.5
    return cv2.warpAffine(
        crop,
        m_idx,
        (int(shape[1]), int(shape[0])),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0.0,
    )


# ------------------------------------------------------------------ the multi-person detector


class BlazePoseTFLite:
    """Up to ``max_people`` people per image: person detector -> ROI -> BlazePose landmarks.

    ``detect`` returns :class:`~s2m_model.detect.base.Detection` objects exactly like the
    legacy :class:`~s2m_model.detect.mediapipe_pose.MediaPipeDetector` (COCO-17 keypoints with
    visibility as confidence, BlazePose extras, all 33 landmarks, world landmarks and, with
    ``enable_segmentation``, a per-person mask that is zero outside the person's ROI), best
    first by :attr:`Detection.score` (mean landmark visibility).

    Args:
        max_people: at most this many people per image (default 6).
        min_detection_confidence: person-detector threshold (as the legacy option).
        min_presence: landmark-model pose-presence threshold (the legacy
            ``min_tracking_confidence``); crops below it are dropped.
        static_image_mode: ``False`` (video): also try the previous frame's ROIs (from the
            auxiliary landmarks, as MediaPipe tracks), which keeps people through detector
            misses; frames must then come from one stream in order (:meth:`reset` between).
        enable_segmentation: compute per-person masks (one extra warp per person).
        tiles: detector tiles for small people (see
            :class:`~s2m_model.detect.blazepose_person.BlazePoseBoxDetector`); in video mode
            ``tiles_per_frame`` of them run per frame (round robin), in static mode all.
            Default 2 (2 x 2 tiles): the model mostly finds one, central, person per pass,
            so without tiles people beside a central one are missed.
        tiles_per_frame: tiles per frame in video mode.
        hog_every: also use OpenCV's HOG people detector
            (:class:`~s2m_model.detect.hog_people.HogPersonDetector`), which finds the
            smaller, more distant people BlazePose's detector misses: on every frame in static
            mode, every ``hog_every`` frames in video mode (it costs ~0.1-0.3 s per run at
            640x480). 0 disables it. Ignored when ``person_detector`` is given. Default 5:
            on the rendered crowd benchmark it lifts recall of people >= 150 px from 0.86 to
            0.92 (with the gap probes; docs/multiperson.md).
        detect_every: video mode only: while people are tracked from the previous frame, run
            the person detector (tiles, HOG) only every ``detect_every``-th frame, as
            MediaPipe's graph detects only when tracking is lost. 1 (default) runs it on every
            frame. 5 makes 1 tracked person cost about one landmark run instead of landmarks +
            detector, but new people are found later (the tiles and HOG advance only on
            detector frames): rendered-crowd recall >= 150 px 0.89 instead of 0.92
            (docs/multiperson.md).
        gap_probes: video mode, BlazePose's own person detector only: on each detector frame
            with people tracked, run it on this many extra square crops centred on the
            horizontal gaps between the tracked people (:func:`gap_regions`, round robin,
            widest gap first; ~10 ms each). The model mostly finds the most central person
            of a crop, so with people side by side a fixed tile holding two of them reports
            one, and a person between tracked neighbours was never found (4 people 180 px
            tall side by side: 3 found; with the probe: 4). The tracked people are painted
            out of the probe's image (:func:`mask_people`), or the crop would report a
            neighbour again. Rendered-crowd recall >= 150 px 0.89 -> 0.92. 0 disables.
        gap_probe_backoff: once a whole round of the gaps was probed without finding anyone
            new, the probes pause for 1, then 2, 4, ... detector frames, at most this many; a
            probe that finds someone, or a change in how many people are tracked, resumes them
            on the next detector frame.
            A scene whose people are all found then pays for a probe on about one detector
            frame in this many instead of every one (8: 1 person 65 -> 46 ms, 4 people 127 ->
            111 ms per frame). 0 (default): probe on every detector frame, because people the
            probes find are found later with pauses (rendered crowd: 31 of 744 person-frames
            fewer tracked, MOTA 0.856 -> 0.815; recall of people >= 80 px unchanged;
            docs/multiperson.md).
        person_detector: another :class:`~s2m_model.detect.person.PersonDetector` (e.g. HOG,
            or one of the user's) instead of BlazePose's; its boxes become ROIs through
            :meth:`Roi.from_box` (scale ``box_roi_scale``) unless they carry BlazePose's
            alignment keypoints.
        box_roi_scale: ROI side / longer box side for keypoint-less boxes.
        dedupe_distance: two results whose visible landmarks lie closer than this (mean, as a
            fraction of the landmark box size) are one person seen twice.
        num_threads: LiteRT threads per model (None: the runtime's default).
        max_side: largest accepted image side in pixels.

    Thread safety: one frame at a time (a lock); use one detector per stream.

    Raises:
        ValueError: invalid options. FileNotFoundError / ImportError when the models or LiteRT
            are missing (with what to install).
    """

    def __init__(
        self,
        *,
        max_people: int = 6,
        min_detection_confidence: float = 0.5,
        min_presence: float = 0.5,
        static_image_mode: bool = False,
        enable_segmentation: bool = True,
        tiles: int | Sequence[int] = 2,
        tiles_per_frame: int = 1,
        hog_every: int = 5,
        detect_every: int = 1,
        gap_probes: int = 1,
        gap_probe_backoff: int = 0,
        person_detector: PersonDetector | None = None,
        box_roi_scale: float = 1.1,
        dedupe_distance: float = 0.1,
        num_threads: int | None = None,
        max_side: int = MAX_IMAGE_SIDE,
    ) -> None:
        if max_people < 1:
            raise ValueError(f"max_people must be >= 1, got {max_people}")
        for name, value in (
            ("min_detection_confidence", min_detection_confidence),
            ("min_presence", min_presence),
            ("dedupe_distance", dedupe_distance),
        ):
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if not box_roi_scale > 0:
            raise ValueError(f"box_roi_scale must be > 0, got {box_roi_scale}")
        self.max_people = int(max_people)
        self.min_presence = float(min_presence)
        self.static_image_mode = bool(static_image_mode)
        self.enable_segmentation = bool(enable_segmentation)
        self.box_roi_scale = float(box_roi_scale)
        self.dedupe_distance = float(dedupe_distance)
        self.max_side = int(max_side)
        if hog_every < 0:
            raise ValueError(f"hog_every must be >= 0, got {hog_every}")
        if detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {detect_every}")
        self.detect_every = int(detect_every)
        if gap_probes < 0:
            raise ValueError(f"gap_probes must be >= 0, got {gap_probes}")
        self.gap_probes = int(gap_probes)
        if gap_probe_backoff < 0:
            raise ValueError(f"gap_probe_backoff must be >= 0, got {gap_probe_backoff}")
        self.gap_probe_backoff = int(gap_probe_backoff)
        self._next_gap = 0
        self._probe_pause = self._probe_skip = 0  # back-off length, detector frames left
        self._probe_misses = 0  # probes in a row that found nobody new
        self._probe_regions = 0  # gaps in the last probe's round robin
        self._probe_people = 0  # people tracked at the last probe decision
        self._box_detector: BlazePoseBoxDetector | None = (
            person_detector if isinstance(person_detector, BlazePoseBoxDetector) else None
        )
        self._since_detect = 0
        if person_detector is None:
            person_detector = BlazePoseBoxDetector(
                min_score=min_detection_confidence,
                max_people=max_people,
                tiles=tiles,
                tiles_per_call=None if static_image_mode else tiles_per_frame,
                num_threads=num_threads,
            )
            self._box_detector = person_detector
            if hog_every:
                from s2m_model.detect.hog_people import HogPersonDetector

                hog: PersonDetector = HogPersonDetector(max_people=max_people)
                if not static_image_mode and hog_every > 1:
                    hog = ThrottledPersonDetector(hog, hog_every)
                person_detector = UnionPersonDetector(
                    [person_detector, hog], max_people=2 * max_people
                )
        self.person_detector: PersonDetector = person_detector
        self.landmarker = BlazePoseLandmarker(num_threads=num_threads)
        self._prev_rois: list[Roi] = []
        self._prev_boxes: list[np.ndarray] = []
        self._lock = threading.Lock()
        self._closed = False
        self.last_rois: list[Roi] = []
        """The ROIs the landmark model ran on in the last call (for overlays and debugging)."""

    def roi_for(self, person: PersonBox) -> Roi:
        """The landmark ROI of a person-detector result."""
        if person.keypoints is not None and len(person.keypoints) >= 2:
            return Roi.from_alignment(person.keypoints[0], person.keypoints[1], scale=ROI_SCALE)
        return Roi.from_box(person.box, scale=self.box_roi_scale)

    def detect_landmarks(self, image: np.ndarray) -> list[PoseLandmarks]:
        """The raw per-person landmarks (image pixels), best presence first."""
        rgb = validate_image(image, max_side=self.max_side)
        with self._lock:
            if self._closed:
                raise RuntimeError("BlazePoseTFLite is closed")
            tracked = [] if self.static_image_mode else list(self._prev_rois)
            # Tracked people need no detector pass (their ROIs come from the last frame); it
            # still runs every detect_every frames to find people who came into view.
            self._since_detect += 1
            people: list[PersonBox] = []
            probed: list[PersonBox] | None = None  # the gap probes' people, when they ran
            if not tracked or self._since_detect >= self.detect_every:
                people = self.person_detector.detect_people(rgb)
                self._since_detect = 0
                if tracked and self.gap_probes and self._box_detector is not None \
                        and self._probe_due(len(tracked)):  # fmt: skip
                    probed = self._probe_gaps(rgb)
                    people = [*people, *probed]
            candidates = [self.roi_for(p) for p in people]
            probe_rois = candidates[len(candidates) - len(probed or []):]  # the probes' last
            # A detector ROI on a person already tracked from the previous frame is the same
            # person: skip its landmark run (~20 ms per person).
            fresh = [r for r in candidates if not any(same_roi(r, t) for t in tracked)]
            height, width = rgb.shape[:2]
            rois = [r for r in tracked + fresh if plausible_roi(r, width, height)]
            results: list[PoseLandmarks] = []
            new_from_probe = False
            for roi in rois:
                if len(results) >= self.max_people:
                    break
                found = self.landmarker.run(
                    rgb, roi, with_mask=self.enable_segmentation, min_presence=self.min_presence
                )
                if (
                    found is None
                    or not in_image(found.landmarks, width, height)
                    or any(
                        same_landmarks(found.landmarks, r.landmarks, self.dedupe_distance)
                        or is_fragment(found.landmarks, r.landmarks)
                        for r in results
                    )
                ):
                    continue
                results.append(found)
                new_from_probe |= roi in probe_rois
            if probed is not None:  # someone new from a probe, or a pause (gap_probe_backoff)
                self._probe_found(new_from_probe)
            self.last_rois = rois
            self._prev_rois = [] if self.static_image_mode else [r.next_roi() for r in results]
            self._prev_boxes = [landmark_box(r.landmarks[:33]) for r in results]
        return results

    def _probe_due(self, tracked: int) -> bool:
        """Whether this detector frame probes the gaps (``gap_probe_backoff``)."""
        if tracked != self._probe_people:  # someone came or went: look again now
            self._probe_people, self._probe_pause, self._probe_skip = tracked, 0, 0
            self._probe_misses = 0
        if self._probe_skip > 0:
            self._probe_skip -= 1
            return False
        return True

    def _probe_found(self, found: bool) -> None:
        """A probe ran: it found someone not tracked (``found``), or it did not (after a whole
        round of the gaps without anyone: pause)."""
        self._probe_misses = 0 if found else self._probe_misses + 1
        rounds = max(1, -(-self._probe_regions // max(self.gap_probes, 1)))  # probes per round
        if self._probe_misses < rounds or not self.gap_probe_backoff:
            self._probe_pause = 0
        else:
            self._probe_pause = min(max(1, 2 * self._probe_pause), self.gap_probe_backoff)
        self._probe_skip = self._probe_pause

    def _probe_gaps(self, rgb: np.ndarray) -> list[PersonBox]:
        """People found in crops on the gaps between the previous frame's people, with those
        people painted out (:func:`mask_people`): the detector then reports the person it
        had left out for a more salient tracked neighbour in the same crop."""
        assert self._box_detector is not None
        height, width = rgb.shape[:2]
        regions = gap_regions(self._prev_boxes, self._prev_rois, width, height)
        self._probe_regions = len(regions)
        if not regions:
            return []
        picked, self._next_gap = round_robin(regions, self._next_gap, self.gap_probes)
        return self._box_detector.detect_in_regions(mask_people(rgb, self._prev_boxes), picked)

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Everyone found in ``image`` (see :meth:`s2m_model.detect.base.Detector.detect`)."""
        rgb = validate_image(image, max_side=self.max_side)
        height, width = rgb.shape[:2]
        out = []
        for found in self.detect_landmarks(rgb):
            lm = found.landmarks[:33, :4].astype(np.float64)
            norm = np.column_stack(
                [lm[:, 0] / width, lm[:, 1] / height, lm[:, 2] / width, lm[:, 3]]
            )
            out.append(
                landmarks_to_detection(norm, width, height, world=found.world, mask=found.mask)
            )
        out.sort(key=lambda d: -d.score)
        return out

    def reset(self) -> None:
        """Forget the previous frame's ROIs (start of a new stream)."""
        with self._lock:
            self._prev_rois = []
            self._prev_boxes = []
            self._since_detect = 0
            self._next_gap = 0
            self._probe_pause = self._probe_skip = self._probe_people = 0
            self._probe_misses = self._probe_regions = 0
            reset = getattr(self.person_detector, "reset", None)
            if callable(reset):
                reset()

    def close(self) -> None:
        """Free the models; further ``detect`` calls raise RuntimeError."""
        with self._lock:
            self._closed = True
            self.person_detector.close()
            self.landmarker.close()

    def __enter__(self) -> BlazePoseTFLite:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def landmark_box(landmarks: np.ndarray, min_visibility: float = 0.5) -> np.ndarray:
    """``(4,)`` extent of ``(L, >=4)`` landmarks (x, y, z, visibility) with visibility >=
    ``min_visibility`` (all of them if none), not clipped."""
    seen = landmarks[:, 3] >= min_visibility
    xy = landmarks[seen, :2] if seen.any() else landmarks[:, :2]
    return np.concatenate([xy.min(0), xy.max(0)]).astype(np.float64)


def same_roi(a: Roi, b: Roi, *, centre_tol: float = 0.25, size_ratio: float = 1.5) -> bool:
    """Whether two ROIs frame the same person: centres closer than ``centre_tol`` x the smaller
    side and sides within a factor ``size_ratio``."""
    small, large = sorted((a.size, b.size))
    near = math.hypot(a.cx - b.cx, a.cy - b.cy) < centre_tol * small
    return near and large <= size_ratio * small


def same_landmarks(a: np.ndarray, b: np.ndarray, tolerance: float = 0.1) -> bool:
    """Whether two ``(33, >=4)`` landmark sets (x, y, z, visibility) are one person: the mean
    distance of the landmarks visible in both is below ``tolerance`` x the box diagonal, as
    they are or with ``b``'s left and right swapped (the landmark model read the same person
    once facing the camera and once facing away: measured on the demo clip, such twins are
    0.03-0.09 diagonals apart mirrored and 0.14 as they are)."""
    a, b = a[:33], b[:33]
    box = landmark_box(a)
    diag = max(float(np.hypot(box[2] - box[0], box[3] - box[1])), 1.0)
    for other in (b, b[list(BLAZEPOSE33_FLIP)]):
        seen = (a[:, 3] >= 0.5) & (other[:, 3] >= 0.5)
        if seen.sum() < 3:
            seen = np.ones(min(len(a), len(other)), dtype=bool)
        dist = np.linalg.norm(a[seen, :2] - other[seen, :2], axis=1).mean()
        if dist < tolerance * diag:
            return True
    return False


def is_fragment(
    part: np.ndarray, whole: np.ndarray, *, inside: float = 0.8, area_ratio: float = 0.5
) -> bool:
    """Whether landmarks ``part`` are a piece of the person ``whole`` seen again (e.g. a tile
    that cut the person): ``part``'s landmark box lies mostly (``inside``) in ``whole``'s and is
    less than ``area_ratio`` of its area. Two similar-sized people crossing are not fragments."""
    a, b = landmark_box(part[:33]), landmark_box(whole[:33])
    area_a = max((a[2] - a[0]) * (a[3] - a[1]), 1e-6)
    area_b = max((b[2] - b[0]) * (b[3] - b[1]), 1e-6)
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return bool(w * h / area_a > inside and area_a < area_ratio * area_b)


def plausible_roi(
    roi: Roi, width: int, height: int, *, max_size: float = 2.0, min_size: float = 16.0
) -> bool:
    """Whether a ROI can frame a person in a ``width`` x ``height`` image: centre within half
    an image of it, side between ``min_size`` px and ``max_size`` x the longer image side.
    Rejects the huge, far-off ROIs that a person cut by a tile border, or a landmark result on
    nothing, can produce (they would be carried from frame to frame in video mode)."""
    side = max(width, height)
    inside = -0.5 * width <= roi.cx <= 1.5 * width and -0.5 * height <= roi.cy <= 1.5 * height
    return inside and min_size <= roi.size <= max_size * side


def in_image(landmarks: np.ndarray, width: int, height: int, *, min_points: int = 4) -> bool:
    """Whether at least ``min_points`` of the 33 landmarks with visibility >= 0.5 lie in the
    image (a person mostly outside the frame, or a hallucination, is not reported)."""
    lm = landmarks[:33]
    seen = (
        (lm[:, 3] >= 0.5)
        & (lm[:, 0] >= 0)
        & (lm[:, 0] < width)
        & (lm[:, 1] >= 0)
        & (lm[:, 1] < height)
    )
    return int(seen.sum()) >= min_points


def gap_regions(
    boxes: Sequence[np.ndarray],
    rois: Sequence[Roi],
    width: int,
    height: int,
    *,
    min_gap: float = 0.25,
) -> list[np.ndarray]:
    """Square detector crops ``x0, y0, side`` (image pixels) centred on the horizontal gaps
    between people, widest gap first.

    Args:
        boxes: the people's ``(4,)`` landmark boxes ``x0, y0, x1, y1`` (pixels).
        rois: their landmark ROIs; the crops take the median ROI side (people side by side
            stand at similar depths) and centre height, clipped to the image.
        width, height: the image size in pixels.
        min_gap: gaps narrower than this fraction of the crop side (about a person's width)
            get no crop.

    Returns:
        One crop per gap of the x axis ``[0, width]`` not covered by any box, including the
        gaps at the image borders; ``[]`` without people.
    """
    if not boxes or not rois:
        return []
    side = float(np.median([r.size for r in rois]))
    side = min(max(side, 32.0), float(min(width, height)))
    cy = float(np.median([r.cy for r in rois]))
    y0 = min(max(cy - 0.5 * side, 0.0), height - side)
    spans = sorted((float(b[0]), float(b[2])) for b in boxes)
    gaps, edge = [], 0.0
    for x0, x1 in spans:
        if x0 > edge:
            gaps.append((edge, x0))
        edge = max(edge, x1)
    if edge < width:
        gaps.append((edge, float(width)))
    gaps = [g for g in gaps if g[1] - g[0] >= min_gap * side]
    gaps.sort(key=lambda g: -(g[1] - g[0]))
    out = []
    for a, b in gaps:
        x0 = min(max(0.5 * (a + b) - 0.5 * side, 0.0), width - side)
        out.append(np.array([x0, y0, side]))
    return out


def mask_people(rgb: np.ndarray, boxes: Sequence[np.ndarray], *, pad: float = 0.05) -> np.ndarray:
    """A copy of ``rgb`` (``(H, W, 3)`` uint8) with each ``(4,)`` box ``x0, y0, x1, y1``
    (pixels), grown by ``pad`` x its height on every side, filled with the image's mean
    colour."""
    out = np.array(rgb, copy=True)
    if not boxes:
        return out
    height, width = rgb.shape[:2]
    fill = rgb.reshape(-1, rgb.shape[-1]).mean(0).astype(rgb.dtype)
    for box in boxes:
        grow = pad * float(box[3] - box[1]) + 2.0
        x0, y0 = (max(int(math.floor(v - grow)), 0) for v in box[:2])
        x1 = min(int(math.ceil(box[2] + grow)), width)
        y1 = min(int(math.ceil(box[3] + grow)), height)
        if x1 > x0 and y1 > y0:
            out[y0:y1, x0:x1] = fill
    return out
