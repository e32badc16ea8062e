"""Benchmark: per-stage latency of the full pipeline at 640x480 on this CPU.

Frames: the first ``FRAMES`` frames of the demo video (``.venv/share/s2m/demo/demo.mp4``, from
``tools/fetch_demo_video.sh``) letterboxed to 640x480; without it, the COCO photo from
``../shared/data/images`` letterboxed to 640x480 and repeated; without either, a black frame
(nobody found: only the detector is timed). Frames are decoded before timing.

Runs, all in this process, over the same frames after ``WARMUP`` frames, interleaved frame by
frame (each with its own MediaPipe graph) so that they share the machine's load:

- ``detector_alone`` (the baseline): MediaPipe BlazePose in video mode, ``detect`` only.
- ``pipeline``: :class:`s2m_model.pipeline.Pipeline` with the default config (video mode,
  temporal filtering, mesh vertices), per stage (detect, lift, dik, filter, body, total).
- ``pipeline_joints_only``: the same with ``compute_vertices=False``.
- ``pipeline_no_refine``: the default with SR, PR and the image fit off (the baseline of the
  refinement's cost).

Prints one JSON object with median/p95 per stage (ms, wall clock), ``post_detector_ms`` (lift +
dik + filter + body, the part s2m adds after the detector), ``main_thread_cpu_ms`` (CPU time of
the calling thread per frame: s2m's own work, MediaPipe's graph threads excluded; unlike wall
time it hardly grows when other processes compete for the cores), the 1-minute load average,
the goals (<= 40 ms median frame -> result, <= 5 ms for lifter + DIK + body) with whether they
are met, and ``ratio_pipeline_vs_detector`` (median total / median detector-alone). The
benchmark sets torch to ``--threads`` (default 1) itself: the pipeline leaves threads alone.

``--people 1,2,4,6`` instead times the multi-person pipeline (detector ``blazepose-multi``,
segmentation off, ``max_persons`` = the largest count) on rendered frames
(``s2m_model.tracking.synthetic``, the people of ``bench/multiperson.py``'s speed part: 180 px
tall, side by side, walking slowly, 640x480): per count N and per ``detect_every`` (1 and
``--detect-every``, default 5), ``pipeline`` (default config) and ``pipeline_no_refine`` (the
baseline, interleaved frame by frame) give frame -> result median/p95 (ms), FPS (1000 /
median), the mean people found per frame and the per-stage times, over ``--people-frames``
frames after ``PEOPLE_WARMUP`` warm-up frames in which the people are acquired; all these
streams interleaved frame by frame, after one untimed pass (DIK's traces). The goal: >= 10 FPS
frame -> result with 4 people.

``--accuracy`` instead scores each front end (``PipelineConfig.lifter``) on the real COCO photo
(``../shared/data/images/coco_000000000785.jpg`` and its annotation; static detector mode, the
default 55 deg camera): the mean 2D error (px) of the mesh's COCO-17 joints (regressed from the
vertices and projected) against the labelled GT keypoints, the same for the detector's own
keypoints, and the IoU of the mesh silhouette with the GT polygon.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from s2m_model.pipeline.orchestrator import STAGES  # noqa: E402

FRAMES = 120
WARMUP = 5
WIDTH, HEIGHT = 640, 480
DEMO_VIDEO = REPO / ".venv" / "share" / "s2m" / "demo" / "demo.mp4"
COCO_IMAGE = REPO.parent / "shared" / "data" / "images" / "coco_000000000785.jpg"
GOAL_TOTAL_MS = 40.0
GOAL_POST_DETECTOR_MS = 5.0
PEOPLE_FRAMES = 25
PEOPLE_WARMUP = 10
GOAL_FPS_PEOPLE = (4, 10.0)  # (people, FPS): >= 10 FPS frame -> result with 4 people


def letterbox(image: np.ndarray) -> np.ndarray:
    """Resize keeping the aspect ratio and pad with black to exactly WIDTH x HEIGHT."""
    from PIL import Image

    scale = min(WIDTH / image.shape[1], HEIGHT / image.shape[0])
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    canvas = Image.new("RGB", (WIDTH, HEIGHT))
    canvas.paste(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR),
                 ((WIDTH - size[0]) // 2, (HEIGHT - size[1]) // 2))  # fmt: skip
    return np.asarray(canvas)


def load_frames(count: int = FRAMES) -> tuple[list[np.ndarray], str]:
    """``count`` + WARMUP frames at 640x480 (the demo video loops if it is shorter)."""
    from s2m_model.image import iter_frames, load_image

    total = count + WARMUP
    if DEMO_VIDEO.is_file():
        video = [letterbox(f) for _, _, f in iter_frames(DEMO_VIDEO, max_frames=total)]
        frames = (video * (total // len(video) + 1))[:total]
        return frames, f"demo video, first {len(video)} frames letterboxed to 640x480"
    if COCO_IMAGE.is_file():
        frame = letterbox(load_image(COCO_IMAGE))
        return [frame] * total, "COCO 785 letterboxed to 640x480, repeated"
    return [np.zeros((HEIGHT, WIDTH, 3), np.uint8)] * total, "black frame (nobody)"


def stats(values: list[float]) -> dict[str, float]:
    """Median/p95/... (ms) via the one latency summary; NaN median/p95 when empty."""
    from s2m_model.util.timing import summarize

    return {"median": float("nan"), "p95": float("nan"), **summarize(values)}


class _Recorder:
    """Per-frame timings of one pipeline run."""

    def __init__(self) -> None:
        self.per_stage: dict[str, list[float]] = {k: [] for k in STAGES}
        self.post: list[float] = []
        self.persons: list[int] = []
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def add(self, wall_ms: float, cpu_ms: float, results: list, timings: dict) -> None:
        self.wall.append(wall_ms)
        self.cpu.append(cpu_ms)
        self.persons.append(len(results))
        for key in STAGES:
            if key in timings:
                self.per_stage[key].append(timings[key])
        if results:
            self.post.append(sum(timings.get(k, 0.0) for k in STAGES[1:-1]))

    def report(self) -> dict:
        return {
            "stages_ms": {k: stats(v) for k, v in self.per_stage.items()},
            "post_detector_ms": stats(self.post),
            "frame_to_result_ms": stats(self.wall),
            "main_thread_cpu_ms": stats(self.cpu),
            "frames_with_person": int(np.count_nonzero(self.persons)),
        }


def run_interleaved(frames: list[np.ndarray], lifter, body) -> dict:
    """Detector alone, the pipeline and the joints-only pipeline, each with its own MediaPipe
    graph (own tracking state), interleaved frame by frame so that all three see the same
    machine load (the CPU may be shared)."""
    from s2m_model.detect import get_detector
    from s2m_model.pipeline import Pipeline, PipelineConfig

    detector_ms: list[float] = []
    runs = {"pipeline": _Recorder(), "pipeline_joints_only": _Recorder(),
            "pipeline_no_refine": _Recorder()}  # fmt: skip
    no_refine = PipelineConfig(refine_shape=False, refine_endpoints=False, refine_fit=False)
    with (
        get_detector("mediapipe", static_image_mode=False) as detector,
        Pipeline(PipelineConfig(), lifter=lifter, body=body) as full,
        Pipeline(PipelineConfig(compute_vertices=False), lifter=lifter, body=body) as lean,
        Pipeline(no_refine, lifter=lifter, body=body) as plain,
    ):
        pipes = {"pipeline": full, "pipeline_joints_only": lean, "pipeline_no_refine": plain}
        for i, frame in enumerate(frames):
            start = time.perf_counter()
            detector.detect(frame)
            if i >= WARMUP:
                detector_ms.append((time.perf_counter() - start) * 1e3)
            for name, pipe in pipes.items():
                start, start_cpu = time.perf_counter(), time.thread_time()
                results = pipe.process(frame, stamp=i / 30.0)
                wall = (time.perf_counter() - start) * 1e3
                cpu = (time.thread_time() - start_cpu) * 1e3
                if i >= WARMUP:
                    runs[name].add(wall, cpu, results, pipe.last_timings)
    return {"detector_alone_ms": stats(detector_ms),
            **{name: rec.report() for name, rec in runs.items()}}  # fmt: skip


def time_detector(frames: list[np.ndarray]) -> dict[str, float]:
    from s2m_model.detect import get_detector

    times = []
    with get_detector("mediapipe", static_image_mode=False) as detector:
        for i, frame in enumerate(frames):
            start = time.perf_counter()
            detector.detect(frame)
            if i >= WARMUP:
                times.append((time.perf_counter() - start) * 1e3)
    return stats(times)


def parse_people(text: str) -> tuple[int, ...]:
    """``"1,2,4,6"`` -> ``(1, 2, 4, 6)``: distinct counts in 1..6, in the given order.

    Raises:
        ValueError: empty, not integers, or a count outside 1..6 (the detector's maximum).
    """
    try:
        counts = tuple(dict.fromkeys(int(p) for p in text.split(",") if p.strip()))
    except ValueError:
        raise ValueError(f"--people takes comma-separated integers, got {text!r}") from None
    if not counts or not all(1 <= n <= 6 for n in counts):
        raise ValueError(f"--people takes counts in 1..6, got {text!r}")
    return counts


def people_clips(counts: tuple[int, ...], frames: int) -> dict[int, list[np.ndarray]]:
    """Per count N: ``PEOPLE_WARMUP + frames`` rendered 640x480 frames with N people."""
    import torch

    from s2m_model.body import load_body_model
    from s2m_model.tracking.synthetic import SpriteBank, make_clip, side_by_side_walkers

    sys.path.insert(0, str(REPO / "bench"))

    body = load_body_model("s2m-free", dtype=torch.float32)
    bank = SpriteBank(body, identities=6, phases=6, seed=0)
    total = PEOPLE_WARMUP + frames
    return {
        n: [f.image for f in make_clip(bank, n_frames=total, walkers=side_by_side_walkers(n),
                                       seed=100 + n)]
        for n in counts
    }  # fmt: skip


def _people_row(rec: _Recorder) -> dict:
    out = rec.report()
    median = out["frame_to_result_ms"]["median"]
    return {
        "frame_to_result_ms": out["frame_to_result_ms"],
        "fps": 1e3 / median if median > 0 else float("nan"),
        "persons_per_frame": float(np.mean(rec.persons)) if rec.persons else float("nan"),
        "stages_ms": {k: v["median"] for k, v in out["stages_ms"].items()},
        "main_thread_cpu_ms": out["main_thread_cpu_ms"]["median"],
    }


def run_people(clips: dict[int, list[np.ndarray]], detect_everies: tuple[int, ...], lifter,
               body) -> dict:  # fmt: skip
    """Per ``detect_every`` and count: ``pipeline`` and ``pipeline_no_refine`` with
    ``blazepose-multi``, each its own stream, all interleaved frame by frame so that every row
    sees the same machine load (the CPU may be shared). One untimed pass over each clip first
    (one DIK runner shared by all, so its traces are built once per batch size, in that pass;
    the timed pass sees the same detections)."""
    from s2m_model.pipeline import Pipeline, PipelineConfig
    from s2m_model.pipeline.dik_runner import DIKRunner

    no_refine = dict(refine_shape=False, refine_endpoints=False, refine_fit=False)
    pipes: dict[tuple[int, int, str], Pipeline] = {}
    dik = None
    for every in detect_everies:
        for n in clips:
            for name, extra in (("pipeline", {}), ("pipeline_no_refine", no_refine)):
                config = PipelineConfig(
                    detector="blazepose-multi",
                    detector_options={"enable_segmentation": False, "detect_every": every},
                    max_persons=max(4, *clips),
                    **extra,
                )
                if dik is None:  # one runner: its traces are shared, it keeps no frame state
                    dik = DIKRunner(body, config.min_keypoint_confidence, config.dik_backend)
                pipe = Pipeline(config, lifter=lifter, body=body, dik=dik)
                pipes[every, n, name] = pipe
    runs = {key: _Recorder() for key in pipes}
    length = len(next(iter(clips.values())))
    try:
        for timed in (False, True):
            for pipe in pipes.values():
                pipe.reset()
            for i in range(length):
                for key, pipe in pipes.items():
                    frame = clips[key[1]][i]
                    start, start_cpu = time.perf_counter(), time.thread_time()
                    results = pipe.process(frame, stamp=i / 30.0)
                    wall = (time.perf_counter() - start) * 1e3
                    cpu = (time.thread_time() - start_cpu) * 1e3
                    if timed and i >= PEOPLE_WARMUP:
                        runs[key].add(wall, cpu, results, pipe.last_timings)
    finally:
        for pipe in pipes.values():
            pipe.close()
    out: dict = {}
    for (every, n, name), rec in runs.items():
        out.setdefault(f"detect_every_{every}", {}).setdefault(str(n), {})[name] = _people_row(rec)
    return out


def people_axis(counts: tuple[int, ...], frames: int, detect_every: int, lifter, body) -> dict:
    """The ``--people`` report: per ``detect_every``, per count, both pipelines."""
    clips = people_clips(counts, frames)
    everies = tuple(dict.fromkeys((1, detect_every)))
    report: dict = {
        "frames": f"{frames} timed per count ({PEOPLE_WARMUP} warm-up), rendered 640x480, "
        "people 180 px tall side by side (tracking.synthetic.side_by_side_walkers)",
        "detector": "blazepose-multi (enable_segmentation=False, hog_every=5)",
        "max_persons": max(4, *counts),
        **run_people(clips, everies, lifter, body),
    }
    n_goal, fps_goal = GOAL_FPS_PEOPLE
    if str(n_goal) in report["detect_every_1"]:
        measured = {f"measured_detect_every_{e}": report[f"detect_every_{e}"][str(n_goal)]
                    ["pipeline"]["fps"] for e in everies}  # fmt: skip
        report["goal"] = {f"fps_{n_goal}_people": fps_goal, **measured,
                          "met": bool(max(measured.values()) >= fps_goal)}  # fmt: skip
    return report


def coco_accuracy(lifters: tuple[str, ...]) -> dict:
    """Per front end: mesh COCO-17 2D error and silhouette IoU on the COCO photo (see above)."""
    import torch

    from s2m_model.body import load_body_model
    from s2m_model.body.render import render_silhouette
    from s2m_model.camera import Camera
    from s2m_model.detect.coco_eval import keypoint_errors, load_coco_person, mask_iou
    from s2m_model.image import load_image
    from s2m_model.pipeline import Pipeline, PipelineConfig

    if not COCO_IMAGE.is_file():
        return {"error": f"{COCO_IMAGE} not found"}
    image = load_image(COCO_IMAGE)
    person = load_coco_person(COCO_IMAGE.with_suffix(".json"))
    gt_mask = person.mask()
    cam = Camera.from_fov(image.shape[1], image.shape[0])
    body = load_body_model("s2m-free")
    out: dict = {"image": COCO_IMAGE.name, "camera": f"default, {cam.fov_deg:.0f} deg FOV"}
    for lifter in lifters:
        config = PipelineConfig(lifter=lifter, video_mode=False, temporal=False)
        with Pipeline(config, body=body) as pipe:
            results = pipe.process(image)
        if not results:
            out[lifter] = {"persons": 0, "counters": pipe.counters}
            continue
        res = results[0]
        coco = body.regress(torch.from_numpy(res.vertices)[None], "coco17")[0].numpy()
        mesh_err = keypoint_errors(cam.project(coco), person.keypoints)
        det_err = keypoint_errors(res.keypoints_2d, person.keypoints)
        silhouette = render_silhouette(res.vertices, body.faces, cam)
        out[lifter] = {
            "front_end_used": res.lifter,
            "mesh_coco17_px_mean": float(np.nanmean(mesh_err)),
            "mesh_coco17_px_median": float(np.nanmedian(mesh_err)),
            "mesh_coco17_px_max": float(np.nanmax(mesh_err)),
            "detector_coco17_px_mean": float(np.nanmean(det_err)),
            "mesh_mask_iou": mask_iou(silhouette, gt_mask),
            "depth_m": float(res.transl[2]),
            "counters": pipe.counters,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    import torch

    from s2m_model.body import load_body_model
    from s2m_model.lifter import DEFAULT_CHECKPOINT, load_lifter

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lifter", default="default", help="lifter name or checkpoint")
    parser.add_argument("--frames", type=int, default=FRAMES, help="timed frames (>= 100)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument(
        "--accuracy",
        action="store_true",
        help="score the front ends on the COCO photo instead of timing",
    )
    parser.add_argument(
        "--people",
        type=parse_people,
        default=None,
        help="time the multi-person pipeline for these people counts instead (e.g. 1,2,4,6)",
    )
    parser.add_argument(
        "--people-frames", type=int, default=PEOPLE_FRAMES, help="timed frames per count"
    )
    parser.add_argument(
        "--detect-every",
        type=int,
        default=5,
        help="the second detect_every of --people (the first is 1)",
    )
    args = parser.parse_args(argv)
    from s2m_model.pipeline import LIFTERS, set_torch_threads

    set_torch_threads(args.threads)
    if args.accuracy:
        print(json.dumps(coco_accuracy(LIFTERS), indent=2))
        return 0
    if args.people is not None:
        start = time.perf_counter()
        weights = args.lifter != "default" or DEFAULT_CHECKPOINT.is_file()
        lifter = load_lifter(args.lifter) if weights else None
        report = {
            "people": list(args.people),
            "lifter": args.lifter,
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average_1min_at_start": os.getloadavg()[0],
            **people_axis(args.people, args.people_frames, args.detect_every, lifter,
                          load_body_model("s2m-free")),
            "load_average_1min_at_end": os.getloadavg()[0],
            "seconds": round(time.perf_counter() - start, 1),
        }  # fmt: skip
        print(json.dumps(report, indent=2))
        return 0
    frames, source = load_frames(args.frames)
    report: dict = {
        "frames": f"{len(frames) - WARMUP} timed ({WARMUP} warm-up), {source}",
        "lifter": args.lifter,
        "cpu_count": os.cpu_count(),
        "load_average_1min_at_start": os.getloadavg()[0],
    }
    if args.lifter == "default" and not DEFAULT_CHECKPOINT.is_file():
        report["error"] = f"no lifter checkpoint at {DEFAULT_CHECKPOINT}; pipeline not timed"
        report["detector_alone_ms"] = time_detector(frames)
        print(json.dumps(report, indent=2))
        return 1
    lifter = load_lifter(args.lifter)
    body = load_body_model("s2m-free")
    report.update(run_interleaved(frames, lifter, body))
    report["load_average_1min_at_end"] = os.getloadavg()[0]
    total = report["pipeline"]["frame_to_result_ms"]["median"]
    post = report["pipeline"]["post_detector_ms"]["median"]
    post_joints = report["pipeline_joints_only"]["post_detector_ms"]["median"]
    report["goals"] = {
        "frame_to_result_median_ms": {"goal": GOAL_TOTAL_MS, "measured": total,
                                      "met": bool(total <= GOAL_TOTAL_MS)},
        "lifter_dik_body_median_ms": {"goal": GOAL_POST_DETECTOR_MS, "measured": post,
                                      "met": bool(post <= GOAL_POST_DETECTOR_MS)},
        "lifter_dik_body_joints_only_median_ms": {
            "goal": GOAL_POST_DETECTOR_MS, "measured": post_joints,
            "met": bool(post_joints <= GOAL_POST_DETECTOR_MS)},
    }  # fmt: skip
    report["ratio_pipeline_vs_detector"] = total / report["detector_alone_ms"]["median"]
    report["torch_threads"] = torch.get_num_threads()  # as --threads set it
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
