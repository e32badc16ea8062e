"""Soft silhouette: gradient check, agreement with a hard raster, IoU loss, mask resampling."""

from __future__ import annotations

import numpy as np
import pytest
import roma
import torch

from s2m_model.camera import Camera
from s2m_model.data.raster import rasterize
from s2m_model.eval.metrics import silhouette_iou
from s2m_model.refine.silhouette import (
    box_grid_coords,
    mask_to_grid,
    posed_subset,
    reduce_mesh,
    soft_iou_loss,
    soft_silhouette,
)
from s2m_model.refine.synthetic import sample_bodies

# Two triangles sharing an edge, and a third apart: grid cells at integer coordinates.
TINY = torch.tensor(
    [[0.7, 0.6], [5.3, 1.2], [1.4, 4.6], [4.8, 5.1], [6.2, 2.9], [7.1, 4.4]], dtype=torch.float64
)
TINY_FACES = torch.tensor([[0, 1, 2], [1, 3, 2], [4, 5, 3]])


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small per-person ops: one thread avoids OpenMP spin-waits on the shared 2-core CI box."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("aggregate", ["outline", "softras"])
@pytest.mark.parametrize("cull", [True, False])
def test_gradcheck(aggregate, cull):
    coords = TINY[None].clone().requires_grad_(True)

    def render(c):
        return soft_silhouette(c, TINY_FACES, (7, 9), sigma=0.6, cull=cull, aggregate=aggregate)

    assert torch.autograd.gradcheck(render, (coords,), eps=1e-6, atol=1e-5)
    mask = (torch.rand(1, 7, 9, dtype=torch.float64) > 0.5).to(torch.float64)
    assert torch.autograd.gradcheck(lambda c: soft_iou_loss(render(c), mask), (coords,))


def test_coverage_is_half_on_the_outline_and_full_inside():
    # One big triangle: a cell centre deep inside, one on an edge, one far outside.
    tri = torch.tensor([[[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]], dtype=torch.float64)
    sil = soft_silhouette(tri, torch.tensor([[0, 1, 2]]), (12, 12), sigma=0.5)
    assert float(sil[0, 3, 3]) > 0.99 and float(sil[0, 11, 11]) < 1e-3
    assert abs(float(sil[0, 0, 5]) - 0.5) < 1e-6  # cell (row 0, col 5) lies on the edge y=0


def test_reduced_mesh_matches_the_hard_raster(body):
    out = sample_bodies(body, 3, seed=4, camera=True)
    mesh = reduce_mesh(body.v_template.numpy(), body.faces, 1000)
    assert 800 < mesh.num_vertices < 1200 and int(mesh.faces.max()) < mesh.num_vertices
    rot = roma.rotvec_to_rotmat(torch.cat([out.global_orient[:, None], out.body_pose], 1))
    sub = posed_subset(body, mesh.keep, out.betas, rot, out.transl)
    assert float((sub - out.vertices[:, mesh.keep]).abs().max()) < 1e-6  # same skinning
    cam = Camera.from_fov(640, 480)
    k = torch.tensor(cam.intrinsics, dtype=sub.dtype)
    for b in range(3):
        depth, _ = rasterize(out.vertices[b].numpy(), body.faces, cam)
        full = np.isfinite(depth)
        ys, xs = np.nonzero(full)
        box = np.array([xs.min() - 8, ys.min() - 8, xs.max() + 8, ys.max() + 8], np.float64)
        size = (64, max(8, round(64 * (box[2] - box[0]) / (box[3] - box[1]))))
        gt = torch.as_tensor(mask_to_grid(full, box, size))
        sil = soft_silhouette(box_grid_coords(sub[b : b + 1], k, torch.tensor(box)[None], size),
                              mesh.faces, size, sigma=0.3)  # fmt: skip
        assert float(silhouette_iou(sil[0] > 0.5, gt > 0.5)) > 0.9
        assert float(soft_iou_loss(sil, gt[None])) < 0.25


def test_mask_to_grid_and_bad_input():
    mask = np.zeros((40, 60), bool)
    mask[10:30, 20:40] = True
    grid = mask_to_grid(mask, (20, 10, 40, 30), (4, 4))
    assert grid.shape == (4, 4) and np.allclose(grid, 1.0)
    half = mask_to_grid(mask, (10, 10, 30, 30), (2, 2))
    assert np.allclose(half, [[0.0, 1.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="box"):
        mask_to_grid(mask, (5, 5, 5, 9), (4, 4))
    with pytest.raises(ValueError, match="sigma"):
        soft_silhouette(TINY[None], TINY_FACES, (4, 4), sigma=0.0)
    with pytest.raises(ValueError, match="coords"):
        soft_silhouette(TINY, TINY_FACES, (4, 4))
    with pytest.raises(ValueError, match="shapes"):
        soft_iou_loss(torch.zeros(1, 3, 3), torch.zeros(1, 4, 4))
