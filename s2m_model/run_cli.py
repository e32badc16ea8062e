"""``s2m run`` — the full pipeline on an image, a folder of images or a video.

Writes into ``--out``::

    frames/000000.png        mesh overlay (alpha 0.6) on each frame (unless --no-overlay)
    overlay.mp4              the overlays as a video (video inputs; unless --no-video)
    results/000000.npz       per-frame arrays, one row per person (see below)
    results/000000.json      the same, human-readable (no vertices)
    meshes/000000_t1.ply     meshes of chosen frames (--ply-every), one per person (track id)
    summary.json             per-stage latency (median/p95), persons per frame, settings

NPZ keys (P = people in the frame): ``track_id`` (P,), ``betas`` (P,10), ``global_orient`` (P,3),
``body_pose`` (P,23,3), ``transl`` (P,3), ``joints`` (P,24,3), ``solved`` (P,24),
``confidence`` (P,24), ``keypoints_2d`` (P,17,3), ``bbox`` (P,4), ``stamp`` (); with
``--save-vertices`` also ``vertices`` (P,V,3). Camera frame: x right, y down, z forward; metres,
radians (axis-angle, SMPL layout). File names use the source frame index.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

# Light imports only (no torch): `s2m --help` builds every sub-parser.
from s2m_model.camera import DEFAULT_FOV_DEG
from s2m_model.pipeline.config import DEFAULT_THREADS, LIFTERS

log = logging.getLogger(__name__)

OVERLAY_ALPHA = 0.6
# One colour per track id (cycled), so a person keeps their colour through a video.
TRACK_COLOURS = ((120, 170, 230), (230, 150, 110), (140, 210, 140), (210, 140, 210),
                 (230, 210, 120), (120, 210, 210))  # fmt: skip


def parse_camera(text: str | None) -> tuple[float, float, float, float] | None:
    """``"fx,fy,cx,cy"`` (pixels) -> a 4-tuple; None stays None. Raises ValueError."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4:
        raise ValueError(f"--camera must be 'fx,fy,cx,cy' (4 numbers in pixels), got {text!r}")
    return values  # type: ignore[return-value]


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "run",
        help="run the pipeline on an image, a folder of images or a video",
        description=(
            "Camera frames -> 2D keypoints -> 3D skeleton -> DIK -> SMPL-layout body meshes,\n"
            "in metres in the camera frame (x right, y down, z forward).\n\n"
            "Writes into --out: frames/*.png (mesh overlays), overlay.mp4 (videos),\n"
            "results/*.npz + *.json (per-frame parameters, joints, keypoints), meshes/*.ply\n"
            "(chosen frames) and summary.json (per-stage latency median/p95, persons per\n"
            "frame); prints a latency table. Video and folder inputs are tracked and\n"
            "filtered over time; a single image is processed on its own."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n"
            "  s2m run photo.jpg --out out/photo\n"
            "  s2m run clip.mp4 --out out/clip --camera 1000,1000,640,360 --max-frames 100\n"
            "  s2m run frames/ --out out/seq --ply-every 10 --no-overlay\n\n"
            f"Without --camera, a pinhole with a {DEFAULT_FOV_DEG:g} deg horizontal field of "
            "view centred on\nthe image is assumed (--fov): metric depth is then only as right "
            "as that guess."
        ),
    )
    parser.add_argument("input", help="image file, folder of images, or video file")
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    parser.add_argument(
        "--camera", metavar="FX,FY,CX,CY", help="intrinsics in pixels (default: from --fov)"
    )
    parser.add_argument("--fov", type=float, default=None, metavar="DEG",
                        help="horizontal field of view when --camera is not given "
                        f"(default {DEFAULT_FOV_DEG:g})")
    parser.add_argument("--config", metavar="YAML",
                        help="pipeline settings (PipelineConfig fields, see docs/pipeline.md)")
    parser.add_argument("--ply-every", type=int, default=30, metavar="N",
                        help="write .ply meshes every N-th frame, starting with the first "
                        "(0 = none; default 30)")
    parser.add_argument("--max-frames", type=int, default=None, metavar="N",
                        help="stop after N frames")
    parser.add_argument("--stride", type=int, default=1, metavar="N",
                        help="process every N-th frame (default 1)")
    parser.add_argument("--no-video", action="store_true", help="do not write overlay.mp4")
    parser.add_argument("--no-overlay", action="store_true",
                        help="do not render overlays (PNG nor MP4): fastest")
    parser.add_argument("--save-vertices", action="store_true",
                        help="also store mesh vertices in the .npz files (large)")
    parser.add_argument("--no-refine", action="append", default=[], metavar="PART",
                        choices=("shape", "endpoints", "fit", "all"),
                        help="switch a refinement step off (repeatable): shape (SR from bone "
                        "lengths), endpoints (PR of wrists/ankles/head), fit (the 2D image fit) "
                        "or all (DIK only, fastest)")
    parser.add_argument("--no-temporal", action="store_true",
                        help="no tracking/filtering: every frame on its own")
    parser.add_argument("--device", default=None, help="torch device (default: cpu)")
    parser.add_argument("--lifter", choices=LIFTERS, default=None,
                        help="front end: 'mediapipe-world' (MediaPipe's metric world landmarks "
                        "into DIK, default), 'fused' (a network on the 2D + world landmarks) or "
                        "'s2m' (the 2D -> 3D lifter)")
    parser.add_argument("--lifter-model", default=None, metavar="CKPT",
                        help="weights of the s2m lifter (default: the shipped ones)")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS, metavar="N",
                        help=f"torch CPU threads for this process (default {DEFAULT_THREADS}: "
                        "the per-frame tensors are tiny, more threads contend with the detector)")
    parser.add_argument("--view", action="store_true",
                        help="also write viewer.rrd (people's meshes and skeletons, camera image "
                        "and keypoints) for the 3D viewer: python -m s2m_model.viewer.serve")
    parser.set_defaults(func=run)


