"""A compact differentiable silhouette renderer (SoftRas-style) and a soft IoU loss.

Neural Mesh Renderer / PyTorch3D do not install here, so this is the small part of SoftRas
(Liu et al. 2019) a silhouette needs: ``s``, the signed 2D distance of a pixel centre to a
projected triangle (positive inside), turned into coverage by a sigmoid of ``s / sigma``.
SoftRas multiplies the per-triangle probabilities (``1 - prod_f (1 - D_f)``), which fattens the
outline where many small triangles crowd it; the default here takes outside pixels from the
nearest triangle only (the distance to the silhouette) and combines the covering triangles
inside (see :func:`soft_silhouette`). Gradients reach every vertex near the outline, not only
the pixels a hard rasteriser flips.

Cost control: the mesh is a vertex-clustered copy of the body (:func:`reduce_mesh`, ~1k
vertices) skinned directly (:func:`posed_subset`), rendered on a low-resolution grid over the
person's box, and only (triangle, pixel) pairs within ``margin * sigma`` of a triangle's box
are evaluated (farther pairs contribute below ``softplus(-margin)``).

Pixels: the grid has ``H x W`` cells over an image box ``(x0, y0, x1, y1)`` (image pixels);
``sigma`` is in grid cells. Vertices are in the camera frame (x right, y down, z forward,
metres) and projected with :func:`s2m_model.camera.project_points`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - torch convention

from s2m_model.camera import project_points

__all__ = [
    "ReducedMesh", "box_grid_coords", "front_faces", "mask_to_grid", "posed_subset", "reduce_mesh",
    "soft_iou_loss", "soft_silhouette",
]  # fmt: skip


@dataclass(frozen=True)
class ReducedMesh:
    """A coarse copy of a body mesh: ``keep`` (Vr,) body vertex ids, ``faces`` (Fr,3) into them."""

    keep: torch.Tensor
    faces: torch.Tensor

    @property
    def num_vertices(self) -> int:
        return int(self.keep.shape[0])


def reduce_mesh(
    vertices: np.ndarray, faces: np.ndarray, target_vertices: int = 1000
) -> ReducedMesh:
    """Vertex clustering on a voxel grid sized for about ``target_vertices`` clusters.

    Each cluster is represented by its member closest to the cluster mean (so the coarse mesh
    is skinned with the body's own weights); faces whose corners fall in three different
    clusters survive, deduplicated, with their winding. Good enough for a silhouette at ~64 px, and
    deterministic. (trimesh's quadric decimation needs ``fast_simplification``, not
    installed here.)
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"expected vertices (V,3) and faces (F,3), got {v.shape}, {f.shape}")
    if target_vertices < 4:
        raise ValueError(f"target_vertices must be >= 4, got {target_vertices}")
    if target_vertices >= len(v):
        return ReducedMesh(torch.arange(len(v)), torch.as_tensor(f))
    extent = v.max(0) - v.min(0)
    # Surface meshes fill a voxel grid roughly like a shell: cluster count ~ (extent / cell)^2.
    cell = float(np.sqrt((extent[0] * extent[1] + extent[1] * extent[2] + extent[0] * extent[2])
                         / target_vertices))  # fmt: skip
    for _ in range(20):  # adjust the cell until the count is within 10 %
        key = np.floor((v - v.min(0)) / cell).astype(np.int64)
        _, cluster, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
        cluster = cluster.reshape(-1)
        n = len(counts)
        if abs(n - target_vertices) <= 0.1 * target_vertices:
            break
        cell *= (n / target_vertices) ** 0.5
    sums = np.zeros((n, 3))
    np.add.at(sums, cluster, v)
    mean = sums / counts[:, None]
    dist = np.linalg.norm(v - mean[cluster], axis=1)
    order = np.lexsort((dist, cluster))  # per cluster, nearest member first
    first = np.ones(len(order), dtype=bool)
    first[1:] = cluster[order][1:] != cluster[order][:-1]
    rep = order[first]  # rep[c] = representative vertex of cluster c (clusters sorted)
    fc = cluster[f]
    ok = (fc[:, 0] != fc[:, 1]) & (fc[:, 1] != fc[:, 2]) & (fc[:, 0] != fc[:, 2])
    fc = fc[ok]
    if len(fc):  # deduplicate by corner set, keeping each face's winding (front/back)
        _, first_face = np.unique(np.sort(fc, axis=1), axis=0, return_index=True)
        fc = fc[np.sort(first_face)]
    return ReducedMesh(torch.as_tensor(rep), torch.as_tensor(fc))


