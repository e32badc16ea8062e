"""`s2m train refine`: the paper's loss, a short training run, checkpoints/CSV, CLI wiring."""

from __future__ import annotations

import argparse

import pytest
import torch

from s2m_model.refine.synthetic import sample_bodies
from s2m_model.refine.train import LossWeights, RefineTrainConfig, prepare_samples, train_refine


@pytest.fixture(scope="module")
def samples(body):
    posed = sample_bodies(body, 24, seed=5, camera=True)
    cam = torch.tensor([[500.0, 500.0, 320.0, 240.0]]).repeat(24, 1).double()
    skel = body.regress(posed.vertices, "blazepose33")
    kp3 = body.regress(posed.vertices, "coco17")
    uv = kp3[..., :2] / kp3[..., 2:] * 500 + torch.tensor([320.0, 240.0]).double()
    kp = torch.cat([uv, torch.ones(24, 17, 1).double()], -1)
    box = torch.cat([uv.min(1).values - 20, uv.max(1).values + 20], -1)
    mask = torch.ones(24, 32, 24)
    skel_noisy = skel + 0.01 * torch.randn(skel.shape, generator=torch.Generator().manual_seed(1),
                                           dtype=skel.dtype)  # fmt: skip
    return prepare_samples(body, skel_noisy, "blazepose33", torch.ones(24, 33), kp, "coco17",
                           box, mask, cam, skel)  # fmt: skip


def test_prepare_places_the_body(samples):
    # The translation puts the body ~3 m in front of the camera (sample_bodies' distance).
    assert torch.allclose(samples.transl[:, 2].median(), torch.tensor(3.0), atol=0.3)
    assert samples.rotmats.shape == (24, 24, 3, 3) and samples.betas0.shape == (24, 10)


def test_short_training_lowers_the_loss_and_writes_checkpoints(body, samples, tmp_path):
    from s2m_model.refine.nets_io import load_refine_nets

    cfg = RefineTrainConfig(epochs=3, batch=8, lr=3e-3, hidden=32, mask_batch=2,
                            weights=LossWeights())  # fmt: skip
    pose, shape, hist = train_refine(body, samples, samples, cfg, out_dir=tmp_path, progress=False)
    assert hist[0]["epoch"] == 0 and len(hist) == 4
    assert hist[-1]["val_3d_mm"] < hist[0]["val_3d_mm"], hist
    assert "train_mask" in hist[-1] and hist[-1]["train_mask"] > 0
    p2, s2, meta = load_refine_nets(tmp_path / "refine.pt")
    assert p2 is not None and s2 is not None and meta["epoch"] == 3
    assert (tmp_path / "log.csv").read_text().count("\n") == 4  # header + 3 epochs


def test_bad_config_is_rejected(body, samples):
    with pytest.raises(ValueError, match="mode"):
        train_refine(body, samples, None, RefineTrainConfig(mode="half"), progress=False)
    with pytest.raises(ValueError, match="nothing to train"):
        train_refine(body, samples, None, RefineTrainConfig(train_pose=False, train_shape=False),
                     progress=False)  # fmt: skip


def test_cli_adds_refine_to_train():
    from s2m_model.lifter.cli import register as lifter_register
    from s2m_model.refine.train_cli import register

    for first in (True, False):  # with and without the lifter's `train` command
        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers(dest="command")
        if first:
            lifter_register(sub)
        register(sub)
        args = parser.parse_args(["train", "refine", "--data", "d", "--out", "o", "--lr", "1e-3"])
        assert args.train_command == "refine" and args.lr == 1e-3
    args = parser.parse_args(["train", "refine", "--data", "d", "--out", "o"])
    assert args.mode == "supervised" and args.epochs == 10
