"""Dataset loaders on small fixtures the tests write in each dataset's documented layout."""

from __future__ import annotations

import importlib.util
import math
import pickle

import numpy as np
import pytest
import roma
import scipy.io
import torch

from s2m_model.data.datasets.h36m import (
    FRONTAL_CAMERA,
    H36M17_JOINTS,
    H36M_EVAL14,
    eval_joints14,
    load_h36m,
    parse_imgname,
    protocol_subset,
    subsample,
)
from s2m_model.data.datasets.mpi_inf_3dhp import (
    MPI3DHP17_JOINTS,
    evaluate_3dhp,
    load_3dhp_test_sequence,
    load_3dhp_test_set,
)
from s2m_model.data.datasets.surreal import (
    SMPL24_FLIP_PERM,
    SMPL24_JOINTS,
    SURREAL_K,
    SurrealClip,
    find_surreal_info,
    load_surreal_info,
    surreal_gt_vertices,
)

# ============================================================================ Human3.6M
# SPIN's 24-joint superset (constants.JOINT_NAMES[25:]) and, per H36M-17 joint, the SPIN joint
# its preprocessing writes it to (h36m.py: S24[global_idx] = S17).
SPIN24 = [
    "Right Ankle", "Right Knee", "Right Hip", "Left Hip", "Left Knee", "Left Ankle",
    "Right Wrist", "Right Elbow", "Right Shoulder", "Left Shoulder", "Left Elbow", "Left Wrist",
    "Neck (LSP)", "Top of Head (LSP)", "Pelvis (MPII)", "Thorax (MPII)", "Spine (H36M)",
    "Jaw (H36M)", "Head (H36M)", "Nose", "Left Eye", "Right Eye", "Left Ear", "Right Ear",
]  # fmt: skip
H36M_TO_SPIN_NAME = {
    "pelvis": "Pelvis (MPII)", "right_hip": "Right Hip", "right_knee": "Right Knee",
    "right_ankle": "Right Ankle", "left_hip": "Left Hip", "left_knee": "Left Knee",
    "left_ankle": "Left Ankle", "spine": "Spine (H36M)", "thorax": "Neck (LSP)",
    "nose": "Jaw (H36M)", "head": "Head (H36M)", "left_shoulder": "Left Shoulder",
    "left_elbow": "Left Elbow", "left_wrist": "Left Wrist", "right_shoulder": "Right Shoulder",
    "right_elbow": "Right Elbow", "right_wrist": "Right Wrist",
}  # fmt: skip

FRAMES = [
    # subject, sequence (as in the file name), camera, 0-based frame
    ("S9", "Directions_1", "54138969", 0),
    ("S9", "Directions_1", FRONTAL_CAMERA, 0),
    ("S9", "Walking", FRONTAL_CAMERA, 64),
    ("S11", "Phoning_2", FRONTAL_CAMERA, 5),
    ("S1", "Eating", FRONTAL_CAMERA, 128),
]


def _h36m_joints(n: int) -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.normal(scale=0.3, size=(n, 17, 3)) + np.array([0.0, 0.0, 4.0])


def _write_spin(path, joints17, with_part=True, **extra):
    n = len(joints17)
    S = np.zeros((n, 24, 4))
    part = np.zeros((n, 24, 3))
    for k, name in enumerate(H36M17_JOINTS):
        j = SPIN24.index(H36M_TO_SPIN_NAME[name])
        S[:, j, :3] = joints17[:, k] - joints17[:, :1, :][:, 0]  # SPIN stores root-centred
        S[:, j, 3] = 1.0
        part[:, j, :2] = 100.0 * k + np.arange(n)[:, None]
        part[:, j, 2] = 1.0
    names = [f"images/{s}_{q}.{c}_{f + 1:06d}.jpg" for s, q, c, f in FRAMES[:n]]
    arrays = {"imgname": np.array(names), "center": np.zeros((n, 2)), "scale": np.ones(n), "S": S}
    if with_part:
        arrays["part"] = part
    arrays.update(extra)
    np.savez(path, **arrays)
    return S


