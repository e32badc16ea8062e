"""Benchmark: where the detector's time goes (issue 14): model threads and input size.

Prints one JSON object:

- ``models_ms``: the two BlazePose models MediaPipe ships, run bare through LiteRT (XNNPACK
  CPU delegate, ``ai-edge-litert``) on a fixed random input, per ``num_threads`` in
  ``--threads`` (median/p95 of ``--runs`` invokes after warm-up): ``pose_detection`` (person
  detector, 224x224) and ``pose_landmark_full`` (landmarks, world landmarks, mask; 256x256).
  The model inputs are fixed, so the frame size does not change these.
- ``detector_ms``: the pipeline's default detector (``mediapipe``: the legacy BlazePose graph
  in video mode, landmarks tracked from the previous frame) per frame size in ``--sizes``,
  the same frame (the demo video's frame 90, else the COCO photo, else noise) resized
  (letterboxed) to each size; the baseline is the pipeline's own 640x480. Also
  ``static_640x480`` (person detector + landmarks on every frame). ``persons_found_min``: the
  fewest people found in a call (0 would mean only the person detector ran).
- ``ratio_vs_640x480``: median per size / median at 640x480.
- ``hardware``: CPUs seen by this process.

An ONNX (and so TensorRT) route for these models is not measured: ``pose_detection.tflite``
holds sparse weights (the TFLite ``DENSIFY`` op), which the TensorFlow-free converter
``tflite2onnx`` 0.4.1 does not support (checked by hand; docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from s2m_model.util.timing import summarize  # noqa: E402

MODELS = {
    "pose_detection": "modules/pose_detection/pose_detection.tflite",
    "pose_landmark_full": "modules/pose_landmark/pose_landmark_full.tflite",
}


def time_model(relative: str, threads: int, runs: int) -> dict:
    """Median/p95 ms of one LiteRT invoke of a shipped model at ``threads`` threads."""
    from s2m_model.detect.blazepose_person import make_interpreter, mediapipe_model_path

    interp = make_interpreter(mediapipe_model_path(relative), threads)
    inp = interp.get_input_details()[0]
    x = np.random.default_rng(0).random(inp["shape"], dtype=np.float32)
    interp.set_tensor(inp["index"], x)
    for _ in range(3):
        interp.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interp.invoke()
        times.append((time.perf_counter() - start) * 1e3)
    return summarize(times, 2)


def first_frame() -> tuple[np.ndarray, str]:
    """An RGB frame with a person in it, and where it comes from."""
    from detector import DEMO_VIDEO, SHARED_IMAGES  # bench/detector.py

    from s2m_model.image import iter_frames, load_image

    if DEMO_VIDEO.is_file():  # frame 90: found on its own (frames 0-60 letterboxed: nobody)
        return list(iter_frames(DEMO_VIDEO, max_frames=91))[-1][2], "demo video, frame 90"
    photo = SHARED_IMAGES / "coco_000000000785.jpg"
    if photo.is_file():
        return load_image(photo), photo.name
    return np.random.default_rng(0).integers(0, 255, (480, 640, 3), np.uint8), "noise"


def time_detector(frame: np.ndarray, runs: int, **options) -> dict:
    """Median/p95 ms of the default detector's ``detect`` on ``frame`` (after warm-up)."""
    from s2m_model.detect import get_detector

    detector = get_detector("mediapipe", **options)
    try:
        found = [len(detector.detect(frame)) for _ in range(3)]
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            found.append(len(detector.detect(frame)))
            times.append((time.perf_counter() - start) * 1e3)
    finally:
        detector.close()
    return {**summarize(times, 2), "persons_found_min": min(found)}


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``"320x240,640x480"`` -> ``[(320, 240), (640, 480)]``."""
    wrong = argparse.ArgumentTypeError(f"sizes look like 640x480,1280x720; got {text!r}")
    try:
        sizes = [tuple(int(v) for v in s.lower().split("x")) for s in text.split(",") if s]
    except ValueError:
        raise wrong from None
    if not sizes or any(len(s) != 2 or min(s) < 32 for s in sizes):
        raise wrong
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=40, help="timed calls per measurement")
    parser.add_argument("--threads", default="1,2", help="LiteRT thread counts, e.g. 1,2,4")
    parser.add_argument("--sizes", type=parse_sizes, default="320x240,640x480,1280x720",
                        help="frame sizes for the default detector (640x480 is the baseline)")
    args = parser.parse_args(argv)
    from detector import letterbox  # bench/detector.py

    report: dict = {"hardware": {"cpu_count": os.cpu_count()}, "runs": args.runs}
    threads = [int(t) for t in args.threads.split(",") if t]
    try:
        import ai_edge_litert  # noqa: F401

        report["models_ms"] = {
            name: {str(t): time_model(path, t, args.runs) for t in threads}
            for name, path in MODELS.items()
        }
    except ImportError:
        report["models_ms"] = {"skipped": "ai-edge-litert is not installed"}
    frame, source = first_frame()
    report["frame"] = source
    sizes = list(dict.fromkeys([(640, 480), *args.sizes]))
    report["detector_ms"] = {
        f"{w}x{h}": time_detector(letterbox(frame, w, h), args.runs) for w, h in sizes
    }
    report["detector_ms"]["static_640x480"] = time_detector(
        letterbox(frame, 640, 480), args.runs, static_image_mode=True
    )
    base = report["detector_ms"]["640x480"]["median"]
    report["ratio_vs_640x480"] = {
        k: round(v["median"] / base, 3) for k, v in report["detector_ms"].items()
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
