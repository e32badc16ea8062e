"""Multi-person detection: SSD anchors and decoding, weighted NMS, ROIs and crops, heatmap
refinement, and the BlazePose TFLite chain on a real photo and on composited body renders."""

from __future__ import annotations

import math

import numpy as np
import pytest

from s2m_model.detect.blazepose_person import (
    NUM_ANCHORS,
    SsdAnchorOptions,
    decode_anchors,
    letterbox,
    ssd_anchors,
    tile_regions,
)
from s2m_model.detect.person import PersonBox, PersonDetector, Roi, box_iou, weighted_nms

# --- anchors and decoding ----------------------------------------------------------------------


def test_ssd_anchors_match_blazepose_layout():
    a = ssd_anchors()
    assert a.shape == (NUM_ANCHORS, 4) == (28 * 28 * 2 + 14 * 14 * 2 + 7 * 7 * 6, 4)
    # fixed anchor size: every anchor is 1 x 1; centres on the cell centres
    assert np.all(a[:, 2:] == 1.0)
    np.testing.assert_allclose(a[0, :2], [0.5 / 28, 0.5 / 28])
    np.testing.assert_allclose(a[1, :2], [0.5 / 28, 0.5 / 28])  # 2 anchors per cell
    np.testing.assert_allclose(a[2, :2], [1.5 / 28, 0.5 / 28])  # x varies fastest
    np.testing.assert_allclose(a[1568, :2], [0.5 / 14, 0.5 / 14])
    last = a[-6:]
    np.testing.assert_allclose(last[:, :2], np.full((6, 2), 6.5 / 7))
    # without the fixed size the anchors get their scales (min_scale on the first layer)
    free = ssd_anchors(SsdAnchorOptions(fixed_anchor_size=False))
    np.testing.assert_allclose(free[0, 2:], [0.1484375, 0.1484375], rtol=1e-6)


def test_decode_anchors_scales_offsets_and_keypoints():
    anchors = np.array([[0.5, 0.25, 1.0, 1.0], [0.1, 0.9, 1.0, 1.0]], dtype=np.float32)
    raw = np.zeros((2, 12))
    raw[0, :4] = [22.4, -22.4, 44.8, 22.4]  # dx, dy, w, h in 224-pixel units
    raw[0, 4:6] = [0.0, 112.0]  # first keypoint half an image below the anchor
    boxes, kps = decode_anchors(raw, anchors)
    np.testing.assert_allclose(boxes[0], [0.6 - 0.1, 0.15 - 0.05, 0.6 + 0.1, 0.15 + 0.05])
    np.testing.assert_allclose(kps[0, 0], [0.5, 0.75])
    np.testing.assert_allclose(kps[1], np.tile([0.1, 0.9], (4, 1)))
    np.testing.assert_allclose(boxes[1], [0.1, 0.9, 0.1, 0.9])
    with pytest.raises(ValueError, match="do not match"):
        decode_anchors(raw[:1], anchors)


def test_weighted_nms_averages_clusters_and_keeps_separate_people():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], dtype=float)
    scores = np.array([0.9, 0.3, 0.8])
    extras = np.array([[0.0], [12.0], [5.0]])
    out_b, out_s, out_e = weighted_nms(boxes, scores, extras, iou_threshold=0.3)
    assert out_s.tolist() == [0.9, 0.8]
    np.testing.assert_allclose(out_b[0], [0.25, 0, 10.25, 10])  # (0.9*0 + 0.3*1) / 1.2
    np.testing.assert_allclose(out_e[:, 0], [3.0, 5.0])
    assert weighted_nms(np.zeros((0, 4)), np.zeros(0))[0].shape == (0, 4)
    with pytest.raises(ValueError, match="scores"):
        weighted_nms(boxes, scores[:2])


def test_box_iou_matrix():
    iou = box_iou(np.array([[0, 0, 2, 2]]), np.array([[1, 0, 3, 2], [5, 5, 6, 6], [0, 0, 2, 2]]))
    np.testing.assert_allclose(iou, [[1 / 3, 0.0, 1.0]])


# --- ROIs and crops -------------------------------------------------------------------------


