"""Skeleton format registry: trees, mirror pairs, SMPL links, index maps, input checks."""

from __future__ import annotations

import lzma
import tarfile

import numpy as np
import pytest
import torch

from s2m_model.skeletons import (
    SMPL_JOINT_NAMES,
    SMPL_PARENTS,
    SkeletonFormat,
    get_format,
    list_formats,
)

# Side tags as each format spells them (left tag, right tag).
SIDE_TAGS = {
    "smpl24": [("left", "right")],
    "h36m17": [("L_", "R_")],
    "coco17": [("left", "right")],
    "blazepose33": [("left", "right")],
    "mpi_inf_3dhp17": [("left", "right")],
    "bandai27": [("_L", "_R")],
    "cmu31": [("Left", "Right"), ("LHip", "RHip"), ("lhand", "rhand"), ("LF", "RF"), ("LT", "RT")],
}
ALL = sorted(SIDE_TAGS)


def _side(name: str, fmt: str) -> str | None:
    # Bandai tags are suffixes ("joint_Root" is not a right joint).
    has = str.endswith if fmt == "bandai27" else str.__contains__
    for left, right in SIDE_TAGS[fmt]:
        if has(name, left):
            return "L"
        if has(name, right):
            return "R"
    return None


def _smpl_side(name: str) -> str | None:
    return "L" if name.startswith("left") else "R" if name.startswith("right") else None


def test_registry_lists_every_format():
    assert set(list_formats()) == set(ALL)
    with pytest.raises(ValueError, match="unknown skeleton format 'nope'.*h36m17"):
        get_format("nope")


@pytest.mark.parametrize("name", ALL)
def test_parents_form_a_single_rooted_tree(name):
    f = get_format(name)
    n = f.num_joints
    assert len(f.joint_names) == len(set(f.joint_names)) == len(f.parents) == n
    assert [i for i, p in enumerate(f.parents) if p == -1] == [f.root]
    depth = {}
    for j in range(n):  # walk up; a cycle would exceed n steps
        k, steps = j, 0
        while f.parents[k] != -1:
            assert f.parents[k] != k and 0 <= f.parents[k] < n
            k, steps = f.parents[k], steps + 1
            assert steps <= n, f"cycle through {f.joint_names[j]}"
        depth[j] = steps
    assert len(f.bones) == n - 1
    assert all(f.parents[c] == p for p, c in f.bones)
    assert max(depth.values()) >= 3  # really a tree, not a star


@pytest.mark.parametrize("name", ALL)
def test_left_right_pairs_match_names_and_cover_all_sided_joints(name):
    f = get_format(name)
    paired = set()
    for a, b in f.left_right:
        na, nb = f.joint_names[a], f.joint_names[b]
        assert _side(na, name) == "L" and _side(nb, name) == "R", (na, nb)
        left, right = next(t for t in SIDE_TAGS[name] if t[0] in na)
        assert na[::-1].replace(left[::-1], right[::-1], 1)[::-1] == nb  # swap the last tag
        paired |= {a, b}
    sided = {i for i, n in enumerate(f.joint_names) if _side(n, name) is not None}
    assert sided == paired
    assert len(f.left_right) > 0


@pytest.mark.parametrize("name", ALL)
def test_flip_perm_is_an_involution_that_swaps_sides(name):
    f = get_format(name)
    perm = np.array(f.flip_perm)
    assert sorted(perm.tolist()) == list(range(f.num_joints))
    np.testing.assert_array_equal(perm[perm], np.arange(f.num_joints))
    for i, j in enumerate(perm):
        si, sj = _side(f.joint_names[i], name), _side(f.joint_names[j], name)
        assert (si is None and i == j) or {si, sj} == {"L", "R"}
    # Mirrored bones are bones, except where a tree is rooted on one side (none here).
    bones = set(f.bones)
    assert {(perm[p], perm[c]) for p, c in bones} == bones


@pytest.mark.parametrize("name", ALL)
def test_smpl_map_names_exist_and_keep_sides(name):
    f = get_format(name)
    assert f.smpl_map, "every format has some SMPL joints"
    targets = list(f.smpl_map.values())
    assert len(set(targets)) == len(targets), "two joints mapped to one SMPL joint"
    for src, dst in f.smpl_map.items():
        assert src in f.joint_names and dst in SMPL_JOINT_NAMES
        assert _side(src, name) == _smpl_side(dst), (src, dst)
    # Limb joints are in every format; nothing maps to the SMPL hands of a 2D keypoint set.
    assert {"left_knee", "right_elbow", "left_shoulder"} <= set(targets)