def test_h36m_spin_layout(tmp_path):
    joints = _h36m_joints(len(FRAMES))
    path = tmp_path / "h36m_valid_protocol1.npz"
    _write_spin(path, joints, pose=np.zeros((5, 72)), shape=np.ones((5, 10)))
    data = load_h36m(path)
    assert data.layout == "spin" and data.root_centred and len(data) == 5
    np.testing.assert_allclose(data.joints3d, joints - joints[:, :1], atol=1e-12)
    assert data.valid3d.all()
    # 2D: joint k was written as 100 k + row.
    np.testing.assert_allclose(data.joints2d[2, :, 0], 100.0 * np.arange(17) + 2)
    sample = data[3]
    assert (sample.subject, sample.action, sample.sequence) == ("S11", "Phoning", "Phoning_2")
    assert (sample.camera, sample.frame) == (FRONTAL_CAMERA, 5)
    assert data.betas.shape == (5, 10) and data.pose.shape == (5, 72)


def test_h36m_mmpose_layout_and_protocols(tmp_path):
    joints = _h36m_joints(len(FRAMES))
    names = [f"{s}/{s}_{q}.{c}/{s}_{q}.{c}_{f + 1:06d}.jpg" for s, q, c, f in FRAMES]
    S = np.concatenate([joints, np.ones((5, 17, 1))], axis=-1)
    S[4, 3] = np.nan  # a broken joint must come out invalid, never NaN
    part = np.concatenate([np.full((5, 17, 2), 7.0), np.ones((5, 17, 1))], axis=-1)
    path = tmp_path / "h36m_test.npz"
    np.savez(path, imgname=np.array(names), center=np.zeros((5, 2)), scale=np.ones(5),
             part=part, S=S)  # fmt: skip
    data = load_h36m(path)
    assert data.layout == "mmpose" and not data.root_centred
    np.testing.assert_allclose(data.joints3d[:4], joints[:4])
    assert not data.valid3d[4, 3] and np.isfinite(data.joints3d).all()
    assert data.valid3d.sum() == 5 * 17 - 1

    p1 = protocol_subset(data, 1)
    assert sorted(set(p1.subject)) == ["S11", "S9"] and len(p1) == 4
    p2 = protocol_subset(data, 2)
    assert len(p2) == 3 and set(p2.camera) == {FRONTAL_CAMERA}
    every64 = subsample(data, 64)
    assert list(every64.frame) == [0, 0, 64, 128]
    assert len(subsample(data, 2, by="row")) == 3
    assert eval_joints14(data.joints3d).shape == (5, 14, 3)
    assert [H36M17_JOINTS[i] for i in range(17) if i not in H36M_EVAL14] == [
        "pelvis", "spine", "nose",
    ]  # fmt: skip


def test_parse_imgname():
    assert parse_imgname("images/S9_Directions_1.54138969_000001.jpg") == (
        "S9", "Directions", "Directions_1", "54138969", 0,
    )  # fmt: skip
    with pytest.raises(ValueError, match="not an H36M image name"):
        parse_imgname("frame_0001.jpg")


