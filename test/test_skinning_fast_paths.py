"""The fast skeleton -> mesh paths: DIK in onnxruntime (DIKRunner backend "onnxruntime")."""

from __future__ import annotations

import pytest
import torch

from s2m_model import dik
from s2m_model.pipeline.config import PipelineConfig
from s2m_model.pipeline.dik_runner import DIK_BACKENDS, DIKRunner
from s2m_model.skeletons import get_format

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def body32():
    """The pipeline's body: s2m-free in float32."""
    from s2m_model.body import load_body_model

    return load_body_model("s2m-free")


@pytest.fixture(scope="module")
def skeletons(body32):
    """Seeded h36m17 skeletons near the rest pose, with one low-confidence joint."""
    g = torch.Generator().manual_seed(3)
    rest = body32.rest_points(torch.zeros(3, 10), "h36m17")
    joints = rest + 0.05 * torch.randn(rest.shape, generator=g)
    conf = torch.ones(joints.shape[:2])
    conf[1, 5] = 0.1  # a missing joint in the second skeleton
    return joints, conf


def _eager(body, joints, conf, betas, prev=None):
    return DIKRunner(body, 0.3, "eager")(joints, get_format("h36m17"), conf, betas, prev)


def test_onnxruntime_backend_matches_eager(body32, skeletons):
    body = body32
    joints, conf = skeletons
    fmt, betas = get_format("h36m17"), torch.zeros(3, 10)
    runner = DIKRunner(body, 0.3, "onnxruntime")
    rotmats, solved, transl = runner(joints, fmt, conf, betas)
    ref = _eager(body, joints, conf, betas)
    torch.testing.assert_close(rotmats, ref[0], atol=1e-4, rtol=0)
    assert torch.equal(solved, ref[1])
    torch.testing.assert_close(transl, ref[2], atol=1e-5, rtol=0)
    assert not bool(solved[1].all())  # the missing joint is reported
    # One session serves every batch size (dynamic batch axis).
    rot1, _, _ = runner(joints[:1], fmt, conf[:1], betas[:1])
    torch.testing.assert_close(rot1, ref[0][:1], atol=1e-4, rtol=0)
    assert runner.num_traces == 1
    # With the previous frame's rotations (a second graph).
    prev = ref[0]
    with_prev = runner(joints, fmt, conf, betas, prev)
    torch.testing.assert_close(with_prev[0], _eager(body, joints, conf, betas, prev)[0],
                               atol=1e-4, rtol=0)  # fmt: skip
    assert runner.num_traces == 2


def test_onnxruntime_backend_falls_back_for_float64(body, skeletons):
    joints, conf = skeletons
    runner = DIKRunner(body, 0.3, "onnxruntime")
    joints64 = joints.double()
    betas = torch.zeros(3, 10, dtype=torch.float64)
    out = runner(joints64, get_format("h36m17"), conf.double(), betas)
    assert out[0].dtype == torch.float64  # ran the torch path, not onnxruntime
    ref = dik.solve(joints64, "h36m17", body, betas=betas, confidence=conf.double())
    torch.testing.assert_close(out[0], ref.rotmats.to(out[0].dtype), atol=1e-6, rtol=0)


def test_backend_choice_is_validated(body):
    assert "onnxruntime" in DIK_BACKENDS
    assert PipelineConfig(dik_backend="onnxruntime").dik_backend == "onnxruntime"
    with pytest.raises(ValueError, match="DIK backend must be one of"):
        DIKRunner(body, 0.3, "tensorrt-please")
