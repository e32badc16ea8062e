"""Headless mesh rendering for previews, overlays and silhouettes.

Hand-written on purpose, and small: OpenGL renderers (pyrender, moderngl) need a display or
OSMesa/EGL system libraries that robots' containers and CI lack. Pillow rasterises the
triangles; we only project, depth-sort (painter's algorithm) and shade (Lambert).

Camera frame: x right, y down, z forward (OpenCV); pixel (u, v) = (fx x/z + cx, fy y/z + cy),
with the one :class:`s2m_model.camera.Camera` (e.g. ``Camera.from_fov(w, h)``, whose field of
view defaults to :data:`s2m_model.camera.DEFAULT_FOV_DEG`).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from s2m_model.camera import Camera

__all__ = ["look_at_body", "render_mesh", "render_silhouette", "save_ply"]


def look_at_body(
    vertices: np.ndarray, camera: Camera, yaw_deg: float = 0.0, margin: float = 1.15
) -> np.ndarray:
    """Body-frame vertices (V,3) -> camera-frame vertices framing the whole body from the front
    (rotated by ``yaw_deg`` about the body's vertical axis)."""
    yaw = np.radians(yaw_deg)
    rot_y = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    # Facing the camera (a rotation of pi about X): body +Y -> camera -y, +Z -> -z; the
    # body's left (+X) appears on the image right.
    to_cam = np.diag([1.0, -1.0, -1.0]) @ rot_y
    v = vertices @ to_cam.T
    centre = 0.5 * (v.min(0) + v.max(0))
    v = v - centre
    half_h = (v[:, 1].max() - v[:, 1].min()) / 2 * margin
    half_w = (v[:, 0].max() - v[:, 0].min()) / 2 * margin
    dist = max(half_h * camera.fy / (camera.height / 2), half_w * camera.fx / (camera.width / 2))
    return v + np.array([0.0, 0.0, dist + (v[:, 2].max() - v[:, 2].min())])


def render_mesh(
    vertices: np.ndarray,
    faces: np.ndarray,
    camera: Camera,
    image: np.ndarray | None = None,
    color: tuple[int, int, int] = (120, 170, 230),
    alpha: float = 1.0,
    background: tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray:
    """Shaded mesh over ``image`` (H,W,3 uint8) or a plain background; returns H,W,3 uint8.

    ``vertices`` (V,3) are in the camera frame (metres, z forward). Faces behind the camera are
    skipped. ``alpha`` < 1 blends the mesh over the image (overlays).
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    if image is None:
        base = Image.new("RGB", (camera.width, camera.height), background)
    else:
        base = Image.fromarray(np.ascontiguousarray(image[..., :3]).astype(np.uint8))
    tri = vertices[faces]  # (F,3,3)
    visible = (tri[:, :, 2] > 1e-3).all(1)
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
    centre = tri.mean(1)
    # Back-face culling: the normal must point towards the camera (mesh faces are CCW outward).
    facing = (normals * centre).sum(1) < 0
    keep = np.flatnonzero(visible & facing)
    order = keep[np.argsort(-centre[keep, 2])]  # far to near
    light = -centre[order] / np.linalg.norm(centre[order], axis=1, keepdims=True)
    shade = 0.35 + 0.65 * np.clip((normals[order] * light).sum(1), 0.0, 1.0)
    px = camera.project(tri[order].reshape(-1, 3)).reshape(-1, 3, 2)
    layer = Image.new("RGB", base.size, (0, 0, 0))
    mask = Image.new("L", base.size, 0)
    draw, mdraw = ImageDraw.Draw(layer), ImageDraw.Draw(mask)
    rgb = (np.array(color)[None] * shade[:, None]).astype(np.uint8)
    for poly, c in zip(px, rgb, strict=True):
        pts = [tuple(p) for p in poly]
        draw.polygon(pts, fill=tuple(int(x) for x in c))
        mdraw.polygon(pts, fill=255)
    m = (np.asarray(mask, dtype=np.float32) / 255.0 * alpha)[..., None]
    out = np.asarray(base, dtype=np.float32) * (1 - m) + np.asarray(layer, dtype=np.float32) * m
    return out.astype(np.uint8)


def render_silhouette(vertices: np.ndarray, faces: np.ndarray, camera: Camera) -> np.ndarray:
    """(H,W) bool silhouette of the mesh (camera-frame vertices)."""
    tri = np.asarray(vertices, dtype=np.float64)[faces]
    keep = (tri[:, :, 2] > 1e-3).all(1)
    px = camera.project(tri[keep].reshape(-1, 3)).reshape(-1, 3, 2)
    mask = Image.new("1", (camera.width, camera.height), 0)
    draw = ImageDraw.Draw(mask)
    for poly in px:
        draw.polygon([tuple(p) for p in poly], fill=1)
    return np.asarray(mask, dtype=bool)


def save_ply(path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Write a mesh with trimesh (binary PLY)."""
    import trimesh

    trimesh.Trimesh(np.asarray(vertices), np.asarray(faces), process=False).export(str(path))
