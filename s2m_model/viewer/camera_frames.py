"""Camera frames for the viewer: downscaled JPEG images and 2D keypoints, per sequence frame.

The recording shows the camera image next to the 3D scene (issue 13: "human mesh, skeleton,
camera image and the robot side by side"). Full-resolution RGB frames would make a recording
of a minute of video several GB, so each frame is downscaled to at most ``max_width`` pixels
and JPEG-encoded as it arrives (about 20-40 kB a frame at 480 px); the keypoints are scaled
with it. Pure computation, no file I/O: :func:`s2m_model.viewer.recording.write_recording`
writes them.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

#: Default longest width (pixels) of the frames kept for the viewer.
MAX_WIDTH = 480
#: Default JPEG quality (1-95).
JPEG_QUALITY = 80


@dataclass
class CameraFrames:
    """JPEG frames and 2D keypoints keyed by sequence frame index (0 .. T-1, the index of the
    frame in the retargeted / recorded motion, not the source file's frame number).

    Attributes:
        max_width: frames wider than this are downscaled to it (aspect kept).
        quality: JPEG quality.
        jpeg: ``{frame: JPEG bytes}``.
        keypoints: ``{frame: {track_id: (K, 3) x, y (pixels of the downscaled image),
            confidence}}``.
        size: ``(width, height)`` of the stored (downscaled) images, once a frame was added.
    """

    max_width: int = MAX_WIDTH
    quality: int = JPEG_QUALITY
    jpeg: dict[int, bytes] = field(default_factory=dict)
    keypoints: dict[int, dict[int, np.ndarray]] = field(default_factory=dict)
    size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.max_width < 16:
            raise ValueError(f"max_width must be >= 16 pixels, got {self.max_width}")
        if not 1 <= self.quality <= 95:
            raise ValueError(f"JPEG quality must be in 1..95, got {self.quality}")

    def __len__(self) -> int:
        return len(self.jpeg)

    def add(
        self,
        index: int,
        image: np.ndarray,
        keypoints: Mapping[int, np.ndarray | None] | None = None,
    ) -> None:
        """Keep frame ``index``: ``image`` (H, W, 3) uint8 RGB (or (H, W) grey), and per track
        id its 2D keypoints ``(K, 2|3)`` in pixels of ``image`` (x right, y down; a third
        column is the confidence, else 1). ``None`` keypoints are skipped.

        Raises:
            ValueError: not an (H, W[, 3]) image, or keypoints not (K, 2|3).
        """
        from PIL import Image

        img = np.asarray(image)
        if img.ndim == 3 and img.shape[2] == 4:
            img = img[..., :3]
        if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)) or min(img.shape[:2]) < 1:
            raise ValueError(f"camera frame must be (H, W, 3) RGB or (H, W) grey, got {img.shape}")
        if img.dtype != np.uint8:
            img = np.clip(img, 0, 255).astype(np.uint8)
        h, w = img.shape[:2]
        scale = min(1.0, self.max_width / w)
        pil = Image.fromarray(img)
        if scale < 1.0:
            pil = pil.resize((max(1, round(w * scale)), max(1, round(h * scale))),
                             Image.Resampling.BILINEAR)  # fmt: skip
        buf = io.BytesIO()
        pil.save(buf, format="JPEG", quality=self.quality)
        self.jpeg[int(index)] = buf.getvalue()
        self.size = pil.size
        kept: dict[int, np.ndarray] = {}
        for track, kp in (keypoints or {}).items():
            if kp is None:
                continue
            arr = np.asarray(kp, dtype=np.float64)
            if arr.ndim != 2 or arr.shape[1] not in (2, 3):
                raise ValueError(f"keypoints of track {track} must be (K, 2|3), got {arr.shape}")
            out = np.ones((len(arr), 3))
            out[:, : arr.shape[1]] = arr
            out[:, :2] *= (pil.size[0] / w, pil.size[1] / h)
            kept[int(track)] = out
        if kept:
            self.keypoints[int(index)] = kept

    def add_people(self, index: int, image: np.ndarray, people: Iterable[object]) -> None:
        """:meth:`add` with the ``keypoints_2d`` of pipeline results (objects with
        ``track_id`` and ``keypoints_2d`` (17, 3) COCO-17 pixels)."""
        self.add(index, image, {int(getattr(p, "track_id", 0)): getattr(p, "keypoints_2d", None)
                                for p in people})  # fmt: skip
