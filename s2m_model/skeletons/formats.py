"""The registered skeleton formats, one :class:`SkeletonFormat` subclass (for its docstring) each.

Notes on ``smpl_map`` placement, measured on the SMPL template (adult, metres above the hip-joint
line): pelvis +0.09, spine1 +0.21, spine2 +0.34, spine3 +0.40, shoulders +0.55, neck +0.61,
head +0.68. Mocap/annotation joints are mapped to an SMPL joint only where both mark the same
anatomical point to within a few cm; mid-spine joints are mapped only where the proportional
height along the hip-line -> shoulder segment clearly picks one SMPL spine joint.
"""

from __future__ import annotations

from s2m_model.skeletons.base import (
    SMPL_JOINT_NAMES,
    SMPL_PARENTS,
    SkeletonFormat,
    lr_pairs,
    parents_from_names,
)

# --------------------------------------------------------------------------------------- SMPL


class Smpl24(SkeletonFormat):
    """SMPL's 24 body joints in model order (Loper et al. 2015; ``smplx`` ``SMPL_JOINT_NAMES``).

    Root ``pelvis``; the kinematic tree is SMPL's ``kintree_table``.
    """


SMPL24 = Smpl24(
    name="smpl24",
    joint_names=SMPL_JOINT_NAMES,
    parents=SMPL_PARENTS,
    left_right=lr_pairs(SMPL_JOINT_NAMES, "left", "right"),
    smpl_map={n: n for n in SMPL_JOINT_NAMES},
)

# --------------------------------------------------------------------------------- Human3.6M

H36M17_JOINT_NAMES: tuple[str, ...] = (
    "Pelvis", "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "Spine", "Thorax",
    "Nose", "Head", "L_Shoulder", "L_Elbow", "L_Wrist", "R_Shoulder", "R_Elbow", "R_Wrist",
)  # fmt: skip


class H36M17(SkeletonFormat):
    """Human3.6M 17 joints in the order of VideoPose3D (Pavllo et al. 2019) and SPIN/MotionBERT.

    These are joints ``[0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27]`` of the
    32-joint H36M mocap skeleton: ``Spine`` is H36M "Spine1" (mid torso), ``Thorax`` is H36M
    "Neck" (neck base, shoulder height), ``Nose`` is H36M "Head" (often called "Neck/Nose", in
    the face ~12 cm above the thorax), ``Head`` is the head-top End Site. Parents are
    VideoPose3D's ``h36m_skeleton`` after joint removal. Root ``Pelvis``.
    """


# The standard 3DHP <-> H36M correspondence used to evaluate H36M-trained lifters on 3DHP:
# h36m17 joint i is mpi_inf_3dhp17 joint _H36M_FROM_3DHP[i].
_H36M_FROM_3DHP = (14, 8, 9, 10, 11, 12, 13, 15, 1, 16, 0, 5, 6, 7, 2, 3, 4)

H36M17_FORMAT = H36M17(
    name="h36m17",
    joint_names=H36M17_JOINT_NAMES,
    parents=(-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15),
    left_right=lr_pairs(H36M17_JOINT_NAMES, "L_", "R_"),
    smpl_map={
        # H36M Pelvis sits on the hip-joint line, SMPL's ~9 cm above it: the usual root pairing.
        "Pelvis": "pelvis",
        "R_Hip": "right_hip", "R_Knee": "right_knee", "R_Ankle": "right_ankle",
        "L_Hip": "left_hip", "L_Knee": "left_knee", "L_Ankle": "left_ankle",
        # Spine is ~0.48 of the way hip line -> thorax: ~0.26 m on the template, 5 cm from
        # spine1 (0.21) and 8 cm from spine2 (0.34), so spine1.
        "Spine": "spine1",
        # Thorax is the neck base at shoulder height, as is SMPL "neck" (~6 cm above shoulders).
        "Thorax": "neck",
        # H36M "Neck/Nose" is inside the lower head ~12 cm above the thorax; SMPL "head" ~7 cm.
        "Nose": "head",
        "L_Shoulder": "left_shoulder", "L_Elbow": "left_elbow", "L_Wrist": "left_wrist",
        "R_Shoulder": "right_shoulder", "R_Elbow": "right_elbow", "R_Wrist": "right_wrist",
    },  # fmt: skip
    to_formats={"mpi_inf_3dhp17": tuple(_H36M_FROM_3DHP.index(i) for i in range(17))},
    roles={
        # Spine lies between SMPL spine1 and spine2 and Nose between the head joint and the
        # face: close enough for joint-error metrics, not as bone ends for IK.
        "spine1": (), "head": (),
        "thorax": ("Thorax",), "nose": ("Nose",), "head_top": ("Head",),
    },  # fmt: skip
)

