"""Seeded synthetic bodies for the refinement tests and benchmark: plausible poses, random shapes.

Poses stay inside loose joint limits (free hips/shoulders, hinge-only elbows/knees with positive
flexion, moderate spine/neck/head, collars, wrists and ankles, small finger/toe flexion), so the
numbers measured on them describe ordinary standing/moving people rather than contortions.
Rotations are axis-angle in radians, lengths in metres, SMPL body frame unless placed in a
camera frame by :func:`facing_camera`.
"""

from __future__ import annotations

import math

import roma
import torch

from s2m_model.dik import hinge_axis
from s2m_model.smpl_layout import JOINT_NAMES, NUM_BETAS, NUM_BODY_JOINTS

_HINGES = ("left_knee", "right_knee", "left_elbow", "right_elbow")
_FREE = ("left_hip", "right_hip", "left_shoulder", "right_shoulder")
# Largest random rotation angle (radians) per joint group.
_MAX_ANGLE = {"spine": 0.25, "neck": 0.3, "head": 0.35, "collar": 0.2, "wrist": 0.6,
              "ankle": 0.4, "foot": 0.2, "hand": 0.2}  # fmt: skip


def _group(name: str) -> str:
    for key in _MAX_ANGLE:
        if key in name:
            return key
    raise ValueError(f"no pose range for joint {name!r}")


def sample_pose(
    body, batch: int, seed: int = 0, betas: torch.Tensor | None = None, dtype=torch.float64
) -> torch.Tensor:
    """(B,23,3) local axis-angle poses inside loose joint limits (radians), seeded."""
    g = torch.Generator().manual_seed(seed)

    def rotvec(max_angle: float) -> torch.Tensor:
        axis = torch.nn.functional.normalize(
            torch.randn(batch, 3, generator=g, dtype=dtype), dim=-1
        )
        return axis * torch.rand(batch, 1, generator=g, dtype=dtype) * max_angle

    pose = torch.zeros(batch, NUM_BODY_JOINTS, 3, dtype=dtype)
    for j, name in enumerate(JOINT_NAMES[1:]):
        if name in _HINGES:
            flex = 0.15 + torch.rand(batch, 1, generator=g, dtype=dtype) * 1.6
            pose[:, j] = hinge_axis(body, name, betas).to(dtype) * flex
        elif name in _FREE:
            pose[:, j] = rotvec(1.0)
        else:
            pose[:, j] = rotvec(_MAX_ANGLE[_group(name)])
    return pose


def sample_betas(batch: int, seed: int = 0, std: float = 1.0, dtype=torch.float64) -> torch.Tensor:
    """(B,10) shape coefficients ~ N(0, std^2), seeded."""
    g = torch.Generator().manual_seed(seed + 7919)
    return torch.randn(batch, NUM_BETAS, generator=g, dtype=dtype) * std


def facing_camera(batch: int, seed: int = 0, distance: float = 3.0, dtype=torch.float64):
    """Root orientation (B,3) and translation (B,3) that put a body upright in front of a camera.

    Camera frame: x right, y down, z forward. SMPL's body frame (Y up, facing +Z) turned 180 deg
    about x faces the camera; a random yaw in +-60 deg and a few cm of jitter are added; the
    body stands ``distance`` metres in front.
    """
    g = torch.Generator().manual_seed(seed + 104729)
    yaw = (torch.rand(batch, generator=g, dtype=dtype) - 0.5) * (2 * math.pi / 3)
    flip = torch.tensor([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]], dtype=dtype)
    c, s = torch.cos(yaw), torch.sin(yaw)
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    yaw_m = torch.stack([c, zero, s, zero, one, zero, -s, zero, c], -1).reshape(batch, 3, 3)
    orient = roma.rotmat_to_rotvec(flip @ yaw_m)
    transl = torch.randn(batch, 3, generator=g, dtype=dtype) * 0.05
    transl[:, 2] += distance
    return orient, transl


def sample_bodies(body, batch: int, seed: int = 0, beta_std: float = 1.0, camera: bool = False):
    """Posed random bodies: ``body(...)`` output (vertices, joints, betas, pose) in float64.

    ``camera=True`` places them upright in front of a camera (see :func:`facing_camera`),
    otherwise a random root orientation and translation in the body frame.
    """
    betas = sample_betas(batch, seed, beta_std).to(body.dtype)
    pose = sample_pose(body, batch, seed, betas).to(body.dtype)
    if camera:
        orient, transl = facing_camera(batch, seed)
    else:
        g = torch.Generator().manual_seed(seed + 31)
        orient = torch.randn(batch, 3, generator=g, dtype=torch.float64)
        transl = torch.randn(batch, 3, generator=g, dtype=torch.float64)
    return body(
        betas=betas,
        global_orient=orient.to(body.dtype),
        body_pose=pose,
        transl=transl.to(body.dtype),
    )
