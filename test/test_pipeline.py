"""Tests of s2m_model.pipeline (and the `s2m run` command).

Most tests use a synthetic scene: the free body in a known pose and place, its COCO-17 points
projected with a known camera (a stand-in detector), and an oracle stand-in lifter that returns
the body's own h36m17 skeleton. The stand-ins live here only; the library ships none. The
real-image tests use MediaPipe and the shipped lifter on the COCO photo from ../shared.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import roma
import torch

from s2m_model.camera import Camera
from s2m_model.detect import Detection
from s2m_model.pipeline import Pipeline, PipelineConfig, estimate_translation
from s2m_model.smpl_layout import world_from_local

W, H = 640, 480
CAM = Camera.from_fov(W, H, 55.0)
FLIP = torch.tensor([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])  # body -> camera
POSE = {
    "left_elbow": (0.0, -0.8, 0.0), "right_elbow": (0.0, 0.9, 0.0),
    "left_knee": (0.5, 0.0, 0.0), "right_knee": (0.3, 0.0, 0.0),
    "left_shoulder": (0.0, 0.0, -1.0), "right_shoulder": (0.0, 0.0, 1.0),
    "left_hip": (-0.3, 0.0, 0.1), "spine1": (0.1, 0.0, 0.0),
}  # fmt: skip


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """`s2m run` sets torch's thread count for its process (--threads): undo it for the rest
    of the test session."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def body32():
    from s2m_model.body import load_body_model

    return load_body_model("s2m-free")


class Scene:
    """Ground truth for a synthetic person; feeds the stand-in detector and lifter."""

    def __init__(self, body, yaw: float = 0.4, transl=(0.2, 0.1, 3.5)) -> None:
        names = list(body.joint_names)
        pose = torch.zeros(1, 23, 3)
        for joint, rotvec in POSE.items():
            pose[0, names.index(joint) - 1] = torch.tensor(rotvec)
        orient = FLIP @ roma.rotvec_to_rotmat(torch.tensor([0.0, yaw, 0.0]))
        self.out = body(global_orient=roma.rotmat_to_rotvec(orient)[None], body_pose=pose,
                        transl=torch.tensor([transl]))  # fmt: skip
        self.coco = body.regress(self.out.vertices, "coco17")[0].numpy()
        h36 = body.regress(self.out.vertices, "h36m17")[0].numpy()
        self.h36_rel = (h36 - h36[0]).astype(np.float32)
        self.uv = CAM.project(self.coco)
        self.joints = self.out.joints[0].numpy()


class OracleLifter:
    """Stand-in lifter: returns the skeleton registered for each exact keypoint array."""

    def __init__(self) -> None:
        self.table: dict[bytes, np.ndarray] = {}
        self.cameras: list = []

    def register(self, keypoints: np.ndarray, h36_rel: np.ndarray) -> None:
        self.table[np.asarray(keypoints, np.float32).tobytes()] = h36_rel

    def lift(self, keypoints2d, camera=None):
        self.cameras.append(camera)
        kp = np.asarray(keypoints2d, dtype=np.float32)
        return torch.from_numpy(np.stack([self.table[k.tobytes()] for k in kp]))


class ScriptedDetector:
    """Stand-in detector: returns the scripted people of each successive frame."""

    def __init__(self, frames: list[list[np.ndarray]]) -> None:
        self.frames, self.index = frames, 0

    def detect(self, image):
        from s2m_model.image import validate_image

        validate_image(image)
        people = self.frames[min(self.index, len(self.frames) - 1)]
        self.index += 1
        return [Detection(kp, np.r_[kp[:, :2].min(0), kp[:, :2].max(0)], 0.9) for kp in people]

    def close(self) -> None:
        pass


def _keypoints(uv: np.ndarray, conf: float = 1.0) -> np.ndarray:
    return np.concatenate([uv, np.full((17, 1), conf)], 1).astype(np.float32)


def _pipeline(body, frames, lifter, **config) -> Pipeline:
    return Pipeline(PipelineConfig(**config), detector=ScriptedDetector(frames), lifter=lifter,
                    body=body)  # fmt: skip


def _image() -> np.ndarray:
    return np.zeros((H, W, 3), np.uint8)


def _reprojection_px(body, result, keypoints: np.ndarray, camera: Camera) -> np.ndarray:
    verts = torch.from_numpy(result.vertices)[None]
    coco = body.regress(verts, "coco17")[0].numpy()
    return np.linalg.norm(camera.project(coco) - keypoints[:, :2], axis=1)


