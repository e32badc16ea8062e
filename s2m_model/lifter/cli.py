"""``s2m train lifter``: train the 2D -> 3D lifter on data shards (single process or torchrun)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand (``train lifter``, ``train fused``)."""
    parser = subparsers.add_parser(
        "train",
        help="train a model (the 2D -> 3D lifter)",
        description="Train one of s2m's learned parts: `lifter`, `fused`, `refine`.",
    )
    what = parser.add_subparsers(dest="train_command", metavar="MODEL", required=True)
    p = what.add_parser(
        "lifter",
        help="train the coco17 2D -> h36m17 3D lifter on data shards",
        description=(
            "Train the lifter on shards from `s2m data build` (docs/data-format.md) and write "
            "OUT/lifter.pt (load with load_lifter(path)), OUT/history.json, OUT/report.json "
            "(val MPJPE / PA-MPJPE in mm) and OUT/curve.png. Supervised mode fits the 3D joints; "
            "unsupervised mode uses only 2D keypoints + intrinsics (Chen et al. 2019). "
            "Multi-GPU/CPU: `torchrun --nproc-per-node K -m s2m_model.cli train lifter ...`."
        ),
        epilog="See docs/lifter.md for the losses, defaults and the shipped weights.",
    )
    p.add_argument("--data", required=True, type=Path, help="training shard folder")
    p.add_argument("--val", type=Path, default=None, help="validation shard folder")
    p.add_argument(
        "--mode",
        choices=("supervised", "unsupervised"),
        default="supervised",
        help="loss (default supervised)",
    )
    p.add_argument("--epochs", type=int, default=20, help="epochs (default 20)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--batch", type=int, default=512, help="batch size per process (default 512)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default 1e-3)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--hidden", type=int, default=512, help="MLP width (default 512)")
    p.add_argument("--blocks", type=int, default=2, help="residual blocks (default 2)")
    p.add_argument("--dropout", type=float, default=0.1, help="dropout (default 0.1)")
    p.add_argument(
        "--norm",
        choices=("batch", "layer"),
        default="batch",
        help="normalisation layers (default batch)",
    )
    p.add_argument(
        "--noise",
        type=float,
        default=0.1,
        help="max 2D noise std as a fraction of the 2D pose size (default 0.1)",
    )
    p.add_argument(
        "--drop", type=float, default=0.2, help="max keypoint dropout rate (default 0.2)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--eval-every", type=int, default=1, help="validate every N epochs")
    p.add_argument(
        "--max-samples", type=int, default=None, help="use only the first N training samples"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's choice; 1 is fastest on a busy machine)",
    )
    p.add_argument(
        "--keypoints",
        choices=("gt", "detector"),
        default="gt",
        help="2D input: the exact projections with simulated detector noise (gt, default) or, "
        "on detector-in-the-loop data, the detector's own keypoints (detected samples only)",
    )
    p.add_argument(
        "--holdout-style", action="append", default=[],
        help="with --keypoints detector: leave the samples of this mocap style out (repeatable)",
    )
    p.add_argument(
        "--init", default=None, help="start from these weights: 'default' or a checkpoint path"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=handler)
    from s2m_model.lifter import fused_cli

    f = what.add_parser(
        "fused",
        help="train the fused front end (2D + world landmarks -> blazepose33) on "
        "detector-in-the-loop data",
        description=fused_cli.__doc__.split("\n\n")[0],
    )
    fused_cli.add_arguments(f)
    f.set_defaults(func=fused_cli.run)


def handler(args: argparse.Namespace) -> int:
    """Load the shards, train, print the validation report as JSON."""
    import json
    import logging

    import torch

    from s2m_model.lifter.samples import load_arrays, with_detector_keypoints
    from s2m_model.lifter.train import TrainConfig, train_lifter

    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.max_samples is not None and args.max_samples < 1:
        raise ValueError(f"--max-samples must be >= 1, got {args.max_samples}")
    cfg = TrainConfig(
        mode=args.mode, epochs=args.epochs, batch=args.batch, lr=args.lr, device=args.device,
        hidden=args.hidden, blocks=args.blocks, dropout=args.dropout, norm=args.norm,
        noise=args.noise, drop=args.drop, seed=args.seed, eval_every=args.eval_every,
        init=args.init,
        extra={"data": str(args.data), "val": str(args.val) if args.val else None,
               "keypoints": args.keypoints, "holdout_styles": args.holdout_style},
    )  # fmt: skip
    train = load_arrays(args.data, args.max_samples)
    val = load_arrays(args.val) if args.val is not None else None
    if args.keypoints == "detector":
        from s2m_model.lifter.fused_cli import read_folder

        clips = read_folder(args.data)[1] if args.holdout_style else None
        train = with_detector_keypoints(train, clips, args.holdout_style)
        val = with_detector_keypoints(val) if val is not None else None
    elif args.holdout_style:
        raise ValueError("--holdout-style needs --keypoints detector")
    logging.getLogger("s2m_model.lifter.train").setLevel(logging.INFO)
    _, report = train_lifter(cfg, train, val, out_dir=args.out, progress=not args.no_progress)
    summary = {k: report[k] for k in ("mode", "train_samples", "train_time_s") if k in report}
    summary["val"] = report.get("val")
    summary["out"] = str(args.out)
    print(json.dumps(summary, indent=1))
    return 0
