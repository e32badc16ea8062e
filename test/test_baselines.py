"""IK baselines: the factored joint model, the iterative IK, the swing-only analytic IK."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import roma
import torch
from test_dik import plausible_pose

from s2m_model import dik, ik_baselines
from s2m_model.body import SMPL_JOINT_NAMES
from s2m_model.smpl_layout import NUM_BETAS, world_from_local

J = {n: i for i, n in enumerate(SMPL_JOINT_NAMES)}


@pytest.fixture(autouse=True)
def _one_thread():
    """Small per-sample ops: a second thread gains nothing and spin-waits on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


LIMBS = {  # upper joint -> (hinge joint, end joint)
    "left_hip": ("left_knee", "left_ankle"),
    "right_hip": ("right_knee", "right_ankle"),
    "left_shoulder": ("left_elbow", "left_wrist"),
    "right_shoulder": ("right_elbow", "right_wrist"),
}


def _posed(body, batch: int, seed: int):
    g = torch.Generator().manual_seed(seed + 7)
    betas = torch.randn(batch, NUM_BETAS, generator=g, dtype=torch.float64) * 0.5
    go = torch.randn(batch, 3, generator=g, dtype=torch.float64)
    transl = torch.randn(batch, 3, generator=g, dtype=torch.float64)
    pose = plausible_pose(batch, seed, body, betas)
    return body(betas=betas, global_orient=go, body_pose=pose, transl=transl)


@pytest.mark.parametrize("fmt", ["h36m17", "coco17", "smpl24"])
def test_joint_model_equals_the_mesh_regression(body, fmt):
    out = _posed(body, 3, seed=0)
    pose = torch.cat([out.global_orient, out.body_pose.reshape(3, 69)], 1)
    fast = ik_baselines.JointModel(body, fmt)(out.betas, pose, out.transl)
    mesh = ik_baselines.JointModel(body, fmt, mode="mesh")(out.betas, pose, out.transl)
    ref = out.joints if fmt == "smpl24" else body.regress(out.vertices, fmt)
    assert torch.allclose(mesh, ref, atol=1e-9)
    assert float((fast - ref).abs().max()) < 1e-6


def _mpjpe(body, r, betas, target, fmt="h36m17") -> torch.Tensor:
    out = body(betas=betas, global_orient=r.global_orient, body_pose=r.body_pose, transl=r.transl)
    pred = out.joints if fmt == "smpl24" else body.regress(out.vertices, fmt)
    return (pred - target).norm(dim=-1).mean(-1)


def test_iterative_lm_converges_on_an_easy_target(body):
    out = _posed(body, 4, seed=1)
    target = body.regress(out.vertices, "h36m17")
    start = ik_baselines.iterative_ik(target, "h36m17", body, betas=out.betas, steps=1)
    r, info = ik_baselines.iterative_ik(target, "h36m17", body, betas=out.betas, return_info=True)
    before = _mpjpe(body, start, out.betas, target)
    after = _mpjpe(body, r, out.betas, target)
    assert info.converged and info.steps > 1
    assert float(after.max()) < 0.005, after  # < 5 mm: only the small L2 prior is in the way
    assert bool((after < 0.2 * before).all()), (before, after)
    assert float(info.rmse.max()) < 0.005 and bool((info.final_loss > 0).all())
    assert r.solved.all() and r.rotmats.shape == (4, 24, 3, 3)
    assert torch.allclose(roma.rotvec_to_rotmat(r.body_pose), r.rotmats[:, 1:], atol=1e-9)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_first_order_optimisers_reduce_the_error(body, optimizer):
    out = _posed(body, 2, seed=2)
    target = out.joints
    start = ik_baselines.iterative_ik(target, "smpl24", body, betas=out.betas, steps=1)
    r = ik_baselines.iterative_ik(
        target, "smpl24", body, betas=out.betas, optimizer=optimizer, steps=150
    )
    before = _mpjpe(body, start, out.betas, target, "smpl24")
    after = _mpjpe(body, r, out.betas, target, "smpl24")
    assert bool((after < 0.5 * before).all()), (optimizer, before, after)


def test_iterative_warm_start_and_missing_joints(body):
    out = _posed(body, 2, seed=3)
    target = body.regress(out.vertices, "h36m17").clone()
    target[0, 13] = float("nan")  # left wrist missing
    r = ik_baselines.iterative_ik(target, "h36m17", body, betas=out.betas)
    assert torch.isfinite(r.body_pose).all() and torch.isfinite(r.transl).all()
    # Starting from the solution changes nothing much.
    r2, info = ik_baselines.iterative_ik(
        target, "h36m17", body, betas=out.betas, prev=r, return_info=True
    )
    assert info.steps <= 10
    assert float((r2.body_pose - r.body_pose).abs().max()) < 0.05


def _world(r) -> torch.Tensor:
    return world_from_local(r.rotmats)


