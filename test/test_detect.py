"""Detectors: the Detection record, MediaPipe (mapping, bad input, COCO accuracy), the ONNX
heatmap backend (with a tiny hand-built ONNX model), and the COCO metric helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from s2m_model.detect import COCO17_NAMES, Detection, Detector, get_detector
from s2m_model.detect.coco_eval import (
    box_iou,
    evaluate_detection,
    keypoint_errors,
    load_coco_person,
    mask_iou,
    oks,
    pck,
    polygon_mask,
)
from s2m_model.detect.mediapipe_pose import (
    BLAZEPOSE33_NAMES,
    BLAZEPOSE_EXTRAS,
    BLAZEPOSE_TO_COCO17,
    landmarks_to_detection,
)
from s2m_model.detect.onnx_keypoints import decode_heatmaps
from s2m_model.export.runtime import default_ort_providers

# --- Detection record and factory -------------------------------------------------------------


def test_detection_validates_shapes_and_finiteness():
    det = Detection(keypoints=np.zeros((17, 3)), bbox=[0, 0, 1, 1], score=1)
    assert det.keypoints.dtype == np.float32 and det.score == 1.0
    assert set(det.named()) == set(COCO17_NAMES)
    with pytest.raises(ValueError, match="17, 3"):
        Detection(keypoints=np.zeros((33, 3)), bbox=np.zeros(4), score=0.5)
    with pytest.raises(ValueError, match="bbox"):
        Detection(keypoints=np.zeros((17, 3)), bbox=np.zeros(5), score=0.5)
    bad = np.zeros((17, 3))
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        Detection(keypoints=bad, bbox=np.zeros(4), score=0.5)


def test_get_detector_rejects_unknown_and_incomplete():
    with pytest.raises(ValueError, match="unknown detector"):
        get_detector("openpose")
    with pytest.raises(ValueError, match="model_path"):
        get_detector("onnx")


# --- MediaPipe --------------------------------------------------------------------------------


def test_blazepose_to_coco_mapping_matches_mediapipe_enum():
    from mediapipe.python.solutions.pose import PoseLandmark

    assert len(BLAZEPOSE33_NAMES) == len(PoseLandmark) == 33
    for name in BLAZEPOSE33_NAMES:
        assert PoseLandmark[name.upper()].value == BLAZEPOSE33_NAMES.index(name)
    assert [BLAZEPOSE33_NAMES[i] for i in BLAZEPOSE_TO_COCO17] == list(COCO17_NAMES)


def test_landmarks_to_detection_scales_and_maps():
    rng = np.random.default_rng(0)
    lm = np.column_stack(
        [rng.uniform(0.2, 0.8, 33), rng.uniform(0.1, 0.9, 33), rng.normal(0, 0.1, 33),
         rng.uniform(0.6, 1.0, 33)]
    )
    lm[5, 3] = 1.3  # visibility outside [0, 1] must be clipped
    lm[30, :2] = (1.4, -0.2)  # an off-image point, invisible: not part of the bbox
    lm[30, 3] = 0.1
    det = landmarks_to_detection(lm, width=200, height=100)
    np.testing.assert_allclose(det.keypoints[0], [lm[0, 0] * 200, lm[0, 1] * 100, lm[0, 3]],
                               rtol=1e-5)
    np.testing.assert_allclose(det.keypoints[2, :2], lm[5, :2] * [200, 100], rtol=1e-5)
    assert det.keypoints[2, 2] == 1.0
    np.testing.assert_allclose(det.extra["left_heel"][:2], lm[29, :2] * [200, 100], rtol=1e-5)
    assert set(det.extra) == set(BLAZEPOSE_EXTRAS)
    assert det.keypoints_blazepose.shape == (33, 4)
    np.testing.assert_allclose(det.keypoints_blazepose[:, 2], lm[:, 2] * 200, rtol=1e-5)
    visible = np.delete(lm, 30, axis=0)
    np.testing.assert_allclose(
        det.bbox,
        [visible[:, 0].min() * 200, visible[:, 1].min() * 100,
         visible[:, 0].max() * 200, visible[:, 1].max() * 100],
        rtol=1e-5,
    )
    with pytest.raises(ValueError, match="33, 4"):
        landmarks_to_detection(lm[:17], 10, 10)
    lm[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        landmarks_to_detection(lm, 10, 10)


def test_mediapipe_only_full_model_and_no_download(monkeypatch):
    from mediapipe.python.solutions import download_utils

    from s2m_model.detect.mediapipe_pose import MediaPipeDetector

    def no_download(*args, **kwargs):
        raise AssertionError(f"MediaPipe tried to download {args}")

    monkeypatch.setattr(download_utils, "download_oss_model", no_download)
    monkeypatch.setattr("urllib.request.urlopen", no_download)
    for complexity in (0, 2):
        with pytest.raises(ValueError, match="model_complexity"):
            MediaPipeDetector(model_complexity=complexity)
    with pytest.raises(ValueError, match="min_detection_confidence"):
        MediaPipeDetector(min_detection_confidence=1.5)
    det = MediaPipeDetector(static_image_mode=True)
    assert isinstance(det, Detector)
    det.close()
    with pytest.raises(RuntimeError, match="closed"):
        det.detect(np.zeros((8, 8, 3), np.uint8))


@pytest.fixture(scope="module")
def mp_static():
    det = get_detector("mediapipe", static_image_mode=True)
    yield det
    det.close()


def test_mediapipe_no_person_gives_empty_list(mp_static):
    rng = np.random.default_rng(3)
    assert mp_static.detect(np.full((120, 160, 3), 128, np.uint8)) == []
    assert mp_static.detect(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)) == []
    assert mp_static.detect(np.zeros((1, 1), np.uint8)) == []  # tiny grey frame


def test_mediapipe_converts_or_rejects_bad_frames(mp_static):
    rgba = np.zeros((40, 50, 4), np.uint8)
    assert mp_static.detect(rgba) == []
    assert mp_static.detect(np.zeros((40, 50), np.float32)) == []
    for bad, match in [
        (np.zeros((0, 50, 3), np.uint8), "empty"),
        (np.zeros((40, 50, 3), np.int32), "dtype"),
        (np.zeros((9000, 2, 3), np.uint8), "exceeds"),
        (np.full((4, 4, 3), np.nan, np.float32), "NaN"),
    ]:
        with pytest.raises(ValueError, match=match):
            mp_static.detect(bad)


@pytest.fixture(scope="module")
def coco785(shared_data):
    from s2m_model.image import load_image

    folder = shared_data / "images"
    return load_image(folder / "coco_000000000785.jpg"), load_coco_person(
        folder / "coco_000000000785.json"
    )


def test_mediapipe_accuracy_on_coco_785(mp_static, coco785):
    image, person = coco785
    dets = mp_static.detect(image)
    assert len(dets) == 1
    det = dets[0]
    assert det.mask is not None and det.mask.shape == image.shape[:2]
    assert det.mask.dtype == np.float32 and 0.0 <= det.mask.min() <= det.mask.max() <= 1.0
    assert det.keypoints_world is not None and det.keypoints_world.shape == (33, 3)
    # y down in the world frame: the nose is above (smaller y than) the ankles
    assert det.keypoints_world[0, 1] < det.keypoints_world[27:29, 1].min() - 0.5
    metrics = evaluate_detection(det, person)
    # measured: mean 7.5 px, OKS 0.91, PCK 1.0, IoU 0.90 (MediaPipe 0.10.21, full model)
    assert metrics["mean_px_error"] < 15.0
    assert metrics["oks"] > 0.8
    assert metrics["pck_0.1"] >= 0.9
    assert metrics["mask_iou"] > 0.8
    # the same keypoints mirrored left<->right would be far off: the mapping has sides right
    flip = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]
    assert oks(det.keypoints[flip], person.keypoints, person.area) < metrics["oks"] - 0.1


def test_mediapipe_video_mode_tracks_and_resets(coco785):
    image, person = coco785
    with get_detector("mediapipe", static_image_mode=False) as det:
        first = det.detect(image)[0]
        second = det.detect(image)[0]
        det.reset()
        third = det.detect(image)[0]
    for d in (first, second, third):
        assert evaluate_detection(d, person)["oks"] > 0.8


# --- ONNX heatmap backend ---------------------------------------------------------------------

IN_H, IN_W, STRIDE = 192, 96, 4
GRID_ROWS, GRID_COLS = 6, 3  # 18 cells of 8x8 heatmap cells (32x32 input px), 17 used


def _region_masks() -> np.ndarray:
    """(1, 17, h, w): keypoint k only 'sees' grid cell k of the heatmap."""
    h, w = IN_H // STRIDE, IN_W // STRIDE
    masks = np.zeros((1, 17, h, w), np.float32)
    ch, cw = h // GRID_ROWS, w // GRID_COLS
    for k in range(17):
        r, c = divmod(k, GRID_COLS)
        masks[0, k, r * ch : (r + 1) * ch, c * cw : (c + 1) * cw] = 1.0
    return masks


def _write_model(path, *, batch="N", channels=17, symbolic_hw=False) -> None:
    """A tiny heatmap 'network': heatmap k = red channel sampled every 4 px, masked to cell k.

    Cell (u, v) of the output is input pixel (4u, 4v): exactly the documented MSRA contract.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    h_dim, w_dim = ("H", "W") if symbolic_hw else (IN_H, IN_W)
    masks = _region_masks()[:, :channels]
    inits = [
        numpy_helper.from_array(np.array([0], np.int64), "chan"),
        numpy_helper.from_array(np.array([0, 0], np.int64), "starts"),
        numpy_helper.from_array(np.array([IN_H, IN_W], np.int64), "ends"),
        numpy_helper.from_array(np.array([2, 3], np.int64), "axes"),
        numpy_helper.from_array(np.array([STRIDE, STRIDE], np.int64), "steps"),
        numpy_helper.from_array(masks, "masks"),
    ]
    nodes = [
        helper.make_node("Gather", ["image", "chan"], ["red"], axis=1),
        helper.make_node("Slice", ["red", "starts", "ends", "axes", "steps"], ["sampled"]),
        helper.make_node("Mul", ["sampled", "masks"], ["heatmaps"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_heatmaps",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 3, h_dim, w_dim])],
        [helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT,
                                       [batch, channels, IN_H // STRIDE, IN_W // STRIDE])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _blob_centres(rng) -> np.ndarray:
    """(17, 2) continuous input-pixel centres, each well inside its own grid cell."""
    cell = IN_H // GRID_ROWS  # 32 px square cells
    centres = np.zeros((17, 2))
    for k in range(17):
        r, c = divmod(k, GRID_COLS)
        centres[k] = [c * cell + rng.uniform(10, cell - 10), r * cell + rng.uniform(10, cell - 10)]
    return centres


def _render(height, width, centres, sigma) -> np.ndarray:
    """Black RGB image with a red Gaussian blob (peak 255) at each continuous (x, y) centre."""
    ys, xs = np.mgrid[0:height, 0:width] + 0.5  # pixel i has its centre at i + 0.5
    red = np.zeros((height, width))
    for x, y in centres:
        red = np.maximum(red, np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2)))
    img = np.zeros((height, width, 3), np.uint8)
    img[:, :, 0] = np.rint(red * 255)
    return img


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    _write_model(path)
    return path


def _onnx(path, **kwargs):
    kwargs.setdefault("mean", (0.0, 0.0, 0.0))
    kwargs.setdefault("std", (1.0, 1.0, 1.0))
    return get_detector("onnx", model_path=path, providers=["CPUExecutionProvider"], **kwargs)


def test_decode_heatmaps_recovers_gaussian_subpixel_peaks():
    rng = np.random.default_rng(4)
    h, w = 20, 16
    true = np.column_stack([rng.uniform(2, w - 3, 17), rng.uniform(2, h - 3, 17)])
    ys, xs = np.mgrid[0:h, 0:w]
    maps = np.stack(
        [0.9 * np.exp(-((xs - u) ** 2 + (ys - v) ** 2) / (2 * 1.5**2)) for u, v in true]
    )
    out = decode_heatmaps(maps)
    np.testing.assert_allclose(out[:, :2], true, atol=1e-3)
    assert (out[:, 2] > 0.6).all() and (out[:, 2] <= 0.9 + 1e-6).all()
    # integer argmax alone would be off by up to half a cell
    assert np.abs(np.rint(true) - true).max() > 0.2

    edge = np.zeros((1, 5, 5))
    edge[0, 0, 4] = 2.0
    np.testing.assert_allclose(decode_heatmaps(edge)[0], [4, 0, 1.0])
    np.testing.assert_allclose(decode_heatmaps(np.zeros((2, 4, 4)))[:, 2], 0.0)
    with pytest.raises(ValueError):
        decode_heatmaps(np.zeros((4, 4)))


def test_onnx_full_frame_keypoints(tiny_model):
    centres = _blob_centres(np.random.default_rng(5))
    image = _render(IN_H, IN_W, centres, sigma=3.0)
    det = _onnx(tiny_model, padding=1.0)
    assert isinstance(det, Detector)
    assert det.providers[-1] == "CPUExecutionProvider"
    from s2m_model.export.runtime import OnnxRuntimeBackend

    assert isinstance(det.backend, OnnxRuntimeBackend)  # sessions come from the runtime backend
    found = det.detect(image)
    assert len(found) == 1
    kp = found[0].keypoints
    np.testing.assert_allclose(kp[:, :2], centres, atol=0.3)
    assert (kp[:, 2] > 0.6).all()  # samples within 2.9 px of a sigma-3 peak
    assert found[0].score == pytest.approx(float(kp[:, 2].mean()))
    assert found[0].mask is None
    np.testing.assert_allclose(found[0].bbox, [*centres.min(0), *centres.max(0)], atol=0.3)


def test_onnx_boxes_crop_and_batch(tiny_model):
    """Two people boxes in a larger frame; padding 1.25 per the contract."""
    rng = np.random.default_rng(6)
    image_h, image_w = 420, 500
    boxes = np.array([[60.0, 40.0, 140.0, 200.0], [300.0, 150.0, 420.0, 390.0]])
    truths, blobs = [], []
    for x0, y0, x1, y1 in boxes:
        cx, cy, bw, bh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * 1.25, (y1 - y0) * 1.25
        scale = bw / IN_W  # the boxes have the input aspect (W/H = 0.5) already
        assert bh / IN_H == pytest.approx(scale)
        centres = _blob_centres(rng)
        truth = np.column_stack([cx - bw / 2 + centres[:, 0] * scale,
                                 cy - bh / 2 + centres[:, 1] * scale])
        truths.append(truth)
        blobs.append((truth, 3.0 * scale))
    image = np.zeros((image_h, image_w, 3), np.uint8)
    for truth, sigma in blobs:
        image = np.maximum(image, _render(image_h, image_w, truth, sigma))
    det = _onnx(tiny_model)
    found = det.detect(image, bboxes=boxes)
    assert len(found) == 2
    for d, truth in zip(found, truths, strict=True):
        np.testing.assert_allclose(d.keypoints[:, :2], truth, atol=1.0)
    # a single box as a flat (4,) sequence works too
    assert len(det.detect(image, bboxes=boxes[1].tolist())) == 1


def test_onnx_fixed_batch_symbolic_size_and_person_detector(tmp_path):
    fixed = tmp_path / "fixed.onnx"
    _write_model(fixed, batch=1)
    centres = _blob_centres(np.random.default_rng(7))
    image = _render(IN_H, IN_W, centres, sigma=3.0)
    boxes = [[0, 0, IN_W, IN_H], [0, 0, IN_W, IN_H]]
    found = _onnx(fixed, padding=1.0).detect(image, bboxes=boxes)
    assert len(found) == 2  # run one by one through the batch-1 model

    symbolic = tmp_path / "symbolic.onnx"
    _write_model(symbolic, symbolic_hw=True)
    with pytest.raises(ValueError, match="input_size"):
        _onnx(symbolic)
    det = _onnx(symbolic, input_size=(IN_H, IN_W), padding=1.0)
    np.testing.assert_allclose(det.detect(image)[0].keypoints[:, :2], centres, atol=0.3)

    class OneBox:
        def detect(self, img):
            return [Detection(keypoints=np.zeros((17, 3)), bbox=[0, 0, IN_W, IN_H], score=1.0)]

        def close(self):
            pass

    chained = _onnx(fixed, padding=1.0, person_detector=OneBox())
    np.testing.assert_allclose(chained.detect(image)[0].keypoints[:, :2], centres, atol=0.3)


def test_onnx_no_person_and_bad_input(tiny_model):
    det = _onnx(tiny_model)
    assert det.detect(np.zeros((100, 80, 3), np.uint8)) == []
    assert det.detect(np.zeros((100, 80, 4), np.uint8)) == []  # RGBA accepted
    assert det.detect(np.zeros((100, 80), np.float32)) == []  # grey float accepted
    with pytest.raises(ValueError, match="empty"):
        det.detect(np.zeros((0, 80, 3), np.uint8))
    with pytest.raises(ValueError, match="exceeds"):
        det.detect(np.zeros((9000, 1, 3), np.uint8))
    for boxes in ([[0, 0, 10]], [[10, 10, 5, 20]], [[0, 0, np.nan, 5]]):
        with pytest.raises(ValueError, match="bboxes"):
            det.detect(np.zeros((50, 50, 3), np.uint8), bboxes=boxes)
    assert det.detect(np.zeros((50, 50, 3), np.uint8), bboxes=np.zeros((0, 4))) == []
    det.close()
    with pytest.raises(RuntimeError, match="closed"):
        det.detect(np.zeros((50, 50, 3), np.uint8))


def test_onnx_bad_model_files(tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(np.random.default_rng(8).bytes(300))
    with pytest.raises(ValueError, match="corrupt.onnx"):
        _onnx(corrupt)
    with pytest.raises(FileNotFoundError):
        _onnx(tmp_path / "missing.onnx")
    wrong = tmp_path / "five.onnx"
    _write_model(wrong, channels=5)
    with pytest.raises(ValueError, match="17"):
        _onnx(wrong)
    with pytest.raises(ValueError, match="std"):
        _onnx(wrong, std=(1.0, 0.0, 1.0))


def test_detector_providers_come_from_the_runtime_backend():
    assert default_ort_providers(["CPUExecutionProvider", "CUDAExecutionProvider",
                                  "TensorrtExecutionProvider"]) == [
        "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert default_ort_providers(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert default_ort_providers([]) == ["CPUExecutionProvider"]
    import s2m_model.detect.onnx_keypoints as ok

    assert not hasattr(ok, "choose_providers")  # one provider policy: the runtime's


# --- COCO metric helpers ----------------------------------------------------------------------


def test_polygon_mask_area_and_iou():
    square = [np.array([[10, 10], [30, 10], [30, 30], [10, 30]])]
    mask = polygon_mask(square, 50, 60)
    assert mask.shape == (50, 60) and mask.dtype == bool
    assert abs(int(mask.sum()) - 20 * 20) <= 2 * 21 + 1  # PIL fills the outline too
    shifted = polygon_mask([square[0] + [10, 0]], 50, 60)
    iou = mask_iou(mask.astype(np.float32), shifted)
    assert 0.3 < iou < 0.4  # two 20x20 squares overlapping by half: 1/3
    assert mask_iou(mask, mask) == 1.0
    assert mask_iou(np.zeros((5, 5)), np.zeros((5, 5), bool)) == 1.0
    with pytest.raises(ValueError, match="shapes"):
        mask_iou(mask, shifted[:10])


def test_keypoint_metrics():
    rng = np.random.default_rng(9)
    gt = np.column_stack([rng.uniform(0, 100, 17), rng.uniform(0, 200, 17), np.full(17, 2.0)])
    gt[3, 2] = 0  # unlabelled: ignored everywhere
    area = 100.0 * 200.0 * 0.5
    bbox = np.array([0.0, 0.0, 100.0, 200.0])
    assert oks(gt, gt, area) == pytest.approx(1.0)
    assert pck(gt, gt, bbox) == 1.0
    pred = gt.copy()
    pred[:, 0] += 3.0
    pred[3, :2] = 1e6
    err = keypoint_errors(pred, gt)
    assert np.isnan(err[3]) and np.allclose(np.delete(err, 3), 3.0)
    worse = gt.copy()
    worse[:, 0] += 10.0
    assert 0 < oks(worse, gt, area) < oks(pred, gt, area) < 1.0
    assert pck(worse, gt, bbox, alpha=0.04) == 0.0  # 10 px > 0.04 * 223.6 px
    with pytest.raises(ValueError):
        oks(gt, np.zeros((17, 3)), area)  # nothing labelled
    with pytest.raises(ValueError):
        keypoint_errors(gt[:5], gt)
    assert box_iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(1 / 3)
    assert evaluate_detection(None, None)["oks"] == 0.0


def test_load_coco_person_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"image": {}}')
    with pytest.raises(ValueError, match="bad.json"):
        load_coco_person(bad)
    with pytest.raises(FileNotFoundError):
        load_coco_person(tmp_path / "none.json")


def test_load_coco_person_785(shared_data):
    person = load_coco_person(shared_data / "images" / "coco_000000000785.json")
    assert person.keypoints.shape == (17, 3) and (person.keypoints[:, 2] == 2).all()
    assert (person.width, person.height) == (640, 425)
    mask = person.mask()
    # rasterised polygon area ~ the annotated segmentation area
    assert abs(mask.sum() - person.area) / person.area < 0.03


# --- demo video and CLI -----------------------------------------------------------------------

DEMO_VIDEO = Path(__file__).resolve().parents[1] / ".venv" / "share" / "s2m" / "demo" / "demo.mp4"


def test_demo_video_has_a_person():
    """The sports2d demo clip (fetched by tools/fetch_demo_video.sh during set-up)."""
    if not DEMO_VIDEO.is_file():
        pytest.skip("demo video not fetched (run tools/fetch_demo_video.sh)")
    from s2m_model.image import iter_frames, probe_video

    info = probe_video(DEMO_VIDEO)
    assert (info["width"], info["height"]) == (1768, 994) and info["fps"] == pytest.approx(30)
    with get_detector("mediapipe", static_image_mode=False) as det:
        found = [det.detect(frame) for _, _, frame in iter_frames(DEMO_VIDEO, max_frames=30)]
    hits = [f[0] for f in found if f]
    assert len(hits) >= 20  # measured 26/30 (the first frames need the detector to lock on)
    for d in hits:
        assert d.score > 0.5 and (d.bbox[2] - d.bbox[0]) > 50 and (d.bbox[3] - d.bbox[1]) > 150


def test_cli_detect_writes_json_lines(tmp_path):
    import argparse
    import json

    from PIL import Image

    from s2m_model.detect import cli

    Image.fromarray(np.full((60, 80, 3), 90, np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.full((60, 80, 3), 30, np.uint8)).save(tmp_path / "b.png")
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["detect", str(tmp_path), "--static", "--fps", "5",
                              "--out", str(tmp_path / "out.jsonl")])
    assert args.func(args) == 0
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(r["index"], r["timestamp_s"], r["people"]) for r in lines] == [
        (0, 0.0, []), (1, 0.2, [])]
    args = parser.parse_args(["detect", str(tmp_path), "--detector", "onnx"])
    with pytest.raises(ValueError, match="--model"):
        args.func(args)
