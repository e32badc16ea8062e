"""2D -> 3D pose lifting: coco17 detector keypoints -> h36m17 root-relative 3D joints (metres).

>>> from s2m_model.lifter import load_lifter
>>> lifter = load_lifter("default", device="cpu")
>>> joints3d = lifter.lift(keypoints2d, camera=None)   # (B,17,3) metres, camera axes

A re-implementation of the lifter used by Skeleton2Mesh (Chen et al., CVPR 2019, trained from 2D
only) next to a supervised variant; the shipped default is supervised (see docs/lifter.md).
Training: ``s2m train lifter`` (:mod:`s2m_model.lifter.train`).
"""

from s2m_model.lifter.model import (
    DEFAULT_CHECKPOINT,
    INPUT_FORMAT,
    OUTPUT_FORMAT,
    Lifter,
    LifterConfig,
    NormalisedKeypoints,
    load_lifter,
    normalise_keypoints,
    read_checkpoint,
    save_checkpoint,
)

__all__ = [
    "DEFAULT_CHECKPOINT", "INPUT_FORMAT", "OUTPUT_FORMAT", "Lifter", "LifterConfig",
    "NormalisedKeypoints", "load_lifter", "normalise_keypoints", "read_checkpoint",
    "save_checkpoint",
]  # fmt: skip
