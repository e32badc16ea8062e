"""Learned PR: a small network that predicts residual rotations for what stays open after DIK.

DIK fixes every rotation the skeleton's bones determine; the leaf twists (wrists, ankles,
head/neck twist) and hidden endpoints stay at identity or at a guess. :class:`PoseRefineNet`
maps (3D skeleton, 2D keypoints, optional mask features, DIK's local rotations) to one residual
rotation per joint of :data:`PR_JOINTS`, applied on the right of DIK's local rotation
(``R = R_dik @ R_res``). The last layer starts at zero, so an untrained network is the identity
(PR off). The paper's regulariser ``L_preg = sum_i |theta_PR,i|`` is :func:`pose_regulariser`.

Inputs (batched, any device/dtype, all torch ops so the module exports to ONNX):
skeleton (B,J,3) metres in the camera frame (x right, y down, z forward), root-relative or not
(made root-relative at the joints' mean); keypoints (B,K,3) pixels + confidence; box (B,4)
``x0,y0,x1,y1`` pixels; mask (B,h,w) coverage on a grid over the box (zeros when absent);
rotmats (B,24,3,3) DIK's local rotations.
"""

from __future__ import annotations

import roma
import torch
from torch import nn

from s2m_model.smpl_layout import JOINT_INDEX, NUM_JOINTS

__all__ = ["PR_JOINTS", "PoseRefineNet", "apply_residual", "input_features", "pose_regulariser"]

PR_JOINTS: tuple[str, ...] = ("neck", "head", "left_wrist", "right_wrist", "left_ankle",
                              "right_ankle", "left_foot", "right_foot")  # fmt: skip
"""SMPL joints PR refines: the leaf units of the paper (head, hands, feet) and the neck twist."""

MASK_GRID: tuple[int, int] = (8, 6)
"""(h, w) the mask is pooled to before it enters a network (coarse silhouette profile)."""


def _finite(x: torch.Tensor) -> torch.Tensor:
    return torch.where(torch.isfinite(x), x, torch.zeros_like(x))


