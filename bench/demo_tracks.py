"""Benchmark: who gets which track id on the demo clip (issue 12: "the man keeps one id through
his jump"), for the default single-person detector and ``blazepose-multi``.

The demo clip (``.venv/share/s2m/demo/demo.mp4``, 230 frames 1768x994: a man on a roof who
crouches, jumps down and lands; a woman walking past) runs through the pipeline at full size,
video mode, every setting default except the detector (``blazepose-multi`` with segmentation
off, as docs/multiperson.md). Prints one JSON object, per detector:

- ``tracks``: per id, the frames with a body (``frames``, ``first``, ``last``), the median box
  centre x (pixels) and the median box height, longest first;
- ``summary``: :func:`s2m_model.tracking.metrics.track_summary` (persons per frame, tracks,
  track lengths) and the persons-per-frame histogram;
- ``man_ids``: the id of the body whose box centre lies nearest the man at the frames of
  ``--man-at`` (default: frame 100, on the roof at about (645, 280) px; frame 215, landed, at
  about (1345, 760) px; read off the clip); one id at both = he kept it through the jump;
- ``counters``: the pipeline's counters (``duplicate_people`` and the rest).

The baseline of this run is the default detector (``mediapipe``); ``--detectors`` picks.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEMO_VIDEO = REPO / ".venv" / "share" / "s2m" / "demo" / "demo.mp4"
DETECTORS = {
    "mediapipe": {"detector": "mediapipe"},
    "blazepose-multi": {
        "detector": "blazepose-multi",
        "detector_options": {"enable_segmentation": False},
    },
}


def run(config: dict, frames: list[np.ndarray]) -> dict:
    """Tracks, summary and counters of one pipeline over ``frames``."""
    from s2m_model.pipeline import Pipeline, PipelineConfig
    from s2m_model.tracking.metrics import track_summary

    boxes: dict[int, list[tuple[int, np.ndarray]]] = {}
    ids_per_frame = []
    with Pipeline(PipelineConfig(**config)) as pipe:
        for index, frame in enumerate(frames):
            results = pipe.process(frame, stamp=index / 30.0)
            ids_per_frame.append([r.track_id for r in results])
            for r in results:
                boxes.setdefault(r.track_id, []).append((index, np.asarray(r.bbox, float)))
        counters = dict(pipe.counters)
    tracks = []
    for tid, seen in boxes.items():
        b = np.stack([box for _, box in seen])
        tracks.append({
            "id": tid, "frames": len(seen), "first": seen[0][0], "last": seen[-1][0],
            "centre_x_px": round(float(np.median(0.5 * (b[:, 0] + b[:, 2]))), 1),
            "height_px": round(float(np.median(b[:, 3] - b[:, 1])), 1),
        })  # fmt: skip
    tracks.sort(key=lambda t: -t["frames"])
    summary = track_summary(ids_per_frame)
    summary["persons_per_frame_histogram"] = dict(
        sorted(Counter(len(ids) for ids in ids_per_frame).items())
    )
    return {"tracks": tracks, "summary": summary, "counters": counters, "boxes": boxes}


def man_ids(boxes: dict, at: list[tuple[int, float, float]]) -> list[int | None]:
    """Per ``(frame, x, y)``, the id whose box centre is nearest ``(x, y)`` on that frame and
    whose box holds that point, or None when no body's box does."""
    out = []
    for frame, x, y in at:
        best, nearest = None, np.inf
        for tid, seen in boxes.items():
            for index, box in seen:
                inside = box[0] <= x <= box[2] and box[1] <= y <= box[3]
                dist = float(np.hypot(0.5 * (box[0] + box[2]) - x, 0.5 * (box[1] + box[3]) - y))
                if index == frame and inside and dist < nearest:
                    best, nearest = tid, dist
        out.append(best)
    return out


def parse_at(text: str) -> list[tuple[int, float, float]]:
    """``"100:645,280;215:1345,760"`` -> ``[(100, 645.0, 280.0), (215, 1345.0, 760.0)]``."""
    out = []
    for part in text.split(";"):
        frame, xy = part.split(":")
        x, y = xy.split(",")
        out.append((int(frame), float(x), float(y)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--detectors", default=",".join(DETECTORS),
                        help=f"comma-separated, of {', '.join(DETECTORS)}")
    parser.add_argument("--man-at", type=parse_at, default="100:645,280;215:1345,760",
                        help="FRAME:X,Y;... where the man is (image pixels)")
    parser.add_argument("--max-frames", type=int, default=None, help="first N frames only")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)
    if not DEMO_VIDEO.is_file():
        print(json.dumps({"skipped": f"{DEMO_VIDEO} not found (make setup fetches it)"}))
        return 0
    from s2m_model.image import iter_frames
    from s2m_model.pipeline import set_torch_threads

    set_torch_threads(args.threads)
    frames = [f for _, _, f in iter_frames(DEMO_VIDEO, max_frames=args.max_frames)]
    report: dict = {"video": DEMO_VIDEO.name, "frames": len(frames),
                    "size": f"{frames[0].shape[1]}x{frames[0].shape[0]}", "detectors": {}}
    for name in [d.strip() for d in args.detectors.split(",") if d.strip()]:
        if name not in DETECTORS:
            parser.error(f"unknown detector {name!r}; choose from {', '.join(DETECTORS)}")
        start = time.perf_counter()
        out = run(DETECTORS[name], frames)
        ids = man_ids(out.pop("boxes"), args.man_at)
        out["man_ids"] = {str(f): i for (f, _, _), i in zip(args.man_at, ids, strict=True)}
        out["man_keeps_one_id"] = len(set(ids)) == 1 and ids[0] is not None
        out["seconds"] = round(time.perf_counter() - start, 1)
        report["detectors"][name] = out
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
