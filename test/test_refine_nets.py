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


@pytest.mark.parametrize("name", ["refine-pose", "refine-shape"])
def test_refine_nets_export_to_onnx_with_parity(tmp_path, name):
    pytest.importorskip("onnxruntime")
    from s2m_model.export.models import EXPORTABLE, ExportOptions
    from s2m_model.export.onnx import export_onnx, verify_onnx

    module, inputs, ins, outs = EXPORTABLE[name](ExportOptions(batch=3, format="blazepose33"))
    path = export_onnx(module, inputs, tmp_path / f"{name}.onnx", ins, outs)
    diffs = verify_onnx(module, path, inputs, atol=1e-4)
    assert max(diffs.values()) < 1e-4
    one = tuple(x[:1] for x in inputs)  # dynamic batch
    assert max(verify_onnx(module, path, one, atol=1e-4).values()) < 1e-4


def test_refine_checkpoint_round_trip(tmp_path):
    from s2m_model.refine.nets_io import load_refine_nets, save_refine_nets

    pose, shape = PoseRefineNet(33, 17, hidden=16), ShapeRefineNet("blazepose33", 17, hidden=16)
    torch.nn.init.normal_(shape.head.weight)
    path = save_refine_nets(tmp_path / "r.pt", pose, shape, meta={"licence": "test"})
    p2, s2, meta = load_refine_nets(path)
    skel, kp, box, mask, _ = _inputs()
    b0 = torch.zeros(3, 10)
    assert torch.allclose(s2(skel, kp, box, mask, b0), shape(skel, kp, box, mask, b0))
    assert p2.hidden == 16 and meta["licence"] == "test"
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read"):
        load_refine_nets(tmp_path / "bad.pt")
