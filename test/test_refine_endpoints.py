"""Analytic endpoint refinement (ankles, wrists, head/neck) from BlazePose points."""

from __future__ import annotations

import math

import pytest
import roma
import torch

from s2m_model import dik
from s2m_model.refine.endpoints import (
    DEFAULT,
    REFINED,
    SOLVED,
    align_points,
    joint_status,
    refine_endpoints,
)
from s2m_model.refine.synthetic import sample_bodies
from s2m_model.skeletons import get_format
from s2m_model.smpl_layout import JOINT_INDEX, world_from_local

ENDPOINTS = ("left_ankle", "right_ankle", "left_wrist", "right_wrist", "head")


@pytest.fixture(scope="module")
def scene(body):
    out = sample_bodies(body, 64, seed=11)
    truth = world_from_local(
        roma.rotvec_to_rotmat(torch.cat([out.global_orient[:, None], out.body_pose], 1))
    )
    skel = body.regress(out.vertices, "h36m17")
    points = body.regress(out.vertices, "blazepose33")
    return out, truth, points, dik.solve(skel, "h36m17", body, betas=out.betas)


def _errors_deg(rotmats, truth, names=ENDPOINTS) -> torch.Tensor:
    world = world_from_local(rotmats)
    idx = [JOINT_INDEX[n] for n in names]
    return roma.rotmat_geodesic_distance(world[:, idx], truth[:, idx]) * 180 / math.pi


def test_endpoints_match_the_truth(body, scene):
    out, truth, points, r = scene
    res = refine_endpoints(
        r.rotmats, points, body, out.betas, transl=r.transl, status=joint_status(r.solved)
    )
    err, before = _errors_deg(res.rotmats, truth), _errors_deg(r.rotmats, truth)
    assert float(err.mean()) < 5.0 and float(err.quantile(0.95)) < 10.0, err.mean(0)
    assert float(before[:, :4].mean()) > 3 * float(err[:, :4].mean())  # DIK left them at rest
    neck = _errors_deg(res.rotmats, truth, ("neck",))
    assert float(neck.mean()) < float(_errors_deg(r.rotmats, truth, ("neck",)).mean())
    for name in (*ENDPOINTS, "neck"):
        assert bool((res.status[:, JOINT_INDEX[name]] == REFINED).all())
    assert bool((res.status[:, JOINT_INDEX["left_foot"]] == DEFAULT).all())
    assert bool((res.status[:, JOINT_INDEX["left_knee"]] == SOLVED).all())
    assert float(res.fit_rms[:, JOINT_INDEX["left_ankle"]].max()) < 0.01
    # Everything outside the refined segments is DIK's.
    keep = [j for j in range(24) if j not in [JOINT_INDEX[n] for n in (*ENDPOINTS, "neck")]]
    assert torch.equal(res.rotmats[:, keep], r.rotmats[:, keep])


def test_noisy_points_stay_within_the_goal(body, scene):
    out, truth, points, r = scene
    g = torch.Generator().manual_seed(1)
    noisy = points + 0.01 * torch.randn(points.shape, generator=g, dtype=points.dtype)
    res = refine_endpoints(r.rotmats, noisy, body, out.betas, transl=r.transl)
    assert float(_errors_deg(res.rotmats, truth).mean()) <= 20.0


def test_missing_points_keep_dik(body, scene):
    out, _, points, r = scene
    fmt = get_format("blazepose33")
    pts = points[:4].clone()
    pts[0, fmt.index("left_heel")] = float("nan")
    conf = torch.ones(4, 33, dtype=pts.dtype)
    conf[1, fmt.index("right_index")] = 0.0
    status = joint_status(r.solved[:4])
    res = refine_endpoints(
        r.rotmats[:4], pts, body, out.betas[:4], transl=r.transl[:4], confidence=conf,
        status=status,
    )  # fmt: skip
    la, rw = JOINT_INDEX["left_ankle"], JOINT_INDEX["right_wrist"]
    assert torch.equal(res.rotmats[0, la], r.rotmats[0, la]) and res.status[0, la] == DEFAULT
    assert torch.equal(res.rotmats[1, rw], r.rotmats[1, rw]) and res.status[1, rw] == DEFAULT
    assert res.status[1, la] == REFINED and bool(torch.isfinite(res.rotmats).all())


def test_points_from_another_frame_are_aligned(body, scene):
    out, truth, points, r = scene
    skel = body.regress(out.vertices, "h36m17")
    turn = roma.rotvec_to_rotmat(torch.tensor([0.3, -1.2, 0.5], dtype=points.dtype))
    moved = points @ turn.T + torch.tensor([0.5, -2.0, 1.0], dtype=points.dtype)
    aligned = align_points(moved, skel, "h36m17")
    res = refine_endpoints(r.rotmats, aligned, body, out.betas, transl=r.transl)
    assert float(_errors_deg(res.rotmats, truth).mean()) < 5.0
    raw = refine_endpoints(r.rotmats, moved, body, out.betas, transl=r.transl)
    assert float(_errors_deg(raw.rotmats, truth).mean()) > 20.0


def test_bad_input_raises(body, scene):
    out, _, points, r = scene
    with pytest.raises(ValueError, match="33"):
        refine_endpoints(r.rotmats, points[:, :17], body)
    with pytest.raises(ValueError, match="24,3,3"):
        refine_endpoints(r.rotmats[:, :5], points, body)
    with pytest.raises(ValueError, match="unknown endpoint"):
        refine_endpoints(r.rotmats, points, body, joints=("left_elbow",))
    with pytest.raises(ValueError, match="neck"):
        refine_endpoints(r.rotmats, points, body, neck="bend")