def test_roi_from_alignment_size_and_rotation():
    upright = Roi.from_alignment([100.0, 200.0], [100.0, 120.0])
    assert upright.rotation == pytest.approx(0.0)
    assert upright.size == pytest.approx(2 * 80 * 1.25)
    # lying with the head to the image right: the crop is turned a quarter turn
    lying = Roi.from_alignment([100.0, 200.0], [180.0, 200.0])
    assert lying.rotation == pytest.approx(math.pi / 2)
    # the crop's "up" maps to the hip -> scale-point direction in the image
    m = lying.crop_to_image(256)
    top, centre = m @ [128, 0, 1], m @ [128, 128, 1]
    np.testing.assert_allclose((top - centre) / np.linalg.norm(top - centre), [1, 0], atol=1e-9)
    with pytest.raises(ValueError):
        Roi(0, 0, 0)


def test_roi_maps_are_inverse_and_crop_samples_the_right_pixels():
    roi = Roi(120.0, 90.0, 80.0, 0.4)
    fwd, inv = roi.crop_to_image(64), roi.image_to_crop(64)
    pts = np.array([[3.0, 7.0], [60.0, 33.0]])
    back = (pts @ fwd[:, :2].T + fwd[:, 2]) @ inv[:, :2].T + inv[:, 2]
    np.testing.assert_allclose(back, pts, atol=1e-9)
    image = np.zeros((200, 240, 3), np.uint8)
    image[100:103, 130:133] = 255  # a 3x3 dot centred on pixel (131, 101) = point (131.5, 101.5)
    crop = roi.crop(image, 64)
    ys, xs = np.nonzero(crop[..., 0] > 60)
    found = np.array([xs.mean() + 0.5, ys.mean() + 0.5])  # crop pixel centre -> corner coords
    expected = inv @ [131.5, 101.5, 1.0]
    np.testing.assert_allclose(found, expected, atol=0.6)
    with pytest.raises(ValueError, match="border"):
        roi.crop(image, 64, border="wrap")
    np.testing.assert_allclose(Roi.from_box([10, 20, 30, 60], scale=1.0).bounds(), [0, 20, 40, 60])


def test_letterbox_and_tiles_cover_the_image():
    m = letterbox(640, 480, 224)
    np.testing.assert_allclose(m @ [0, 0, 1], [0, 28])
    np.testing.assert_allclose(m @ [640, 480, 1], [224, 196])
    assert tile_regions(640, 480, 1) == []
    regions = tile_regions(640, 480, 3)
    assert len(regions) == 9
    x0 = min(r[0] for r in regions)
    x1 = max(r[0] + r[2] for r in regions)
    y0 = min(r[1] for r in regions)
    y1 = max(r[1] + r[2] for r in regions)
    assert (x0, y0) == pytest.approx((0, 0)) and (x1, y1) == pytest.approx((640, 480))
    assert all(r[2] < 300 for r in regions)  # each tile is upscaled ~0.9x -> 224


def test_refine_from_heatmap_moves_to_the_peak():
    from s2m_model.detect.blazepose_tflite import refine_from_heatmap

    heat = np.full((64, 64, 2), -20.0)
    heat[30, 41, 0] = 20.0  # confident peak near landmark 0
    heat[10, 10, 1] = -1.0  # landmark 1: nothing confident
    xy = np.array([[40 / 64, 31 / 64], [10 / 64, 10 / 64]])
    out = refine_from_heatmap(xy, heat)
    np.testing.assert_allclose(out[0], [41 / 64, 30 / 64], atol=1e-6)
    np.testing.assert_allclose(out[1], xy[1])


def test_person_box_validates():
    p = PersonBox([0, 0, 10, 20], 0.5, np.zeros((4, 2)))
    assert p.height == 20.0 and p.keypoints.dtype == np.float32
    with pytest.raises(ValueError, match="box"):
        PersonBox([0, 0, 1], 0.5)
    with pytest.raises(ValueError, match="keypoints"):
        PersonBox([0, 0, 1, 1], 0.5, np.zeros((4, 3)))


# --- the models (need ai-edge-litert) --------------------------------------------------------


@pytest.fixture(scope="module")
def litert():
    return pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed")


@pytest.fixture(scope="module")
def coco785(shared_data):
    from s2m_model.detect.coco_eval import load_coco_person
    from s2m_model.image import load_image

    folder = shared_data / "images"
    return load_image(folder / "coco_000000000785.jpg"), load_coco_person(
        folder / "coco_000000000785.json"
    )


