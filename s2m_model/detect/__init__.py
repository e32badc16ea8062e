"""Person detection: 2D keypoints (COCO-17 + extras) and silhouettes from RGB images.

One interface, :class:`Detector` (``detect(image) -> list[Detection]``), with three backends:

- ``"mediapipe"`` (default) — :class:`MediaPipeDetector`: MediaPipe BlazePose "full" (the model
  inside the mediapipe wheel), single person, 33 landmarks, metric world landmarks and a
  segmentation mask.
- ``"blazepose-multi"`` — :class:`~s2m_model.detect.blazepose_tflite.BlazePoseTFLite`: up to
  ``max_people`` people (default 6) with MediaPipe's shipped BlazePose detector + landmark models
  run through LiteRT, tiles and HOG for small people (docs/multiperson.md).
- ``"onnx"`` — :class:`OnnxKeypointDetector`: a user-supplied top-down COCO-17 heatmap model
  run with onnxruntime (TensorRT, CUDA or CPU); see its module for the model contract.

:func:`get_detector` builds either by name. Keypoints are in pixels (x right, y down).
"""

from __future__ import annotations

from typing import Any

from s2m_model.detect.base import COCO17_NAMES, Detection, Detector, DetectorError

__all__ = [
    "COCO17_NAMES",
    "DETECTORS",
    "Detection",
    "BlazePoseTFLite",
    "Detector",
    "DetectorError",
    "MediaPipeDetector",
    "OnnxKeypointDetector",
    "get_detector",
]

DETECTORS: tuple[str, ...] = ("mediapipe", "blazepose-multi", "onnx")


def get_detector(name: str = "mediapipe", **kwargs: Any) -> Detector:
    """Build a detector by name.

    Args:
        name: ``"mediapipe"`` (keyword arguments of :class:`MediaPipeDetector`),
            ``"blazepose-multi"`` (keyword arguments of
            :class:`~s2m_model.detect.blazepose_tflite.BlazePoseTFLite`) or ``"onnx"``
            (``model_path=`` plus the keyword arguments of :class:`OnnxKeypointDetector`).

    Raises:
        ValueError: unknown name or invalid arguments.
    """
    key = name.strip().lower()
    if key == "mediapipe":
        from s2m_model.detect.mediapipe_pose import MediaPipeDetector

        return MediaPipeDetector(**kwargs)
    if key == "blazepose-multi":
        from s2m_model.detect.blazepose_tflite import BlazePoseTFLite

        return BlazePoseTFLite(**kwargs)
    if key == "onnx":
        from s2m_model.detect.onnx_keypoints import OnnxKeypointDetector

        if "model_path" not in kwargs:
            raise ValueError("the 'onnx' detector needs model_path= (a top-down heatmap model)")
        return OnnxKeypointDetector(**kwargs)
    raise ValueError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")


def __getattr__(name: str):
    # Lazy so that importing s2m_model.detect does not load mediapipe or onnxruntime.
    if name == "MediaPipeDetector":
        from s2m_model.detect.mediapipe_pose import MediaPipeDetector

        return MediaPipeDetector
    if name == "BlazePoseTFLite":
        from s2m_model.detect.blazepose_tflite import BlazePoseTFLite

        return BlazePoseTFLite
    if name == "OnnxKeypointDetector":
        from s2m_model.detect.onnx_keypoints import OnnxKeypointDetector

        return OnnxKeypointDetector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
