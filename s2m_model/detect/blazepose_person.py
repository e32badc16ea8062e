"""MediaPipe's BlazePose person detector (``pose_detection.tflite``) run with LiteRT.

Re-creates ``pose_detection_cpu.pbtxt`` of MediaPipe 0.10.21: the image is letterboxed (zero
border) into 224x224 with values in [-1, 1]; the model outputs ``(2254, 12)`` box + 4 keypoints
per SSD anchor (:func:`ssd_anchors`: 5 layers, strides 8, 16, 32, 32, 32, aspect ratio 1 plus
one interpolated anchor per layer, fixed anchor size, offset 0.5), decoded with scale 224
(:func:`decode_anchors`), sigmoid scores (logits clipped to +-100), weighted NMS at IoU 0.3
(:func:`~s2m_model.detect.person.weighted_nms`). The keypoints are the hip centre, the
full-body scale point, the shoulder centre and the upper-body scale point.

The model finds people who fill a good part of its 224-pixel input (roughly >= 45 % of the
letterboxed image height) and mostly one, central, person per pass. For smaller people and
for people beside others, ``tiles=N`` (or several grids, e.g. ``(2, 3)``) also runs it on N x N
overlapping square crops of the image, each upscaled to 224 (:func:`tile_regions`); in a stream,
``tiles_per_call`` spreads the tiles over successive frames (round robin).

The model files are found in the installed mediapipe package (:func:`mediapipe_model_path`),
never downloaded; the runtime is ``ai-edge-litert`` (:func:`make_interpreter`, which drops
LiteRT's "Created TensorFlow Lite XNNPACK delegate" banner, issue 14).
"""

from __future__ import annotations

import importlib.resources
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from s2m_model.detect.person import PersonBox, box_iou, weighted_nms
from s2m_model.image import validate_image
from s2m_model.util.quiet_stderr import quiet_native_stderr

T = TypeVar("T")

DETECTOR_MODEL = "modules/pose_detection/pose_detection.tflite"
DETECTOR_SIZE = 224
NUM_ANCHORS = 2254

def mediapipe_model_path(relative: str) -> Path:
    """Path of a model file shipped inside the installed ``mediapipe`` package.

    Raises:
        FileNotFoundError: mediapipe is not installed or does not ship that file.
    """
    try:
        root = importlib.resources.files("mediapipe")
    except ModuleNotFoundError as exc:
        raise FileNotFoundError(
            f"the mediapipe package (which ships {relative}) is not installed: "
            "pip install mediapipe==0.10.21"
        ) from exc
    path = Path(str(root.joinpath(relative)))
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed mediapipe package")
    return path


