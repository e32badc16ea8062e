"""Train the ``fused`` front end from a detector-in-the-loop folder (the I/O around
:mod:`s2m_model.lifter.fused_train`).

    .venv/bin/s2m train fused --data /work/data-s2m/train \\
        --out s2m_model/assets/fused_default.pt --holdout-style childish [--mode unsupervised]

Reads every complete shard of the folder (a build still running is fine: the clip names then
come from the catalogue, checked against the build's clip count), holds the given styles out
of training (they are reported as ``val_mm``), writes the weights (and ``--history``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

LICENCE = ("trained on renders of the Bandai-Namco Research Motion Dataset: CC BY-NC 4.0 "
           "(non-commercial; Kobayashi et al., arXiv:2306.08861); detector outputs from "
           "MediaPipe BlazePose (Apache-2.0)")  # fmt: skip


def read_folder(folder: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """Arrays of every complete shard and the clip names of a detector-in-the-loop folder."""
    from s2m_model.data.catalogue import list_clips
    from s2m_model.data.generator import default_shared_dir

    files = sorted(folder.glob("shard-*.npz"))
    if not files:
        raise ValueError(f"{folder}: no shard-*.npz")
    parts = [dict(np.load(f, allow_pickle=False)) for f in files]
    arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    manifest = folder / "manifest.json"
    if manifest.is_file():
        return arrays, list(json.loads(manifest.read_text())["clips"])
    spec = json.loads((folder / "build.json").read_text())
    datasets = ["cmu"] if spec["split"] == "test-cmu" else ["bandai-1", "bandai-2"]
    clips = [r.name for r in list_clips(default_shared_dir(), datasets) if r.split == spec["split"]]
    if len(clips) != spec["clips"]:
        raise ValueError(f"{folder}: {len(clips)} catalogue clips, the build used {spec['clips']}")
    return arrays, clips


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``s2m train fused`` (and of ``python -m s2m_model.lifter.fused_cli``)."""
    p.add_argument("--data", type=Path, required=True, help="detector-in-the-loop folder")
    p.add_argument("--out", type=Path, required=True, help="output weights (.pt)")
    p.add_argument("--holdout-style", action="append", default=[])
    p.add_argument("--epochs", type=int, default=150)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--blocks", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--mode",
        choices=("supervised", "unsupervised", "both"),
        default="supervised",
        help="supervised: GT 3D; unsupervised: 2D reprojection + rotation consistency "
        "on the detections only (real images); both: the sum (default supervised)",
    )
    p.add_argument(
        "--init",
        type=Path,
        default=None,
        help="start from these fused weights (e.g. fine-tune unsupervised)",
    )
    p.add_argument("--history", type=Path, help="also write the training history (JSON) here")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_arguments(p)
    return run(p.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Train and write the weights; prints the last history row as JSON."""
    import torch

    from s2m_model.lifter.fused import FusedConfig, load_fused, save_fused
    from s2m_model.lifter.fused_train import FusedTrainConfig, select_samples, train_fused

    torch.set_num_threads(1)  # tiny tensors: more threads only contend on a shared CPU
    arrays, clips = read_folder(args.data)
    train_idx = select_samples(arrays, clips, exclude_styles=args.holdout_style)
    val_idx = (select_samples(arrays, clips, only_styles=args.holdout_style)
               if args.holdout_style else None)  # fmt: skip
    print(
        f"{len(arrays['betas'])} samples, {len(train_idx)} detected for training, "
        f"{0 if val_idx is None else len(val_idx)} held-out-style",
        file=sys.stderr,
    )
    meta = {"data": str(args.data), "samples": int(len(train_idx)),
            "holdout_styles": list(args.holdout_style), "epochs": args.epochs,
            "mode": args.mode, "licence": LICENCE}  # fmt: skip
    cfg = FusedConfig(hidden=args.hidden, blocks=args.blocks, meta=meta)
    init = load_fused(args.init) if args.init is not None else None
    model, history = train_fused(arrays, train_idx, val_idx, cfg,
                                 FusedTrainConfig(epochs=args.epochs, seed=args.seed,
                                                  mode=args.mode),
                                 log=lambda s: print(s, file=sys.stderr), init=init)  # fmt: skip
    model.config.meta["history"] = history[-1]
    save_fused(model, args.out)
    if args.history is not None:
        args.history.write_text(json.dumps({"meta": meta, "history": history}, indent=1))
    print(json.dumps(history[-1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