def test_h36m_malformed_files(tmp_path):
    missing = tmp_path / "missing_S.npz"
    np.savez(missing, imgname=np.array(["S9_A.54138969_000001.jpg"]))
    with pytest.raises(ValueError, match=r"missing_S\.npz.*'S'"):
        load_h36m(missing)

    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, imgname=np.array([{"x": 1}], dtype=object), S=np.zeros((1, 17, 4)))
    with pytest.raises(ValueError, match="pickled"):
        load_h36m(pickled)

    raw_pickle = tmp_path / "raw.npz"
    raw_pickle.write_bytes(pickle.dumps({"S": 1}))
    with pytest.raises(ValueError, match="raw.npz"):
        load_h36m(raw_pickle)

    bad_shape = tmp_path / "bad_shape.npz"
    np.savez(bad_shape, imgname=np.array(["S9_A.54138969_000001.jpg"]), S=np.zeros((1, 15, 4)))
    with pytest.raises(ValueError, match="'S' must have shape"):
        load_h36m(bad_shape)

    bad_name = tmp_path / "bad_name.npz"
    np.savez(bad_name, imgname=np.array(["hello.jpg"]), S=np.zeros((1, 17, 4)))
    with pytest.raises(ValueError, match="bad_name.npz: key 'imgname' entry 0"):
        load_h36m(bad_name)

    with pytest.raises(FileNotFoundError):
        load_h36m(tmp_path / "nope.npz")


# ============================================================================ MPI-INF-3DHP
H36M_FROM_3DHP_NAME = {
    "pelvis": "pelvis", "right_hip": "right_hip", "right_knee": "right_knee",
    "right_ankle": "right_ankle", "left_hip": "left_hip", "left_knee": "left_knee",
    "left_ankle": "left_ankle", "spine": "spine", "thorax": "neck", "nose": "head",
    "head": "head_top", "left_shoulder": "left_shoulder", "left_elbow": "left_elbow",
    "left_wrist": "left_wrist", "right_shoulder": "right_shoulder",
    "right_elbow": "right_elbow", "right_wrist": "right_wrist",
}  # fmt: skip


def _3dhp_arrays(n: int = 4):
    """Row-major (h5py view) arrays: (N, 1, 17, 3) mm, (N, 1, 17, 2) px, (N, 1) flags."""
    rng = np.random.default_rng(5)
    annot3 = rng.normal(scale=300.0, size=(n, 1, 17, 3)) + np.array([0.0, 0.0, 4000.0])
    annot2 = rng.uniform(0, 2048, size=(n, 1, 17, 2))
    valid = np.ones((n, 1))
    valid[1] = 0
    return annot3, annot2, valid


def _write_3dhp_v5(path, annot3, annot2, valid):
    path.parent.mkdir(parents=True, exist_ok=True)
    # MATLAB is column-major: its dims are the reverse of the row-major view.
    scipy.io.savemat(
        path,
        {"univ_annot3": annot3.T, "annot3": (annot3 * 1.1).T, "annot2": annot2.T,
         "valid_frame": valid.T, "activity_annotation": np.arange(len(valid))[None] + 1.0},
    )  # fmt: skip


def test_3dhp_v5_mat(tmp_path):
    annot3, annot2, valid = _3dhp_arrays()
    path = tmp_path / "TS1" / "annot_data.mat"
    _write_3dhp_v5(path, annot3, annot2, valid)

    native = load_3dhp_test_sequence(path, order="native", valid_only=False)
    np.testing.assert_allclose(native.joints3d[0], annot3[0, 0] / 1000.0)
    assert list(native.valid_frame) == [True, False, True, True]
    assert native.root == MPI3DHP17_JOINTS.index("pelvis")
    np.testing.assert_allclose(native.joints2d[2], annot2[2, 0])

    data = load_3dhp_test_sequence(path)  # H36M-17 order, valid frames only
    assert list(data.frame) == [0, 2, 3] and set(data.sequence) == {"TS1"}
    assert list(data.activity) == [1, 3, 4]
    for k, name in enumerate(H36M17_JOINTS):
        j = MPI3DHP17_JOINTS.index(H36M_FROM_3DHP_NAME[name])
        np.testing.assert_allclose(data.joints3d[:, k], annot3[[0, 2, 3], 0, j] / 1000.0)
    raw = load_3dhp_test_sequence(path, annotation="annot3")
    np.testing.assert_allclose(raw.joints3d, data.joints3d * 1.1)

    res = evaluate_3dhp(data.joints3d, data.joints3d)
    assert res["pck"] == pytest.approx(100.0) and res["auc"] == pytest.approx(30 / 31 * 100)


