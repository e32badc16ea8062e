"""Fixed vertex -> joint regressors for the image/dataset skeleton formats.

Each joint of a format is a linear combination of rows that are themselves vertex weights:
SMPL joints (rows of ``J_regressor``) and named surface landmarks (``BodyModel.landmark``).
So every regressor is a (J,V) matrix whose rows sum to 1 (translation-equivariant). These are
good initial regressors; the adaptive joint regressor (paper Sec. 3.4) learns from them.
"""

from __future__ import annotations

import numpy as np
import torch

from s2m_model.smpl_layout import JOINT_INDEX

# A recipe maps a joint to {source: weight}; sources are 'j:<smpl joint>' or 'l:<landmark>'.
Recipe = dict[str, float]


def _sides(template: dict[str, Recipe]) -> dict[str, Recipe]:
    """Expand '{s}' in names/sources into left and right entries (order: left, right)."""
    out: dict[str, Recipe] = {}
    for name, recipe in template.items():
        if "{s}" not in name:
            out[name] = recipe
            continue
        for side in ("left", "right"):
            out[name.format(s=side)] = {k.format(s=side): w for k, w in recipe.items()}
    return out


_COCO = {
    "nose": {"l:nose": 1.0},
    **_sides({
        "{s}_eye": {"l:{s}_eye": 1.0}, "{s}_ear": {"l:{s}_ear": 1.0},
        "{s}_shoulder": {"l:{s}_shoulder": 1.0}, "{s}_elbow": {"l:{s}_elbow": 1.0},
        "{s}_wrist": {"l:{s}_wrist": 1.0}, "{s}_hip": {"l:{s}_hip": 1.0},
        "{s}_knee": {"l:{s}_knee": 1.0}, "{s}_ankle": {"l:{s}_ankle": 1.0},
    }),
}  # fmt: skip

RECIPES: dict[str, dict[str, Recipe]] = {
    # Human3.6M: hips/knees/ankles/arms at the SMPL joints; pelvis between the hips; thorax at
    # the neck base; "Spine" halfway pelvis->thorax; "Nose"(neck/nose) between head joint and
    # nose; head top from the skull top (as in SPIN's H36M regressor layout).
    "h36m17": {
        "pelvis": {"j:left_hip": 0.5, "j:right_hip": 0.5},
        "right_hip": {"j:right_hip": 1.0},
        "right_knee": {"j:right_knee": 1.0},
        "right_ankle": {"j:right_ankle": 1.0},
        "left_hip": {"j:left_hip": 1.0},
        "left_knee": {"j:left_knee": 1.0},
        "left_ankle": {"j:left_ankle": 1.0},
        "spine": {"j:left_hip": 0.25, "j:right_hip": 0.25, "j:neck": 0.5},
        "thorax": {"j:neck": 1.0},
        "neck_nose": {"j:head": 0.5, "l:nose": 0.5},
        "head_top": {"l:head_top": 1.0},
        "left_shoulder": {"j:left_shoulder": 1.0},
        "left_elbow": {"j:left_elbow": 1.0},
        "left_wrist": {"j:left_wrist": 1.0},
        "right_shoulder": {"j:right_shoulder": 1.0},
        "right_elbow": {"j:right_elbow": 1.0},
        "right_wrist": {"j:right_wrist": 1.0},
    },
    "coco17": _COCO,
    "blazepose33": {
        "nose": {"l:nose": 1.0},
        **_sides(
            {
                "{s}_eye_inner": {"l:{s}_eye_inner": 1.0},
                "{s}_eye": {"l:{s}_eye": 1.0},
                "{s}_eye_outer": {"l:{s}_eye_outer": 1.0},
                "{s}_ear": {"l:{s}_ear": 1.0},
                "mouth_{s}": {"l:mouth_{s}": 1.0},
                "{s}_shoulder": {"l:{s}_shoulder": 1.0},
                "{s}_elbow": {"l:{s}_elbow": 1.0},
                "{s}_wrist": {"l:{s}_wrist": 1.0},
                "{s}_pinky": {"l:{s}_pinky_knuckle": 1.0},
                "{s}_index": {"l:{s}_index_knuckle": 1.0},
                "{s}_thumb": {"l:{s}_thumb_knuckle": 1.0},
                "{s}_hip": {"l:{s}_hip": 1.0},
                "{s}_knee": {"l:{s}_knee": 1.0},
                "{s}_ankle": {"l:{s}_ankle": 1.0},
                "{s}_heel": {"l:{s}_heel": 1.0},
                "{s}_foot_index": {"l:{s}_big_toe": 1.0},
            }
        ),
    },  # fmt: skip
    # MPI-INF-3DHP test joints: like H36M, with "head" at the SMPL head joint and "spine" at
    # SMPL's spine2 level.
    "mpi_inf_3dhp17": {
        "head_top": {"l:head_top": 1.0},
        "neck": {"j:neck": 1.0},
        **_sides(
            {
                "{s}_shoulder": {"j:{s}_shoulder": 1.0},
                "{s}_elbow": {"j:{s}_elbow": 1.0},
                "{s}_wrist": {"j:{s}_wrist": 1.0},
                "{s}_hip": {"j:{s}_hip": 1.0},
                "{s}_knee": {"j:{s}_knee": 1.0},
                "{s}_ankle": {"j:{s}_ankle": 1.0},
            }
        ),
        "pelvis": {"j:left_hip": 0.5, "j:right_hip": 0.5},
        "spine": {"j:spine2": 1.0},
        "head": {"j:head": 1.0},
    },  # fmt: skip
}


