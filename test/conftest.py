"""Shared test fixtures: seeded RNG, the shared data folder, the (cached) free body model."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SHARED_DATA = SHARED / "data"

# ROS tests must never talk to other hosts or to another run's nodes.
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002 - seeds legacy global-RNG users too


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests that need it skip cleanly when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present (tests that need mocap/COCO data skip)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def body():
    """The free SMPL-layout body (built once into the user cache, then loaded)."""
    from s2m_model.body import load_body_model

    return load_body_model("s2m-free", dtype=torch.float64)