def posed_subset(
    body, keep: torch.Tensor, betas: torch.Tensor, rotmats: torch.Tensor, transl: torch.Tensor
) -> torch.Tensor:
    """(B,Vr,3) skinned positions of the body vertices ``keep`` (metres), differentiable.

    Same linear blend skinning as the body (smplx's ``batch_rigid_transform``), restricted to
    a vertex subset. Args: betas (B,10), rotmats (B,24,3,3) local rotations, transl (B,3).
    """
    from smplx.lbs import batch_rigid_transform

    batch = rotmats.shape[0]
    dtype = rotmats.dtype
    rest = body.rest_joints(betas.to(body.dtype)).to(dtype)
    if rest.shape[0] != batch:
        rest = rest.expand(batch, -1, -1)
    _, rel = batch_rigid_transform(rotmats, rest, body.parents, dtype=dtype)
    v = body.v_template[keep].to(dtype) + torch.einsum(
        "vcl,bl->bvc", body.shapedirs[keep].to(dtype), betas.to(dtype)
    )
    posedirs = body.posedirs
    if bool(posedirs.any()):
        eye = torch.eye(3, dtype=dtype, device=rotmats.device)
        feature = (rotmats[:, 1:] - eye).reshape(batch, -1)  # (B,207)
        pd = posedirs.reshape(posedirs.shape[0], -1, 3)[:, keep].to(dtype)
        v = v + torch.einsum("bp,pvc->bvc", feature, pd)
    weights = body.lbs_weights[keep].to(dtype)  # (Vr,24)
    transform = torch.einsum("vj,bjxy->bvxy", weights, rel[..., :3, :])
    posed = (transform[..., :3] @ v[..., None])[..., 0] + transform[..., 3]
    return posed + transl.to(dtype)[:, None]


