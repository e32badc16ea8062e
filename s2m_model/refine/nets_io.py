"""Checkpoints of the learned PR / SR networks: plain tensors + a config dict, read safely.

A checkpoint is ``torch.save({"kind": "s2m-refine", "version": 1, "pose": {"config": {...},
"state_dict": {...}} | None, "shape": {...} | None, "meta": {...}})``; it holds only tensors,
strings, numbers, lists and dicts, so :func:`load_refine_nets` reads it with
``torch.load(weights_only=True)`` (never unpickles code).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .pose_net import PoseRefineNet
from .shape_net import ShapeRefineNet

__all__ = ["load_refine_nets", "save_refine_nets"]

_KIND, _VERSION = "s2m-refine", 1


def _entry(net: torch.nn.Module | None) -> dict[str, Any] | None:
    if net is None:
        return None
    state = {k: v.detach().cpu().float() for k, v in net.state_dict().items()}
    return {"config": net.config(), "state_dict": state}


def save_refine_nets(path: str | os.PathLike, pose: PoseRefineNet | None,
                     shape: ShapeRefineNet | None, meta: dict | None = None) -> Path:  # fmt: skip
    """Write the networks (either may be None) and ``meta`` (JSON-like) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"kind": _KIND, "version": _VERSION, "pose": _entry(pose), "shape": _entry(shape),
                "meta": dict(meta or {})}, path)  # fmt: skip
    return path


def load_refine_nets(
    path: str | os.PathLike,
) -> tuple[PoseRefineNet | None, ShapeRefineNet | None, dict]:
    """(pose net, shape net, meta) from :func:`save_refine_nets`'s file, in eval mode.

    Raises:
        FileNotFoundError: no such file. ValueError: not a refine checkpoint / wrong shapes.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"refine checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle/zip/runtime errors alike
        raise ValueError(f"cannot read refine checkpoint {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("kind") != _KIND:
        raise ValueError(f"{path} is not an s2m refine checkpoint")
    if data.get("version") != _VERSION:
        raise ValueError(f"{path}: version {data.get('version')}, expected {_VERSION}")
    nets: list[Any] = []
    for key, cls in (("pose", PoseRefineNet), ("shape", ShapeRefineNet)):
        entry = data.get(key)
        if entry is None:
            nets.append(None)
            continue
        cfg = dict(entry["config"])
        if "joints" in cfg:
            cfg["joints"] = tuple(cfg["joints"])
        net = cls(**cfg)
        try:
            net.load_state_dict(entry["state_dict"])
        except RuntimeError as exc:
            raise ValueError(f"{path}: {key} weights do not fit: {exc}") from None
        nets.append(net.eval())
    return nets[0], nets[1], dict(data.get("meta") or {})
