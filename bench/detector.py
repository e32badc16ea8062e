"""Benchmark: MediaPipe BlazePose (full) accuracy on COCO image 785 and latency at 640x480.

Prints one JSON object:

- ``accuracy``: 2D keypoint error (mean/max px over the 17 labelled GT keypoints), PCK@0.1 of
  the GT box diagonal, COCO OKS, and the silhouette IoU of the mask thresholded at 0.5, for
  static-image mode (needs ``../shared/data``; null without it).
- ``latency_ms``: median/p95 of ``detect`` over ``RUNS`` calls on the same 640x480 frame (the
  COCO photo letterboxed to 640x480, or a frame of the demo video), after warm-up, for
  ``static_image_mode`` (the baseline: person detector + landmarks on every frame) and video
  mode (landmarks tracked from the previous frame), both in this process.
- ``ratio_video_vs_static``: median video-mode latency / median static-mode latency.
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
from s2m_model.detect import get_detector  # noqa: E402
from s2m_model.detect.coco_eval import evaluate_detection, load_coco_person  # noqa: E402
from s2m_model.image import iter_frames, load_image  # noqa: E402
from s2m_model.util.timing import summarize  # noqa: E402

RUNS = 30
WARMUP = 3
SHARED_IMAGES = REPO.parent / "shared" / "data" / "images"
DEMO_VIDEO = REPO / ".venv" / "share" / "s2m" / "demo" / "demo.mp4"


def letterbox(image: np.ndarray, width: int = 640, height: int = 480) -> np.ndarray:
    """Resize keeping the aspect ratio and pad with black to exactly ``width`` x ``height``."""
    from PIL import Image

    scale = min(width / image.shape[1], height / image.shape[0])
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    canvas = Image.new("RGB", (width, height))
    canvas.paste(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR),
                 ((width - size[0]) // 2, (height - size[1]) // 2))
    return np.asarray(canvas)


def time_detector(detector, frame: np.ndarray) -> dict[str, float]:
    for _ in range(WARMUP):
        detector.detect(frame)
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        detector.detect(frame)
        times.append((time.perf_counter() - start) * 1e3)
    stats = summarize(times)
    return {"median": stats["median"], "p95": stats["p95"]}


def main() -> int:
    report: dict = {"detector": "mediapipe BlazePose full (model_complexity=1)",
                    "cpu_count": os.cpu_count()}
    static = get_detector("mediapipe", static_image_mode=True)

    frame = None
    if (SHARED_IMAGES / "coco_000000000785.jpg").is_file():
        image = load_image(SHARED_IMAGES / "coco_000000000785.jpg")
        person = load_coco_person(SHARED_IMAGES / "coco_000000000785.json")
        dets = static.detect(image)
        metrics = evaluate_detection(dets[0] if dets else None, person)
        report["accuracy"] = {"image": "COCO val2017 000000000785 (640x425)", **metrics}
        frame, source = letterbox(image), "COCO 785 letterboxed"
    else:
        report["accuracy"] = None
    if frame is None and DEMO_VIDEO.is_file():
        _, _, first = next(iter_frames(DEMO_VIDEO, max_frames=1))
        frame, source = letterbox(first), "demo video frame 0 letterboxed"
    if frame is None:
        frame = np.zeros((480, 640, 3), np.uint8)
        source = "black frame (no person: ../shared and the demo video are absent)"

    video = get_detector("mediapipe", static_image_mode=False)
    static_ms = time_detector(static, frame)
    video_ms = time_detector(video, frame)
    report["latency_ms"] = {
        "frame": f"640x480, {source}",
        "runs": RUNS,
        "static_image_mode (baseline)": static_ms,
        "video_mode": video_ms,
    }
    report["ratio_video_vs_static"] = video_ms["median"] / static_ms["median"]
    report["person_found_640x480"] = bool(static.detect(frame))
    static.close()
    video.close()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
