"""Multi-person tracker (crossings, occlusions, borders, birth/death, no stale tracks), the
CLEAR-MOT accumulator, appearance features and the synthetic crowd generator."""

from __future__ import annotations

import numpy as np
import pytest

from s2m_model.detect.base import Detection
from s2m_model.tracking.metrics import MotAccumulator, match, oks_matrix
from s2m_model.tracking.tracker import MultiPersonTracker, TrackerConfig, keypoint_similarity

# A standing stick figure's COCO-17 keypoints as fractions of its box (x, y).
FIGURE = np.array([
    [0.5, 0.08], [0.55, 0.06], [0.45, 0.06], [0.6, 0.08], [0.4, 0.08],  # face
    [0.7, 0.2], [0.3, 0.2], [0.8, 0.35], [0.2, 0.35], [0.85, 0.5], [0.15, 0.5],  # arms
    [0.62, 0.52], [0.38, 0.52], [0.63, 0.75], [0.37, 0.75], [0.64, 0.98], [0.36, 0.98],  # legs
])


def person(cx: float, cy: float, h: float = 200.0, pose: float = 0.0,
           width: int = 640, height: int = 480) -> Detection:
    """A detection of a figure centred at (cx, cy), ``h`` px tall; ``pose`` spreads the arms
    (so that two people can differ in keypoints, not just position); clipped to the image."""
    w = 0.4 * h
    kp = FIGURE.copy()
    kp[7:11, 0] = 0.5 + (kp[7:11, 0] - 0.5) * (1.0 + pose)
    xy = np.column_stack([cx - w / 2 + kp[:, 0] * w, cy - h / 2 + kp[:, 1] * h])
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < width) & (xy[:, 1] >= 0) & (xy[:, 1] < height)
    conf = np.where(inside, 0.9, 0.1)
    seen = xy[inside]
    box = np.concatenate([seen.min(0), seen.max(0)])
    return Detection(keypoints=np.column_stack([xy, conf]), bbox=box, score=0.9)


def run(tracker: MultiPersonTracker, frames: list[list[Detection]]) -> list[dict[int, int]]:
    """Per frame: {detection index: track id} of the tracker's output."""
    out = []
    for dets in frames:
        result = tracker.update(dets)
        out.append({next(i for i, d in enumerate(dets) if d is r.detection): r.track_id
                    for r in result})
    return out


def test_two_people_crossing_keep_their_ids():
    # A walks right, B walks left at the same height and size: they overlap fully mid-way, and
    # B (behind) is not detected for 4 frames at the crossing.
    frames = []
    for t in range(40):
        a = person(150 + 10 * t, 240, pose=0.0)
        b = person(550 - 10 * t, 240, pose=0.8)
        frames.append([a] if 18 <= t < 22 else [a, b])
    ids = run(MultiPersonTracker(), frames)
    id_a = {f[0] for f in ids if 0 in f}
    id_b = {f[1] for f in ids if 1 in f}
    assert len(id_a) == 1 and len(id_b) == 1 and id_a != id_b
    # the occluded person is not output while unseen (no stale tracks) and comes back
    assert all(len(f) == 1 for f in ids[18:22]) and len(ids[25]) == 2


def test_birth_needs_min_hits_and_death_after_max_age():
    tracker = MultiPersonTracker(TrackerConfig(min_hits=3, max_age=2))
    seen = [len(tracker.update([person(100 + 5 * t, 240)])) for t in range(4)]
    assert seen == [0, 0, 1, 1]  # confirmed on the third consecutive hit
    for _ in range(2):
        assert tracker.update([]) == []  # coasting: never output
    assert len(tracker.tracks) == 1
    tracker.update([])  # third miss > max_age: deleted
    assert tracker.tracks == []
    # a one-frame false positive never becomes a track
    tracker.update([person(500, 100, h=80)])
    tracker.update([])
    assert tracker.tracks == []


def test_people_entering_and_leaving_at_the_border():
    tracker = MultiPersonTracker()
    ids = []
    for t in range(60):
        cx = -60 + 15 * t  # enters from the left (partly outside), leaves on the right
        dets = [person(cx, 240)] if -20 < cx < 660 else []
        ids.append({r.track_id for r in tracker.update(dets)})
    used = set().union(*ids)
    assert len(used) == 1
    assert ids[-1] == set()
    assert all(t.missed > 0 for t in tracker.tracks)  # only a coasting track remains, unseen


