"""Bad input to DIK, as a user would try it (issue 14): a clear error or a flagged, unsolved
joint, never an AttributeError or a non-rotation reported as solved."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from s2m_model import dik
from s2m_model.skeletons import get_format


@pytest.fixture(scope="module")
def body32():
    from s2m_model.body import load_body_model

    return load_body_model("s2m-free", dtype=torch.float32)


def _proper(rot: torch.Tensor, tol: float = 1e-4) -> torch.Tensor:
    eye = torch.eye(3, dtype=rot.dtype)
    ortho = (rot.transpose(-1, -2) @ rot - eye).abs().amax((-2, -1)) < tol
    return ortho & ((torch.linalg.det(rot) - 1).abs() < tol)


@pytest.mark.parametrize("fmt", ["h36m17", "coco17", "blazepose33", "smpl24"])
def test_collinear_joints_never_give_a_solved_non_rotation(body32, fmt):
    n = get_format(fmt).num_joints
    t = torch.linspace(0.0, 1.0, n)
    joints = torch.stack([t, 2 * t, 3 * t], -1)[None]  # every joint on one line
    r = dik.solve(joints, fmt, body32)
    assert _proper(r.rotmats).all(), torch.linalg.det(r.rotmats)
    head = dik.J["head"]
    if fmt != "smpl24":  # formats whose head orientation comes from head points
        assert not r.solved[0, head]
        assert r.quality["degenerate"][0, head]
        assert torch.allclose(r.rotmats[0, head], torch.eye(3), atol=1e-5)


def test_proper_or_identity_replaces_non_rotations():
    rot = torch.eye(3).repeat(4, 1, 1)
    rot[1] = torch.zeros(3, 3)  # singular
    rot[2] = torch.diag(torch.tensor([1.0, 1.0, -1.0]))  # reflection
    rot[3, 0, 0] = float("nan")
    out, proper = dik.proper_or_identity(rot)
    assert proper.tolist() == [True, False, False, False]
    assert torch.equal(out, torch.eye(3).repeat(4, 1, 1))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_joints_are_solved_in_float32(body32, dtype):
    rest = dik.rest_points(body32, "h36m17")
    g = torch.Generator().manual_seed(0)
    joints = rest + 0.05 * torch.randn(rest.shape, generator=g)
    ref = dik.solve(joints, "h36m17", body32)
    r = dik.solve(joints.to(dtype), "h36m17", body32)
    assert r.rotmats.dtype == torch.float32 and r.transl.dtype == torch.float32
    # default 1e-4: float32 rounding alone leaves ~1e-5 in R^T R; the bug gave det 2.27
    assert torch.isfinite(r.rotmats).all() and _proper(r.rotmats).all()
    # Only the input rounding differs from the float32 solve.
    assert (r.rotmats - ref.rotmats).abs().max() < 0.1


def test_confidence_as_list_or_array_is_accepted(body32):
    rest = dik.rest_points(body32, "h36m17")
    conf = [1.0] * 17
    conf[3] = 0.0  # right ankle below min_confidence
    ref = dik.solve(rest, "h36m17", body32, confidence=torch.tensor([conf]))
    for c in (conf, [conf], np.array([conf])):
        r = dik.solve(rest, "h36m17", body32, confidence=c)
        assert torch.equal(r.solved, ref.solved)
    assert not ref.solved[0, dik.J["right_knee"]]


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"confidence": ["high"] * 17}, TypeError, "confidence must be"),
        ({"confidence": [1.0] * 5}, ValueError, "confidence must be"),
        ({"fmt": None}, TypeError, "fmt must be a skeleton format"),
        ({"fmt": 17}, TypeError, "fmt must be a skeleton format"),
        ({"body": None}, TypeError, "body must be a BodyModel"),
        ({"body": "s2m-free"}, TypeError, "body must be a BodyModel"),
        ({"prev": "last"}, TypeError, "prev must be"),
        ({"prev": torch.zeros(1, 24, 3, 3)}, TypeError, "prev must be"),
    ],
)
def test_wrong_argument_types_raise_clear_errors(body32, kwargs, exc, match):
    args = {"joints": dik.rest_points(body32, "h36m17"), "fmt": "h36m17", "body": body32}
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        dik.solve(**args)


def test_hinge_axis_of_a_non_hinge_joint_is_a_value_error(body32):
    with pytest.raises(ValueError, match="no hinge axis for joint 'nose'"):
        dik.hinge_axis(body32, "nose")
