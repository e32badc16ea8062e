"""Learned SR: bone lengths + silhouette/box features -> betas, in real time.

:class:`ShapeRefineNet` corrects a starting shape ``betas0`` (B,10) — the closed-form SR of
:mod:`.shape_from_bones`, or zeros — from the skeleton's bone lengths (metres, the bones of
:func:`.shape_from_bones.bone_set`), the 2D keypoints normalised to the box, the box's aspect
and the person mask pooled over the box: ``betas = betas0 + delta``. The last layer starts at
zero, so an untrained network returns ``betas0`` unchanged. It replaces the slow silhouette
term of the LM fit (about 250 ms per person) by one forward pass. The paper's shape
regulariser ``L_sreg = |beta|`` is :func:`shape_regulariser`.
"""

from __future__ import annotations

import torch
from torch import nn

from s2m_model.smpl_layout import NUM_BETAS

from .pose_net import MASK_GRID, input_features, mlp_trunk
from .shape_from_bones import bone_set

__all__ = ["ShapeRefineNet", "bone_lengths", "shape_regulariser"]


def bone_lengths(skeleton: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """(B,N) lengths (metres) of bones ``pairs`` (N,2) of ``skeleton`` (B,J,3); missing = 0."""
    d = skeleton[:, pairs[:, 1]] - skeleton[:, pairs[:, 0]]
    length = (d.square().sum(-1) + 1e-12).sqrt()
    return torch.where(torch.isfinite(length), length, torch.zeros_like(length))


def shape_regulariser(betas: torch.Tensor) -> torch.Tensor:
    """(B,) the paper's ``L_sreg = |beta|`` (Euclidean norm of the shape coefficients)."""
    return (betas.square().sum(-1) + 1e-12).sqrt()


class ShapeRefineNet(nn.Module):
    """Betas from bone lengths, keypoints, box and mask.

    Args:
        skeleton_fmt: the skeleton's format (its bones give the lengths), e.g. ``"blazepose33"``.
        num_keypoints: K of the 2D keypoints.
        hidden, blocks: MLP width and hidden layers.
    """

    def __init__(self, skeleton_fmt: str, num_keypoints: int, hidden: int = 128,
                 blocks: int = 2) -> None:  # fmt: skip
        super().__init__()
        if hidden < 1 or blocks < 1:
            raise ValueError("hidden and blocks must be positive")
        bones = bone_set(skeleton_fmt)
        self.skeleton_fmt, self.num_keypoints = skeleton_fmt, num_keypoints
        self.hidden, self.blocks = hidden, blocks
        self.register_buffer("pairs", torch.tensor(bones.pairs, dtype=torch.long), persistent=False)
        features = len(bones.pairs) + 3 * num_keypoints + MASK_GRID[0] * MASK_GRID[1] + 1
        features += NUM_BETAS  # the starting shape
        self.body = mlp_trunk(features, hidden, blocks)
        self.head = nn.Linear(hidden, NUM_BETAS)
        nn.init.zeros_(self.head.weight)  # start at betas0: SR unchanged until trained
        nn.init.zeros_(self.head.bias)

    def config(self) -> dict:
        """Constructor arguments (for checkpoints)."""
        return {"skeleton_fmt": self.skeleton_fmt, "num_keypoints": self.num_keypoints,
                "hidden": self.hidden, "blocks": self.blocks}  # fmt: skip

    def forward(self, skeleton: torch.Tensor, keypoints: torch.Tensor, box: torch.Tensor,
                mask: torch.Tensor, betas0: torch.Tensor) -> torch.Tensor:  # fmt: skip
        """(B,10) betas. skeleton (B,J,3) metres; keypoints (B,K,3) pixels + confidence; box
        (B,4) pixels; mask (B,h,w) coverage over the box (zeros = none); betas0 (B,10)."""
        if betas0.shape != (skeleton.shape[0], NUM_BETAS):
            raise ValueError(f"betas0 must be (B,{NUM_BETAS}), got {tuple(betas0.shape)}")
        x = input_features(skeleton, keypoints, box, mask)
        j3 = 3 * skeleton.shape[1]
        box = box.to(x.dtype)
        aspect = ((box[:, 2] - box[:, 0]) / (box[:, 3] - box[:, 1]).clamp(min=1.0))[:, None]
        lengths = bone_lengths(skeleton.to(x.dtype), self.pairs)
        feats = torch.cat([lengths, x[:, j3:], aspect, betas0.to(x.dtype)], 1)
        return betas0.to(x.dtype) + self.head(self.body(feats))
