"""Export torch modules to ONNX with a dynamic batch axis, and check them against torch.

Exporter choice (torch 2.13): the TorchScript-based exporter (``dynamo=False``) is the default
here. It needs no extra package, exports in ~0.1 s, honours the requested opset exactly, and its
graphs are what TensorRT's ONNX parser has been tested on longest. The ``torch.export``-based
exporter (``exporter="dynamo"``) needs the ``onnxscript`` package (not in requirements.txt),
takes seconds, and silently raises opset 17 to 18; numerically both match torch to ~1e-7 on the
IK-style graphs in test/test_export.py. Use it when a model has data-dependent control flow the
tracer would freeze, or when torch drops the TorchScript exporter (``"auto"`` then switches).

One fix is applied to the TorchScript exporter: its ``atan2`` is ``Atan(y / x)`` plus quadrant
corrections, which returns NaN for ``atan2(0, 0)`` (torch returns 0) and -pi instead of pi for
``atan2(+0, x<0)``. IK code hits both on degenerate bones, so :func:`export_onnx` swaps in a
``Where``-guarded version for the duration of the export.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import math
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

# check_onnx_file lives in a leaf module (runtime.py and tensorrt.py need it, and this module
# imports runtime.py for verify_onnx): importing it here keeps ``export.onnx.check_onnx_file``.
from s2m_model.export.onnx_file import check_onnx_file

if TYPE_CHECKING:
    import onnx
    import torch

log = logging.getLogger(__name__)

BATCH_AXIS_NAME = "batch"
DEFAULT_OPSET = 17
Exporter = Literal["auto", "torchscript", "dynamo"]


class ParityError(RuntimeError):
    """An exported model differs from torch by more than the tolerance.

    ``diffs`` holds the max abs difference per output (``inf`` where NaN/inf positions differ).
    """

    def __init__(self, message: str, diffs: dict[str, float]) -> None:
        super().__init__(message)
        self.diffs = diffs


_SCALAR_TYPES = {"Float": "float32", "Double": "float64", "Half": "float16"}


def _atan2_symbolic(g: Any, y: Any, x: Any) -> Any:
    """NaN-free ``atan2`` for the TorchScript exporter that matches torch at ``x == 0``."""
    import torch

    y_type = _SCALAR_TYPES.get(y.type().scalarType() or "")
    if y_type is None:  # unknown at export time: promote both to float32 like torch would
        y = g.op("Cast", y, to_i=1)  # 1 = onnx.TensorProto.FLOAT
        y_type = "float32"
    dtype = getattr(torch, y_type)
    if _SCALAR_TYPES.get(x.type().scalarType() or "") != y_type:
        x = g.op("Cast", x, to_i={"float32": 1, "float64": 11, "float16": 10}[y_type])

    def const(value: float) -> Any:
        # Typed constants (no CastLike): older TensorRT parsers lack CastLike.
        return g.op("Constant", value_t=torch.tensor(value, dtype=dtype))

    zero, one, pi, half_pi = const(0.0), const(1.0), const(math.pi), const(math.pi / 2)
    x_is_zero = g.op("Equal", x, zero)
    # Dividing by 1 where x == 0 keeps the Atan branch finite; that branch is not selected there.
    atan = g.op("Atan", g.op("Div", y, g.op("Where", x_is_zero, one, x)))
    left_half = g.op(
        "Where", g.op("Not", g.op("Less", y, zero)), g.op("Add", atan, pi), g.op("Sub", atan, pi)
    )
    off_axis = g.op("Where", g.op("Less", x, zero), left_half, atan)
    on_axis = g.op(
        "Where",
        g.op("Greater", y, zero),
        half_pi,
        g.op("Where", g.op("Less", y, zero), const(-math.pi / 2), zero),
    )
    return g.op("Where", x_is_zero, on_axis, off_axis)


@contextlib.contextmanager
def _patched_symbolics(opset: int) -> Iterator[None]:
    """Register the exporter fixes for one export, then restore torch's own symbolics."""
    import torch

    torch.onnx.register_custom_op_symbolic("aten::atan2", _atan2_symbolic, opset)
    try:
        yield
    finally:
        torch.onnx.unregister_custom_op_symbolic("aten::atan2", opset)


