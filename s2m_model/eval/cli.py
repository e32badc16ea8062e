"""``s2m eval``: score skeleton -> body methods on a ground-truth shards folder.

The command line only: the scoring is :mod:`s2m_model.eval.scoring`, the driver (read shards,
write reports) :mod:`s2m_model.eval.runner`.

Methods, metrics and their definitions: :mod:`s2m_model.eval.scoring`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from s2m_model.eval.scoring import METHODS


def register(subparsers) -> None:
    """Add the ``eval`` subcommand."""
    parser = subparsers.add_parser(
        "eval",
        help="score DIK / baselines / the pipeline on a ground-truth shards folder",
        description=(
            "Run a skeleton -> body method on the samples of a shards folder (`s2m data "
            "build`, docs/data-format.md) and write metrics.json, metrics.md and plots to OUT: "
            "MPJPE, PA-MPJPE, PVE, PA-PVE (mm), joint-angle error (radians, 3DPW definition), "
            "PCK@150mm and AUC (%). `--method all` writes one sub-folder per method and a "
            "comparison table."
        ),
    )
    parser.add_argument("--method", required=True, choices=(*METHODS, "all"))
    parser.add_argument("--data", required=True, help="shards folder (manifest.json + shards)")
    parser.add_argument("--out", required=True, help="output folder for the report")
    parser.add_argument("--format", default="h36m17", help="input skeleton format (h36m17)")
    parser.add_argument("--limit", type=int, default=None, help="first N samples only")
    parser.add_argument("--batch-size", type=int, default=128, help="samples per call (128)")
    parser.add_argument(
        "--betas", choices=("gt", "zero"), default="gt",
        help="shape given to the methods: ground truth (default) or the mean shape",
    )  # fmt: skip
    parser.add_argument("--body", default=None, help="body model (default: the manifest's)")
    parser.add_argument("--device", default="cpu", help="torch device (cpu)")
    parser.add_argument(
        "--optimizer", default="lm", choices=("lm", "lbfgs", "adam"),
        help="optimiser of the iterative baseline (lm)",
    )  # fmt: skip
    parser.add_argument("--lifter", default="default", help="lifter for --method pipeline")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch CPU threads (1: these small batched ops gain little from more, and extra "
        "threads spin-wait on a busy machine; 0: torch's default)",
    )  # fmt: skip
    parser.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.threads < 0:
        raise ValueError(f"--threads must be >= 0, got {args.threads}")
    import torch

    from s2m_model.eval.runner import run_eval

    methods = list(METHODS) if args.method == "all" else [args.method]
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        results = run_eval(
            args.data, args.out, methods, fmt=args.format, limit=args.limit,
            batch_size=args.batch_size, betas_mode=args.betas, body_name=args.body,
            device=args.device, optimizer=args.optimizer, lifter=args.lifter,
            skip_unavailable=args.method == "all",
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    for method, metrics in results.items():
        if metrics is None:
            print(f"{method:10s} not available")
            continue
        print(
            f"{method:10s} MPJPE {metrics['mpjpe']:.1f} mm  PA-MPJPE {metrics['pa_mpjpe']:.1f}  "
            f"PVE {metrics['pve']:.1f}  angle {metrics['joint_angle']:.3f} rad  "
            f"PCK {metrics['pck']:.1f}%  {metrics['ms_per_sample']:.2f} ms/sample"
        )
    print(f"report: {Path(args.out) / 'metrics.md'}")
    return 0