# ------------------------------------------------------------------------- translation solver
def test_estimate_translation_exact_on_synthetic_projections():
    rng = np.random.default_rng(0)
    for _ in range(5):
        points = rng.normal(0, 0.4, (17, 3))
        t = np.array([rng.uniform(-1, 1), rng.uniform(-0.5, 0.5), rng.uniform(2, 8)])
        uv = CAM.project(points + t)
        weights = rng.uniform(0.2, 1.0, 17)
        got = estimate_translation(points, uv, weights, (CAM.fx, CAM.fy, CAM.cx, CAM.cy))
        np.testing.assert_allclose(got, t, atol=1e-8)


def test_estimate_translation_ignores_zero_weight_and_batches():
    rng = np.random.default_rng(1)
    points = rng.normal(0, 0.4, (2, 17, 3))
    t = np.array([[0.3, 0.1, 4.0], [-0.5, 0.2, 6.0]])
    uv = np.stack([CAM.project(points[i] + t[i]) for i in range(2)])
    weights = np.ones((2, 17))
    uv[:, :3] += 200.0  # outliers...
    weights[:, :3] = 0.0  # ...with zero weight
    uv[1, 5] = np.nan  # missing keypoint
    got = estimate_translation(points, uv, weights, (CAM.fx, CAM.fy, CAM.cx, CAM.cy))
    np.testing.assert_allclose(got, t, atol=1e-8)
    one = estimate_translation(points[0], uv[0], np.r_[1.0, np.zeros(16)], (500, 500, 320, 240))
    assert np.isnan(one).all()  # a single point cannot fix depth
    with pytest.raises(ValueError):
        estimate_translation(points, uv[..., :1], weights, (500, 500, 320, 240))


def test_pipeline_leaves_torch_threads_alone(body32):
    """Thread settings are the programs' (CLIs'): building and running a pipeline keeps them."""
    before = torch.get_num_threads()
    other = 2 if before == 1 else 1
    torch.set_num_threads(other)
    try:
        pipe = Pipeline(PipelineConfig(temporal=False, compute_vertices=False,
                                       dik_backend="eager"), body=body32)  # fmt: skip
        scene = Scene(body32)
        pipe.process_skeleton(body32.regress(scene.out.vertices, "h36m17")[0].numpy())
        assert torch.get_num_threads() == other
    finally:
        torch.set_num_threads(before)


# ------------------------------------------------------------------------------------- config
def test_config_defaults_and_validation(tmp_path):
    cfg = PipelineConfig()
    assert (cfg.body, cfg.detector, cfg.video_mode, cfg.lifter, cfg.device) == (
        "s2m-free", "mediapipe", True, "mediapipe-world", "cpu")
    assert cfg.temporal and cfg.fov_deg == 55.0
    assert PipelineConfig.from_dict({"fov_deg": 60, "max_persons": 2}).fov_deg == 60
    for bad in ({"nope": 1}, {"fov_deg": 0}, {"fov_deg": 200}, {"max_persons": 0},
                {"temporal": "yes"}, {"min_keypoint_confidence": 1.5}, {"rot_beta": -1},
                {"num_threads": 1}, {"body": ""}, {"max_persons": 2.5}, {"lifter": "mp"},
                {"dik_backend": "fast"}, {"fov_deg": math.nan}, {"detector_options": [1]},
                {"track_max_age": True}):  # fmt: skip
        with pytest.raises(ValueError, match=next(iter(bad))):
            PipelineConfig.from_dict(bad)
    with pytest.raises(ValueError, match="lifter must be one of 's2m', 'mediapipe-world'"):
        PipelineConfig(lifter="mediapipe_world")
    with pytest.raises(ValueError, match="--threads"):
        PipelineConfig.from_dict({"num_threads": 1})
    with pytest.raises(ValueError):
        PipelineConfig.from_dict([1, 2])
    # the front end and the s2m lifter's weights; the old meaning of `lifter` still works
    # default front end chosen by measurement on real photos (docs/benchmarks.md, issue 10)
    assert (cfg.lifter, cfg.lifter_model) == ("mediapipe-world", "default")
    assert PipelineConfig(lifter="mediapipe-world").lifter == "mediapipe-world"
    for legacy in ("default", "ckpt/lifter.pt", "my.pth"):
        old = PipelineConfig(lifter=legacy)
        assert (old.lifter, old.lifter_model) == ("s2m", legacy)
    assert cfg.replace(max_persons=2).max_persons == 2 and cfg.max_persons == 4

    path = tmp_path / "pipe.yaml"
    path.write_text("pipeline:\n  fov_deg: 70\n  temporal: false\n")
    cfg = PipelineConfig.from_yaml(path)
    assert cfg.fov_deg == 70 and cfg.temporal is False
    path.write_text("fov_deg: 65\n")
    assert PipelineConfig.from_yaml(path).fov_deg == 65
    path.write_text("fov_deg: [1\n")
    with pytest.raises(ValueError, match="YAML"):
        PipelineConfig.from_yaml(path)
    path.write_text("fov_deg: -3\n")
    with pytest.raises(ValueError, match="fov_deg"):
        PipelineConfig.from_yaml(path)
    with pytest.raises(FileNotFoundError):
        PipelineConfig.from_yaml(tmp_path / "missing.yaml")
    assert PipelineConfig.from_dict(PipelineConfig().to_dict()) == PipelineConfig()


