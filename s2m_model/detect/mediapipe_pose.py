"""MediaPipe BlazePose (legacy ``mp.solutions.pose``) as an s2m :class:`Detector`.

Only ``model_complexity=1`` ("full") is allowed: its TFLite model ships inside the mediapipe
0.10.21 wheel, whereas complexities 0 and 2 are downloaded from Google storage at start-up,
which s2m never does. The legacy Pose solution tracks a *single* person (the most prominent
one); for several people use another backend.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from s2m_model.detect.base import Detection
from s2m_model.image import MAX_IMAGE_SIDE, validate_image
from s2m_model.skeletons import get_format

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


class MediaPipeDetector:
    """Single-person 2D keypoints + silhouette mask with MediaPipe BlazePose (full model).

    ``detect`` returns at most one :class:`Detection`: COCO-17 keypoints (visibility as the
    confidence), the BlazePose extras (heels, toes, hand points), all 33 landmarks, the metric
    world landmarks and the segmentation mask. ``Detection.score`` is the mean visibility of
    the 33 landmarks (the legacy API does not expose the person-detector score). The bbox is
    the extent of the landmarks with visibility >= 0.5 (all landmarks if none), clipped to the
    image.

    Modes: ``static_image_mode=True`` runs the person detector on every frame (independent
    photos); ``False`` (video mode) tracks the person from the previous frame's landmarks and
    smooths landmarks and mask over time, which is faster and steadier on a stream, but frames
    must then come from one stream in order; call :meth:`reset` between streams.

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
        self._options = dict(
            static_image_mode=self.static_image_mode,
            model_complexity=SUPPORTED_COMPLEXITY,
            smooth_landmarks=bool(smooth),
            enable_segmentation=self.enable_segmentation,
            smooth_segmentation=bool(smooth),
            min_detection_confidence=float(min_detection_confidence),
            min_tracking_confidence=float(min_tracking_confidence),
        )
        self._lock = threading.Lock()
        self._pose = self._make_pose()

    def _make_pose(self):
        from mediapipe.python.solutions import pose as mp_pose

        return mp_pose.Pose(**self._options)

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Find the most prominent person; see :meth:`s2m_model.detect.base.Detector.detect`.

        Returns an empty list when nobody is found or when MediaPipe fails on this frame
        (logged as a warning); an invalid ``image`` raises ValueError.
        """
        rgb = validate_image(image, max_side=self.max_side)
        height, width = rgb.shape[:2]
        with self._lock:
            if self._pose is None:
                raise RuntimeError("MediaPipeDetector is closed")
            try:
                result = self._pose.process(rgb)
            except Exception as exc:  # a native failure on one frame must not stop a stream
                log.warning("MediaPipe failed on a %dx%d frame: %s", width, height, exc)
                return []
            if result.pose_landmarks is None:
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
        return [landmarks_to_detection(landmarks, width, height, world=world, mask=mask)]

    def reset(self) -> None:
        """Forget the tracking state (start of a new stream)."""
        with self._lock:
            if self._pose is not None:
                self._pose.reset()

    def close(self) -> None:
        """Free the MediaPipe graph; further ``detect`` calls raise RuntimeError."""
        with self._lock:
            if self._pose is not None:
                self._pose.close()
                self._pose = None

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
