"""Inputs of ``s2m retarget``: a BVH clip, a folder of ``s2m run`` results, or images/video.

Each reader returns one person's :class:`~s2m_model.retarget.human.HumanMotion` (robot world
frame) plus a small ``info`` dict for ``summary.json``:

* **BVH** (``.bvh``, ``.bvh.xz``/``.gz``, or a Bandai-Namco ``dataset-N.tar.xz`` with
  ``clip=PATTERN``): loaded by :func:`s2m_model.data.bvh.load_bvh`, fitted to the SMPL-layout
  body by the mocap fit (:func:`s2m_model.data.mocap_fit.fit_motion`, SMPL frame, y up) at
  about ``rate_hz`` frames per second.
* **results folder** (``s2m run --out DIR``: ``DIR/results/*.npz``, camera frame): one track
  (``track`` id, default the one seen in most frames); frames without it become NaN frames
  (the retargeter holds its pose there).
* **video / image folder**: the pipeline (:class:`s2m_model.pipeline.Pipeline`) is run first,
  then as for results.
"""

from __future__ import annotations

import fnmatch
import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import roma
import torch

from s2m_model.retarget.human import HumanMotion, from_smpl
from s2m_model.smpl_layout import NUM_JOINTS, forward_kinematics

log = logging.getLogger(__name__)

BVH_SUFFIXES = (".bvh", ".bvh.xz", ".bvh.gz")
#: Default rate (Hz) of the fitted mocap frames (the control loop runs faster and interpolates).
DEFAULT_RATE_HZ = 30.0
#: ``on_frame(frame_index, image (H, W, 3) uint8 RGB, pipeline results)``.
FrameCallback = Callable[[int, np.ndarray, list], None]


def _rotvec_local(global_orient: np.ndarray, body_pose: np.ndarray) -> np.ndarray:
    """``(T, 24, 3, 3)`` local rotations from ``(T, 3)`` + ``(T, 23, 3)`` axis-angle."""
    rotvec = np.concatenate([global_orient[:, None], body_pose], axis=1).astype(np.float64)
    flat = torch.as_tensor(np.nan_to_num(rotvec).reshape(-1, 3))
    mats = roma.rotvec_to_rotmat(flat).numpy().reshape(len(rotvec), NUM_JOINTS, 3, 3)
    bad = ~np.isfinite(rotvec).all(-1)
    mats[bad] = np.nan
    return mats


def motion_from_fit(fit: Any, body: Any) -> HumanMotion:
    """A :class:`~s2m_model.data.mocap_fit.MocapFit` (SMPL frame) -> :class:`HumanMotion`."""
    local = _rotvec_local(fit.global_orient, fit.body_pose)
    with torch.no_grad():
        rest = body.rest_joints(torch.as_tensor(fit.betas)[None].float())
    rest = rest.to(torch.float64).expand(len(local), -1, -1)
    joints = forward_kinematics(torch.as_tensor(local), rest)[0].numpy()
    joints = joints + np.asarray(fit.transl, np.float64)[:, None]
    t = np.asarray(fit.frame_index, np.float64) / float(fit.source_fps)
    return from_smpl(local, joints, t, frame="smpl", betas=fit.betas)


def _read_motion(path: Path, clip: str | None):
    from s2m_model.data.bvh import iter_bandai_clips, load_bvh

    name = path.name.lower()
    if name.endswith(".tar.xz"):
        if not clip:
            raise ValueError(f"{path} is a clip archive: choose a clip with --clip PATTERN "
                             "(e.g. 'dataset-1_walk_normal_001')")  # fmt: skip
        pattern = clip if any(c in clip for c in "*?[") else f"*{clip}*"
        for clip_name, motion, _ in iter_bandai_clips(path, pattern=pattern):
            return clip_name, motion
        raise ValueError(f"{path}: no clip matches {clip!r}")
    if not name.endswith(BVH_SUFFIXES):
        raise ValueError(f"{path}: not a BVH file ({', '.join(BVH_SUFFIXES)})")
    return path.name.split(".")[0], load_bvh(path)