# ------------------------------------------------------------------------- synthetic pipeline
def test_process_synthetic_person_lands_in_place(body32):
    scene = Scene(body32)
    kp = _keypoints(scene.uv)
    lifter = OracleLifter()
    lifter.register(kp, scene.h36_rel)
    pipe = _pipeline(body32, [[kp]], lifter, temporal=False)
    (res,) = pipe.process(_image())
    # the lifter gets the default camera's intrinsics
    np.testing.assert_allclose(lifter.cameras[-1], (CAM.fx, CAM.fy, CAM.cx, CAM.cy), rtol=1e-6)
    assert res.vertices.shape == (body32.num_vertices, 3) and res.joints.shape == (24, 3)
    assert res.body_pose.shape == (23, 3) and res.betas.shape == (10,)
    assert res.solved.dtype == bool and res.solved[[0, 1, 2, 4, 5, 16, 17, 18, 19]].all()
    assert res.keypoints_2d.shape == (17, 3) and res.bbox.shape == (4,)
    assert set(res.timings_ms) >= {"detect", "lift", "dik", "body", "total"}
    assert res.track_id == 0
    for arr in (res.transl, res.joints, res.vertices, res.global_orient, res.body_pose):
        assert np.isfinite(arr).all()
    # Metric placement in the camera frame: root within 2 cm, joints within 3 cm.
    assert np.linalg.norm(res.joints[0] - scene.joints[0]) < 0.02
    assert np.linalg.norm(res.joints - scene.joints, axis=1).mean() < 0.03
    err = _reprojection_px(body32, res, kp, CAM)
    assert err.mean() < 1.0 and err.max() < 3.0
    # transl is what places the body: the model with these parameters gives the same joints
    out = body32(betas=torch.from_numpy(res.betas)[None],
                 global_orient=torch.from_numpy(res.global_orient)[None],
                 body_pose=torch.from_numpy(res.body_pose)[None],
                 transl=torch.from_numpy(res.transl)[None])  # fmt: skip
    np.testing.assert_allclose(out.joints[0].numpy(), res.joints, atol=1e-4)


def test_process_with_intrinsics_and_without_vertices(body32):
    camera = Camera(700.0, 690.0, 300.0, 250.0, W, H)
    scene = Scene(body32, yaw=-0.3, transl=(-0.4, 0.2, 5.0))
    kp = _keypoints(camera.project(scene.coco))
    lifter = OracleLifter()
    lifter.register(kp, scene.h36_rel)
    pipe = _pipeline(body32, [[kp]], lifter, temporal=False, compute_vertices=False)
    (res,) = pipe.process(_image(), camera=(700.0, 690.0, 300.0, 250.0))
    assert res.vertices is None
    # placed from the 12 limb joints (SMPL joints vs surface keypoints): a few cm
    assert np.linalg.norm(res.joints[0] - scene.joints[0]) < 0.15


def test_low_confidence_keypoint_is_unobserved(body32):
    scene = Scene(body32)
    kp = _keypoints(scene.uv)
    kp[9, 2] = 0.1  # left wrist barely seen
    lifter = OracleLifter()
    lifter.register(kp, scene.h36_rel)
    (res,) = _pipeline(body32, [[kp]], lifter, temporal=False).process(_image())
    left_elbow, left_wrist, right_elbow = 18, 20, 19
    assert not res.solved[left_elbow] and res.solved[right_elbow]
    assert res.confidence[left_wrist] == pytest.approx(0.1)
    assert res.confidence[right_elbow] == pytest.approx(1.0)


def test_process_nobody_and_bad_images(body32):
    scene = Scene(body32)
    lifter = OracleLifter()
    low = _keypoints(scene.uv, conf=0.1)  # nobody confident enough
    pipe = _pipeline(body32, [[], [low]], lifter)
    assert pipe.process(_image()) == []
    assert pipe.process(_image()) == []
    assert "detect" in pipe.last_timings and "total" in pipe.last_timings
    for bad in (None, np.zeros((0, 0, 3), np.uint8), np.zeros((4, 4, 5), np.uint8),
                np.full((8, 8, 3), np.nan, np.float32), "image.png"):  # fmt: skip
        with pytest.raises(ValueError):
            pipe.process(bad)
    with pytest.raises(ValueError):
        pipe.process(_image(), camera=(1.0, 2.0))