def _normalise(name: str) -> str:
    return name.lower().replace(" ", "_").replace("-", "_")


# Aliases between registry spellings and recipe keys (registry names are the source of truth).
_ALIASES = {"r_": "right_", "l_": "left_"}


def _recipe_for(fmt_name: str, joint: str, recipes: dict[str, Recipe]) -> Recipe:
    key = _normalise(joint)
    for short, full in _ALIASES.items():
        if key.startswith(short):
            key = full + key[len(short) :]
    if key in recipes:
        return recipes[key]
    alt = {
        "head": "head_top",
        "nose": "neck_nose",
        "neck": "thorax",
        "hip": "pelvis",
        "torso": "spine",
        "neck_nose": "neck_nose",
    }.get(key)
    if fmt_name == "h36m17" and alt in recipes:
        return recipes[alt]
    raise ValueError(f"no regressor recipe for joint '{joint}' of format '{fmt_name}'")


def joint_names_for(fmt_name: str) -> list[str]:
    """Joint names of a format, in the registry's order when the registry knows it."""
    try:
        from s2m_model.skeletons import get_format

        return list(get_format(fmt_name).joint_names)
    except (ImportError, KeyError, ValueError):
        if fmt_name in RECIPES:
            return list(RECIPES[fmt_name])
        raise


def build_regressor(body, fmt_name: str) -> torch.Tensor:
    """(J,V) regressor for ``fmt_name`` on ``body`` ('smpl24' returns ``J_regressor``)."""
    if fmt_name == "smpl24":
        return body.J_regressor.clone()
    if fmt_name not in RECIPES:
        raise ValueError(
            f"no vertex regressor for format '{fmt_name}' (known: smpl24, {', '.join(RECIPES)}); "
            "mocap formats have no surface definition"
        )
    names = joint_names_for(fmt_name)
    smpl_names = list(body.joint_names)
    rows = []
    for joint in names:
        row = torch.zeros(body.num_vertices, dtype=body.dtype, device=body.device)
        for source, weight in _recipe_for(fmt_name, joint, RECIPES[fmt_name]).items():
            kind, label = source.split(":", 1)
            if kind == "j":
                row = row + weight * body.J_regressor[smpl_names.index(label)]
            else:
                row = row + weight * body.landmark(label)
        rows.append(row)
    return torch.stack(rows)


# SMPL (6890-vertex) topology: landmark vertex ids (smplx's list, head top from SPIN's H36M
# regressor region), so the same recipes work on real SMPL files.
SMPL_TOPOLOGY_VERTICES: dict[str, int | tuple[int, ...]] = {
    "nose": 332, "right_eye": 6260, "left_eye": 2800, "right_ear": 4071, "left_ear": 583,
    "head_top": 411, "left_big_toe": 3216, "left_small_toe": 3226, "left_heel": 3387,
    "right_big_toe": 6617, "right_small_toe": 6624, "right_heel": 6787,
    "left_thumb_knuckle": 2746, "left_index_knuckle": 2319, "left_pinky_knuckle": 2673,
    "right_thumb_knuckle": 6191, "right_index_knuckle": 5782, "right_pinky_knuckle": 6133,
    "left_eye_inner": 2800, "left_eye_outer": 2800, "right_eye_inner": 6260,
    "right_eye_outer": 6260, "mouth_left": 2800, "mouth_right": 6260,
}  # fmt: skip


def smpl_topology_landmarks(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Landmark rows for a real SMPL model (6890 vertices); COCO body joints from SMPL joints."""
    nv = arrays["v_template"].shape[0]
    out: dict[str, np.ndarray] = {}
    for name, vid in SMPL_TOPOLOGY_VERTICES.items():
        row = np.zeros(nv)
        row[np.atleast_1d(vid)] = 1.0 / len(np.atleast_1d(vid))
        out[name] = row
    mouth = 0.5 * (out["nose"] + out["nose"])
    out["mouth_left"] = out["mouth_right"] = mouth
    jreg = np.asarray(arrays["J_regressor"], dtype=np.float64)
    for side in ("left", "right"):
        for part in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle"):
            out[f"{side}_{part}"] = jreg[JOINT_INDEX[f"{side}_{part}"]]
    return out