def test_swing_only_differs_from_dik_by_the_limb_twist_only(body):
    out = _posed(body, 16, seed=4)
    target = body.regress(out.vertices, "h36m17")
    ref = dik.solve(target, "h36m17", body, betas=out.betas)
    swing = ik_baselines.swing_only_ik(target, "h36m17", body, betas=out.betas)
    w_ref, w_swing = _world(ref), _world(swing)
    rest = body.rest_joints(out.betas)
    assert torch.equal(ref.solved, swing.solved)
    twists = []
    for upper, (mid, end) in LIMBS.items():
        for a, b in ((upper, mid), (mid, end)):
            bone = rest[:, J[b]] - rest[:, J[a]]
            d_ref = (w_ref[:, J[a]] @ bone[..., None])[..., 0]
            d_swing = (w_swing[:, J[a]] @ bone[..., None])[..., 0]
            cos = torch.nn.functional.cosine_similarity(d_ref, d_swing, dim=-1)
            assert float(cos.min()) > 1 - 1e-9, (a, cos.min())
            # The two world rotations differ by a rotation about the (rest) bone only.
            rel = roma.rotmat_to_rotvec(w_ref[:, J[a]].mT @ w_swing[:, J[a]])
            off_axis = torch.linalg.cross(rel, torch.nn.functional.normalize(bone, dim=-1))
            assert float(off_axis.norm(dim=-1).max()) < 1e-6, a
            twists.append(rel.norm(dim=-1))
    # On bent limbs the twist really differs (the swing inherits the parent's twist).
    assert float(torch.stack(twists).max()) > np.radians(20.0)
    # Everything off the limbs is DIK's.
    for name in ("pelvis", "spine1", "spine3", "neck", "head", "left_collar", "right_collar"):
        assert torch.allclose(w_ref[:, J[name]], w_swing[:, J[name]], atol=1e-9), name
    assert torch.allclose(ref.transl, swing.transl)


def test_swing_only_loses_to_dik_on_limb_rotations(body):
    """DIK's hinge prior recovers the limb twist of hinge-only elbows/knees; a swing cannot."""
    out = _posed(body, 16, seed=5)
    target = body.regress(out.vertices, "h36m17")
    gt_world = world_from_local(
        roma.rotvec_to_rotmat(torch.cat([out.global_orient[:, None], out.body_pose], 1))
    )
    limbs = [J[n] for n in LIMBS]

    def angle(r):
        rel = _world(r)[:, limbs].mT @ gt_world[:, limbs]
        return float(roma.rotmat_to_rotvec(rel).norm(dim=-1).mean())

    dik_err = angle(dik.solve(target, "h36m17", body, betas=out.betas))
    swing_err = angle(ik_baselines.swing_only_ik(target, "h36m17", body, betas=out.betas))
    assert dik_err < np.radians(2.0) < swing_err, (dik_err, swing_err)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda b: ik_baselines.swing_only_ik(torch.zeros(2, 5, 3), "h36m17", b), "must be"),
        (lambda b: ik_baselines.swing_only_ik(np.zeros((17, 3)), "h36m17", b), "torch tensor"),
        (lambda b: ik_baselines.iterative_ik(torch.zeros(17, 3), "nope", b), "unknown skeleton"),
        (
            lambda b: ik_baselines.iterative_ik(torch.zeros(17, 3), "h36m17", b, optimizer="sgd"),
            "optimizer",
        ),
        (lambda b: ik_baselines.iterative_ik(torch.zeros(17, 3), "h36m17", b, steps=0), "steps"),
        (
            lambda b: ik_baselines.iterative_ik(
                torch.zeros(1, 17, 3), "h36m17", b, betas=torch.zeros(2, NUM_BETAS)
            ),
            "betas",
        ),  # fmt: skip
    ],
)
def test_bad_input(body, call, match):
    with pytest.raises(ValueError, match=match):
        call(body)


def test_degenerate_input_stays_finite(body):
    zeros = torch.zeros(2, 17, 3, dtype=torch.float64)
    for fn in (ik_baselines.swing_only_ik, partial(ik_baselines.iterative_ik, steps=10)):
        r = fn(zeros, "h36m17", body)
        assert torch.isfinite(r.body_pose).all() and torch.isfinite(r.global_orient).all()


def test_iterative_on_the_full_mesh_takes_the_same_steps(body):
    out = _posed(body, 1, seed=6)
    target = body.regress(out.vertices, "h36m17")
    fast = ik_baselines.iterative_ik(target, "h36m17", body, betas=out.betas, steps=3)
    mesh = ik_baselines.iterative_ik(target, "h36m17", body, betas=out.betas, steps=3, model="mesh")
    start = ik_baselines.iterative_ik(target, "h36m17", body, betas=out.betas, steps=1)
    assert float((fast.body_pose - start.body_pose).abs().max()) > 0.01  # it moved
    assert torch.allclose(fast.body_pose, mesh.body_pose, atol=1e-5)
    assert torch.allclose(fast.transl, mesh.transl, atol=1e-7)