def test_smpl_constants_and_key_correspondences():
    assert len(SMPL_JOINT_NAMES) == len(SMPL_PARENTS) == 24
    assert SMPL_PARENTS[SMPL_JOINT_NAMES.index("left_wrist")] == SMPL_JOINT_NAMES.index(
        "left_elbow"
    )
    h36m = get_format("h36m17").smpl_map
    assert h36m["R_Hip"] == "right_hip" and h36m["Thorax"] == "neck"
    assert "Head" not in h36m  # the head top is no SMPL joint
    coco = get_format("coco17").smpl_map
    assert "nose" not in coco and coco["left_shoulder"] == "left_shoulder"
    assert "head_top" not in get_format("bandai27").smpl_map


@pytest.mark.parametrize("name", ALL)
def test_roles_name_own_joints_and_give_dik_what_it_needs(name):
    from s2m_model.dik import format_roles

    f = get_format(name)
    for role, joints in f.roles.items():
        assert isinstance(joints, tuple) and set(joints) <= set(f.joint_names), role
    roles = format_roles(f)
    needed = {"pelvis", "thorax", "left_hip", "right_knee", "left_shoulder", "right_elbow"}
    assert needed <= set(roles), needed - set(roles)
    assert all(0 <= i < f.num_joints for idx in roles.values() for i in idx)


def test_roles_override_and_remove_smpl_map_entries():
    from s2m_model.dik import format_roles

    h36m = get_format("h36m17")
    roles = format_roles(h36m)
    # H36M Spine/Nose are mapped to SMPL spine1/head for metrics, not used as IK bone ends.
    assert "spine1" not in roles and "head" not in roles
    assert roles["thorax"] == roles["neck"] == (h36m.index("Thorax"),)
    assert roles["head_top"] == (h36m.index("Head"),) and roles["pelvis"] == (0,)
    # A new format is defined in one place: its roles are data on the format.
    tiny = SkeletonFormat(
        "tiny", ("a", "b", "c"), (-1, 0, 0), smpl_map={"a": "pelvis", "b": "neck"},
        roles={"pelvis": ("a", "c"), "nose": ("c",)},
    )  # fmt: skip
    assert format_roles(tiny) == {"neck": (1,), "pelvis": (0, 2), "nose": (2,), "thorax": (1,)}
    assert format_roles(get_format("coco17"))["pelvis"] == (11, 12)


def test_index_and_helpers():
    f = get_format("h36m17")
    assert f.index("Thorax") == 8 and f.joint_names[f.index("R_Wrist")] == "R_Wrist"
    with pytest.raises(ValueError, match="no joint 'Neck'.*Thorax"):
        f.index("Neck")
    assert f.flip_perm[f.index("L_Knee")] == f.index("R_Knee")


def test_h36m_and_3dhp_index_maps_are_inverse():
    h36m, hp = get_format("h36m17"), get_format("mpi_inf_3dhp17")
    x = np.random.default_rng(0).normal(size=(2, 17, 3))
    np.testing.assert_array_equal(h36m.convert(hp.convert(x, "h36m17"), "mpi_inf_3dhp17"), x)
    src = [hp.joint_names[i] for i in hp.indices_to("h36m17")]
    pairs = dict(zip(h36m.joint_names, src, strict=True))
    assert pairs["Head"] == "head_top" and pairs["Thorax"] == "neck"
    assert pairs["R_Hip"] == "right_hip" and pairs["Nose"] == "head"


def test_blazepose_to_coco_picks_same_named_landmarks():
    bp, coco = get_format("blazepose33"), get_format("coco17")
    idx = bp.indices_to("coco17")
    assert [bp.joint_names[i] for i in idx] == list(coco.joint_names)
    assert idx[:3] == (0, 2, 5)  # nose and the eye centres, not the inner/outer eye corners


@pytest.mark.parametrize("name", ["bandai27", "cmu31"])
def test_mocap_to_h36m_keeps_sides(name):
    f, h36m = get_format(name), get_format("h36m17")
    idx = f.indices_to("h36m17")
    assert len(idx) == 17 and None not in idx and len(set(idx)) == 17
    for tgt, src in zip(h36m.joint_names, idx, strict=True):
        tside = "L" if tgt.startswith("L_") else "R" if tgt.startswith("R_") else None
        assert _side(f.joint_names[src], name) == tside, (tgt, f.joint_names[src])
    assert f.joint_names[idx[h36m.index("Head")]] == "head_top"
    # Torch tensors go through the same indexing.
    t = torch.zeros(3, f.num_joints, 3, dtype=torch.float32)
    assert f.convert(t, "h36m17").shape == (3, 17, 3)


