"""SMPL-format model files: the user cache, ``.npz`` loading, one-time ``.pkl`` conversion.

The runtime path only ever reads ``.npz`` files with ``allow_pickle=False``. A user's official
SMPL ``.pkl`` is converted once by :func:`convert_pkl_to_npz` — unpickling runs code from the
file, so do it only with files from a source you trust (the SMPL website).
"""

from __future__ import annotations

import logging
import os
import pickle
import sys
import warnings
from pathlib import Path

import numpy as np

from s2m_model.smpl_layout import NUM_BETAS
from s2m_model.util.files import cache_dir, save_npz_atomic
from s2m_model.util.files import load_npz as read_npz

log = logging.getLogger(__name__)

REQUIRED_KEYS = ("v_template", "shapedirs", "J_regressor", "weights", "kintree_table", "f")
OPTIONAL_KEYS = ("posedirs", "landmarks", "landmark_names", "explained_variance", "build_version")

HOW_TO_GET = (
    "Use load_body_model('s2m-free') for the free body, or pass an official SMPL model file "
    "(SMPL_NEUTRAL.pkl from https://smpl.is.tue.mpg.de, or an .npz converted with "
    "`s2m body convert`)."
)


def validate_model_arrays(arrays: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """Check keys and shapes of an SMPL-layout model; raise a ValueError saying what is wrong."""
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"{source}: not an SMPL model file, missing keys {missing}. {HOW_TO_GET}")
    v = np.asarray(arrays["v_template"])
    if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] < 4:
        raise ValueError(f"{source}: v_template must be (V,3), got {v.shape}. {HOW_TO_GET}")
    nv = v.shape[0]
    checks = {
        "shapedirs": lambda a: a.ndim == 3 and a.shape[:2] == (nv, 3),
        "J_regressor": lambda a: a.shape == (24, nv),
        "weights": lambda a: a.shape == (nv, 24),
        "kintree_table": lambda a: a.shape == (2, 24),
        "f": lambda a: a.ndim == 2 and a.shape[1] == 3 and a.max() < nv and a.min() >= 0,
    }
    for key, ok in checks.items():
        a = np.asarray(arrays[key])
        if not ok(a):
            raise ValueError(f"{source}: malformed '{key}' with shape {a.shape} for {nv} vertices.")
    shape_components = np.asarray(arrays["shapedirs"]).shape[2]
    if shape_components < NUM_BETAS:
        # Caught here, at load, rather than as a shape error in the first forward pass.
        raise ValueError(
            f"{source}: 'shapedirs' has {shape_components} shape components, s2m needs at "
            f"least {NUM_BETAS} (betas are (B,{NUM_BETAS})). {HOW_TO_GET}"
        )
    for key in ("v_template", "shapedirs", "J_regressor", "weights"):
        if not np.isfinite(np.asarray(arrays[key], dtype=np.float64)).all():
            raise ValueError(f"{source}: '{key}' contains NaN or inf.")
    return arrays


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load an SMPL-layout ``.npz`` without pickle and validate it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"body model file not found: {path}. {HOW_TO_GET}")
    try:
        arrays = read_npz(path)
    except ValueError as exc:  # corrupt, or object arrays that would need pickle: refuse
        raise ValueError(f"{exc}. {HOW_TO_GET}") from None
    return validate_model_arrays(arrays, str(path))


class _ChumpyStub:
    """Stands in for chumpy arrays while unpickling official SMPL files (no chumpy needed)."""

    def __init__(self, *args, **kwargs):
        self.__dict__["_state"] = None

    def __setstate__(self, state):
        self.__dict__["_state"] = state

    def to_array(self) -> np.ndarray:
        state = self.__dict__["_state"]
        if isinstance(state, dict):
            for key in ("x", "a", "r"):
                if key in state and state[key] is not None:
                    return np.asarray(state[key])
        raise ValueError("cannot read a chumpy array from this SMPL file")


#: Largest sparse matrix (rows x columns) densified from an SMPL pickle: SMPL's J_regressor
#: is 24 x 6890 (165k); 2**26 (512 MiB as float64) leaves room for any body while a crafted
#: file cannot make the conversion allocate terabytes.
MAX_DENSE_ELEMENTS = 2**26

#: Text encodings numpy's protocol 0-2 pickles use (``_codecs.encode(str, 'latin1')`` turns the
#: array's raw bytes, stored as text, back into bytes).
_PICKLE_TEXT_ENCODINGS = ("latin1", "latin-1", "iso-8859-1", "iso8859-1")