def test_blazepose_tflite_on_coco_785_matches_legacy(litert, coco785):
    from s2m_model.detect.blazepose_tflite import BlazePoseTFLite
    from s2m_model.detect.coco_eval import evaluate_detection

    image, person = coco785
    with BlazePoseTFLite(static_image_mode=True) as det:
        found = det.detect(image)
    assert len(found) == 1
    d = found[0]
    metrics = evaluate_detection(d, person)
    # measured: mean 6.9 px, OKS 0.92, mask IoU 0.90 (legacy MediaPipe: 7.5 px, 0.91, 0.90)
    assert metrics["mean_px_error"] < 9.0
    assert metrics["oks"] > 0.88 and metrics["mask_iou"] > 0.85
    assert d.keypoints_blazepose.shape == (33, 4) and d.keypoints_world.shape == (33, 3)
    assert d.mask.shape == image.shape[:2]
    assert set(d.extra) >= {"left_heel", "right_foot_index"}
    # world landmarks: y down, the nose above the ankles; hips at the origin
    assert d.keypoints_world[0, 1] < d.keypoints_world[27:29, 1].min() - 0.5
    assert np.linalg.norm(d.keypoints_world[23:25].mean(0)) < 0.05


@pytest.fixture(scope="module")
def blazepose(litert):
    from s2m_model.detect.blazepose_tflite import BlazePoseTFLite

    det = BlazePoseTFLite(static_image_mode=True, enable_segmentation=False)
    yield det
    det.close()


@pytest.fixture(scope="module")
def three_people(body):
    from s2m_model.tracking.synthetic import SpriteBank, composite

    bank = SpriteBank(body, identities=3, phases=1, height=320, yaw_deg=15.0, seed=1)
    canvas = np.full((480, 640, 3), 235, np.uint8)
    placements = [
        (i, bank.get(i, 0.0, 1 - 2 * (i % 2)), x, 420.0, 300.0)
        for i, x in enumerate((130.0, 330.0, 520.0))
    ]
    return canvas, composite(canvas, placements)


def test_blazepose_tflite_finds_three_rendered_people(blazepose, three_people):
    from s2m_model.detect.coco_eval import oks

    image, gt = three_people
    found = blazepose.detect(image)
    assert len(found) == 3
    for person in gt:  # each GT person matched by one detection with a good OKS
        best = max(oks(d.keypoints, person.keypoints, person.area) for d in found)
        assert best > 0.7
    assert blazepose.detect(np.full((240, 320, 3), 128, np.uint8)) == []
    with pytest.raises(ValueError):
        blazepose.detect(np.zeros((0, 4, 3), np.uint8))


def test_blazepose_detectors_follow_the_interfaces(litert):
    from s2m_model.detect import Detector
    from s2m_model.detect.blazepose_person import BlazePoseBoxDetector
    from s2m_model.detect.blazepose_tflite import BlazePoseTFLite

    with pytest.raises(ValueError, match="max_people"):
        BlazePoseTFLite(max_people=0)
    with pytest.raises(ValueError, match="min_presence"):
        BlazePoseTFLite(min_presence=2.0)
    boxes = BlazePoseBoxDetector()
    assert isinstance(boxes, PersonDetector)
    det = BlazePoseTFLite(person_detector=boxes)
    assert isinstance(det, Detector)
    det.close()
    with pytest.raises(RuntimeError, match="closed"):
        det.detect(np.zeros((32, 32, 3), np.uint8))


# --- other person detectors, combinations, duplicates ----------------------------------------


class FixedPeople:
    """A person detector that returns the given people (and counts its calls)."""

    def __init__(self, people):
        self.people, self.calls, self.closed = people, 0, False

    def detect_people(self, image):
        self.calls += 1
        return list(self.people)

    def close(self):
        self.closed = True


def test_union_and_throttled_person_detectors():
    from s2m_model.detect.person import ThrottledPersonDetector, UnionPersonDetector

    a = FixedPeople([PersonBox([0, 0, 10, 20], 0.9, np.zeros((4, 2)), source="a")])
    b = FixedPeople(
        [
            PersonBox([1, 0, 11, 20], 0.8, source="b"),  # the same person as a's
            PersonBox([50, 0, 60, 20], 0.7, source="b"),
        ]
    )
    union = UnionPersonDetector([a, b])
    found = union.detect_people(np.zeros((8, 8, 3), np.uint8))
    assert [p.source for p in found] == ["a", "b"] and found[1].box[0] == 50
    slow = ThrottledPersonDetector(b, every=3)
    counts = [len(slow.detect_people(None)) for _ in range(6)]
    assert counts == [2, 0, 0, 2, 0, 0] and b.calls == 3
    slow.reset()
    assert len(slow.detect_people(None)) == 2
    union.close()
    assert a.closed and b.closed
    with pytest.raises(ValueError):
        UnionPersonDetector([])
    with pytest.raises(ValueError):
        ThrottledPersonDetector(a, every=0)