def _result_arrays(results: list, stamp: float, with_vertices: bool) -> dict[str, Any]:
    import numpy as np

    def stack(name: str, shape: tuple[int, ...], dtype=np.float32):
        rows = [getattr(r, name) for r in results]
        if not rows:
            return np.zeros((0, *shape), dtype=dtype)
        return np.stack([np.zeros(shape, dtype) if v is None else np.asarray(v, dtype)
                         for v in rows])  # fmt: skip

    arrays = {
        "track_id": np.array([r.track_id for r in results], dtype=np.int64),
        "betas": stack("betas", (10,)),
        "global_orient": stack("global_orient", (3,)),
        "body_pose": stack("body_pose", (23, 3)),
        "transl": stack("transl", (3,)),
        "joints": stack("joints", (24, 3)),
        "solved": stack("solved", (24,), bool),
        "confidence": stack("confidence", (24,)),
        "keypoints_2d": stack("keypoints_2d", (17, 3)),
        "bbox": stack("bbox", (4,)),
        "stamp": np.array(stamp, dtype=np.float64),
    }
    if with_vertices and results and results[0].vertices is not None:
        arrays["vertices"] = np.stack([r.vertices for r in results]).astype(np.float32)
    return arrays


def _result_json(index: int, stamp: float, results: list, timings: dict) -> dict[str, Any]:
    def listed(v):
        return None if v is None else v.tolist()

    return {
        "frame": index,
        "stamp_s": stamp,
        "timings_ms": {k: round(v, 3) for k, v in timings.items()},
        "persons": [
            {
                "track_id": r.track_id,
                "transl": listed(r.transl),
                "global_orient": listed(r.global_orient),
                "body_pose": listed(r.body_pose),
                "betas": listed(r.betas),
                "joints": listed(r.joints),
                "solved": listed(r.solved),
                "confidence": listed(r.confidence),
                "keypoints_2d": listed(r.keypoints_2d),
                "bbox": listed(r.bbox),
                "lifter": r.lifter,
            }
            for r in results
        ],
    }


def render_overlay(frame, results: list, faces, camera):
    """Meshes of all ``results`` over ``frame`` (H,W,3 uint8), alpha 0.6, one colour per track;
    people are drawn far to near so the nearer one covers."""
    import numpy as np

    from s2m_model.body.render import render_mesh

    people = [r for r in results if r.vertices is not None]
    if not people:
        return frame
    out = frame
    for r in sorted(people, key=lambda p: -float(np.median(p.vertices[:, 2]))):
        colour = TRACK_COLOURS[(max(r.track_id, 1) - 1) % len(TRACK_COLOURS)]
        out = render_mesh(r.vertices, faces, camera, image=out, color=colour, alpha=OVERLAY_ALPHA)
    return out


