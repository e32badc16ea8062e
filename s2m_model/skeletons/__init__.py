"""Registry of skeleton formats: joint names, kinematic trees, mirror pairs, SMPL links.

>>> from s2m_model.skeletons import get_format
>>> h36m = get_format("h36m17")
>>> h36m.num_joints, h36m.index("Thorax")
(17, 8)

Formats: ``smpl24``, ``h36m17``, ``coco17``, ``blazepose33``, ``mpi_inf_3dhp17``, ``bandai27``
(Bandai-Namco BVH, 22 joints + synthetic ``head_top``), ``cmu31`` (CMU BVH, 31 joints +
``head_top``). Importing this package never touches ``../shared``.
"""

from __future__ import annotations

from s2m_model.skeletons.base import SMPL_JOINT_NAMES, SMPL_PARENTS, SkeletonFormat
from s2m_model.skeletons.formats import ALL_FORMATS

_REGISTRY: dict[str, SkeletonFormat] = {f.name: f for f in ALL_FORMATS}


def get_format(name: str) -> SkeletonFormat:
    """The registered format called ``name`` (ValueError listing the known names otherwise)."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown skeleton format {name!r}; known: {', '.join(list_formats())}"
        ) from None


def list_formats() -> tuple[str, ...]:
    """Names of all registered formats, sorted."""
    return tuple(sorted(_REGISTRY))


__all__ = ["SMPL_JOINT_NAMES", "SMPL_PARENTS", "SkeletonFormat", "get_format", "list_formats"]
