"""MediaPipe BlazePose (legacy ``mp.solutions.pose``) as an s2m :class:`Detector`.

Only ``model_complexity=1`` ("full") is allowed: its TFLite model ships inside the mediapipe
0.10.21 wheel, whereas complexities 0 and 2 are downloaded from Google storage at start-up,
which s2m never does. The legacy Pose solution tracks a *single* person (the most prominent
one); for several people use another backend.

Robustness (a MediaPipe graph that fails once stays failed, and used to make every later frame
look empty): the detector rebuilds its graph after any graph error and retries the frame once,
rebuilds it before a frame of another size in video mode (the segmentation smoothing cannot
change size mid-stream), and counts all of it in :attr:`MediaPipeDetector.stats`. A frame on
which MediaPipe still fails raises :class:`~s2m_model.detect.base.DetectorError`; an empty list
always means "no person".
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from s2m_model.detect.base import Detection, DetectorError
from s2m_model.image import MAX_IMAGE_SIDE, validate_image
from s2m_model.skeletons import get_format
from s2m_model.util.quiet_stderr import quiet_native_stderr

log = logging.getLogger(__name__)

BLAZEPOSE33_NAMES: tuple[str, ...] = get_format("blazepose33").joint_names
"""BlazePose 33-landmark order (MediaPipe ``PoseLandmark``)."""

BLAZEPOSE_TO_COCO17: tuple[int, ...] = tuple(get_format("blazepose33").to_formats["coco17"])
"""For each COCO-17 keypoint, its BlazePose index (eyes = the eye-centre landmarks 2 and 5)."""

BLAZEPOSE_EXTRAS: tuple[str, ...] = (
    "left_heel",
    "right_heel",
    "left_foot_index",
    "right_foot_index",
    "left_pinky",
    "right_pinky",
    "left_index",
    "right_index",
    "left_thumb",
    "right_thumb",
)
"""BlazePose points exported in :attr:`Detection.extra` (feet and hands)."""

SUPPORTED_COMPLEXITY = 1


PoseFactory = Callable[[dict[str, Any]], Any]
"""Builds a MediaPipe ``Pose``-like graph (``process(rgb)``, ``reset()``, ``close()``) from the
keyword options of ``mediapipe.solutions.pose.Pose``."""

STATUS_OK = "ok"
STATUS_NO_PERSON = "no_person"
STATUS_FAILED = "failed"

QUIET_FRAMES = 100
"""A graph's first frames run with the native banners dropped until the graph has found a
person (MediaPipe warns once more on that frame), but at most this many frames: the stderr
redirection is process-wide, so it is not kept on for a whole stream."""


def mediapipe_pose_factory(options: dict[str, Any]) -> Any:
    """The default :data:`PoseFactory`: ``mediapipe.solutions.pose.Pose(**options)``."""
    from mediapipe.python.solutions import pose as mp_pose

    return mp_pose.Pose(**options)


def _settle(pose: Any) -> None:
    """Wait until a freshly started (or reset) MediaPipe graph is idle.

    ``Pose()`` and ``reset()`` return once the graph run has started; its calculators then
    open on MediaPipe's own threads and print their banners there. Waiting here keeps that
    inside the caller's :func:`~s2m_model.util.quiet_stderr.quiet_native_stderr` block instead
    of racing with its end. A graph without ``_graph.wait_until_idle`` (a test fake) is left
    alone.
    """
    wait = getattr(getattr(pose, "_graph", None), "wait_until_idle", None)
    if callable(wait):
        wait()


class _Graph:
    """One MediaPipe graph, built on demand and thrown away (never reused) after an error."""

    def __init__(self, options: dict[str, Any], factory: PoseFactory) -> None:
        self.options = options
        self.factory = factory
        self.pose: Any = None
        self.size: tuple[int, int] | None = None  # (width, height) of the frames it has seen
        self.frames = 0  # frames this graph has processed quietly (up to QUIET_FRAMES)
        self.found_person = False  # one of them had a person

    def build(self) -> None:
        """Create the graph now (its native banners dropped)."""
        with quiet_native_stderr():
            self.pose = self.factory(self.options)
            _settle(self.pose)

    def reset(self) -> None:
        """Restart the graph's run (MediaPipe re-opens its calculators, banners dropped); its
        next frames are quiet again as a new graph's. Raises what ``pose.reset()`` raises."""
        with quiet_native_stderr():
            self.pose.reset()
            _settle(self.pose)
        self.frames, self.found_person = 0, False

    def process(self, rgb: np.ndarray) -> Any:
        """Run one frame, the graph's first ones with the native banners dropped."""
        if self.pose is not None and (self.found_person or self.frames >= QUIET_FRAMES):
            return self.pose.process(rgb)
        with quiet_native_stderr():
            if self.pose is None:  # as build(): a new graph settles before its first frame
                self.pose = self.factory(self.options)
                _settle(self.pose)
            result = self.pose.process(rgb)
        self.frames += 1
        self.found_person = getattr(result, "pose_landmarks", None) is not None
        return result

    def discard(self) -> None:
        """Close and forget the graph; never raises (a failed graph may refuse to close)."""
        pose, self.pose, self.size = self.pose, None, None
        self.frames, self.found_person = 0, False
        if pose is not None:
            try:
                pose.close()
            except Exception as exc:  # the graph is dropped either way
                log.debug("closing a MediaPipe graph failed: %s", exc)


