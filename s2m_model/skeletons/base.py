"""The :class:`SkeletonFormat` record: joint names, a kinematic tree and mirror pairs.

A format only describes *which* joints exist and how they connect; it holds no geometry. Joint
arrays that follow a format are ``(J, 3)`` or ``(B, J, 3)`` positions in metres (numpy or torch,
any device), in whatever frame the caller uses.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# SMPL's 24 joints in model order; smpl_map targets must be among these.
SMPL_JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hand", "right_hand",
)  # fmt: skip
SMPL_PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21,
)  # fmt: skip


@dataclass(frozen=True)
class SkeletonFormat:
    """A named joint layout.

    Attributes:
        name: registry key, e.g. ``"h36m17"``.
        joint_names: ``J`` joint names in the format's own order.
        parents: ``J`` parent indices, ``-1`` for the single root.
        left_right: pairs ``(left_index, right_index)`` of mirrored joints.
        smpl_map: format joint name -> SMPL joint name (see ``SMPL_JOINT_NAMES``) for the joints
            that sit approximately (within a few cm on an adult) at that SMPL joint. Joints
            without an SMPL counterpart (nose, eyes, head top, toe tips, ...) are absent.
        to_formats: target format name -> ``J_target`` indices into this format (``None`` where
            the target joint has no counterpart), so that ``joints[..., idx, :]`` gives the
            target layout. See :meth:`convert`.
        roles: named points for inverse kinematics (:func:`s2m_model.dik.format_roles`) beyond
            ``smpl_map``: role name -> the format joints whose mean is that point, e.g.
            ``"pelvis": ("left_hip", "right_hip")`` for COCO, or the landmarks DIK uses
            (``thorax``, ``nose``, ``head_top``, ``left_ear``, ``left_heel``, ``left_toe``,
            ``left_hand``, ``left_index``, ``left_pinky``, ...). Every ``smpl_map`` joint is
            already a role under its SMPL name; a role of the same name overrides it, and an
            empty tuple removes it (a joint near, but not at, that SMPL joint for IK purposes).
    """

    name: str
    joint_names: tuple[str, ...]
    parents: tuple[int, ...]
    left_right: tuple[tuple[int, int], ...] = ()
    smpl_map: Mapping[str, str] = field(default_factory=dict, hash=False)
    to_formats: Mapping[str, tuple[int | None, ...]] = field(default_factory=dict, hash=False)
    roles: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        # A malformed definition should fail at import, not deep inside a training loop.
        n = len(self.joint_names)
        if len(set(self.joint_names)) != n:
            raise ValueError(f"{self.name}: duplicate joint names")
        if len(self.parents) != n:
            raise ValueError(f"{self.name}: {len(self.parents)} parents for {n} joints")
        if sum(p == -1 for p in self.parents) != 1:
            raise ValueError(f"{self.name}: expected exactly one root (parent -1)")
        for j, p in enumerate(self.parents):
            if p == j or not -1 <= p < n:
                raise ValueError(f"{self.name}: bad parent {p} for joint {j}")
        for j in range(n):  # every chain must reach the root within n steps (no cycles)
            k, steps = j, 0
            while k != -1:
                k, steps = self.parents[k], steps + 1
                if steps > n:
                    raise ValueError(f"{self.name}: cycle through joint {self.joint_names[j]}")
        seen: set[int] = set()
        for a, b in self.left_right:
            if a == b or a in seen or b in seen or not (0 <= a < n and 0 <= b < n):
                raise ValueError(f"{self.name}: bad left/right pair ({a}, {b})")
            seen.update((a, b))
        for src, dst in self.smpl_map.items():
            if src not in self.joint_names or dst not in SMPL_JOINT_NAMES:
                raise ValueError(f"{self.name}: smpl_map entry {src!r} -> {dst!r} is unknown")
        for role, joints in self.roles.items():
            if isinstance(joints, str) or any(j not in self.joint_names for j in joints):
                raise ValueError(
                    f"{self.name}: role {role!r} must be a tuple of joint names, got {joints!r}"
                )

    # ------------------------------------------------------------------ structure helpers
    @property
    def num_joints(self) -> int:
        """Number of joints ``J``."""
        return len(self.joint_names)

    def index(self, name: str) -> int:
        """Index of joint ``name``; ValueError naming the valid joints if it does not exist."""
        try:
            return self.joint_names.index(name)
        except ValueError:
            raise ValueError(
                f"{self.name} has no joint {name!r}; joints: {', '.join(self.joint_names)}"
            ) from None

    @property
    def root(self) -> int:
        """Index of the root joint."""
        return self.parents.index(-1)

    @property
    def bones(self) -> list[tuple[int, int]]:
        """``(parent, child)`` index pairs, one per non-root joint, in joint order."""
        return [(p, c) for c, p in enumerate(self.parents) if p >= 0]

    @property
    def flip_perm(self) -> tuple[int, ...]:
        """Index permutation that swaps every left joint with its right twin.

        Mirroring joints ``x`` across the sagittal plane is ``x[..., flip_perm, :]`` with the
        lateral coordinate negated. The permutation is an involution.
        """
        perm = list(range(self.num_joints))
        for a, b in self.left_right:
            perm[a], perm[b] = b, a
        return tuple(perm)

    # ------------------------------------------------------------------ conversion
    def indices_to(self, target: str) -> tuple[int | None, ...]:
        """Indices into this format giving ``target``'s joints (``None`` = no counterpart)."""
        if target == self.name:
            return tuple(range(self.num_joints))
        if target not in self.to_formats:
            known = ", ".join(sorted(self.to_formats)) or "none"
            raise ValueError(f"{self.name} has no index map to {target!r} (has: {known})")
        return self.to_formats[target]

    def convert(self, joints: Any, target: str) -> Any:
        """Re-order ``(..., J, 3)`` joints into ``target``'s layout ``(..., J_target, 3)``.

        Works for numpy arrays and torch tensors alike; raises ValueError if ``target`` needs a
        joint this format lacks (rather than inventing one).
        """
        self.validate_joints(joints, finite=False)
        idx = self.indices_to(target)
        missing = [i for i, k in enumerate(idx) if k is None]
        if missing:
            raise ValueError(
                f"{self.name} -> {target}: no source joint for target joint(s) {missing}"
            )
        return joints[..., list(idx), :]

    # ------------------------------------------------------------------ input checks
    def validate_joints(self, joints: Any, *, finite: bool = True) -> Any:
        """Check that ``joints`` is a float ``(J, 3)`` or ``(B, J, 3)`` array for this format.

        Args:
            joints: numpy array or torch tensor, positions in metres.
            finite: also reject NaN / inf entries.

        Returns:
            ``joints`` unchanged, so calls can be chained.

        Raises:
            ValueError: wrong type, dtype, rank, joint count or non-finite values.
        """
        torch = sys.modules.get("torch")  # only check tensors if torch is already in use
        is_tensor = torch is not None and isinstance(joints, torch.Tensor)
        if is_tensor:
            is_float = joints.is_floating_point()
        elif isinstance(joints, np.ndarray):
            is_float = np.issubdtype(joints.dtype, np.floating)
        else:
            raise ValueError(
                f"{self.name}: joints must be a numpy array or torch tensor, "
                f"got {type(joints).__name__}"
            )
        shape = tuple(joints.shape)
        if len(shape) not in (2, 3) or shape[-2:] != (self.num_joints, 3):
            raise ValueError(
                f"{self.name}: joints must have shape ({self.num_joints}, 3) or "
                f"(B, {self.num_joints}, 3), got {shape}"
            )
        if not is_float:
            raise ValueError(f"{self.name}: joints must be floating point, got {joints.dtype}")
        if finite:
            isfinite = torch.isfinite if is_tensor else np.isfinite
            if not bool(isfinite(joints).all()):
                raise ValueError(f"{self.name}: joints contain NaN or inf")
        return joints


def lr_pairs(names: tuple[str, ...], left: str, right: str) -> tuple[tuple[int, int], ...]:
    """Pairs ``(i_left, i_right)`` of names that differ only by the ``left``/``right`` tag."""
    pairs = []
    for i, n in enumerate(names):
        if left in n:
            twin = n.replace(left, right)
            if twin not in names:
                raise ValueError(f"{n!r} has no mirrored twin {twin!r}")
            pairs.append((i, names.index(twin)))
    return tuple(pairs)


def parents_from_names(
    names: tuple[str, ...], parent_names: Mapping[str, str | None]
) -> tuple[int, ...]:
    """Parent indices from a ``child name -> parent name`` table (``None`` for the root)."""
    return tuple(-1 if parent_names[n] is None else names.index(parent_names[n]) for n in names)