# -------------------------------------------------------------------------------- COCO / MPI

COCO17_JOINT_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip

# The keypoints that are limb joints in every 2D/3D layout, named as in SMPL.
_LIMBS = (
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip


class Coco17(SkeletonFormat):
    """COCO keypoints, order of the COCO ``person`` category (Lin et al. 2014, keypoints 2017).

    COCO has no pelvis or neck; the only midline keypoint is the nose, so the tree is rooted at
    ``nose`` (eyes -> ears, and nose -> shoulders -> elbows/hips -> ...). The nose->shoulder and
    shoulder->hip edges are drawing edges, not bones. The tree is mirror-symmetric.
    """


COCO17 = Coco17(
    name="coco17",
    joint_names=COCO17_JOINT_NAMES,
    parents=(-1, 0, 0, 1, 2, 0, 0, 5, 6, 7, 8, 5, 6, 11, 12, 13, 14),
    left_right=lr_pairs(COCO17_JOINT_NAMES, "left", "right"),
    # COCO hips are annotated a little lower/wider than the joint centres: still the hip joints.
    smpl_map={n: n for n in _LIMBS},
    roles={
        "pelvis": ("left_hip", "right_hip"), "thorax": ("left_shoulder", "right_shoulder"),
        "nose": ("nose",), "left_ear": ("left_ear",), "right_ear": ("right_ear",),
    },  # fmt: skip
)

BLAZEPOSE33_JOINT_NAMES: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
    "right_heel", "left_foot_index", "right_foot_index",
)  # fmt: skip


class BlazePose33(SkeletonFormat):
    """MediaPipe Pose (BlazePose) landmarks, order of ``mediapipe`` ``PoseLandmark``.

    The tree follows ``POSE_CONNECTIONS`` with its cycles cut: rooted at ``nose`` (the only
    midline landmark), eyes -> ears, nose -> mouth corners, nose -> shoulders -> elbows/hips,
    wrist -> pinky/index/thumb, ankle -> heel/foot_index. Mirror-symmetric.
    """


BLAZEPOSE33 = BlazePose33(
    name="blazepose33",
    joint_names=BLAZEPOSE33_JOINT_NAMES,
    parents=(
        -1, 0, 1, 2, 0, 4, 5, 3, 6, 0, 0, 0, 0, 11, 12, 13, 14, 15, 16, 15, 16, 15, 16,
        11, 12, 23, 24, 25, 26, 27, 28, 27, 28,
    ),  # fmt: skip
    left_right=lr_pairs(BLAZEPOSE33_JOINT_NAMES, "left", "right"),
    # foot_index is the toe tip and pinky/index/thumb are hand points: no SMPL joint there.
    smpl_map={n: n for n in _LIMBS},
    # Every COCO keypoint is a BlazePose landmark of the same name (eyes = eye centres).
    to_formats={"coco17": tuple(BLAZEPOSE33_JOINT_NAMES.index(n) for n in COCO17_JOINT_NAMES)},
    roles={
        "pelvis": ("left_hip", "right_hip"), "thorax": ("left_shoulder", "right_shoulder"),
        "nose": ("nose",), "left_ear": ("left_ear",), "right_ear": ("right_ear",),
        "left_heel": ("left_heel",), "right_heel": ("right_heel",),
        "left_toe": ("left_foot_index",), "right_toe": ("right_foot_index",),
        # The hand direction (wrist -> knuckle midpoint) and the knuckle line turn the wrist.
        "left_hand": ("left_index", "left_pinky"), "right_hand": ("right_index", "right_pinky"),
        "left_index": ("left_index",), "right_index": ("right_index",),
        "left_pinky": ("left_pinky",), "right_pinky": ("right_pinky",),
    },  # fmt: skip
)

MPI_INF_3DHP17_JOINT_NAMES: tuple[str, ...] = (
    "head_top", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
    "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip",
    "left_knee", "left_ankle", "pelvis", "spine", "head",
)  # fmt: skip


class MpiInf3dhp17(SkeletonFormat):
    """MPI-INF-3DHP test-set joints (Mehta et al. 2017), the 'relavant' set of the official
    ``mpii_get_joint_set`` (joints 8, 6, 15, 16, 17, 10, 11, 12, 24, 25, 26, 19, 20, 21, 5, 4, 7
    of the 28-joint annotation, 1-based). Parents are its ``joint_parents_o1`` (``head_top`` and
    ``head`` both hang from ``neck``). Root ``pelvis`` (index 14).
    """


