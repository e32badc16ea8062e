"""SURREAL clips (``<sequence>_c%04d_info.mat``): per-frame SMPL parameters and GT joints.

Keys used (MATLAB shapes, ``T`` frames, see ``gulvarol/surreal`` README): ``pose`` (72 x T,
axis-angle), ``shape`` (10 x T), ``joints3D`` (3 x 24 x T, metres, world frame), ``joints2D``
(2 x 24 x T, pixels), ``camLoc`` (3 x 1, metres), ``zrot`` (T x 1, radians), ``gender``
(T x 1, 0 female / 1 male), optional ``sequence``.

**Frames.** SURREAL's ``pose[:3]`` is the MoCap root orientation *before* the random body
rotation ``zrot`` about the vertical axis; the world-frame orientation is
``Rx(pi/2) @ Rz(zrot) @ R(pose[:3])`` (``rotateBody`` in ``smpl_relations.py``). The rendering
camera is fixed: world -> computer-vision camera is ``x_c = R x_w + t`` with
``R = diag(1,-1,-1) @ [[0,0,1],[0,-1,0],[-1,0,0]]^T`` and ``t = -R @ camLoc``
(``getExtrinsicBlender.m``), intrinsics :data:`SURREAL_K` (f = 600 px, 320 x 240 images).

That ``R`` has determinant **-1**: the images are *mirror* views of the 3D scene (this is why
SURREAL users see "left and right swapped" in 2D). The body a method sees in the image is the
mirror of the SMPL body, i.e. a proper body with left and right exchanged. The camera-frame
outputs here (:meth:`SurrealClip.joints3d_camera`, :meth:`SurrealClip.smpl_camera`) are that
proper, image-consistent body: mirrored positions with left/right joint labels swapped, and the
SMPL pose mirrored the standard way (swap left/right joints, negate the y and z axis-angle
components — exact for a left/right-symmetric template, an approximation for SMPL's slightly
asymmetric one).

**PVE** needs a body model: :func:`surreal_gt_vertices` takes any callable
``body(betas=(B,10), global_orient=(B,3), body_pose=(B,23,3))`` returning an object with
``.vertices`` ``(B, V, 3)`` (and optionally ``.joints``), e.g. the s2m SMPL-layout body. SURREAL
was rendered with the *gendered* SMPL models (``clip.gender``); with another body the GT
vertices are an approximation of the rendered ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import roma
import torch

from s2m_model.data.datasets._common import load_mat, numeric, require

SMPL24_JOINTS: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hand", "right_hand",
)  # fmt: skip
#: Left/right swap of the 24 SMPL joints.
SMPL24_FLIP_PERM: tuple[int, ...] = (
    0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22,
)  # fmt: skip
#: SURREAL intrinsics (Blender: 60 mm lens, 32 mm sensor, 320 x 240 pixels).
SURREAL_K = np.array([[600.0, 0.0, 160.0], [0.0, 600.0, 120.0], [0.0, 0.0, 1.0]])
SURREAL_IMAGE_SIZE = (320, 240)  # width, height in pixels

_R_WORLD2BCAM = np.array([[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [-1.0, 0.0, 0.0]]).T
_R_BCAM2CV = np.diag([1.0, -1.0, -1.0])
_MIRROR_X = np.diag([-1.0, 1.0, 1.0])
_KEYS = ("pose", "shape", "joints3D", "joints2D", "camLoc", "zrot", "gender", "sequence")


def surreal_extrinsics(cam_loc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World -> camera ``(R (3, 3), t (3,) metres)`` of a SURREAL clip; ``det R = -1``."""
    cam_loc = np.asarray(cam_loc, dtype=np.float64).reshape(3)
    R = _R_BCAM2CV @ _R_WORLD2BCAM
    return R, -R @ cam_loc


def _rotmat(rotvec: np.ndarray) -> np.ndarray:
    return roma.rotvec_to_rotmat(torch.as_tensor(rotvec, dtype=torch.float64)).numpy()


def _rotvec(rotmat: np.ndarray) -> np.ndarray:
    return roma.rotmat_to_rotvec(torch.as_tensor(rotmat, dtype=torch.float64)).numpy()


def mirror_smpl_pose(global_orient: np.ndarray, body_pose: np.ndarray) -> tuple[np.ndarray, ...]:
    """Mirror SMPL rotations across the body's x = 0 plane (left <-> right).

    Args:
        global_orient: ``(T, 3)`` axis-angle; body_pose: ``(T, 23, 3)`` axis-angle (radians).

    Returns:
        Mirrored ``(global_orient (T, 3), body_pose (T, 23, 3))``: joints swapped left/right and
        the y, z axis-angle components negated (``M R M`` with ``M = diag(-1, 1, 1)``).
    """
    full = np.concatenate([global_orient[:, None], body_pose], axis=1)[:, list(SMPL24_FLIP_PERM)]
    full = full * np.array([1.0, -1.0, -1.0])
    return full[:, 0], full[:, 1:]


