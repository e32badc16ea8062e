"""Synthetic SMPL-layout motions for tests, benchmarks and demos of retargeting (no data).

The skeleton is an approximate adult SMPL rest pose (:data:`REST_OFFSETS`, metres, SMPL body
frame: y up, facing +z, left +x; bone offsets from each joint's parent, T-pose) — enough to
drive the retargeter with known, deterministic motion; it is not a body model.
"""

from __future__ import annotations

import numpy as np
import roma
import torch

from s2m_model.smpl_layout import JOINT_INDEX, NUM_JOINTS, PARENTS, forward_kinematics

#: Bone offsets (metres) of an average adult SMPL rest skeleton, joint minus parent.
REST_OFFSETS = np.array([
    [0.0, 0.93, 0.0],  # pelvis (height above the floor)
    [0.06, -0.08, -0.02], [-0.06, -0.08, -0.02], [0.0, 0.12, -0.03],
    [0.04, -0.38, 0.01], [-0.04, -0.38, 0.01], [0.0, 0.14, 0.03],
    [-0.01, -0.42, -0.04], [0.01, -0.42, -0.04], [0.0, 0.06, 0.0],
    [0.04, -0.06, 0.12], [-0.04, -0.06, 0.12], [-0.01, 0.21, -0.03],
    [0.07, 0.11, -0.02], [-0.08, 0.11, -0.02], [0.01, 0.09, 0.05],
    [0.12, 0.04, -0.02], [-0.11, 0.05, -0.01], [0.26, -0.02, -0.02],
    [-0.26, -0.01, -0.03], [0.27, 0.01, -0.01], [-0.27, -0.01, -0.01],
    [0.09, -0.01, -0.02], [-0.09, -0.01, -0.01],
])  # fmt: skip


def rest_joints() -> np.ndarray:
    """``(24, 3)`` rest (T-pose) joint positions, SMPL frame, pelvis at its height."""
    out = np.zeros((NUM_JOINTS, 3))
    for j, p in enumerate(PARENTS):
        out[j] = REST_OFFSETS[j] + (out[p] if p >= 0 else 0.0)
    return out


def _rx(a):
    return roma.rotvec_to_rotmat(torch.tensor([[a, 0.0, 0.0]], dtype=torch.float64))[0].numpy()


def _rz(a):
    return roma.rotvec_to_rotmat(torch.tensor([[0.0, 0.0, a]], dtype=torch.float64))[0].numpy()


def _ry(a):
    return roma.rotvec_to_rotmat(torch.tensor([[0.0, a, 0.0]], dtype=torch.float64))[0].numpy()


def motion(kind: str = "wave", frames: int = 90, fps: float = 30.0) -> dict[str, np.ndarray]:
    """A deterministic motion in the SMPL frame.

    Args:
        kind: ``"wave"`` (standing, arms down then the right arm waves overhead),
            ``"squat"`` (knees and hips bend, arms forward), ``"walk"`` (steps forward at
            0.6 m/s with swinging arms and a turning torso), ``"tpose"`` (still T-pose).
        frames: number of frames ``T``; fps: frame rate.

    Returns:
        dict with ``local`` (T,24,3,3) local rotations, ``joints`` (T,24,3) metres (SMPL
        frame, y up, floor at y=0), ``t`` (T,) seconds.
    """
    if kind not in ("wave", "squat", "walk", "tpose"):
        raise ValueError(f"unknown synthetic motion {kind!r}")
    if frames < 1 or fps <= 0:
        raise ValueError("frames must be >= 1 and fps > 0")
    t = np.arange(frames) / fps
    local = np.tile(np.eye(3), (frames, NUM_JOINTS, 1, 1))
    transl = np.zeros((frames, 3))
    J = JOINT_INDEX
    for i, ti in enumerate(t):
        phase = 2 * np.pi * ti
        if kind != "tpose":
            local[i, J["left_shoulder"]] = _rz(-1.3)
            local[i, J["right_shoulder"]] = _rz(1.3)
        if kind == "wave":
            lift = 0.5 - 0.5 * np.cos(min(ti, 1.5) / 1.5 * np.pi)  # 0 -> 1 over 1.5 s
            local[i, J["right_shoulder"]] = _rz(1.3 - 2.6 * lift)
            local[i, J["right_elbow"]] = _ry(-0.6 * lift * (1 + 0.5 * np.sin(2 * phase)))
            local[i, J["left_elbow"]] = _ry(0.3)
        elif kind == "squat":
            depth = 0.5 - 0.5 * np.cos(phase * 0.5)
            local[i, J["left_hip"]] = local[i, J["right_hip"]] = _rx(-1.1 * depth)
            local[i, J["left_knee"]] = local[i, J["right_knee"]] = _rx(2.0 * depth)
            local[i, J["left_ankle"]] = local[i, J["right_ankle"]] = _rx(-0.9 * depth)
            local[i, J["spine1"]] = _rx(0.4 * depth)
            local[i, J["left_shoulder"]] = _ry(-1.4) @ _rz(-0.2)
            local[i, J["right_shoulder"]] = _ry(1.4) @ _rz(0.2)
        elif kind == "walk":
            swing = 0.45 * np.sin(phase)
            local[i, J["left_hip"]] = _rx(-swing)
            local[i, J["right_hip"]] = _rx(swing)
            local[i, J["left_knee"]] = _rx(0.5 * max(0.0, np.sin(phase + 1.2)))
            local[i, J["right_knee"]] = _rx(0.5 * max(0.0, -np.sin(phase + 1.2)))
            local[i, J["left_shoulder"]] = _rz(-1.3) @ _ry(-0.3 * np.sin(phase))
            local[i, J["right_shoulder"]] = _rz(1.3) @ _ry(-0.3 * np.sin(phase))
            local[i, J["spine3"]] = _ry(0.15 * np.sin(phase))
            transl[i] = (0.0, 0.0, 0.6 * ti)
    rest = torch.as_tensor(rest_joints())[None].expand(frames, -1, -1)
    joints = forward_kinematics(torch.as_tensor(local), rest)[0].numpy() + transl[:, None]
    # Keep the lower ankle at its rest height: the person stands on the floor (y = 0).
    ankles = joints[:, [J["left_ankle"], J["right_ankle"]], 1].min(1)
    joints[..., 1] += (rest_joints()[J["left_ankle"], 1] - ankles)[:, None]
    return {"local": local, "joints": joints, "t": t}
