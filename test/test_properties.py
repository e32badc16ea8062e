"""Property-based tests (hypothesis): DIK and the body model on arbitrary finite input give
finite output, and DIK's rotations are always proper (orthonormal within 1e-4, det +1) --
including degenerate skeletons (coincident or collinear joints) and missing (NaN) joints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402

from s2m_model import dik  # noqa: E402
from s2m_model.skeletons import get_format  # noqa: E402
from s2m_model.smpl_layout import NUM_BETAS, NUM_BODY_JOINTS, NUM_JOINTS  # noqa: E402

FAST = settings(max_examples=50, deadline=None, derandomize=True, database=None)
#: The body tests skin 13k vertices per example: fewer examples keep them at a few seconds.
BODY = settings(max_examples=20, deadline=None, derandomize=True, database=None)
FORMATS = ("h36m17", "coco17", "smpl24", "blazepose33")
TOL = 1e-4


@pytest.fixture(scope="module")
def body32():
    from s2m_model.body import load_body_model

    return load_body_model("s2m-free", dtype=torch.float32)


def _assert_proper(rot: torch.Tensor) -> None:
    rot = rot.double()
    assert torch.isfinite(rot).all()
    eye = torch.eye(3, dtype=rot.dtype)
    ortho = (rot.transpose(-1, -2) @ rot - eye).abs().max()
    det = (torch.linalg.det(rot) - 1.0).abs().max()
    assert ortho < TOL and det < TOL, (float(ortho), float(det))


def _assert_result_ok(r: dik.DIKResult, batch: int) -> None:
    assert r.rotmats.shape == (batch, NUM_JOINTS, 3, 3)
    _assert_proper(r.rotmats)
    for t in (r.global_orient, r.body_pose, r.transl):
        assert torch.isfinite(t).all()
    # Axis-angle and matrices agree.
    from s2m_model.ik_geometry import rotmat_to_rotvec

    angles = rotmat_to_rotvec(r.rotmats).norm(dim=-1)
    assert (angles <= np.pi + 1e-3).all()


coords = st.floats(-3.0, 3.0, allow_nan=False, width=32)


@st.composite
def skeletons(draw, allow_nan: bool = False):
    """(fmt, joints (1,J,3) float32): free points, a few shared points (coincident joints), or
    points on one line."""
    fmt = draw(st.sampled_from(FORMATS))
    n = get_format(fmt).num_joints
    kind = draw(st.sampled_from(["free", "pool", "line"]))
    if kind == "free":
        pts = draw(arrays(np.float32, (n, 3), elements=coords))
    elif kind == "pool":
        pool = draw(arrays(np.float32, (draw(st.integers(1, 4)), 3), elements=coords))
        idx = draw(arrays(np.int64, (n,), elements=st.integers(0, len(pool) - 1)))
        pts = pool[idx]
    else:
        a, d = (draw(arrays(np.float32, (3,), elements=coords)) for _ in range(2))
        t = draw(arrays(np.float32, (n, 1), elements=st.floats(-2, 2, width=32)))
        pts = a + t * d
    if allow_nan:
        missing = draw(arrays(np.bool_, (n,)))
        pts = np.where(missing[:, None], np.nan, pts).astype(np.float32)
    return fmt, torch.from_numpy(np.ascontiguousarray(pts))[None]


@FAST
@given(case=skeletons())
def test_dik_finite_input_gives_proper_rotations(body32, case):
    fmt, joints = case
    _assert_result_ok(dik.solve(joints, fmt, body32), 1)


@FAST
@given(case=skeletons(allow_nan=True))
def test_dik_missing_joints_still_give_proper_rotations(body32, case):
    fmt, joints = case
    r = dik.solve(joints, fmt, body32)
    _assert_result_ok(r, 1)
    if torch.isnan(joints).all():
        assert not r.solved.any()


@FAST
@given(
    case=skeletons(),
    dtype=st.sampled_from([torch.float16, torch.bfloat16, torch.float64]),
    scale=st.sampled_from([1e-3, 1.0, 100.0]),
)
def test_dik_any_float_dtype_and_scale(body32, case, dtype, scale):
    fmt, joints = case
    r = dik.solve((joints * scale).to(dtype), fmt, body32)
    assert r.rotmats.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    _assert_result_ok(r, 1)


@BODY
@given(
    betas=arrays(np.float32, (2, NUM_BETAS), elements=st.floats(-4, 4, width=32)),
    pose=arrays(np.float32, (2, NUM_BODY_JOINTS + 1, 3), elements=st.floats(-6.25, 6.25, width=32)),
    transl=arrays(np.float32, (2, 3), elements=st.floats(-100, 100, width=32)),
)
def test_body_finite_input_gives_finite_rigid_output(body32, betas, pose, transl):
    betas, pose, transl = map(torch.from_numpy, (betas, pose, transl))
    out = body32(betas=betas, global_orient=pose[:, 0], body_pose=pose[:, 1:], transl=transl)
    assert torch.isfinite(out.vertices).all() and torch.isfinite(out.joints).all()
    # Posing is rigid per bone: joint-to-parent distances are the rest skeleton's.
    rest = body32.rest_joints(betas)
    parents = body32.parents[1:]
    posed_len = (out.joints[:, 1:] - out.joints[:, parents]).norm(dim=-1)
    rest_len = (rest[:, 1:] - rest[:, parents]).norm(dim=-1)
    assert torch.allclose(posed_len, rest_len, atol=1e-4)


@BODY
@given(
    betas=arrays(np.float32, (1, NUM_BETAS), elements=st.floats(-3, 3, width=32)),
    pose=arrays(np.float32, (1, NUM_BODY_JOINTS + 1, 3), elements=st.floats(-3, 3, width=32)),
)
def test_dik_of_any_posed_body_gives_proper_rotations(body32, betas, pose):
    betas, pose = torch.from_numpy(betas), torch.from_numpy(pose)
    out = body32(betas=betas, global_orient=pose[:, 0], body_pose=pose[:, 1:])
    for fmt in ("h36m17", "smpl24"):
        joints = out.joints if fmt == "smpl24" else body32.regress(out.vertices, fmt)
        _assert_result_ok(dik.solve(joints, fmt, body32, betas=betas), 1)
