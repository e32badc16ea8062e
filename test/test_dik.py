"""DIK: round trips, hinge prior, degenerate and bad input, gradients, ONNX parity."""

from __future__ import annotations

import numpy as np
import pytest
import roma
import torch

from s2m_model import dik
from s2m_model.body import SMPL_JOINT_NAMES
from s2m_model.skeletons import get_format
from s2m_model.smpl_layout import NUM_BETAS, NUM_BODY_JOINTS, world_from_local

J = {n: i for i, n in enumerate(SMPL_JOINT_NAMES)}
LIMBS = ("left_hip", "right_hip", "left_shoulder", "right_shoulder")
HINGES = {"left_knee": (1.0, 0, 0), "right_knee": (1.0, 0, 0),
          "left_elbow": (0, -1.0, 0), "right_elbow": (0, 1.0, 0)}  # fmt: skip


def plausible_pose(batch: int, seed: int = 0, body=None, betas=None) -> torch.Tensor:
    """(B,23,3) poses inside joint limits: free shoulders/hips, hinge-only elbows/knees with
    positive flexion, moderate spine/neck/collars/wrists/ankles."""
    g = torch.Generator().manual_seed(seed)

    def rand_rotvec(max_angle: float) -> torch.Tensor:
        axis = torch.nn.functional.normalize(
            torch.randn(batch, 3, generator=g, dtype=torch.float64), dim=-1
        )
        return axis * torch.rand(batch, 1, generator=g, dtype=torch.float64) * max_angle

    pose = torch.zeros(batch, NUM_BODY_JOINTS, 3, dtype=torch.float64)
    for name in SMPL_JOINT_NAMES[1:]:
        j = J[name] - 1
        if name in HINGES:
            flex = 0.15 + torch.rand(batch, 1, generator=g, dtype=torch.float64) * 1.8
            axis = (
                dik.hinge_axis(body, name, betas)
                if body is not None
                else torch.tensor(HINGES[name])
            )
            pose[:, j] = axis.to(torch.float64) * flex
        elif name in LIMBS:
            pose[:, j] = rand_rotvec(1.0)
        elif name.startswith("spine") or name in ("neck", "head"):
            pose[:, j] = rand_rotvec(0.25)
        else:
            pose[:, j] = rand_rotvec(0.3)
    return pose


def _random_bodies(body, batch=24, seed=0):
    g = torch.Generator().manual_seed(seed + 100)
    betas = torch.randn(batch, NUM_BETAS, generator=g, dtype=torch.float64) * 0.7
    go = torch.randn(batch, 3, generator=g, dtype=torch.float64) * 1.0
    transl = torch.randn(batch, 3, generator=g, dtype=torch.float64)
    pose = plausible_pose(batch, seed, body, betas)
    return body(betas=betas, global_orient=go, body_pose=pose, transl=transl)


def _refit(body, r, betas):
    return body(betas=betas, global_orient=r.global_orient, body_pose=r.body_pose, transl=r.transl)


def test_smpl24_round_trip_below_1mm(body):
    out = _random_bodies(body)
    r = dik.solve(out.joints, "smpl24", body, betas=out.betas)
    err = (_refit(body, r, out.betas).joints - out.joints).norm(dim=-1)
    assert float(err.max()) < 1e-3, float(err.max())
    assert not r.solved[:, J["left_hand"]].any() and r.solved[:, J["left_elbow"]].all()