def test_3dhp_test_set_concatenates(tmp_path):
    for seq in ("TS1", "TS2"):
        _write_3dhp_v5(tmp_path / seq / "annot_data.mat", *_3dhp_arrays())
    data = load_3dhp_test_set(tmp_path, sequences=("TS1", "TS2"))
    assert len(data) == 6 and list(data.sequence) == ["TS1"] * 3 + ["TS2"] * 3


def test_3dhp_malformed(tmp_path):
    annot3, annot2, valid = _3dhp_arrays()
    path = tmp_path / "no_univ.mat"
    scipy.io.savemat(path, {"annot2": annot2.T, "valid_frame": valid.T})
    with pytest.raises(ValueError, match=r"no_univ\.mat: missing key 'univ_annot3'"):
        load_3dhp_test_sequence(path)
    wrong = tmp_path / "wrong.mat"
    scipy.io.savemat(wrong, {"univ_annot3": annot3[:, :, :15].T, "valid_frame": valid.T})
    with pytest.raises(ValueError, match="'univ_annot3' must hold"):
        load_3dhp_test_sequence(wrong)
    not_mat = tmp_path / "not.mat"
    not_mat.write_bytes(b"hello world" * 20)
    with pytest.raises(ValueError, match="not.mat"):
        load_3dhp_test_sequence(not_mat)


def _write_v73_header(path) -> None:
    # MATLAB v7.3 files are HDF5 with a 512-byte user block starting with this text header.
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5"
    block = header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"
    path.write_bytes(block.ljust(512, b"\x00"))


@pytest.mark.skipif(importlib.util.find_spec("h5py") is not None, reason="h5py is installed")
def test_3dhp_v73_without_h5py_says_so(tmp_path):
    path = tmp_path / "annot_data.mat"
    _write_v73_header(path)
    with pytest.raises(RuntimeError, match="h5py"):
        load_3dhp_test_sequence(path)


def test_3dhp_v73_with_h5py(tmp_path):
    h5py = pytest.importorskip("h5py")
    annot3, annot2, valid = _3dhp_arrays()
    path = tmp_path / "annot_data.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        f["univ_annot3"], f["annot2"], f["valid_frame"] = annot3, annot2, valid
    header = bytearray(path.read_bytes()[:512])
    _write_v73_header(tmp_path / "hdr")
    header[:128] = (tmp_path / "hdr").read_bytes()[:128]
    with open(path, "r+b") as fh:
        fh.write(bytes(header))
    data = load_3dhp_test_sequence(path, order="native")
    np.testing.assert_allclose(data.joints3d, annot3[[0, 2, 3], 0] / 1000.0)


# ============================================================================ SURREAL
PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]


def _symmetric_rest() -> np.ndarray:
    """A left/right-symmetric 24-joint rest skeleton (left = +x), for an exact mirror check."""
    rest = np.zeros((24, 3))
    perm = SMPL24_FLIP_PERM
    for j in range(1, 24):
        if perm[j] == j:
            rest[j] = rest[PARENTS[j]] + [0.0, 0.1 + 0.01 * j, 0.01]
        elif SMPL24_JOINTS[j].startswith("left"):
            rest[j] = rest[PARENTS[j]] + [0.05 + 0.01 * j, -0.1, 0.003 * j]
            rest[perm[j]] = rest[j] * np.array([-1.0, 1.0, 1.0])
    return rest


REST = _symmetric_rest()