def test_convert_refuses_missing_targets_and_unknown_maps():
    f = SkeletonFormat("tiny", ("a", "b"), (-1, 0), to_formats={"other": (0, None)})
    with pytest.raises(ValueError, match="no source joint"):
        f.convert(np.zeros((2, 3)), "other")
    with pytest.raises(ValueError, match="no index map to 'coco17'"):
        get_format("h36m17").convert(np.zeros((17, 3)), "coco17")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"parents": (-1, -1, 1)}, "exactly one root"),
        ({"parents": (-1, 2, 1)}, "cycle"),
        ({"parents": (-1, 1, 1)}, "bad parent"),
        ({"parents": (-1, 0)}, "2 parents for 3 joints"),
        ({"left_right": ((1, 1),)}, "bad left/right pair"),
        ({"smpl_map": {"a": "nose"}}, "smpl_map entry"),
        ({"joint_names": ("a", "a", "c")}, "duplicate"),
        ({"roles": {"pelvis": ("a", "x")}}, "role 'pelvis' must be a tuple of joint names"),
        ({"roles": {"pelvis": "a"}}, "role 'pelvis' must be a tuple"),
    ],
)
def test_bad_definitions_fail_at_construction(kwargs, match):
    base = {"name": "t", "joint_names": ("a", "b", "c"), "parents": (-1, 0, 1)}
    with pytest.raises(ValueError, match=match):
        SkeletonFormat(**{**base, **kwargs})


def test_validate_joints_accepts_numpy_and_torch():
    f = get_format("coco17")
    x = np.zeros((17, 3))
    assert f.validate_joints(x) is x
    f.validate_joints(np.zeros((4, 17, 3), dtype=np.float32))
    f.validate_joints(torch.zeros(2, 17, 3, dtype=torch.float64))


@pytest.mark.parametrize(
    "joints, match",
    [
        (np.zeros((16, 3)), r"shape \(17, 3\) or \(B, 17, 3\), got \(16, 3\)"),
        (np.zeros((17, 2)), "got \\(17, 2\\)"),
        (np.zeros((1, 2, 17, 3)), "got \\(1, 2, 17, 3\\)"),
        (np.zeros((17, 3), dtype=np.int64), "floating point"),
        (torch.zeros(17, 3, dtype=torch.int32), "floating point"),
        ([[0.0, 0.0, 0.0]] * 17, "numpy array or torch tensor"),
        (np.full((17, 3), np.nan), "NaN"),
        (torch.full((2, 17, 3), float("inf")), "NaN or inf"),
    ],
)
def test_validate_joints_rejects_bad_input(joints, match):
    with pytest.raises(ValueError, match=match):
        get_format("coco17").validate_joints(joints)


# ----------------------------------------------------------------- real BVH hierarchies


def _bvh_hierarchy(text: str) -> tuple[list[str], list[int]]:
    """Joint names and parents straight from the HIERARCHY text (independent of the loader)."""
    names, parents, stack, pending = [], [], [], None
    for line in text.splitlines():
        tok = line.split()
        if not tok:
            continue
        if tok[0] == "MOTION":
            break
        if tok[0] in ("ROOT", "JOINT"):
            names.append(tok[1])
            parents.append(next((s for s in reversed(stack) if s is not None), -1))
            pending = len(names) - 1
        elif tok[0] == "End":
            pending = None
        elif tok[0] == "{":
            stack.append(pending)
        elif tok[0] == "}":
            stack.pop()
    return names, parents


def _check_against(fmt_name: str, text: str) -> None:
    names, parents = _bvh_hierarchy(text)
    f = get_format(fmt_name)
    assert f.joint_names[-1] == "head_top" and f.parents[-1] == f.index("Head")
    assert list(f.joint_names[:-1]) == names
    assert list(f.parents[:-1]) == parents


@pytest.mark.parametrize("stem", ["131_01", "131_02", "131_03", "scaled_131_01"])
def test_cmu31_matches_the_real_files(shared_data, stem):
    text = lzma.open(shared_data / "cmu-mocap" / f"{stem}.bvh.xz", "rt").read()
    _check_against("cmu31", text)
    assert len(_bvh_hierarchy(text)[0]) == 31


@pytest.mark.parametrize("archive", ["dataset-1.tar.xz", "dataset-2.tar.xz"])
def test_bandai27_matches_the_real_files(shared_data, archive):
    with tarfile.open(shared_data / "bandai-motion" / archive, mode="r|xz") as tar:
        for member in tar:  # the first clip is near the start of both archives
            if member.name.endswith(".bvh"):
                text = tar.extractfile(member).read().decode()
                break
    _check_against("bandai27", text)
    assert len(_bvh_hierarchy(text)[0]) == 22
    assert text.count("End Site") == 5  # 22 joints + 5 End Sites = the "27 nodes"