def test_h36m_round_trip_below_5mm_and_rotations_match(body):
    out = _random_bodies(body, seed=1)
    target = body.regress(out.vertices, "h36m17")
    r = dik.solve(target, "h36m17", body, betas=out.betas)
    refit = _refit(body, r, out.betas)
    err = (body.regress(refit.vertices, "h36m17") - target).norm(dim=-1)
    assert float(err.mean()) < 0.005 and float(err.max()) < 0.02, (err.mean(), err.max())
    # Limbs: with hinge-only elbows/knees the limb plane fixes the twist, so the world
    # rotations of upper limbs and of the elbows/knees match ground truth fully.
    gt_local = roma.rotvec_to_rotmat(torch.cat([out.global_orient[:, None], out.body_pose], 1))
    gt_world = world_from_local(gt_local)
    world = world_from_local(r.rotmats)
    for name in ("left_hip", "right_knee", "left_shoulder", "right_elbow"):
        rel = world[:, J[name]].transpose(-1, -2) @ gt_world[:, J[name]]
        angle = roma.rotmat_to_rotvec(rel).norm(dim=-1)
        assert float(angle.max()) < np.radians(2.0), (name, angle.max())
    # The root's facing (hip line) is seen exactly.
    hips = body.rest_joints(out.betas)[:, [J["left_hip"], J["right_hip"]]]
    line = hips[:, 0] - hips[:, 1]
    a = (world[:, 0] @ line[..., None])[..., 0]
    b = (gt_world[:, 0] @ line[..., None])[..., 0]
    assert float(torch.nn.functional.cosine_similarity(a, b).min()) > np.cos(np.radians(1.0))


@pytest.mark.parametrize("fmt", ["coco17", "blazepose33", "mpi_inf_3dhp17"])
def test_other_image_formats_round_trip(body, fmt):
    out = _random_bodies(body, batch=16, seed=2)
    target = body.regress(out.vertices, fmt)
    r = dik.solve(target, fmt, body, betas=out.betas)
    err = (body.regress(_refit(body, r, out.betas).vertices, fmt) - target).norm(dim=-1)
    # Surface keypoints (COCO/BlazePose) deform non-rigidly around joints: looser bound.
    assert float(err.mean()) < (0.03 if fmt != "mpi_inf_3dhp17" else 0.01), float(err.mean())
    assert torch.isfinite(r.body_pose).all()


def test_mocap_formats_solve(body):
    """Formats without a surface regressor use the SMPL joints they map to."""
    out = _random_bodies(body, batch=4, seed=3)
    fmt = get_format("bandai27")
    joints = torch.full((4, fmt.num_joints, 3), float("nan"), dtype=torch.float64)
    for name, smpl in fmt.smpl_map.items():
        joints[:, fmt.index(name)] = out.joints[:, J[smpl]]
    r = dik.solve(joints, fmt, body, betas=out.betas)
    refit = _refit(body, r, out.betas).joints
    mapped = [J[s] for s in fmt.smpl_map.values()]
    err = (refit[:, mapped] - out.joints[:, mapped]).norm(dim=-1)
    assert float(err.mean()) < 0.01


def test_a_new_format_needs_only_its_definition(body):
    """A format DIK has never seen: SMPL joints under other names, no pelvis joint (its role
    is the hips' midpoint) and a head-top landmark; defined in one place, solved exactly."""
    from s2m_model.skeletons import SkeletonFormat

    smpl = ("left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
            "neck", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
            "left_wrist", "right_wrist")  # fmt: skip
    names = tuple(f"j{i}" for i in range(len(smpl))) + ("head_top",)
    parents = (-1, 0, 0, 1, 2, 3, 4, 0, 6, 6, 7, 8, 9, 10)
    fmt = SkeletonFormat(
        "robot14", names, parents, smpl_map=dict(zip(names, smpl, strict=False)),
        roles={"pelvis": ("j0", "j1"), "head_top": ("head_top",)},
    )  # fmt: skip
    out = _random_bodies(body, batch=6, seed=4)
    joints = torch.stack([out.joints[:, J[n]] for n in smpl], 1)
    top = body.landmark("head_top") @ out.vertices  # (B,3)
    joints = torch.cat([joints, top[:, None]], 1)
    r = dik.solve(joints, fmt, body, betas=out.betas)
    assert r.solved[:, [J["pelvis"], J["left_knee"], J["spine1"], J["right_elbow"]]].all()
    refit = _refit(body, r, out.betas).joints
    idx = [J[n] for n in smpl]
    err = (refit[:, idx] - out.joints[:, idx]).norm(dim=-1)
    assert float(err.mean()) < 0.01, float(err.mean())