MPI_INF_3DHP17 = MpiInf3dhp17(
    name="mpi_inf_3dhp17",
    joint_names=MPI_INF_3DHP17_JOINT_NAMES,
    parents=(1, 15, 1, 2, 3, 1, 5, 6, 14, 8, 9, 14, 11, 12, -1, 14, 1),
    left_right=lr_pairs(MPI_INF_3DHP17_JOINT_NAMES, "left", "right"),
    smpl_map={
        **{n: n for n in _LIMBS},
        "pelvis": "pelvis",
        # 3DHP "spine" is the first vertebral joint above the pelvis, like SMPL spine1.
        "spine": "spine1",
        "neck": "neck",
        "head": "head",
    },
    to_formats={"h36m17": _H36M_FROM_3DHP},
    roles={
        # 3DHP "spine" sits near SMPL spine1 but not as a bone end for IK.
        "spine1": (),
        "thorax": ("neck",), "head_top": ("head_top",),
    },  # fmt: skip
)

# ------------------------------------------------------------------------------------- mocap

BANDAI_BVH_PARENTS: dict[str, str | None] = {
    "joint_Root": None, "Hips": "joint_Root", "Spine": "Hips", "Chest": "Spine",
    "Neck": "Chest", "Head": "Neck",
    "Shoulder_L": "Chest", "UpperArm_L": "Shoulder_L", "LowerArm_L": "UpperArm_L",
    "Hand_L": "LowerArm_L",
    "Shoulder_R": "Chest", "UpperArm_R": "Shoulder_R", "LowerArm_R": "UpperArm_R",
    "Hand_R": "LowerArm_R",
    "UpperLeg_L": "Hips", "LowerLeg_L": "UpperLeg_L", "Foot_L": "LowerLeg_L",
    "Toes_L": "Foot_L",
    "UpperLeg_R": "Hips", "LowerLeg_R": "UpperLeg_R", "Foot_R": "LowerLeg_R",
    "Toes_R": "Foot_R",
}  # fmt: skip
"""The 22 BVH joints of the Bandai-Namco Research Motion datasets 1 and 2, in file order."""

BANDAI27_JOINT_NAMES: tuple[str, ...] = (*BANDAI_BVH_PARENTS, "head_top")
_BANDAI_PARENT_NAMES = {**BANDAI_BVH_PARENTS, "head_top": "Head"}


class Bandai27(SkeletonFormat):
    """Bandai-Namco Research Motion datasets 1 & 2 (Kobayashi et al. 2023), BVH joint order.

    The name counts the dataset's 27 BVH nodes (22 joints + 5 End Sites). All End Sites have a
    zero offset, so they are dropped, and a synthetic ``head_top`` is appended (23 joints): the
    BVH loader extends the head bone (the Neck->Head direction, in the Head's own frame) by a
    fixed length, see :data:`s2m_model.data.bvh.BANDAI_HEAD_TOP_M`. ``joint_Root`` is the
    floor projection the motion is expressed in; ``Hips`` is the pelvis. Names and parents
    were read from the dataset files (``test_skeletons.py`` re-checks them when data exist).
    """


BANDAI27 = Bandai27(
    name="bandai27",
    joint_names=BANDAI27_JOINT_NAMES,
    parents=parents_from_names(BANDAI27_JOINT_NAMES, _BANDAI_PARENT_NAMES),
    left_right=lr_pairs(BANDAI27_JOINT_NAMES, "_L", "_R"),
    smpl_map={
        # Hips is ~2 cm above the hip-joint line, SMPL pelvis ~9 cm: the usual root pairing.
        "Hips": "pelvis",
        # Spine at 0.45 and Chest at 0.68 of hip line -> shoulders; the collar bones branch
        # from Chest as SMPL's collars branch from spine3.
        "Spine": "spine1", "Chest": "spine3",
        "Neck": "neck", "Head": "head",
        "Shoulder_L": "left_collar", "UpperArm_L": "left_shoulder",
        "LowerArm_L": "left_elbow", "Hand_L": "left_wrist",
        "Shoulder_R": "right_collar", "UpperArm_R": "right_shoulder",
        "LowerArm_R": "right_elbow", "Hand_R": "right_wrist",
        "UpperLeg_L": "left_hip", "LowerLeg_L": "left_knee", "Foot_L": "left_ankle",
        "Toes_L": "left_foot",
        "UpperLeg_R": "right_hip", "LowerLeg_R": "right_knee", "Foot_R": "right_ankle",
        "Toes_R": "right_foot",
    },  # fmt: skip
    to_formats={
        "h36m17": tuple(
            BANDAI27_JOINT_NAMES.index(n)
            for n in (
                "Hips", "UpperLeg_R", "LowerLeg_R", "Foot_R", "UpperLeg_L", "LowerLeg_L",
                "Foot_L", "Spine", "Neck", "Head", "head_top", "UpperArm_L", "LowerArm_L",
                "Hand_L", "UpperArm_R", "LowerArm_R", "Hand_R",
            )  # fmt: skip
        ),
    },
    # The synthetic head-top point orients the head with the Head joint.
    roles={"head_top": ("head_top",)},
)

