"""Keypoint visibility for the data engine: in the image and not hidden by the body's mesh.

A keypoint is visible when it projects inside the image and the z-buffer surface at its pixel
(:func:`s2m_model.data.raster.depth_and_mask`) is not nearer than its depth by more than a
per-keypoint tolerance (:class:`VisibilityModel`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from s2m_model.camera import MIN_DEPTH, Camera
from s2m_model.data.raster import require_camera
from s2m_model.skeletons import get_format
from s2m_model.smpl_layout import NUM_JOINTS, PARENTS

# Own-limb margin of the occlusion test (metres, see VisibilityModel). Face points: none (the
# back of the head hides the face). Ears stick out sideways: seen from behind they stay visible,
# from the other side the head hides them. Every other keypoint is a joint inside the body:
# its own limb hides it only when seen through its full thickness (COCO's sense: a shoulder
# seen from behind is visible).
FACE_KEYPOINTS = frozenset({
    "nose", "left_eye", "right_eye", "left_eye_inner", "left_eye_outer", "right_eye_inner",
    "right_eye_outer", "mouth_left", "mouth_right",
})  # fmt: skip
EAR_KEYPOINTS = frozenset({"left_ear", "right_ear"})
EAR_MARGIN_M = 0.05


@dataclass
class VisibilityModel:
    """Per-keypoint occlusion rules of one format. J = the format's joints, 24 SMPL parts.

    A surface nearer than the keypoint hides it when it is nearer by more than ``tolerance``
    (another body part) or ``own_tolerance`` (one of ``own_parts``).

    Attributes:
        tolerance: (J,) metres, ``base + factor * d`` with ``d`` the keypoint's depth below the
            rest body's skin (a joint inside a limb sits that far behind its own surface).
        own_tolerance: (J,) metres, ``tolerance`` plus a margin for the keypoint's own limb,
            which is thicker than ``2 d`` seen from the side or from behind: 0 for
            ``FACE_KEYPOINTS``, ``EAR_MARGIN_M`` for ears, ``own_margin_m`` else.
        own_parts: (J,24) bool, the parts of the rest body's vertices within 3 cm of the
            keypoint's nearest skin, and their parents in the SMPL tree.
    """

    tolerance: np.ndarray
    own_tolerance: np.ndarray
    own_parts: np.ndarray


def face_parts(body) -> np.ndarray:
    """(F,) int64 body part (SMPL joint index) of each face: the largest summed skin weight."""
    weights = body.lbs_weights.detach().double().cpu().numpy()
    return weights[body.faces].sum(1).argmax(1)


def visibility_models(
    body,
    formats: Sequence[str],
    *,
    base_m: float = 0.02,
    depth_factor: float = 2.0,
    own_margin_m: float = 0.12,
) -> dict[str, VisibilityModel]:
    """:class:`VisibilityModel` per format, from the zero-shape rest body.

    ``tolerance = base_m + depth_factor * d`` (``d``: the keypoint's depth below the rest skin);
    ``own_margin_m`` is the own-limb margin of non-face, non-ear keypoints (metres).
    """
    parents = np.array(PARENTS)
    with torch.no_grad():
        out = body()
        verts = out.vertices
        rest = verts[0].double().cpu().numpy()
        vertex_part = body.lbs_weights.detach().cpu().numpy().argmax(1)
        models = {}
        for fmt in formats:
            pts = out.joints if fmt == "smpl24" else body.regress(verts, fmt)
            pts = pts[0].double().cpu().numpy()
            dist = np.linalg.norm(rest[None] - pts[:, None], axis=-1)  # (J,V)
            near = dist.min(1)
            own = np.zeros((len(pts), NUM_JOINTS), dtype=bool)
            for j in range(len(pts)):
                core = np.unique(vertex_part[dist[j] <= near[j] + 0.03])
                up = parents[core]
                own[j, core] = True
                own[j, up[up >= 0]] = True
            margin = np.array([
                0.0 if n in FACE_KEYPOINTS else EAR_MARGIN_M if n in EAR_KEYPOINTS
                else own_margin_m for n in get_format(fmt).joint_names
            ])  # fmt: skip
            tol = base_m + depth_factor * near
            own_tol = tol + margin
            models[fmt] = VisibilityModel(tol, own_tol, own)
    return models


def keypoint_visibility(
    points: np.ndarray,
    camera: Camera,
    depth: np.ndarray,
    label: np.ndarray,
    model: VisibilityModel,
) -> np.ndarray:
    """(J,) bool: in front of the camera, inside the image and not hidden by the mesh.

    ``points`` (J,3) camera frame; ``camera`` the image's intrinsics; ``depth``/``label`` a
    z-buffer with SMPL part labels (any resolution covering the image, from
    :func:`depth_and_mask`). A keypoint is hidden when the
    surface in its z-buffer pixel is nearer than its depth minus the tolerance for that
    surface's body part (:class:`VisibilityModel`) minus one z-buffer pixel's size at that
    depth (the surface varies within a pixel).
    """
    require_camera(camera)
    width, height = camera.width, camera.height
    z = points[:, 2]
    zc = np.maximum(z, MIN_DEPTH)
    u, v = camera.project(points).T
    inside = (z > 1e-3) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
    dh, dw = depth.shape
    sx, sy = dw / width, dh / height
    iu = np.clip(np.floor(u * sx), 0, dw - 1).astype(np.int64)
    iv = np.clip(np.floor(v * sy), 0, dh - 1).astype(np.int64)
    front, part = depth[iv, iu], label[iv, iu]
    own = model.own_parts[np.arange(len(z)), np.clip(part, 0, NUM_JOINTS - 1)] & (part >= 0)
    tolerance = np.where(own, model.own_tolerance, model.tolerance)
    hidden = front < z - tolerance - zc / (camera.fx * sx)
    return inside & ~hidden

