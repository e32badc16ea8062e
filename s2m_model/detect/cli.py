"""``s2m detect``: 2D keypoints for an image, a folder of images or a video, as JSON lines."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    """Add the ``detect`` subcommand."""
    parser = subparsers.add_parser(
        "detect",
        help="2D keypoints (COCO-17 + extras) for an image, folder or video (JSON lines)",
        description=(
            "Run a person detector on every frame of INPUT and print one JSON object per frame: "
            "index, timestamp_s and the detections (COCO-17 keypoints x, y in pixels + "
            "confidence, BlazePose extras, bbox x0 y0 x1 y1, score). MediaPipe is "
            "single-person; 'onnx' runs a top-down COCO-17 heatmap model (see docs/detect.md)."
        ),
    )
    parser.add_argument("input", help="image file, folder of images, or video file")
    parser.add_argument("--detector", default="mediapipe", choices=("mediapipe", "onnx"))
    parser.add_argument("--model", help="ONNX heatmap model (required with --detector onnx)")
    parser.add_argument(
        "--static", action="store_true",
        help="MediaPipe static-image mode: detect on every frame instead of tracking",
    )
    parser.add_argument("--stride", type=int, default=1, help="use every N-th frame")
    parser.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    parser.add_argument("--fps", type=float, default=None, help="frame rate for folders")
    parser.add_argument("--out", help="write the JSON lines to this file instead of stdout")
    parser.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    from s2m_model.detect import get_detector
    from s2m_model.image import iter_frames

    if not Path(args.input).exists():
        raise FileNotFoundError(f"no such file or folder: {args.input}")
    if args.detector == "onnx":
        if not args.model:
            raise ValueError("--detector onnx needs --model PATH.onnx")
        detector = get_detector("onnx", model_path=args.model)
    else:
        detector = get_detector("mediapipe", static_image_mode=args.static)

    sink = open(args.out, "w") if args.out else sys.stdout  # closed in finally
    try:
        for index, stamp, frame in iter_frames(
            args.input, fps=args.fps, stride=args.stride, max_frames=args.max_frames
        ):
            people = [
                {
                    "keypoints": _rounded(d.keypoints),
                    "extra": {k: _rounded(v) for k, v in d.extra.items()},
                    "bbox": _rounded(d.bbox),
                    "score": round(d.score, 4),
                }
                for d in detector.detect(frame)
            ]
            record = {"index": index, "timestamp_s": round(stamp, 6),
                      "width": frame.shape[1], "height": frame.shape[0], "people": people}
            sink.write(json.dumps(record) + "\n")
    finally:
        if sink is not sys.stdout:
            sink.close()
        detector.close()
    return 0


def _rounded(values) -> list:
    """float32 array -> nested list of floats with 2 decimals (float64 avoids 0.7900000214)."""
    import numpy as np

    return np.round(np.asarray(values, dtype=np.float64), 2).tolist()
