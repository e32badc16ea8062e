"""The one pinhole camera of s2m: intrinsics, projection and unprojection.

Frame: the camera frame of OpenCV/ROS optical frames (x right, y down, z forward, metres);
pixels have their origin at the top-left image corner (u right, v down). Every layer — the
pipeline, the renderer, the data engine, lifter training and the ROS node — builds its camera
here, so there is one field-of-view default (:data:`DEFAULT_FOV_DEG`) and one projection.

Intrinsics cross module boundaries as a :class:`Camera` (one image) or as an ``(..., 4)`` array
``(fx, fy, cx, cy)`` in pixels (a batch, e.g. a data shard), never as loose tuples.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

#: Horizontal field of view (degrees) assumed when no calibration is given: a typical webcam /
#: robot head camera at 640x480. Used by the pipeline, the renderer, `s2m run` and the node.
DEFAULT_FOV_DEG = 55.0

#: Smallest depth (metres) a point is clamped to before dividing, so that points at or behind
#: the camera plane give finite pixels instead of inf/NaN.
MIN_DEPTH = 1e-6

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def project_points(points: ArrayT, intrinsics: ArrayT) -> ArrayT:
    """Pinhole projection of camera-frame points, batched.

    Args:
        points: ``(..., J, 3)`` camera-frame points in metres (numpy or torch).
        intrinsics: ``(..., 4)`` ``(fx, fy, cx, cy)`` in pixels, broadcast over ``J``; the same
            array type as ``points``.

    Returns:
        ``(..., J, 2)`` pixels ``(u, v)``. Depth is clamped to :data:`MIN_DEPTH`.
    """
    f = intrinsics[..., None, 0:2]
    c = intrinsics[..., None, 2:4]
    if isinstance(points, torch.Tensor):
        z = points[..., 2:3].clamp(min=MIN_DEPTH)
    else:
        z = np.clip(points[..., 2:3], MIN_DEPTH, None)
    return f * points[..., 0:2] / z + c


def unproject_points(uv: ArrayT, depth: ArrayT, intrinsics: ArrayT) -> ArrayT:
    """Inverse of :func:`project_points`: pixels at a given depth -> camera-frame points.

    Args:
        uv: ``(..., J, 2)`` pixels.
        depth: ``(..., J)`` depth ``z`` in metres.
        intrinsics: ``(..., 4)`` ``(fx, fy, cx, cy)`` in pixels.

    Returns:
        ``(..., J, 3)`` camera-frame points in metres.
    """
    f = intrinsics[..., None, 0:2]
    c = intrinsics[..., None, 2:4]
    xy = (uv - c) / f * depth[..., None]
    if isinstance(uv, torch.Tensor):
        return torch.cat([xy, depth[..., None]], dim=-1)
    return np.concatenate([xy, depth[..., None]], axis=-1)


@dataclass(frozen=True)
class Camera:
    """Pinhole intrinsics of one image, in pixels.

    Attributes:
        fx, fy: focal lengths (pixels).
        cx, cy: principal point (pixels, from the top-left corner).
        width, height: image size (pixels) the intrinsics belong to.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        values = (self.fx, self.fy, self.cx, self.cy)
        if not all(math.isfinite(v) for v in values) or self.fx <= 0 or self.fy <= 0:
            raise ValueError(
                f"camera intrinsics must be finite with fx, fy > 0, got {list(values)}"
            )
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"camera image size must be positive, got {self.width}x{self.height}")

    # ------------------------------------------------------------------ constructors

    @classmethod
    def from_fov(cls, width: int, height: int, fov_deg: float = DEFAULT_FOV_DEG) -> Camera:
        """Square pixels, principal point at the image centre, horizontal FOV ``fov_deg``."""
        if not 0.0 < fov_deg < 180.0:
            raise ValueError(f"fov_deg must be in (0, 180), got {fov_deg}")
        f = 0.5 * width / math.tan(math.radians(fov_deg) / 2.0)
        return cls(f, f, width / 2.0, height / 2.0, int(width), int(height))

    @classmethod
    def from_k(cls, k: Any, width: int, height: int) -> Camera:
        """From a 3x3 intrinsic matrix ``K`` (or its 9 row-major values)."""
        arr = np.asarray(k, dtype=np.float64).reshape(3, 3)
        return cls(float(arr[0, 0]), float(arr[1, 1]), float(arr[0, 2]), float(arr[1, 2]),
                   int(width), int(height))

    @classmethod
    def from_camera_info(cls, info: Any, width: int | None = None,
                         height: int | None = None) -> Camera:
        """From a ROS ``sensor_msgs/CameraInfo`` (message or dict with ``k``, ``width``,
        ``height``), rescaled to a ``width`` x ``height`` image when the calibration was made
        at another resolution (e.g. a binned or resized stream).

        Raises:
            ValueError: K has no finite, positive focal lengths.
        """
        get = info.get if isinstance(info, Mapping) else lambda key: getattr(info, key)
        cam_w, cam_h = int(get("width") or 0), int(get("height") or 0)
        width = int(width if width is not None else cam_w)
        height = int(height if height is not None else cam_h)
        try:
            arr = np.asarray(get("k"), dtype=np.float64).reshape(3, 3)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"CameraInfo k must hold 9 numbers: {exc}") from exc
        cam = cls.from_k(arr, cam_w or width, cam_h or height)
        return cam.scaled(width, height)

    @classmethod
    def coerce(cls, camera: Any, width: int, height: int,
               fov_deg: float = DEFAULT_FOV_DEG) -> Camera:
        """A camera for a ``width`` x ``height`` image from what a user passes.

        Args:
            camera: None (:meth:`from_fov`), a :class:`Camera` (rescaled if it belongs to
                another image size), a sequence ``(fx, fy, cx, cy)`` in pixels, or a 3x3 K.

        Raises:
            ValueError: malformed intrinsics (wrong size, non-finite, non-positive focal length).
        """
        if camera is None:
            return cls.from_fov(width, height, fov_deg)
        if isinstance(camera, Camera):
            return camera.scaled(width, height)
        try:
            arr = np.asarray(camera, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"camera must be (fx, fy, cx, cy) or a 3x3 K, got {camera!r}") from exc
        if arr.shape == (3, 3):
            return cls.from_k(arr, width, height)
        if arr.shape == (4,):
            return cls(*(float(v) for v in arr), int(width), int(height))
        raise ValueError(f"camera must be (fx, fy, cx, cy) or a 3x3 K, got shape {arr.shape}")

    # ------------------------------------------------------------------ views

    @property
    def intrinsics(self) -> np.ndarray:
        """``(4,)`` float64 ``(fx, fy, cx, cy)`` in pixels."""
        return np.array([self.fx, self.fy, self.cx, self.cy], dtype=np.float64)

    @property
    def K(self) -> np.ndarray:  # noqa: N802 - the conventional name of the intrinsic matrix
        """``(3, 3)`` float64 intrinsic matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def fov_deg(self) -> float:
        """Horizontal field of view in degrees."""
        return math.degrees(2.0 * math.atan(0.5 * self.width / self.fx))

    def scaled(self, width: int, height: int) -> Camera:
        """The same lens for the image resized to ``width`` x ``height`` pixels."""
        if (width, height) == (self.width, self.height):
            return self
        sx, sy = width / self.width, height / self.height
        return Camera(self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy,
                      int(width), int(height))

    # ------------------------------------------------------------------ geometry

    def project(self, points: ArrayT) -> ArrayT:
        """``(..., 3)`` camera-frame points (metres) -> ``(..., 2)`` pixels (numpy or torch)."""
        if isinstance(points, torch.Tensor):
            k = torch.as_tensor(self.intrinsics, dtype=points.dtype, device=points.device)
        else:
            points = np.asarray(points, dtype=np.float64)
            k = self.intrinsics
        flat = points.reshape(-1, 3)
        return project_points(flat, k).reshape(*points.shape[:-1], 2)

    def unproject(self, uv: ArrayT, depth: ArrayT) -> ArrayT:
        """``(..., 2)`` pixels at ``(...)`` depths (metres) -> ``(..., 3)`` camera-frame points."""
        if isinstance(uv, torch.Tensor):
            k = torch.as_tensor(self.intrinsics, dtype=uv.dtype, device=uv.device)
        else:
            uv, depth = np.asarray(uv, dtype=np.float64), np.asarray(depth, dtype=np.float64)
            k = self.intrinsics
        out = unproject_points(uv.reshape(-1, 2), depth.reshape(-1), k)
        return out.reshape(*uv.shape[:-1], 3)