CMU_BVH_PARENTS: dict[str, str | None] = {
    "Hips": None,
    "LHipJoint": "Hips", "LeftHip": "LHipJoint", "LeftKnee": "LeftHip",
    "LeftAnkle": "LeftKnee", "LeftToe": "LeftAnkle",
    "RHipJoint": "Hips", "RightHip": "RHipJoint", "RightKnee": "RightHip",
    "RightAnkle": "RightKnee", "RightToe": "RightAnkle",
    "lowerback": "Hips", "Chest": "lowerback", "Chest2": "Chest", "lowerneck": "Chest2",
    "Neck": "lowerneck", "Head": "Neck",
    "LeftCollar": "Chest2", "LeftShoulder": "LeftCollar", "LeftElbow": "LeftShoulder",
    "LeftWrist": "LeftElbow", "lhand": "LeftWrist", "LFingers": "lhand", "LThumb": "LeftWrist",
    "RightCollar": "Chest2", "RightShoulder": "RightCollar", "RightElbow": "RightShoulder",
    "RightWrist": "RightElbow", "rhand": "RightWrist", "RFingers": "rhand",
    "RThumb": "RightWrist",
}  # fmt: skip
"""The 31 BVH joints of the CMU mocap cgspeed conversion (as shipped by bvh11), in file order."""

CMU31_JOINT_NAMES: tuple[str, ...] = (*CMU_BVH_PARENTS, "head_top")
_CMU_PARENT_NAMES = {**CMU_BVH_PARENTS, "head_top": "Head"}


class Cmu31(SkeletonFormat):
    """CMU Graphics Lab mocap in the cgspeed BVH conversion, BVH joint order (31 joints).

    A ``head_top`` joint is appended (32 joints): the Head's End Site, which sits at the top of
    the head. Zero-offset helper joints (``LHipJoint``, ``lowerback``, ``lowerneck``, collars,
    ``lhand``, thumbs) are kept as in the file. ``Hips`` is ~9 cm above the hip-joint line,
    like SMPL's pelvis. Names and parents were read from ``131_0*.bvh`` (re-checked in tests).
    """


_CMU_LR = lr_pairs(CMU31_JOINT_NAMES, "Left", "Right") + tuple(
    (CMU31_JOINT_NAMES.index(a), CMU31_JOINT_NAMES.index(b))
    for a, b in (("LHipJoint", "RHipJoint"), ("lhand", "rhand"), ("LFingers", "RFingers"),
                 ("LThumb", "RThumb"))
)  # fmt: skip

CMU31 = Cmu31(
    name="cmu31",
    joint_names=CMU31_JOINT_NAMES,
    parents=parents_from_names(CMU31_JOINT_NAMES, _CMU_PARENT_NAMES),
    left_right=_CMU_LR,
    smpl_map={
        "Hips": "pelvis",
        # Chest (0.50 of hip line -> shoulders) is equally far from spine1 and spine2: unmapped.
        # Chest2 is where the collars branch, as at SMPL spine3.
        "Chest2": "spine3",
        "Neck": "neck", "Head": "head",
        "LeftHip": "left_hip", "LeftKnee": "left_knee", "LeftAnkle": "left_ankle",
        "LeftToe": "left_foot",
        "RightHip": "right_hip", "RightKnee": "right_knee", "RightAnkle": "right_ankle",
        "RightToe": "right_foot",
        "LeftShoulder": "left_shoulder", "LeftElbow": "left_elbow", "LeftWrist": "left_wrist",
        "RightShoulder": "right_shoulder", "RightElbow": "right_elbow",
        "RightWrist": "right_wrist",
    },  # fmt: skip
    to_formats={
        "h36m17": tuple(
            CMU31_JOINT_NAMES.index(n)
            for n in (
                "Hips", "RightHip", "RightKnee", "RightAnkle", "LeftHip", "LeftKnee",
                "LeftAnkle", "Chest", "Neck", "Head", "head_top", "LeftShoulder", "LeftElbow",
                "LeftWrist", "RightShoulder", "RightElbow", "RightWrist",
            )  # fmt: skip
        ),
    },
    # The synthetic head-top point orients the head with the Head joint.
    roles={"head_top": ("head_top",)},
)

ALL_FORMATS: tuple[SkeletonFormat, ...] = (
    SMPL24, H36M17_FORMAT, COCO17, BLAZEPOSE33, MPI_INF_3DHP17, BANDAI27, CMU31,
)  # fmt: skip
