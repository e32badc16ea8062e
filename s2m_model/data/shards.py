"""Ground-truth shards on disk: ``manifest.json`` + ``shard-NNNNN.npz`` (see docs/data-format.md).

Everything is read with ``allow_pickle=False``; every problem with a folder (missing or corrupt
manifest or shard, wrong keys, shapes or sample counts) is a ``ValueError`` (or
``FileNotFoundError`` for a missing folder/manifest) that names the file and what is wrong.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from s2m_model.skeletons import get_format
from s2m_model.util.files import load_npz

MANIFEST = "manifest.json"
GENERATOR_NAME = "s2m-data"
FORMATS: tuple[str, ...] = ("smpl24", "h36m17", "coco17", "blazepose33", "mpi_inf_3dhp17")
"""The image formats every shard holds, in manifest order."""

_SHARD_RE = re.compile(r"^shard-\d{5}\.npz$")
_MANIFEST_KEYS = {
    "generator": str, "version": int, "seed": int, "split": str, "num_samples": int,
    "shards": list, "formats": list, "clips": list, "image_size": list, "mask_size": list,
    "body": str, "licence": str, "source_licences": dict,
}  # fmt: skip


def shard_name(index: int) -> str:
    """``shard-00007.npz`` for ``index`` 7."""
    if not 0 <= index < 100000:
        raise ValueError(f"shard index must be in [0, 99999], got {index}")
    return f"shard-{index:05d}.npz"


def mask_bytes(mask_size: Sequence[int]) -> int:
    """Bytes per packed mask of ``mask_size`` (width, height): ``ceil(W*H/8)``."""
    width, height = (int(v) for v in mask_size)
    return math.ceil(width * height / 8)


def pack_masks(masks: np.ndarray) -> np.ndarray:
    """(N,H,W) bool -> (N, ceil(H*W/8)) uint8, ``np.packbits`` of each row-major mask."""
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks must be (N,H,W), got shape {masks.shape}")
    return np.packbits(masks.reshape(masks.shape[0], -1).astype(bool), axis=1)


def unpack_masks(arr: np.ndarray, mask_size: Sequence[int]) -> np.ndarray:
    """(N, ceil(H*W/8)) uint8 packed masks -> (N,H,W) bool; ``mask_size`` is (width, height)."""
    arr = np.asarray(arr)
    width, height = (int(v) for v in mask_size)
    if arr.ndim != 2 or arr.dtype != np.uint8 or arr.shape[1] != mask_bytes((width, height)):
        raise ValueError(
            f"packed masks must be (N,{mask_bytes((width, height))}) uint8 for mask size "
            f"{width}x{height}, got {arr.shape} {arr.dtype}"
        )
    bits = np.unpackbits(arr, axis=1, count=width * height)
    return bits.reshape(arr.shape[0], height, width).astype(bool)


def expected_shapes(
    formats: Sequence[str], mask_size: Sequence[int]
) -> dict[str, tuple[tuple[int, ...], str]]:
    """Key -> (per-sample shape, dtype kind: ``'f'`` float32, ``'i'`` int32, ``'u'`` uint8)."""
    out: dict[str, tuple[tuple[int, ...], str]] = {
        "betas": ((10,), "f"), "global_orient": ((3,), "f"), "body_pose": ((23, 3), "f"),
        "transl": ((3,), "f"), "camera": ((4,), "f"), "image_size": ((2,), "i"),
        "mask": ((mask_bytes(mask_size),), "u"), "clip_id": ((), "i"), "frame": ((), "i"),
    }  # fmt: skip
    for fmt in formats:
        n = get_format(fmt).num_joints
        out[f"joints3d_{fmt}"] = ((n, 3), "f")
        out[f"keypoints2d_{fmt}"] = ((n, 3), "f")
    return out


_DTYPES = {"f": np.float32, "i": np.int32, "u": np.uint8}


def check_arrays(
    arrays: Mapping[str, np.ndarray],
    formats: Sequence[str],
    mask_size: Sequence[int],
    where: str = "shard",
) -> int:
    """Validate one shard's arrays; returns N. ValueError naming ``where`` and the key."""
    shapes = expected_shapes(formats, mask_size)
    missing = sorted(set(shapes) - set(arrays))
    if missing:
        raise ValueError(f"{where}: missing arrays {missing}")
    n = None
    for key, (shape, kind) in shapes.items():
        a = np.asarray(arrays[key])
        if a.dtype != _DTYPES[kind]:
            raise ValueError(f"{where}: '{key}' must be {np.dtype(_DTYPES[kind])}, got {a.dtype}")
        if a.shape[1:] != shape:
            raise ValueError(f"{where}: '{key}' must be (N,{','.join(map(str, shape))}), got "
                             f"{a.shape}")  # fmt: skip
        if n is None:
            n = a.shape[0]
        elif a.shape[0] != n:
            raise ValueError(f"{where}: '{key}' has {a.shape[0]} samples, expected {n}")
        if kind == "f" and not np.isfinite(a).all():
            raise ValueError(f"{where}: '{key}' contains NaN or inf")
    assert n is not None
    return int(n)


