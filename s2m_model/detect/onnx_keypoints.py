"""A user-supplied top-down COCO-17 heatmap model, run with onnxruntime, as a :class:`Detector`.

Model contract (e.g. an HRNet / SimpleBaseline exported from mmpose with the MSRA heatmap head):

- **Input**: one tensor ``(N, 3, H, W)`` float32, RGB, ``(pixel / 255 - mean) / std`` per
  channel (``mean``/``std`` are constructor arguments, ImageNet values by default). ``H`` and
  ``W`` are read from the model when static, otherwise give ``input_size=(H, W)``. ``N`` may
  be dynamic (all boxes run in one batch) or fixed to 1 (boxes run one by one).
- **Crop**: each person box ``x0, y0, x1, y1`` is enlarged by ``padding`` (1.25) around its
  centre, widened or heightened to the aspect ``W / H``, and resampled (bilinear, black
  outside the image) to ``W x H``. Without boxes the whole frame is one box.
- **Output**: the first output, heatmaps ``(N, 17, h, w)`` in COCO-17 order (typically
  ``h = H / 4``, ``w = W / 4``). Heatmap cell ``(u, v)`` stands for input pixel
  ``(u * W / w, v * H / h)`` (the MSRA/HRNet convention). Each keypoint is the heatmap argmax,
  refined to sub-cell precision by fitting a parabola to the log-heatmap along x and y (exact
  for Gaussian heatmaps); its confidence is the heatmap maximum clipped to [0, 1].

SimCC or regression heads are not supported: convert them to heatmaps or add a backend.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from s2m_model.detect.base import Detection, Detector
from s2m_model.image import MAX_IMAGE_SIDE, validate_image

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NUM_KEYPOINTS = 17


class OnnxKeypointDetector:
    """Top-down 2D keypoints from an ONNX heatmap model (contract in the module docstring).

    Args:
        model_path: the ``.onnx`` file.
        mean, std: per-channel RGB normalisation applied to ``pixel / 255``.
        input_size: ``(H, W)`` when the model input has symbolic height/width.
        padding: box enlargement factor before cropping.
        min_score: detections whose mean keypoint confidence is below this are dropped.
        providers: onnxruntime providers; default: the runtime backend's choice
            (:class:`~s2m_model.export.runtime.OnnxRuntimeBackend`: TensorRT, CUDA, CPU,
            whichever are available; falls back to CPU if a GPU provider fails to start).
        person_detector: optional detector whose boxes are used when ``detect`` gets none.
        max_side: largest accepted image side in pixels.

    Raises:
        FileNotFoundError: ``model_path`` does not exist.
        ValueError: the file is not a valid ONNX model, or the model breaks the contract.
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        input_size: tuple[int, int] | None = None,
        padding: float = 1.25,
        min_score: float = 0.1,
        providers: Sequence[str] | None = None,
        person_detector: Detector | None = None,
        max_side: int = MAX_IMAGE_SIDE,
    ) -> None:
        from s2m_model.export.runtime import OnnxRuntimeBackend

        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {self.model_path}")
        self.mean = np.asarray(mean, dtype=np.float32).reshape(3)
        self.std = np.asarray(std, dtype=np.float32).reshape(3)
        if not (np.isfinite(self.mean).all() and np.isfinite(self.std).all()):
            raise ValueError("mean and std must be finite")
        if (self.std <= 0).any():
            raise ValueError(f"std must be positive, got {self.std.tolist()}")
        if not (np.isfinite(padding) and padding >= 1.0):
            raise ValueError(f"padding must be >= 1, got {padding}")
        self.padding = float(padding)
        self.min_score = float(min_score)
        self.person_detector = person_detector
        self.max_side = int(max_side)

        # The runtime backend validates the file and owns provider choice and CPU fallback.
        self.backend = OnnxRuntimeBackend(self.model_path, providers=providers)
        self.session = self.backend.session
        self.providers = self.backend.providers

        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ValueError(f"{self.model_path}: expected 1 model input, found {len(inputs)}")
        shape = inputs[0].shape
        if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != 3):
            raise ValueError(
                f"{self.model_path}: model input must be (N, 3, H, W), found shape {shape}"
            )
        if inputs[0].type != "tensor(float)":
            raise ValueError(
                f"{self.model_path}: model input must be float32, found {inputs[0].type}"
            )
        self.input_name = inputs[0].name
        self.fixed_batch = shape[0] if isinstance(shape[0], int) else None
        if isinstance(shape[2], int) and isinstance(shape[3], int):
            model_size = (shape[2], shape[3])
            if input_size is not None and tuple(input_size) != model_size:
                raise ValueError(
                    f"{self.model_path}: input_size={tuple(input_size)} but the model expects "
                    f"{model_size}"
                )
            self.input_size = model_size
        elif input_size is not None:
            self.input_size = (int(input_size[0]), int(input_size[1]))
        else:
            raise ValueError(
                f"{self.model_path}: the model input has symbolic height/width {shape}; "
                "pass input_size=(H, W)"
            )
        if min(self.input_size) < 4:
            raise ValueError(f"input size {self.input_size} is too small")
        outputs = self.session.get_outputs()
        out_shape = outputs[0].shape
        if len(out_shape) != 4 or (
            isinstance(out_shape[1], int) and out_shape[1] != NUM_KEYPOINTS
        ):
            raise ValueError(
                f"{self.model_path}: first output must be heatmaps (N, 17, h, w), found "
                f"{out_shape}"
            )
        self.output_name = outputs[0].name
        self._lock = threading.Lock()

    def detect(
        self, image: np.ndarray, bboxes: np.ndarray | Sequence[Sequence[float]] | None = None
    ) -> list[Detection]:
        """Keypoints for each person box (see :meth:`s2m_model.detect.base.Detector.detect`).

        Args:
            image: ``(H, W, 3)`` uint8 RGB (or anything :func:`validate_image` accepts).
            bboxes: ``(M, 4)`` person boxes ``x0, y0, x1, y1`` in pixels; default: the boxes
                of ``person_detector`` if set, else the whole frame.

        Returns:
            One detection per box whose mean keypoint confidence reaches ``min_score``, in
            the order of the boxes. ``bbox`` is the extent of the keypoints with confidence
            >= 0.3 (the input box if none), clipped to the image; ``score`` is the mean
            keypoint confidence; ``mask`` is None. A runtime failure is logged and gives [].

        Raises:
            ValueError: invalid image or boxes.
        """
        if self.session is None:
            raise RuntimeError("OnnxKeypointDetector is closed")
        rgb = validate_image(image, max_side=self.max_side)
        height, width = rgb.shape[:2]
        boxes = self._boxes(rgb, bboxes)
        if len(boxes) == 0:
            return []
        crops, extents = zip(*(self._crop(rgb, box) for box in boxes), strict=True)
        batch = np.stack(crops)
        try:
            with self._lock:
                if self.fixed_batch == 1:
                    heatmaps = np.concatenate(
                        [self._run(batch[i : i + 1]) for i in range(len(batch))]
                    )
                else:
                    heatmaps = self._run(batch)
        except Exception as exc:  # one bad frame must not stop a stream
            log.warning("ONNX keypoint model failed on a %dx%d frame: %s", width, height, exc)
            return []
        if heatmaps.ndim != 4 or heatmaps.shape[:2] != (len(boxes), NUM_KEYPOINTS):
            log.warning("ONNX model returned heatmaps of shape %s; expected (N, 17, h, w)",
                        heatmaps.shape)
            return []

        detections = []
        for box, extent, maps in zip(boxes, extents, heatmaps, strict=True):
            if not np.isfinite(maps).all():
                log.warning("ONNX model returned non-finite heatmaps; box skipped")
                continue
            uvc = decode_heatmaps(maps)
            keypoints = self._to_image(uvc, maps.shape[1:], extent)
            score = float(keypoints[:, 2].mean())
            if score < self.min_score:
                continue
            confident = keypoints[:, 2] >= 0.3
            if confident.any():
                xy = keypoints[confident, :2]
                bbox = np.array([*xy.min(axis=0), *xy.max(axis=0)], dtype=np.float32)
            else:
                bbox = np.asarray(box, dtype=np.float32)
            bbox = np.clip(bbox, 0, [width, height, width, height])
            detections.append(Detection(keypoints=keypoints, bbox=bbox, score=score))
        return detections

    def _run(self, batch: np.ndarray) -> np.ndarray:
        (out,) = self.session.run([self.output_name], {self.input_name: batch})
        return np.asarray(out, dtype=np.float32)

    def _boxes(self, rgb: np.ndarray, bboxes) -> np.ndarray:
        height, width = rgb.shape[:2]
        if bboxes is None:
            if self.person_detector is not None:
                found = self.person_detector.detect(rgb)
                return np.array([d.bbox for d in found], dtype=np.float64).reshape(-1, 4)
            return np.array([[0.0, 0.0, width, height]])
        boxes = np.asarray(bboxes, dtype=np.float64)
        if boxes.ndim == 1:
            boxes = boxes[None]
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"bboxes must have shape (M, 4), got {np.shape(bboxes)}")
        if not np.isfinite(boxes).all():
            raise ValueError("bboxes contain NaN or infinite values")
        if ((boxes[:, 2] - boxes[:, 0]) < 1).any() or ((boxes[:, 3] - boxes[:, 1]) < 1).any():
            raise ValueError("bboxes must be x0, y0, x1, y1 with x1 > x0 and y1 > y0 (>= 1 px)")
        return boxes

    def _crop(self, rgb: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Crop + resize one box to the model input; returns (3, H, W) and the source extent."""
        from PIL import Image

        in_h, in_w = self.input_size
        x0, y0, x1, y1 = (float(v) for v in box)
        cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
        bw, bh = (x1 - x0) * self.padding, (y1 - y0) * self.padding
        aspect = in_w / in_h
        if bw / bh > aspect:
            bh = bw / aspect
        else:
            bw = bh * aspect
        extent = np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])
        crop = Image.fromarray(rgb).transform(
            (in_w, in_h),
            Image.Transform.EXTENT,
            data=tuple(extent),
            resample=Image.Resampling.BILINEAR,
            fillcolor=(0, 0, 0),
        )
        data = (np.asarray(crop, dtype=np.float32) / 255.0 - self.mean) / self.std
        return np.ascontiguousarray(data.transpose(2, 0, 1)), extent

    def _to_image(
        self, uvc: np.ndarray, heatmap_hw: tuple[int, int], extent: np.ndarray
    ) -> np.ndarray:
        """Heatmap cells -> image pixels: cell u is input pixel u * W / w (MSRA convention).

        Pixel coordinates are continuous (pixel i spans [i, i + 1)), as PIL's EXTENT
        transform samples input pixel j at source x0 + (j + 0.5) * scale.
        """
        in_h, in_w = self.input_size
        hm_h, hm_w = heatmap_hw
        x_in = uvc[:, 0] * (in_w / hm_w) + 0.5
        y_in = uvc[:, 1] * (in_h / hm_h) + 0.5
        sx = (extent[2] - extent[0]) / in_w
        sy = (extent[3] - extent[1]) / in_h
        out = np.empty((uvc.shape[0], 3), dtype=np.float32)
        out[:, 0] = extent[0] + x_in * sx
        out[:, 1] = extent[1] + y_in * sy
        out[:, 2] = uvc[:, 2]
        return out

    def close(self) -> None:
        """Drop the onnxruntime session."""
        self.session = None


def decode_heatmaps(heatmaps: np.ndarray, eps: float = 1e-10) -> np.ndarray:
    """Argmax + log-parabola sub-cell refinement of ``(K, h, w)`` heatmaps.

    Returns ``(K, 3)``: u (column), v (row) in heatmap cells, confidence (the maximum clipped
    to [0, 1]). A Gaussian peak is recovered exactly from its 3x3 neighbourhood; at the border,
    or when the neighbourhood is not a strict maximum, the integer cell is kept.
    """
    # Written by hand: a few lines of numpy, and no maintained decoder is a light dependency.
    heatmaps = np.asarray(heatmaps, dtype=np.float64)
    if heatmaps.ndim != 3:
        raise ValueError(f"heatmaps must have shape (K, h, w), got {heatmaps.shape}")
    k, h, w = heatmaps.shape
    flat = heatmaps.reshape(k, -1)
    idx = flat.argmax(axis=1)
    v, u = np.divmod(idx, w)
    peak = flat[np.arange(k), idx]
    out = np.zeros((k, 3))
    out[:, 0], out[:, 1] = u, v
    out[:, 2] = np.clip(peak, 0.0, 1.0)
    logs = np.log(np.maximum(heatmaps, eps))
    for j in range(k):
        if peak[j] <= eps:
            continue
        for axis, (pos, size) in enumerate(((u[j], w), (v[j], h))):
            if not 0 < pos < size - 1:
                continue
            if axis == 0:
                left, mid, right = logs[j, v[j], pos - 1 : pos + 2]
            else:
                left, mid, right = logs[j, pos - 1 : pos + 2, u[j]]
            curvature = left - 2.0 * mid + right
            if curvature < 0:
                out[j, axis] += float(np.clip(0.5 * (left - right) / curvature, -0.5, 0.5))
    return out.astype(np.float32)
