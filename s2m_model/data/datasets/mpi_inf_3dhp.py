"""MPI-INF-3DHP test set (``mpi_inf_3dhp_test_set/TS1..TS6/annot_data.mat``) and its protocol.

Each ``annot_data.mat`` holds, for the ``N`` frames of one sequence:
``annot3`` / ``univ_annot3`` (3D joints, millimetres, camera frame; ``univ_annot3`` is the
height-normalised "universal" skeleton used for evaluation), ``annot2`` (pixels),
``valid_frame`` (1 where the annotation is usable) and ``activity_annotation``. In ``h5py``'s
row-major view these are ``(N, 1, 17, 3)``, ``(N, 1, 17, 2)`` and ``(N, 1)``.

The released files are MATLAB **v7.3 (HDF5)**: reading them needs the optional package ``h5py``
(not a pinned dependency of s2m). MATLAB v5 files (e.g. re-saved ones) are read with
``scipy.io``.

Output joints are metres in the camera frame (x right, y down, z forward), by default re-ordered
to the H36M-17 order (:data:`s2m_model.data.datasets.h36m.H36M17_JOINTS`), which is what the
lifter predicts; ``order="native"`` keeps the 3DHP order :data:`MPI3DHP17_JOINTS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from s2m_model.data.datasets._common import load_mat, numeric, require

#: Joint order of the 17 test-set joints.
MPI3DHP17_JOINTS: tuple[str, ...] = (
    "head_top", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
    "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip",
    "left_knee", "left_ankle", "pelvis", "spine", "head",
)  # fmt: skip
MPI3DHP_ROOT = 14
#: 3DHP-17 indices giving the H36M-17 order (3DHP "head" stands in for the H36M nose,
#: "head_top" for the H36M head), as SPIN's ``mpi_inf_3dhp.py`` pairs them.
MPI3DHP_TO_H36M17: tuple[int, ...] = (14, 8, 9, 10, 11, 12, 13, 15, 1, 16, 0, 5, 6, 7, 2, 3, 4)
TEST_SEQUENCES: tuple[str, ...] = ("TS1", "TS2", "TS3", "TS4", "TS5", "TS6")

_KEYS = ("annot2", "annot3", "univ_annot3", "valid_frame", "activity_annotation")


@dataclass(frozen=True)
class MPI3DHPData:
    """``N`` test frames as parallel arrays.

    ``joints3d`` ``(N, 17, 3)`` metres, camera frame; ``joints2d`` ``(N, 17, 2)`` pixels;
    ``valid_frame`` ``(N,)`` bool; ``frame`` ``(N,)`` 0-based image index
    (``imageSequence/img_{frame+1:06d}.jpg``); ``sequence`` ``(N,)`` e.g. ``"TS1"``;
    ``activity`` ``(N,)`` int or None; ``order`` is ``"h36m17"`` or ``"native"``.
    """

    joints3d: np.ndarray
    joints2d: np.ndarray | None
    valid_frame: np.ndarray
    frame: np.ndarray
    sequence: np.ndarray
    activity: np.ndarray | None
    order: str

    def __len__(self) -> int:
        return int(self.joints3d.shape[0])

    @property
    def root(self) -> int:
        """Index of the pelvis in :attr:`joints3d`."""
        return 0 if self.order == "h36m17" else MPI3DHP_ROOT


def _frames_joints(arr: np.ndarray, n: int, dim: int, key: str, path: Path) -> np.ndarray:
    arr = numeric(arr, key, path)
    if arr.size != n * 17 * dim or arr.shape[0] != n or arr.shape[-1] != dim:
        raise ValueError(
            f"{path}: key {key!r} must hold {n} frames x 17 joints x {dim} "
            f"(e.g. shape ({n}, 1, 17, {dim})), got {arr.shape}"
        )
    return arr.reshape(n, 17, dim)


def load_3dhp_test_sequence(
    path: str | Path,
    *,
    annotation: Literal["univ_annot3", "annot3"] = "univ_annot3",
    order: Literal["h36m17", "native"] = "h36m17",
    valid_only: bool = True,
    sequence: str | None = None,
) -> MPI3DHPData:
    """Load one ``TS*/annot_data.mat``.

    Args:
        path: the ``annot_data.mat`` file.
        annotation: ``"univ_annot3"`` (evaluation standard) or ``"annot3"``.
        order: ``"h36m17"`` (default) or ``"native"`` joint order.
        valid_only: drop frames whose ``valid_frame`` is 0.
        sequence: name stored in :attr:`MPI3DHPData.sequence` (default: the parent folder name).

    Raises:
        FileNotFoundError, ValueError (names file and key), RuntimeError (v7.3 without h5py).
    """
    path = Path(path)
    if order not in ("h36m17", "native"):
        raise ValueError(f"order must be 'h36m17' or 'native', got {order!r}")
    if annotation not in ("univ_annot3", "annot3"):
        raise ValueError(f"annotation must be 'univ_annot3' or 'annot3', got {annotation!r}")
    mat = load_mat(path, _KEYS)
    require(mat, ("valid_frame", annotation), path, "an MPI-INF-3DHP test-set annot_data.mat")
    valid = numeric(mat["valid_frame"], "valid_frame", path).reshape(-1)
    n = valid.size
    joints3d = _frames_joints(mat[annotation], n, 3, annotation, path) / 1000.0
    joints2d = _frames_joints(mat["annot2"], n, 2, "annot2", path) if "annot2" in mat else None
    activity = None
    if "activity_annotation" in mat:
        activity = numeric(mat["activity_annotation"], "activity_annotation", path).reshape(-1)
        if activity.size != n:
            raise ValueError(
                f"{path}: key 'activity_annotation' has {activity.size} entries, expected {n}"
            )
        activity = activity.astype(np.int64)

    valid_frame = (valid != 0) & np.isfinite(joints3d).all(axis=(1, 2))
    frame = np.arange(n, dtype=np.int64)
    keep = valid_frame if valid_only else np.ones(n, dtype=bool)
    joints3d = np.where(valid_frame[:, None, None], joints3d, 0.0)
    if order == "h36m17":
        perm = list(MPI3DHP_TO_H36M17)
        joints3d = joints3d[:, perm]
        joints2d = None if joints2d is None else joints2d[:, perm]
    if joints2d is not None:
        joints2d = np.where(np.isfinite(joints2d), joints2d, 0.0)
    name = sequence if sequence is not None else path.parent.name
    return MPI3DHPData(
        joints3d=joints3d[keep],
        joints2d=None if joints2d is None else joints2d[keep],
        valid_frame=valid_frame[keep],
        frame=frame[keep],
        sequence=np.full(int(keep.sum()), name),
        activity=None if activity is None else activity[keep],
        order=order,
    )


def load_3dhp_test_set(
    root: str | Path,
    sequences: Sequence[str] = TEST_SEQUENCES,
    *,
    annotation: Literal["univ_annot3", "annot3"] = "univ_annot3",
    order: Literal["h36m17", "native"] = "h36m17",
    valid_only: bool = True,
) -> MPI3DHPData:
    """Concatenate :func:`load_3dhp_test_sequence` over ``root/<seq>/annot_data.mat``.

    ``root`` is the ``mpi_inf_3dhp_test_set`` folder; the options are the per-sequence ones.
    """
    root = Path(root)
    if not sequences:
        raise ValueError("sequences must name at least one test sequence")
    parts = [
        load_3dhp_test_sequence(
            root / seq / "annot_data.mat",
            annotation=annotation,
            order=order,
            valid_only=valid_only,
            sequence=seq,
        )
        for seq in sequences
    ]
    joints2d = [p.joints2d for p in parts if p.joints2d is not None]
    activity = [p.activity for p in parts if p.activity is not None]
    return MPI3DHPData(
        joints3d=np.concatenate([p.joints3d for p in parts]),
        joints2d=np.concatenate(joints2d) if len(joints2d) == len(parts) else None,
        valid_frame=np.concatenate([p.valid_frame for p in parts]),
        frame=np.concatenate([p.frame for p in parts]),
        sequence=np.concatenate([p.sequence for p in parts]),
        activity=np.concatenate(activity) if len(activity) == len(parts) else None,
        order=order,
    )


def evaluate_3dhp(
    pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None
) -> dict[str, float]:
    """The 3DHP protocol on ``(N, 17, 3)`` H36M-17-ordered joints in metres.

    Returns PCK@150 mm and AUC (percent; root-aligned, plus the Procrustes-aligned ``pa_pck`` /
    ``pa_auc``), MPJPE and PA-MPJPE (mm) — see :func:`s2m_model.eval.protocols.evaluate_joints`.
    """
    from s2m_model.eval.protocols import evaluate_joints

    return evaluate_joints(pred, gt, "3dhp", valid=valid)
