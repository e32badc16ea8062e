"""Detector-in-the-loop data engine: scenes, a tiny seeded build with the real MediaPipe
detector, the consistency of the stored arrays, determinism and resuming (issue 10, point 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from s2m_model.camera import Camera, project_points
from s2m_model.data import generator as gen
from s2m_model.data import scene, shards
from s2m_model.data.detector_build import BUILD_FILE, build_detector_dataset
from s2m_model.data.detector_loop import (
    DETECTOR_ARRAYS,
    STATUS_FOUND,
    LoopConfig,
    check_detector_arrays,
    clip_labels,
    detection_report,
)
from s2m_model.data.mocap_fit import MocapFit
from s2m_model.detect.mediapipe_pose import BLAZEPOSE_TO_COCO17
from s2m_model.smpl_layout import JOINT_INDEX

# Detectable on purpose (the consistency checks need detections): whole person in frame, no
# occluders, a moderate size. The full ranges are exercised by the scene tests below.
EASY = LoopConfig(truncate_prob=0.0, person_height_frac=(0.55, 0.9),
                  scene=scene.SceneConfig(occluder_prob=0.0))  # fmt: skip
N, SHARD, SEED = 6, 3, 3


@pytest.fixture(scope="module")
def body32():
    from s2m_model.body import load_body_model

    return load_body_model("s2m-free")


def standing_pool(body, frames: int = 8, seed: int = 0) -> gen.PosePool:
    """Mocap-like poses without real mocap: standing, arms lowered, small random joint angles,
    random heading, feet on the floor (y = 0)."""
    g = np.random.default_rng(seed)
    rest = body.rest_joints(torch.zeros(1, 10))[0]
    la, ra = JOINT_INDEX["left_ankle"], JOINT_INDEX["right_ankle"]
    leg = float(rest[0, 1] - 0.5 * (rest[la, 1] + rest[ra, 1]))
    pose = (0.12 * g.standard_normal((frames, 23, 3))).astype(np.float32)
    pose[:, JOINT_INDEX["left_shoulder"] - 1, 2] -= 1.1
    pose[:, JOINT_INDEX["right_shoulder"] - 1, 2] += 1.1
    transl = np.tile(np.float32([0.3, leg + 0.03 - float(rest[0, 1]), -1.0]), (frames, 1))
    fit = MocapFit(
        name="dataset-2/stand_calm_001", betas=np.zeros(10, np.float32),
        global_orient=(g.standard_normal((frames, 3)) * [0.05, 1.5, 0.05]).astype(np.float32),
        body_pose=pose, transl=transl, frame_index=np.arange(frames, dtype=np.int32),
        joint_error_mm=np.zeros(frames, np.float32), limb_error_mm=np.zeros(frames, np.float32),
        bone_error_deg=np.zeros(frames, np.float32), source_format="bandai27", fps=7.5,
        source_fps=30.0, subsample=4, source_frames=4 * frames,
        per_joint_error_mm=np.zeros(3, np.float32), mapped_joints=("a", "b", "c"),
    )  # fmt: skip
    return gen.PosePool.from_fits([fit])


@pytest.fixture(scope="module")
def tiny(body32, tmp_path_factory):
    out = tmp_path_factory.mktemp("dloop") / "train"
    manifest = build_detector_dataset(out, "train", N, seed=SEED, shard_size=SHARD,
                                      pool=standing_pool(body32), cfg=EASY,
                                      show_progress=False)  # fmt: skip
    return out, manifest, shards.load_shards(out)


# ------------------------------------------------------------------------------ the build


def test_tiny_build_layout_and_manifest(tiny):
    out, manifest, arrays = tiny
    assert shards.read_manifest(out)["num_samples"] == N
    assert manifest["shards"] == ["shard-00000.npz", "shard-00001.npz"]
    assert (out / BUILD_FILE).is_file()
    assert check_detector_arrays(arrays, manifest["mask_size"]) == N
    assert set(DETECTOR_ARRAYS) <= set(arrays)
    assert manifest["detector"]["name"] == "mediapipe"
    assert "Apache-2.0" in manifest["detector"]["licence"]
    assert "CC BY-NC 4.0" in manifest["licence"]
    assert set(manifest["source_licences"]) >= {"bandai", "cmu", "detector", "scenes"}
    rep = manifest["detection"]
    assert rep["num_samples"] == N and set(rep["by_content"]) == {"stand"}
    assert rep["by_style"]["calm"]["n"] == N
    assert manifest["throughput"]["samples_built"] == N
    assert manifest["throughput"]["detector_stats"]["frames"] == N


def test_ground_truth_is_exact(tiny, body32):
    _, _, a = tiny
    params = {k: torch.as_tensor(a[k]) for k in ("betas", "global_orient", "body_pose", "transl")}
    with torch.no_grad():
        res = body32(**params)
    np.testing.assert_allclose(res.joints.numpy(), a["joints3d_smpl24"], atol=1e-4)
    for fmt in shards.FORMATS:
        uv = project_points(a[f"joints3d_{fmt}"].astype(np.float64), a["camera"].astype(np.float64))
        np.testing.assert_allclose(a[f"keypoints2d_{fmt}"][..., :2], uv, atol=1e-3)
    # cameras: FOV 40-90 deg, principal point at the centre, above the floor, orthonormal
    fov = np.degrees(2 * np.arctan(0.5 * a["image_size"][:, 0] / a["camera"][:, 0]))
    assert ((fov >= 40) & (fov <= 90)).all()
    np.testing.assert_allclose(a["camera"][:, 2:], a["image_size"] / 2.0)
    height = a["camera_center_world"][:, 1]
    assert ((height > 0.3 - 1e-4) & (height < 2.6)).all()
    rot = a["world_to_camera"].astype(np.float64)
    np.testing.assert_allclose(rot @ rot.transpose(0, 2, 1), np.broadcast_to(np.eye(3), rot.shape),
                               atol=1e-5)  # fmt: skip
    # joints in the camera frame = world_to_camera (world point - camera centre): the feet are
    # on the floor (world y ~ 0) and the pelvis ~ leg length above it
    world = np.einsum("nji,nkj->nki", rot, a["joints3d_smpl24"]) + a["camera_center_world"][:, None]
    feet = world[:, [JOINT_INDEX["left_ankle"], JOINT_INDEX["right_ankle"]], 1].min(1)
    assert (np.abs(feet) < 0.25).all() and (world[:, 0, 1] > 0.6).all()


def test_detector_agrees_with_the_ground_truth(tiny):
    """Where MediaPipe finds the person, its landmarks lie on the GT blazepose33 projections
    (median < 10 % of the person's height), its mask overlaps the GT silhouette and its world
    landmarks are hip-centred metres with y down."""
    _, manifest, a = tiny
    found = a["det_status"] == STATUS_FOUND
    assert (a["det_detected"].astype(bool) == found).all()
    assert found.sum() >= N - 1  # measured: 6 of 6 for this seed
    gt = a["keypoints2d_blazepose33"]
    height = gt[..., 1].max(1) - gt[..., 1].min(1)
    mask_gt = shards.unpack_masks(a["mask"], manifest["mask_size"])
    for k in np.flatnonzero(found):
        vis = gt[k, :, 2] > 0.5
        err = np.linalg.norm(a["det_landmarks"][k, vis, :2] - gt[k, vis, :2], axis=1)
        assert np.median(err) < 0.1 * height[k], (k, np.median(err), height[k])
        det_mask = a["det_mask"][k] >= 128
        iou = (det_mask & mask_gt[k]).sum() / max((det_mask | mask_gt[k]).sum(), 1)
        assert iou > 0.5, (k, iou)
        world = a["det_world"][k]
        assert np.linalg.norm(world[[23, 24]].mean(0)) < 0.05  # hip midpoint at the origin
        assert world[0, 1] < world[[27, 28], 1].min() - 0.5  # nose above the ankles (y down)
        coco = a["det_landmarks"][k][list(BLAZEPOSE_TO_COCO17)][:, [0, 1, 3]]
        np.testing.assert_allclose(a["det_keypoints2d_coco17"][k], coco, atol=1e-4)
    # what was stored for the report is what the arrays say
    assert manifest["detection"]["overall"]["detected"] == round(float(found.mean()), 3)
    assert manifest["detection"]["median_error_px"] < 15


def test_resume_skips_finished_shards_and_is_deterministic(tiny, body32):
    out, _, first = tiny
    (out / "shard-00001.npz").unlink()
    (out / shards.MANIFEST).unlink()
    before = (out / "shard-00000.npz").stat().st_mtime_ns
    manifest = build_detector_dataset(out, "train", N, seed=SEED, shard_size=SHARD,
                                      pool=standing_pool(body32), cfg=EASY,
                                      show_progress=False)  # fmt: skip
    assert manifest["throughput"]["samples_built"] == SHARD  # only the missing shard
    assert (out / "shard-00000.npz").stat().st_mtime_ns == before
    again = shards.load_shards(out)
    for key in first:
        np.testing.assert_array_equal(again[key], first[key], err_msg=key)
    with pytest.raises(ValueError, match="another detector-loop build.*seed"):
        build_detector_dataset(out, "train", N, seed=SEED + 1, shard_size=SHARD,
                               pool=standing_pool(body32), cfg=EASY)  # fmt: skip
    spec = json.loads((out / BUILD_FILE).read_text())
    assert spec["seed"] == SEED and spec["num_samples"] == N


def test_refuses_foreign_folders(tmp_path, body32):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        build_detector_dataset(tmp_path, "train", 2, pool=standing_pool(body32))
    with pytest.raises(ValueError, match="split"):
        build_detector_dataset(tmp_path / "x", "bogus", 2, pool=standing_pool(body32))
    with pytest.raises(ValueError, match="detector"):
        build_detector_dataset(tmp_path / "x", "train", 2, detector="openpose",
                               pool=standing_pool(body32))  # fmt: skip


def test_cli_has_the_detector_option():
    import argparse

    from s2m_model.data import cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["data", "build", "--out", "x", "--split", "val", "--n", "3",
                              "--detector", "mediapipe"])  # fmt: skip
    assert args.detector == "mediapipe"
    assert parser.parse_args(["data", "build", "--out", "x", "--split", "val", "--n", "3"]
                             ).detector == "none"  # fmt: skip


# ------------------------------------------------------------------------------ sampling


def test_full_ranges_truncate_and_occlude(body32):
    """The default ranges put people partly out of frame and behind occluders, and the
    ground-truth visibility says so (no detector needed: a stub that finds nobody)."""
    from s2m_model.data.detector_loop import DetectorLoop

    class Nobody:
        def detect(self, image):
            assert image.dtype == np.uint8 and image.shape == (480, 640, 3)
            return []

        def close(self):
            pass

    cfg = LoopConfig(truncate_prob=1.0, scene=scene.SceneConfig(occluder_prob=1.0))
    loop = DetectorLoop(body32, cfg, detector=Nobody())
    a = loop.generate(standing_pool(body32), 6, seed=1)
    assert (a["det_status"] == 1).all() and not a["det_landmarks"].any()
    assert (a["scene_truncated"] > 0.1).sum() >= 3
    assert (a["scene_occluded"] > 0.02).sum() >= 4
    vis = a["keypoints2d_blazepose33"][..., 2]
    inside = ((a["keypoints2d_blazepose33"][..., :2] >= 0) &
              (a["keypoints2d_blazepose33"][..., :2] < [640, 480])).all(-1)  # fmt: skip
    assert not (vis.astype(bool) & ~inside).any()  # outside the image -> not visible
    # occluders hide keypoints: fewer are visible than without them
    plain = DetectorLoop(body32, LoopConfig(truncate_prob=1.0), detector=Nobody())
    b = plain.generate(standing_pool(body32), 6, seed=1)
    np.testing.assert_array_equal(a["joints3d_h36m17"], b["joints3d_h36m17"])  # same people
    assert vis.sum() < b["keypoints2d_blazepose33"][..., 2].sum()


def test_clip_labels():
    assert clip_labels("dataset-1/walk_normal_001") == ("walk", "normal")
    assert clip_labels("dataset-2/wave-right-hand_youthful_022") == ("wave-right-hand", "youthful")
    assert clip_labels("cmu/131_03") == ("hop", "cmu")
    assert clip_labels("odd") == ("odd", "?")


def test_pose_weights_balance_pose_types(body32):
    from s2m_model.data.detector_loop import pose_weights

    a, b = standing_pool(body32, frames=2), standing_pool(body32, frames=6)
    fits = [MocapFit(**{**vars(_fit_of(p)), "name": name})
            for p, name in ((a, "dataset-1/kick_angry_001"), (b, "dataset-2/walk_normal_001"))]
    pool = gen.PosePool.from_fits(fits)
    w = pose_weights(pool, "content")
    assert np.isclose(w.sum(), 1) and np.isclose(w[pool.clip_id == 0].sum(), 0.5)
    np.testing.assert_allclose(pose_weights(pool, "frame"), np.full(8, 1 / 8))
    with pytest.raises(ValueError, match="pose_balance"):
        LoopConfig(pose_balance="clip")


def _fit_of(pool: gen.PosePool) -> MocapFit:
    n = len(pool)
    zeros = np.zeros(n, np.float32)
    return MocapFit(
        name=pool.clips[0], betas=pool.betas[0], global_orient=pool.global_orient,
        body_pose=pool.body_pose, transl=pool.transl, frame_index=pool.frame,
        joint_error_mm=zeros, limb_error_mm=zeros, bone_error_deg=zeros, source_format="bandai27",
        fps=7.5, source_fps=30.0, subsample=4, source_frames=4 * n,
        per_joint_error_mm=np.zeros(3, np.float32), mapped_joints=("a", "b", "c"),
    )  # fmt: skip


def test_detection_report_groups():
    n = 4
    gt = np.zeros((n, 33, 3), np.float32)
    gt[..., 1] = np.linspace(0, 100, 33)
    gt[..., 2] = 1
    det = np.zeros((n, 33, 4), np.float32)
    det[..., :2] = gt[..., :2]
    det[1, :, 0] += 30  # 30 px off on a 100 px person: detected but not correct
    arrays = {
        "keypoints2d_blazepose33": gt, "det_landmarks": det,
        "det_detected": np.array([1, 1, 0, 1], np.uint8),
        "det_status": np.array([0, 0, 1, 0], np.uint8),
        "clip_id": np.array([0, 0, 1, 1], np.int32),
        "scene_background": np.array([0, 1, 1, 5], np.int32),
        "scene_truncated": np.array([0, 0.1, 0.5, 0], np.float32),
        "scene_occluded": np.array([0, 0, 0, 0.4], np.float32),
    }  # fmt: skip
    rep = detection_report(arrays, ["dataset-1/walk_normal_001", "dataset-1/kick_angry_002"])
    assert rep["overall"] == {"n": 4, "detected": 0.75, "correct": 0.5}
    assert rep["by_content"]["walk"] == {"n": 2, "detected": 1.0, "correct": 0.5}
    assert rep["by_style"]["angry"] == {"n": 2, "detected": 0.5, "correct": 0.5}
    assert rep["by_background"]["floor"]["n"] == 1 and rep["by_truncation"][">25%"]["detected"] == 0
    assert rep["by_occlusion"][">30%"] == {"n": 1, "detected": 1.0, "correct": 1.0}


# ------------------------------------------------------------------------------ scenes


def test_depth_normals_of_a_plane():
    cam = Camera.from_fov(64, 48, 60)
    x, y = np.meshgrid(np.arange(64) + 0.5, np.arange(48) + 0.5)
    # plane z = 2 + 0.5 x_cam (tilted about the camera's y axis): normal ~ (0.5, 0, -1)
    ray_x = (x - cam.cx) / cam.fx
    depth = 2.0 / (1.0 - 0.5 * ray_x)
    depth[:, :10] = np.inf  # an empty border: one-sided differences there
    n = scene.depth_normals(depth, cam)
    expect = np.array([0.5, 0.0, -1.0]) / np.linalg.norm([0.5, 0.0, -1.0])
    np.testing.assert_allclose(n[:, 11:], np.broadcast_to(expect, n[:, 11:].shape), atol=1e-3)


def test_backgrounds_are_seeded_and_valid():
    cam = Camera.from_fov(96, 64, 70)
    rot = gen.look_at_rotation(np.array([[0.0, 1.5, 4.0]]), np.array([[0.0, 0.9, 0.0]]),
                               np.zeros(1))[0]  # fmt: skip
    seen = set()
    for seed in range(24):
        img, kind = scene.make_background(np.random.default_rng(seed), 96, 64, camera=cam,
                                          rot_cw=rot, eye=np.array([0.0, 1.5, 4.0]))  # fmt: skip
        again, _ = scene.make_background(np.random.default_rng(seed), 96, 64, camera=cam,
                                         rot_cw=rot, eye=np.array([0.0, 1.5, 4.0]))  # fmt: skip
        np.testing.assert_array_equal(img, again)
        assert img.shape == (64, 96, 3) and img.dtype == np.float32
        assert 0 <= img.min() and img.max() <= 1 and img.std() > 0.005
        seen.add(scene.BACKGROUNDS[kind])
    assert seen == set(scene.BACKGROUNDS)


def test_body_render_colours_light_and_hair(body32):
    from s2m_model.data.visibility import face_parts

    labels = scene.face_labels(body32, face_parts(body32))
    hair = labels == scene.HAIR_LABEL
    assert 100 < hair.sum() < 3000  # the scalp only
    assert set(np.unique(face_parts(body32)[hair])) == {JOINT_INDEX["head"]}
    cam = Camera.from_fov(160, 200, 50)
    facing = {"global_orient": torch.tensor([[np.pi, 0.0, 0.0]]),
              "transl": torch.tensor([[0.0, 0.0, 2.5]])}  # fmt: skip
    with torch.no_grad():
        verts = body32(**facing).vertices[0].double().numpy()
    rng = np.random.default_rng(0)
    look = scene.sample_appearance(rng)
    bg = np.zeros((200, 160, 3), np.float32)
    front = scene.Light(np.array([0.0, 0.0, -1.0]), 0.2, np.ones(3, np.float32), 1.0)
    side = scene.Light(np.array([1.0, 0.0, 0.0]), 0.2, np.ones(3, np.float32), 1.0)
    a = scene.render_body(verts, body32.faces, labels, cam, look, front, bg)
    b = scene.render_body(verts, body32.faces, labels, cam, look, side, bg)
    assert a.covered.mean() > 0.03 and (a.image[~a.covered] == 0).all()
    assert a.image[a.covered].mean() > 1.5 * b.image[b.covered].mean()  # lit from the front
    assert set(np.unique(a.part[a.covered])) <= set(range(24))
    with pytest.raises(ValueError, match="background"):
        scene.render_body(verts, body32.faces, labels, cam, look, front, bg[:10])


def test_occluders_and_finish():
    rng = np.random.default_rng(4)
    img = np.full((120, 160, 3), 0.5, np.float32)
    mask = scene.draw_occluders(rng, img, np.array([40, 20, 100, 110]),
                                scene.SceneConfig(occluder_prob=1.0))  # fmt: skip
    assert mask.any() and (img[mask] != 0.5).any() and (img[~mask] == 0.5).all()
    none = scene.draw_occluders(rng, img.copy(), np.array([40, 20, 100, 110]),
                                scene.SceneConfig(occluder_prob=0.0))  # fmt: skip
    assert not none.any()
    out = scene.finish_image(np.random.default_rng(1), img)
    assert out.dtype == np.uint8 and out.shape == (120, 160, 3)
    np.testing.assert_array_equal(out, scene.finish_image(np.random.default_rng(1), img))


def test_configs_reject_bad_values():
    with pytest.raises(ValueError, match="backgrounds"):
        scene.SceneConfig(backgrounds=("photo",))
    with pytest.raises(ValueError, match="occluder_prob"):
        scene.SceneConfig(occluder_prob=1.5)
    with pytest.raises(ValueError, match="fov_deg"):
        LoopConfig(fov_deg=(40.0, 200.0))
    with pytest.raises(ValueError, match="blazepose33"):
        LoopConfig(formats=("smpl24",))
    with pytest.raises(ValueError, match="camera_height_m"):
        LoopConfig(camera_height_m=(0.0, 1.0))
