"""Dense and sparse (top-4) linear blend skinning of the body model."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from s2m_model.body.skinning import (
    SPARSE_K,
    skin_dense,
    skin_sparse,
    sparse_matrix,
    top_k_weights,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))


def _random_inputs(batch: int, verts: int, joints: int = 24, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    rel = torch.randn(batch, joints, 3, 4, generator=g, dtype=torch.float64)
    shaped = torch.randn(batch, verts, 3, generator=g, dtype=torch.float64)
    return rel, shaped


def test_top_k_weights_keep_the_heaviest_and_renormalise():
    g = torch.Generator().manual_seed(1)
    w = torch.rand(50, 24, generator=g, dtype=torch.float64)
    w = w / w.sum(1, keepdim=True)
    kept = top_k_weights(w)
    assert ((kept > 0).sum(1) == SPARSE_K).all()
    torch.testing.assert_close(kept.sum(1), torch.ones(50, dtype=torch.float64))
    # The kept joints are the heaviest ones, in the same proportions.
    top = w.topk(SPARSE_K, dim=1)
    torch.testing.assert_close(kept.gather(1, top.indices),
                               top.values / top.values.sum(1, keepdim=True))  # fmt: skip
    with pytest.raises(ValueError, match="k <= J"):
        top_k_weights(w, k=25)
    with pytest.raises(ValueError, match="no positive"):
        top_k_weights(torch.zeros(3, 24))


def test_sparse_equals_dense_when_weights_have_at_most_four_joints():
    rel, shaped = _random_inputs(3, 40)
    w = top_k_weights(torch.rand(40, 24, dtype=torch.float64))
    torch.testing.assert_close(skin_sparse(sparse_matrix(w), rel, shaped),
                               skin_dense(w, rel, shaped), rtol=1e-12, atol=1e-12)  # fmt: skip


def test_dense_skinning_is_the_historical_formula_bit_for_bit(body):
    rel, shaped = _random_inputs(2, body.num_vertices)
    w = body.lbs_weights
    rel, shaped = rel.to(w.dtype), shaped.to(w.dtype)
    per_vertex = torch.einsum("vj,bjxy->bvxy", w, rel)
    expected = (per_vertex[..., :3] @ shaped[..., None])[..., 0] + per_vertex[..., 3]
    assert torch.equal(skin_dense(w, rel, shaped), expected)


def test_body_default_is_dense_and_mode_is_validated(body):
    assert body.skinning == "dense"
    with pytest.raises(ValueError, match="skinning must be one of"):
        body.skinning = "fast"
    assert body.skinning == "dense"


def test_sparse_body_stays_close_to_dense_on_limited_poses(body):
    """Bound: on the s2m-free body the top 4 joints hold >= 90.2 % of every vertex's weight
    (mean 1.64 joints per vertex), so only a few vertices move at all. Measured on 512 random
    limited poses (bench/skeleton_to_mesh.py): max 10.9 mm, mean 0.0096 mm, p99 0.21 mm; the
    bounds leave headroom for other seeds but catch a wrong kernel (errors of centimetres
    everywhere) or a dropped renormalisation."""
    from dik import plausible_params

    params = plausible_params(32, 0, body)
    try:
        with torch.no_grad():
            dense = body(**params).vertices
            body.skinning = "sparse"
            sparse = body(**params).vertices
            joints_sparse = body(**params, with_vertices=False).joints
    finally:
        body.skinning = "dense"
    err_mm = (dense - sparse).norm(dim=-1) * 1e3
    assert float(err_mm.max()) < 20.0
    assert float(err_mm.mean()) < 0.05
    assert float((err_mm > 1.0).float().mean()) < 0.01  # < 1 % of vertices move > 1 mm
    # Joints come from forward kinematics, not skinning: unchanged.
    assert torch.equal(joints_sparse, body(**params, with_vertices=False).joints)


def test_shaped_vertices_are_reused_only_for_the_same_betas(body):
    g = torch.Generator().manual_seed(4)
    betas = torch.randn(2, 10, generator=g, dtype=body.dtype)
    pose = 0.3 * torch.randn(2, 23, 3, generator=g, dtype=body.dtype)
    with torch.no_grad():
        first = body(betas=betas, body_pose=pose).vertices
        again = body(betas=betas, body_pose=pose).vertices  # from the cache
        assert torch.equal(first, again)
        betas[0, 0] += 1.0  # the caller changes its tensor in place: not stale
        changed = body(betas=betas, body_pose=pose).vertices
        fresh = skin_dense(body.lbs_weights, *_rel_and_shaped(body, betas, pose))
    assert not torch.equal(changed[0], first[0])
    assert torch.equal(changed[1], first[1])
    torch.testing.assert_close(changed, fresh, rtol=0, atol=1e-12)


def _rel_and_shaped(body, betas, pose):
    """smplx's transforms and the shaped vertices, computed without the body's cache."""
    from smplx.lbs import batch_rigid_transform, batch_rodrigues

    rot = batch_rodrigues(torch.cat([torch.zeros(2, 3, dtype=body.dtype),
                                     pose.reshape(2, 69)], 1).reshape(-1, 3))  # fmt: skip
    _, rel = batch_rigid_transform(rot.reshape(2, 24, 3, 3), body.rest_joints(betas),
                                   body.parents, dtype=body.dtype)  # fmt: skip
    return rel[..., :3, :], body.shaped_vertices(betas)