def _fk(global_orient: np.ndarray, body_pose: np.ndarray) -> np.ndarray:
    """Joint positions (T, 24, 3) of REST posed by SMPL-style local axis-angle rotations."""
    rotvecs = np.concatenate([global_orient[:, None], body_pose], axis=1)
    R = roma.rotvec_to_rotmat(torch.as_tensor(rotvecs)).numpy()
    G = np.zeros_like(R)
    P = np.zeros(R.shape[:2] + (3,))
    G[:, 0], P[:, 0] = R[:, 0], REST[0]
    for j in range(1, 24):
        p = PARENTS[j]
        G[:, j] = G[:, p] @ R[:, j]
        P[:, j] = P[:, p] + np.einsum("tij,j->ti", G[:, p], REST[j] - REST[p])
    return P


class _FkBody:
    """Stand-in body model: its 'vertices' are the posed joints (enough to check frames)."""

    def __call__(self, betas, global_orient, body_pose):
        joints = torch.as_tensor(_fk(global_orient.double().numpy(), body_pose.double().numpy()))
        out = type("Out", (), {})()
        out.vertices = joints.to(global_orient.dtype) + 1.0  # body-model origin is arbitrary
        out.joints = out.vertices.clone()
        return out


def _surreal_world(T: int = 3, seed: int = 7):
    """Pose, shape, zrot, camLoc and world joints built as SURREAL's smpl_relations.py does."""
    rng = np.random.default_rng(seed)
    pose = rng.normal(scale=0.4, size=(T, 72))
    zrot = 0.8
    c, s = math.cos(zrot), math.sin(zrot)
    rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    rx90 = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    root = roma.rotvec_to_rotmat(torch.as_tensor(pose[:, :3])).numpy()
    go = roma.rotmat_to_rotvec(torch.as_tensor(rx90 @ rz @ root)).numpy()
    world = _fk(go, pose[:, 3:].reshape(T, 23, 3)) + np.array([0.2, -0.1, 0.9])
    cam_loc = np.array([4.6, -1.0, 1.0])
    # getExtrinsicBlender.m and the fixed intrinsics, written out independently of the loader.
    r_w2b = np.array([[0, 0, 1], [0, -1, 0], [-1, 0, 0]], dtype=float).T
    R = np.diag([1.0, -1.0, -1.0]) @ r_w2b
    t = -R @ cam_loc
    cam = world @ R.T + t
    j2d = cam[..., :2] / cam[..., 2:] * 600.0 + np.array([160.0, 120.0])
    return pose, rng.normal(size=(T, 10)), zrot, cam_loc, world, j2d


def _write_surreal(path, T=3, drop=(), **override):
    pose, shape, zrot, cam_loc, world, j2d = _surreal_world(T)
    mat = {
        "pose": pose.T, "shape": shape.T, "joints3D": world.transpose(2, 1, 0),
        "joints2D": j2d.transpose(2, 1, 0), "camLoc": cam_loc[:, None],
        "zrot": np.full((T, 1), zrot), "gender": np.ones((T, 1), dtype=np.uint8),
        "sequence": "01_01_c0001",
    }  # fmt: skip
    mat.update(override)
    for key in drop:
        del mat[key]
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, mat)
    return pose, shape, world, j2d


def test_surreal_load_layout(tmp_path):
    path = tmp_path / "run0" / "01_01" / "01_01_c0001_info.mat"
    pose, shape, world, j2d = _write_surreal(path)
    clip = load_surreal_info(path)
    assert len(clip) == 3 and clip.sequence == "01_01_c0001"
    np.testing.assert_allclose(clip.betas, shape)
    np.testing.assert_allclose(clip.pose_root, pose[:, :3])
    np.testing.assert_allclose(clip.body_pose, pose[:, 3:].reshape(3, 23, 3))
    np.testing.assert_allclose(clip.joints3d, world)
    np.testing.assert_allclose(clip.joints2d, j2d)
    assert list(clip.gender) == [1, 1, 1] and clip.zrot == pytest.approx([0.8] * 3)
    assert find_surreal_info(tmp_path) == [path]


