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