class MediaPipeDetector:
    """Single-person 2D keypoints + silhouette mask with MediaPipe BlazePose (full model).

    ``detect`` returns at most one :class:`Detection`: COCO-17 keypoints (visibility as the
    confidence), the BlazePose extras (heels, toes, hand points), all 33 landmarks, the metric
    world landmarks and the segmentation mask. ``Detection.score`` is the mean visibility of
    the 33 landmarks (the legacy API does not expose the person-detector score). The bbox is
    the extent of the landmarks with visibility >= 0.5 (all landmarks if none), clipped to the
    image.

    Modes: ``static_image_mode=True`` runs the person detector on every frame (independent
    photos: use it for a folder of unrelated images); ``False`` (video mode) tracks the person
    from the previous frame's landmarks and smooths landmarks and mask over time, which is
    faster and steadier on a stream, but frames must then come from one stream in order; call
    :meth:`reset` between streams. In video mode a frame whose size differs from the previous
    one starts a fresh graph (counted in ``stats["size_changes"]``; the first frame of a graph
    costs ~0.1-1 s of model set-up), and when the tracked person is lost (the previous frame
    had one, this one has none) the frame is run once more through a static-mode graph
    (``redetect_on_loss``, counted in ``stats["redetections"]``), so a cut to another scene or
    photo does not lose the person for a frame.

    Failures: any MediaPipe exception on a frame throws that graph away (``stats["rebuilds"]``,
    ``stats["graph_errors"]``) and retries the frame once on a fresh graph; if that fails too,
    ``detect`` raises :class:`~s2m_model.detect.base.DetectorError` (``stats["failures"]``) and
    the next call starts on a fresh graph. So an empty list always means "nobody found", never
    "the detector broke". :attr:`last_status` tells how the last call ended
    (``"ok"``, ``"no_person"``, ``"failed"``).

    Thread safety: a MediaPipe graph processes one frame at a time and keeps tracking state,
    so ``detect`` is serialised with a lock; use one detector per stream (per thread) for
    parallelism.

    Args:
        static_image_mode: see above.
        model_complexity: must be 1 (see the module docstring); anything else raises.
        enable_segmentation: compute :attr:`Detection.mask`.
        min_detection_confidence: person-detector threshold in [0, 1].
        min_tracking_confidence: landmark-tracking threshold in [0, 1] (video mode).
        smooth: temporal smoothing of landmarks and mask in video mode.
        max_side: largest accepted image side in pixels.
        redetect_on_loss: video mode only, see above.
        pose_factory: builds the MediaPipe graphs (default :func:`mediapipe_pose_factory`);
            a hook for tests and instrumented builds.

    Raises:
        ValueError: unsupported ``model_complexity`` or thresholds outside [0, 1].
    """

    def __init__(
        self,
        *,
        static_image_mode: bool = False,
        model_complexity: int = SUPPORTED_COMPLEXITY,
        enable_segmentation: bool = True,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        smooth: bool = True,
        max_side: int = MAX_IMAGE_SIDE,
        redetect_on_loss: bool = True,
        pose_factory: PoseFactory | None = None,
    ) -> None:
        if model_complexity != SUPPORTED_COMPLEXITY:
            raise ValueError(
                f"MediaPipe model_complexity={model_complexity} is not supported: only 1 "
                "('full') ships inside the mediapipe wheel; 0 ('lite') and 2 ('heavy') would be "
                "downloaded at run time, which s2m does not do"
            )
        for name, value in (
            ("min_detection_confidence", min_detection_confidence),
            ("min_tracking_confidence", min_tracking_confidence),
        ):
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        self.static_image_mode = bool(static_image_mode)
        self.enable_segmentation = bool(enable_segmentation)
        self.max_side = int(max_side)
        self.redetect_on_loss = bool(redetect_on_loss) and not self.static_image_mode
        options = dict(
            static_image_mode=self.static_image_mode,
            model_complexity=SUPPORTED_COMPLEXITY,
            smooth_landmarks=bool(smooth),
            enable_segmentation=self.enable_segmentation,
            smooth_segmentation=bool(smooth),
            min_detection_confidence=float(min_detection_confidence),
            min_tracking_confidence=float(min_tracking_confidence),
        )
        factory = pose_factory or mediapipe_pose_factory
        self._lock = threading.Lock()
        self._graph = _Graph(options, factory)
        self._fallback = _Graph({**options, "static_image_mode": True}, factory)
        self._graph.build()  # fail here, not on the first frame
        self._closed = False
        self._had_person = False
        self._counts = dict.fromkeys(
            ("frames", "detected", "no_person", "failures", "graph_errors", "rebuilds",
             "size_changes", "redetections", "redetected"), 0,
        )  # fmt: skip
        self.last_status: str | None = None
        """How the last ``detect`` ended: ``"ok"``, ``"no_person"``, ``"failed"`` (None yet)."""
        self.last_error: str | None = None
        """The most recent MediaPipe error message (kept after recovery), or None."""

    @property
    def stats(self) -> dict[str, Any]:
        """Counters since construction (a copy): ``frames`` (detect calls on valid images),
        ``detected`` / ``no_person`` / ``failures`` (how they ended; ``failures`` raised
        DetectorError), ``graph_errors`` (MediaPipe exceptions, recovered or not),
        ``rebuilds`` (graphs thrown away and rebuilt), ``size_changes`` (video mode),
        ``redetections`` / ``redetected`` (static re-runs after a lost track / those that found
        the person), plus ``last_status`` and ``last_error``."""
        with self._lock:
            return {**self._counts, "last_status": self.last_status, "last_error": self.last_error}

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Find the most prominent person; see :meth:`s2m_model.detect.base.Detector.detect`.

        Returns:
            ``[]`` when nobody is found, else one :class:`Detection`.

        Raises:
            ValueError: ``image`` is not a valid image.
            DetectorError: MediaPipe failed on this frame, also on a fresh graph (counted in
                ``stats["failures"]``; the detector stays usable).
            RuntimeError: the detector is closed.
        """
        rgb = validate_image(image, max_side=self.max_side)
        height, width = rgb.shape[:2]
        with self._lock:
            if self._closed:
                raise RuntimeError("MediaPipeDetector is closed")
            counts = self._counts
            counts["frames"] += 1
            graph = self._graph
            if not self.static_image_mode and graph.size not in (None, (width, height)):
                # The segmentation smoothing keeps the previous mask and cannot change size.
                log.info("frame size changed from %dx%d to %dx%d: new MediaPipe graph",
                         *graph.size, width, height)  # fmt: skip
                counts["size_changes"] += 1
                self._rebuild(graph)
            result = self._run(graph, rgb)
            if result.pose_landmarks is None and self.redetect_on_loss and self._had_person:
                # The tracker followed an ROI that no longer holds the person (a cut, another
                # photo): look for them in this frame from scratch.
                counts["redetections"] += 1
                again = self._run(self._fallback, rgb)
                if again.pose_landmarks is not None:
                    counts["redetected"] += 1
                    result = again
            if result.pose_landmarks is None:
                self._had_person = False
                counts["no_person"] += 1
                self.last_status = STATUS_NO_PERSON
                return []
            landmarks = np.array(
                [(p.x, p.y, p.z, p.visibility) for p in result.pose_landmarks.landmark],
                dtype=np.float64,
            )
            world = None
            if result.pose_world_landmarks is not None:
                world = np.array(
                    [(p.x, p.y, p.z) for p in result.pose_world_landmarks.landmark],
                    dtype=np.float32,
                )
            mask = None
            if self.enable_segmentation and result.segmentation_mask is not None:
                mask = np.clip(np.asarray(result.segmentation_mask, dtype=np.float32), 0, 1)
            self._had_person = True
            counts["detected"] += 1
            self.last_status = STATUS_OK
        return [landmarks_to_detection(landmarks, width, height, world=world, mask=mask)]

    def _rebuild(self, graph: _Graph) -> None:
        graph.discard()
        self._counts["rebuilds"] += 1
        if graph is self._graph:
            self._had_person = False

    def _run(self, graph: _Graph, rgb: np.ndarray) -> Any:
        """``graph.process(rgb)``; on an error a fresh graph retries once, then DetectorError."""
        height, width = rgb.shape[:2]
        for attempt in (1, 2):
            try:
                result = graph.process(rgb)
            except Exception as exc:  # any native failure: count it, never keep the graph
                self._counts["graph_errors"] += 1
                self.last_error = f"{type(exc).__name__}: {exc}".strip()
                self._rebuild(graph)
                if attempt == 2:
                    self._counts["failures"] += 1
                    self.last_status = STATUS_FAILED
                    raise DetectorError(
                        f"MediaPipe failed on a {width}x{height} frame, also on a fresh graph: "
                        f"{self.last_error}"
                    ) from exc
                log.warning("MediaPipe failed on a %dx%d frame (%s); retrying on a new graph",
                            width, height, self.last_error)  # fmt: skip
            else:
                graph.size = (width, height)
                return result
        raise AssertionError("unreachable")  # pragma: no cover

    def reset(self) -> None:
        """Forget the tracking state (start of a new stream). Never raises; a no-op once closed.

        A graph that refuses to reset (e.g. after an error) is replaced by a fresh one on the
        next frame.
        """
        with self._lock:
            if self._closed:
                return
            self._had_person = False
            graph = self._graph
            if graph.pose is None:
                return
            try:
                graph.reset()
            except Exception as exc:  # a failed graph cannot restart: drop it
                self.last_error = f"{type(exc).__name__}: {exc}".strip()
                log.info("MediaPipe graph could not reset (%s): rebuilding it", self.last_error)
                self._rebuild(graph)
            graph.size = None

    def close(self) -> None:
        """Free the MediaPipe graphs; idempotent, never raises. Further ``detect`` calls raise
        RuntimeError."""
        with self._lock:
            self._closed = True
            self._graph.discard()
            self._fallback.discard()

    def __enter__(self) -> MediaPipeDetector:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def landmarks_to_detection(
    landmarks: np.ndarray,
    width: int,
    height: int,
    *,
    world: np.ndarray | None = None,
    mask: np.ndarray | None = None,
) -> Detection:
    """Build a :class:`Detection` from BlazePose landmarks.

    Args:
        landmarks: ``(33, 4)`` normalised x, y (fractions of width/height), z (relative depth
            at the scale of x), visibility.
        width, height: image size in pixels.
        world: optional ``(33, 3)`` world landmarks in metres.
        mask: optional ``(H, W)`` segmentation probability.

    Raises:
        ValueError: wrong shape or non-finite values.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (33, 4):
        raise ValueError(f"BlazePose landmarks must have shape (33, 4), got {landmarks.shape}")
    if not np.isfinite(landmarks).all():
        raise ValueError("BlazePose landmarks contain NaN or infinite values")
    pixels = np.empty((33, 4), dtype=np.float32)
    pixels[:, 0] = landmarks[:, 0] * width
    pixels[:, 1] = landmarks[:, 1] * height
    pixels[:, 2] = landmarks[:, 2] * width
    pixels[:, 3] = np.clip(landmarks[:, 3], 0.0, 1.0)
    point3 = pixels[:, (0, 1, 3)]

    keypoints = point3[list(BLAZEPOSE_TO_COCO17)]
    extra = {name: point3[BLAZEPOSE33_NAMES.index(name)].copy() for name in BLAZEPOSE_EXTRAS}

    seen = pixels[:, 3] >= 0.5
    xy = pixels[seen, :2] if seen.any() else pixels[:, :2]
    bbox = np.array(
        [
            np.clip(xy[:, 0].min(), 0, width),
            np.clip(xy[:, 1].min(), 0, height),
            np.clip(xy[:, 0].max(), 0, width),
            np.clip(xy[:, 1].max(), 0, height),
        ],
        dtype=np.float32,
    )
    if world is not None and not np.isfinite(world).all():
        world = None
    return Detection(
        keypoints=keypoints,
        bbox=bbox,
        score=float(pixels[:, 3].mean()),
        extra=extra,
        keypoints_blazepose=pixels,
        keypoints_world=world,
        mask=mask,
    )