def front_faces(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(B,F) bool: triangles facing a camera at the origin (outward normals, SMPL winding).

    For a closed mesh the silhouette is the union of the front-facing triangles alone, so the
    back half can be skipped (no gradient flows through the choice)."""
    with torch.no_grad():
        tri = vertices[:, faces.to(vertices.device)]  # (B,F,3,3)
        normal = torch.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0], dim=-1)
        return (normal * tri[:, :, 0]).sum(-1) < 0


def box_grid_coords(
    vertices: torch.Tensor, intrinsics: torch.Tensor, box: torch.Tensor, size: tuple[int, int]
) -> torch.Tensor:
    """(B,V,2) camera-frame vertices projected into grid-cell coordinates of ``box``.

    ``intrinsics`` (B,4) or (4,) ``(fx, fy, cx, cy)``; ``box`` (B,4) ``(x0, y0, x1, y1)`` image
    pixels; ``size`` ``(H, W)``. Cell ``(i, j)`` has its centre at ``(j, i)``.
    """
    h, w = size
    uv = project_points(vertices, intrinsics.to(vertices))
    box = box.to(vertices)
    scale = torch.stack([w / (box[:, 2] - box[:, 0]), h / (box[:, 3] - box[:, 1])], -1)
    return (uv - box[:, None, :2]) * scale[:, None] - 0.5


def soft_silhouette(
    coords: torch.Tensor,
    faces: torch.Tensor,
    size: tuple[int, int],
    sigma: float = 0.5,
    margin: float = 4.0,
    cull: bool = True,
    aggregate: str = "outline",
    face_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """(B,H,W) soft coverage in [0,1] of projected triangles, differentiable in ``coords``.

    Args:
        coords: (B,V,2) vertex positions in grid cells (x = column, y = row).
        faces: (F,3) vertex indices.
        size: grid ``(H, W)``.
        sigma: edge softness in cells.
        margin: pairs farther than ``margin * sigma`` outside a triangle are skipped.
        cull: False evaluates every (triangle, pixel) pair (for tests on tiny meshes).
        aggregate: ``"outline"`` (default): coverage is the sigmoid of the signed distance
            (in ``sigma``) to the silhouette's outline: outside, the exact distance to the
            nearest triangle; inside, the depth below the outline (see :func:`_inside_depth`).
            It does not depend on how finely the mesh is triangulated. ``"softras"``:
            SoftRas' product over all triangles, which widens the silhouette by
            ~``sigma * ln(K)`` where K triangles meet the outline (measured: IoU 0.79
            against a hard raster at 64 px, vs 0.95 for "outline").
        face_mask: optional (B,F) bool, the triangles to draw (e.g. :func:`front_faces`).
    """
    if aggregate not in ("outline", "softras"):
        raise ValueError(f"aggregate must be 'outline' or 'softras', got {aggregate!r}")
    if coords.ndim != 3 or coords.shape[-1] != 2:
        raise ValueError(f"coords must be (B,V,2), got {tuple(coords.shape)}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    h, w = size
    batch = coords.shape[0]
    faces = faces.to(coords.device)
    tri = coords[:, faces]  # (B,F,3,2)
    nf = faces.shape[0]
    if cull:
        # At least 1.5 cells: inside depths read the distance of the outside cells next to
        # the outline, which must have their nearest triangle among the pairs.
        b_idx, f_idx, pix = _candidate_pairs(
            tri.detach(), size, max(margin * sigma, 1.5), face_mask
        )
    else:
        grid = torch.arange(h * w, device=coords.device)
        b_idx = torch.arange(batch, device=coords.device).repeat_interleave(nf * h * w)
        f_idx = torch.arange(nf, device=coords.device).repeat_interleave(h * w).repeat(batch)
        pix = grid.repeat(batch * nf)
        if face_mask is not None:
            keep = face_mask.to(coords.device)[b_idx, f_idx]
            b_idx, f_idx, pix = b_idx[keep], f_idx[keep], pix[keep]
    px = torch.stack([(pix % w).to(coords.dtype), (pix // w).to(coords.dtype)], -1)  # (P,2)
    t = tri[b_idx, f_idx]  # (P,3,2)
    sd = _signed_distance(px, t) / sigma
    cell = b_idx * (h * w) + pix
    n_cells = batch * h * w
    if aggregate == "softras":
        total = coords.new_zeros(n_cells).index_add(0, cell, F.softplus(sd))
        return (1.0 - torch.exp(-total)).reshape(batch, h, w)
    # Signed distance (in sigma) of every cell centre to the nearest triangle: exact outside
    # the silhouette (the distance to the union's outline), > 0 inside.
    nearest = coords.new_full((n_cells,), -1e4).scatter_reduce(
        0, cell, sd, reduce="amax", include_self=False
    )
    nearest = nearest.reshape(batch, h, w)
    inside = nearest > 0
    depth = _inside_depth(nearest, inside, sigma)
    return torch.where(inside, torch.sigmoid(depth), torch.sigmoid(nearest))


def _inside_depth(nearest: torch.Tensor, inside: torch.Tensor, sigma: float) -> torch.Tensor:
    """(B,H,W) depth (in sigma) of inside cells below the outline.

    A triangle's own signed distance says nothing inside a fine mesh (every cell is near an
    edge shared with a neighbour), so inside cells measure to the silhouette outline: the
    nearest outside cell q (Euclidean distance transform of the hard mask, no gradient) is
    ``|p - q|`` away, and the outline lies ``d(q)`` before it, with ``d(q)`` the exact,
    differentiable outside distance. Cells whose nearest outside cell is off the grid take
    the distance to the grid border.
    """
    from scipy.ndimage import distance_transform_edt

    batch, h, w = nearest.shape
    mask = np.zeros((batch, h + 2, w + 2), dtype=bool)
    mask[:, 1:-1, 1:-1] = inside.detach().cpu().numpy()
    depth = torch.zeros_like(nearest)
    if not mask.any():
        return depth
    for b in range(batch):
        if not mask[b].any():
            continue
        dist, (qi, qj) = distance_transform_edt(mask[b], return_indices=True)
        qi, qj = torch.as_tensor(qi[1:-1, 1:-1] - 1), torch.as_tensor(qj[1:-1, 1:-1] - 1)
        on_grid = (qi >= 0) & (qi < h) & (qj >= 0) & (qj < w)
        outside_d = -nearest[b][qi.clamp(0, h - 1), qj.clamp(0, w - 1)]  # >= 0, sigma units
        gap = torch.as_tensor(dist[1:-1, 1:-1]).to(nearest) / sigma
        depth[b] = gap - torch.where(on_grid.to(nearest.device), outside_d, 0.5 / sigma)
    return depth


def _signed_distance(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(P,) distance of points p (P,2) to triangles t (P,3,2): + inside, - outside."""
    a, b = t, t.roll(-1, dims=1)  # edges a_k -> b_k
    e = b - a
    rel = p[:, None] - a  # (P,3,2)
    along = ((rel * e).sum(-1) / (e * e).sum(-1).clamp(min=1e-12)).clamp(0.0, 1.0)
    dist = (rel - along[..., None] * e).norm(dim=-1).min(-1).values
    cross = e[..., 0] * rel[..., 1] - e[..., 1] * rel[..., 0]  # (P,3) edge functions
    area = e[:, 0, 0] * (-e[:, 2, 1]) - e[:, 0, 1] * (-e[:, 2, 0])  # twice the signed area
    inside = ((cross * torch.sign(area)[:, None]) > 0).all(-1) & (area != 0)
    return torch.where(inside, dist, -dist)


