"""Compare a :class:`Detection` with one COCO person annotation: keypoints, OKS, silhouette IoU.

Hand-written instead of pycocotools (not a dependency): the metrics for one person are a few
lines each and follow the COCO definitions (OKS as in ``COCOeval.computeOks``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from s2m_model.detect.base import Detection

COCO_KEYPOINT_SIGMAS = np.array(
    [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87,
     0.89, 0.89]
) / 10.0
"""Per-keypoint OKS constants of COCO-17 (``COCOeval`` ``kpt_oks_sigmas``)."""


@dataclass
class CocoPerson:
    """One COCO person annotation (pixels, x right, y down).

    Attributes:
        keypoints: ``(17, 3)`` x, y, visibility flag (0 unlabelled, 1 occluded, 2 visible).
        bbox: ``(4,)`` x0, y0, x1, y1 (COCO stores x, y, w, h; converted).
        area: segmentation area in px^2 (the OKS scale).
        polygons: list of ``(P, 2)`` polygons (x, y) of the segmentation.
        width, height: image size in pixels.
    """

    keypoints: np.ndarray
    bbox: np.ndarray
    area: float
    polygons: list[np.ndarray]
    width: int
    height: int

    def mask(self) -> np.ndarray:
        """``(H, W)`` bool silhouette rasterised from the polygons."""
        return polygon_mask(self.polygons, self.height, self.width)


def load_coco_person(json_path: str | Path, index: int = 0) -> CocoPerson:
    """Read person ``index`` from a COCO json holding ``image`` and ``annotations``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not valid json, or the record lacks keypoints/segmentation.
    """
    json_path = Path(json_path)
    if not json_path.is_file():
        raise FileNotFoundError(f"COCO annotation not found: {json_path}")
    try:
        record = json.loads(json_path.read_text())
        image = record["image"]
        ann = record["annotations"][index]
        keypoints = np.asarray(ann["keypoints"], dtype=np.float64).reshape(17, 3)
        x, y, w, h = (float(v) for v in ann["bbox"])
        segmentation = ann["segmentation"]
        if not isinstance(segmentation, list):
            raise ValueError("RLE segmentations are not supported, only polygons")
        polygons = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in segmentation]
        return CocoPerson(
            keypoints=keypoints,
            bbox=np.array([x, y, x + w, y + h]),
            area=float(ann["area"]),
            polygons=polygons,
            width=int(image["width"]),
            height=int(image["height"]),
        )
    except (KeyError, IndexError, TypeError, json.JSONDecodeError, ValueError) as exc:
        raise ValueError(f"{json_path}: not a usable COCO person record ({exc})") from exc


def polygon_mask(polygons: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """Rasterise ``(P, 2)`` pixel polygons (union) into an ``(H, W)`` bool mask with PIL."""
    from PIL import Image, ImageDraw

    if height <= 0 or width <= 0:
        raise ValueError(f"mask size must be positive, got {height}x{width}")
    canvas = Image.new("1", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for poly in polygons:
        poly = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        if len(poly) >= 3:
            draw.polygon([tuple(p) for p in poly], fill=1, outline=1)
    return np.asarray(canvas, dtype=bool)


def keypoint_errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``(17,)`` pixel distances between predicted and GT keypoints; NaN where GT is unlabelled.

    Args:
        pred: ``(17, >=2)`` predicted x, y (pixels).
        gt: ``(17, 3)`` GT x, y, visibility flag.
    """
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if pred.shape[0] != 17 or pred.shape[1] < 2 or gt.shape != (17, 3):
        raise ValueError(f"expected pred (17, >=2) and gt (17, 3), got {pred.shape}, {gt.shape}")
    err = np.linalg.norm(pred[:, :2] - gt[:, :2], axis=1)
    err[gt[:, 2] <= 0] = np.nan
    return err


def pck(pred: np.ndarray, gt: np.ndarray, bbox: np.ndarray, alpha: float = 0.1) -> float:
    """Fraction of labelled GT keypoints within ``alpha`` x the GT box diagonal."""
    err = keypoint_errors(pred, gt)
    bbox = np.asarray(bbox, dtype=np.float64)
    diagonal = float(np.hypot(bbox[2] - bbox[0], bbox[3] - bbox[1]))
    labelled = ~np.isnan(err)
    if not labelled.any():
        raise ValueError("no labelled GT keypoints")
    return float((err[labelled] <= alpha * diagonal).mean())


def oks(pred: np.ndarray, gt: np.ndarray, area: float) -> float:
    """COCO object keypoint similarity in [0, 1] over the labelled GT keypoints."""
    err = keypoint_errors(pred, gt)
    labelled = ~np.isnan(err)
    if not labelled.any():
        raise ValueError("no labelled GT keypoints")
    if not area > 0:
        raise ValueError(f"area must be positive, got {area}")
    variances = (2.0 * COCO_KEYPOINT_SIGMAS) ** 2
    e = err[labelled] ** 2 / variances[labelled] / (area + np.spacing(1)) / 2.0
    return float(np.exp(-e).mean())


def mask_iou(pred: np.ndarray, gt: np.ndarray, threshold: float = 0.5) -> float:
    """IoU of ``pred >= threshold`` (probabilities or bool) with a bool GT mask, same shape."""
    pred, gt = np.asarray(pred), np.asarray(gt, dtype=bool)
    if pred.shape != gt.shape:
        raise ValueError(f"mask shapes differ: {pred.shape} vs {gt.shape}")
    pred_bin = pred >= threshold if pred.dtype != bool else pred
    union = np.logical_or(pred_bin, gt).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(pred_bin, gt).sum() / union)


def evaluate_detection(det: Detection | None, person: CocoPerson) -> dict[str, float | None]:
    """All metrics of one detection against one COCO person.

    Returns a dict: ``mean_px_error`` (over labelled GT keypoints), ``max_px_error``,
    ``pck_0.1`` (alpha 0.1 of the box diagonal), ``oks``, ``mask_iou`` (None without a mask),
    ``bbox_iou``. A missing detection scores 0 (errors None).
    """
    if det is None:
        return {"mean_px_error": None, "max_px_error": None, "pck_0.1": 0.0, "oks": 0.0,
                "mask_iou": 0.0, "bbox_iou": 0.0}
    err = keypoint_errors(det.keypoints, person.keypoints)
    iou = None
    if det.mask is not None:
        iou = mask_iou(det.mask, person.mask())
    return {
        "mean_px_error": float(np.nanmean(err)),
        "max_px_error": float(np.nanmax(err)),
        "pck_0.1": pck(det.keypoints, person.keypoints, person.bbox),
        "oks": oks(det.keypoints, person.keypoints, person.area),
        "mask_iou": iou,
        "bbox_iou": box_iou(det.bbox, person.bbox),
    }


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two ``x0, y0, x1, y1`` boxes."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0
