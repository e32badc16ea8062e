"""A small z-buffer rasteriser for the data engine: depth, face labels and silhouettes.

Hand-written (vectorised numpy), for one line of reasoning: Pillow's polygon fill takes a
Python call per triangle and gives no depth, and GL renderers need display/EGL libraries that
robots' containers and CI lack. Camera frame: x right, y down, z forward (metres); pixel
``(i, j)`` spans ``[i, i+1) x [j, j+1)``.
"""

from __future__ import annotations

import numpy as np

from s2m_model.camera import Camera

_NO_HIT = np.iinfo(np.int64).max
_LABEL_BITS = 6  # face labels < 64 (SMPL has 24 parts)
_DEPTH_UNIT = 1e-5  # z-buffer keys hold depth in 10 um steps (exact enough, fits in int64)


def rasterize(
    vertices: np.ndarray,
    faces: np.ndarray,
    camera: Camera,
    labels: np.ndarray | None = None,
    near: float = 0.05,
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest surface per pixel: ``(depth (H,W) float32 metres, inf where empty; label (H,W)
    int16, the nearest face's label, -1 where empty)``.

    ``vertices`` (V,3) in the camera frame; ``faces`` (F,3); ``camera`` the intrinsics of the
    ``camera.width`` x ``camera.height`` raster; ``labels`` (F,) ints in [0, 64) (default 0).
    Pixel (i, j) spans [i, i+1) x [j, j+1) and is tested at its centre; depth is interpolated
    perspective-correctly. Faces with a vertex nearer than ``near`` are skipped.
    """
    require_camera(camera)
    width, height = camera.width, camera.height
    keys = np.full(width * height, _NO_HIT, dtype=np.int64)
    v = np.asarray(vertices, dtype=np.float64)
    z = v[:, 2]
    uv = camera.project(v)  # vertices behind ``near`` get clamped pixels, but no face uses them
    front = (z[faces] > near).all(1)
    tri = faces[front]
    lab = np.zeros(len(tri), np.int64) if labels is None else np.asarray(labels)[front]
    pu, pv, pz = uv[tri, 0], uv[tri, 1], z[tri]  # (F,3) each
    # Elementwise min/max over the 3 columns: numpy's axis-1 reductions of width 3 are ~10x slower.
    umin = np.minimum(np.minimum(pu[:, 0], pu[:, 1]), pu[:, 2])
    umax = np.maximum(np.maximum(pu[:, 0], pu[:, 1]), pu[:, 2])
    vmin = np.minimum(np.minimum(pv[:, 0], pv[:, 1]), pv[:, 2])
    vmax = np.maximum(np.maximum(pv[:, 0], pv[:, 1]), pv[:, 2])
    i0 = np.ceil(umin - 0.5).astype(np.int64).clip(0, width)
    i1 = np.floor(umax - 0.5).astype(np.int64).clip(-1, width - 1)
    j0 = np.ceil(vmin - 0.5).astype(np.int64).clip(0, height)
    j1 = np.floor(vmax - 0.5).astype(np.int64).clip(-1, height - 1)
    area = (pu[:, 1] - pu[:, 0]) * (pv[:, 2] - pv[:, 0]) - (pu[:, 2] - pu[:, 0]) * (
        pv[:, 1] - pv[:, 0]
    )
    extent = np.maximum(i1 - i0, j1 - j0) + 1
    todo = (i1 >= i0) & (j1 >= j0) & (np.abs(area) > 1e-12)
    # Bucket faces by their pixel extent so each bucket is one dense (F_k, k*k) evaluation.
    k = 1
    while todo.any():
        sel = np.flatnonzero(todo & (extent <= k))
        todo[sel] = False
        if sel.size:
            _raster_bucket(keys, width, sel, k, i0, j0, i1, j1, pu, pv, pz, area, lab)
        k *= 2
    hit = keys != _NO_HIT
    depth = np.where(hit, (keys >> _LABEL_BITS) * _DEPTH_UNIT, np.inf).astype(np.float32)
    label = np.where(hit, keys & ((1 << _LABEL_BITS) - 1), -1).astype(np.int16)
    return depth.reshape(height, width), label.reshape(height, width)


def _raster_bucket(keys, width, sel, k, i0, j0, i1, j1, pu, pv, pz, area, lab) -> None:
    di, dj = np.meshgrid(np.arange(k), np.arange(k), indexing="xy")
    ii = i0[sel, None] + di.reshape(1, -1)
    jj = j0[sel, None] + dj.reshape(1, -1)
    ok = (ii <= i1[sel, None]) & (jj <= j1[sel, None])
    x, y = ii + 0.5, jj + 0.5
    u, v, a = pu[sel], pv[sel], area[sel, None]
    # Barycentric weights from edge functions (sign-normalised: either winding is filled).
    w0 = ((u[:, 1, None] - x) * (v[:, 2, None] - y) - (u[:, 2, None] - x) * (v[:, 1, None] - y)) / a
    w1 = ((u[:, 2, None] - x) * (v[:, 0, None] - y) - (u[:, 0, None] - x) * (v[:, 2, None] - y)) / a
    w2 = 1.0 - w0 - w1
    ok &= (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
    zs = pz[sel]
    inv_z = w0 / zs[:, 0, None] + w1 / zs[:, 1, None] + w2 / zs[:, 2, None]
    # One int64 key per hit, (depth, label) packed, so a single minimum.at keeps the nearest
    # surface together with its label.
    depth_key = np.round(1.0 / (inv_z[ok] * _DEPTH_UNIT)).astype(np.int64)
    label = np.broadcast_to(lab[sel, None], ok.shape)[ok]
    np.minimum.at(keys, (jj * width + ii)[ok], (depth_key << _LABEL_BITS) | label)


def depth_and_mask(
    vertices: np.ndarray,
    faces: np.ndarray,
    camera: Camera,
    mask_size: tuple[int, int],
    depth_scale: float = 0.5,
    labels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(depth, label, mask)``: z-buffer and face labels at ``depth_scale`` x the image size
    (see :func:`rasterize`) and the (H_m,W_m) bool silhouette at ``mask_size``.

    ``vertices`` (V,3) camera frame (metres); ``camera`` the image's intrinsics (its size is
    the image size). A mask pixel covers ``image size / mask_size`` image pixels and is set
    when its centre is covered.
    """
    dw = max(1, round(camera.width * depth_scale))
    dh = max(1, round(camera.height * depth_scale))
    depth, label = rasterize(vertices, faces, camera.scaled(dw, dh), labels)
    mask_depth, _ = rasterize(vertices, faces, camera.scaled(*mask_size))
    return depth, label, np.isfinite(mask_depth)


def require_camera(camera: object) -> None:
    """ValueError unless ``camera`` is a :class:`~s2m_model.camera.Camera`."""
    if not isinstance(camera, Camera):
        raise ValueError(
            f"camera must be an s2m_model.camera.Camera, got {type(camera).__name__} "
            "(build one with Camera.coerce((fx, fy, cx, cy), width, height))"
        )
