"""Shared helpers for the dataset loaders: key checks and safe .mat reading with clear errors.

``.npz`` files are read by :func:`s2m_model.util.files.load_npz` (the one npz reader).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def require(data: dict[str, Any], keys: tuple[str, ...], path: str | Path, what: str) -> None:
    """Raise ``ValueError`` naming the file and the first missing key."""
    for key in keys:
        if key not in data:
            raise ValueError(f"{path}: missing key {key!r} (expected {what})")


def numeric(value: Any, key: str, path: str | Path) -> np.ndarray:
    """``value`` as a float64 array, or ``ValueError`` naming the key."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{path}: key {key!r} must be numeric, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def load_mat(path: str | Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Arrays ``keys`` of a MATLAB file, in **row-major, frame-first** layout.

    MATLAB v5 files are read with ``scipy.io``; MATLAB stores column-major, so every array is
    transposed (all axes reversed) to match what ``h5py`` returns for v7.3 (HDF5) files, which are
    read with ``h5py`` when it is installed. Missing keys are simply absent from the result.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: not a MATLAB file.
        RuntimeError: a v7.3 file and ``h5py`` is not installed.
    """
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        raw = scipy.io.loadmat(str(path), variable_names=list(keys))
    except NotImplementedError:
        return _load_mat_v73(path, keys)
    except (ValueError, TypeError, OSError) as exc:
        raise ValueError(f"{path}: not a readable MATLAB .mat file ({exc})") from exc
    out = {}
    for key in keys:
        if key in raw:
            arr = np.asarray(raw[key])
            out[key] = arr.transpose() if arr.dtype.kind in "biuf" else arr
    return out


def _load_mat_v73(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    try:
        import h5py
    except ImportError as exc:
        raise RuntimeError(
            f"{path}: MATLAB v7.3 (HDF5) file; reading it needs the optional package h5py "
            "(pip install h5py)"
        ) from exc
    out = {}
    with h5py.File(path, "r") as f:
        for key in keys:
            if key in f and isinstance(f[key], h5py.Dataset):
                out[key] = np.asarray(f[key][()])
    return out