def test_rest_points_is_the_zero_rotation(body):
    betas = torch.randn(2, NUM_BETAS, dtype=torch.float64)
    h36m = dik.rest_points(body, "h36m17", betas)
    assert torch.equal(h36m, body.rest_points(betas, "h36m17"))
    # Mocap formats: mapped SMPL joints, plus the head-top landmark for their head_top joint.
    fmt = get_format("bandai27")
    rest = dik.rest_points(body, fmt)
    assert rest.shape == (1, fmt.num_joints, 3)
    assert torch.equal(rest[0, fmt.index("UpperLeg_L")], body.rest_joints()[0, J["left_hip"]])
    top = body.landmark("head_top") @ body.v_template
    assert torch.allclose(rest[0, fmt.index("head_top")], top)
    # Solving the rest skeleton gives back the rest skeleton.
    r = dik.solve(dik.rest_points(body, "cmu31", betas), "cmu31", body, betas=betas)
    err = (_refit(body, r, betas).joints - body.rest_joints(betas)).norm(dim=-1)
    assert float(err.max()) < 1e-3, float(err.max())


def test_straight_limbs_and_t_pose(body):
    rest = body.rest_points(None, "h36m17")
    r = dik.solve(rest, "h36m17", body)
    assert torch.isfinite(r.body_pose).all()
    assert float(r.body_pose.norm(dim=-1).max()) < 1e-3  # the rest pose solves to zero
    assert (
        r.quality["degenerate"][0, J["left_elbow"]] and r.quality["degenerate"][0, J["right_elbow"]]
    )
    # Rotating the straight-armed body keeps the solution continuous (no flipped twist).
    angles = torch.linspace(-np.pi * 0.9, np.pi * 0.9, 25, dtype=torch.float64)
    rot = roma.rotvec_to_rotmat(
        angles[:, None] * torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    )
    r = dik.solve(rest @ rot.transpose(-1, -2), "h36m17", body)
    assert float(r.body_pose.norm(dim=-1).max()) < 1e-3
    assert torch.allclose(roma.rotvec_to_rotmat(r.global_orient), rot, atol=1e-6)


def test_hyperextension_does_not_flip_the_twist(body):
    """A knee bent a few degrees backwards keeps the fallback axis (no 180 deg twist)."""
    pose = torch.zeros(7, NUM_BODY_JOINTS, 3, dtype=torch.float64)
    bend = torch.linspace(-0.15, 0.15, 7, dtype=torch.float64)
    pose[:, J["left_knee"] - 1] = bend[:, None] * dik.hinge_axis(body, "left_knee")
    out = body(body_pose=pose)
    r = dik.solve(body.regress(out.vertices, "h36m17"), "h36m17", body)
    hip_twist = r.body_pose[:, J["left_hip"] - 1].norm(dim=-1)
    assert float(hip_twist.max()) < 0.05, hip_twist


def test_collinear_and_zero_length_bones_give_finite_results(body):
    joints = body.rest_points(None, "h36m17").repeat(3, 1, 1)
    f = get_format("h36m17")
    joints[1, f.index("L_Elbow")] = joints[1, f.index("L_Shoulder")]  # zero-length bone
    joints[2, f.index("Thorax")] = joints[2, f.index("Pelvis")]  # collapsed spine
    r = dik.solve(joints, "h36m17", body)
    assert torch.isfinite(r.global_orient).all() and torch.isfinite(r.body_pose).all()
    assert r.quality["degenerate"][1, J["left_shoulder"]]


