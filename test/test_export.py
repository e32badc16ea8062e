"""ONNX export, runtime backends, TensorRT engine building and ``s2m export``."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import onnx
import pytest
import torch

from s2m_model.export.models import EXPORTABLE, ExportOptions, toy_mlp_module
from s2m_model.export.onnx import ParityError, export_onnx, max_abs_diff, verify_onnx
from s2m_model.export.runtime import (
    OnnxRuntimeBackend,
    TensorRTBackend,
    TorchBackend,
    default_ort_providers,
    load_backend,
)
from s2m_model.export.tensorrt import (
    TensorRTUnavailable,
    build_engine,
    tensorrt_available,
    trtexec_command,
)

TRT_OK, TRT_REASON = tensorrt_available()
needs_tensorrt = pytest.mark.skipif(not TRT_OK, reason=f"TensorRT not available: {TRT_REASON}")


class MLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(12, 32), torch.nn.GELU(), torch.nn.Linear(32, 9)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


PARENTS = [0, 0, 1, 2, 0, 4]  # a 6-joint chain tree, constant index lists like in DIK
CHILDREN = [1, 4, 2, 3, 5, 5]


class IKOps(torch.nn.Module):
    """The operations analytic IK uses: bones by constant-index gathers, lengths (sqrt), unit
    vectors, cross products by indexing, angles via atan2 (with degenerate zero-length bones),
    clamp, matrix products, torch.where and torch.gather."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("rest", torch.linspace(-1.0, 1.0, 18).reshape(6, 3))
        self.register_buffer("pick", torch.tensor([3, 0, 5])[None, :, None])

    def forward(
        self, joints: torch.Tensor, rot: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        bones = joints[:, CHILDREN] - joints[:, PARENTS]  # (B, 6, 3)
        length = torch.sqrt((bones * bones).sum(-1, keepdim=True))
        unit = torch.where(length > 1e-8, bones / length.clamp(min=1e-8), torch.zeros_like(bones))
        a, b = unit[:, :-1], unit[:, 1:]
        cross = torch.stack(
            [
                a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1],
                a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
                a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0],
            ],
            dim=-1,
        )
        sin = torch.linalg.norm(cross, dim=-1)
        cos = (a * b).sum(-1).clamp(-1.0, 1.0)
        angle = torch.atan2(sin, cos)  # (B, 5)
        axis = torch.nn.functional.normalize(cross, dim=-1, eps=1e-8)
        rotated = torch.matmul(rot, (self.rest + joints[:, :6]).transpose(1, 2)).transpose(1, 2)
        index = self.pick.expand(joints.shape[0], 3, 3)
        picked = torch.gather(rotated, 1, index)  # (B, 3, 3)
        heading = torch.atan2(picked[..., 0], picked[..., 2])
        return angle, axis, torch.cat([picked.flatten(1), heading], dim=1)


