"""Per-joint confidences through the pipeline: detector keypoints -> front-end skeleton -> SMPL.

DIK treats joints below ``min_keypoint_confidence`` as missing, so every front end hands it one
confidence per joint of its output format; results carry one per SMPL joint.
"""

from __future__ import annotations

import numpy as np

from s2m_model.smpl_layout import JOINT_INDEX, NUM_JOINTS

__all__ = [
    "COCO17_TO_H36M17_CONFIDENCE",
    "h36m_confidence",
    "smpl_confidence",
]

#: For each h36m17 joint, the COCO-17 keypoints whose confidence it gets (the minimum: a derived
#: joint is only as sure as its least sure source; the head top takes the best face point).
COCO17_TO_H36M17_CONFIDENCE: tuple[tuple[int, ...], ...] = (
    (11, 12), (12,), (14,), (16,), (11,), (13,), (15,), (5, 6, 11, 12), (5, 6), (0,),
    (0, 1, 2, 3, 4), (5,), (7,), (9,), (6,), (8,), (10,),
)  # fmt: skip
_HEAD_TOP = 10  # h36m17 'Head' (the head top)
# (17, 5) source indices, padded by repeating the first (min/max unchanged): one gather.
_CONF_SOURCES = np.array([(src * 5)[:5] for src in COCO17_TO_H36M17_CONFIDENCE])


def h36m_confidence(coco_conf: np.ndarray) -> np.ndarray:
    """(P,17) h36m17 confidences from (P,17) COCO-17 keypoint confidences (float32)."""
    gathered = coco_conf[:, _CONF_SOURCES]  # (P,17,5)
    out = gathered.min(-1).astype(np.float32)
    out[:, _HEAD_TOP] = gathered[:, _HEAD_TOP].max(-1)
    return out


def smpl_confidence(fmt, conf: np.ndarray, solved: np.ndarray) -> np.ndarray:
    """(24,) confidence per SMPL joint for one person.

    Args:
        fmt: the :class:`~s2m_model.skeletons.SkeletonFormat` DIK solved from.
        conf: (J,) confidences of that format's joints.
        solved: (24,) bool, DIK's solved rotations.

    Returns:
        The confidence of the input joint mapped to each SMPL joint; joints solved without a
        direct input (spine, collars, ...) get the mean input confidence; the others 0.
    """
    out = np.zeros(NUM_JOINTS, dtype=np.float32)
    mapped = np.zeros(NUM_JOINTS, dtype=bool)
    for joint, smpl in fmt.smpl_map.items():
        j = JOINT_INDEX[smpl]
        out[j] = conf[fmt.index(joint)]
        mapped[j] = True
    fill = float(conf.mean()) if conf.size else 0.0
    out[~mapped & solved] = fill
    return np.clip(out, 0.0, 1.0)