def test_detect_then_estimate_equals_process_also_one_frame_ahead(body32):
    """The two halves give what ``process`` gives, also when frame t+1 is detected before
    frame t is estimated (as a pipelined node does)."""
    rng = np.random.default_rng(3)
    scene = Scene(body32, transl=(0.1, 0.1, 4.0))
    lifter = OracleLifter()
    frames = []
    for _ in range(4):
        kp = _keypoints(scene.uv + rng.normal(0, 2.0, scene.uv.shape))
        lifter.register(kp, scene.h36_rel)
        frames.append([kp])
    whole = _pipeline(body32, frames, lifter, compute_vertices=False, dik_backend="eager")
    halves = _pipeline(body32, frames, lifter, compute_vertices=False, dik_backend="eager")
    expected = [whole.process(_image(), stamp=i / 30.0) for i in range(4)]
    detected = [halves.detect(_image(), stamp=0.0)]
    got = []
    for i in range(1, 5):
        if i < 4:
            detected.append(halves.detect(_image(), stamp=i / 30.0))
        got.append(halves.estimate(detected[i - 1]))
    for a, b in zip(expected, got, strict=True):
        assert len(a) == len(b) == 1 and a[0].track_id == b[0].track_id
        np.testing.assert_allclose(a[0].joints, b[0].joints, atol=1e-6)
        np.testing.assert_allclose(a[0].transl, b[0].transl, atol=1e-6)
    assert halves.counters["frames"] == 4 and "detect" in got[0][0].timings_ms


def test_second_reading_of_a_tracked_person_is_dropped_and_counted(body32):
    """A detection mostly inside a tracked person's box (the detector read them twice) gets no
    body and no id of its own; it is counted as ``duplicate_people``; a second person beside
    them still gets a body."""
    scene_a = Scene(body32, transl=(-0.6, 0.1, 4.0))
    scene_b = Scene(body32, yaw=-0.5, transl=(0.8, 0.1, 4.5))
    lifter = OracleLifter()
    kp_a, kp_b = _keypoints(scene_a.uv), _keypoints(scene_b.uv)
    centre = kp_a[:, :2].mean(0)
    kp_twin = kp_a.copy()
    kp_twin[:, :2] = centre + 0.6 * (kp_a[:, :2] - centre)  # a shrunken reading, inside a's box
    for kp, scene in ((kp_a, scene_a), (kp_b, scene_b), (kp_twin, scene_a)):
        lifter.register(kp, scene.h36_rel)
    frames = [[kp_a], [kp_a], [kp_a, kp_twin, kp_b], [kp_a, kp_twin, kp_b]]
    pipe = _pipeline(body32, frames, lifter, compute_vertices=False, dik_backend="eager")
    outs = [pipe.process(_image(), stamp=i / 30.0) for i in range(len(frames))]
    first = outs[0][0].track_id
    for res in outs[2:]:
        assert len(res) == 2 and res[0].track_id == first and res[1].track_id != first
        np.testing.assert_allclose(res[0].keypoints_2d, kp_a)
        np.testing.assert_allclose(res[1].keypoints_2d, kp_b)
    assert pipe.counters["duplicate_people"] == 2


def test_temporal_tracks_and_smooths(body32):
    rng = np.random.default_rng(0)
    scene_a = Scene(body32, transl=(-0.6, 0.1, 4.0))
    scene_b = Scene(body32, yaw=-0.5, transl=(0.8, 0.1, 4.5))
    lifter = OracleLifter()
    frames = []
    for i in range(20):
        people = []
        for scene in (scene_a, scene_b):
            kp = _keypoints(scene.uv + rng.normal(0, 3.0, scene.uv.shape))
            noise = rng.normal(0, 0.01, scene.h36_rel.shape).astype(np.float32)
            lifter.register(kp, scene.h36_rel + noise)
            people.append(kp)
        frames.append(people if i % 2 == 0 else people[::-1])

    def run(temporal: bool):
        pipe = _pipeline(body32, frames, lifter, temporal=temporal, compute_vertices=False,
                         dik_backend="eager")  # fmt: skip
        outs = []
        for i in range(len(frames)):
            res = pipe.process(_image(), stamp=i / 30.0)
            outs.append(sorted(res, key=lambda r: r.transl[0]))  # a (left) then b
        return outs

    smooth, raw = run(True), run(False)
    ids = {(o[0].track_id, o[1].track_id) for o in smooth}
    assert len(ids) == 1 and 0 not in next(iter(ids))  # stable, distinct ids >= 1
    for k in range(2):
        t_smooth = np.stack([o[k].transl for o in smooth[10:]])
        t_raw = np.stack([o[k].transl for o in raw[10:]])
        assert t_smooth.std(0).sum() < 0.6 * t_raw.std(0).sum()
        rot_s = roma.rotvec_to_rotmat(torch.from_numpy(np.stack([o[k].body_pose for o in smooth])))
        rot_r = roma.rotvec_to_rotmat(torch.from_numpy(np.stack([o[k].body_pose for o in raw])))
        jitter_s = roma.rotmat_geodesic_distance(rot_s[11:], rot_s[10:-1]).mean()
        jitter_r = roma.rotmat_geodesic_distance(rot_r[11:], rot_r[10:-1]).mean()
        assert jitter_s < 0.6 * jitter_r