def _encode_latin1(text, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` restricted to the latin-1 round trip that pickled arrays need."""
    if not isinstance(text, str) or str(encoding).lower() not in _PICKLE_TEXT_ENCODINGS:
        raise pickle.UnpicklingError(
            f"refusing _codecs.encode({type(text).__name__}, {encoding!r}) in an SMPL file"
        )
    return text.encode("latin1", errors)


def _densify(value, key: str, source: str) -> np.ndarray:
    """A scipy sparse matrix as a dense array, after checking its size and structure (a crafted
    shape would otherwise allocate without bound, bad indices would read out of bounds)."""
    rows, cols = (int(n) for n in value.shape)
    if rows < 0 or cols < 0 or rows * cols > MAX_DENSE_ELEMENTS:
        raise ValueError(
            f"{source}: sparse '{key}' of shape ({rows}, {cols}) is too large to be an SMPL "
            f"array (limit {MAX_DENSE_ELEMENTS} elements). {HOW_TO_GET}"
        )
    try:
        if hasattr(value, "check_format"):
            value.check_format(full_check=True)
        return value.toarray()
    except (ValueError, TypeError, IndexError, AttributeError) as exc:
        raise ValueError(f"{source}: malformed sparse '{key}' ({exc}). {HOW_TO_GET}") from None


class _SmplUnpickler(pickle.Unpickler):
    # Only what SMPL pickles contain: numpy arrays, scipy sparse matrices, chumpy arrays.
    # Names as written in the file: Python 2 and protocol <= 2 files name ``copy_reg`` and
    # ``__builtin__`` (find_class sees them before the py2 -> py3 renaming).
    _ALLOWED = {
        ("copyreg", "_reconstructor"), ("copy_reg", "_reconstructor"),
        ("builtins", "object"), ("__builtin__", "object"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"), ("numpy", "core.multiarray._reconstruct"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    }  # fmt: skip

    def find_class(self, module: str, name: str):
        if (module, name) == ("_codecs", "encode"):
            return _encode_latin1
        if module.startswith("chumpy"):
            return _ChumpyStub
        if module.startswith("scipy.sparse") and name in (
            "csc_matrix",
            "csr_matrix",
            "coo_matrix",
            "csc_array",
            "csr_array",
        ):
            return super().find_class(module, name)
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from an SMPL file")


def convert_pkl_to_npz(
    pkl_path: str | os.PathLike, npz_path: str | os.PathLike | None = None
) -> Path:
    """Convert an SMPL ``.pkl`` once into a pickle-free ``.npz`` (next to it by default).

    Warning: unpickling executes code from the file. Only numpy/scipy classes and chumpy arrays
    are allowed through, but convert only files from a source you trust.
    """
    import scipy.sparse

    pkl_path = Path(pkl_path)
    if not pkl_path.is_file():
        raise FileNotFoundError(f"SMPL file not found: {pkl_path}. {HOW_TO_GET}")
    warnings.warn(
        f"Converting {pkl_path} with pickle, which can run code: only do this with trusted "
        "SMPL files. The result is a pickle-free .npz used from now on.",
        stacklevel=2,
    )
    try:
        with open(pkl_path, "rb") as handle:
            raw = _SmplUnpickler(handle, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError) as exc:
        raise ValueError(f"{pkl_path}: not a readable SMPL pickle ({exc}). {HOW_TO_GET}") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"{pkl_path}: expected a dict of arrays, got {type(raw).__name__}.")
    arrays: dict[str, np.ndarray] = {}
    for key, value in raw.items():
        if isinstance(value, _ChumpyStub):
            value = value.to_array()
        elif scipy.sparse.issparse(value):
            value = _densify(value, str(key), str(pkl_path))
        if isinstance(value, np.ndarray) and value.dtype != object:
            arrays[key] = value
    validate_model_arrays(arrays, str(pkl_path))
    out = Path(npz_path) if npz_path else pkl_path.with_suffix(".npz")
    return save_npz_atomic(out, arrays)


def resolve_model_file(name_or_path: str | os.PathLike) -> Path:
    """Path of the ``.npz`` to load; a ``.pkl`` is converted once (next to it or in the cache)."""
    path = Path(name_or_path).expanduser()
    if path.suffix == ".npz":
        return path
    if path.suffix == ".pkl":
        if not path.is_file():
            raise FileNotFoundError(f"SMPL file not found: {path}. {HOW_TO_GET}")
        target = path.with_suffix(".npz")
        if not os.access(path.parent, os.W_OK):
            target = cache_dir() / "converted" / (path.stem + ".npz")
        if not target.is_file() or target.stat().st_mtime < path.stat().st_mtime:
            print(f"s2m: converting {path} -> {target} (one time)", file=sys.stderr)
            convert_pkl_to_npz(path, target)
        return target
    raise ValueError(
        f"unknown body model {name_or_path!r}: expected 's2m-free' or a .pkl/.npz path. "
        f"{HOW_TO_GET}"
    )