@dataclass(frozen=True)
class SurrealClip:
    """One SURREAL clip of ``T`` frames (arrays frame-first).

    ``betas`` ``(T, 10)``; ``pose_root`` ``(T, 3)`` and ``body_pose`` ``(T, 23, 3)``
    axis-angle radians as stored (``pose_root`` before ``zrot``); ``joints3d`` ``(T, 24, 3)``
    metres, **world** frame, SMPL joint order; ``joints2d`` ``(T, 24, 2)`` pixels (projection
    of ``joints3d``); ``zrot`` ``(T,)`` radians; ``gender`` ``(T,)`` 0 female / 1 male;
    ``cam_loc`` ``(3,)`` metres.
    """

    betas: np.ndarray
    pose_root: np.ndarray
    body_pose: np.ndarray
    joints3d: np.ndarray
    joints2d: np.ndarray
    zrot: np.ndarray
    gender: np.ndarray
    cam_loc: np.ndarray
    sequence: str

    def __len__(self) -> int:
        return int(self.betas.shape[0])

    @property
    def extrinsics(self) -> tuple[np.ndarray, np.ndarray]:
        """World -> camera ``(R, t)``; see :func:`surreal_extrinsics`."""
        return surreal_extrinsics(self.cam_loc)

    def global_orient_world(self) -> np.ndarray:
        """``(T, 3)`` axis-angle of the root in the world frame: ``Rx(pi/2) Rz(zrot) R(pose)``."""
        c, s = np.cos(self.zrot), np.sin(self.zrot)
        rz = np.zeros((len(self), 3, 3))
        rz[:, 0, 0], rz[:, 0, 1], rz[:, 1, 0], rz[:, 1, 1], rz[:, 2, 2] = c, -s, s, c, 1.0
        rx90 = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
        return _rotvec(rx90 @ rz @ _rotmat(self.pose_root))

    def smpl_world(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(betas, global_orient, body_pose)`` of the SMPL body in the world frame."""
        return self.betas, self.global_orient_world(), self.body_pose

    def joints3d_camera(self) -> np.ndarray:
        """``(T, 24, 3)`` metres: the image-consistent body in the camera frame, SMPL order.

        The camera transform mirrors (``det R = -1``), so labels are swapped left/right to
        keep a proper body whose joint ``i`` is where the image shows SMPL joint ``i``.
        """
        R, t = self.extrinsics
        cam = self.joints3d @ R.T + t
        return cam[:, list(SMPL24_FLIP_PERM)]

    def smpl_camera(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(betas, global_orient, body_pose)`` of the image-consistent body, camera frame.

        With ``R = M P`` (``M = diag(-1,1,1)``, ``P`` proper), the camera-frame body is
        ``M (P R_world) M`` applied to the mirrored pose (see :func:`mirror_smpl_pose`).
        """
        R, _ = self.extrinsics
        proper = _MIRROR_X @ R
        go_cam_mirror = _rotvec(proper @ _rotmat(self.global_orient_world()))
        global_orient, body_pose = mirror_smpl_pose(go_cam_mirror, self.body_pose)
        return self.betas, global_orient, body_pose


def _frames_last(arr: np.ndarray, lead: tuple[int, ...], key: str, path: Path) -> np.ndarray:
    """MATLAB ``lead x T`` (a trailing singleton T may be dropped) -> ``T x reversed(lead)``."""
    # load_mat reversed the axes: (T, *reversed(lead)) or reversed(lead) when T == 1 was dropped.
    rev = tuple(reversed(lead))
    if arr.shape == rev:
        arr = arr[None]
    if arr.ndim != len(lead) + 1 or arr.shape[1:] != rev:
        raise ValueError(
            f"{path}: key {key!r} must have MATLAB shape {' x '.join(map(str, lead))} x T, "
            f"got {tuple(reversed(arr.shape))}"
        )
    return np.ascontiguousarray(arr)


def _per_frame(arr: np.ndarray, t: int, key: str, path: Path) -> np.ndarray:
    flat = numeric(arr, key, path).reshape(-1)
    if flat.size == 1:
        return np.full(t, flat[0])
    if flat.size != t:
        raise ValueError(f"{path}: key {key!r} has {flat.size} entries, expected 1 or {t}")
    return flat


def load_surreal_info(path: str | Path) -> SurrealClip:
    """Load a SURREAL ``*_info.mat`` clip (MATLAB v5, read with ``scipy.io``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a .mat file, missing key, wrong shapes or non-finite values (the message
            names the file and the key).
    """
    path = Path(path)
    mat = load_mat(path, _KEYS)
    require(
        mat, ("pose", "shape", "joints3D", "joints2D", "camLoc", "zrot", "gender"), path,
        "a SURREAL *_info.mat",
    )  # fmt: skip
    pose = _frames_last(numeric(mat["pose"], "pose", path), (72,), "pose", path)
    t = pose.shape[0]
    shape = _frames_last(numeric(mat["shape"], "shape", path), (10,), "shape", path)
    j3d = _frames_last(numeric(mat["joints3D"], "joints3D", path), (3, 24), "joints3D", path)
    j2d = _frames_last(numeric(mat["joints2D"], "joints2D", path), (2, 24), "joints2D", path)
    for key, arr in (("shape", shape), ("joints3D", j3d), ("joints2D", j2d)):
        if arr.shape[0] != t:
            raise ValueError(f"{path}: key {key!r} has {arr.shape[0]} frames, 'pose' has {t}")
    cam_loc = numeric(mat["camLoc"], "camLoc", path).reshape(-1)
    if cam_loc.size != 3:
        raise ValueError(f"{path}: key 'camLoc' must hold 3 values, got {cam_loc.size}")
    zrot = _per_frame(mat["zrot"], t, "zrot", path)
    gender = _per_frame(mat["gender"], t, "gender", path).astype(np.int64)
    for key, arr in (("pose", pose), ("shape", shape), ("joints3D", j3d), ("joints2D", j2d),
                     ("camLoc", cam_loc), ("zrot", zrot)):  # fmt: skip
        if not np.isfinite(arr).all():
            raise ValueError(f"{path}: key {key!r} contains NaN/inf")
    sequence = path.name.removesuffix("_info.mat")
    if "sequence" in mat and np.asarray(mat["sequence"]).dtype.kind in "US":
        sequence = str(np.asarray(mat["sequence"]).reshape(-1)[0])
    pose = pose.reshape(t, 24, 3)
    return SurrealClip(
        betas=shape,
        pose_root=pose[:, 0],
        body_pose=pose[:, 1:],
        joints3d=j3d,
        joints2d=j2d,
        zrot=zrot,
        gender=gender,
        cam_loc=cam_loc,
        sequence=sequence,
    )


def find_surreal_info(root: str | Path) -> list[Path]:
    """All ``*_info.mat`` files under ``root`` (e.g. ``SURREAL/data/cmu/test/run0``), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    return sorted(p for p in root.rglob("*_info.mat") if not p.name.startswith("."))


def surreal_gt_vertices(
    clip: SurrealClip,
    body: Callable[..., Any],
    *,
    frame: Literal["camera", "world"] = "camera",
    batch_size: int = 128,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Ground-truth mesh vertices ``(T, V, 3)`` metres of a clip, from a body model.

    Args:
        clip: the clip.
        body: ``body(betas=(B,10), global_orient=(B,3), body_pose=(B,23,3))`` -> object with
            ``.vertices`` ``(B, V, 3)`` and optionally ``.joints`` ``(B, >=1, 3)``.
        frame: ``"camera"`` (image-consistent body, see the module docstring) or ``"world"``.
        batch_size: frames per body call.
        dtype, device: of the tensors passed to ``body``.

    Returns:
        Vertices in the chosen frame. When the body returns ``.joints``, the mesh is translated
        so its joint 0 (pelvis) sits on the GT pelvis of that frame; otherwise it is left where
        the body model puts it (compare root-aligned).
    """
    if frame == "camera":
        betas, go, bp = clip.smpl_camera()
        pelvis = clip.joints3d_camera()[:, 0]
    elif frame == "world":
        betas, go, bp = clip.smpl_world()
        pelvis = clip.joints3d[:, 0]
    else:
        raise ValueError(f"frame must be 'camera' or 'world', got {frame!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    out = []
    for s in range(0, len(clip), batch_size):
        sl = slice(s, s + batch_size)

        def _t(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=device)

        with torch.no_grad():
            res = body(betas=_t(betas[sl]), global_orient=_t(go[sl]), body_pose=_t(bp[sl]))
        verts = getattr(res, "vertices", None)
        if not isinstance(verts, torch.Tensor) or verts.ndim != 3 or verts.shape[-1] != 3:
            raise ValueError("body(...) must return an object with .vertices of shape (B, V, 3)")
        joints = getattr(res, "joints", None)
        if isinstance(joints, torch.Tensor) and joints.ndim == 3 and joints.shape[1] >= 1:
            verts = verts - joints[:, :1] + _t(pelvis[sl])[:, None]
        out.append(verts)
    return torch.cat(out, dim=0)
