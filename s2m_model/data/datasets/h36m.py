"""Human3.6M from its common preprocessed ``.npz`` layouts, plus the evaluation protocols.

We cannot ship Human3.6M (licence); this reads the files users build with public scripts:

- **SPIN layout** (``nkolot/SPIN`` ``datasets/preprocess/h36m*.py``; also the released
  ``h36m_valid_protocol{1,2}.npz`` / ``h36m_train.npz``): keys ``imgname``, ``center``,
  ``scale``, ``S`` ``(N, 24, 4)`` (SPIN's 24-joint superset, metres, camera frame,
  **root-centred**, 4th column = visibility), optional ``part`` ``(N, 24, 3)`` (pixels + vis),
  ``pose`` ``(N, 72)``, ``shape`` ``(N, 10)``, ``has_smpl``.
- **mmpose layout** (``tools/dataset/preprocess_h36m.py``: ``annotation_body3d/fps*/h36m_*.npz``):
  keys ``imgname``, ``center``, ``scale``, ``part`` ``(N, 17, 3)``, ``S`` ``(N, 17, 4)`` (metres,
  camera frame, absolute, H36M-17 order).

Both name images ``..._S9_<Sequence>.<camera id>_<frame:06d>.jpg`` (1-based frame number in the
50 fps video), from which subject, action, camera and frame index are parsed.

Output joints are always in the **H36M-17 order** (:data:`H36M17_JOINTS`), metres, camera frame
(x right, y down, z forward).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Literal

import numpy as np

from s2m_model.data.datasets._common import numeric, require
from s2m_model.util.files import load_npz

#: H36M-17 joint order (VideoPose3D / mmpose / the paper notes).
H36M17_JOINTS: tuple[str, ...] = (
    "pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "spine", "thorax", "nose", "head", "left_shoulder", "left_elbow", "left_wrist",
    "right_shoulder", "right_elbow", "right_wrist",
)  # fmt: skip
H36M_ROOT = 0
#: The 14 evaluation joints of mesh-recovery codebases: H36M-17 minus pelvis, spine and nose.
H36M_EVAL14: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 13, 14, 15, 16)
TRAIN_SUBJECTS: tuple[str, ...] = ("S1", "S5", "S6", "S7", "S8")
TEST_SUBJECTS: tuple[str, ...] = ("S9", "S11")
CAMERAS: tuple[str, ...] = ("54138969", "55011271", "58860488", "60457274")
#: Protocol 2 uses only this (frontal) camera.
FRONTAL_CAMERA = "60457274"
#: Indices into SPIN's 24-joint superset (``constants.JOINT_NAMES[25:]``) that give H36M-17:
#: Pelvis(MPII), R hip/knee/ankle, L hip/knee/ankle, Spine(H36M), Neck(LSP), Jaw(H36M) as the
#: nose, Head(H36M), L shoulder/elbow/wrist, R shoulder/elbow/wrist (inverse of SPIN's
#: ``global_idx`` applied to the standard H36M order).
SPIN24_TO_H36M17: tuple[int, ...] = (14, 2, 1, 0, 3, 4, 5, 16, 12, 17, 18, 9, 10, 11, 8, 7, 6)

_IMGNAME = re.compile(r"(S\d+)_(.+)\.(\d+)_(\d+)\.[A-Za-z]+$")

Layout = Literal["auto", "spin", "mmpose"]


@dataclass(frozen=True)
class H36MSample:
    """One Human3.6M frame (one camera). Lengths in metres, pixels for 2D."""

    joints3d: np.ndarray  # (17, 3) metres, camera frame, H36M-17 order
    joints2d: np.ndarray | None  # (17, 2) pixels
    valid3d: np.ndarray  # (17,) bool
    subject: str  # "S9"
    action: str  # "Directions"
    sequence: str  # "Directions_1"
    camera: str  # "60457274"
    frame: int  # 0-based frame index in the 50 fps video
    imgname: str


@dataclass(frozen=True)
class H36MData:
    """``N`` Human3.6M frames as parallel arrays (see :class:`H36MSample` for the fields).

    ``joints3d`` is ``(N, 17, 3)`` float64 metres in the camera frame; joints that are not
    annotated or not finite have ``valid3d`` False and coordinates 0 (never NaN).
    ``root_centred`` tells whether the file stored root-relative joints (SPIN) or absolute
    camera-frame joints (mmpose). ``pose`` ``(N, 72)`` / ``betas`` ``(N, 10)`` are SMPL
    parameters when the file has them (SPIN's MoSh'ed training files).
    """

    joints3d: np.ndarray
    joints2d: np.ndarray | None
    valid3d: np.ndarray
    subject: np.ndarray
    action: np.ndarray
    sequence: np.ndarray
    camera: np.ndarray
    frame: np.ndarray
    imgname: np.ndarray
    root_centred: bool
    layout: str
    pose: np.ndarray | None = None
    betas: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.joints3d.shape[0])

    def __getitem__(self, i: int) -> H36MSample:
        return H36MSample(
            joints3d=self.joints3d[i],
            joints2d=None if self.joints2d is None else self.joints2d[i],
            valid3d=self.valid3d[i],
            subject=str(self.subject[i]),
            action=str(self.action[i]),
            sequence=str(self.sequence[i]),
            camera=str(self.camera[i]),
            frame=int(self.frame[i]),
            imgname=str(self.imgname[i]),
        )

    def select(self, index: np.ndarray | Sequence[int]) -> H36MData:
        """A subset by bool mask ``(N,)`` or integer indices."""
        idx = np.asarray(index)
        if idx.dtype == bool and idx.shape != (len(self),):
            raise ValueError(f"mask must have shape ({len(self)},), got {idx.shape}")
        changes = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                changes[f.name] = value[idx]
        return replace(self, **changes)


def parse_imgname(imgname: str) -> tuple[str, str, str, str, int]:
    """``(subject, action, sequence, camera, frame)`` from an H36M image name.

    ``"images/S9_Directions_1.54138969_000001.jpg"`` -> ``("S9", "Directions", "Directions_1",
    "54138969", 0)``; the frame is 0-based. Raises ``ValueError`` when the name does not match.
    """
    base = imgname.replace("\\", "/").rsplit("/", 1)[-1]
    m = _IMGNAME.search(base)
    if m is None:
        raise ValueError(f"not an H36M image name: {imgname!r}")
    subject, sequence, camera, frame = m.group(1), m.group(2), m.group(3), int(m.group(4))
    sequence = sequence.replace(" ", "_")
    action = re.sub(r"_\d+$", "", sequence)
    return subject, action, sequence, camera, frame - 1


def load_h36m(path: str | Path, layout: Layout = "auto") -> H36MData:
    """Load a preprocessed Human3.6M ``.npz`` (SPIN or mmpose layout; see the module docstring).

    Args:
        path: the ``.npz`` file.
        layout: ``"auto"`` (from the joint count of ``S``: 24 -> SPIN, 17 -> mmpose), ``"spin"``
            or ``"mmpose"``.

    Returns:
        :class:`H36MData` with joints in H36M-17 order, metres, camera frame.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unreadable/pickled file, missing key, wrong shapes, or an image name that
            does not parse — the message names the file and the key.
    """
    path = Path(path)
    data = load_npz(path)
    require(data, ("imgname", "S"), path, "a SPIN- or mmpose-style Human3.6M .npz")
    S = numeric(data["S"], "S", path)
    if S.ndim != 3 or S.shape[-1] not in (3, 4) or S.shape[1] not in (17, 24):
        raise ValueError(
            f"{path}: key 'S' must have shape (N, 24, 4) (SPIN) or (N, 17, 3|4) (mmpose), "
            f"got {S.shape}"
        )
    if layout == "auto":
        layout = "spin" if S.shape[1] == 24 else "mmpose"
    expected = {"spin": 24, "mmpose": 17}.get(layout)
    if expected is None:
        raise ValueError(f"layout must be 'auto', 'spin' or 'mmpose', got {layout!r}")
    if S.shape[1] != expected:
        raise ValueError(
            f"{path}: key 'S' has {S.shape[1]} joints, layout {layout!r} needs {expected}"
        )
    n = S.shape[0]
    pick = list(SPIN24_TO_H36M17) if layout == "spin" else list(range(17))

    joints3d = S[:, pick, :3]
    vis3d = S[:, pick, 3] > 0 if S.shape[-1] == 4 else np.ones((n, 17), dtype=bool)
    valid3d = vis3d & np.isfinite(joints3d).all(axis=-1)
    joints3d = np.where(valid3d[..., None], joints3d, 0.0)

    joints2d = None
    if "part" in data:
        part = numeric(data["part"], "part", path)
        if part.ndim != 3 or part.shape[:2] != (n, expected) or part.shape[-1] not in (2, 3):
            raise ValueError(
                f"{path}: key 'part' must have shape ({n}, {expected}, 2|3), got {part.shape}"
            )
        joints2d = part[:, pick, :2]
        ok2d = np.isfinite(joints2d).all(axis=-1)
        if part.shape[-1] == 3:
            ok2d &= part[:, pick, 2] > 0
        joints2d = np.where(ok2d[..., None], joints2d, 0.0)

    names = np.asarray(data["imgname"])
    if names.dtype.kind not in "US" or names.shape != (n,):
        raise ValueError(
            f"{path}: key 'imgname' must be ({n},) strings, got {names.dtype} {names.shape}"
        )
    names = names.astype(str)
    parsed = []
    for i, name in enumerate(names):
        try:
            parsed.append(parse_imgname(name))
        except ValueError as exc:
            raise ValueError(f"{path}: key 'imgname' entry {i}: {exc}") from exc
    if parsed:
        columns = [np.asarray(c) for c in zip(*parsed, strict=True)]
    else:
        columns = [np.zeros((0,), dtype="<U1")] * 4 + [np.zeros((0,), dtype=np.int64)]
    subject, action, sequence, camera, frame = columns

    pose = betas = None
    if "pose" in data:
        pose = numeric(data["pose"], "pose", path)
        if pose.shape != (n, 72):
            raise ValueError(f"{path}: key 'pose' must have shape ({n}, 72), got {pose.shape}")
    if "shape" in data:
        betas = numeric(data["shape"], "shape", path)
        if betas.shape != (n, 10):
            raise ValueError(f"{path}: key 'shape' must have shape ({n}, 10), got {betas.shape}")

    return H36MData(
        joints3d=joints3d,
        joints2d=joints2d,
        valid3d=valid3d,
        subject=subject,
        action=action,
        sequence=sequence,
        camera=camera,
        frame=frame.astype(np.int64),
        imgname=names,
        root_centred=layout == "spin",
        layout=layout,
        pose=pose,
        betas=betas,
    )


def protocol_subset(
    data: H36MData, protocol: Literal[1, 2], subjects: Sequence[str] = TEST_SUBJECTS
) -> H36MData:
    """Frames of a Human3.6M protocol.

    Protocol 1 (scored with MPJPE): ``subjects`` (default test subjects S9, S11), all cameras.
    Protocol 2 (scored with PA-MPJPE): the same subjects, frontal camera
    :data:`FRONTAL_CAMERA` only.
    """
    if protocol not in (1, 2):
        raise ValueError(f"protocol must be 1 or 2, got {protocol!r}")
    mask = np.isin(data.subject, list(subjects))
    if protocol == 2:
        mask &= data.camera == FRONTAL_CAMERA
    return data.select(mask)


def subsample(data: H36MData, every: int = 64, by: Literal["frame", "row"] = "frame") -> H36MData:
    """Keep every ``every``-th frame (mesh-recovery codebases evaluate every 64th test frame).

    ``by="frame"`` keeps frames whose 0-based video frame index is a multiple of ``every`` (so
    on a file already subsampled by 5 the result is every ``lcm(5, every)``-th video frame);
    ``by="row"`` keeps every ``every``-th row of the file.
    """
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    if by == "frame":
        return data.select(data.frame % every == 0)
    if by == "row":
        return data.select(np.arange(0, len(data), every))
    raise ValueError(f"by must be 'frame' or 'row', got {by!r}")


def eval_joints14(joints: np.ndarray) -> np.ndarray:
    """The 14 evaluation joints :data:`H36M_EVAL14` of ``(..., 17, D)`` H36M-17 joints."""
    joints = np.asarray(joints)
    if joints.ndim < 2 or joints.shape[-2] != 17:
        raise ValueError(f"expected (..., 17, D) H36M-17 joints, got {joints.shape}")
    return joints[..., list(H36M_EVAL14), :]