def input_features(
    skeleton: torch.Tensor,
    keypoints: torch.Tensor,
    box: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """(B, 3J + 3K + 48) features: root-relative skeleton (metres), keypoints normalised to the
    box (centre 0, box height 1; confidence kept; missing = 0) and the mask pooled to
    :data:`MASK_GRID` (zeros when ``mask`` is None).

    Raises:
        ValueError: inconsistent shapes.
    """
    if skeleton.ndim != 3 or skeleton.shape[-1] != 3:
        raise ValueError(f"skeleton must be (B,J,3), got {tuple(skeleton.shape)}")
    batch = skeleton.shape[0]
    if keypoints.ndim != 3 or keypoints.shape[0] != batch or keypoints.shape[-1] != 3:
        raise ValueError(f"keypoints must be (B,K,3) (u, v, confidence), got "
                         f"{tuple(keypoints.shape)}")  # fmt: skip
    if box.shape != (batch, 4):
        raise ValueError(f"box must be ({batch},4), got {tuple(box.shape)}")
    skel = _finite(skeleton)
    valid = torch.isfinite(skeleton).all(-1, keepdim=True).to(skel.dtype)
    root = (skel * valid).sum(1, keepdim=True) / valid.sum(1, keepdim=True).clamp(min=1.0)
    skel = (skel - root) * valid
    box = box.to(skel.dtype)
    centre = torch.stack([(box[:, 0] + box[:, 2]) / 2, (box[:, 1] + box[:, 3]) / 2], -1)
    height = (box[:, 3] - box[:, 1]).clamp(min=1.0)[:, None, None]
    conf = _finite(keypoints[..., 2:3].to(skel.dtype)).clamp(0.0, 1.0)
    uv = (_finite(keypoints[..., :2].to(skel.dtype)) - centre[:, None]) / height * (conf > 0)
    if mask is None:
        pooled = skel.new_zeros(batch, MASK_GRID[0] * MASK_GRID[1])
    else:
        if mask.ndim != 3 or mask.shape[0] != batch:
            raise ValueError(f"mask must be (B,h,w), got {tuple(mask.shape)}")
        pooled = nn.functional.adaptive_avg_pool2d(mask.to(skel.dtype)[:, None], MASK_GRID)
        pooled = pooled.flatten(1)
    return torch.cat([skel.flatten(1), uv.flatten(1), conf.flatten(1), pooled], 1)


def apply_residual(rotmats: torch.Tensor, residual: torch.Tensor,
                   joints: tuple[str, ...] = PR_JOINTS) -> torch.Tensor:  # fmt: skip
    """(B,24,3,3) local rotations with ``residual`` (B,N,3,3) applied on the right of the
    rotations of ``joints`` (N names)."""
    if rotmats.shape[1:] != (NUM_JOINTS, 3, 3):
        raise ValueError(f"rotmats must be (B,24,3,3), got {tuple(rotmats.shape)}")
    if residual.shape != (rotmats.shape[0], len(joints), 3, 3):
        raise ValueError(f"residual must be (B,{len(joints)},3,3), got {tuple(residual.shape)}")
    idx = [JOINT_INDEX[j] for j in joints]
    out = rotmats.clone()
    out[:, idx] = rotmats[:, idx] @ residual.to(rotmats.dtype)
    return out


def pose_regulariser(residual: torch.Tensor) -> torch.Tensor:
    """(B,) the paper's ``L_preg = sum_i |theta_i|``: summed rotation angles (radians) of the
    residuals (B,N,3,3). Uses ``|R - I|_F / sqrt(2)`` (= 2 sin(theta/2), equal to theta to
    second order) so the gradient stays finite at the identity."""
    eye = torch.eye(3, dtype=residual.dtype, device=residual.device)
    diff = (residual - eye).flatten(2)
    return (diff.square().sum(-1) + 1e-12).sqrt().sum(-1) / 2**0.5


def mlp_trunk(features: int, hidden: int, blocks: int) -> nn.Sequential:
    """``blocks`` x (Linear -> SiLU): (B, features) -> (B, hidden); the trunk of the PR and SR
    networks (each adds its own zero-initialised head)."""
    layers: list[nn.Module] = []
    width = features
    for _ in range(blocks):
        layers += [nn.Linear(width, hidden), nn.SiLU()]
        width = hidden
    return nn.Sequential(*layers)


class PoseRefineNet(nn.Module):
    """Residual endpoint rotations from the evidence.

    Args:
        num_skeleton_joints: J of the skeleton format (e.g. 33 for ``blazepose33``).
        num_keypoints: K of the 2D keypoints (e.g. 17 for ``coco17``).
        hidden: MLP width; blocks: hidden layers.
        joints: the SMPL joints refined (default :data:`PR_JOINTS`).
        max_angle: bound of each residual's rotation angle (radians), via tanh.
    """

    def __init__(self, num_skeleton_joints: int, num_keypoints: int, hidden: int = 256,
                 blocks: int = 2, joints: tuple[str, ...] = PR_JOINTS,
                 max_angle: float = 1.2) -> None:  # fmt: skip
        super().__init__()
        for j in joints:
            if j not in JOINT_INDEX:
                raise ValueError(f"unknown SMPL joint {j!r}")
        if hidden < 1 or blocks < 1 or max_angle <= 0:
            raise ValueError("hidden, blocks and max_angle must be positive")
        self.joints, self.max_angle = tuple(joints), float(max_angle)
        self.num_skeleton_joints, self.num_keypoints = num_skeleton_joints, num_keypoints
        self.hidden, self.blocks = hidden, blocks
        features = 3 * num_skeleton_joints + 3 * num_keypoints + MASK_GRID[0] * MASK_GRID[1]
        features += 6 * NUM_JOINTS  # DIK's local rotations (6D)
        self.body = mlp_trunk(features, hidden, blocks)
        self.head = nn.Linear(hidden, 3 * len(self.joints))
        nn.init.zeros_(self.head.weight)  # start as the identity: PR off until trained
        nn.init.zeros_(self.head.bias)

    def config(self) -> dict:
        """Constructor arguments (for checkpoints)."""
        return {"num_skeleton_joints": self.num_skeleton_joints,
                "num_keypoints": self.num_keypoints, "hidden": self.hidden,
                "blocks": self.blocks, "joints": list(self.joints),
                "max_angle": self.max_angle}  # fmt: skip

    def forward(self, skeleton: torch.Tensor, keypoints: torch.Tensor, box: torch.Tensor,
                mask: torch.Tensor, rotmats: torch.Tensor) -> torch.Tensor:  # fmt: skip
        """(B,N,3,3) residual rotations; see the module docstring for the inputs' shapes."""
        x = input_features(skeleton, keypoints, box, mask)
        six = rotmats[..., :2].flatten(1).to(x.dtype)  # first two columns: continuous 6D
        raw = self.head(self.body(torch.cat([x, six], 1))).reshape(-1, len(self.joints), 3)
        # Bound the angle smoothly (tanh on the norm) so training cannot flip a joint.
        angle = (raw.square().sum(-1, keepdim=True) + 1e-12).sqrt()
        rotvec = raw * (self.max_angle * torch.tanh(angle / self.max_angle) / angle)
        return roma.rotvec_to_rotmat(rotvec)