def _resolve_exporter(exporter: Exporter) -> Literal["torchscript", "dynamo"]:
    if exporter not in ("auto", "torchscript", "dynamo"):
        raise ValueError(f"exporter must be 'auto', 'torchscript' or 'dynamo', got {exporter!r}")
    has_onnxscript = importlib.util.find_spec("onnxscript") is not None
    if exporter == "dynamo" and not has_onnxscript:
        raise ValueError("exporter='dynamo' needs the 'onnxscript' package (pip install it)")
    if exporter == "auto":
        # TorchScript while torch still ships it (no extra dependency), else torch.export.
        legacy = importlib.util.find_spec("torch.onnx._internal.torchscript_exporter") is not None
        return "torchscript" if legacy or not has_onnxscript else "dynamo"
    return exporter  # type: ignore[return-value]


def _as_tuple(outputs: Any) -> tuple[Any, ...]:
    import torch

    if isinstance(outputs, torch.Tensor):
        return (outputs,)
    if isinstance(outputs, list | tuple) and all(isinstance(o, torch.Tensor) for o in outputs):
        return tuple(outputs)
    raise ValueError(
        "the module must return a tensor or a tuple/list of tensors (in output_names order); "
        f"got {type(outputs).__name__} — wrap it in a module that returns a tuple"
    )


def _fix_io_shapes(
    model: onnx.ModelProto,
    shapes: Mapping[str, Sequence[int]],
    dynamic_batch: bool,
) -> None:
    """Declare every I/O shape exactly: axis 0 symbolic ``batch``, all other axes static.

    The TorchScript exporter's shape inference sometimes names static output axes after the
    batch symbol (e.g. ``(batch, batch)`` for a flattened ``(batch, 6)``); the traced graph only
    has axis 0 dynamic, so the shapes observed in torch are the truth.
    """
    for value in list(model.graph.input) + list(model.graph.output):
        if value.name not in shapes:
            continue
        dims = value.type.tensor_type.shape.dim
        shape = shapes[value.name]
        del dims[:]
        for axis, size in enumerate(shape):
            dim = dims.add()
            if axis == 0 and dynamic_batch:
                dim.dim_param = BATCH_AXIS_NAME
            else:
                dim.dim_value = int(size)