def test_duplicate_and_fragment_rules():
    from s2m_model.detect.blazepose_tflite import is_fragment, same_landmarks, same_roi

    assert same_roi(Roi(100, 100, 200), Roi(120, 110, 220))
    assert not same_roi(Roi(100, 100, 200), Roi(200, 100, 200))  # a neighbour
    assert not same_roi(Roi(100, 100, 200), Roi(100, 100, 60))  # a far person behind
    rng = np.random.default_rng(0)
    person = np.column_stack(
        [rng.uniform(0, 100, 39), rng.uniform(0, 300, 39), np.zeros(39), np.ones(39), np.ones(39)]
    )
    nudged = person.copy()
    nudged[:, :2] += 3.0
    assert same_landmarks(person, nudged)
    other = person.copy()
    other[:, 0] += 80.0  # someone next to them
    assert not same_landmarks(person, other) and not is_fragment(other, person)
    from s2m_model.detect.blazepose_tflite import BLAZEPOSE33_FLIP

    # The same person read facing the other way: the landmarks are the mirror labelling.
    twin = nudged.copy()
    twin[:33] = nudged[list(BLAZEPOSE33_FLIP)]
    assert same_landmarks(person, twin) and not same_landmarks(person, other[list(range(33))])
    from s2m_model.detect.blazepose_tflite import in_image, plausible_roi

    assert plausible_roi(Roi(320, 240, 300), 640, 480)
    assert not plausible_roi(Roi(-700, 466, 3773), 640, 480)  # seen from a tile's cut person
    assert not plausible_roi(Roi(320, 240, 4.0), 640, 480)
    assert in_image(person, 640, 480) and not in_image(person - [1000, 0, 0, 0, 0], 640, 480)
    piece = person.copy()
    piece[:, :2] = piece[:, :2] * 0.3 + [30.0, 100.0]  # a small cut inside the person
    assert is_fragment(piece, person) and not is_fragment(person, piece)


def test_hog_finds_rendered_people(three_people):
    pytest.importorskip("cv2")
    from s2m_model.detect.hog_people import HogPersonDetector

    image, gt = three_people
    hog = HogPersonDetector()
    found = hog.detect_people(image)
    assert isinstance(hog, PersonDetector) and found and all(p.keypoints is None for p in found)
    # measured: 1 of the 3 frontal 300 px people (HOG is for smaller, walking people); every
    # box is on a person
    overlap = box_iou(np.stack([g.box for g in gt]), np.stack([p.box for p in found]))
    assert (overlap.max(0) > 0.3).all()
    assert hog.detect_people(np.full((100, 60, 3), 128, np.uint8)) == []  # under one window
    with pytest.raises(ValueError):
        HogPersonDetector(scale=1.0)
    hog.close()
    with pytest.raises(RuntimeError, match="closed"):
        hog.detect_people(image)


def test_video_mode_keeps_people_from_the_previous_rois(litert, three_people):
    """In video mode the landmarks' own ROIs carry the people to the next frame even when
    the person detector finds nobody."""
    from s2m_model.detect.blazepose_tflite import BlazePoseTFLite

    image, _ = three_people
    boxes = FixedPeople([])
    with BlazePoseTFLite(static_image_mode=True, enable_segmentation=False) as seeded:
        first = seeded.detect_landmarks(image)
    assert len(first) == 3
    det = BlazePoseTFLite(person_detector=boxes, enable_segmentation=False, detect_every=1)
    det._prev_rois = [f.next_roi() for f in first]  # as if a previous frame had found them
    assert len(det.detect(image)) == 3 and boxes.calls == 1
    det.reset()
    assert det.detect(image) == []  # after reset only the (empty) person detector counts
    det.close()
    with pytest.raises(ValueError, match="detect_every"):
        BlazePoseTFLite(person_detector=boxes, detect_every=0)
    with BlazePoseTFLite(hog_every=3, static_image_mode=True, enable_segmentation=False) as hy:
        assert len(hy.detect(image)) == 3
        assert type(hy.person_detector).__name__ == "UnionPersonDetector"


