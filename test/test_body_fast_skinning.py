"""The body's vertex-last dense skinning kernel equals the historical dense formula."""

from __future__ import annotations

import torch

from s2m_model.body.skinning import homogeneous_columns, skin_dense, skin_dense_columns


def test_vertex_last_kernel_matches_dense_formula():
    g = torch.Generator().manual_seed(0)
    verts, joints, batch = 50, 24, 3
    weights = torch.rand(verts, joints, generator=g, dtype=torch.float64)
    weights = weights / weights.sum(1, keepdim=True)
    rel = torch.randn(batch, joints, 3, 4, generator=g, dtype=torch.float64)
    shaped = torch.randn(batch, verts, 3, generator=g, dtype=torch.float64)
    fast = skin_dense_columns(weights.T.contiguous(), rel, homogeneous_columns(shaped))
    assert fast.shape == (batch, verts, 3)
    torch.testing.assert_close(fast, skin_dense(weights, rel, shaped), rtol=0, atol=1e-12)
    # It is not the identity of its input: a changed transform changes the result.
    rel[:, 0, 0, 3] += 1.0
    changed = skin_dense_columns(weights.T.contiguous(), rel, homogeneous_columns(shaped))
    assert not torch.allclose(changed, fast)
