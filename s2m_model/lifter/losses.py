"""Lifter training losses: the supervised joint error and the unsupervised objective.

- ``supervised``: mean per-joint distance between the lifted and the true 3D joints (h36m17,
  plus the auxiliary coco17 3D output at half weight), metres, virtual-camera frame.
- ``unsupervised`` (Chen et al., CVPR 2019; only 2D keypoints and camera intrinsics are used):
  lift -> reproject (perspective, pelvis at the depth implied by the 2D size) == input 2D;
  rotate the lift about the pelvis (random azimuth, small elevation) -> project -> lift again
  -> rotate back == first lift (3D cycle) and its projection == input 2D (2D cycle); a 2D pose
  discriminator (LSGAN, spectrally normalised) on the rotated projections vs real 2D poses;
  left/right bone-length symmetry; a knee-bend prior (knees do not bend forwards) that breaks
  the depth-mirror ambiguity. The 2D targets are the coco17 and h36m17 keypoints of the same
  view.

Each objective is an ``nn.Module`` whose ``forward`` is the whole loss, so DDP sees one forward
per backward.
"""

from __future__ import annotations

import math

import roma
import torch
from torch import nn

from s2m_model.camera import project_points
from s2m_model.lifter.model import (
    COCO_HIPS,
    NUM_AUX,
    NUM_IN,
    NUM_OUT,
    Lifter,
    centre_and_scale,
)
from s2m_model.skeletons import get_format


def joint_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean Euclidean distance over (B,J,D) points (same unit as the inputs)."""
    return torch.linalg.vector_norm(pred - target, dim=-1).mean()


def project(points: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
    """Perspective projection of pelvis-relative points (B,J,3) with the pelvis at ``depth``
    (B,) on the optical axis and focal length ``depth`` (magnification 1 at the pelvis).

    The pinhole of :func:`s2m_model.camera.project_points` with intrinsics
    ``(depth, depth, 0, 0)``; depths are first clamped to 1% of the pelvis depth (a lift that
    puts a joint at or behind the camera keeps a finite, bounded gradient).
    """
    z = (depth[:, None] + points[..., 2]).clamp_min(1e-2 * depth[:, None])
    zero = torch.zeros_like(depth)
    intrinsics = torch.stack([depth, depth, zero, zero], -1)  # (B,4)
    return project_points(torch.cat([points[..., :2], z[..., None]], -1), intrinsics)


def hip_centred(xy: torch.Tensor, coco_offset: int) -> torch.Tensor:
    """Subtract the coco17 hips' midpoint (coco joints start at ``coco_offset`` in ``xy``)."""
    hips = [coco_offset + h for h in COCO_HIPS]
    return xy - xy[:, hips].mean(1, keepdim=True)


def random_rotation(b: int, elevation: float, g: torch.Generator | None,
                    device: torch.device) -> torch.Tensor:
    """(B,3,3) rotations: azimuth ~ U(-pi, pi) about the camera's vertical (y) axis, then an
    elevation ~ U(-elevation, elevation) about x."""
    az = (2 * torch.rand(b, generator=g, device=device) - 1) * math.pi
    el = (2 * torch.rand(b, generator=g, device=device) - 1) * elevation
    zero = torch.zeros_like(az)
    r_az = roma.rotvec_to_rotmat(torch.stack([zero, az, zero], -1))
    r_el = roma.rotvec_to_rotmat(torch.stack([el, zero, zero], -1))
    return r_el @ r_az


def _mirrored_bones() -> tuple[list[int], list[int], list[int], list[int]]:
    """(parent, child) index lists of left bones and their right twins over the 34-joint raw
    output (h36m17 then coco17)."""
    lp, lc, rp, rc = [], [], [], []
    for offset, name in ((0, "h36m17"), (NUM_OUT, "coco17")):
        fmt = get_format(name)
        perm = fmt.flip_perm
        lefts = {a for a, _ in fmt.left_right}
        for p, c in fmt.bones:
            if c in lefts:
                lp.append(offset + p)
                lc.append(offset + c)
                rp.append(offset + perm[p])
                rc.append(offset + perm[c])
    return lp, lc, rp, rc


def knee_bend_penalty(joints: torch.Tensor, margin: float = 0.05) -> torch.Tensor:
    """Mean hinge penalty on knees bending forwards in (B,17,3) h36m17 joints (any unit).

    The knee's bend normal ``(knee - hip) x (ankle - knee)`` points to the body's left for a
    normal (backward) bend. A 3D pose and its depth mirror project to the same 2D, and the
    mirror bends its knees forwards, so this anatomical prior picks the right one.
    """
    left = joints[:, 4] - joints[:, 1]  # L_Hip - R_Hip
    left = left / torch.linalg.vector_norm(left, dim=-1, keepdim=True).clamp_min(1e-6)
    penalty = joints.new_zeros(())
    for hip, knee, ankle in ((1, 2, 3), (4, 5, 6)):
        thigh = joints[:, knee] - joints[:, hip]
        shin = joints[:, ankle] - joints[:, knee]
        n = torch.linalg.cross(thigh, shin, dim=-1)
        denom = (torch.linalg.vector_norm(thigh, dim=-1)
                 * torch.linalg.vector_norm(shin, dim=-1)).clamp_min(1e-6)
        penalty = penalty + torch.relu(-(n * left).sum(-1) / denom - margin).mean()
    return penalty / 2