# ------------------------------------------------------------- front end: mediapipe-world
class NoLifter:
    """Stand-in for the s2m lifter where it must not be used."""

    def lift(self, keypoints2d, camera=None):
        raise AssertionError("the s2m lifter was called")


def _world_detection(body, scene: Scene, with_world: bool = True) -> Detection:
    """A detection as MediaPipe gives it: COCO-17 pixels, 33 landmarks (pixels + visibility)
    and the metric world landmarks (hip-centred, camera axes) of the scene's posed body."""
    kp = _keypoints(scene.uv)
    blaze = body.regress(scene.out.vertices, "blazepose33")[0].numpy()
    world = (blaze - blaze[[23, 24]].mean(0)).astype(np.float32)
    pixels = np.concatenate([CAM.project(blaze), blaze[:, 2:] * 0, np.ones((33, 1))], 1)
    return Detection(kp, np.r_[kp[:, :2].min(0), kp[:, :2].max(0)], 0.9,
                     keypoints_blazepose=pixels.astype(np.float32),
                     keypoints_world=world if with_world else None)  # fmt: skip


class DetectionScript(ScriptedDetector):
    """Stand-in detector returning ready-made detections."""

    def detect(self, image):
        people = self.frames[min(self.index, len(self.frames) - 1)]
        self.index += 1
        return list(people)


def _world_pipeline(body, scene: Scene, **config) -> tuple[Pipeline, Detection]:
    det = _world_detection(body, scene)
    cfg = PipelineConfig(lifter="mediapipe-world", temporal=False, dik_backend="eager", **config)
    pipe = Pipeline(cfg, detector=DetectionScript([[det]]), lifter=NoLifter(), body=body)
    return pipe, det


def _world_rotation_errors(body, scene_yaw: float, res) -> dict[str, float]:
    """Degrees between the result's and the scene's world (body-frame) joint rotations, for
    the root and the limb joints. World rotations, because DIK spreads the torso over spine
    and collars where the scene has one joint: the limbs' orientations are comparable."""
    names = list(body.joint_names)
    truth = torch.zeros(24, 3)
    truth[0] = roma.rotmat_to_rotvec(FLIP @ roma.rotvec_to_rotmat(torch.tensor([0.0, scene_yaw,
                                                                                0.0])))
    for joint, rotvec in POSE.items():
        truth[names.index(joint)] = torch.tensor(rotvec)
    got = torch.from_numpy(np.concatenate([res.global_orient[None], res.body_pose]))
    world_got = world_from_local(roma.rotvec_to_rotmat(got)[None])[0]
    world_truth = world_from_local(roma.rotvec_to_rotmat(truth)[None])[0]
    angle = np.degrees(roma.rotmat_geodesic_distance(world_got, world_truth).numpy())
    limbs = ("pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_shoulder",
             "right_shoulder", "left_elbow", "right_elbow")  # fmt: skip
    return {j: float(angle[names.index(j)]) for j in limbs}


def test_mediapipe_world_front_end_reproduces_pose(body32):
    """World landmarks of a posed body go straight into DIK (blazepose33) and the body is placed
    from the 2D keypoints: the posed joints, the root rotation and the position come back."""
    scene = Scene(body32, yaw=0.5, transl=(0.3, 0.1, 3.2))
    pipe, det = _world_pipeline(body32, scene)
    (res,) = pipe.process(_image())
    assert res.lifter == "mediapipe-world" and pipe.counters["world_landmarks_missing"] == 0
    joint_err = np.linalg.norm(res.joints - scene.joints, axis=1)
    assert joint_err.mean() < 0.03 and joint_err[0] < 0.03
    assert _world_rotation_errors(body32, 0.5, res)["pelvis"] < 8.0
    err = _reprojection_px(body32, res, det.keypoints, CAM)
    assert err.mean() < 1.5