def test_surreal_camera_frame_is_the_image_consistent_body(tmp_path):
    path = tmp_path / "c_info.mat"
    _, _, world, j2d = _write_surreal(path)
    clip = load_surreal_info(path)
    cam = clip.joints3d_camera()
    assert (cam[..., 2] > 0).all()  # in front of the camera
    # Projecting the camera-frame joints reproduces the file's 2D joints, labels swapped.
    proj = cam @ SURREAL_K.T
    np.testing.assert_allclose(proj[..., :2] / proj[..., 2:], j2d[:, list(SMPL24_FLIP_PERM)])
    # The camera-frame SMPL parameters pose exactly that body (symmetric rest skeleton): the
    # mirrored positions with swapped labels are a proper, posable body.
    _, go, bp = clip.smpl_camera()
    fk = _fk(go, bp)
    np.testing.assert_allclose(fk - fk[:, :1], cam - cam[:, :1], atol=1e-9)
    # ... and the world-frame parameters the world body.
    _, go_w, bp_w = clip.smpl_world()
    fk_w = _fk(go_w, bp_w)
    np.testing.assert_allclose(fk_w - fk_w[:, :1], world - world[:, :1], atol=1e-9)


def test_surreal_gt_vertices_from_body(tmp_path):
    path = tmp_path / "c_info.mat"
    _write_surreal(path, T=5)
    clip = load_surreal_info(path)
    body = _FkBody()
    cam = surreal_gt_vertices(clip, body, batch_size=2, dtype=torch.float64)
    np.testing.assert_allclose(cam.numpy(), clip.joints3d_camera(), atol=1e-9)
    world = surreal_gt_vertices(clip, body, frame="world", dtype=torch.float64)
    np.testing.assert_allclose(world.numpy(), clip.joints3d, atol=1e-9)

    def bad_body(**_):
        return object()

    with pytest.raises(ValueError, match="vertices"):
        surreal_gt_vertices(clip, bad_body)


def test_surreal_single_frame_and_malformed(tmp_path):
    one = tmp_path / "one_info.mat"
    *_, world, j2d = _surreal_world(T=1)
    # MATLAB drops the trailing singleton frame axis of joints3D/joints2D.
    _write_surreal(one, T=1, joints3D=world[0].T, joints2D=j2d[0].T)
    clip = load_surreal_info(one)
    assert len(clip) == 1
    np.testing.assert_allclose(clip.joints3d[0], world[0])

    no_zrot = tmp_path / "no_zrot_info.mat"
    _write_surreal(no_zrot, drop=("zrot",))
    with pytest.raises(ValueError, match=r"no_zrot_info\.mat: missing key 'zrot'"):
        load_surreal_info(no_zrot)
    nan_pose = tmp_path / "nan_info.mat"
    _write_surreal(nan_pose, pose=np.full((72, 3), np.nan))
    with pytest.raises(ValueError, match="'pose' contains NaN"):
        load_surreal_info(nan_pose)
    short = tmp_path / "short_info.mat"
    _write_surreal(short, shape=np.zeros((10, 2)))
    with pytest.raises(ValueError, match="'shape' has 2 frames"):
        load_surreal_info(short)


def test_surreal_clip_is_a_plain_dataclass():
    clip = SurrealClip(
        betas=np.zeros((2, 10)), pose_root=np.zeros((2, 3)), body_pose=np.zeros((2, 23, 3)),
        joints3d=np.zeros((2, 24, 3)), joints2d=np.zeros((2, 24, 2)), zrot=np.zeros(2),
        gender=np.zeros(2, dtype=int), cam_loc=np.array([4.0, -1.0, 1.0]), sequence="x",
    )  # fmt: skip
    # zrot = 0 and a zero root: the world orientation is the +90 degree turn about x.
    np.testing.assert_allclose(clip.global_orient_world(), [[math.pi / 2, 0, 0]] * 2, atol=1e-12)
    R, t = clip.extrinsics
    assert np.linalg.det(R) == pytest.approx(-1.0)
    np.testing.assert_allclose(t, [1.0, 1.0, 4.0])
