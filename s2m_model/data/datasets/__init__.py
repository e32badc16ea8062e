"""Loaders for licensed evaluation datasets (we cannot ship them; these read the user's copy).

- :mod:`~s2m_model.data.datasets.h36m` — Human3.6M preprocessed ``.npz`` (SPIN / mmpose
  layouts), protocols 1/2, every-64th-frame subsampling, the 14-joint evaluation subset.
- :mod:`~s2m_model.data.datasets.mpi_inf_3dhp` — MPI-INF-3DHP test set ``annot_data.mat``
  (v7.3 files need the optional ``h5py``), PCK/AUC/PA-MPJPE protocol.
- :mod:`~s2m_model.data.datasets.surreal` — SURREAL ``*_info.mat`` clips: SMPL parameters,
  GT joints, camera-frame conversion, GT vertices from any SMPL-layout body callable.

Lengths in metres, pixels for 2D; camera frame x right, y down, z forward. Files are never
unpickled; malformed input raises ``ValueError`` naming the file and the key.
"""

from s2m_model.data.datasets.h36m import H36MData, H36MSample, load_h36m
from s2m_model.data.datasets.mpi_inf_3dhp import (
    MPI3DHPData,
    load_3dhp_test_sequence,
    load_3dhp_test_set,
)
from s2m_model.data.datasets.surreal import SurrealClip, load_surreal_info, surreal_gt_vertices

__all__ = [
    "H36MData",
    "H36MSample",
    "MPI3DHPData",
    "SurrealClip",
    "load_3dhp_test_sequence",
    "load_3dhp_test_set",
    "load_h36m",
    "load_surreal_info",
    "surreal_gt_vertices",
]
