"""Result records shared by the pipeline, the CLI and the ROS nodes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class PersonResult:
    """One person in one frame, in the SMPL layout (24 joints, 23 local rotations).

    All arrays are numpy float32 for easy serialisation; rotations are local to the parent
    joint, as in SMPL. Units: metres, radians. ``transl``/``joints``/``vertices`` are in the
    camera frame (x right, y down, z forward) when the result comes from an image, otherwise in
    the frame of the input skeleton.
    """

    betas: np.ndarray  # (10,) shape coefficients, ~N(0, 1)
    global_orient: np.ndarray  # (3,) axis-angle of the root (pelvis), radians
    body_pose: np.ndarray  # (23, 3) axis-angle of joints 1..23, local to their parent, radians
    transl: np.ndarray  # (3,) translation of the body model origin, metres
    joints: np.ndarray  # (24, 3) SMPL joint positions, metres
    vertices: np.ndarray | None = None  # (V, 3) mesh vertices, metres
    solved: np.ndarray | None = None  # (24,) bool: rotation determined by the skeleton
    # (24,) int8 per-joint source of the rotation: 0 default (rest), 1 solved (DIK from the
    # skeleton), 2 refined (PR endpoints / image fit); see s2m_model.refine.endpoints.
    joint_status: np.ndarray | None = None
    betas_std: np.ndarray | None = None  # (10,) std of ``betas`` (1 = the prior: not measured)
    confidence: np.ndarray | None = None  # (24,) per-joint confidence in [0, 1]
    keypoints_2d: np.ndarray | None = None  # (K, 3) x, y (pixels), confidence
    bbox: np.ndarray | None = None  # (4,) x0, y0, x1, y1 pixels
    track_id: int = 0
    lifter: str | None = None  # front end of the 3D skeleton ("s2m", ...); None: skeleton mode
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def quaternions(self) -> np.ndarray:
        """(24, 4) unit quaternions (x, y, z, w): global_orient then the 23 local rotations."""
        import roma
        import torch

        rotvec = np.concatenate([self.global_orient[None], self.body_pose], axis=0)
        return roma.rotvec_to_unitquat(torch.as_tensor(rotvec, dtype=torch.float64)).numpy()
