"""Ground-truth generator and shards: camera transform, projection, visibility, masks,
determinism, round trips and corrupt files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import roma
import torch

from s2m_model.camera import Camera, project_points
from s2m_model.data import generator as gen
from s2m_model.data import raster, shards, visibility
from s2m_model.data.mocap_fit import MocapFit
from s2m_model.skeletons import get_format

J = {n: i for i, n in enumerate(get_format("smpl24").joint_names)}
SMALL = gen.GeneratorConfig(chunk=4)


def tiny_pool(frames: int = 5, seed: int = 0) -> gen.PosePool:
    """Poses in a Y-up world without real mocap: a fitted clip standing at (0.5, 0.95, -2)."""
    g = np.random.default_rng(seed)
    pose = (0.3 * g.standard_normal((frames, 23, 3))).astype(np.float32)
    fit = MocapFit(
        name="synthetic/clip_001", betas=np.zeros(10, np.float32),
        global_orient=(g.standard_normal((frames, 3)) * [0.1, 1.5, 0.1]).astype(np.float32),
        body_pose=pose, transl=np.tile(np.float32([0.5, 0.95, -2.0]), (frames, 1)),
        frame_index=np.arange(0, 4 * frames, 4, dtype=np.int32),
        joint_error_mm=np.zeros(frames, np.float32), limb_error_mm=np.zeros(frames, np.float32),
        bone_error_deg=np.zeros(frames, np.float32), source_format="bandai27", fps=7.5,
        source_fps=30.0, subsample=4, source_frames=4 * frames,
        per_joint_error_mm=np.zeros(3, np.float32), mapped_joints=("a", "b", "c"),
    )  # fmt: skip
    return gen.PosePool.from_fits([fit])


@pytest.fixture(scope="module")
def body32():
    from s2m_model.body import load_body_model

    return load_body_model("s2m-free")


@pytest.fixture(scope="module")
def samples(body32):
    return gen.generate_samples(tiny_pool(), body32, 6, seed=3, shard_index=1, cfg=SMALL)


def test_camera_frame_transform_is_exact(body):
    """A body posed with camera-frame parameters equals the world body seen by the camera."""
    g = torch.Generator().manual_seed(1)
    b = 3
    dt = torch.float64
    betas = torch.randn(b, 10, generator=g, dtype=dt)
    orient = torch.randn(b, 3, generator=g, dtype=dt)
    pose = 0.3 * torch.randn(b, 23, 3, generator=g, dtype=dt)
    transl = torch.randn(b, 3, generator=g, dtype=dt)
    world = body(betas=betas, global_orient=orient, body_pose=pose, transl=transl)
    eye = np.array([[3.0, 1.5, 2.0], [-4.0, 0.6, 0.5], [0.2, 2.0, -5.0]])
    rot = gen.look_at_rotation(eye, world.joints[:, 0].numpy(), np.array([0.05, -0.08, 0.0]))
    np.testing.assert_allclose(rot @ rot.transpose(0, 2, 1), np.broadcast_to(np.eye(3), rot.shape),
                               atol=1e-12)  # fmt: skip
    assert np.allclose(np.linalg.det(rot), 1.0)
    rot_t, eye_t = torch.as_tensor(rot), torch.as_tensor(eye)
    go_c, t_c = gen.to_camera_frame(orient, transl, body.rest_joints(betas)[:, 0], rot_t, eye_t)
    cam = body(betas=betas, global_orient=go_c, body_pose=pose, transl=t_c)
    expected = (world.vertices - eye_t[:, None]) @ rot_t.transpose(1, 2)
    assert float((cam.vertices - expected).abs().max()) < 1e-6  # float64 round trips
    # Looking at the pelvis: it lies on the optical axis, in front of the camera.
    pelvis = cam.joints[:, 0]
    assert float(pelvis[:, :2].abs().max()) < 1e-9 and bool((pelvis[:, 2] > 0).all())


def test_look_at_conventions():
    """Camera at +Z looking at the origin: world +X is image right, world +Y is image up."""
    rot = gen.look_at_rotation(np.array([[0.0, 0.0, 5.0]]), np.zeros((1, 3)), np.zeros(1))[0]
    np.testing.assert_allclose(rot @ [1.0, 0, 0], [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(rot @ [0, 1.0, 0], [0, -1, 0], atol=1e-12)
    np.testing.assert_allclose(rot @ [0, 0, -1.0], [0, 0, 1], atol=1e-12)
    with pytest.raises(ValueError, match="straight up"):
        gen.look_at_rotation(np.array([[0.0, 5.0, 0.0]]), np.zeros((1, 3)), np.zeros(1))


def test_samples_are_consistent_with_the_body(body, samples):
    s = samples
    n = 6
    shards.check_arrays(s, SMALL.formats, SMALL.mask_size)
    params = {k: torch.tensor(s[k], dtype=torch.float64)
              for k in ("betas", "global_orient", "body_pose", "transl")}  # fmt: skip
    out = body(**params)
    assert float((out.joints - torch.tensor(s["joints3d_smpl24"])).abs().max()) < 1e-4
    for fmt in SMALL.formats[1:]:
        reg = body.regress(out.vertices, fmt)
        assert float((reg - torch.tensor(s[f"joints3d_{fmt}"])).abs().max()) < 1e-4, fmt
    for fmt in SMALL.formats:
        uv = project_points(s[f"joints3d_{fmt}"].astype(np.float64), s["camera"].astype(np.float64))
        np.testing.assert_allclose(s[f"keypoints2d_{fmt}"][..., :2], uv, atol=1e-3)
        assert set(np.unique(s[f"keypoints2d_{fmt}"][..., 2])) <= {0.0, 1.0}
    # Camera draws within the documented ranges; the pelvis sits at the image centre.
    fov = np.degrees(2 * np.arctan(320 / s["camera"][:, 0]))
    assert ((fov >= 45 - 1e-3) & (fov <= 75 + 1e-3)).all()
    assert (s["camera"][:, 0] == s["camera"][:, 1]).all()
    dist = np.linalg.norm(s["joints3d_smpl24"][:, 0], axis=-1)
    assert ((dist > 2.5 - 1e-3) & (dist < 6.0 + 1e-3)).all()
    np.testing.assert_allclose(s["keypoints2d_smpl24"][:, 0, :2], np.tile([320, 240], (n, 1)),
                               atol=1e-3)  # fmt: skip
    assert (np.abs(s["betas"]) <= 2.0).all()
    assert (s["image_size"] == [640, 480]).all() and (s["clip_id"] == 0).all()
    assert set(s["frame"]) <= set(range(0, 20, 4))


def test_determinism(body32, samples):
    again = gen.generate_samples(tiny_pool(), body32, 6, seed=3, shard_index=1, cfg=SMALL)
    assert samples.keys() == again.keys()
    for key in samples:  # same seed, shard and config -> identical bytes
        assert samples[key].tobytes() == again[key].tobytes(), key
    other = gen.generate_samples(tiny_pool(), body32, 6, seed=4, shard_index=1, cfg=SMALL)
    assert not np.array_equal(other["camera"], samples["camera"])
    shard0 = gen.generate_samples(tiny_pool(), body32, 6, seed=3, shard_index=0, cfg=SMALL)
    assert not np.array_equal(shard0["betas"], samples["betas"])


def test_mask_matches_the_reference_renderer(body32, samples):
    from s2m_model.body.render import render_silhouette
    from s2m_model.eval.metrics import silhouette_iou

    s = samples
    masks = shards.unpack_masks(s["mask"], SMALL.mask_size)
    assert masks.shape == (6, 120, 160) and masks.any(axis=(1, 2)).all()
    i = 2
    params = {k: torch.tensor(s[k][i : i + 1])
              for k in ("betas", "global_orient", "body_pose", "transl")}  # fmt: skip
    verts = body32(**params).vertices[0].double().numpy()
    # The stored mask is this rasteriser at mask size (pixel centres sampled) ...
    cam = Camera.coerce(s["camera"][i], 640, 480)
    depth, _ = raster.rasterize(verts, body32.faces, cam.scaled(160, 120))
    assert np.array_equal(np.isfinite(depth), masks[i])
    # ... which agrees with Pillow's polygon fill at full size (at mask size Pillow also fills
    # every pixel an edge touches, a dilation of ~1 px that costs thin limbs 20% IoU).
    full, _ = raster.rasterize(verts, body32.faces, cam)
    ref = render_silhouette(verts, body32.faces,
                            Camera(cam.fx, cam.fy, cam.cx - 0.5, cam.cy - 0.5, 640, 480))
    iou = float(silhouette_iou(torch.tensor(np.isfinite(full)), torch.tensor(ref)))
    assert iou > 0.93, iou


def _facing(body32, yaw_deg: float):
    """T-posed body 3 m in front of the camera; yaw 0 faces the camera."""
    flip = roma.rotvec_to_rotmat(torch.tensor([np.pi, 0.0, 0.0]))  # Y up -> y down, faces -z
    yaw = roma.rotvec_to_rotmat(torch.tensor([0.0, float(np.radians(yaw_deg)), 0.0]))
    orient = roma.rotmat_to_rotvec(flip @ yaw)[None].float()
    out = body32(global_orient=orient, transl=torch.tensor([[0.0, 0.0, 3.0]]))
    return out


@pytest.mark.parametrize("fmt", ["coco17", "h36m17"])
def test_visibility_front_and_back(body32, fmt):
    model = visibility.visibility_models(body32, [fmt])[fmt]
    names = get_format(fmt).joint_names
    nose = names.index("nose" if fmt == "coco17" else "Nose")
    camera = Camera(600.0, 600.0, 320.0, 240.0, 640, 480)
    vis = {}
    for yaw in (0.0, 180.0):
        out = _facing(body32, yaw)
        verts = out.vertices[0].double().numpy()
        pts = (out.joints if fmt == "smpl24" else body32.regress(out.vertices, fmt))[0]
        depth, label, _ = raster.depth_and_mask(verts, body32.faces, camera, (160, 120), 0.5,
                                                visibility.face_parts(body32))  # fmt: skip
        vis[yaw] = visibility.keypoint_visibility(pts.double().numpy(), camera, depth, label,
                                                  model)  # fmt: skip
    if fmt == "coco17":
        assert vis[0.0].all(), [n for n, v in zip(names, vis[0.0], strict=True) if not v]
        assert not vis[180.0][nose] and not vis[180.0][names.index("left_eye")]
        # Joints stay visible from behind (their own limb is not an occluder).
        for j in ("left_shoulder", "right_hip", "left_knee", "right_ankle"):
            assert vis[180.0][names.index(j)], j
    else:
        assert vis[0.0].all(), [n for n, v in zip(names, vis[0.0], strict=True) if not v]


def test_visibility_hidden_behind_the_torso_and_outside_the_image(body32):
    model = visibility.visibility_models(body32, ["smpl24"])["smpl24"]
    pose = torch.zeros(1, 23, 3)
    # Left arm swung behind the back (seen from the front, the torso hides the wrist).
    pose[0, J["left_shoulder"] - 1] = torch.tensor([0.0, 1.4, 0.0])
    pose[0, J["left_elbow"] - 1] = torch.tensor([0.0, 1.2, 0.0])
    flip = roma.rotvec_to_rotmat(torch.tensor([np.pi, 0.0, 0.0]))
    out = body32(global_orient=roma.rotmat_to_rotvec(flip)[None], body_pose=pose,
                 transl=torch.tensor([[0.0, 0.0, 3.0]]))  # fmt: skip
    wrist = out.joints[0, J["left_wrist"]]
    assert float(wrist[2]) > float(out.joints[0, J["spine3"], 2]) + 0.05  # behind the torso
    camera = Camera(600.0, 600.0, 320.0, 240.0, 640, 480)
    verts = out.vertices[0].double().numpy()
    depth, label, _ = raster.depth_and_mask(verts, body32.faces, camera, (160, 120), 0.5,
                                            visibility.face_parts(body32))  # fmt: skip
    pts = out.joints[0].double().numpy()
    vis = visibility.keypoint_visibility(pts, camera, depth, label, model)
    assert not vis[J["left_wrist"]]
    assert vis[J["right_wrist"]] and vis[J["pelvis"]]
    # The same skeleton shifted out of the image: nothing visible.
    shifted = pts + [10.0, 0.0, 0.0]
    assert not visibility.keypoint_visibility(shifted, camera, depth, label, model).any()


def test_rasterize_square():
    """Two triangles making a 1 m square at z = 2 m, 100 px focal: a 50x50 px square."""
    verts = np.array([[-0.5, -0.5, 2.0], [0.5, -0.5, 2.0], [0.5, 0.5, 2.0], [-0.5, 0.5, 2.0]])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    cam = Camera(100.0, 100.0, 50.0, 50.0, 100, 100)
    depth, label = raster.rasterize(verts, faces, cam, labels=np.array([3, 5]))
    hit = np.isfinite(depth)
    assert hit.sum() == 50 * 50 and hit[25:75, 25:75].all()
    np.testing.assert_allclose(depth[hit], 2.0, atol=1e-4)
    assert set(np.unique(label[hit])) == {3, 5} and (label[~hit] == -1).all()
    near = verts * [0.5, 0.5, 0.5] + [0.1, 0.0, 0.0]  # same size at z = 1 m, 20 px to the right
    both = np.concatenate([verts, near])
    d2, _ = raster.rasterize(both, np.concatenate([faces, faces + 4]), cam)
    assert d2[50, 80] == pytest.approx(1.0, abs=1e-4)  # the nearer square wins the z-buffer
    assert d2[50, 30] == pytest.approx(2.0, abs=1e-4)
    with pytest.raises(ValueError, match="Camera"):
        raster.rasterize(verts, faces, (100, 100, 50, 50))


def test_shard_round_trip(samples, tmp_path):
    folder = tmp_path / "ds"
    half = {k: v[:3] for k, v in samples.items()}
    rest = {k: v[3:] for k, v in samples.items()}
    shards.write_shard(folder / shards.shard_name(0), half)
    shards.write_shard(folder / shards.shard_name(1), rest)
    manifest = _manifest(["shard-00000.npz", "shard-00001.npz"], 6)
    shards.write_manifest(folder, manifest)
    back = shards.load_shards(folder)
    assert back.keys() == samples.keys()
    for k in samples:
        assert back[k].dtype == samples[k].dtype and np.array_equal(back[k], samples[k]), k
    masks = shards.unpack_masks(back["mask"], (160, 120))
    assert np.array_equal(shards.pack_masks(masks), back["mask"])
    assert shards.read_manifest(folder)["seed"] == 0


def _manifest(names, n):
    return {
        "generator": "s2m-data", "version": 1, "seed": 0, "split": "train", "num_samples": n,
        "shards": names, "formats": list(shards.FORMATS), "clips": ["synthetic/clip_001"],
        "image_size": [640, 480], "mask_size": [160, 120], "body": "s2m-free",
        "licence": "CC BY-NC 4.0", "source_licences": {"bandai": "CC BY-NC 4.0"},
    }  # fmt: skip


def test_corrupt_datasets_raise_clear_errors(samples, tmp_path):
    folder = tmp_path / "ds"
    path = shards.write_shard(folder / "shard-00000.npz", samples)
    shards.write_manifest(folder, _manifest(["shard-00000.npz"], 6))
    raw = path.read_bytes()

    path.write_bytes(raw[: len(raw) // 2])  # truncated
    with pytest.raises(ValueError, match="corrupt shard"):
        shards.load_shards(folder)
    path.unlink()
    with pytest.raises(ValueError, match="missing"):
        shards.load_shards(folder)
    np.savez(path, **{k: v for k, v in samples.items() if k != "mask"})
    with pytest.raises(ValueError, match="missing arrays.*mask"):
        shards.load_shards(folder)
    np.savez(path, **{**samples, "betas": samples["betas"][:, :5]})
    with pytest.raises(ValueError, match="'betas' must be"):
        shards.load_shards(folder)
    np.savez(path, **{**samples, "clip_id": samples["clip_id"] + 7})
    with pytest.raises(ValueError, match="clip_id"):
        shards.load_shards(folder)
    np.savez(path, **{**samples, "extra": np.array([object()], dtype=object)})
    with pytest.raises(ValueError, match="pickled"):
        shards.load_shards(folder)
    np.savez(path, **samples)
    shards.write_manifest(folder, _manifest(["shard-00000.npz"], 7))
    with pytest.raises(ValueError, match="num_samples"):
        shards.load_shards(folder)
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt JSON"):
        shards.load_shards(folder)
    (folder / "manifest.json").write_text(json.dumps({**_manifest([], 0), "generator": "x"}))
    with pytest.raises(ValueError, match="not an s2m dataset"):
        shards.read_manifest(folder)
    (folder / "manifest.json").write_text(json.dumps({**_manifest(["../evil.npz"], 0)}))
    with pytest.raises(ValueError, match="bad shard name"):
        shards.read_manifest(folder)
    (folder / "manifest.json").unlink()
    with pytest.raises(FileNotFoundError):
        shards.load_shards(folder)
    with pytest.raises(ValueError, match="NaN"):
        shards.write_shard(folder / "shard-00001.npz",
                           {**samples, "transl": samples["transl"] * np.nan})  # fmt: skip
    with pytest.raises(ValueError, match="packed masks"):
        shards.unpack_masks(samples["mask"], (100, 100))


def test_config_and_pool_validation():
    with pytest.raises(ValueError, match="fov"):
        gen.GeneratorConfig(fov_deg=(0.5, 75.0))
    with pytest.raises(ValueError, match="distance"):
        gen.GeneratorConfig(distance_m=(6.0, 2.5))
    with pytest.raises(ValueError, match="unknown skeleton format"):
        gen.GeneratorConfig(formats=("nope",))
    with pytest.raises(ValueError, match="no fitted frames"):
        gen.PosePool.from_fits([])


def test_build_and_cli(body32, shared_data, tmp_path, monkeypatch, capsys):
    from s2m_model.cli import main

    monkeypatch.setenv("S2M_CACHE_DIR", str(tmp_path / "cache"))  # fits go to a fresh cache
    out = tmp_path / "cmu"
    manifest = gen.build_dataset(out, "test-cmu", 5, seed=1, shared=shared_data, shard_size=3,
                                 refine_steps=2, cfg=SMALL, show_progress=False)  # fmt: skip
    assert manifest["shards"] == ["shard-00000.npz", "shard-00001.npz"]
    assert manifest["clips"] == ["cmu/131_01", "cmu/131_02", "cmu/131_03"]
    assert "CMU" in manifest["licence"] and manifest["seed"] == 1
    arrays = shards.load_shards(out)
    assert arrays["betas"].shape == (5, 10)
    # Rebuilding the same folder gives the same arrays.
    gen.build_dataset(out, "test-cmu", 5, seed=1, shared=shared_data, shard_size=3,
                      refine_steps=2, cfg=SMALL, show_progress=False)  # fmt: skip
    again = shards.load_shards(out)
    assert all(np.array_equal(arrays[k], again[k]) for k in arrays)
    assert main(["data", "info", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["num_samples"] == 5 and info["split"] == "test-cmu"
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not an s2m dataset"):
        gen.build_dataset(tmp_path / "foreign", "test-cmu", 2, shared=shared_data)
    with pytest.raises(ValueError, match="split"):
        gen.build_dataset(out, "nope", 2, shared=shared_data)
    assert main(["data", "info", str(tmp_path / "missing")]) == 2