def export_onnx(
    module: torch.nn.Module,
    example_inputs: tuple[torch.Tensor, ...],
    path: str | Path,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_batch: bool = True,
    opset: int = DEFAULT_OPSET,
    exporter: Exporter = "auto",
) -> Path:
    """Export ``module`` to an ONNX file whose axis 0 (batch) is dynamic on every input/output.

    Args:
        module: the model, put in eval mode for the export (its mode is restored afterwards).
            ``forward`` takes the inputs positionally and returns a tensor or a tuple of tensors
            in ``output_names`` order; every tensor has the batch on axis 0.
        example_inputs: one batch, positional, e.g. ``(torch.randn(4, 17, 2),)``. Use a batch
            of at least 2: with 1, the tracer may treat the batch axis as a broadcastable
            constant. Use float32 for TensorRT (it has no float64).
        path: output ``.onnx`` file (parent folders are created).
        input_names, output_names: tensor names in the file (the keys of the backends' dicts).
        dynamic_batch: make axis 0 symbolic (``"batch"``) on all inputs and outputs.
        opset: ONNX opset (17 is supported by TensorRT >= 8.6 and onnxruntime >= 1.14).
        exporter: ``"torchscript"``, ``"dynamo"`` (needs onnxscript) or ``"auto"``; see the
            module docstring.

    Returns:
        ``path`` as a :class:`~pathlib.Path`, validated with ``onnx.checker``.

    Raises:
        ValueError: name counts that do not match the inputs/outputs, inputs that do not share
            a batch size (with ``dynamic_batch``), non-tensor outputs, an unusable exporter.
    """
    import onnx
    import torch

    path = Path(path)
    if not isinstance(module, torch.nn.Module):
        raise ValueError(f"export_onnx needs a torch.nn.Module, got {type(module).__name__}")
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    example_inputs = tuple(example_inputs)
    input_names, output_names = list(input_names), list(output_names)
    if len(input_names) != len(example_inputs):
        raise ValueError(
            f"{len(input_names)} input names {input_names} for {len(example_inputs)} example "
            "inputs"
        )
    if len(set(input_names + output_names)) != len(input_names) + len(output_names):
        raise ValueError(f"tensor names must be unique: {input_names} / {output_names}")
    if not all(isinstance(t, torch.Tensor) for t in example_inputs):
        raise ValueError("example_inputs must all be torch tensors")
    kind = _resolve_exporter(exporter)

    batches = {t.shape[0] if t.ndim else None for t in example_inputs}
    if dynamic_batch:
        if None in batches or len(batches) != 1:
            raise ValueError(
                "with dynamic_batch every example input needs the same batch size on axis 0, got "
                f"shapes {[tuple(t.shape) for t in example_inputs]}"
            )
        if batches == {1}:
            log.warning("exporting with an example batch of 1; a batch >= 2 traces more safely")
    if any(t.dtype == torch.float64 for t in example_inputs):
        log.warning("float64 inputs: fine for onnxruntime, but TensorRT engines need float32")

    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            reference = _as_tuple(module(*example_inputs))
        if len(reference) != len(output_names):
            raise ValueError(
                f"{len(output_names)} output names {output_names} for {len(reference)} outputs"
            )
        batch = next(iter(batches))
        if dynamic_batch:
            for name, out in zip(output_names, reference, strict=True):
                if out.ndim == 0 or out.shape[0] != batch:
                    raise ValueError(
                        f"output {name!r} has shape {tuple(out.shape)}: with dynamic_batch every "
                        f"output needs the batch ({batch}) on axis 0"
                    )
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "torchscript":
            _export_torchscript(module, example_inputs, path, input_names, output_names,
                                dynamic_batch, opset)
        else:
            _export_dynamo(module, example_inputs, path, input_names, output_names,
                           dynamic_batch, opset)
    finally:
        module.train(was_training)

    model = onnx.load(str(path))
    graph_inputs = [v.name for v in model.graph.input]
    unused = [n for n in input_names if n not in graph_inputs]
    if unused:
        path.unlink(missing_ok=True)
        raise ValueError(
            f"inputs {unused} do not influence any output, so the exporter dropped them; "
            "remove them from forward() and input_names"
        )
    shapes = {n: tuple(t.shape) for n, t in zip(input_names, example_inputs, strict=True)}
    shapes.update({n: tuple(t.shape) for n, t in zip(output_names, reference, strict=True)})
    _fix_io_shapes(model, shapes, dynamic_batch)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def _export_torchscript(
    module: torch.nn.Module,
    example_inputs: tuple[torch.Tensor, ...],
    path: Path,
    input_names: list[str],
    output_names: list[str],
    dynamic_batch: bool,
    opset: int,
) -> None:
    import torch

    dynamic_axes = (
        {name: {0: BATCH_AXIS_NAME} for name in input_names + output_names}
        if dynamic_batch
        else None
    )
    with warnings.catch_warnings(), _patched_symbolics(opset):
        # torch 2.9+ flags the TorchScript exporter as deprecated; choosing it is deliberate.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        torch.onnx.export(
            module,
            example_inputs,
            str(path),
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )


def _export_dynamo(
    module: torch.nn.Module,
    example_inputs: tuple[torch.Tensor, ...],
    path: Path,
    input_names: list[str],
    output_names: list[str],
    dynamic_batch: bool,
    opset: int,
) -> None:
    import torch

    dynamic_shapes = None
    if dynamic_batch:
        batch = torch.export.Dim(BATCH_AXIS_NAME, min=1)
        dynamic_shapes = tuple({0: batch} for _ in example_inputs)
    torch.onnx.export(
        module,
        example_inputs,
        str(path),
        input_names=input_names,
        output_names=output_names,
        dynamic_shapes=dynamic_shapes,
        opset_version=opset,
        dynamo=True,
        external_data=False,
        verbose=False,
    )


def verify_onnx(
    module: torch.nn.Module,
    path: str | Path,
    inputs: Sequence[Any] | Mapping[str, Any],
    atol: float = 1e-4,
    providers: Sequence[str] | None = ("CPUExecutionProvider",),
) -> dict[str, float]:
    """Run ``module`` (torch eager) and the ONNX file (onnxruntime) on the same batch.

    Args:
        module: the exported module.
        path: its ``.onnx`` file.
        inputs: tensors/arrays in the file's input order, or ``{input_name: array}``.
        atol: largest allowed max-abs difference per output.
        providers: onnxruntime providers (CPU by default, so the check is reproducible).

    Returns:
        ``{output_name: max |onnx - torch|}``; ``inf`` where NaN/inf positions or shapes differ.

    Raises:
        ParityError: some output differs by more than ``atol`` (its ``diffs`` has all values).
        FileNotFoundError / ValueError: bad file or inputs.
    """
    from s2m_model.export.runtime import OnnxRuntimeBackend, TorchBackend

    onnx_backend = OnnxRuntimeBackend(path, providers=providers)
    if isinstance(inputs, Mapping):
        named = dict(inputs)
    else:
        if len(inputs) != len(onnx_backend.input_names):
            raise ValueError(
                f"{len(inputs)} inputs for the model's inputs {onnx_backend.input_names}"
            )
        named = dict(zip(onnx_backend.input_names, inputs, strict=True))
    prepared = onnx_backend.prepare_inputs(named)
    got = onnx_backend(**prepared)
    torch_backend = TorchBackend(
        module, input_names=onnx_backend.input_names, output_names=onnx_backend.output_names
    )
    want = torch_backend(**prepared)
    diffs = {name: max_abs_diff(got[name], want[name]) for name in onnx_backend.output_names}
    bad = {k: v for k, v in diffs.items() if not v <= atol}
    if bad:
        raise ParityError(
            f"{path} differs from torch by more than {atol:g}: "
            + ", ".join(f"{k}={v:.3g}" for k, v in diffs.items()),
            diffs,
        )
    return diffs


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Max |a - b| over finite entries; ``inf`` if shapes or NaN/inf positions/values differ."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return math.inf
    finite_a, finite_b = np.isfinite(a), np.isfinite(b)
    if not np.array_equal(finite_a, finite_b):
        return math.inf
    nonfinite = ~finite_a
    if nonfinite.any() and not np.array_equal(a[nonfinite], b[nonfinite], equal_nan=True):
        return math.inf
    if not finite_a.any():
        return 0.0
    return float(np.max(np.abs(a[finite_a] - b[finite_a])))


def onnx_summary(path: str | Path) -> dict[str, Any]:
    """Opset, node count, operator types and I/O shapes of an ONNX file (for logs and docs)."""
    model = check_onnx_file(path)

    def shape(value: Any) -> list[int | str]:
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    return {
        "path": os.fspath(path),
        "opset": max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
                     default=0),
        "nodes": len(model.graph.node),
        "ops": sorted({n.op_type for n in model.graph.node}),
        "inputs": {v.name: shape(v) for v in model.graph.input},
        "outputs": {v.name: shape(v) for v in model.graph.output},
    }