def _ik_inputs(batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    joints = torch.randn(batch, 6, 3, generator=g)
    joints[0, 4] = joints[0, 0]  # zero-length bone: atan2(0, 0) and a zero cross product
    joints[0, 5] = joints[0, 4]
    rot = torch.linalg.qr(torch.randn(batch, 3, 3, generator=g)).Q
    return joints, rot


def _shape(value: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


# ---------------------------------------------------------------------------------- export


def test_mlp_export_dynamic_batch_parity(tmp_path):
    model = MLP().eval()
    x = torch.randn(4, 12)
    path = export_onnx(model, (x,), tmp_path / "mlp.onnx", ["x"], ["y"])
    proto = onnx.load(str(path))
    assert _shape(proto.graph.input[0]) == ["batch", 12]
    assert _shape(proto.graph.output[0]) == ["batch", 9]
    for batch in (1, 37):
        diffs = verify_onnx(model, path, (torch.randn(batch, 12),), atol=1e-4)
        assert set(diffs) == {"y"} and diffs["y"] <= 1e-4


def test_ik_ops_export_parity_and_no_nan(tmp_path):
    model = IKOps().eval()
    path = export_onnx(model, _ik_inputs(5), tmp_path / "ik.onnx", ["joints", "rot"],
                       ["angle", "axis", "picked"])
    proto = onnx.load(str(path))
    # Static axes are declared exactly (the exporter names some of them after the batch).
    assert [_shape(o) for o in proto.graph.output] == [["batch", 5], ["batch", 5, 3],
                                                       ["batch", 12]]
    backend = OnnxRuntimeBackend(path)
    for batch in (1, 37):
        joints, rot = _ik_inputs(batch, seed=batch)
        diffs = verify_onnx(model, path, (joints, rot), atol=1e-4)
        assert max(diffs.values()) <= 1e-4
        out = backend(joints=joints.numpy(), rot=rot.numpy())
        assert all(np.isfinite(v).all() for v in out.values())
        assert out["angle"][0, 3] == 0.0  # the degenerate bone: atan2(0, 0) = 0 as in torch


class Atan2(torch.nn.Module):
    def forward(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.atan2(y, x)


def test_atan2_matches_torch_on_axes(tmp_path):
    # torch's own ONNX atan2 gives NaN at (0, 0) and -pi at (+0, -1); the export patches it.
    # (float32 only: onnxruntime has no float64 Atan kernel and TensorRT no float64 at all.)
    dtype = torch.float32
    y = torch.tensor([[0.0, 0.0, 1.0, -1.0, 0.0, 2.0, -2.0, 1e-30]], dtype=dtype).repeat(2, 1)
    x = torch.tensor([[0.0, -1.0, 0.0, 0.0, 1.0, -3.0, -3.0, 0.0]], dtype=dtype).repeat(2, 1)
    path = export_onnx(Atan2(), (y, x), tmp_path / "atan2.onnx", ["y", "x"], ["angle"])
    got = OnnxRuntimeBackend(path)(y=y.numpy(), x=x.numpy())["angle"]
    assert got.dtype == y.numpy().dtype
    np.testing.assert_allclose(got, torch.atan2(y, x).numpy(), rtol=0, atol=1e-6)
    assert got[0, 1] == pytest.approx(math.pi)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_export_restores_torch_atan2_symbolic(tmp_path):
    y, x = torch.zeros(2, 1), torch.zeros(2, 1)
    export_onnx(Atan2(), (y, x), tmp_path / "a.onnx", ["y", "x"], ["angle"])
    torch.onnx.export(Atan2(), (y, x), str(tmp_path / "plain.onnx"), opset_version=17,
                      dynamo=False)
    ops = {n.op_type for n in onnx.load(str(tmp_path / "plain.onnx")).graph.node}
    assert "Equal" not in ops  # our guarded version is gone once export_onnx returns


def test_export_restores_training_mode(tmp_path):
    model = MLP().train()
    export_onnx(model, (torch.randn(3, 12),), tmp_path / "m.onnx", ["x"], ["y"])
    assert model.training


def test_export_rejects_bad_arguments(tmp_path):
    model = MLP()
    with pytest.raises(ValueError, match="input names"):
        export_onnx(model, (torch.randn(3, 12),), tmp_path / "a.onnx", ["x", "z"], ["y"])
    with pytest.raises(ValueError, match="output names"):
        export_onnx(model, (torch.randn(3, 12),), tmp_path / "a.onnx", ["x"], ["y", "w"])
    with pytest.raises(ValueError, match="same batch size"):
        export_onnx(IKOps(), (torch.randn(3, 6, 3), torch.randn(2, 3, 3)), tmp_path / "b.onnx",
                    ["joints", "rot"], ["angle", "axis", "picked"])

    class Mean(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean()

    with pytest.raises(ValueError, match="batch"):
        export_onnx(Mean(), (torch.randn(3, 12),), tmp_path / "c.onnx", ["x"], ["m"])

    class Unused(torch.nn.Module):
        def forward(self, x: torch.Tensor, unused: torch.Tensor) -> torch.Tensor:
            return x * 2

    with pytest.raises(ValueError, match="unused"):
        export_onnx(Unused(), (torch.randn(3, 2), torch.randn(3, 2)), tmp_path / "d.onnx",
                    ["x", "unused"], ["y"])
    assert not (tmp_path / "d.onnx").exists()


def test_verify_onnx_reports_mismatch(tmp_path):
    model = MLP().eval()
    path = export_onnx(model, (torch.randn(3, 12),), tmp_path / "m.onnx", ["x"], ["y"])
    with torch.no_grad():
        model.net[2].bias += 0.01  # the file no longer matches the module
    with pytest.raises(ParityError) as info:
        x = np.random.default_rng(0).standard_normal((4, 12))
        verify_onnx(model, path, {"x": x}, atol=1e-4)
    assert info.value.diffs["y"] == pytest.approx(0.01, rel=1e-3)


def test_max_abs_diff_flags_nan_and_shape():
    assert max_abs_diff(np.array([1.0, 2.0]), np.array([1.0, 2.5])) == 0.5
    assert max_abs_diff(np.array([1.0, np.nan]), np.array([1.0, 2.0])) == math.inf
    assert max_abs_diff(np.array([np.nan]), np.array([np.nan])) == 0.0
    assert max_abs_diff(np.zeros(2), np.zeros(3)) == math.inf


@pytest.mark.skipif(importlib.util.find_spec("onnxscript") is None,
                    reason="the dynamo exporter needs onnxscript (optional, not pinned)")
def test_dynamo_exporter_parity(tmp_path):
    model = IKOps().eval()
    path = export_onnx(model, _ik_inputs(5), tmp_path / "ik.onnx", ["joints", "rot"],
                       ["angle", "axis", "picked"], exporter="dynamo")
    diffs = verify_onnx(model, path, _ik_inputs(37, seed=3), atol=1e-4)
    assert max(diffs.values()) <= 1e-4


# -------------------------------------------------------------------------------- backends


def test_backends_share_interface_and_results(tmp_path):
    model = IKOps().eval()
    path = export_onnx(model, _ik_inputs(4), tmp_path / "ik.onnx", ["joints", "rot"],
                       ["angle", "axis", "picked"])
    joints, rot = _ik_inputs(7, seed=1)
    backends = [load_backend(model, output_names=["angle", "axis", "picked"]), load_backend(path)]
    assert isinstance(backends[0], TorchBackend) and isinstance(backends[1], OnnxRuntimeBackend)
    results = [b(joints=joints.numpy(), rot=rot.numpy()) for b in backends]
    for backend in backends:
        assert backend.input_names == ["joints", "rot"]
        assert backend.output_names == ["angle", "axis", "picked"]
    for name in ("angle", "axis", "picked"):
        assert results[0][name].shape == results[1][name].shape
        assert max_abs_diff(results[0][name], results[1][name]) <= 1e-4
    # float64 input is cast to the model's float32 on both backends
    out64 = backends[1](joints=joints.numpy().astype(np.float64), rot=rot.numpy())
    np.testing.assert_allclose(out64["angle"], results[1]["angle"], atol=1e-6)


@pytest.mark.parametrize(
    ("inputs", "match"),
    [
        ({"x": np.zeros((2, 12))}, None),
        ({}, "missing"),
        ({"x": np.zeros((2, 12)), "extra": np.zeros(2)}, "unexpected"),
        ({"x": np.zeros((2, 11))}, "axis 1 must be 12"),
        ({"x": np.zeros(12)}, "shape"),
        ({"x": np.zeros((0, 12))}, "empty batch"),
        ({"x": np.full((2, 12), np.nan)}, "NaN"),
    ],
)
def test_onnxruntime_backend_validates_inputs(tmp_path, inputs, match):
    path = export_onnx(MLP(), (torch.randn(3, 12),), tmp_path / "m.onnx", ["x"], ["y"])
    backend = OnnxRuntimeBackend(path)
    if match is None:
        assert backend(**inputs)["y"].shape == (2, 9)
    else:
        with pytest.raises(ValueError, match=match):
            backend(**inputs)


def test_batch_mismatch_between_inputs(tmp_path):
    path = export_onnx(IKOps(), _ik_inputs(3), tmp_path / "ik.onnx", ["joints", "rot"],
                       ["angle", "axis", "picked"])
    joints, rot = _ik_inputs(3)
    for backend in (OnnxRuntimeBackend(path), TorchBackend(IKOps(), example_inputs=(joints, rot))):
        with pytest.raises(ValueError, match="share the batch"):
            backend(joints=joints.numpy(), rot=rot[:2].numpy())


def test_default_providers_prefer_tensorrt_then_cuda(monkeypatch):
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["CPUExecutionProvider", "CUDAExecutionProvider",
                                 "TensorrtExecutionProvider", "AzureExecutionProvider"])
    assert default_ort_providers() == ["TensorrtExecutionProvider", "CUDAExecutionProvider",
                                       "CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert default_ort_providers() == ["CPUExecutionProvider"]


# ---------------------------------------------------------------------------- bad files


def test_missing_files_raise_file_not_found(tmp_path):
    for name in ("nope.onnx", "nope.engine"):
        with pytest.raises(FileNotFoundError, match=name):
            load_backend(tmp_path / name)
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        OnnxRuntimeBackend(tmp_path / "nope.onnx")
    with pytest.raises(FileNotFoundError, match="nope.engine"):
        TensorRTBackend(tmp_path / "nope.engine")


@pytest.mark.parametrize(
    "content", [b"", b"not an onnx model at all \x00\xff" * 10, b"\x08\x07\x12\x03abc"]
)
def test_corrupt_onnx_raises_value_error(tmp_path, content):
    path = tmp_path / "broken.onnx"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="broken.onnx"):
        load_backend(path)


def test_truncated_onnx_raises_value_error(tmp_path):
    good = export_onnx(MLP(), (torch.randn(3, 12),), tmp_path / "m.onnx", ["x"], ["y"])
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="cut.onnx"):
        OnnxRuntimeBackend(cut)


def test_corrupt_engine_raises_value_error_before_tensorrt(tmp_path):
    garbage = tmp_path / "garbage.engine"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ValueError, match="garbage.engine"):
        load_backend(garbage)
    tiny = tmp_path / "tiny.engine"
    tiny.write_bytes(b"ptrt")
    with pytest.raises(ValueError, match="tiny.engine"):
        TensorRTBackend(tiny)
    onnx_as_engine = tmp_path / "model.engine"
    good = export_onnx(MLP(), (torch.randn(3, 12),), tmp_path / "m.onnx", ["x"], ["y"])
    onnx_as_engine.write_bytes(good.read_bytes())
    with pytest.raises(ValueError, match="ONNX"):
        TensorRTBackend(onnx_as_engine)


@pytest.mark.skipif(TRT_OK, reason="checks the behaviour without TensorRT")
def test_engine_with_valid_signature_needs_tensorrt(tmp_path):
    fake = tmp_path / "fake.engine"
    fake.write_bytes(b"ptrt" + bytes(256))  # passes the file check, so TensorRT is needed next
    with pytest.raises(TensorRTUnavailable, match="TensorRT not available"):
        TensorRTBackend(fake)


def test_load_backend_rejects_mismatched_kinds(tmp_path):
    good = export_onnx(MLP(), (torch.randn(3, 12),), tmp_path / "m.onnx", ["x"], ["y"])
    with pytest.raises(ValueError, match="build a TensorRT engine"):
        load_backend(good, kind="tensorrt")
    with pytest.raises(ValueError, match="unknown backend kind"):
        load_backend(good, kind="tflite")
    with pytest.raises(ValueError, match="nn.Module"):
        load_backend(good, kind="torch")
    other = tmp_path / "model.bin"
    other.write_bytes(b"x")
    with pytest.raises(ValueError, match="suffix"):
        load_backend(other)


# ------------------------------------------------------------------------------ TensorRT


def test_tensorrt_available_reports_a_reason():
    ok, reason = tensorrt_available()
    assert isinstance(ok, bool) and isinstance(reason, str) and reason


def test_trtexec_command_has_dynamic_profile(tmp_path):
    path = export_onnx(IKOps(), _ik_inputs(3), tmp_path / "ik.onnx", ["joints", "rot"],
                       ["angle", "axis", "picked"])
    cmd = trtexec_command(path, tmp_path / "ik.engine", fp16=True, min_batch=1, opt_batch=8,
                          max_batch=32, workspace_gb=0.5)
    assert f"--onnx={path}" in cmd and "--fp16" in cmd
    assert "--minShapes=joints:1x6x3,rot:1x3x3" in cmd
    assert "--optShapes=joints:8x6x3,rot:8x3x3" in cmd
    assert "--maxShapes=joints:32x6x3,rot:32x3x3" in cmd
    assert "--memPoolSize=workspace:512M" in cmd
    with pytest.raises(ValueError, match="min_batch"):
        trtexec_command(path, tmp_path / "ik.engine", min_batch=4, opt_batch=2)


def test_onnxruntime_tensorrt_ep_options(tmp_path):
    from s2m_model.export.runtime import ort_tensorrt_options

    path = export_onnx(IKOps(), _ik_inputs(3), tmp_path / "ik.onnx", ["joints", "rot"],
                       ["angle", "axis", "picked"])
    opts = ort_tensorrt_options(path, max_batch=16, fp16=False)
    assert opts["trt_profile_max_shapes"] == "joints:16x6x3,rot:16x3x3"
    assert opts["trt_profile_min_shapes"] == "joints:1x6x3,rot:1x3x3"
    assert opts["trt_engine_cache_path"] == str(tmp_path / "ik.onnx.trt_cache")
    assert opts["trt_fp16_enable"] == "False"


@pytest.mark.skipif(TRT_OK, reason="checks the behaviour without TensorRT")
def test_build_engine_without_tensorrt_names_the_reason(tmp_path):
    path = export_onnx(MLP(), (torch.randn(3, 12),), tmp_path / "m.onnx", ["x"], ["y"])
    with pytest.raises(TensorRTUnavailable, match="TensorRT not available: .+"):
        build_engine(path, tmp_path / "m.engine")
    assert not (tmp_path / "m.engine").exists()


def test_build_engine_validates_onnx_first(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage" * 20)
    with pytest.raises(ValueError, match="bad.onnx"):
        build_engine(bad, tmp_path / "bad.engine")
    with pytest.raises(FileNotFoundError):
        build_engine(tmp_path / "missing.onnx", tmp_path / "x.engine")


@needs_tensorrt
@pytest.mark.parametrize("model_name", ["mlp", "ik"])
def test_tensorrt_engine_parity(tmp_path, model_name):
    if model_name == "mlp":
        model, example, names = MLP().eval(), (torch.randn(4, 12),), (["x"], ["y"])
    else:
        model, example, names = IKOps().eval(), _ik_inputs(4), (["joints", "rot"],
                                                               ["angle", "axis", "picked"])
    path = export_onnx(model, example, tmp_path / "m.onnx", *names)
    engine = build_engine(path, tmp_path / "m.engine", min_batch=1, opt_batch=8, max_batch=64)
    backend = load_backend(engine)
    assert isinstance(backend, TensorRTBackend)
    assert backend.input_names == names[0] and backend.output_names == names[1]
    reference = TorchBackend(model, *names)
    for batch in (1, 37):
        inputs = {n: t.numpy() for n, t in zip(names[0], _batch_like(example, batch),
                                               strict=True)}
        got, want = backend(**inputs), reference(**inputs)
        for name in names[1]:
            assert max_abs_diff(got[name], want[name]) <= 1e-4, name
    with pytest.raises(ValueError, match="profile"):
        backend(**{n: t.numpy() for n, t in zip(names[0], _batch_like(example, 65),
                                                 strict=True)})


def _batch_like(example: tuple[torch.Tensor, ...], batch: int) -> tuple[torch.Tensor, ...]:
    if len(example) == 2:
        return _ik_inputs(batch, seed=batch)
    return (torch.randn(batch, *example[0].shape[1:]),)


# ----------------------------------------------------------------------------------- CLI


def test_cli_export_toy_model(tmp_path, capsys):
    from s2m_model.cli import main

    out = tmp_path / "sub" / "toy.onnx"
    assert main(["export", "--model", "toy-mlp", "--onnx", str(out), "--batch", "5"]) == 0
    printed = capsys.readouterr().out
    assert "parity onnxruntime vs torch, batch 5" in printed
    assert "parity onnxruntime vs torch, batch 1" in printed
    backend = load_backend(out)
    x = np.random.default_rng(0).standard_normal((37, 34)).astype(np.float32)
    y = backend(x=x)["y"]
    want = toy_mlp_module()(torch.from_numpy(x)).detach().numpy()
    assert y.shape == (37, 51) and max_abs_diff(y, want) <= 1e-4


def test_cli_checkpoint_is_loaded(tmp_path):
    from s2m_model.cli import main

    module = toy_mlp_module()
    with torch.no_grad():
        module[-1].bias.fill_(3.0)
    ckpt = tmp_path / "toy.pt"
    torch.save({"state_dict": module.state_dict()}, ckpt)
    out = tmp_path / "toy.onnx"
    assert main(["export", "--model", "toy-mlp", "--onnx", str(out), "--checkpoint",
                 str(ckpt)]) == 0
    x = np.zeros((2, 34), np.float32)
    y = load_backend(out)(x=x)["y"]
    np.testing.assert_allclose(y, module(torch.from_numpy(x)).detach().numpy(), atol=1e-5)

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["export", "--model", "toy-mlp", "--onnx", str(out), "--checkpoint",
                 str(bad)]) == 2


def test_cli_engine_without_tensorrt_exits_3(tmp_path, capsys):
    from s2m_model.cli import main

    onnx_path, engine = tmp_path / "toy.onnx", tmp_path / "toy.engine"
    rc = main(["export", "--model", "toy-mlp", "--onnx", str(onnx_path), "--engine", str(engine),
               "--max-batch", "16"])
    if TRT_OK:
        assert rc == 0 and engine.is_file()
        return
    err = capsys.readouterr().err
    assert rc == 3
    assert f"TensorRT not available: {TRT_REASON}" in err
    assert "trtexec --onnx=" in err and "--maxShapes=x:16x34" in err
    assert onnx_path.is_file() and not engine.exists()


def test_cli_rejects_unknown_model(tmp_path, capsys):
    from s2m_model.cli import main

    with pytest.raises(SystemExit):
        main(["export", "--model", "nope", "--onnx", str(tmp_path / "x.onnx")])
    assert "toy-mlp" in capsys.readouterr().err


# A stand-in for the `tensorrt` package that records what build_engine asks of the TensorRT 10
# builder API, so that code path runs here too (the real build is test_tensorrt_engine_parity).


class _FakeTrt:
    __version__ = "10.3.0"

    class Logger:
        ERROR, WARNING, VERBOSE = 1, 2, 3

        def __init__(self, severity: int) -> None:
            self.severity = severity

    class MemoryPoolType:
        WORKSPACE = "workspace"

    class BuilderFlag:
        TF32 = "tf32"
        FP16 = "fp16"

    parse_ok = True
    engine_bytes: bytes | None = b"ptrt" + bytes(100)

    def __init__(self) -> None:
        fake = self
        self.calls: dict[str, object] = {"profile": {}, "flags_set": [], "flags_cleared": []}

        class Input:
            def __init__(self, name: str) -> None:
                self.name = name

        class Network:
            def __init__(self) -> None:
                self.inputs: list[Input] = []

            @property
            def num_inputs(self) -> int:
                return len(self.inputs)

            def get_input(self, i: int) -> Input:
                return self.inputs[i]

        class Parser:
            def __init__(self, network: Network, logger: object) -> None:
                self.network = network
                self.num_errors = 0 if fake.parse_ok else 1

            def parse_from_file(self, path: str) -> bool:
                model = onnx.load(path)
                self.network.inputs = [Input(i.name) for i in model.graph.input]
                return fake.parse_ok

            def get_error(self, i: int) -> str:
                return "In node 3 (parseGraph): UNSUPPORTED_NODE: FancyOp"

        class Profile:
            def set_shape(self, name, lo, opt, hi) -> None:
                fake.calls["profile"][name] = (lo, opt, hi)

        class Config:
            def set_memory_pool_limit(self, pool, size) -> None:
                fake.calls["workspace"] = (pool, size)

            def set_flag(self, flag) -> None:
                fake.calls["flags_set"].append(flag)

            def clear_flag(self, flag) -> None:
                fake.calls["flags_cleared"].append(flag)

            def add_optimization_profile(self, profile) -> int:
                return 0

        class Builder:
            platform_has_fast_fp16 = True

            def __init__(self, logger: object) -> None:
                pass

            def create_network(self, flags: int) -> Network:
                return Network()

            def create_builder_config(self) -> Config:
                return Config()

            def create_optimization_profile(self) -> Profile:
                return Profile()

            def build_serialized_network(self, network, config):
                return fake.engine_bytes

        self.OnnxParser = Parser
        self.Builder = Builder


@pytest.fixture
def fake_trt(monkeypatch):
    import sys

    fake = _FakeTrt()
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    tensorrt_available.cache_clear()
    yield fake
    tensorrt_available.cache_clear()


def test_build_engine_drives_tensorrt10_builder(tmp_path, fake_trt):
    path = export_onnx(IKOps(), _ik_inputs(3), tmp_path / "ik.onnx", ["joints", "rot"],
                       ["angle", "axis", "picked"])
    assert tensorrt_available() == (True, "TensorRT 10.3.0")
    engine = build_engine(path, tmp_path / "out" / "ik.engine", fp16=True, min_batch=2,
                          opt_batch=4, max_batch=16, workspace_gb=0.5)
    assert engine.read_bytes() == fake_trt.engine_bytes
    assert fake_trt.calls["profile"] == {
        "joints": ((2, 6, 3), (4, 6, 3), (16, 6, 3)),
        "rot": ((2, 3, 3), (4, 3, 3), (16, 3, 3)),
    }
    assert fake_trt.calls["workspace"] == ("workspace", 1 << 29)
    assert fake_trt.calls["flags_set"] == ["fp16"]
    assert fake_trt.calls["flags_cleared"] == ["tf32"]


def test_build_engine_reports_parser_and_builder_failures(tmp_path, fake_trt):
    path = export_onnx(MLP(), (torch.randn(3, 12),), tmp_path / "m.onnx", ["x"], ["y"])
    fake_trt.parse_ok = False
    with pytest.raises(ValueError, match="UNSUPPORTED_NODE: FancyOp"):
        build_engine(path, tmp_path / "m.engine")
    fake_trt.parse_ok = True
    fake_trt.engine_bytes = None
    with pytest.raises(RuntimeError, match="failed to build"):
        build_engine(path, tmp_path / "m.engine")
    assert not (tmp_path / "m.engine").exists()


def test_build_engine_fp16_on_tensorrt11_and_old_versions(tmp_path, fake_trt, monkeypatch):
    path = export_onnx(MLP(), (torch.randn(3, 12),), tmp_path / "m.onnx", ["x"], ["y"])
    monkeypatch.delattr(_FakeTrt.BuilderFlag, "FP16")  # removed with weak typing in 11.x
    fake_trt.__version__ = "11.4.0"
    with pytest.raises(RuntimeError, match="weak typing"):
        build_engine(path, tmp_path / "m.engine", fp16=True)
    assert build_engine(path, tmp_path / "m.engine").is_file()  # float32 still builds
    fake_trt.__version__ = "8.6.1"
    tensorrt_available.cache_clear()
    ok, reason = tensorrt_available()
    assert not ok and "8.6.1" in reason


def test_export_registry_takes_typed_options():
    module, inputs, in_names, out_names = EXPORTABLE["toy-mlp"](ExportOptions(batch=3))
    assert inputs[0].shape == (3, 34) and in_names == ["x"] and out_names == ["y"]
    assert ExportOptions().format == "h36m17" and ExportOptions().body == "s2m-free"
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="batch"):
            ExportOptions(batch=bad)


def test_export_modules_have_no_import_cycle():
    """onnx.py -> runtime.py -> tensorrt.py all reach check_onnx_file in a leaf module."""
    import ast
    from pathlib import Path

    import s2m_model.export as pkg

    folder = Path(pkg.__file__).parent
    graph: dict[str, set[str]] = {}
    for path in folder.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module.startswith("s2m_model.export."):
                    deps.add(node.module.rsplit(".", 1)[1])
        graph[path.stem] = deps
    assert "runtime" not in graph["onnx_file"] and "onnx" not in graph["runtime"]
    assert "onnx" not in graph["tensorrt"]
    assert graph["onnx_file"] == set()

