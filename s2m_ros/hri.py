"""ROS4HRI (REP-155) messages from the library's per-person results — pure conversions, no node.

REP-155 body tracking, as s2m publishes it (the topic names are built here, the node publishes):

* ``/humans/bodies/tracked`` — ``hri_msgs/IdsList``: the ids of the bodies seen in this frame;
* ``/humans/bodies/<id>/roi`` — ``hri_msgs/NormalizedRegionOfInterest2D``: the person's box,
  divided by the image size (so in [0, 1], (0, 0) the top-left corner);
* ``/humans/bodies/<id>/skeleton2d`` — ``hri_msgs/Skeleton2D``: 18 normalised keypoints in the
  OpenPose-COCO order of its constants (``NOSE``, ``NECK``, ``RIGHT_SHOULDER``, ...), made from
  our COCO-17 (or BlazePose-33) keypoints; ``NECK`` is the shoulders' midpoint;
* ``/humans/bodies/<id>/joint_states`` — ``sensor_msgs/JointState``: the 23 SMPL joint rotations
  (local to the parent joint) as three angles each, named ``<smpl_joint>_x``, ``_y``, ``_z``:
  intrinsic X-Y-Z Euler angles (``R = Rx(x) @ Ry(y) @ Rz(z)``, radians), i.e. what a chain of
  three revolute joints about x, then y, then z reproduces; the root is not a joint but the TF
  frame below;
* TF frame ``body_<id>``: child of the camera optical frame, at the pelvis joint, with the
  person's REP-103 axes (x forward, y left, z up), as :func:`s2m_ros.convert.body_to_tf`'s base.

Body ids (REP-155: short, transient, unique ids, used in topic names): 5 lowercase letters, a
deterministic function of ``track_id`` (and an optional per-run ``salt``), so a track keeps its
id for its whole life and replays give the same ids; :class:`BodyIds` also keeps them unique.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from s2m_model.results import PersonResult
from s2m_model.smpl_layout import JOINT_NAMES, NUM_JOINTS

Msg = Any  # an rclpy message

BODIES_NS = "/humans/bodies"
TRACKED_TOPIC = f"{BODIES_NS}/tracked"
BODY_SUBTOPICS = ("roi", "skeleton2d", "joint_states")
BODY_ID_LENGTH = 5
_LETTERS = "abcdefghijklmnopqrstuvwxyz"

# hri_msgs/Skeleton2D index -> COCO-17 index (None: NECK, the midpoint of the two shoulders).
# COCO-17: 0 nose, 1/2 l/r eye, 3/4 l/r ear, 5/6 l/r shoulder, 7/8 elbow, 9/10 wrist,
# 11/12 hip, 13/14 knee, 15/16 ankle.
SKELETON2D_FROM_COCO17: tuple[int | None, ...] = (
    0,  # NOSE
    None,  # NECK
    6,  # RIGHT_SHOULDER
    8,  # RIGHT_ELBOW
    10,  # RIGHT_WRIST
    5,  # LEFT_SHOULDER
    7,  # LEFT_ELBOW
    9,  # LEFT_WRIST
    12,  # RIGHT_HIP
    14,  # RIGHT_KNEE
    16,  # RIGHT_ANKLE
    11,  # LEFT_HIP
    13,  # LEFT_KNEE
    15,  # LEFT_ANKLE
    1,  # LEFT_EYE
    2,  # RIGHT_EYE
    3,  # LEFT_EAR
    4,  # RIGHT_EAR
)
NUM_SKELETON2D = len(SKELETON2D_FROM_COCO17)  # 18
_COCO_LEFT_SHOULDER, _COCO_RIGHT_SHOULDER = 5, 6

# Joint names of the joint_states message: the 23 non-root SMPL joints, three axes each.
JOINT_STATE_NAMES: tuple[str, ...] = tuple(
    f"{name}_{axis}" for name in JOINT_NAMES[1:] for axis in "xyz"
)


# --------------------------------------------------------------------------- ids and names


def body_id(track_id: int, salt: str = "") -> str:
    """REP-155 body id of a track: 5 lowercase letters, a hash of ``salt`` and ``track_id``.

    Deterministic (the same track and salt always give the same id); different salts (e.g. one
    per node start) keep ids of different runs apart. Collisions are possible (26**5 ids):
    :class:`BodyIds` resolves them.
    """
    if isinstance(track_id, bool) or not isinstance(track_id, (int, np.integer)):
        raise ValueError(f"track_id must be an integer, got {track_id!r}")
    return _hash_id(f"{salt}:{int(track_id)}")


def _hash_id(key: str) -> str:
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    value = int.from_bytes(digest, "big")
    letters = []
    for _ in range(BODY_ID_LENGTH):
        value, k = divmod(value, len(_LETTERS))
        letters.append(_LETTERS[k])
    return "".join(letters)


class BodyIds:
    """track_id -> body id, unique among the ids this object has handed out.

    ``get`` returns the same id for a track until :meth:`forget`; on a hash collision with
    another live track the next candidate (``salt:track:1``, ...) is used.
    """

    def __init__(self, salt: str = "") -> None:
        self.salt = salt
        self._ids: dict[int, str] = {}

    def get(self, track_id: int) -> str:
        tid = int(track_id)
        if tid in self._ids:
            return self._ids[tid]
        candidate, n = body_id(tid, self.salt), 0
        used = set(self._ids.values())
        while candidate in used:
            n += 1
            candidate = _hash_id(f"{self.salt}:{tid}:{n}")
        self._ids[tid] = candidate
        return candidate

    def forget(self, track_id: int) -> str | None:
        """Drop a track (it vanished); returns its id, or None when it had none."""
        return self._ids.pop(int(track_id), None)

    @property
    def active(self) -> dict[int, str]:
        """A copy of the track_id -> body id map."""
        return dict(self._ids)


def body_topic(body: str, name: str) -> str:
    """``/humans/bodies/<body>/<name>`` for ``name`` in :data:`BODY_SUBTOPICS`."""
    _check_id(body)
    if name not in BODY_SUBTOPICS:
        raise ValueError(f"unknown body sub-topic {name!r}; expected one of {BODY_SUBTOPICS}")
    return f"{BODIES_NS}/{body}/{name}"


def body_frame(body: str) -> str:
    """REP-155 TF frame of a body: ``body_<id>``."""
    _check_id(body)
    return f"body_{body}"


def _check_id(body: str) -> None:
    if not isinstance(body, str) or not body or not body[0].isalpha():
        raise ValueError(f"body id must be a non-empty string starting with a letter: {body!r}")
    if not all(c.isascii() and (c.isalnum() or c == "_") for c in body):
        raise ValueError(f"body id {body!r} may hold only ASCII letters, digits and '_'")


# --------------------------------------------------------------------------- messages


def ids_list_msg(ids: Iterable[str], header: Msg) -> Msg:
    """``hri_msgs/IdsList`` of body ids (in the given order)."""
    from hri_msgs.msg import IdsList

    ids = list(ids)
    for i in ids:
        _check_id(i)
    return IdsList(header=header, ids=ids)


def _image_size(width: int, height: int) -> tuple[int, int]:
    w, h = int(width), int(height)
    if w <= 0 or h <= 0 or w != width or h != height:
        raise ValueError(f"image size must be positive integers, got {width}x{height}")
    return w, h


def roi_msg(
    bbox: Sequence[float] | np.ndarray,
    width: int,
    height: int,
    header: Msg,
    confidence: float = 1.0,
) -> Msg:
    """``hri_msgs/NormalizedRegionOfInterest2D`` of a pixel box ``(x0, y0, x1, y1)``.

    Coordinates are divided by the image ``width``/``height`` and clipped to [0, 1] (boxes of
    people at the border reach past the image); ``confidence`` is clipped to [0, 1].

    Raises:
        ValueError: a box not of 4 finite numbers, x1 < x0 or y1 < y0, a bad image size.
    """
    from hri_msgs.msg import NormalizedRegionOfInterest2D

    w, h = _image_size(width, height)
    box = np.asarray(bbox, dtype=np.float64)
    if box.shape != (4,) or not np.isfinite(box).all():
        raise ValueError(f"bbox must be 4 finite numbers (x0, y0, x1, y1), got {bbox!r}")
    if box[2] < box[0] or box[3] < box[1]:
        raise ValueError(f"bbox {box.tolist()} has x1 < x0 or y1 < y0")
    n = np.clip(box / np.array([w, h, w, h]), 0.0, 1.0)
    c = float(np.clip(confidence, 0.0, 1.0)) if np.isfinite(confidence) else 0.0
    return NormalizedRegionOfInterest2D(
        header=header, xmin=n[0], ymin=n[1], xmax=n[2], ymax=n[3], c=c
    )


def coco17_from_keypoints(keypoints: np.ndarray) -> np.ndarray:
    """(17, 3) COCO-17 ``x, y, confidence`` from (17, 3) COCO-17 or (33, 3) BlazePose-33 rows."""
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 2 or kp.shape[1] < 3:
        raise ValueError(f"keypoints must be (K, 3) x, y, confidence; got shape {kp.shape}")
    if kp.shape[0] == 17:
        return kp[:, :3]
    if kp.shape[0] == 33:
        from s2m_model.skeletons import get_format

        to_coco = list(get_format("blazepose33").to_formats["coco17"])
        return kp[to_coco, :3]
    raise ValueError(f"keypoints must be COCO-17 (17) or BlazePose-33 (33) rows, got {len(kp)}")


def skeleton2d_points(keypoints: np.ndarray, width: int, height: int) -> np.ndarray:
    """(18, 3) normalised ``x, y, c`` in hri_msgs/Skeleton2D order from COCO-17/BlazePose rows.

    x, y are divided by the image size (not clipped: a keypoint may lie outside the image);
    ``NECK`` is the shoulders' midpoint with the lower of their confidences; non-finite points
    get ``0, 0`` and confidence 0 (REP-155 consumers read c = 0 as "not detected").
    """
    w, h = _image_size(width, height)
    coco = coco17_from_keypoints(keypoints).copy()
    bad = ~np.isfinite(coco).all(axis=1)
    coco[bad] = 0.0
    coco[:, 2] = np.clip(coco[:, 2], 0.0, 1.0)
    out = np.zeros((NUM_SKELETON2D, 3))
    for k, src in enumerate(SKELETON2D_FROM_COCO17):
        if src is not None:
            out[k] = coco[src]
        else:
            ls, rs = coco[_COCO_LEFT_SHOULDER], coco[_COCO_RIGHT_SHOULDER]
            out[k, :2] = (ls[:2] + rs[:2]) / 2.0
            out[k, 2] = min(ls[2], rs[2])
    out[:, 0] /= w
    out[:, 1] /= h
    return out


def skeleton2d_msg(keypoints: np.ndarray, width: int, height: int, header: Msg) -> Msg:
    """``hri_msgs/Skeleton2D`` (18 points, see :func:`skeleton2d_points`)."""
    from hri_msgs.msg import NormalizedPointOfInterest2D, Skeleton2D

    pts = skeleton2d_points(keypoints, width, height)
    return Skeleton2D(
        header=header,
        skeleton=[NormalizedPointOfInterest2D(x=p[0], y=p[1], c=p[2]) for p in pts],
    )


def joint_angles(person: PersonResult) -> np.ndarray:
    """(23, 3) intrinsic X-Y-Z Euler angles (radians) of the 23 local SMPL joint rotations."""
    import roma
    import torch

    pose = np.asarray(person.body_pose, dtype=np.float64)
    if pose.shape != (NUM_JOINTS - 1, 3) or not np.isfinite(pose).all():
        raise ValueError(f"body_pose must be finite ({NUM_JOINTS - 1}, 3), got {pose.shape}")
    return roma.rotvec_to_euler("XYZ", torch.as_tensor(pose)).numpy()


def joint_state_msg(person: PersonResult, header: Msg) -> Msg:
    """``sensor_msgs/JointState``: names :data:`JOINT_STATE_NAMES`, positions in radians."""
    from sensor_msgs.msg import JointState

    angles = joint_angles(person).reshape(-1)
    return JointState(header=header, name=list(JOINT_STATE_NAMES), position=angles.tolist())


def body_transform(person: PersonResult, body: str, header: Msg) -> Msg:
    """``geometry_msgs/TransformStamped`` ``header.frame_id`` (camera) -> ``body_<id>``.

    The pose of :func:`s2m_ros.convert.body_to_tf`'s base frame: origin at the pelvis joint,
    x forward (where the person faces), y to their left, z up.
    """
    from s2m_ros.convert import body_to_tf

    tf = body_to_tf(person, header, prefix="")[0]
    tf.child_frame_id = body_frame(body)
    return tf


def body_messages(
    person: PersonResult, body: str, width: int, height: int, header: Msg
) -> dict[str, Msg]:
    """Sub-topic name -> message for one body; ``roi`` only with a bbox and ``skeleton2d`` only
    with 2D keypoints (skeleton input has neither), ``joint_states`` always. The roi's
    confidence is the mean 2D keypoint confidence (1 without keypoints)."""
    _check_id(body)
    out: dict[str, Msg] = {}
    if person.bbox is not None:
        conf = 1.0
        if person.keypoints_2d is not None and np.size(person.keypoints_2d):
            c = np.asarray(person.keypoints_2d, dtype=np.float64)[:, 2]
            conf = float(np.nanmean(c)) if np.isfinite(c).any() else 0.0
        out["roi"] = roi_msg(person.bbox, width, height, header, conf)
    if person.keypoints_2d is not None:
        out["skeleton2d"] = skeleton2d_msg(person.keypoints_2d, width, height, header)
    out["joint_states"] = joint_state_msg(person, header)
    return out
