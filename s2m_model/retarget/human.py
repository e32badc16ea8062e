"""Human motion in the robot's world frame: SMPL-layout bodies -> :class:`HumanMotion`.

Input frames (both right-handed, metres):

* ``"smpl"`` — SMPL's body / mocap world frame: **y up**, a body at zero rotation faces +z,
  its left is +x (the frame of mocap fits and of ``s2m_model.body``);
* ``"camera"`` — the camera optical frame of ``s2m run`` results and ``BodyArray`` messages
  from images (x right, y down, z forward); the camera is assumed level.

Output frame (the robot's world, REP-103 and MuJoCo): **z up**, x forward, y left. A body in
SMPL's zero pose facing +x in this world has joint frames :data:`BODY_AXES_IN_WORLD` (the
SMPL body axes written in world coordinates). The conversions are fixed rotations:

* ``"smpl"``: world = :data:`SMPL_TO_WORLD` @ p (x_w = z_smpl, y_w = x_smpl, z_w = y_smpl);
* ``"camera"``: world = :data:`CAMERA_TO_WORLD` @ p (x_w = -z_cam, y_w = x_cam, z_w = -y_cam):
  a person facing the camera faces world +x, and the robot imitates them (no mirroring).

With ``align_heading`` (default) the motion is then turned about z and shifted so that the
first valid frame's pelvis is above the origin, facing +x; the vertical stays as given (the
ground is estimated later, from the feet: :mod:`s2m_model.retarget.targets`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import roma
import torch

from s2m_model.smpl_layout import JOINT_INDEX, NUM_JOINTS, PARENTS, world_from_local

#: SMPL body axes (x left, y up, z forward) as columns in robot-world coordinates.
BODY_AXES_IN_WORLD = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
#: SMPL / mocap world (y up) -> robot world (z up).
SMPL_TO_WORLD = BODY_AXES_IN_WORLD
#: Camera optical frame (x right, y down, z forward) -> robot world, person facing +x.
CAMERA_TO_WORLD = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
FRAMES = {"smpl": SMPL_TO_WORLD, "camera": CAMERA_TO_WORLD}


@dataclass
class HumanMotion:
    """One person's motion in the robot world frame (z up). ``T`` frames, SMPL joint order.

    Attributes:
        joints: ``(T, 24, 3)`` joint positions, metres; NaN where a joint is missing.
        rotations: ``(T, 24, 3, 3)`` joint frames: the SMPL body axes of each joint (its
            global rotation) in world coordinates. Identity-free: zero pose facing +x gives
            :data:`BODY_AXES_IN_WORLD` for every joint.
        t: ``(T,)`` timestamps, seconds, increasing.
        solved: ``(T, 24)`` True where the joint's rotation was determined by the data
            (unsolved rotations are not used as orientation targets).
        betas: ``(10,)`` body shape, if known (informative only: scaling uses bone lengths).
    """

    joints: np.ndarray
    rotations: np.ndarray
    t: np.ndarray
    solved: np.ndarray
    betas: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.joints.shape[0])

    @property
    def valid(self) -> np.ndarray:
        """``(T,)`` True where the pelvis is finite (frames the retargeter can follow)."""
        return np.isfinite(self.joints[:, JOINT_INDEX["pelvis"]]).all(-1)


def _local_matrices(rotations: np.ndarray) -> np.ndarray:
    r = np.asarray(rotations, dtype=np.float64)
    if r.shape[-2:] == (3, 3) and r.ndim == 4:
        return r
    if r.shape[-1] == 3 and r.ndim == 3:
        flat = np.nan_to_num(r.reshape(-1, 3))
        return roma.rotvec_to_rotmat(torch.as_tensor(flat)).numpy().reshape(*r.shape[:2], 3, 3)
    raise ValueError(f"rotations must be (T,24,3,3) matrices or (T,24,3) axis-angle, got "
                     f"{r.shape}")  # fmt: skip


def from_smpl(
    rotations: np.ndarray,
    joints: np.ndarray,
    t: np.ndarray,
    *,
    frame: str | np.ndarray = "smpl",
    solved: np.ndarray | None = None,
    betas: np.ndarray | None = None,
    align_heading: bool = True,
) -> HumanMotion:
    """SMPL-layout bodies in ``frame`` -> :class:`HumanMotion` in the robot world.

    Args:
        rotations: ``(T, 24, 3, 3)`` local rotations (joint relative to its parent; the root
            relative to ``frame``) or ``(T, 24, 3)`` axis-angle (``global_orient`` then
            ``body_pose``), radians.
        joints: ``(T, 24, 3)`` joint positions in ``frame``, metres (NaN = missing).
        t: ``(T,)`` timestamps (s), strictly increasing.
        frame: ``"smpl"``, ``"camera"`` or a ``(3, 3)`` rotation taking ``frame`` to the world.
        solved: ``(T, 24)`` per-joint rotation flags (default all True).
        betas: optional ``(10,)`` shape.
        align_heading: turn/shift so the first valid pelvis is at the origin facing +x.

    Raises:
        ValueError: shapes that do not fit, unknown frame, non-increasing timestamps, no frame
            with a finite pelvis.
    """
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"joints must be (T, {NUM_JOINTS}, 3), got {joints.shape}")
    T = joints.shape[0]
    local = _local_matrices(rotations)
    if local.shape != (T, NUM_JOINTS, 3, 3):
        raise ValueError(f"rotations must cover the same {T} frames and {NUM_JOINTS} joints, "
                         f"got {local.shape}")  # fmt: skip
    t = np.asarray(t, dtype=np.float64).reshape(-1)
    if t.shape != (T,):
        raise ValueError(f"t must be ({T},), got {t.shape}")
    if T > 1 and not (np.diff(t) > 0).all():
        raise ValueError("timestamps t must be strictly increasing")
    if isinstance(frame, str):
        if frame not in FRAMES:
            raise ValueError(f"unknown frame {frame!r} (known: {', '.join(FRAMES)})")
        to_world = FRAMES[frame]
    else:
        to_world = np.asarray(frame, dtype=np.float64)
        if to_world.shape != (3, 3) or not np.allclose(to_world @ to_world.T, np.eye(3), atol=1e-6):
            raise ValueError("frame must be 'smpl', 'camera' or a (3, 3) rotation matrix")
    solved = np.ones((T, NUM_JOINTS), bool) if solved is None else np.asarray(solved, bool)
    if solved.shape != (T, NUM_JOINTS):
        raise ValueError(f"solved must be ({T}, {NUM_JOINTS}), got {solved.shape}")
    bad_rot = ~np.isfinite(local).all((-1, -2))
    local = np.where(bad_rot[..., None, None], np.eye(3), local)
    world_rot = world_from_local(torch.as_tensor(local)).numpy()
    # A joint whose own or an ancestor's rotation was not finite has no usable frame.
    for j, p in enumerate(PARENTS):
        if p >= 0:
            bad_rot[:, j] |= bad_rot[:, p]
    solved = solved & ~bad_rot
    rot = to_world @ world_rot
    pts = joints @ to_world.T
    motion = HumanMotion(joints=pts, rotations=rot, t=t, solved=solved,
                         betas=None if betas is None else np.asarray(betas, np.float32))
    if not motion.valid.any():
        raise ValueError("no frame has a finite pelvis joint: nothing to retarget")
    return align(motion) if align_heading else motion


def heading(rotation: np.ndarray) -> float:
    """Yaw (radians, about world z) of the forward axis of a joint frame ``(3, 3)``."""
    forward = rotation[:, 2]  # SMPL body z = forward
    return float(np.arctan2(forward[1], forward[0]))


def yaw_matrix(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def align(motion: HumanMotion) -> HumanMotion:
    """Turn about z and shift horizontally: first valid pelvis at the origin, facing +x."""
    first = int(np.flatnonzero(motion.valid)[0])
    pelvis = JOINT_INDEX["pelvis"]
    rz = yaw_matrix(-heading(motion.rotations[first, pelvis]))
    origin = motion.joints[first, pelvis].copy()
    origin[2] = 0.0
    return HumanMotion(
        joints=(motion.joints - origin) @ rz.T, rotations=rz @ motion.rotations,
        t=motion.t, solved=motion.solved, betas=motion.betas,
    )  # fmt: skip
