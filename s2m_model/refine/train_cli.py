"""``s2m train refine``: train the learned PR / SR networks on a detector-in-the-loop folder.

The inputs are what the pipeline has at run time: the ``fused`` front end's ``blazepose33``
skeleton (from the detector's landmarks), the detector's COCO-17 keypoints, box and mask; the
start is closed-form SR + DIK. ``--mode unsupervised`` uses only the 2D keypoints, the mask and
the lifted skeleton (the paper's setting); ``supervised`` replaces the lifted skeleton by the
ground-truth 3D points. ``torchrun --nproc-per-node K -m s2m_model.cli train refine ...`` runs
DDP. Registered as the ``train_refine`` entry point; it adds ``refine`` to the ``train``
command (which ``s2m_model.lifter.cli`` owns) and creates that command if it is missing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

LICENCE = ("trained on renders of the Bandai-Namco Research Motion Dataset: CC BY-NC 4.0 "
           "(non-commercial; Kobayashi et al., arXiv:2306.08861); detector outputs from "
           "MediaPipe BlazePose (Apache-2.0)")  # fmt: skip

MASK_SIZE = (32, 24)
"""(h, w) grid the person mask is resampled to over the box."""


def _train_subparsers(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """The ``train`` command's own sub-parsers (argparse has no public accessor for them)."""
    parser = subparsers.choices.get("train")
    if parser is None:
        parser = subparsers.add_parser("train", help="train a model")
        return parser.add_subparsers(dest="train_command", metavar="MODEL", required=True)
    for action in parser._actions:  # noqa: SLF001 - argparse's only handle on sub-parsers
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            return action
    return parser.add_subparsers(dest="train_command", metavar="MODEL", required=True)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train refine``."""
    p = _train_subparsers(subparsers).add_parser(
        "refine",
        help="train the learned pose/shape refinement (PR/SR) networks",
        description=__doc__.split("\n\n")[0],
        epilog="Writes OUT/refine.pt (after every epoch), OUT/log.csv, OUT/report.json. "
               "See docs/refine.md.",
    )  # fmt: skip
    p.add_argument("--data", type=Path, required=True, help="detector-in-the-loop train folder")
    p.add_argument("--val", type=Path, default=None, help="held-out folder (e.g. .../test)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--mode", choices=("supervised", "unsupervised"), default="supervised")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument(
        "--lr",
        type=float,
        default=3e-5,
        help="Adam lr (paper 3e-5 x0.95/epoch over 200 epochs; raise it for short runs)",
    )
    p.add_argument(
        "--mask-batch",
        type=int,
        default=8,
        help="samples per batch that get the silhouette term (0 = off; slow on CPU)",
    )
    p.add_argument("--what", choices=("both", "pose", "shape"), default="both")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--max-samples", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=handler)


def load_samples(folder: Path, body, fused, limit: int | None, supervised: bool):
    """Read a detector-in-the-loop folder and build the training samples (detected only)."""
    import numpy as np
    import torch

    from s2m_model.eval.frontends import frontend_skeletons
    from s2m_model.lifter.fused_cli import read_folder

    from .silhouette import mask_to_grid
    from .train import prepare_samples

    arrays, _ = read_folder(folder)
    idx = np.flatnonzero(np.asarray(arrays["det_detected"]).astype(bool))
    if limit is not None:
        idx = idx[:limit]
    if not len(idx):
        raise ValueError(f"{folder}: no sample with a detection")
    skel, fmt, conf = frontend_skeletons("fused", arrays, idx, {"fused": fused})
    kp = torch.as_tensor(np.asarray(arrays["det_keypoints2d_coco17"][idx], np.float32))
    box = np.asarray(arrays["det_bbox"][idx], np.float32)
    det_mask = np.asarray(arrays["det_mask"][idx])
    scale = det_mask.shape[2] / float(arrays["image_size"][idx[0]][0])  # mask px per image px
    grids = []
    for m, b in zip(det_mask, box, strict=True):
        b = b.copy()
        if not (b[2] > b[0] and b[3] > b[1]):
            b = np.array([0, 0, 1, 1], np.float32) / scale
        grids.append(mask_to_grid(m > 0, b * scale, MASK_SIZE))  # stored as 0/255
    cam = torch.as_tensor(np.asarray(arrays["camera"][idx], np.float32))
    target = (torch.as_tensor(np.asarray(arrays["joints3d_blazepose33"][idx], np.float32))
              if supervised else skel)  # fmt: skip
    return prepare_samples(body, skel, fmt, conf, kp, "coco17", torch.as_tensor(box),
                           torch.as_tensor(np.stack(grids)), cam, target)  # fmt: skip


def handler(args: argparse.Namespace) -> int:
    """Build the samples, train, print the report (JSON)."""
    import contextlib
    import json
    import logging
    import sys

    import torch

    from s2m_model.body import load_body_model
    from s2m_model.lifter.fused import load_fused

    from .train import RefineTrainConfig, train_refine

    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    with contextlib.redirect_stdout(sys.stderr):
        body = load_body_model("s2m-free")
    fused = load_fused("default")
    sup = args.mode == "supervised"
    train = load_samples(args.data, body, fused, args.max_samples, sup)
    # Validation always scores against the ground truth when it is there.
    val = load_samples(args.val, body, fused, None, True) if args.val is not None else None
    cfg = RefineTrainConfig(
        mode=args.mode, epochs=args.epochs, batch=args.batch, lr=args.lr,
        train_pose=args.what in ("both", "pose"), train_shape=args.what in ("both", "shape"),
        mask_batch=args.mask_batch, hidden=args.hidden, seed=args.seed,
        meta={"data": str(args.data), "samples": len(train), "licence": LICENCE, "lr": args.lr},
    )  # fmt: skip
    logging.getLogger("s2m_model.refine.train").setLevel(logging.INFO)
    _, _, history = train_refine(body, train, val, cfg, out_dir=args.out,
                                 progress=not args.no_progress)  # fmt: skip
    report = {"mode": args.mode, "train_samples": len(train), "last": history[-1],
              "out": str(args.out / "refine.pt")}  # fmt: skip
    (args.out / "report.json").write_text(json.dumps({"history": history, **report}, indent=1))
    print(json.dumps(report, indent=1))
    return 0