def test_mediapipe_world_limb_rotations(body32):
    scene = Scene(body32, yaw=0.5, transl=(0.3, 0.1, 3.2))
    # The scene's body has the mean shape; SR estimates it from BlazePose's limb points, which
    # are surface rings (lengths biased by ~1 cm), and DIK then bends the legs a little more
    # (knees 6 -> 8.5 deg). This test is about the front end: give it the true (mean) shape.
    pipe, _ = _world_pipeline(body32, scene, refine_shape=False)
    (res,) = pipe.process(_image())
    errors = _world_rotation_errors(body32, 0.5, res)
    assert max(errors.values()) < 8.0, errors


def test_mediapipe_world_falls_back_when_landmarks_are_missing(body32):
    """A detection without world landmarks is lifted by the s2m lifter instead, and counted;
    people keep their detector order."""
    scene_a = Scene(body32, transl=(-0.7, 0.1, 4.0))
    scene_b = Scene(body32, yaw=-0.4, transl=(0.8, 0.1, 4.5))
    with_world = _world_detection(body32, scene_a)
    without = _world_detection(body32, scene_b, with_world=False)
    without.score = 0.8  # second
    lifter = OracleLifter()
    lifter.register(without.keypoints, scene_b.h36_rel)
    pipe = Pipeline(PipelineConfig(lifter="mediapipe-world", temporal=False, dik_backend="eager"),
                    detector=DetectionScript([[without, with_world]]), lifter=lifter,
                    body=body32)  # fmt: skip
    first, second = pipe.process(_image())
    assert (first.lifter, second.lifter) == ("mediapipe-world", "s2m")
    assert pipe.counters["world_landmarks_missing"] == 1 and len(lifter.cameras) == 1
    assert np.linalg.norm(first.joints[0] - scene_a.joints[0]) < 0.03
    assert np.linalg.norm(second.joints[0] - scene_b.joints[0]) < 0.03
    # the s2m front end never looks at world landmarks
    lifter.register(with_world.keypoints, scene_a.h36_rel)
    plain = Pipeline(PipelineConfig(lifter="s2m", temporal=False, dik_backend="eager"),
                     detector=DetectionScript([[with_world]]), lifter=lifter, body=body32)
    (res,) = plain.process(_image())
    assert res.lifter == "s2m" and plain.counters["world_landmarks_missing"] == 0


def test_detector_failure_is_counted(body32):
    from s2m_model.detect import DetectorError

    class Failing(ScriptedDetector):
        def detect(self, image):
            raise DetectorError("graph error")

    pipe = Pipeline(PipelineConfig(), detector=Failing([]), lifter=NoLifter(), body=body32)
    assert pipe.process(_image()) == [] and pipe.process(_image()) == []
    assert pipe.counters["detector_failures"] == 2 and pipe.counters["frames"] == 2


def test_dik_traces_belong_to_their_pipeline(body32):
    """No process-wide trace cache: each pipeline traces (and frees) its own DIK graphs."""
    scene = Scene(body32)
    h36 = body32.regress(scene.out.vertices, "h36m17")[0].numpy()
    pipes = [Pipeline(PipelineConfig(temporal=False, compute_vertices=False), body=body32)
             for _ in range(2)]  # fmt: skip
    pipes[0].process_skeleton(h36)
    assert pipes[0].dik.num_traces == 1 and pipes[1].dik.num_traces == 0


# ----------------------------------------------------------------------------- skeleton mode
def test_process_skeleton(body32):
    scene = Scene(body32, transl=(0.5, -0.2, 2.0))
    h36 = body32.regress(scene.out.vertices, "h36m17")[0].numpy()
    pipe = Pipeline(PipelineConfig(temporal=False), body=body32)
    (res,) = pipe.process_skeleton(h36, "h36m17")
    # the result is in the input's frame
    assert np.linalg.norm(res.joints[0] - scene.joints[0]) < 0.02
    assert np.linalg.norm(res.joints - scene.joints, axis=1).mean() < 0.03
    assert res.keypoints_2d is None and res.bbox is None
    # batched, with a missing person (hips NaN) dropped
    broken = h36.copy()
    broken[[1, 4]] = np.nan
    results = pipe.process_skeleton(np.stack([h36, broken]), "h36m17")
    assert len(results) == 1
    with pytest.raises(ValueError):
        pipe.process_skeleton(h36[:10], "h36m17")
    with pytest.raises(ValueError):
        pipe.process_skeleton(h36, "no_such_format")
    with pytest.raises(ValueError):
        pipe.process_skeleton(np.full((17, 3), np.inf), "h36m17")
    with pytest.raises(ValueError):
        pipe.process_skeleton(h36, "h36m17", confidence=np.full(17, 2.0))