def make_interpreter(path: Path, num_threads: int | None = None):
    """A LiteRT interpreter (XNNPACK CPU delegate by default) with its tensors allocated.

    Creation runs inside :func:`~s2m_model.util.quiet_stderr.quiet_native_stderr`: LiteRT's
    INFO banner is dropped, its errors still reach stderr. Inference prints nothing.

    Raises:
        ImportError: ``ai-edge-litert`` is not installed (with the install command).
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        raise ImportError(
            "the 'blazepose' multi-person detector needs the LiteRT runtime: "
            "pip install ai-edge-litert==2.3.0"
        ) from exc
    with quiet_native_stderr():
        interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        interpreter.allocate_tensors()
    return interpreter


# ------------------------------------------------------------------ SSD anchors and decoding


@dataclass(frozen=True)
class SsdAnchorOptions:
    """MediaPipe ``SsdAnchorsCalculatorOptions`` (defaults: BlazePose's person detector)."""

    input_size: int = DETECTOR_SIZE
    min_scale: float = 0.1484375
    max_scale: float = 0.75
    strides: tuple[int, ...] = (8, 16, 32, 32, 32)
    aspect_ratios: tuple[float, ...] = (1.0,)
    anchor_offset: float = 0.5
    interpolated_scale_aspect_ratio: float = 1.0
    fixed_anchor_size: bool = True


def ssd_anchors(options: SsdAnchorOptions | None = None) -> np.ndarray:
    """SSD anchors as MediaPipe's ``SsdAnchorsCalculator`` generates them.

    Consecutive layers with the same stride share one feature map; per cell they contribute
    one anchor per aspect ratio plus one interpolated-scale anchor each.

    Returns:
        ``(N, 4)`` float32 ``x_centre, y_centre, width, height`` normalised to the input
        (2254 anchors for the defaults: 28x28x2 + 14x14x2 + 7x7x6).
    """
    o = options or SsdAnchorOptions()
    n = len(o.strides)

    def scale(i: int) -> float:
        return o.min_scale + (o.max_scale - o.min_scale) * i / (n - 1) if n > 1 else o.min_scale

    out: list[np.ndarray] = []
    layer = 0
    while layer < n:
        sizes: list[tuple[float, float]] = []  # (width, height) per anchor of one cell
        last = layer
        while last < n and o.strides[last] == o.strides[layer]:
            s = scale(last)
            for ratio in o.aspect_ratios:
                sizes.append((s * math.sqrt(ratio), s / math.sqrt(ratio)))
            if o.interpolated_scale_aspect_ratio > 0:
                s_next = 1.0 if last == n - 1 else scale(last + 1)
                s_mid = math.sqrt(s * s_next)
                r = o.interpolated_scale_aspect_ratio
                sizes.append((s_mid * math.sqrt(r), s_mid / math.sqrt(r)))
            last += 1
        cells = math.ceil(o.input_size / o.strides[layer])
        ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        centres = (np.stack([xs, ys], -1).reshape(-1, 1, 2) + o.anchor_offset) / cells
        wh = np.ones((len(sizes), 2)) if o.fixed_anchor_size else np.asarray(sizes)
        wh = np.broadcast_to(wh, (len(centres), *wh.shape))
        cell_anchors = np.concatenate([np.repeat(centres, len(sizes), axis=1), wh], axis=-1)
        out.append(cell_anchors.reshape(-1, 4))
        layer = last
    return np.concatenate(out).astype(np.float32)


def decode_anchors(
    raw: np.ndarray, anchors: np.ndarray, scale: float = float(DETECTOR_SIZE)
) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``(N, 4 + 2K)`` regressions (x-first order) against ``(N, 4)`` anchors.

    Returns:
        ``(boxes (N, 4) x0, y0, x1, y1, keypoints (N, K, 2) x, y)``, normalised to the input.
    """
    raw = np.asarray(raw, dtype=np.float64)
    a = np.asarray(anchors, dtype=np.float64)
    if raw.ndim != 2 or raw.shape[0] != a.shape[0] or (raw.shape[1] - 4) % 2:
        raise ValueError(f"raw regressions {raw.shape} do not match anchors {a.shape}")
    centre = raw[:, 0:2] / scale * a[:, 2:4] + a[:, 0:2]
    half = 0.5 * raw[:, 2:4] / scale * a[:, 2:4]
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    kps = raw[:, 4:].reshape(len(raw), (raw.shape[1] - 4) // 2, 2)
    kps = kps / scale * a[:, None, 2:4] + a[:, None, 0:2]
    return boxes, kps


def sigmoid(x: np.ndarray, clip: float = 100.0) -> np.ndarray:
    """Logistic function of logits clipped to +-``clip`` (MediaPipe's score clipping)."""
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, dtype=np.float64), -clip, clip)))


def letterbox(width: int, height: int, size: int) -> np.ndarray:
    """``(2, 3)`` affine map from image pixels to a ``size`` square with the whole image
    fitted in its centre (aspect kept; MediaPipe's ``keep_aspect_ratio`` letterbox)."""
    k = size / max(width, height)
    return np.array([[k, 0.0, 0.5 * (size - k * width)], [0.0, k, 0.5 * (size - k * height)]])


def tile_regions(width: int, height: int, grid: int, overlap: float = 0.25) -> list[np.ndarray]:
    """Square regions ``x0, y0, side`` covering the image in a ``grid`` x ``grid`` layout
    with ``overlap`` (fraction of a tile) between neighbours; ``grid <= 1`` gives none."""
    if grid <= 1:
        return []
    side = max(width, height) / (grid - (grid - 1) * overlap)
    side = min(side, max(width, height))
    out = []
    for gy in range(grid):
        for gx in range(grid):
            x0 = (width - side) * gx / (grid - 1)
            y0 = (height - side) * gy / (grid - 1) if height > side else (height - side) / 2
            out.append(np.array([x0, y0, side]))
    # A wide image may repeat rows when it is less tall than one tile.
    unique = {tuple(np.round(r, 3)) for r in out}
    return [np.array(r) for r in sorted(unique)]