def latency_stats(per_frame: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """{stage: :func:`s2m_model.util.timing.summarize`} over frames (ms); stages missing in a
    frame are skipped."""
    from s2m_model.util.timing import summarize

    stages: dict[str, list[float]] = {}
    for timings in per_frame:
        for key, value in timings.items():
            stages.setdefault(key, []).append(float(value))
    return {key: summarize(v) for key, v in stages.items()}


def run(args: argparse.Namespace) -> int:
    import imageio.v3 as iio
    import numpy as np
    from rich.console import Console
    from rich.table import Table
    from tqdm import tqdm

    from s2m_model.body.render import save_ply
    from s2m_model.camera import Camera
    from s2m_model.image import VIDEO_SUFFIXES, iter_frames, list_images, probe_video
    from s2m_model.pipeline import Pipeline, PipelineConfig, set_torch_threads
    from s2m_model.tracking.metrics import track_summary

    source = Path(args.input)
    if not source.exists():
        raise FileNotFoundError(f"no such file or folder: {source}")
    if args.ply_every < 0:
        raise ValueError(f"--ply-every must be >= 0, got {args.ply_every}")
    if args.max_frames is not None and args.max_frames < 1:
        raise ValueError(f"--max-frames must be >= 1, got {args.max_frames}")
    if args.stride < 1:
        raise ValueError(f"--stride must be >= 1, got {args.stride}")
    camera = parse_camera(args.camera)
    is_video = source.is_file() and source.suffix.lower() in VIDEO_SUFFIXES
    is_folder = source.is_dir()

    config = PipelineConfig.from_yaml(args.config) if args.config else PipelineConfig()
    overrides: dict[str, Any] = {}
    if args.fov is not None:
        overrides["fov_deg"] = args.fov
    if args.device:
        overrides["device"] = args.device
    if args.lifter:
        overrides["lifter"] = args.lifter
    if args.lifter_model:
        overrides["lifter_model"] = args.lifter_model
    for part in ("shape", "endpoints", "fit"):
        if part in args.no_refine or "all" in args.no_refine:
            overrides[f"refine_{part}"] = False
    if args.no_temporal or not (is_video or is_folder):
        overrides["temporal"] = False
    if not is_video:
        # Independent photos (a folder may hold unrelated images): detect on every frame.
        overrides["video_mode"] = False
    if not (is_video or is_folder):
        overrides["dik_backend"] = "eager"  # tracing DIK only pays off over many frames
    if overrides:
        config = config.replace(**overrides)
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    set_torch_threads(args.threads, config.device)

    total = None
    fps = 30.0
    if is_video:
        meta = probe_video(source)
        fps = meta["fps"] or fps
        total = int(round(meta["duration_s"] * fps)) or None
    elif is_folder:
        total = len(list_images(source))
    else:
        total = 1
    if total is not None:
        total = -(-total // args.stride)
        if args.max_frames is not None:
            total = min(total, args.max_frames)

    out_dir = Path(args.out)
    frames_dir, results_dir = out_dir / "frames", out_dir / "results"
    meshes_dir = out_dir / "meshes"
    for folder in (out_dir, results_dir):
        folder.mkdir(parents=True, exist_ok=True)
    overlay = not args.no_overlay
    if overlay:
        frames_dir.mkdir(exist_ok=True)

    pipe = Pipeline(config)
    writer = None
    video_path = out_dir / "overlay.mp4"
    per_frame: list[dict[str, float]] = []
    persons: list[int] = []
    track_ids: list[list[int]] = []
    ply_files: list[str] = []
    frames_done = 0
    view_frames: list[dict[str, Any]] = []
    view_camera = None
    if getattr(args, "view", False):
        from s2m_model.viewer.camera_frames import CameraFrames  # lazy: rerun only with --view

        view_camera = CameraFrames()
    start = time.perf_counter()
    try:
        frames = iter_frames(source, stride=args.stride, max_frames=args.max_frames)
        for index, stamp, frame in tqdm(frames, total=total, unit="frame", desc="s2m run"):
            results = pipe.process(frame, camera=camera, stamp=stamp)
            frames_done += 1
            per_frame.append(dict(pipe.last_timings))
            persons.append(len(results))
            track_ids.append([r.track_id for r in results])
            name = f"{index:06d}"
            arrays = _result_arrays(results, stamp, args.save_vertices)
            np.savez_compressed(results_dir / f"{name}.npz", **arrays)
            if view_camera is not None:
                view_frames.append(arrays)
                view_camera.add_people(frames_done - 1, frame, results)
            (results_dir / f"{name}.json").write_text(
                json.dumps(_result_json(index, stamp, results, pipe.last_timings))
            )
            if args.ply_every and (frames_done - 1) % args.ply_every == 0:
                for r in results:
                    if r.vertices is None:
                        continue
                    meshes_dir.mkdir(exist_ok=True)
                    ply = meshes_dir / f"{name}_t{r.track_id}.ply"
                    save_ply(ply, r.vertices, pipe.faces)
                    ply_files.append(str(ply))
            if overlay:
                cam = Camera.coerce(camera, frame.shape[1], frame.shape[0], config.fov_deg)
                image = render_overlay(frame, results, pipe.faces if results else None, cam)
                iio.imwrite(frames_dir / f"{name}.png", image)
                if is_video and not args.no_video:
                    if writer is None:
                        writer = _video_writer(video_path, fps / args.stride)
                    writer.append_data(_even(image))
    finally:
        if writer is not None:
            writer.close()
        pipe.close()
    wall = time.perf_counter() - start
    if frames_done == 0:
        raise ValueError(f"{source}: no frames could be read")

    view_path = None
    if view_camera is not None:
        from s2m_model.viewer.run_view import write_run_recording

        view_path = write_run_recording(out_dir, view_frames, view_camera, fps=fps / args.stride)
    stats = latency_stats(per_frame)
    counts = np.array(persons)
    summary = {
        "input": str(source),
        "kind": "video" if is_video else "folder" if is_folder else "image",
        "frames": frames_done,
        "frames_with_person": int((counts > 0).sum()),
        "persons_per_frame": {
            "mean": float(counts.mean()), "max": int(counts.max()),
            "histogram": {str(k): int((counts == k).sum()) for k in np.unique(counts)},
        },  # fmt: skip
        # Track count and lengths (frames per id) of a video/folder run (0 ids: untracked).
        "tracking": {k: v for k, v in track_summary(track_ids).items() if k != "persons_per_frame"},
        "latency_ms": stats,
        "counters": dict(pipe.counters),
        "wall_s": wall,
        "frames_per_s": frames_done / wall if wall > 0 else None,
        "camera": list(camera) if camera else f"default: {config.fov_deg} deg horizontal FOV",
        "config": config.to_dict(),
        "outputs": {
            "results": str(results_dir),
            "frames": str(frames_dir) if overlay else None,
            "video": str(video_path) if writer is not None else None,
            "meshes": ply_files,
            "viewer": str(view_path) if view_path else None,
        },
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))

    from s2m_model.pipeline.orchestrator import STAGES

    console = Console()
    table = Table(title=f"s2m run: {frames_done} frames, "
                        f"{summary['frames_with_person']} with a person, "
                        f"{summary['persons_per_frame']['mean']:.2f} persons/frame")
    table.add_column("stage")
    table.add_column("median ms", justify="right")
    table.add_column("p95 ms", justify="right")
    table.add_column("frames", justify="right")
    for key in STAGES:
        if key in stats:
            s = stats[key]
            table.add_row(key, f"{s['median']:.2f}", f"{s['p95']:.2f}", str(s["count"]))
    console.print(table)
    problems = {k: v for k, v in pipe.counters.items() if k not in ("frames", "persons") and v}
    if problems:
        console.print("[yellow]counted: " + ", ".join(f"{k} {v}" for k, v in problems.items())
                      + " (see summary.json 'counters')[/yellow]")
    console.print(f"outputs in {out_dir}/ (summary.json, results/"
                  f"{', frames/' if overlay else ''}"
                  f"{', overlay.mp4' if writer is not None else ''}"
                  f"{', meshes/' if ply_files else ''}"
                  f"{', viewer.rrd' if view_path else ''})")
    if view_path:
        console.print(f"3D view: python -m s2m_model.viewer.serve {view_path} (browser) "
                      f"or rerun {view_path} (native)")
    return 0


def _even(image):
    """Pad to even width/height (H.264 with yuv420p needs them)."""
    import numpy as np

    h, w = image.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return image
    return np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def _video_writer(path: Path, fps: float):
    import imageio.v2 as iio2

    return iio2.get_writer(
        str(path), fps=fps, codec="libx264", pixelformat="yuv420p", macro_block_size=1,
        quality=7,
    )  # fmt: skip
