"""The user cache folder, cross-process locks and atomic ``.npz`` writes."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np


def cache_dir() -> Path:
    """``$S2M_CACHE_DIR``, else ``$XDG_CACHE_HOME/s2m``, else ``~/.cache/s2m``."""
    env = os.environ.get("S2M_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "s2m"


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive lock so that concurrent processes build a cached file only once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(path.suffix + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def save_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` to ``path`` via a temporary file + rename (never a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return path


def load_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` file, read with ``allow_pickle=False`` (the one npz reader).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: not a readable ``.npz`` archive ("corrupt ..."), a single ``.npy`` array,
            or an entry that needs unpickling ("... pickled objects ...").
    """
    import zipfile
    import zlib

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise ValueError(f"{path}: corrupt or not an .npz archive ({exc})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: expected an .npz archive, found a single .npy array")
    out = {}
    with npz:
        for key in npz.files:
            try:
                out[key] = npz[key]
            except ValueError as exc:
                raise ValueError(
                    f"{path}: key {key!r} holds pickled objects, which are never loaded "
                    f"(re-save it as a plain numeric/string array; {exc})"
                ) from None
            except (OSError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
                raise ValueError(f"{path}: corrupt entry {key!r} ({exc})") from None
    return out
