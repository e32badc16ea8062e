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
    args = parser.parse_args(argv)
    from s2m_model.pipeline import LIFTERS, set_torch_threads

    set_torch_threads(args.threads)
    if args.accuracy:
        print(json.dumps(coco_accuracy(LIFTERS), indent=2))
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
