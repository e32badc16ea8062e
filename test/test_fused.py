"""The ``fused`` front end: inputs, zero-init identity, checkpoints, training, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from s2m_model.lifter.fused import (
    DEFAULT_FUSED,
    HIPS,
    NUM_INPUT,
    FusedConfig,
    FusedLifter,
    fused_inputs,
    load_fused,
    save_fused,
)
from s2m_model.lifter.fused_train import (
    FusedTrainConfig,
    clip_styles,
    mpjpe_mm,
    select_samples,
    train_fused,
)

CAM = np.array([500.0, 500.0, 320.0, 240.0], np.float32)


def _fake(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Arrays shaped like a detector-in-the-loop build: GT points, a noisy "detector" whose
    world landmarks are the GT shrunk in depth (a learnable error), and their projections."""
    rng = np.random.default_rng(seed)
    gt = rng.normal(0, 0.3, (n, 33, 3)).astype(np.float32)
    gt -= gt[:, list(HIPS)].mean(1, keepdims=True)
    world = gt.copy()
    world[..., 2] *= 0.5
    world += rng.normal(0, 0.005, world.shape).astype(np.float32)
    cam_pts = gt + np.array([0.0, 0.0, 4.0], np.float32)
    uv = cam_pts[..., :2] / cam_pts[..., 2:] * CAM[:2] + CAM[2:]
    lm = np.concatenate([uv, np.zeros((n, 33, 1)), np.ones((n, 33, 1))], -1).astype(np.float32)
    return {
        "det_detected": np.ones(n, np.uint8),
        "det_landmarks": lm,
        "det_world": world,
        "camera": np.tile(CAM, (n, 1)),
        "joints3d_blazepose33": gt,
        "clip_id": (np.arange(n) % 2).astype(np.int32),
    }


def test_inputs_shape_and_centring():
    a = _fake(4)
    x = fused_inputs(a["det_landmarks"], a["det_world"] + 5.0, CAM)
    assert x.shape == (4, NUM_INPUT)
    # The world block is re-centred on the hip midpoint whatever its origin.
    w = x[:, 99:198].reshape(4, 33, 3)
    assert torch.allclose(w[:, list(HIPS)].mean(1), torch.zeros(4, 3), atol=1e-5)


def test_zero_init_is_the_detectors_skeleton():
    a = _fake(3)
    out = FusedLifter().lift(a["det_landmarks"], a["det_world"] + 1.0, a["camera"])
    world = torch.from_numpy(a["det_world"])
    world = world - world[:, list(HIPS)].mean(1, keepdim=True)
    assert out.shape == (3, 33, 3)
    assert torch.allclose(out, world, atol=1e-5)
    assert FusedLifter().lift(np.zeros((0, 33, 4)), np.zeros((0, 33, 3)), CAM).shape == (0, 33, 3)


def test_bad_input_raises_clear_errors():
    a = _fake(2)
    m = FusedLifter()
    with pytest.raises(ValueError, match="landmarks must be"):
        m.lift(a["det_landmarks"][:, :17], a["det_world"], CAM)
    bad = a["det_world"].copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        m.lift(a["det_landmarks"], bad, CAM)
    with pytest.raises(ValueError, match="focal"):
        m.lift(a["det_landmarks"], a["det_world"], np.array([0.0, 500, 320, 240]))
    same = a["det_landmarks"].copy()
    same[..., :2] = 100.0
    with pytest.raises(ValueError, match="coincide"):
        m.lift(same, a["det_world"], CAM)
    with pytest.raises(ValueError, match="hidden"):
        FusedConfig(hidden=0)


def test_checkpoint_roundtrip_weights_only(tmp_path):
    torch.manual_seed(0)
    m = FusedLifter(FusedConfig(hidden=32, blocks=1, meta={"licence": "test"}))
    with torch.no_grad():
        m.head.weight.normal_()
    path = save_fused(m, tmp_path / "f.pt")
    data = torch.load(path, weights_only=True)  # no pickled code in the file
    assert data["kind"] == "s2m-fused"
    back = load_fused(path)
    a = _fake(2)
    assert torch.allclose(back.lift(a["det_landmarks"], a["det_world"], CAM),
                          m.lift(a["det_landmarks"], a["det_world"], CAM))  # fmt: skip
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read"):
        load_fused(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError):
        load_fused(tmp_path / "missing.pt")


