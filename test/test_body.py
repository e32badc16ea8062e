"""The free SMPL-layout body: conventions, quality, file paths and bad input."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import roma
import scipy.sparse
import torch
from scipy.spatial import Delaunay

from s2m_model.body import SMPL_JOINT_NAMES, SMPL_PARENTS, load_body_model
from s2m_model.body.files import load_npz
from s2m_model.smpl_layout import NUM_BETAS, NUM_BODY_JOINTS, NUM_JOINTS

J = {n: i for i, n in enumerate(SMPL_JOINT_NAMES)}


def _angle_to_horizontal(v: torch.Tensor) -> float:
    v = v / v.norm()
    return float(torch.rad2deg(torch.asin(v[1].abs())))


def random_limited_pose(batch: int, max_angle: float = 0.7, seed: int = 0) -> torch.Tensor:
    """Random local rotations with angle <= max_angle (radians) per joint: within joint limits
    for every SMPL joint at this range."""
    g = torch.Generator().manual_seed(seed)
    axis = torch.nn.functional.normalize(
        torch.randn(batch, NUM_BODY_JOINTS, 3, generator=g, dtype=torch.float64), dim=-1
    )
    angle = torch.rand(batch, NUM_BODY_JOINTS, 1, generator=g, dtype=torch.float64) * max_angle
    return axis * angle


def test_api_shapes_and_names(body):
    out = body(betas=torch.zeros(2, NUM_BETAS, dtype=torch.float64))
    assert out.vertices.shape == (2, body.num_vertices, 3)
    assert out.joints.shape == (2, 24, 3)
    assert body.joint_names == SMPL_JOINT_NAMES
    assert body.parents.tolist() == list(SMPL_PARENTS)
    assert body.faces.shape[1] == 3 and body.faces.max() < body.num_vertices
    assert torch.allclose(out.joints, body.rest_joints(out.betas))


def test_zero_pose_is_t_pose(body):
    j = body.rest_joints()[0]
    for side in ("left", "right"):
        upper = j[J[f"{side}_elbow"]] - j[J[f"{side}_shoulder"]]
        fore = j[J[f"{side}_wrist"]] - j[J[f"{side}_elbow"]]
        assert _angle_to_horizontal(upper) < 10.0
        assert _angle_to_horizontal(fore) < 10.0
        # Arms point sideways (+X is the body's left), not forward.
        assert (upper[0] > 0) == (side == "left") and abs(upper[2]) < 0.3 * upper.norm()
    # Facing +Z: the nose is in front of the head joint; Y up: head above pelvis above ankles.
    nose = body.landmark("nose") @ body.v_template
    assert nose[2] > j[J["head"], 2] + 0.05
    assert j[J["head"], 1] > j[J["pelvis"], 1] > j[J["left_ankle"], 1]
    # Legs straight: hip-knee-ankle nearly collinear.
    for side in ("left", "right"):
        a = j[J[f"{side}_knee"]] - j[J[f"{side}_hip"]]
        b = j[J[f"{side}_ankle"]] - j[J[f"{side}_knee"]]
        cos = (a @ b) / (a.norm() * b.norm())
        assert cos > np.cos(np.radians(12))


def test_left_right_symmetry(body):
    j = body.rest_joints()[0]
    mirror = torch.tensor([-1.0, 1.0, 1.0], dtype=j.dtype)
    for name in SMPL_JOINT_NAMES:
        if name.startswith("left_"):
            other = j[J["right_" + name[5:]]] * mirror
            assert (j[J[name]] - other).norm() < 0.005, name
        elif not name.startswith("right_"):
            assert abs(float(j[J[name], 0])) < 0.005, name
    v = body.v_template.numpy()
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(v).query(v * np.array([-1.0, 1.0, 1.0]))
    assert dist.mean() < 0.003 and np.percentile(dist, 99) < 0.012


def test_joints_inside_body_hull(body):
    for betas in (torch.zeros(1, NUM_BETAS), torch.randn(1, NUM_BETAS)):
        out = body(betas=betas.double())
        hull = Delaunay(out.vertices[0].numpy())
        assert (hull.find_simplex(out.joints[0].numpy()) >= 0).all()


def test_random_limited_poses_do_not_tear_the_mesh(body):
    pose = random_limited_pose(8)
    out = body(body_pose=pose, betas=torch.randn(8, NUM_BETAS, dtype=torch.float64) * 0.8)
    rest = body(betas=out.betas)
    edges = np.concatenate([body.faces[:, [0, 1]], body.faces[:, [1, 2]], body.faces[:, [2, 0]]])

    def lengths(v):
        return (v[:, edges[:, 0]] - v[:, edges[:, 1]]).norm(dim=-1)

    stretch = lengths(out.vertices) / lengths(rest.vertices).clamp_min(1e-6)
    # Linear blend skinning without pose correctives stretches some edges at the joint blends;
    # tearing would show as a heavy tail.
    assert float(torch.quantile(stretch.flatten()[::7], 0.99)) < 1.5
    assert float(stretch.max()) < 6.0

    # No vertex farther from its nearest posed joint than any vertex is in the rest pose + 5 cm.
    def reach(o):
        return torch.cdist(o.vertices, o.joints).min(-1).values.max()

    assert reach(out) < reach(rest) + 0.05


def test_public_arrays_and_rest_basis(body):
    from s2m_model.skeletons import get_format

    nv = body.num_vertices
    assert body.shapedirs.shape == (nv, 3, NUM_BETAS)
    assert body.lbs_weights.shape == (nv, NUM_JOINTS)
    assert torch.allclose(body.lbs_weights.sum(1), torch.ones(nv, dtype=body.dtype))
    assert body.posedirs.shape == ((NUM_JOINTS - 1) * 9, nv * 3) and not body.posedirs.any()
    betas = torch.randn(3, NUM_BETAS, dtype=torch.float64)
    for fmt in ("smpl24", "h36m17", get_format("coco17")):
        mean, dirs = body.rest_basis(fmt)
        expect = mean + torch.einsum("jcl,bl->bjc", dirs, betas)
        assert torch.equal(body.rest_points(betas, fmt), expect)
    mean, dirs = body.rest_basis("h36m17")
    reg = body.regressor("h36m17")
    assert torch.allclose(mean, reg @ body.v_template, atol=1e-12)
    assert torch.allclose(dirs, torch.einsum("jv,vcl->jcl", reg, body.shapedirs), atol=1e-12)


def test_beta0_changes_height_monotonically(body):
    b = torch.zeros(7, NUM_BETAS, dtype=torch.float64)
    b[:, 0] = torch.linspace(-3, 3, 7)
    v = body(betas=b).vertices
    height = v[..., 1].max(1).values - v[..., 1].min(1).values
    assert (height.diff() > 0.005).all(), height
    assert 1.45 < float(height[3]) < 1.90  # betas = 0 is an average adult


def test_betas_are_standardised(body):
    # Each shape direction moves the mesh by a comparable, human-scale amount per unit beta.
    disp = body.shapedirs.norm(dim=1).mean(0)  # (10,) mean vertex displacement per beta
    assert (disp[:-1] >= disp[1:] * 0.5).all() and 0.002 < float(disp[0]) < 0.2


def test_posed_joints_match_anny(body):
    """Our layout posed with rotations R == Anny posed with the same rotations on its bones."""
    from s2m_model.body.free import (
        PRIMARY_BONE,
        AnnyTPoser,
        bone_part,
        sample_adult_phenotypes,
        smpl_joints_from_heads,
    )

    poser = AnnyTPoser()
    pheno = sample_adult_phenotypes(poser.model, 2, seed=123)
    tpose = poser(pheno)
    # Shape: least-squares betas for this Anny body.
    v0 = body.v_template.reshape(-1)
    dirs = body.shapedirs.reshape(-1, NUM_BETAS)
    betas = torch.linalg.lstsq(dirs, (tpose["vertices"].reshape(2, -1) - v0).T).solution.T
    pose = random_limited_pose(2, max_angle=0.8, seed=3)
    rotm = roma.rotvec_to_rotmat(pose)
    world = [torch.eye(3, dtype=torch.float64).expand(2, 3, 3)]
    for j in range(1, NUM_JOINTS):
        world.append(world[SMPL_PARENTS[j]] @ rotm[:, j - 1])
    part = bone_part(poser.bone_labels, poser.parents)
    extra = {name: world[int(part[b])] for b, name in enumerate(poser.bone_labels)}
    assert set(PRIMARY_BONE.values()) <= set(extra)
    anny_joints = smpl_joints_from_heads(poser(pheno, extra)["heads"], poser.bone_labels)
    ours = body(betas=betas, body_pose=pose).joints
    # Both bodies place the pelvis at the origin.
    err = (ours - anny_joints).norm(dim=-1)
    assert float(err.mean()) < 0.006 and float(err.max()) < 0.02, err


def test_regressed_h36m_coco_joints_are_anatomical(body):
    v = body.v_template[None]
    h = body.regress(v, "h36m17")[0]
    c = body.regress(v, "coco17")[0]
    names_h = body_names("h36m17")
    names_c = body_names("coco17")
    H = {n: h[i] for i, n in enumerate(names_h)}
    C = {n: c[i] for i, n in enumerate(names_c)}
    top_y = float(v[0, :, 1].max())
    floor_y = float(v[0, :, 1].min())
    head_top = H[_find(names_h, "head")]
    assert top_y - 0.04 < float(head_top[1]) <= top_y + 1e-6
    assert abs(float(head_top[0])) < 0.01
    pelvis, spine, thorax = (H[_find(names_h, k)] for k in ("pelvis", "spine", "thorax"))
    assert float(pelvis[1]) < float(spine[1]) < float(thorax[1]) < float(head_top[1])
    for side in ("left", "right"):
        ankle = C[f"{side}_ankle"]
        assert float(ankle[1]) - floor_y < 0.15
        assert float(C[f"{side}_eye"][1]) > float(C["nose"][1])
        assert abs(float(C[f"{side}_ear"][0])) > abs(float(C[f"{side}_eye"][0]))
        assert float(C[f"{side}_shoulder"][1]) < float(C[f"{side}_ear"][1])
        sign = 1.0 if side == "left" else -1.0
        assert sign * float(C[f"{side}_shoulder"][0]) > 0.1  # left is +X
    assert float(C["nose"][2]) > float(C["left_ear"][2]) + 0.05  # nose in front
    for fmt in ("h36m17", "coco17", "blazepose33", "mpi_inf_3dhp17", "smpl24"):
        reg = body.regressor(fmt)
        assert torch.allclose(reg.sum(1), torch.ones(reg.shape[0], dtype=reg.dtype), atol=1e-6)


def body_names(fmt: str) -> list[str]:
    from s2m_model.body.regressors import joint_names_for

    return [n.lower() for n in joint_names_for(fmt)]


def _find(names: list[str], key: str) -> str:
    hits = [n for n in names if key in n and ("top" in n or key != "head")]
    if not hits:
        hits = [n for n in names if key in n]
    return hits[0]


def test_real_smpl_pkl_path_matches_exactly(body, tmp_path):
    """An SMPL-format .pkl (sparse J_regressor as in the official files) -> .npz -> same mesh."""
    from s2m_model.body import free_model_path

    arrays = load_npz(free_model_path())
    raw = {
        k: arrays[k]
        for k in ("v_template", "shapedirs", "posedirs", "weights", "kintree_table", "f")
    }
    raw["J_regressor"] = scipy.sparse.csc_matrix(arrays["J_regressor"])
    pkl = tmp_path / "SMPL_NEUTRAL.pkl"
    with open(pkl, "wb") as handle:
        pickle.dump(raw, handle)
    with pytest.warns(UserWarning, match="pickle"):
        smpl = load_body_model(pkl, dtype=torch.float64)
    assert (tmp_path / "SMPL_NEUTRAL.npz").is_file()
    # The conversion is lossless: the model holds bit-identical arrays.
    for name in ("v_template", "shapedirs", "posedirs", "J_regressor", "lbs_weights"):
        assert torch.equal(getattr(smpl, name), getattr(body, name)), name
    assert np.array_equal(smpl.faces, body.faces)
    pose, betas = random_limited_pose(3), torch.randn(3, NUM_BETAS, dtype=torch.float64)
    a = smpl(betas=betas, body_pose=pose).vertices
    b = body(betas=betas, body_pose=pose).vertices
    # Same arrays, same code, but not necessarily the same bits: the session-wide ``body`` may
    # have cached its rest-joint basis (J_regressor @ v_template, a sum over ~13k vertices)
    # under another torch thread count (test_baselines runs single-threaded), and a parallel
    # reduction sums in another order (measured: 4e-16 m in the basis, 2e-16 m in vertices).
    # 1e-12 m is ~1000x that round-off and far below any real difference (>= 1e-9 m).
    assert torch.allclose(a, b, rtol=0.0, atol=1e-12), float((a - b).abs().max())


def test_pkl_with_foreign_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    pkl = tmp_path / "evil.pkl"
    pkl.write_bytes(pickle.dumps({"v_template": Evil()}))
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="refusing|not a readable"):
        load_body_model(pkl)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"betas": torch.zeros(1, 9)}, r"betas must have shape"),
        ({"body_pose": torch.zeros(1, 24, 3)}, r"body_pose must have shape"),
        ({"global_orient": torch.zeros(2, 3), "betas": torch.zeros(3, NUM_BETAS)}, "batch size"),
        ({"transl": torch.full((1, 3), float("nan"))}, "NaN"),
        ({"betas": torch.zeros(1, NUM_BETAS, dtype=torch.int64)}, "floating point"),
        ({"betas": [0.0] * 10}, "torch tensor or numpy"),
    ],
)
def test_bad_parameters_raise_clear_errors(body, kwargs, match):
    with pytest.raises(ValueError, match=match):
        body(
            **{
                k: (v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
                for k, v in kwargs.items()
            }
        )


def test_bad_model_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="s2m-free"):
        load_body_model(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, v_template=np.zeros((10, 3)))
    with pytest.raises(ValueError, match="missing keys"):
        load_body_model(bad)
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(ValueError, match="corrupt"):
        load_body_model(corrupt)
    with pytest.raises(ValueError, match="unknown body model"):
        load_body_model("smpl-but-not-a-file")


def test_regress_rejects_bad_vertices(body):
    with pytest.raises(ValueError, match="vertices must be"):
        body.regress(torch.zeros(1, 10, 3, dtype=torch.float64), "h36m17")  # 10 vertices
    with pytest.raises(ValueError, match="no vertex regressor"):
        body.regressor("bandai27")


def test_build_is_deterministic(tmp_path, monkeypatch):
    from s2m_model.body.free import build_free_body

    a = build_free_body(num_shapes=40, seed=5)
    b = build_free_body(num_shapes=40, seed=5)
    for key in ("v_template", "shapedirs", "J_regressor", "weights"):
        assert np.array_equal(a[key], b[key]), key
    assert np.allclose(a["weights"].sum(1), 1.0)


def test_render_silhouette_and_overlay(body):
    from s2m_model.body.render import look_at_body, render_mesh, render_silhouette
    from s2m_model.camera import Camera

    cam = Camera.from_fov(120, 160)
    verts = look_at_body(body.v_template.numpy(), cam)
    sil = render_silhouette(verts, body.faces, cam)
    assert sil.shape == (160, 120) and 0.05 < sil.mean() < 0.6
    # The arms span the width in a T-pose: the middle row through the shoulders is wide.
    rows = np.flatnonzero(sil.any(1))
    assert sil[:, 0].sum() == 0 and rows.min() > 0
    img = np.zeros((160, 120, 3), np.uint8)
    over = render_mesh(verts, body.faces, cam, image=img, alpha=0.5)
    assert over.shape == img.shape and over[sil].mean() > 20 and over[~sil].max() == 0


def test_fast_skinning_matches_smplx(body):
    """Zero pose correctives: our skinning path equals smplx's SMPL forward."""
    assert body.zero_posedirs
    pose, betas = random_limited_pose(4, seed=8), torch.randn(4, NUM_BETAS, dtype=torch.float64)
    go, transl = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    ours = body(betas=betas, global_orient=go, body_pose=pose, transl=transl)
    # body.smpl is the smplx layer itself: the reference implementation.
    ref = body.smpl(betas=betas, global_orient=go, body_pose=pose.reshape(4, 69), transl=transl)
    assert torch.allclose(ours.vertices, ref.vertices, atol=1e-10)
    assert torch.allclose(ours.joints, ref.joints[:, :24], atol=1e-10)
    joints_only = body(betas=betas, global_orient=go, body_pose=pose, transl=transl,
                       with_vertices=False)
    assert joints_only.vertices is None and torch.allclose(joints_only.joints, ours.joints)
