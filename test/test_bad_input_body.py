"""Bad input to the body model, as a user would try it (issue 14): empty batches work,
integer vertices are regressed correctly, malformed model files fail at load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from s2m_model.body import BodyModel, free_model_path, load_body_model
from s2m_model.body.files import load_npz
from s2m_model.smpl_layout import NUM_BETAS, NUM_JOINTS


@pytest.fixture(scope="module")
def body32():
    return load_body_model("s2m-free", dtype=torch.float32)


@pytest.fixture(scope="module")
def posed_body():
    """The free body with non-zero pose correctives: the smplx forward path (as real SMPL)."""
    arrays = dict(load_npz(free_model_path()))
    rng = np.random.default_rng(0)
    arrays["posedirs"] = 1e-4 * rng.standard_normal((arrays["v_template"].shape[0], 3, 207))
    return BodyModel(arrays, name="posed", dtype=torch.float32)


@pytest.mark.parametrize("which", ["free", "smplx"])
@pytest.mark.parametrize(
    "kwargs",
    [
        {"betas": torch.zeros(0, NUM_BETAS)},
        {"body_pose": torch.zeros(0, 23, 3)},
        {"transl": torch.zeros(0, 3), "global_orient": torch.zeros(0, 3)},
    ],
)
def test_empty_batch_with_other_parameters_omitted(body32, posed_body, which, kwargs):
    body = body32 if which == "free" else posed_body
    out = body(**kwargs)
    assert out.vertices.shape == (0, body.num_vertices, 3)
    assert out.joints.shape == (0, NUM_JOINTS, 3)
    assert out.betas.shape == (0, NUM_BETAS) and out.body_pose.shape == (0, 23, 3)


def test_empty_batch_mismatch_is_a_clear_error(body32):
    with pytest.raises(ValueError, match="batch size"):
        body32(betas=torch.zeros(0, NUM_BETAS), transl=torch.zeros(1, 3))


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.int16])
def test_regress_integer_vertices_is_not_zeros(body32, dtype):
    verts = (body32().vertices * 1000).round()  # millimetres, integral
    ref = body32.regress(verts, "h36m17")
    out = body32.regress(verts.to(dtype), "h36m17")
    assert out.is_floating_point() and out.abs().max() > 100
    assert torch.allclose(out, ref)
    assert torch.allclose(body32.regress(verts.numpy(), "h36m17"), ref)


@pytest.mark.parametrize("bad", [torch.ones(1, 13348, 3, dtype=torch.bool), "vertices", None])
def test_regress_refuses_non_numbers(body32, bad):
    if isinstance(bad, torch.Tensor):
        bad = torch.ones(1, body32.num_vertices, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="vertices must be"):
        body32.regress(bad, "h36m17")


@pytest.mark.parametrize("components", [0, 1, NUM_BETAS - 1])
def test_model_with_too_few_shape_components_fails_at_load(tmp_path, components):
    arrays = dict(load_npz(free_model_path()))
    arrays["shapedirs"] = arrays["shapedirs"][:, :, :components]
    path = tmp_path / f"few{components}.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=f"{components} shape components.*at least {NUM_BETAS}"):
        load_body_model(path)


def test_model_with_more_shape_components_loads(tmp_path):
    arrays = dict(load_npz(free_model_path()))
    extra = np.zeros((*arrays["shapedirs"].shape[:2], 6))
    arrays["shapedirs"] = np.concatenate([arrays["shapedirs"], extra], axis=2)
    path = tmp_path / "more.npz"
    np.savez(path, **arrays)
    body = load_body_model(path)
    assert body(betas=torch.zeros(2, NUM_BETAS)).vertices.shape[0] == 2


@pytest.mark.parametrize("fmt", [None, 17, object()])
def test_regress_with_a_non_format_is_a_type_error(body32, fmt):
    with pytest.raises(TypeError, match="fmt must be a skeleton format"):
        body32.regress(torch.zeros(1, body32.num_vertices, 3), fmt)