def test_zero_people_and_bad_features():
    tracker = MultiPersonTracker()
    for _ in range(5):
        assert tracker.update([]) == []
    with pytest.raises(ValueError, match="features"):
        tracker.update([person(100, 100)], features=[])
    with pytest.raises(ValueError):
        TrackerConfig(min_hits=0)
    with pytest.raises(ValueError):
        TrackerConfig(max_cost=0.0)


def test_reset_restarts_ids():
    tracker = MultiPersonTracker(TrackerConfig(min_hits=1))
    assert tracker.update([person(100, 100)])[0].track_id == 1
    tracker.update([person(400, 300)])  # far away: a new id (2), the old one coasts
    tracker.reset()
    assert tracker.update([person(100, 100)])[0].track_id == 1


def test_appearance_separates_people_who_swap_places():
    """Two people jump to each other's place between frames (a long occlusion): only the
    appearance features can tell who is who."""
    cfg = TrackerConfig(min_hits=1, appearance_weight=2.0, max_cost=0.95)
    red, blue = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    tracker = MultiPersonTracker(cfg)
    first = tracker.update([person(300, 240), person(340, 240)], features=[red, blue])
    swapped = tracker.update([person(300, 240), person(340, 240)], features=[blue, red])
    assert [r.track_id for r in swapped] == [first[1].track_id, first[0].track_id]


def test_reidentification_after_a_jump_needs_same_colours_and_nearby():
    """A person the detector misses for 6 frames reappears ~1.2 box diagonals away (no box
    overlap, nothing for the motion model): same colours -> same id; other colours, no features
    or too far -> a new id. A bystander of other colours never takes the lost id."""
    red, blue = np.array([0.9, 0.1, 0.0]), np.array([0.0, 0.2, 0.9])
    red_again = np.array([0.85, 0.15, 0.02])  # a slightly different reading of the same shirt

    def clip(back: Detection, back_feature: np.ndarray | None) -> tuple[int, int, int]:
        tracker = MultiPersonTracker(TrackerConfig(min_hits=1, max_age=10))
        use = back_feature is not None
        for _ in range(8):
            out = tracker.update([person(150, 300), person(560, 300)],
                                 features=[red, blue] if use else None)
        man, bystander = out[0].track_id, out[1].track_id
        for _ in range(6):  # the jump: only the bystander is detected
            assert [r.track_id for r in tracker.update(
                [person(560, 300)], features=[blue] if use else None)] == [bystander]
        back_out = tracker.update([back, person(560, 300)],
                                  features=[back_feature, blue] if use else None)
        return man, bystander, back_out[0].track_id

    landing = person(400, 220)  # 263 px from where he was last seen; box diagonal 215 px
    man, bystander, back = clip(landing, red_again)
    assert back == man
    for other in (clip(landing, blue), clip(landing, None), clip(person(560, 60), red_again)):
        assert other[2] not in (other[0], other[1])  # a new id, never the bystander's


def test_reidentification_after_deletion_and_a_partial_last_box():
    """A person lost for longer than ``max_age`` (deleted, never output meanwhile) is still
    re-identified within ``reid_max_age`` frames; the search radius uses the track's usual box
    size, not the small partial box the detector gave just before losing them."""
    red, blue = np.array([0.9, 0.1, 0.0]), np.array([0.0, 0.2, 0.9])

    def clip(gap: int) -> tuple[int, list[int], int]:
        tracker = MultiPersonTracker(TrackerConfig(min_hits=1, max_age=3, reid_max_age=10))
        for _ in range(8):
            man = tracker.update([person(150, 300), person(560, 300)], [red, blue])[0].track_id
        # Only his head and shoulders, then nothing for ``gap`` frames.
        assert tracker.update([person(150, 230, h=60), person(560, 300)],
                              [red, blue])[0].track_id == man  # fmt: skip
        during = []
        for _ in range(gap):
            during += [r.track_id for r in tracker.update([person(560, 300)], [blue])]
        # 200 px from the partial box (diagonal 19 px), about 1.3 of his usual diagonals.
        back = person(350, 250)
        return man, during, tracker.update([back, person(560, 300)], [red, blue])[0].track_id

    man, during, back = clip(gap=8)  # deleted after 3 missed frames, back after 8
    assert back == man and man not in during
    man, _, back = clip(gap=14)  # beyond max_age + reid_max_age: forgotten
    assert back != man
    with pytest.raises(ValueError, match="reid_max_age"):
        TrackerConfig(reid_max_age=-1)