def test_nan_and_low_confidence_joints(body):
    out = _random_bodies(body, batch=3, seed=4)
    target = body.regress(out.vertices, "h36m17")
    f = get_format("h36m17")
    clean = dik.solve(target, "h36m17", body, betas=out.betas)
    bad = target.clone()
    bad[0, f.index("L_Wrist")] = float("nan")
    conf = torch.ones(3, 17, dtype=torch.float64)
    conf[1, f.index("R_Ankle")] = 0.1
    r = dik.solve(bad, "h36m17", body, betas=out.betas, confidence=conf)
    assert torch.isfinite(r.body_pose).all() and torch.isfinite(r.transl).all()
    assert not r.solved[0, J["left_elbow"]] and r.quality["missing"][0, J["left_elbow"]]
    assert not r.solved[1, J["right_knee"]]
    assert r.solved[2].sum() == clean.solved[2].sum()
    # Everything the missing joint does not feed is unchanged.
    same = [J[n] - 1 for n in ("right_elbow", "left_knee", "spine3", "neck")]
    assert torch.allclose(r.body_pose[0, same], clean.body_pose[0, same], atol=1e-9)
    # The upper arm still points at the elbow (swing without the hinge).
    nan_pelvis = target.clone()
    nan_pelvis[2, f.index("Pelvis")] = float("nan")
    r = dik.solve(nan_pelvis, "h36m17", body)
    assert torch.isfinite(r.body_pose).all() and not r.solved[2, 0]


def test_mirrored_skeleton_gives_mirrored_body(body):
    out = _random_bodies(body, batch=6, seed=5)
    fmt = get_format("h36m17")
    target = body.regress(out.vertices, "h36m17")
    mirror = torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    mirrored = (target * mirror)[:, list(fmt.flip_perm)]
    zero = torch.zeros(6, NUM_BETAS, dtype=torch.float64)
    a = _refit(body, dik.solve(target, fmt, body), zero)
    b = _refit(body, dik.solve(mirrored, fmt, body), zero)
    ha = body.regress(a.vertices, "h36m17")
    hb = (body.regress(b.vertices, "h36m17") * mirror)[:, list(fmt.flip_perm)]
    # The body is symmetric to a few mm, so mirrored inputs give mirrored fits.
    assert float((ha - hb).norm(dim=-1).mean()) < 0.01


def test_gradients_are_finite_near_straight_limbs(body):
    rest = body.rest_points(None, "h36m17").float()
    joints = (rest + 1e-6 * torch.randn_like(rest)).requires_grad_(True)
    body32 = body.float() if body.dtype == torch.float32 else None
    del body32
    r = dik.solve(joints.double(), "h36m17", body)
    (r.body_pose.sum() + r.global_orient.sum() + r.transl.sum()).backward()
    assert torch.isfinite(joints.grad).all()


def test_big_batch(body):
    out = _random_bodies(body, batch=8, seed=6)
    target = body.regress(out.vertices, "h36m17").repeat(1250, 1, 1)
    r = dik.solve(target, "h36m17", body)
    assert r.body_pose.shape == (10_000, 23, 3) and torch.isfinite(r.body_pose).all()
    assert torch.allclose(r.body_pose[:8], r.body_pose[8:16])


def test_temporal_fallback_uses_previous_twist(body):
    pose = torch.zeros(1, NUM_BODY_JOINTS, 3, dtype=torch.float64)
    pose[0, J["left_shoulder"] - 1] = torch.tensor([0.9, 0.0, 0.0])  # arm twisted about X
    pose[0, J["left_elbow"] - 1] = torch.tensor([0.0, -0.6, 0.0])
    bent = body.regress(body(body_pose=pose).vertices, "h36m17")
    prev = dik.solve(bent, "h36m17", body)
    pose[0, J["left_elbow"] - 1] = 0.0  # straighten: twist now invisible
    straight = body.regress(body(body_pose=pose).vertices, "h36m17")
    with_prev = dik.solve(straight, "h36m17", body, prev=prev)
    without = dik.solve(straight, "h36m17", body)
    twist = lambda r: float(r.body_pose[0, J["left_shoulder"] - 1, 0])  # noqa: E731
    assert abs(twist(with_prev) - 0.9) < 0.1
    assert abs(twist(without) - 0.9) > 0.3


@pytest.mark.parametrize(
    "joints, fmt, match",
    [
        (torch.zeros(2, 16, 3), "h36m17", "must be"),
        (torch.zeros(2, 17, 3, dtype=torch.int64), "h36m17", "floating point"),
        (np.zeros((2, 17, 3)), "h36m17", "torch tensor"),
    ],
)
def test_bad_input(body, joints, fmt, match):
    with pytest.raises(ValueError, match=match):
        dik.solve(joints, fmt, body)


