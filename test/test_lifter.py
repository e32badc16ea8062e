"""The 2D -> 3D lifter: normalisation, model, training steps, checkpoints, shipped weights, ONNX."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import roma
import torch

from s2m_model.lifter import (
    DEFAULT_CHECKPOINT,
    Lifter,
    LifterConfig,
    load_lifter,
    normalise_keypoints,
    save_checkpoint,
)
from s2m_model.lifter.losses import hip_centred, knee_bend_penalty, project
from s2m_model.lifter.model import example_input, rotation_to_optical_axis
from s2m_model.lifter.samples import make_inputs, mirror, prepare
from s2m_model.lifter.synthetic import synthetic_samples
from s2m_model.lifter.train import TrainConfig, evaluate, train_lifter

# MPJPE / PA-MPJPE (mm) of the shipped default on the `synth_val` set below (GT 2D + camera),
# measured at 140.7 / 112.4 mm (these random poses and off-centre people are harder than the
# mocap val shards: 41.6 / 28.1 mm); the bounds leave ~10% for BLAS/platform differences.
DEFAULT_MPJPE_BOUND_MM = 155.0
DEFAULT_PA_MPJPE_BOUND_MM = 124.0
BONE_SUM = 4.0  # metres; the mean-skeleton value is not needed for these small checks


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny matrices: one thread avoids oversubscription on a shared CPU (restored after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def synth_train(body):
    """256 synthetic samples (random plausible poses + cameras) in the shard layout."""
    return synthetic_samples(body, 256, seed=11)


@pytest.fixture(scope="module")
def synth_val(body):
    return synthetic_samples(body, 200, seed=12)


def _keypoints(arrays, n=None):
    kp = torch.as_tensor(arrays["keypoints2d_coco17"][:n]).clone()
    kp[..., 2] = 1.0
    return kp


# ----------------------------------------------------------------------------- normalisation
def test_normalisation_invariant_to_2d_translation_and_scale():
    g = torch.Generator().manual_seed(0)
    kp = torch.cat([200 + 80 * torch.rand(6, 17, 2, generator=g),
                    0.5 + 0.5 * torch.rand(6, 17, 1, generator=g)], -1)
    x = normalise_keypoints(kp).x
    moved = kp.clone()
    moved[..., :2] = 3.7 * kp[..., :2] + torch.tensor([-55.0, 910.0])
    torch.testing.assert_close(normalise_keypoints(moved).x, x, atol=1e-5, rtol=0)
    # A non-uniform stretch is a different pose: the check above can fail.
    stretched = kp.clone()
    stretched[..., 0] *= 2.0
    assert (normalise_keypoints(stretched).x - x).abs().max() > 0.1
    # Same for the full lift (no camera): the metric 3D output depends on 2D shape only.
    lifter = Lifter().eval()
    torch.testing.assert_close(lifter.lift(moved), lifter.lift(kp), atol=1e-5, rtol=0)


def test_normalisation_rescaled_image_with_camera_is_invariant():
    g = torch.Generator().manual_seed(1)
    kp = torch.cat([250 + 100 * torch.rand(4, 17, 2, generator=g), torch.ones(4, 17, 1)], -1)
    cam = torch.tensor([[600.0, 600.0, 320.0, 240.0]]).expand(4, 4)
    x = normalise_keypoints(kp, cam).x
    # The same view at twice the resolution: pixels and intrinsics scale together.
    kp2 = kp.clone()
    kp2[..., :2] *= 2
    torch.testing.assert_close(normalise_keypoints(kp2, 2 * cam).x, x, atol=1e-5, rtol=0)


def test_normalised_input_layout_and_missing_joints():
    kp = torch.as_tensor(example_input(1).reshape(1, 17, 3)) * 50 + 300
    kp[..., 2] = 0.9
    kp[0, 9, 2] = 0.05  # left wrist below min_confidence -> missing
    norm = normalise_keypoints(kp, min_confidence=0.1)
    x = norm.x.reshape(1, 17, 3)
    assert norm.x.shape == (1, 51)
    assert torch.equal(x[0, 9], torch.zeros(3))
    assert not norm.valid[0, 9] and norm.valid[0, 8]
    # hip midpoint at the origin, mean distance of valid joints to it = 1
    torch.testing.assert_close(x[0, 11:13, :2].mean(0), torch.zeros(2), atol=1e-6, rtol=0)
    d = x[0, :, :2].norm(dim=-1)[norm.valid[0]]
    assert d.mean().item() == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(x[0, norm.valid[0], 2], torch.full((16,), 0.9))


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.zeros(2, 16, 3), "must be"),
        (torch.full((2, 17, 3), float("nan")), "NaN"),
        ("not an array", "torch tensor or numpy"),
    ],
)
def test_bad_keypoints_raise(bad, match):
    with pytest.raises(ValueError, match=match):
        normalise_keypoints(bad)


def test_unliftable_samples_raise_and_usable_flags_them():
    lifter = Lifter().eval()
    kp = torch.as_tensor(example_input(3).reshape(3, 17, 3)) * 40 + 200
    kp[..., 2] = 1.0
    kp[1, 11:13, 2] = 0.0  # no hip
    kp[2, :13, 2] = 0.0  # only 4 keypoints left
    assert lifter.usable(kp).tolist() == [True, False, False]
    with pytest.raises(ValueError, match=r"samples \[1, 2\]"):
        lifter.lift(kp)
    out = lifter.lift(kp[:1])
    assert out.shape == (1, 17, 3) and torch.isfinite(out).all()
    bad_conf = kp[:1].clone()
    bad_conf[0, 0, 2] = 1.5
    with pytest.raises(ValueError, match="confidences"):
        lifter.lift(bad_conf)
    with pytest.raises(ValueError, match="focal"):
        lifter.lift(kp[:1], camera=torch.tensor([0.0, 500.0, 320.0, 240.0]))


def test_virtual_camera_rotation_maps_root_ray_to_axis():
    g = torch.Generator().manual_seed(2)
    rays = torch.cat([torch.randn(8, 2, generator=g) * 0.5, torch.ones(8, 1)], -1)
    rays = torch.cat([rays, torch.tensor([[0.0, 0.0, 1.0]])])  # the on-axis case
    rot = rotation_to_optical_axis(rays)
    z = (rot @ (rays / rays.norm(dim=-1, keepdim=True))[..., None])[..., 0]
    torch.testing.assert_close(z, torch.tensor([0.0, 0.0, 1.0]).expand_as(z), atol=1e-6, rtol=0)
    assert roma.is_rotation_matrix(rot, epsilon=1e-5)


def test_lift_with_camera_is_equivariant_to_camera_tilt(synth_val):
    """Tilting the camera (rotation about its x axis) about a person whose hips straddle the
    optical axis rotates the lifted skeleton by exactly that tilt; without intrinsics it
    cannot."""
    lifter = Lifter(LifterConfig(hidden=64, blocks=1)).eval()
    j = torch.as_tensor(synth_val["joints3d_coco17"][:4], dtype=torch.float64)
    j = j - j[:, 11:13].mean(1, keepdim=True)
    # Turn each pose so its hips lie on the x axis (hip line -> +z -> +x): then the hips'
    # mean viewing ray is the optical axis before and after the tilt.
    to_z = rotation_to_optical_axis((j[:, 12] - j[:, 11]).float()).double()
    z_to_x = roma.rotvec_to_rotmat(torch.tensor([0.0, math.pi / 2, 0.0], dtype=torch.float64))
    j = j @ (z_to_x @ to_z).mT + torch.tensor([0.0, 0.0, 4.0], dtype=torch.float64)
    assert torch.allclose(j[:, 11:13, 1:], torch.tensor([0.0, 4.0], dtype=torch.float64),
                          atol=1e-6)
    q = roma.rotvec_to_rotmat(torch.tensor([0.35, 0.0, 0.0], dtype=torch.float64))
    cam = torch.tensor([500.0, 500.0, 320.0, 240.0])

    def kp_of(points):
        uv = 500.0 * points[..., :2] / points[..., 2:] + torch.tensor([320.0, 240.0],
                                                                      dtype=torch.float64)
        return torch.cat([uv, torch.ones_like(uv[..., :1])], -1).float()

    out = lifter.lift(kp_of(j), cam)
    out_tilted = lifter.lift(kp_of(j @ q.mT), cam)
    torch.testing.assert_close(out_tilted, out @ q.float().mT, atol=2e-5, rtol=0)
    no_cam = lifter.lift(kp_of(j @ q.mT))
    assert (no_cam - out @ q.float().mT).abs().max() > 1e-3


# -------------------------------------------------------------------------------------- model
def test_shapes_and_root():
    lifter = Lifter().eval()
    x = example_input(5)
    assert lifter(x).shape == (5, 51)
    raw = lifter.predict(x)
    assert raw.shape == (5, 34, 3)
    assert torch.equal(raw[:, 0], torch.zeros(5, 3))
    kp = np.asarray(example_input(3).reshape(3, 17, 3)) * 30 + 100
    kp[..., 2] = 1.0
    out = lifter.lift(kp, camera=np.array([500.0, 500.0, 320.0, 240.0], dtype=np.float32))
    assert out.shape == (3, 17, 3) and out.dtype == torch.float32
    assert torch.equal(out[:, 0], torch.zeros(3, 3))
    assert lifter.lift(np.zeros((0, 17, 3))).shape == (0, 17, 3)
    assert lifter.input_format == "coco17" and lifter.output_format == "h36m17"


def test_unsupervised_output_has_mean_skeleton_bone_sum():
    lifter = Lifter(LifterConfig(mode="unsupervised", mean_bone_sum=3.9)).eval()
    out = lifter(example_input(4)).reshape(4, 17, 3)
    torch.testing.assert_close(lifter.bone_sum(out), torch.full((4,), 3.9), atol=1e-4, rtol=0)


def test_bad_config_raises():
    with pytest.raises(ValueError, match="mode"):
        LifterConfig(mode="semi")
    with pytest.raises(ValueError, match="unknown lifter config keys"):
        LifterConfig.from_dict({"hidden": 8, "colour": "red"})


# ----------------------------------------------------------------------------------- training
def test_prepared_targets_project_onto_the_2d_keypoints(synth_train):
    data = prepare(synth_train)
    j = data.j3d_h36m.double()
    # The pelvis in the virtual camera: on its viewing ray, at its distance from the camera.
    dist = torch.as_tensor(synth_train["joints3d_h36m17"][:, 0]).double().norm(dim=-1)
    pelvis_xy = data.xy_h36m[:, 0].double()
    depth = dist / (1 + pelvis_xy.square().sum(-1)).sqrt()
    pts = j + torch.cat([pelvis_xy * depth[:, None], depth[:, None]], -1)[:, None]
    torch.testing.assert_close(pts[..., :2] / pts[..., 2:], data.xy_h36m.double(), atol=1e-5,
                               rtol=0)
    # The mirrored sample is mirrored in 2D and 3D alike (projection still matches).
    m = mirror(data, torch.ones(len(data), dtype=torch.bool))
    depth_m = dist / (1 + m.xy_h36m[:, 0].double().square().sum(-1)).sqrt()
    pts_m = m.j3d_h36m.double() + torch.cat(
        [m.xy_h36m[:, :1].double() * depth_m[:, None, None], depth_m[:, None, None]], -1)
    torch.testing.assert_close(pts_m[..., :2] / pts_m[..., 2:], m.xy_h36m.double(), atol=1e-5,
                               rtol=0)


def test_projection_at_the_implied_depth_matches_virtual_camera(synth_train):
    """The unsupervised loss projects 2D-size-unit poses with the pelvis at depth 1/scale;
    true poses in those units must reproject onto the normalised 2D (small residual: the
    pelvis is a little off the hips' ray)."""
    data = prepare(synth_train)
    inp = make_inputs(data.xy_coco, 0.0, 0.0, None)
    assert inp.valid.all()
    y = torch.cat([data.j3d_h36m, data.j3d_coco], 1)
    dist = torch.as_tensor(synth_train["joints3d_h36m17"][:, 0]).norm(dim=-1)
    depth = dist / (1 + data.xy_h36m[:, 0].square().sum(-1)).sqrt()
    y_units = y / (depth * inp.scale)[:, None, None]
    target = (torch.cat([data.xy_h36m, data.xy_coco], 1) - inp.root[:, None]) / inp.scale[
        :, None, None]

    def err(factor):
        p = project(y_units, factor / inp.scale)
        return (hip_centred(p, 17) - hip_centred(target, 17)).norm(dim=-1).mean().item()

    assert err(1.0) < 0.004
    assert err(0.5) > 0.01 and err(2.0) > 0.01


def test_knee_bend_prior_rejects_the_depth_mirror(synth_train):
    j = torch.as_tensor(synth_train["joints3d_h36m17"])
    j = j - j[:, :1]
    assert knee_bend_penalty(j).item() < 0.01
    mirrored = j * torch.tensor([1.0, 1.0, -1.0])  # same 2D (weak perspective), knees forward
    assert knee_bend_penalty(mirrored).item() > 0.1


@pytest.mark.parametrize("mode", ["supervised", "unsupervised"])
def test_few_training_steps_reduce_the_loss(synth_train, synth_val, mode):
    cfg = TrainConfig(mode=mode, epochs=10, batch=64, hidden=128, blocks=1, lr=2e-3,
                      eval_every=10)
    lifter, report = train_lifter(cfg, synth_train, synth_val, progress=False, bone_sum=BONE_SUM)
    hist = report["history"]
    key = "mpjpe_m" if mode == "supervised" else "reproj"
    assert hist[-1][key] < 0.7 * hist[0][key], [r[key] for r in hist]
    assert math.isfinite(hist[-1]["loss"])
    assert not lifter.training
    val = report["val"]["gt2d_camera"]
    assert 0 < val["pa_mpjpe_mm"] <= val["mpjpe_mm"] + 1e-3


def test_cli_trains_from_shard_folder(tmp_path, synth_train, synth_val, capsys):
    from s2m_model.cli import main
    from s2m_model.data.shards import write_manifest, write_shard

    def write(folder, arrays, split):
        n = len(arrays["camera"])
        full = {
            "betas": np.zeros((n, 10), np.float32), "global_orient": np.zeros((n, 3), np.float32),
            "body_pose": np.zeros((n, 23, 3), np.float32), "transl": np.zeros((n, 3), np.float32),
            "mask": np.zeros((n, 2400), np.uint8), "clip_id": np.zeros(n, np.int32),
            "frame": np.arange(n, dtype=np.int32), **arrays,
        }  # fmt: skip
        write_shard(folder / "shard-00000.npz", full, formats=("h36m17", "coco17"))
        write_manifest(folder, {
            "generator": "s2m-data", "version": 1, "seed": 0, "split": split, "num_samples": n,
            "shards": ["shard-00000.npz"], "formats": ["h36m17", "coco17"], "clips": ["synth"],
            "image_size": [640, 480], "mask_size": [160, 120], "body": "s2m-free",
            "licence": "test", "source_licences": {},
        })  # fmt: skip

    write(tmp_path / "train", synth_train, "train")
    write(tmp_path / "val", {k: v[:50] for k, v in synth_val.items()}, "val")
    out = tmp_path / "out"
    rc = main(["train", "lifter", "--data", str(tmp_path / "train"), "--val",
               str(tmp_path / "val"), "--epochs", "2", "--batch", "64", "--hidden", "32",
               "--blocks", "1", "--out", str(out), "--no-progress", "--threads", "1"])
    assert rc == 0
    stdout = capsys.readouterr().out
    summary = json.loads(stdout[stdout.index("{\n"):])
    assert summary["train_samples"] == 256
    report = json.loads((out / "report.json").read_text())
    assert set(report["val"]) == {"gt2d_camera", "gt2d_no_camera", "noise5px_camera",
                                 "visible_only_camera"}
    assert (out / "curve.png").stat().st_size > 0
    assert load_lifter(out / "lifter.pt").config.hidden == 32
    # a bad folder is a clean CLI error (exit code 2), not a traceback
    assert main(["train", "lifter", "--data", str(tmp_path / "nope"), "--out", str(out)]) == 2


def test_detector_keypoints_replace_the_projections_on_detected_samples(synth_train):
    from s2m_model.lifter.samples import with_detector_keypoints

    n = len(synth_train["camera"])
    det = synth_train["keypoints2d_coco17"] + np.float32([3.0, -2.0, 0.0])
    detected = (np.arange(n) % 4 != 0).astype(np.uint8)  # every 4th sample: nobody found
    arrays = {**synth_train, "det_keypoints2d_coco17": det, "det_detected": detected}
    out = with_detector_keypoints(arrays)
    keep = detected > 0
    assert len(out["camera"]) == keep.sum()
    np.testing.assert_array_equal(out["keypoints2d_coco17"], det[keep])
    np.testing.assert_array_equal(out["joints3d_h36m17"], synth_train["joints3d_h36m17"][keep])
    with pytest.raises(ValueError, match="--detector"):
        with_detector_keypoints(synth_train)
    with pytest.raises(ValueError, match="found nobody"):
        with_detector_keypoints({**arrays, "det_detected": np.zeros(n, np.uint8)})


def test_init_fine_tunes_from_a_checkpoint(tmp_path, synth_train):
    cfg = TrainConfig(epochs=1, batch=64, hidden=32, blocks=1, lr=1e-9)
    first, _ = train_lifter(cfg, synth_train, progress=False, bone_sum=BONE_SUM, max_steps=2)
    save_checkpoint(first, tmp_path / "a.pt")
    # a near-zero learning rate: the fine-tuned weights stay the checkpoint's, not a fresh init
    tuned, _ = train_lifter(replace(cfg, init=str(tmp_path / "a.pt"), seed=5), synth_train,
                            progress=False, bone_sum=BONE_SUM, max_steps=1)
    for (name, a), b in zip(first.state_dict().items(), tuned.state_dict().values(), strict=True):
        if a.is_floating_point() and "running" not in name:
            assert torch.allclose(a, b, atol=1e-5), name
    with pytest.raises(ValueError, match="hidden"):
        train_lifter(replace(cfg, hidden=64, init=str(tmp_path / "a.pt")), synth_train,
                     progress=False, bone_sum=BONE_SUM, max_steps=1)


# -------------------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip_weights_only(tmp_path):
    lifter = Lifter(LifterConfig(hidden=64, blocks=1, mode="unsupervised", mean_bone_sum=4.1))
    with torch.no_grad():
        for p in lifter.parameters():
            p.add_(0.01 * torch.randn_like(p))
    lifter.eval()
    path = save_checkpoint(lifter, tmp_path / "l.pt", extra={"note": "x"})
    raw = torch.load(path, weights_only=True)
    assert raw["kind"] == "s2m-lifter" and raw["config"]["mean_bone_sum"] == 4.1
    json.dumps(raw["config"])  # the config is plain JSON
    loaded = load_lifter(path)
    assert loaded.config == lifter.config and not loaded.training
    x = example_input(7)
    torch.testing.assert_close(loaded(x), lifter(x), atol=0, rtol=0)


def test_corrupt_or_wrong_checkpoints_raise_value_error(tmp_path):
    good = save_checkpoint(Lifter(LifterConfig(hidden=16, blocks=0)), tmp_path / "good.pt")
    data = good.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.pt").write_bytes(b"\x00not a checkpoint" * 10)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    raw = torch.load(good, weights_only=True)
    raw["config"]["hidden"] = 32  # weights no longer fit
    torch.save(raw, tmp_path / "mismatch.pt")
    raw = torch.load(good, weights_only=True)
    next(iter(raw["state_dict"].values())).fill_(float("nan"))
    torch.save(raw, tmp_path / "nan.pt")
    for name, match in [("trunc", "cannot read"), ("junk", "cannot read"),
                        ("other", "not an s2m lifter"), ("mismatch", "do not fit"),
                        ("nan", "NaN")]:
        with pytest.raises(ValueError, match=match):
            load_lifter(tmp_path / f"{name}.pt")
    with pytest.raises(FileNotFoundError):
        load_lifter(tmp_path / "missing.pt")


# ------------------------------------------------------------------------------ shipped model
def test_shipped_detector_loop_weights_load_by_name(synth_val):
    from s2m_model.lifter.model import SHIPPED_CHECKPOINTS

    tuned, default = load_lifter("detector-loop"), load_lifter("default")
    assert SHIPPED_CHECKPOINTS["detector-loop"].is_file()
    assert tuned.config.hidden == default.config.hidden
    kp = _keypoints(synth_val, 8)
    cam = torch.as_tensor(synth_val["camera"][:8])
    a, b = tuned.lift(kp, cam), default.lift(kp, cam)
    assert torch.isfinite(a).all() and a.shape == b.shape == (8, 17, 3)
    assert (a - b).abs().max() > 1e-3  # other weights, not a copy of the default


def test_default_weights_load_and_lift_synthetic_val(synth_val):
    assert DEFAULT_CHECKPOINT.stat().st_size < 10 * 2**20
    lifter = load_lifter("default")
    assert lifter.config.mode == "supervised"
    res = evaluate(lifter, synth_val, use_camera=True)
    assert res["mpjpe_mm"] < DEFAULT_MPJPE_BOUND_MM, res
    assert res["pa_mpjpe_mm"] < DEFAULT_PA_MPJPE_BOUND_MM, res
    # An untrained lifter is far off: the bound is informative.
    assert evaluate(Lifter().eval(), synth_val)["mpjpe_mm"] > 2 * DEFAULT_MPJPE_BOUND_MM


def test_onnx_export_parity(tmp_path):
    import argparse

    from s2m_model.export.models import EXPORTABLE
    from s2m_model.export.onnx import export_onnx, verify_onnx

    module, inputs, in_names, out_names = EXPORTABLE["lifter"](
        argparse.Namespace(batch=6, checkpoint=None))
    path = export_onnx(module, inputs, tmp_path / "lifter.onnx", in_names, out_names)
    diffs = verify_onnx(module, path, (example_input(9, seed=3),), atol=1e-4)
    assert max(diffs.values()) <= 1e-4
    # an unsupervised model (bone-length rescaling inside forward) exports as well
    unsup = Lifter(LifterConfig(hidden=64, blocks=1, mode="unsupervised")).eval()
    path = export_onnx(unsup, (example_input(4),), tmp_path / "u.onnx", ["x"], ["y"])
    assert max(verify_onnx(unsup, path, (example_input(5, seed=1),), atol=1e-4).values()) <= 1e-4