def test_a_second_reading_inside_a_tracked_person_starts_no_track():
    """A detection mostly inside a tracked person's detection (the detector read them twice) is
    not output and cannot take the id over; a newcomer elsewhere, or the same overlap with
    ``birth_overlap`` off, starts a track."""
    def clip(config: TrackerConfig) -> tuple[list[list[int]], int]:
        tracker = MultiPersonTracker(config)
        for _ in range(3):
            man = tracker.update([person(200, 300)])[0].track_id
        frames = []
        for _ in range(2):  # a second, shorter reading of him, plus a newcomer far away
            out = tracker.update([person(205, 300), person(210, 330, h=140), person(560, 300)])
            frames.append([r.track_id for r in out])
        frames.append([r.track_id for r in tracker.update([person(212, 328, h=150)])])
        return frames, man

    frames, man = clip(TrackerConfig(min_hits=1))
    newcomer = frames[0][1]
    assert frames[:2] == [[man, newcomer]] * 2 and newcomer != man
    assert frames[2] == [man]  # only the short box is left: still him
    frames, man = clip(TrackerConfig(min_hits=1, birth_overlap=1.5))  # off
    assert len(frames[0]) == 3 and len(set(frames[0])) == 3
    with pytest.raises(ValueError, match="birth_overlap"):
        TrackerConfig(birth_overlap=0.0)


def test_box_width_jumping_with_an_arm_keeps_the_id():
    """A standing person whose box widens and narrows as an arm goes out and in (the box's right
    edge jumps by 166 px, the centre hardly moves) keeps one id: the prediction moves the box's
    centre, it does not extrapolate each edge (which turned the box inside out)."""
    tracker = MultiPersonTracker(TrackerConfig(min_hits=1))
    ids = []
    for right in (800, 830, 900, 950, 956, 790, 795, 800, 950, 792):
        kps = person(780, 280, width=1280).keypoints
        kps[:, 2] = 0.1  # keypoints too unsure to match on: the box alone decides
        det = Detection(kps, np.array([750.0, 115.0, right, 450.0]), 0.9)
        ids += [r.track_id for r in tracker.update([det], [np.array([0.2, 0.7, 0.1])])]
    assert ids == [1] * 10


def test_keypoint_similarity():
    a = person(200, 200).keypoints
    box = np.array([0, 0, 100, 200])
    assert keypoint_similarity(a, a, box) == pytest.approx(1.0)
    shifted = a.copy()
    shifted[:, 0] += 50
    assert keypoint_similarity(a, shifted, box) < 0.1
    weak = a.copy()
    weak[:, 2] = 0.0
    assert keypoint_similarity(a, weak, box) is None


def test_mot_accumulator_counts_switches_misses_and_false_positives():
    acc = MotAccumulator(threshold=0.5)
    good = np.eye(2)
    acc.update([1, 2], [10, 20], good)
    acc.update([1, 2], [10, 20], good)
    acc.update([1, 2], [20, 10], good)  # the ids swapped: 2 switches
    acc.update([1, 2], [10], np.array([[0.9], [0.1]]))  # 2 missed
    acc.update([1], [10, 30], np.array([[0.9, 0.0]]))  # 30 is a false positive
    s = acc.summary()
    assert (s["gt"], s["matches"], s["misses"], s["false_positives"]) == (9, 8, 1, 1)
    assert s["id_switches"] == 2 + 1  # 10<->20 swapped at frame 3, 1 back to 10 at frame 4
    assert s["mota"] == pytest.approx(1 - (1 + 1 + 3) / 9)
    assert MotAccumulator().mota == 1.0
    # a new clip reuses ids: no switch is counted across clips
    acc.new_sequence()
    acc.update([1], [20], np.array([[0.9]]))
    assert acc.id_switches == 3
    assert match(np.array([[0.2, 0.9], [0.8, 0.1]])) == [(0, 1), (1, 0)]
    assert match(np.zeros((0, 3))) == []