class Discriminator(nn.Module):
    """2D pose critic: (B,68) normalised coco17 + h36m17 2D -> (B,) realness score."""

    def __init__(self, hidden: int = 256, spectral: bool = True) -> None:
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm if spectral else (lambda m: m)
        self.net = nn.Sequential(
            sn(nn.Linear((NUM_OUT + NUM_AUX) * 2, hidden)), nn.LeakyReLU(0.2),
            sn(nn.Linear(hidden, hidden)), nn.LeakyReLU(0.2),
            sn(nn.Linear(hidden, hidden)), nn.LeakyReLU(0.2),
            sn(nn.Linear(hidden, 1)),
        )

    def forward(self, poses: torch.Tensor) -> torch.Tensor:
        return self.net(poses.reshape(poses.shape[0], -1))[:, 0]


def disc_input(xy34: torch.Tensor) -> torch.Tensor:
    """(B,34,2) h36m17 + coco17 2D -> root-centred (coco hips) and scaled by the coco 2D size."""
    coco = xy34[:, NUM_OUT:]
    ones = torch.ones(coco.shape[:2], dtype=torch.bool, device=coco.device)
    _, root, scale = centre_and_scale(coco, ones)
    return (xy34 - root[:, None]) / scale.clamp_min(1e-6)[:, None, None]


class SupervisedObjective(nn.Module):
    """``forward`` = :meth:`Lifter.predict` (h36m17 + coco17 raw output) for DDP wrapping."""

    def __init__(self, lifter: Lifter) -> None:
        super().__init__()
        self.lifter = lifter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lifter.predict(x)


class UnsupervisedObjective(nn.Module):
    """The lifter's unsupervised loss in one ``forward`` (so DDP sees one forward per backward).

    The discriminator is passed in unwrapped: the generator step only reads it, and its own
    gradients are cleared before the discriminator step.
    """

    def __init__(self, lifter: Lifter) -> None:
        super().__init__()
        self.lifter = lifter
        self._bones = _mirrored_bones()

    def forward(
        self,
        x: torch.Tensor,
        valid: torch.Tensor,
        scale: torch.Tensor,
        target34: torch.Tensor,
        rot: torch.Tensor,
        disc: nn.Module,
        weights: dict[str, float],
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """Args: x (B,51) input; valid (B,17); scale (B,) input 2D size (virtual units);
        target34 (B,34,2) clean h36m17 + coco17 2D in input units; rot (B,3,3).

        Returns: total loss, its named parts, and the (B,34,2) fake 2D poses (for the critic).
        """
        lifter = self.lifter
        b = x.shape[0]
        depth = 1.0 / scale.clamp_min(1e-4)  # pelvis depth in 2D-size units (see project)
        y = lifter.predict(x)
        target = hip_centred(target34, NUM_OUT)
        reproj = joint_error(hip_centred(project(y, depth), NUM_OUT), target)

        y_rot = y @ rot.mT
        p_rot = project(y_rot, depth)
        x_rot, _, s_rot = centre_and_scale(p_rot[:, NUM_OUT:], valid)
        conf = x.reshape(b, NUM_IN, 3)[..., 2:]
        x2 = torch.cat([x_rot, conf], -1).reshape(b, NUM_IN * 3)
        y2 = lifter.predict(x2) * s_rot.clamp_min(1e-6)[:, None, None]
        y_back = y2 @ rot
        cycle3d = joint_error(y_back, y)
        cycle2d = joint_error(hip_centred(project(y_back, depth), NUM_OUT), target)

        fake = disc_input(p_rot)
        adv = ((disc(fake) - 1.0) ** 2).mean()

        lp, lc, rp, rc = self._bones
        len_l = torch.linalg.vector_norm(y[:, lc] - y[:, lp], dim=-1)
        len_r = torch.linalg.vector_norm(y[:, rc] - y[:, rp], dim=-1)
        sym = ((len_l - len_r).abs() / (len_l + len_r).clamp_min(1e-6)).mean()

        parts = {"reproj": reproj, "cycle3d": cycle3d, "cycle2d": cycle2d, "adv": adv,
                 "sym": sym, "bend": knee_bend_penalty(y[:, :NUM_OUT])}
        total = sum(weights[k] * v for k, v in parts.items())
        return total, parts, fake