def load_bvh_motion(
    path: str | Path,
    *,
    clip: str | None = None,
    rate_hz: float = DEFAULT_RATE_HZ,
    max_frames: int | None = None,
    body: Any = None,
) -> tuple[HumanMotion, dict[str, Any]]:
    """A BVH clip -> (motion, info); see the module docstring.

    Raises:
        FileNotFoundError: missing file. ValueError: not a BVH / unsupported skeleton /
        no matching clip in an archive.
    """
    from s2m_model.data.mocap_fit import fit_motion

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    name, motion = _read_motion(path, clip)
    if motion.format not in ("bandai27", "cmu31"):
        raise ValueError(f"{path}: only Bandai-Namco and CMU BVH skeletons can be fitted "
                         f"(this one is {motion.format or 'unrecognised'})")  # fmt: skip
    subsample = max(1, int(round(motion.fps / rate_hz)))
    if max_frames is not None:
        motion = _truncate(motion, max_frames * subsample)
    if body is None:
        from s2m_model.body import load_body_model

        body = load_body_model("s2m-free")
    fit = fit_motion(motion, body, subsample=subsample, name=name)
    info = {"kind": "bvh", "clip": name, "format": motion.format, "source_fps": motion.fps,
            "fps": motion.fps / subsample, "fit_joint_error_mm": round(float(
                np.mean(fit.joint_error_mm)), 1)}  # fmt: skip
    return motion_from_fit(fit, body), info


def _truncate(motion, frames: int):
    from dataclasses import replace

    return replace(motion, positions=motion.positions[:frames],
                   rotations=motion.rotations[:frames],
                   root_translation=motion.root_translation[:frames])  # fmt: skip


def _select_track(frames: list[dict[str, np.ndarray]], track: int | None) -> int | None:
    counts = Counter(int(i) for f in frames for i in np.asarray(f["track_id"]).reshape(-1))
    if track is not None:
        if track not in counts:
            raise ValueError(f"track {track} never appears (tracks seen: {sorted(counts)})")
        return track
    return counts.most_common(1)[0][0] if counts else None


def motion_from_results(
    frames: list[dict[str, np.ndarray]], track: int | None = None, fps: float = 30.0,
    align_heading: bool = True,
) -> tuple[HumanMotion, dict[str, Any]]:  # fmt: skip
    """Per-frame result arrays (the ``s2m run`` NPZ keys, camera frame) -> one track's motion.

    Args:
        frames: one dict per frame with ``track_id`` (P,), ``global_orient`` (P,3),
            ``body_pose`` (P,23,3), ``joints`` (P,24,3), optional ``solved`` (P,24) and
            ``stamp`` (s).
        track: the track id to follow (default: the one present in most frames).
        fps: frame rate used where a frame has no stamp.
        align_heading: put the first pelvis above the origin facing +x (retargeting); False
            keeps the camera's position (several people drawn in one scene).

    Raises:
        ValueError: no frame has a person, or ``track`` never appears.
    """
    if not frames:
        raise ValueError("no frames")
    chosen = _select_track(frames, track)
    if chosen is None:
        raise ValueError("no person in any frame: nothing to retarget")
    T = len(frames)
    go, bp = np.full((T, 3), np.nan), np.full((T, NUM_JOINTS - 1, 3), np.nan)
    joints = np.full((T, NUM_JOINTS, 3), np.nan)
    solved = np.zeros((T, NUM_JOINTS), bool)
    t = np.arange(T) / fps
    for i, f in enumerate(frames):
        if "stamp" in f and np.isfinite(f["stamp"]):
            t[i] = float(f["stamp"])
        ids = np.asarray(f["track_id"]).reshape(-1)
        hit = np.flatnonzero(ids == chosen)
        if hit.size == 0:
            continue
        k = int(hit[0])
        go[i], bp[i], joints[i] = f["global_orient"][k], f["body_pose"][k], f["joints"][k]
        solved[i] = f["solved"][k] if "solved" in f else True
    if T > 1 and not (np.diff(t) > 0).all():
        t = np.arange(T) / fps  # stamps not increasing (e.g. a folder of photos): use the rate
    motion = from_smpl(_rotvec_local(go, bp), joints, t, frame="camera", solved=solved,
                       align_heading=align_heading)  # fmt: skip
    info = {"kind": "results", "track_id": chosen,
            "frames_with_track": int(np.isfinite(joints[:, 0]).all(-1).sum())}  # fmt: skip
    return motion, info