def test_oks_matrix_prefers_the_right_person():
    gt_a = person(200, 240).keypoints.copy()
    gt_a[:, 2] = 2
    det_b = person(400, 240)
    sim = oks_matrix([gt_a], [8000.0], [person(202, 241).keypoints, det_b.keypoints])
    assert sim[0, 0] > 0.9 and sim[0, 1] < 0.05


def test_color_histogram_tells_colours_apart():
    from s2m_model.tracking.appearance import color_histogram

    image = np.zeros((200, 200, 3), np.uint8)
    image[:, :100] = (200, 30, 30)
    image[:, 100:] = (30, 30, 200)
    left = Detection(keypoints=np.zeros((17, 3)), bbox=[0, 0, 100, 200], score=1)
    right = Detection(keypoints=np.zeros((17, 3)), bbox=[100, 0, 200, 200], score=1)
    hl, hr = color_histogram(image, left), color_histogram(image, right)
    assert hl @ hl == pytest.approx(1.0) and hl @ hr < 0.1
    outside = Detection(keypoints=np.zeros((17, 3)), bbox=[300, 300, 300, 300], score=1)
    assert not color_histogram(image, outside).any()


def test_synthetic_clip_has_ground_truth(body):
    from s2m_model.tracking.synthetic import SpriteBank, make_clip, walking_pose

    assert walking_pose(0.25).shape == (23, 3)
    bank = SpriteBank(body, identities=2, phases=1, height=160, seed=0)
    frames = make_clip(bank, n_frames=5, n_people=3, width=320, height=240,
                       heights=(60, 120), seed=3)
    assert len(frames) == 5 and frames[0].image.shape == (240, 320, 3)
    ids = {p.track_id for f in frames for p in f.people}
    assert ids <= {0, 1, 2} and ids
    p = frames[0].people[0]
    assert p.keypoints.shape == (17, 3) and 0 < p.visible_fraction <= 1
    # the keypoints lie within the person's box, and the image shows the body there
    inside = p.keypoints[p.keypoints[:, 2] == 2, :2]
    assert ((inside >= p.box[:2] - 2) & (inside <= p.box[2:] + 2)).all()
    with pytest.raises(ValueError):
        make_clip(bank, n_frames=0)


def test_score_frame_recall_bins_and_dont_care_people():
    from types import SimpleNamespace

    from s2m_model.tracking.metrics import RecallBins, score_frame

    def gt(track_id, cx, h, visible):
        kp = person(cx, 240, h=h).keypoints.copy()
        kp[:, 2] = 2
        return SimpleNamespace(track_id=track_id, keypoints=kp, area=0.3 * h * h, height=h,
                               visible_fraction=visible)

    people = [gt(0, 100, 200, 1.0), gt(1, 300, 100, 1.0), gt(2, 500, 120, 0.2)]
    dets = [person(101, 240, h=200).keypoints, person(500, 240, h=120).keypoints]
    recall, mot = RecallBins(), MotAccumulator()
    pairs = score_frame(people, dets, track_ids=[7, 8], mot=mot, recall=recall)
    assert sorted(pairs) == [(0, 0), (2, 1)]
    s = recall.summary()
    assert s[">=150px"] == {"gt": 1, "found": 1, "recall": 1.0}
    assert s[">=80px"] == {"gt": 2, "found": 1, "recall": 0.5}
    # the detection of the mostly hidden person is neither a hit nor a false positive
    assert (mot.gt, mot.matches, mot.misses, mot.false_positives) == (2, 1, 1, 0)


def test_track_summary_counts_persons_tracks_and_lengths():
    from s2m_model.tracking.metrics import track_summary

    out = track_summary([[1, 2], [1], [], [1, 3], [0]])
    assert out["persons_per_frame"] == {"mean": 1.2, "max": 2}
    assert out["tracks"] == 3  # id 0 (untracked) is a person but no track
    assert out["track_length_frames"] == {"median": 1.0, "max": 3}
    empty = track_summary([])
    assert empty["tracks"] == 0 and empty["track_length_frames"]["max"] is None