def test_onnx_parity(body, tmp_path):
    from s2m_model.body import load_body_model
    from s2m_model.export.onnx import export_onnx, verify_onnx

    body32 = load_body_model("s2m-free", dtype=torch.float32)
    module = dik.DIKModule(body32, "h36m17").eval()
    out = _random_bodies(body, batch=37, seed=7)
    joints = body.regress(out.vertices, "h36m17").float()
    betas = out.betas.float()
    path = export_onnx(
        module,
        (joints[:2], betas[:2]),
        tmp_path / "dik.onnx",
        input_names=["joints", "betas"],
        output_names=["global_orient", "body_pose", "transl", "solved"],
    )
    diffs = verify_onnx(module, path, (joints, betas), atol=1e-4)
    assert max(diffs.values()) <= 1e-4


def test_mocap_neck_lower_than_smpl_does_not_flip_the_head(body):
    """Mocap necks sit a few cm below SMPL's: the neck must stay near its rest rotation."""
    fmt = get_format("bandai27")
    rest = body.rest_joints()
    joints = torch.full((1, fmt.num_joints, 3), float("nan"), dtype=torch.float64)
    for name, smpl in fmt.smpl_map.items():
        joints[:, fmt.index(name)] = rest[:, J[smpl]]
    joints[:, fmt.index("Neck"), 1] -= 0.06
    joints[:, fmt.index("head_top")] = rest[:, J["head"]] + torch.tensor([0.0, 0.12, 0.0])
    r = dik.solve(joints, fmt, body)
    assert float(r.body_pose[0, J["neck"] - 1].norm()) < np.radians(20)
    assert float(r.body_pose[0, J["head"] - 1].norm()) < np.radians(20)


@pytest.mark.parametrize(
    "fmt", ["smpl24", "h36m17", "coco17", "blazepose33", "mpi_inf_3dhp17", "cmu31", "bandai27"]
)
def test_rest_skeleton_solves_to_identity(body, fmt):
    """Every format's rest skeleton is zero rotation, also where its surface keypoints bend the
    rest limbs a few degrees out of the flexion plane (coco17/blazepose33 elbows and knees)."""
    g = torch.Generator().manual_seed(8)
    betas = torch.randn(2, NUM_BETAS, generator=g, dtype=torch.float64)
    r = dik.solve(dik.rest_points(body, fmt, betas), fmt, body, betas=betas)
    angle = roma.rotmat_to_rotvec(r.rotmats).norm(dim=-1)
    assert float(angle.max()) < 1e-3, (fmt, int(angle.argmax() % 24), float(angle.max()))


@pytest.mark.parametrize(
    "fmt, median_deg, max_deg",
    [("h36m17", 0.5, 2.0), ("coco17", 4.0, 15.0), ("blazepose33", 4.0, 15.0)],
)
def test_limb_world_rotations_of_limited_poses(body, fmt, median_deg, max_deg):
    """Exact skeletons of poses inside joint limits: the limbs' world rotations (twist
    included) come back. Surface keypoints (coco17/blazepose33) are not rigid with the bones,
    so their bounds are looser; before the hinge fix they were 24-39 deg median."""
    out = _random_bodies(body, batch=48, seed=11)
    r = dik.solve(body.regress(out.vertices, fmt), fmt, body, betas=out.betas)
    gt_local = roma.rotvec_to_rotmat(torch.cat([out.global_orient[:, None], out.body_pose], 1))
    gt_world, world = world_from_local(gt_local), world_from_local(r.rotmats)
    names = ("left_hip", "right_hip", "left_knee", "right_knee",
             "left_shoulder", "right_shoulder", "left_elbow", "right_elbow")  # fmt: skip
    limbs = [J[n] for n in names]
    rel = world[:, limbs].transpose(-1, -2) @ gt_world[:, limbs]
    angle = np.degrees(roma.rotmat_to_rotvec(rel).norm(dim=-1).numpy())  # (B,8)
    assert float(np.median(angle, axis=0).max()) < median_deg, np.median(angle, axis=0)
    assert float(angle.max()) < max_deg, angle.max(axis=0)
