"""Datasets and file formats for training and evaluation data (mocap BVH, ...)."""

from s2m_model.data.bvh import Motion, iter_bandai_clips, load_bvh

__all__ = ["Motion", "iter_bandai_clips", "load_bvh"]