def write_shard(
    path: str | os.PathLike[str],
    arrays: Mapping[str, np.ndarray],
    formats: Sequence[str] = FORMATS,
    mask_size: Sequence[int] = (160, 120),
) -> Path:
    """Validate and write one shard (compressed ``.npz``) atomically (temp file + rename)."""
    path = Path(path)
    check_arrays(arrays, formats, mask_size, where=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.npz")
    np.savez_compressed(tmp, **{k: np.ascontiguousarray(v) for k, v in arrays.items()})
    os.replace(tmp, path)
    return path


def write_manifest(folder: str | os.PathLike[str], manifest: Mapping[str, Any]) -> Path:
    """Validate and write ``manifest.json`` atomically."""
    path = Path(folder) / MANIFEST
    validate_manifest(dict(manifest), str(path))
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, path)
    return path


def validate_manifest(manifest: Any, where: str = MANIFEST) -> dict[str, Any]:
    """Check a manifest's keys and value types; returns it. ValueError on any problem."""
    if not isinstance(manifest, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(manifest).__name__}")
    for key, typ in _MANIFEST_KEYS.items():
        if key not in manifest:
            raise ValueError(f"{where}: missing key '{key}'")
        if not isinstance(manifest[key], typ) or (typ is int and isinstance(manifest[key], bool)):
            raise ValueError(f"{where}: '{key}' must be {typ.__name__}, got {manifest[key]!r:.60}")
    if manifest["generator"] != GENERATOR_NAME:
        raise ValueError(f"{where}: not an s2m dataset (generator {manifest['generator']!r})")
    for key in ("image_size", "mask_size"):
        v = manifest[key]
        if len(v) != 2 or not all(isinstance(x, int) and x > 0 for x in v):
            raise ValueError(f"{where}: '{key}' must be [width, height] > 0, got {v}")
    for fmt in manifest["formats"]:
        try:
            get_format(fmt)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    for name in manifest["shards"]:
        if not isinstance(name, str) or not _SHARD_RE.match(name):
            raise ValueError(f"{where}: bad shard name {name!r} (expected shard-NNNNN.npz)")
    if manifest["num_samples"] < 0:
        raise ValueError(f"{where}: num_samples must be >= 0")
    return manifest


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The validated ``manifest.json`` of a dataset folder."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such dataset folder")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (not a dataset folder, or the build was cut "
                                "short: rebuild with `s2m data build`)")  # fmt: skip
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: corrupt JSON ({exc})") from None
    return validate_manifest(manifest, str(path))


def read_shard(path: str | os.PathLike[str], manifest: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Arrays of one shard, validated against the manifest's formats and mask size."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: shard listed in the manifest is missing")
    try:
        arrays = load_npz(path)
    except ValueError as exc:  # corrupt archive or pickled content
        raise ValueError(f"corrupt shard: {exc}") from None
    n = check_arrays(arrays, manifest["formats"], manifest["mask_size"], where=str(path))
    clip = arrays["clip_id"]
    if n and (clip.min() < 0 or clip.max() >= len(manifest["clips"])):
        raise ValueError(f"{path}: clip_id outside the manifest's {len(manifest['clips'])} clips")
    return arrays


def iter_shards(folder: str | os.PathLike[str]) -> Iterator[dict[str, np.ndarray]]:
    """Each shard's arrays in manifest order (validated; see :func:`read_shard`)."""
    manifest = read_manifest(folder)
    for name in manifest["shards"]:
        yield read_shard(Path(folder) / name, manifest)


def load_shards(folder: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """All shards of a dataset folder concatenated (key -> (N,...) array, N = num_samples).

    Raises:
        FileNotFoundError: no folder / no manifest.
        ValueError: corrupt manifest or shard, missing arrays, or a sample count that does not
            match the manifest's ``num_samples``.
    """
    manifest = read_manifest(folder)
    parts = list(iter_shards(folder))
    if not parts:
        shapes = expected_shapes(manifest["formats"], manifest["mask_size"])
        out = {k: np.zeros((0, *s), _DTYPES[kind]) for k, (s, kind) in shapes.items()}
    else:
        out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    n = len(out["clip_id"])
    if n != manifest["num_samples"]:
        raise ValueError(
            f"{Path(folder) / MANIFEST}: num_samples is {manifest['num_samples']} but the shards "
            f"hold {n}"
        )
    return out