def test_video_mode_skips_the_person_detector_while_people_are_tracked(litert, three_people):
    """detect_every: with everyone tracked the detector runs only every k-th frame, and on
    every frame while nobody is tracked."""
    from s2m_model.detect import get_detector
    from s2m_model.detect.blazepose_tflite import landmark_box

    image, _ = three_people
    with get_detector(
        "blazepose-multi", static_image_mode=True, enable_segmentation=False
    ) as seeded:
        people = [PersonBox(landmark_box(r.landmarks), 0.9) for r in seeded.detect_landmarks(image)]
    boxes = FixedPeople(people)
    with get_detector(
        "blazepose-multi", person_detector=boxes, enable_segmentation=False, detect_every=3
    ) as det:
        counts = [len(det.detect(image)) for _ in range(6)]
        assert counts == [3] * 6
        assert boxes.calls == 2  # frame 1 (nobody tracked yet), then frame 4
        boxes.people = []
        blank = np.full_like(image, 235)
        assert det.detect(blank) == []  # tracking lost ...
        det.detect(blank)
        assert boxes.calls == 4  # ... so the detector runs on every frame again


# --- people side by side (issue 12) ----------------------------------------------------------


def test_gap_regions_and_mask_people():
    from s2m_model.detect.blazepose_tflite import gap_regions, mask_people

    boxes = [np.array([40.0, 80, 100, 250]), np.array([200.0, 80, 270, 250])]
    rois = [Roi(80, 160, 220), Roi(235, 160, 230)]
    regions = gap_regions(boxes, rois, 640, 480)
    # gaps: 270..640 (widest), 100..200, 0..40 (under 0.25 x 225 px: no crop)
    assert len(regions) == 2
    np.testing.assert_allclose(regions[0], [455 - 112.5, 160 - 112.5, 225])
    np.testing.assert_allclose(regions[1], [150 - 112.5, 160 - 112.5, 225])
    assert gap_regions([], [], 640, 480) == []
    image = np.zeros((480, 640, 3), np.uint8)
    image[:, 320:] = 200
    masked = mask_people(image, boxes[:1])
    assert (masked[80:250, 40:100] == 100).all()  # the mean colour
    assert (masked[300:] == image[300:]).all() and (image[80:250, 40:100] == 0).all()


def test_video_mode_finds_four_people_side_by_side(litert, body):
    """People 180 px tall side by side (bench/multiperson.py's speed scene): the fixed tiles
    each report one of two neighbours, so before the gap probes one of them (4 people) was
    never found; the probes (crops on the gaps, tracked people masked) find all of them."""
    from s2m_model.detect.blazepose_tflite import BlazePoseTFLite
    from s2m_model.tracking.synthetic import SpriteBank, make_clip, side_by_side_walkers

    n = 4
    bank = SpriteBank(body, identities=6, phases=6, seed=0)
    walkers = side_by_side_walkers(n)
    clip = make_clip(bank, n_frames=6, walkers=walkers, seed=100 + n)
    with BlazePoseTFLite(enable_segmentation=False) as det:
        counts = [len(det.detect(f.image)) for f in clip]
    # measured: [3, 4, 4, 4, 4, 4]; without the probes (gap_probes=0) 3 on every frame
    assert counts[-3:] == [n] * 3, counts


def test_gap_probes_back_off_once_everyone_is_found(litert, body):
    """With the same four people all found, a whole round of the five gaps finds nobody new,
    then the probes pause 1, 2, 4, 8 detector frames (``gap_probe_backoff``): over 24 frames
    far fewer probes than one per frame, and still everyone found on every late frame."""
    from s2m_model.detect.blazepose_person import BlazePoseBoxDetector
    from s2m_model.detect.blazepose_tflite import BlazePoseTFLite
    from s2m_model.tracking.synthetic import SpriteBank, make_clip, side_by_side_walkers

    class Counting(BlazePoseBoxDetector):
        probes = 0

        def detect_in_regions(self, image, regions):
            Counting.probes += 1
            return super().detect_in_regions(image, regions)

    n = 4
    bank = SpriteBank(body, identities=6, phases=6, seed=0)
    walkers = side_by_side_walkers(n)
    clip = make_clip(bank, n_frames=24, walkers=walkers, seed=100 + n)
    probes = {}
    for backoff in (0, 8):
        Counting.probes = 0
        boxes = Counting(tiles=2, tiles_per_call=1)
        with BlazePoseTFLite(enable_segmentation=False, person_detector=boxes,
                             gap_probe_backoff=backoff) as det:  # fmt: skip
            counts = [len(det.detect(f.image)) for f in clip]
        assert counts[-12:] == [n] * 12, (backoff, counts)
        probes[backoff] = Counting.probes
    # measured: 23 probes without the back-off, 12 with it
    assert probes[0] >= 22 and probes[8] <= probes[0] - 8, probes
