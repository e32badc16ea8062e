"""SMPL-layout body models.

``load_body_model("s2m-free")`` gives the free body built from Anny (built once into the user
cache, ~1-2 min, then loaded in ~1 s); ``load_body_model("path/SMPL_NEUTRAL.pkl" | ".npz")``
loads a real SMPL file through the same ``smplx`` layer. See :class:`BodyModel`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

# The SMPL layout's names are re-exported (``from s2m_model.body import SMPL_JOINT_NAMES``).
from s2m_model.smpl_layout import JOINT_NAMES as SMPL_JOINT_NAMES
from s2m_model.smpl_layout import PARENTS as SMPL_PARENTS
from s2m_model.util.files import cache_dir, file_lock, save_npz_atomic

from .files import load_npz, resolve_model_file
from .free import BUILD_VERSION
from .model import BodyModel, BodyOutput

__all__ = [
    "BodyModel", "BodyOutput", "SMPL_JOINT_NAMES", "SMPL_PARENTS", "free_model_path",
    "build_free_model", "load_body_model",
]  # fmt: skip

log = logging.getLogger(__name__)
FREE_NAME = "s2m-free"


def free_model_path() -> Path:
    """Where the built free body lives: ``<cache>/s2m-free-v<version>.npz``."""
    return cache_dir() / f"{FREE_NAME}-v{BUILD_VERSION}.npz"


def build_free_model(force: bool = False, progress=None) -> Path:
    """Build the free SMPL-layout body once (deterministic) and return its ``.npz`` path."""
    path = free_model_path()
    with file_lock(path):
        if path.is_file() and not force:
            return path
        from .free import build_free_body

        log.info("building the free body model into %s (one time, ~1-2 min)", path)
        arrays = build_free_body(progress=progress)
        save_npz_atomic(path, arrays)
    return path


_CACHE: dict[tuple[str, str, torch.dtype], BodyModel] = {}


def load_body_model(
    name_or_path: str | os.PathLike = FREE_NAME,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> BodyModel:
    """Load an SMPL-layout body model.

    Args:
        name_or_path: ``"s2m-free"`` (default; built from Anny on first use) or a path to an
            SMPL model file (``.npz``, or an official ``.pkl`` that is converted once to ``.npz``).
        device: torch device for the model buffers.
        dtype: ``torch.float32`` or ``torch.float64``.

    Raises:
        FileNotFoundError / ValueError: missing or malformed model file, with how to fix it.
    """
    key = (str(name_or_path), str(device), dtype)
    if key in _CACHE:
        return _CACHE[key]
    if str(name_or_path) == FREE_NAME:
        path = build_free_model()
        name = FREE_NAME
    else:
        path = resolve_model_file(name_or_path)
        name = Path(name_or_path).stem
    arrays = load_npz(path)
    if "landmarks" not in arrays and arrays["v_template"].shape[0] == 6890:
        from .regressors import smpl_topology_landmarks

        lm = smpl_topology_landmarks(arrays)
        arrays["landmark_names"] = np.array(sorted(lm))
        arrays["landmarks"] = np.stack([lm[k] for k in sorted(lm)])
    model = BodyModel(arrays, name=name, device=device, dtype=dtype)
    _CACHE[key] = model
    return model
