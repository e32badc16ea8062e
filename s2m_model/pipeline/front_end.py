"""Front ends: a frame's detections -> root-relative 3D skeletons (camera axes) for DIK.

The ``lifter`` setting (:data:`~s2m_model.pipeline.config.LIFTERS`) picks one:

- ``s2m`` — :func:`lift_keypoints`: the s2m lifter on the COCO-17 keypoints and the camera
  intrinsics, giving ``h36m17`` joints, pelvis at 0.
- ``mediapipe-world`` — :func:`world_landmarks`: the detector's 33 metric BlazePose world
  landmarks (:attr:`~s2m_model.detect.Detection.keypoints_world`, hip midpoint at 0), format
  ``blazepose33``, as they are. Checked on the COCO photo: MediaPipe's world axes are the
  camera's (x right, y down, z forward; correlation with the pixel x / y offsets 0.99 / 0.999,
  with MediaPipe's relative depth 0.998, the same scale in x and y), so no rotation is applied.
- ``fused`` — :func:`fused_landmarks`: :class:`s2m_model.lifter.fused.FusedLifter` on the 2D
  landmarks + the world landmarks + the intrinsics (a learned correction of the world
  landmarks, trained on detector-in-the-loop data), format ``blazepose33``.

Both return :class:`Skeletons`; the orchestrator places the posed bodies in the camera frame the
same way for both (:mod:`s2m_model.pipeline.placement`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Container, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from s2m_model.pipeline.confidence import h36m_confidence
from s2m_model.skeletons import get_format

__all__ = [
    "Skeletons",
    "fused_landmarks",
    "has_fused_inputs",
    "has_world_landmarks",
    "lift_keypoints",
    "only_people",
    "world_landmarks",
]

WORLD_FORMAT = "blazepose33"
LIFTER_FORMAT = "h36m17"


@dataclass
class Skeletons:
    """3D skeletons of some of a frame's people, ready for DIK.

    Attributes:
        people: indices (into the detections given to the front end) of the rows below.
        joints: (P,J,3) metres, camera axes (x right, y down, z forward), root-relative.
        fmt: their :class:`~s2m_model.skeletons.SkeletonFormat`.
        confidence: (P,J) float32 in [0, 1].
        lifter: the front end that made them (a name of ``LIFTERS``).
    """

    people: list[int]
    joints: torch.Tensor
    fmt: Any
    confidence: np.ndarray
    lifter: str


def only_people(group: Skeletons, people: Container[int]) -> Skeletons:
    """The rows of ``group`` whose person index is in ``people`` (may leave none)."""
    rows = [r for r, i in enumerate(group.people) if i in people]
    if len(rows) == len(group.people):
        return group
    return dataclasses.replace(group, people=[group.people[r] for r in rows],
                               joints=group.joints[rows], confidence=group.confidence[rows])


def has_world_landmarks(det) -> bool:
    """Whether a detection carries usable (33,3) world landmarks."""
    world = getattr(det, "keypoints_world", None)
    shape = (get_format(WORLD_FORMAT).num_joints, 3)
    return world is not None and np.shape(world) == shape and bool(np.isfinite(world).all())


def world_landmarks(detections: Sequence, people: Sequence[int], device, dtype) -> Skeletons:
    """``mediapipe-world``: the world landmarks of ``detections[i]`` for ``i`` in ``people``
    (each must pass :func:`has_world_landmarks`), with the landmark visibilities as confidence
    (1 when the detector gives none)."""
    joints = np.stack([np.asarray(detections[i].keypoints_world, np.float32) for i in people])
    conf = np.ones(joints.shape[:2], np.float32)
    for row, i in enumerate(people):
        pixels = getattr(detections[i], "keypoints_blazepose", None)
        if pixels is not None and np.shape(pixels) == (joints.shape[1], 4):
            conf[row] = np.clip(pixels[:, 3], 0.0, 1.0)
    return Skeletons(
        people=list(people),
        joints=torch.from_numpy(joints).to(device=device, dtype=dtype),
        fmt=get_format(WORLD_FORMAT),
        confidence=conf,
        lifter="mediapipe-world",
    )


def lift_keypoints(
    lifter, keypoints: np.ndarray, people: Sequence[int], intrinsics: np.ndarray, device, dtype
) -> tuple[Skeletons | None, list[int]]:
    """``s2m``: lift the COCO-17 keypoints of ``people``.

    Args:
        lifter: an object with ``lift(keypoints (P,17,3), camera=(4,)) -> (P,17,3)`` and
            optionally ``usable(keypoints) -> (P,) bool`` (people it cannot normalise).
        keypoints: (N,17,3) COCO-17 pixels + confidence of all the frame's people.
        people: the rows of ``keypoints`` to lift.
        intrinsics: (4,) float32 ``fx, fy, cx, cy`` (pixels).

    Returns:
        The skeletons (None when nobody is left), and the people the lifter refused.
    """
    people = list(people)
    rejected: list[int] = []
    usable = getattr(lifter, "usable", None)
    if people and callable(usable):
        ok = np.asarray(usable(keypoints[people]), dtype=bool).reshape(-1)
        rejected = [i for i, k in zip(people, ok, strict=True) if not k]
        people = [i for i, k in zip(people, ok, strict=True) if k]
    if not people:
        return None, rejected
    kp = keypoints[people]
    fmt = get_format(LIFTER_FORMAT)
    lifted = torch.as_tensor(lifter.lift(kp, camera=intrinsics))
    lifted = lifted.to(device=device, dtype=dtype).reshape(-1, fmt.num_joints, 3)
    skeletons = Skeletons(
        people=people,
        joints=lifted,
        fmt=fmt,
        confidence=h36m_confidence(kp[..., 2]),
        lifter="s2m",
    )
    return skeletons, rejected


def has_fused_inputs(det) -> bool:
    """Whether a detection carries what ``fused`` needs: world landmarks and (33,4) pixels."""
    pixels = getattr(det, "keypoints_blazepose", None)
    shape = (get_format(WORLD_FORMAT).num_joints, 4)
    ok = pixels is not None and np.shape(pixels) == shape and bool(np.isfinite(pixels).all())
    return ok and has_world_landmarks(det)


def fused_landmarks(
    model, detections: Sequence, people: Sequence[int], intrinsics: np.ndarray, device, dtype
) -> Skeletons:
    """``fused``: :class:`s2m_model.lifter.fused.FusedLifter` on the 2D landmarks, the world
    landmarks and the intrinsics ``(4,)`` of ``detections[i]`` for ``i`` in ``people`` (each
    must pass :func:`has_fused_inputs`); ``blazepose33``, landmark visibilities as confidence."""
    pixels = np.stack([np.asarray(detections[i].keypoints_blazepose, np.float32) for i in people])
    world = np.stack([np.asarray(detections[i].keypoints_world, np.float32) for i in people])
    joints = model.lift(pixels, world, np.asarray(intrinsics, np.float32))
    return Skeletons(
        people=list(people),
        joints=joints.to(device=device, dtype=dtype),
        fmt=get_format(WORLD_FORMAT),
        confidence=np.clip(pixels[:, :, 3], 0.0, 1.0).astype(np.float32),
        lifter="fused",
    )