def load_results_folder(
    folder: str | Path, track: int | None = None, max_frames: int | None = None
) -> tuple[HumanMotion, dict[str, Any]]:
    """An ``s2m run`` output folder (or its ``results/`` folder) -> one track's motion."""
    from s2m_model.util.files import load_npz

    folder = Path(folder)
    results = folder / "results" if (folder / "results").is_dir() else folder
    files = sorted(results.glob("*.npz"))
    if not files:
        raise ValueError(f"{folder}: no results/*.npz (is this an `s2m run --out` folder?)")
    files = files[:max_frames] if max_frames else files
    frames = [load_npz(f) for f in files]
    motion, info = motion_from_results(frames, track)
    return motion, {**info, "input_frames": len(files)}


def run_pipeline(
    source: str | Path, track: int | None = None, max_frames: int | None = None,
    config: Any = None, on_frame: FrameCallback | None = None,
) -> tuple[HumanMotion, dict[str, Any]]:  # fmt: skip
    """Run the s2m pipeline on a video / image folder, then follow one track.

    ``on_frame(i, image, people)`` is called for each frame (``i`` = 0 .. T-1, the motion's
    frame index; ``image`` (H, W, 3) uint8 RGB; the pipeline's results), e.g. by
    :meth:`s2m_model.viewer.camera_frames.CameraFrames.add_people` for the viewer.
    """
    from s2m_model.image import iter_frames
    from s2m_model.pipeline import Pipeline, PipelineConfig

    pipe = Pipeline(config or PipelineConfig())
    frames: list[dict[str, np.ndarray]] = []
    try:
        for i, (_, stamp, image) in enumerate(iter_frames(source, max_frames=max_frames)):
            people = pipe.process(image, stamp=stamp)
            if on_frame is not None:
                on_frame(i, image, people)
            frames.append({
                "track_id": np.array([p.track_id for p in people], np.int64),
                "global_orient": np.array([p.global_orient for p in people]).reshape(-1, 3),
                "body_pose": np.array([p.body_pose for p in people]).reshape(-1, 23, 3),
                "joints": np.array([p.joints for p in people]).reshape(-1, NUM_JOINTS, 3),
                "solved": np.array([np.ones(NUM_JOINTS, bool) if p.solved is None else p.solved
                                    for p in people]).reshape(-1, NUM_JOINTS),
                "stamp": np.float64(stamp),
            })  # fmt: skip
    finally:
        pipe.close()
    motion, info = motion_from_results(frames, track)
    return motion, {**info, "kind": "pipeline", "input_frames": len(frames)}


def load_input(
    source: str | Path, *, clip: str | None = None, track: int | None = None,
    max_frames: int | None = None, rate_hz: float = DEFAULT_RATE_HZ,
    on_frame: FrameCallback | None = None,
) -> tuple[HumanMotion, dict[str, Any]]:  # fmt: skip
    """Dispatch on the kind of ``source`` (see the module docstring); ``on_frame`` gets the
    camera frames of video / image inputs (:func:`run_pipeline`)."""
    from s2m_model.image import VIDEO_SUFFIXES, list_images

    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    name = path.name.lower()
    if path.is_file() and (name.endswith(BVH_SUFFIXES) or name.endswith(".tar.xz")):
        return load_bvh_motion(path, clip=clip, rate_hz=rate_hz, max_frames=max_frames)
    if path.is_dir() and ((path / "results").is_dir() or any(path.glob("*.npz"))):
        return load_results_folder(path, track=track, max_frames=max_frames)
    if (path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES) or (
        path.is_dir() and list_images(path)
    ):
        return run_pipeline(path, track=track, max_frames=max_frames, on_frame=on_frame)
    if path.is_file() and fnmatch.fnmatch(name, "*.*"):  # a single image
        return run_pipeline(path, track=track, max_frames=max_frames, on_frame=on_frame)
    raise ValueError(f"{path}: expected a BVH clip, an `s2m run` results folder, a video or "
                     "a folder of images")  # fmt: skip
