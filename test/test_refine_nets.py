"""Learned PR / SR networks: shapes, identity at start, regularisers, bad input."""

from __future__ import annotations

import pytest
import roma
import torch

from s2m_model.refine.pose_net import PR_JOINTS, PoseRefineNet, apply_residual, pose_regulariser
from s2m_model.refine.shape_net import ShapeRefineNet, shape_regulariser


def _inputs(batch: int = 3, joints: int = 33, kps: int = 17):
    g = torch.Generator().manual_seed(0)
    skel = torch.randn(batch, joints, 3, generator=g) * 0.3
    uv = torch.rand(batch, kps, 2, generator=g) * 200 + 100
    kp = torch.cat([uv, torch.rand(batch, kps, 1, generator=g)], -1)
    box = torch.tensor([[100.0, 100.0, 300.0, 300.0]]).repeat(batch, 1)
    mask = (torch.rand(batch, 32, 24, generator=g) > 0.5).float()
    rot = roma.random_rotmat(batch * 24).reshape(batch, 24, 3, 3)
    return skel, kp, box, mask, rot


def test_pose_net_starts_as_identity_and_learns():
    skel, kp, box, mask, rot = _inputs()
    net = PoseRefineNet(33, 17, hidden=32)
    res = net(skel, kp, box, mask, rot)
    assert res.shape == (3, len(PR_JOINTS), 3, 3)
    assert torch.allclose(res, torch.eye(3).expand_as(res), atol=1e-6)
    assert torch.allclose(apply_residual(rot, res), rot, atol=1e-6)
    # One optimiser step towards a target twist moves the output (gradients flow).
    target = roma.rotvec_to_rotmat(torch.full((3, len(PR_JOINTS), 3), 0.3))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(20):
        opt.zero_grad()
        loss = (net(skel, kp, box, mask, rot) - target).square().mean()
        loss.backward()
        opt.step()
    assert float(loss) < 0.5 * float((res - target).square().mean())
    angle = pose_regulariser(net(skel, kp, box, mask, rot))
    assert angle.shape == (3,) and bool((angle > 0).all())
    assert float(pose_regulariser(torch.eye(3).expand(2, 4, 3, 3)).max()) < 1e-5


def test_pose_net_handles_missing_evidence():
    skel, kp, box, _, rot = _inputs()
    skel[0, 5] = float("nan")
    out = PoseRefineNet(33, 17, hidden=16)(skel, kp, box, torch.zeros(3, 32, 24), rot)
    assert torch.isfinite(out).all()


def test_shape_net_starts_at_betas0():
    skel, kp, box, mask, _ = _inputs()
    betas0 = torch.randn(3, 10)
    net = ShapeRefineNet("blazepose33", 17, hidden=32)
    assert torch.allclose(net(skel, kp, box, mask, betas0), betas0)
    assert torch.allclose(shape_regulariser(betas0), betas0.norm(dim=-1), atol=1e-5)


def test_nets_reject_bad_input():
    skel, kp, box, mask, rot = _inputs()
    with pytest.raises(ValueError, match="keypoints"):
        PoseRefineNet(33, 17)(skel, kp[..., :2], box, mask, rot)
    with pytest.raises(ValueError, match="box"):
        PoseRefineNet(33, 17)(skel, kp, box[:2], mask, rot)
    with pytest.raises(ValueError, match="betas0"):
        ShapeRefineNet("blazepose33", 17)(skel, kp, box, mask, torch.zeros(3, 9))
    with pytest.raises(ValueError, match="unknown SMPL joint"):
        PoseRefineNet(33, 17, joints=("nose",))
