"""``s2m data build|fit-report|info`` — build ground-truth shards from mocap, report fit errors."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "data",
        help="build ground-truth datasets from mocap (shards), fit reports",
        description="Fit the SMPL-layout body to mocap clips (Bandai-Namco, CMU) and render "
        "random bodies and cameras into ground-truth shards (docs/data.md, "
        "docs/data-format.md). Fits are cached in $S2M_CACHE_DIR/mocap-fits.",
    )
    cmds = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    build = cmds.add_parser(
        "build",
        help="build N samples of a split into a folder of shards",
        description="Build a dataset folder (manifest.json + shard-NNNNN.npz). Same seed and "
        "options -> identical arrays, whatever --workers is. Splits: train/val/test (Bandai, "
        "disjoint by clip group), test-cmu (CMU subject 131).",
    )
    build.add_argument("--out", required=True, type=Path, help="output folder (new or empty)")
    build.add_argument("--split", required=True, choices=("train", "val", "test", "test-cmu"))
    build.add_argument("--n", required=True, type=int, help="number of samples")
    build.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    _shared_arg(build)
    build.add_argument("--shard-size", type=int, default=1000, help="samples per shard")
    build.add_argument(
        "--workers", type=int, default=1, help="processes generating shards (default 1)"
    )
    build.add_argument("--body", default="s2m-free", help="body model (default s2m-free)")
    build.add_argument("--no-progress", action="store_true", help="no progress bars")
    build.add_argument(
        "--detector", choices=("none", "mediapipe"), default="none",
        help="mediapipe: render every sample into a procedural scene and store the real "
        "detector's output beside the ground truth; resumable (docs/detector-loop.md)",
    )  # fmt: skip
    build.set_defaults(func=_build)

    report = cmds.add_parser(
        "fit-report",
        help="fit every mocap clip and write per-clip fit errors (JSON + plot)",
        description="Writes OUT/fit_report.json (per clip and per dataset: joint, limb and "
        "bone-direction errors) and OUT/fit_report.png. Fits come from the cache when present.",
    )
    report.add_argument("--out", required=True, type=Path, help="output folder")
    _shared_arg(report)
    report.add_argument(
        "--datasets", nargs="+", default=["bandai-1", "bandai-2", "cmu"],
        choices=("bandai-1", "bandai-2", "cmu"), help="datasets to report (default all)",
    )  # fmt: skip
    report.add_argument("--body", default="s2m-free", help="body model (default s2m-free)")
    report.set_defaults(func=_fit_report)

    info = cmds.add_parser(
        "info",
        help="validate a dataset folder and print its summary as JSON",
        description="Loads every shard (checks keys, shapes, counts) and prints a summary.",
    )
    info.add_argument("folder", type=Path)
    info.set_defaults(func=_info)


def _shared_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--shared", type=Path, default=None,
        help="the shared data folder (default: $S2M_SHARED_DATA, else ../shared/data)",
    )  # fmt: skip


def _build(args: argparse.Namespace) -> int:
    import json
    import time

    from .generator import build_dataset

    t0 = time.perf_counter()
    builder, extra = build_dataset, {}
    if args.detector != "none":  # detector in the loop: renders + the real detector
        from .detector_build import build_detector_dataset

        builder, extra = build_detector_dataset, {"detector": args.detector}
    manifest = builder(
        args.out, args.split, args.n, seed=args.seed, shared=args.shared,
        shard_size=args.shard_size, workers=args.workers, body_name=args.body,
        show_progress=not args.no_progress, **extra,
    )  # fmt: skip
    summary = {k: manifest[k] for k in ("split", "num_samples", "seed", "shards", "licence")}
    if "detection" in manifest:
        summary["detected"] = manifest["detection"]["overall"].get("detected")
        summary["samples_per_second"] = manifest["throughput"]["samples_per_second"]
    summary.update(out=str(args.out), clips=len(manifest["clips"]),
                   seconds=round(time.perf_counter() - t0, 1))  # fmt: skip
    print(json.dumps(summary, indent=1))
    return 0


def _fit_report(args: argparse.Namespace) -> int:
    import json

    from .fit_report import write_fit_report
    from .generator import default_shared_dir

    shared = args.shared if args.shared is not None else default_shared_dir()
    summary = write_fit_report(args.out, shared, args.datasets, body_name=args.body)
    print(json.dumps(summary, indent=1))
    return 0


def _info(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from .shards import load_shards, read_manifest

    manifest = read_manifest(args.folder)
    arrays = load_shards(args.folder)
    vis = {
        fmt: round(float(arrays[f"keypoints2d_{fmt}"][..., 2].mean()), 3)
        for fmt in manifest["formats"]
    }
    summary = {
        "folder": str(args.folder),
        **{k: manifest[k] for k in ("split", "num_samples", "seed", "version", "licence")},
        "clips": len(manifest["clips"]),
        "clips_used": int(np.unique(arrays["clip_id"]).size),
        "visible_fraction": vis,
        "mask_fraction": round(float(np.unpackbits(arrays["mask"], axis=1).mean()), 4),
        "pelvis_depth_m": {
            "min": round(float(arrays["joints3d_smpl24"][:, 0, 2].min()), 2),
            "max": round(float(arrays["joints3d_smpl24"][:, 0, 2].max()), 2),
        },
    }
    print(json.dumps(summary, indent=1))
    return 0