def _candidate_pairs(tri: torch.Tensor, size: tuple[int, int], pad: float, face_mask=None):
    """(batch, face, pixel) index triples whose pixel centre lies in the face's padded box."""
    h, w = size
    lo = tri.amin(2) - pad  # (B,F,2)
    hi = tri.amax(2) + pad
    x0 = lo[..., 0].ceil().clamp(0, w).long()
    x1 = hi[..., 0].floor().clamp(-1, w - 1).long()
    y0 = lo[..., 1].ceil().clamp(0, h).long()
    y1 = hi[..., 1].floor().clamp(-1, h - 1).long()
    nx, ny = (x1 - x0 + 1).clamp(min=0), (y1 - y0 + 1).clamp(min=0)
    count = nx * ny
    if face_mask is not None:
        count = torch.where(face_mask.to(count.device), count, 0)
    count = count.reshape(-1)
    flat = torch.nonzero(count)[:, 0]
    count = count[flat]
    total = int(count.sum())
    device = tri.device
    if total == 0:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return empty, empty, empty
    # Enumerate each face's box cells without a Python loop: a running offset per face.
    owner = torch.repeat_interleave(torch.arange(len(flat), device=device), count)
    start = torch.cumsum(count, 0) - count
    k = torch.arange(total, device=device) - start[owner]
    face_flat = flat[owner]
    nxf = nx.reshape(-1)[face_flat]
    col = x0.reshape(-1)[face_flat] + k % nxf
    row = y0.reshape(-1)[face_flat] + k // nxf
    nf = tri.shape[1]
    return face_flat // nf, face_flat % nf, row * w + col


def soft_iou_loss(pred: torch.Tensor, mask: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(B,) ``1 - soft IoU`` of coverage ``pred`` (B,H,W) in [0,1] against ``mask`` (B,H,W)."""
    if pred.shape != mask.shape:
        raise ValueError(f"pred and mask shapes differ: {tuple(pred.shape)} vs {tuple(mask.shape)}")
    m = mask.to(pred)
    inter = (pred * m).flatten(1).sum(-1)
    union = (pred + m - pred * m).flatten(1).sum(-1)
    return 1.0 - inter / union.clamp(min=eps)


def mask_to_grid(mask: np.ndarray, box, size: tuple[int, int]) -> np.ndarray:
    """(H,W) float32 coverage of a binary image mask over ``box`` ``(x0,y0,x1,y1)`` on a
    ``size`` grid (area averaging; outside the image counts as background)."""
    import cv2

    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be (H,W), got shape {m.shape}")
    h, w = size
    x0, y0, x1, y1 = (float(c) for c in box)
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"box must have x1 > x0 and y1 > y0, got {box}")
    # Sample at 4x the grid, then average 4x4 blocks: an area resample of the box.
    sx, sy = 4 * w, 4 * h
    xs = x0 + (np.arange(sx) + 0.5) * (x1 - x0) / sx
    ys = y0 + (np.arange(sy) + 0.5) * (y1 - y0) / sy
    map_x, map_y = np.meshgrid(xs.astype(np.float32), ys.astype(np.float32))
    fine = cv2.remap(m.astype(np.float32), map_x, map_y, cv2.INTER_NEAREST,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)  # fmt: skip
    return fine.reshape(h, 4, w, 4).mean((1, 3)).astype(np.float32)