@pytest.fixture
def one_thread():
    # Tiny tensors: on a busy 2-core machine more threads make training 20x slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_training_learns_the_detectors_depth_error(one_thread):
    train, val = _fake(256, seed=1), _fake(128, seed=2)
    idx = select_samples(train)
    before = mpjpe_mm(FusedLifter(FusedConfig(hidden=64, blocks=1)), val, np.arange(128))
    model, hist = train_fused(
        train,
        idx,
        config=FusedConfig(hidden=64, blocks=1, dropout=0.0),
        train_config=FusedTrainConfig(epochs=30, batch_size=64, lr=3e-3),
    )
    after = mpjpe_mm(model, val, np.arange(128))
    assert hist and hist[-1]["epoch"] == 30
    assert after < 0.9 * before, (before, after)


def test_select_samples_by_style():
    a = _fake(6)
    a["det_detected"][0] = 0
    clips = ["dataset-1/walk_angry_1", "dataset-2/run_happy_3"]
    assert clip_styles(clips + ["cmu/131_04"]) == ["angry", "happy", "cmu"]
    assert list(select_samples(a)) == [1, 2, 3, 4, 5]
    assert list(select_samples(a, clips, exclude_styles=["angry"])) == [1, 3, 5]
    assert list(select_samples(a, clips, only_styles=["angry"])) == [2, 4]
    with pytest.raises(ValueError, match="clip names"):
        select_samples(a, None, exclude_styles=["angry"])


@pytest.mark.skipif(not DEFAULT_FUSED.is_file(), reason="shipped fused weights not built yet")
def test_shipped_weights_load_and_are_documented():
    m = load_fused("default")
    assert "CC BY-NC 4.0" in m.config.meta.get("licence", "")
    a = _fake(2)
    out = m.lift(a["det_landmarks"], a["det_world"], CAM)
    assert torch.isfinite(out).all()
    assert DEFAULT_FUSED.stat().st_size < 5_000_000


def test_unsupervised_mode_lowers_its_loss_without_3d_ground_truth(one_thread):
    """Reprojection + rotation consistency on detections only (no joints3d in the arrays): a
    few epochs lower the unsupervised loss, measured on a fixed batch with fixed yaws."""
    from s2m_model.lifter.fused_train import unsupervised_losses

    train = _fake(256, seed=1)
    del train["joints3d_blazepose33"]  # real detections: no 3D ground truth
    val = _fake(64, seed=2)
    lm, world = torch.from_numpy(val["det_landmarks"]), torch.from_numpy(val["det_world"])
    cam = torch.from_numpy(val["camera"])

    def loss(model) -> float:
        with torch.no_grad():
            yaws = torch.Generator().manual_seed(5)
            out = unsupervised_losses(model.eval(), lm, world, cam, yaws)
        assert set(out) == {"reproj", "reproj_rotated", "consistency", "total"}
        return float(out["total"])

    config = FusedConfig(hidden=64, blocks=1, dropout=0.0)
    torch.manual_seed(0)
    start = FusedLifter(config)
    # The zero-initialised model returns the world landmarks, which are rotation-consistent
    # by construction: start from a perturbed head, as a partly trained model would be.
    with torch.no_grad():
        start.head.weight.normal_(0.0, 0.02)
    before = loss(start)
    model, hist = train_fused(train, select_samples(train), config=config, init=start.train(),
                              train_config=FusedTrainConfig(epochs=10, batch_size=64, lr=1e-3,
                                                            mode="unsupervised"))  # fmt: skip
    assert hist[-1]["epoch"] == 10 and np.isfinite(hist[-1]["train_mm"])
    assert loss(model) < 0.8 * before, (before, loss(model))
    with pytest.raises(ValueError, match="mode"):
        FusedTrainConfig(mode="semi")
