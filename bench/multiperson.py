"""Benchmark: multi-person detection recall, tracking (id switches, MOTA) and speed.

Prints one JSON object (and writes it to ``--out`` when given):

- ``crowd``: a rendered crowd (``s2m_model.tracking.synthetic``, seeded): ``--clips`` clips of
  ``--frames`` frames at 640x480 with 2..6 walking people (heights 70-320 px, crossing each
  other, entering/leaving at the borders). For each detector variant: detection recall (OKS >=
  0.5 against the rendered COCO-17 keypoints) for people >= 150 px and >= 80 px tall with at
  least half of their silhouette visible; then the tracker on the default variant: CLEAR-MOT
  counts, MOTA, id switches per 100 frames (``tracking``: the pipeline's tracker, with colour
  histograms and re-identification; ``tracking_no_appearance``: the same on boxes and
  keypoints only, the same run's baseline), and the median detector ms per frame.
- ``speed_ms``: detection + landmarks (``BlazePoseTFLite.detect``, video mode) and tracker
  update per frame, median and p95, for 1, 2, 4 and 6 people (180 px tall, side by side,
  walking slowly) at 640x480, timed after 10 warm-up frames in which they are acquired; with
  the people actually found per frame.
- ``hardware``: CPU count seen by this process and LiteRT threads.

Variants: ``blazepose+hog5`` (the first one is tracked and timed: BlazePose's person detector
with 2x2 tiles, one tile per frame, plus OpenCV HOG every 5 frames), ``blazepose`` (BlazePose's
detector alone), ``blazepose_tiles23`` (2x2 + 3x3 tiles, two per frame), ``hog`` (HOG boxes ->
BlazePose landmarks), ``blazepose+hog`` (both person detectors on every frame). Needs
``ai-edge-litert``; without it the JSON says so and the script exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from s2m_model.body import load_body_model  # noqa: E402
from s2m_model.pipeline.config import PipelineConfig  # noqa: E402
from s2m_model.tracking.appearance import color_histogram  # noqa: E402
from s2m_model.tracking.metrics import MotAccumulator, RecallBins, score_frame  # noqa: E402
from s2m_model.tracking.synthetic import SpriteBank, make_clip, side_by_side_walkers  # noqa: E402
from s2m_model.tracking.tracker import MultiPersonTracker  # noqa: E402
from s2m_model.util.timing import summarize  # noqa: E402

VARIANTS = (
    "blazepose+hog5",
    "blazepose+hog5-detect5",
    "blazepose",
    "blazepose_tiles23",
    "hog",
    "blazepose+hog",
)


def make_detector(variant: str, threads: int | None):
    from s2m_model.detect.blazepose_person import BlazePoseBoxDetector
    from s2m_model.detect.blazepose_tflite import BlazePoseTFLite
    from s2m_model.detect.hog_people import HogPersonDetector
    from s2m_model.detect.person import UnionPersonDetector

    common = dict(enable_segmentation=False, num_threads=threads)
    if variant == "blazepose":
        return BlazePoseTFLite(hog_every=0, **common)
    if variant == "blazepose+hog5":
        return BlazePoseTFLite(hog_every=5, **common)
    if variant == "blazepose+hog5-detect5":  # person detector every 5th frame while tracking
        return BlazePoseTFLite(hog_every=5, detect_every=5, **common)
    if variant == "blazepose_tiles23":
        return BlazePoseTFLite(tiles=(2, 3), tiles_per_frame=2, hog_every=0, **common)
    hog = HogPersonDetector()
    if variant == "hog":
        return BlazePoseTFLite(person_detector=hog, **common)
    if variant == "blazepose+hog":
        blaze = BlazePoseBoxDetector(tiles=2, tiles_per_call=1, num_threads=threads)
        return BlazePoseTFLite(person_detector=UnionPersonDetector([blaze, hog]), **common)
    raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")


#: Trackers scored on the first variant's detections: the pipeline's (appearance features and
#: re-identification, ``track_appearance: true``) and, as the same run's baseline, the same
#: tracker on boxes and keypoints only.
TRACKERS = {"tracking": True, "tracking_no_appearance": False}


def run_crowd(detector, clips, *, track: bool) -> dict:
    recall = RecallBins()
    mots = {name: MotAccumulator() for name in TRACKERS}
    times, per_frame = [], []
    for frames in clips:
        detector.reset()
        config = PipelineConfig().tracker_config()
        trackers = {name: MultiPersonTracker(config) for name in TRACKERS}
        for mot in mots.values():
            mot.new_sequence()
        for frame in frames:
            start = time.perf_counter()
            dets = detector.detect(frame.image)
            times.append((time.perf_counter() - start) * 1e3)
            per_frame.append(len(dets))
            score_frame(frame.people, [d.keypoints for d in dets], recall=recall)
            if not track:
                continue
            features = [color_histogram(frame.image, d) for d in dets]
            for name, appearance in TRACKERS.items():
                tracked = trackers[name].update(dets, features if appearance else None)
                score_frame(
                    frame.people,
                    [t.detection.keypoints for t in tracked],
                    track_ids=[t.track_id for t in tracked],
                    mot=mots[name],
                )
    out = {
        "recall": recall.summary(),
        "detect_ms": summarize(times, 1),
        "persons_per_frame": float(np.mean(per_frame)),
    }
    if track:
        out.update({name: mot.summary() for name, mot in mots.items()})
    return out


def run_speed(detector, bank, counts=(1, 2, 4, 6), warmup=10, frames=20) -> dict:
    out = {}
    for n in counts:
        walkers = side_by_side_walkers(n)
        clip = make_clip(bank, n_frames=warmup + frames, walkers=walkers, seed=100 + n)
        detector.reset()
        tracker = MultiPersonTracker(PipelineConfig().tracker_config())
        det_ms, trk_ms, found = [], [], []
        for i, frame in enumerate(clip):
            start = time.perf_counter()
            dets = detector.detect(frame.image)
            mid = time.perf_counter()
            tracker.update(dets)
            end = time.perf_counter()
            if i >= warmup:  # the people are acquired (round-robin tiles, HOG every k frames)
                det_ms.append((mid - start) * 1e3)
                trk_ms.append((end - mid) * 1e3)
                found.append(len(dets))
        out[str(n)] = {
            "detect_landmarks": summarize(det_ms, 1),
            "tracker": summarize(trk_ms, 2),
            "persons_found_per_frame": float(np.mean(found)),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=5, help="crowd clips (2..6 people)")
    parser.add_argument("--frames", type=int, default=40, help="frames per clip")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="first crowd clip's seed (clip i uses seed + i; default 0, the documented crowd; "
        "docs/multiperson.md also reports --seed 100, a second crowd)",
    )
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"comma-separated detector variants ({', '.join(VARIANTS)})",
    )
    parser.add_argument("--threads", type=int, default=None, help="LiteRT threads per model")
    parser.add_argument("--no-speed", action="store_true", help="skip the speed part")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    try:
        import ai_edge_litert  # noqa: F401
    except ImportError:
        print(
            json.dumps(
                {"skipped": "ai-edge-litert is not installed (pip install ai-edge-litert==2.3.0)"}
            )
        )
        return 0
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    start = time.perf_counter()
    body = load_body_model("s2m-free", dtype=torch.float32)
    bank = SpriteBank(body, identities=6, phases=6, seed=0)
    clips = [
        make_clip(bank, n_frames=args.frames, n_people=2 + i % 5, heights=(70, 320),
                  seed=args.seed + i)
        for i in range(args.clips)
    ]
    report: dict = {
        "crowd": {
            "clips": args.clips,
            "seed": args.seed,
            "frames_per_clip": args.frames,
            "people_per_clip": [2 + i % 5 for i in range(args.clips)],
            "size": "640x480",
            "heights_px": [70, 320],
            "variants": {},
        },
        "hardware": {"cpu_count": os.cpu_count(), "litert_threads": args.threads},
    }
    for variant in variants:
        detector = make_detector(variant, args.threads)
        report["crowd"]["variants"][variant] = run_crowd(
            detector, clips, track=variant == variants[0]
        )
        detector.close()
    if not args.no_speed:
        # The first variant, and the person detector only every 5th frame while tracking.
        report["speed_ms"] = {}
        for variant in dict.fromkeys([variants[0], "blazepose+hog5-detect5"]):
            detector = make_detector(variant, args.threads)
            report["speed_ms"][variant] = run_speed(detector, bank)
            detector.close()
    report["seconds"] = round(time.perf_counter() - start, 1)
    text = json.dumps(report, indent=1)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