def round_robin(items: Sequence[T], start: int, count: int) -> tuple[list[T], int]:
    """``count`` of ``items`` (at most all of them) taken cyclically from index ``start``, and
    the index to start from next time (tiles, gap probes spread over successive frames)."""
    n = min(count, len(items))
    picked = [items[(start + i) % len(items)] for i in range(n)]
    return picked, (start + n) % max(len(items), 1)


def region_to_input(region: np.ndarray) -> np.ndarray:
    """``(2, 3)`` affine map from image pixels to the detector input for a square region
    ``x0, y0, side`` (pixels)."""
    x0, y0, side = (float(v) for v in region)
    k = DETECTOR_SIZE / side
    return np.array([[k, 0.0, -k * x0], [0.0, k, -k * y0]])


class BlazePoseBoxDetector:
    """MediaPipe's BlazePose person detector (``pose_detection.tflite``) as a
    :class:`~s2m_model.detect.person.PersonDetector`.

    :attr:`PersonBox.box` is the square around the full-body alignment circle (hip centre,
    radius to the scale point), which encloses the whole person; the keypoints are the model's
    four alignment points in image pixels.

    Args:
        min_score: detection threshold on the sigmoid score (MediaPipe's
            ``min_detection_confidence``, 0.5 in the legacy solution).
        nms_iou: weighted-NMS IoU threshold on the detector's (face) boxes.
        max_people: keep at most this many people.
        tiles: also run on ``tiles`` x ``tiles`` overlapping crops (0 or 1: whole image only),
            or a sequence of such grid sizes. Each tile costs one more detector run (~10 ms on
            2 CPU cores).
        tiles_per_call: run only this many tiles per call, the next ones on the next call
            (round robin, for streams); None: all tiles every call.
        num_threads: LiteRT threads (None: the runtime's default).

    Raises:
        ValueError: invalid thresholds; FileNotFoundError / ImportError as
            :func:`mediapipe_model_path` / :func:`make_interpreter`.
    """

    def __init__(
        self,
        *,
        min_score: float = 0.5,
        nms_iou: float = 0.3,
        max_people: int = 6,
        tiles: int | Sequence[int] = 0,
        tiles_per_call: int | None = None,
        num_threads: int | None = None,
    ) -> None:
        if not 0.0 <= min_score <= 1.0 or not 0.0 < nms_iou <= 1.0:
            raise ValueError(f"min_score must be in [0, 1] and nms_iou in (0, 1], got "
                             f"{min_score}, {nms_iou}")
        grids = (tiles,) if isinstance(tiles, int | np.integer) else tuple(tiles)
        if max_people < 1 or any(int(g) < 0 for g in grids):
            raise ValueError(f"max_people must be >= 1 and tiles >= 0, got {max_people}, {tiles}")
        self.min_score = float(min_score)
        self.nms_iou = float(nms_iou)
        self.max_people = int(max_people)
        self.tiles = tuple(int(g) for g in grids)
        if tiles_per_call is not None and tiles_per_call < 1:
            raise ValueError(f"tiles_per_call must be >= 1 or None, got {tiles_per_call}")
        self.tiles_per_call = tiles_per_call
        self._next_tile = 0
        self._anchors = ssd_anchors()
        self._interp = make_interpreter(mediapipe_model_path(DETECTOR_MODEL), num_threads)
        self._input = self._interp.get_input_details()[0]["index"]
        outs = sorted(self._interp.get_output_details(), key=lambda d: -int(d["shape"][-1]))
        self._out_boxes, self._out_scores = outs[0]["index"], outs[1]["index"]
        self._lock = threading.Lock()

    def _run(self, rgb: np.ndarray, to_input: np.ndarray):
        """One detector pass on the region of ``rgb`` mapped by ``to_input`` (image -> 224
        pixels); returns candidate face boxes, scores, keypoints in image pixels."""
        import cv2

        tensor = cv2.warpAffine(
            rgb, to_input, (DETECTOR_SIZE, DETECTOR_SIZE), flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0),
        )
        tensor = tensor.astype(np.float32)[None] * (2.0 / 255.0) - 1.0
        with self._lock:
            if self._interp is None:
                raise RuntimeError("BlazePoseBoxDetector is closed")
            self._interp.set_tensor(self._input, tensor)
            self._interp.invoke()
            raw = self._interp.get_tensor(self._out_boxes)[0]
            logits = self._interp.get_tensor(self._out_scores)[0, :, 0]
        scores = sigmoid(logits)
        keep = np.flatnonzero(scores >= self.min_score)
        boxes, kps = decode_anchors(raw[keep], self._anchors[keep])
        # Normalised input coordinates -> input pixels -> image pixels.
        inv = np.linalg.inv(np.vstack([to_input, [0.0, 0.0, 1.0]]))[:2]
        def back(p: np.ndarray) -> np.ndarray:
            return (p * DETECTOR_SIZE) @ inv[:, :2].T + inv[:, 2]
        boxes = np.concatenate([back(boxes[:, :2]), back(boxes[:, 2:])], axis=1)
        return boxes, scores[keep], back(kps.reshape(-1, 2)).reshape(kps.shape)

    def detect_people(self, image: np.ndarray) -> list[PersonBox]:
        """People in ``image``, best first (see :class:`PersonDetector`)."""
        rgb = validate_image(image)
        height, width = rgb.shape[:2]
        passes = [letterbox(width, height, DETECTOR_SIZE)]
        regions = [r for g in self.tiles for r in tile_regions(width, height, g)]
        if self.tiles_per_call is not None and regions:
            regions, self._next_tile = round_robin(regions, self._next_tile, self.tiles_per_call)
        passes += [region_to_input(r) for r in regions]
        return self._detect_passes(rgb, passes)

    def detect_in_regions(
        self, image: np.ndarray, regions: Sequence[np.ndarray]
    ) -> list[PersonBox]:
        """People found by one detector pass on each square region ``x0, y0, side`` (image
        pixels) of ``image`` only (no whole-image pass, no tiles), best first; e.g. a region
        centred on a gap between tracked people, where the tiles see a neighbour instead."""
        rgb = validate_image(image)
        return self._detect_passes(rgb, [region_to_input(r) for r in regions])

    def _detect_passes(self, rgb: np.ndarray, passes: list[np.ndarray]) -> list[PersonBox]:
        """Run the passes (``(2, 3)`` image -> 224-pixel input maps), merge with weighted NMS."""
        if not passes:
            return []
        found = [self._run(rgb, m) for m in passes]
        boxes = np.concatenate([f[0] for f in found])
        scores = np.concatenate([f[1] for f in found])
        kps = np.concatenate([f[2] for f in found])
        if len(boxes) == 0:
            return []
        boxes, scores, flat = weighted_nms(
            boxes, scores, kps.reshape(len(kps), -1), iou_threshold=self.nms_iou,
        )
        people = []
        for score, kp in zip(scores, flat.reshape(len(flat), -1, 2), strict=True):
            radius = float(np.hypot(*(kp[1] - kp[0])))
            body = np.concatenate([kp[0] - radius, kp[0] + radius])
            people.append(PersonBox(body, float(score), kp, source="blazepose"))
        return dedupe_people(people, max_people=self.max_people)

    def reset(self) -> None:
        """Start the tile round robin again (new stream)."""
        self._next_tile = 0

    def close(self) -> None:
        """Free the interpreter; further calls raise RuntimeError."""
        with self._lock:
            self._interp = None


def dedupe_people(people: list[PersonBox], *, iou: float = 0.6,
                  max_people: int | None = None) -> list[PersonBox]:
    """Drop people whose body box overlaps a better one by more than ``iou`` (one person seen
    twice, e.g. once in a tile and once in the whole image); best score first."""
    people = sorted(people, key=lambda p: -p.score)
    kept: list[PersonBox] = []
    for p in people:
        if kept and box_iou(p.box[None], np.stack([k.box for k in kept])).max() > iou:
            continue
        kept.append(p)
        if max_people is not None and len(kept) >= max_people:
            break
    return kept