def test_process_skeleton_temporal_keeps_frame(body32):
    """With filtering on, a static skeleton still lands on its pelvis (the filter changes
    nothing at rest, and the translation follows the filtered root rotation)."""
    scene = Scene(body32, transl=(0.0, 0.3, 3.0))
    h36 = body32.regress(scene.out.vertices, "h36m17")[0].numpy()
    pipe = Pipeline(PipelineConfig(temporal=True), body=body32)
    for i in range(3):
        (res,) = pipe.process_skeleton(h36, "h36m17", stamp=i / 30)
    assert res.track_id == 1
    assert np.linalg.norm(res.joints[0] - scene.joints[0]) < 0.02


def test_dik_jit_matches_eager(body32):
    """The traced DIK graph gives the eager solver's numbers (missing joints, straight limbs,
    previous-frame fallback, two people) -- a frozen branch would show up here."""
    rng = np.random.default_rng(3)
    scene = Scene(body32, transl=(0.1, 0.0, 3.0))
    h36 = body32.regress(scene.out.vertices, "h36m17")[0].numpy()
    straight = h36.copy()
    straight[3] = straight[2] + (straight[2] - straight[1])  # a straight right leg
    pipes = [Pipeline(PipelineConfig(dik_backend=b, compute_vertices=False), body=body32)
             for b in ("eager", "jit")]  # fmt: skip
    for i in range(4):
        a = h36 + rng.normal(0, 0.02, h36.shape)
        b = straight + rng.normal(0, 0.005, h36.shape) + np.array([1.2, 0.0, 1.0])
        conf = np.ones((2, 17))
        conf[0, 13] = 0.1 if i % 2 else 1.0  # a joint that comes and goes
        out = [p.process_skeleton(np.stack([a, b]), "h36m17", conf, stamp=i / 30) for p in pipes]
        for r_eager, r_jit in zip(*out, strict=True):
            np.testing.assert_allclose(r_jit.body_pose, r_eager.body_pose, atol=1e-5)
            np.testing.assert_allclose(r_jit.transl, r_eager.transl, atol=1e-5)
            np.testing.assert_array_equal(r_jit.solved, r_eager.solved)
    assert not out[0][0].solved[18]  # the left elbow's wrist was missing in the last frame


# ---------------------------------------------------------------------------- real COCO image
def _real_lifter():
    from s2m_model.lifter import DEFAULT_CHECKPOINT, load_lifter

    if not DEFAULT_CHECKPOINT.is_file():
        pytest.skip("the shipped lifter checkpoint is not there yet")
    return load_lifter("default")


def test_coco_image_one_person_reprojects(shared_data, body32):
    from s2m_model.image import load_image

    image = load_image(shared_data / "images" / "coco_000000000785.jpg")
    pipe = Pipeline(PipelineConfig(video_mode=False, temporal=False), lifter=_real_lifter(),
                    body=body32)  # fmt: skip
    with pipe:
        results = pipe.process(image)
    assert len(results) == 1
    (res,) = results
    cam = Camera.from_fov(image.shape[1], image.shape[0])
    kp = res.keypoints_2d
    seen = kp[:, 2] >= 0.5
    err = _reprojection_px(body32, res, kp, cam)[seen]
    height = kp[seen, 1].max() - kp[seen, 1].min()
    # measured: see docs/pipeline.md; bound relative to the person's height in pixels
    assert err.mean() < 0.08 * height
    assert 1.0 < res.transl[2] < 30.0


def test_coco_image_mediapipe_world(shared_data, body32):
    """MediaPipe's world landmarks on the real photo: camera axes (checked against the pixels),
    and the mesh they give lands on the GT keypoints (measured 7.2 px mean; s2m lifter 11.9)."""
    from s2m_model.detect.coco_eval import keypoint_errors, load_coco_person
    from s2m_model.image import load_image

    path = shared_data / "images" / "coco_000000000785.jpg"
    image = load_image(path)
    pipe = Pipeline(PipelineConfig(lifter="mediapipe-world", video_mode=False, temporal=False),
                    lifter=NoLifter(), body=body32)  # fmt: skip
    with pipe:
        (det,) = pipe.detector.detect(image)
        (res,) = pipe.process(image)
    assert res.lifter == "mediapipe-world"
    world, pixels = det.keypoints_world, det.keypoints_blazepose
    seen = pixels[:, 3] > 0.5
    for axis in (0, 1):  # x right, y down: world offsets follow the pixel offsets
        assert np.corrcoef(world[seen, axis], pixels[seen, axis])[0, 1] > 0.95
    assert np.corrcoef(world[seen, 2], pixels[seen, 2])[0, 1] > 0.95  # z: away from the camera
    cam = Camera.from_fov(image.shape[1], image.shape[0])
    coco = body32.regress(torch.from_numpy(res.vertices)[None], "coco17")[0].numpy()
    err = keypoint_errors(cam.project(coco), load_coco_person(path.with_suffix(".json")).keypoints)
    assert np.nanmean(err) < 10.0
    assert 1.0 < res.transl[2] < 30.0


