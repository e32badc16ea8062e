"""The ``s2m run --view`` recording: every tracked person (mesh and skeleton) and the camera
image, no robot. Frames are the ``s2m run`` per-frame result arrays (camera frame)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from s2m_model.viewer.camera_frames import CameraFrames
from s2m_model.viewer.recording import write_recording

#: People drawn at most (the tracks seen in most frames), to bound the file size.
MAX_PEOPLE = 6


def write_run_recording(
    out_dir: str | Path,
    frames: list[dict[str, np.ndarray]],
    camera: CameraFrames | None = None,
    *,
    body: Any = None,
    fps: float = 30.0,
    name: str = "viewer.rrd",
) -> Path | None:
    """Write ``out_dir/name`` from ``s2m run`` result arrays (one dict per processed frame,
    the NPZ keys: ``track_id`` (P,), ``global_orient`` (P,3), ``body_pose`` (P,23,3),
    ``joints`` (P,24,3) metres in the camera frame, ``solved``, ``stamp``).

    People keep their places relative to the camera (turned into the viewer's z-up world:
    x_w = -z_cam, y_w = x_cam, z_w = -y_cam). ``body`` defaults to the s2m-free body. Returns
    None when no frame has a person and there is no camera image (nothing to show).
    """
    from s2m_model.retarget.sources import motion_from_results

    counts = Counter(int(i) for f in frames for i in np.asarray(f["track_id"]).reshape(-1))
    tracks = [t for t, _ in counts.most_common(MAX_PEOPLE)]
    if not tracks and not (camera is not None and len(camera)):
        return None
    motions = {t: motion_from_results(frames, t, fps=fps, align_heading=False)[0]
               for t in tracks}  # fmt: skip
    if motions and body is None:
        from s2m_model.body import load_body_model

        body = load_body_model("s2m-free")
    if not motions:  # images without people: the camera view alone, on the frame clock
        from s2m_model.retarget.human import HumanMotion

        T = len(frames)
        empty = HumanMotion(joints=np.full((T, 24, 3), np.nan),
                            rotations=np.full((T, 24, 3, 3), np.nan),
                            t=np.arange(T) / fps, solved=np.zeros((T, 24), bool))  # fmt: skip
        motions = {0: empty}
    return write_recording(out_dir, None, None, motions, body=body if tracks else None,
                           camera=camera if camera is not None and len(camera) else None,
                           name=name)  # fmt: skip