# ---------------------------------------------------------------------------------- s2m run
def _write_clip(path, n: int) -> None:
    import imageio.v2 as iio2

    with iio2.get_writer(str(path), fps=10, codec="libx264", macro_block_size=1) as writer:
        for _ in range(n):
            writer.append_data(np.full((H, W, 3), 40, np.uint8))


def test_run_cli_synthetic_clip(tmp_path, body32, monkeypatch):
    import s2m_model.detect
    import s2m_model.lifter
    from s2m_model.cli import main

    scene = Scene(body32)
    lifter = OracleLifter()
    frames = []
    for i in range(3):
        kp = _keypoints(scene.uv + np.array([2.0 * i, 0.0]))
        lifter.register(kp, scene.h36_rel)
        frames.append([kp])
    monkeypatch.setattr(s2m_model.detect, "get_detector", lambda *a, **k: ScriptedDetector(frames))
    monkeypatch.setattr(s2m_model.lifter, "load_lifter", lambda *a, **k: lifter)
    clip = tmp_path / "clip.mp4"
    _write_clip(clip, 3)
    out = tmp_path / "out"
    config = tmp_path / "pipe.yaml"
    config.write_text("dik_backend: eager\n")  # tracing DIK costs more than 3 frames save
    torch.set_num_threads(2)
    assert main(["run", str(clip), "--out", str(out), "--ply-every", "2", "--config", str(config),
                 "--camera", f"{CAM.fx},{CAM.fy},{CAM.cx},{CAM.cy}",
                 "--no-refine", "fit"]) == 0  # fmt: skip
    assert torch.get_num_threads() == 1  # --threads 1 by default
    summary = json.loads((out / "summary.json").read_text())
    # --no-refine fit switches the image fit off, the other refinement steps stay on
    assert summary["config"]["refine_fit"] is False and summary["config"]["refine_shape"] is True
    assert "fit" not in summary["latency_ms"]
    assert summary["frames"] == 3 and summary["frames_with_person"] == 3
    assert summary["latency_ms"]["total"]["count"] == 3
    assert summary["counters"]["frames"] == 3 and summary["counters"]["persons"] == 3
    assert {"detect", "lift", "dik", "body"} <= set(summary["latency_ms"])
    assert sorted(p.name for p in (out / "frames").iterdir()) == [
        "000000.png", "000001.png", "000002.png"]
    assert (out / "overlay.mp4").stat().st_size > 0
    assert sorted(p.name for p in (out / "meshes").iterdir()) == ["000000_t1.ply", "000002_t1.ply"]
    data = np.load(out / "results" / "000001.npz")
    assert data["transl"].shape == (1, 3) and data["body_pose"].shape == (1, 23, 3)
    assert "vertices" not in data
    first = np.load(out / "results" / "000000.npz")
    assert np.linalg.norm(first["joints"][0, 0] - scene.joints[0]) < 0.02
    meta = json.loads((out / "results" / "000001.json").read_text())
    assert meta["frame"] == 1 and meta["persons"][0]["track_id"] == 1
    # the overlay differs from the plain frame where the body is
    from PIL import Image

    png = np.asarray(Image.open(out / "frames" / "000000.png"))
    u, v = scene.uv[11].astype(int)  # left hip pixel
    assert np.abs(png[v, u].astype(int) - 40).max() > 20


def test_run_cli_bad_input(tmp_path, capsys):
    from s2m_model.cli import main

    assert main(["run", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "o")]) == 2
    image = tmp_path / "x.png"
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    assert main(["run", str(image), "--out", str(tmp_path / "o"), "--camera", "1,2"]) == 2
    assert "fx,fy,cx,cy" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["run", str(tmp_path / "notes.txt"), "--out", str(tmp_path / "o")]) == 2


def test_run_cli_real_image(shared_data, tmp_path):
    from s2m_model.cli import main

    _real_lifter()
    out = tmp_path / "out"
    image = shared_data / "images" / "coco_000000000785.jpg"
    assert main(["run", str(image), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames_with_person"] == 1 and summary["kind"] == "image"
    assert (out / "frames" / "000000.png").is_file()
    assert (out / "meshes" / "000000_t0.ply").is_file()
