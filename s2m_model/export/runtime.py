"""Inference backends behind one interface: torch eager, ONNX Runtime, TensorRT engines.

Every backend is called the same way::

    backend = load_backend("lifter.onnx")          # or a .engine file, or an nn.Module
    out = backend(keypoints=np.zeros((8, 17, 2), np.float32))
    out["joints"]                                   # (8, 17, 3) numpy array

Inputs and outputs are numpy arrays keyed by the tensor names chosen at export time. Axis 0 is
the batch axis (dynamic in the exported files); units and frames are those of the exported model
(for s2m models: metres, radians, body frame Y up / facing +Z / left = +X).

All backends validate their inputs the same way before running (names, rank, static dimensions,
one batch size shared by all inputs, dtype, finite values), so a bad input is a ``ValueError``
naming the tensor on every backend instead of a runtime-specific crash.
"""

from __future__ import annotations

import inspect
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

ONNX_SUFFIXES = (".onnx",)
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
# First four bytes of serialized TensorRT engines (plans) as written by TensorRT 8-10; the format
# itself is undocumented, this is the signature tools such as Netron check for.
TENSORRT_MAGICS = (b"ptrt", b"ftrt")

# ONNX Runtime's type strings -> numpy dtypes (only the ones an s2m model can have).
_ORT_DTYPES: dict[str, np.dtype] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(double)": np.dtype(np.float64),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(int8)": np.dtype(np.int8),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(bool)": np.dtype(np.bool_),
}


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape and dtype of one model input or output.

    ``shape`` holds ``None`` for a dynamic axis (normally only axis 0, the batch); ``dtype`` is
    ``None`` when the backend does not know it (a torch module without parameters).
    """

    name: str
    shape: tuple[int | None, ...] | None
    dtype: np.dtype | None


class InferenceBackend(ABC):
    """One inference runtime. Call it with keyword numpy arrays, get a dict of numpy arrays.

    Subclasses set ``name``, ``input_specs`` and ``output_names`` and implement :meth:`_run`,
    which receives inputs already validated and cast by :meth:`prepare_inputs`.
    """

    name: str = "backend"
    input_specs: list[TensorSpec]
    output_names: list[str]

    @property
    def input_names(self) -> list[str]:
        """Input tensor names, in the order of the model's forward arguments."""
        return [spec.name for spec in self.input_specs]

    def __call__(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Run the model on a batch; returns ``{output_name: array}`` with batch on axis 0."""
        return self._run(self.prepare_inputs(inputs))

    def prepare_inputs(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Validate ``inputs`` against :attr:`input_specs` and cast them to the model dtypes.

        Raises:
            ValueError: missing or unexpected names, wrong rank or static dimension, batch sizes
                that differ between inputs, an empty batch, a float array for an integer input,
                or non-finite values.
        """
        expected = self.input_names
        missing = [n for n in expected if n not in inputs]
        unexpected = [n for n in inputs if n not in expected]
        if missing or unexpected:
            raise ValueError(
                f"{self.name}: expected inputs {expected}, missing {missing}, unexpected "
                f"{unexpected}"
            )
        prepared: dict[str, np.ndarray] = {}
        batch: int | None = None
        for spec in self.input_specs:
            arr = _to_numpy(inputs[spec.name])
            if spec.shape is not None:
                if arr.ndim != len(spec.shape):
                    raise ValueError(
                        f"{self.name}: input {spec.name!r} must have shape "
                        f"{_fmt_shape(spec.shape)}, got {tuple(arr.shape)}"
                    )
                for axis, (want, got) in enumerate(zip(spec.shape, arr.shape, strict=True)):
                    if want is not None and want != got:
                        raise ValueError(
                            f"{self.name}: input {spec.name!r} axis {axis} must be {want} "
                            f"(shape {_fmt_shape(spec.shape)}), got {tuple(arr.shape)}"
                        )
            if arr.ndim == 0:
                raise ValueError(f"{self.name}: input {spec.name!r} needs a batch axis")
            if arr.shape[0] == 0:
                raise ValueError(f"{self.name}: input {spec.name!r} has an empty batch")
            if batch is None:
                batch = arr.shape[0]
            elif arr.shape[0] != batch:
                raise ValueError(
                    f"{self.name}: all inputs must share the batch size; {spec.name!r} has "
                    f"{arr.shape[0]}, expected {batch}"
                )
            if spec.dtype is not None and arr.dtype != spec.dtype:
                if np.issubdtype(spec.dtype, np.integer) and not np.issubdtype(
                    arr.dtype, np.integer
                ):
                    raise ValueError(
                        f"{self.name}: input {spec.name!r} must be {spec.dtype}, got {arr.dtype}"
                    )
                arr = arr.astype(spec.dtype)
            if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
                raise ValueError(f"{self.name}: input {spec.name!r} contains NaN or inf")
            prepared[spec.name] = np.ascontiguousarray(arr)
        return prepared

    @abstractmethod
    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run validated inputs; return every output as a numpy array."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(inputs={self.input_names}, outputs={self.output_names})"


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _fmt_shape(shape: Sequence[int | None]) -> str:
    return "(" + ", ".join("B" if d is None else str(d) for d in shape) + ")"


# --------------------------------------------------------------------------------------------
# torch eager
# --------------------------------------------------------------------------------------------


class TorchBackend(InferenceBackend):
    """Eager PyTorch: the reference every exported backend is compared against.

    Args:
        module: the model; called positionally with the inputs in ``input_names`` order. It must
            return a tensor, a tuple/list of tensors (in ``output_names`` order) or a dict.
        input_names: defaults to the names of ``module.forward``'s positional parameters.
        output_names: defaults to ``["output"]`` / ``["output0", "output1", ...]`` / dict keys.
        example_inputs: optional tensors fixing the input shapes (axis 0 dynamic) and dtypes;
            without them float inputs are cast to the dtype of the module's first parameter.
        device: where to run; defaults to the device of the module's first parameter (CPU if
            it has none).
    """

    name = "torch"

    def __init__(
        self,
        module: torch.nn.Module,
        input_names: Sequence[str] | None = None,
        output_names: Sequence[str] | None = None,
        example_inputs: Sequence[torch.Tensor] | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        import torch

        if not isinstance(module, torch.nn.Module):
            raise ValueError(f"TorchBackend needs a torch.nn.Module, got {type(module).__name__}")
        self.module = module.eval()
        first = next(iter(module.parameters()), None)
        if first is None:
            first = next(iter(module.buffers()), None)
        self.device = torch.device(device) if device is not None else (
            first.device if first is not None else torch.device("cpu")
        )
        if input_names is None:
            params = inspect.signature(module.forward).parameters.values()
            input_names = [
                p.name
                for p in params
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            ]
        # Without example inputs only float inputs are cast (to the module's float dtype);
        # integer index inputs keep theirs.
        self._float_dtype = first.dtype if first is not None and first.is_floating_point() \
            else None
        if example_inputs is not None:
            if len(example_inputs) != len(input_names):
                raise ValueError(
                    f"{len(example_inputs)} example inputs for {len(input_names)} input names"
                )
            self.input_specs = [
                TensorSpec(n, (None, *t.shape[1:]), np.dtype(str(t.dtype).removeprefix("torch.")))
                for n, t in zip(input_names, example_inputs, strict=True)
            ]
        else:
            self.input_specs = [TensorSpec(n, None, None) for n in input_names]
        self._explicit_outputs = list(output_names) if output_names is not None else None
        self.output_names = list(output_names) if output_names is not None else []

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        args = []
        for name in self.input_names:
            t = torch.from_numpy(inputs[name]).to(self.device)
            if self._float_dtype is not None and t.is_floating_point():
                t = t.to(self._float_dtype)
            args.append(t)
        with torch.inference_mode():
            result = self.module(*args)
        outputs = self._name_outputs(result)
        return {k: v.detach().cpu().numpy() for k, v in outputs.items()}

    def _name_outputs(self, result: Any) -> dict[str, Any]:
        if isinstance(result, Mapping):
            named = dict(result)
        else:
            values = list(result) if isinstance(result, list | tuple) else [result]
            names = self._explicit_outputs or (
                ["output"] if len(values) == 1 else [f"output{i}" for i in range(len(values))]
            )
            if len(names) != len(values):
                raise ValueError(
                    f"module returned {len(values)} outputs for output names {names}"
                )
            named = dict(zip(names, values, strict=True))
        self.output_names = list(named)
        return named


# --------------------------------------------------------------------------------------------
# ONNX Runtime
# --------------------------------------------------------------------------------------------


#: ONNX Runtime execution providers s2m uses, most preferred first.
ORT_PROVIDER_PREFERENCE = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CPUExecutionProvider",
)


def default_ort_providers(available: Sequence[str] | None = None) -> list[str]:
    """The available ONNX Runtime providers in preference order: TensorRT > CUDA > CPU.

    ``available`` defaults to this onnxruntime build's ``get_available_providers()``; the CPU
    provider is the answer when none of the preferred ones is available.
    """
    if available is None:
        import onnxruntime as ort

        available = ort.get_available_providers()
    have = set(available)
    return [p for p in ORT_PROVIDER_PREFERENCE if p in have] or ["CPUExecutionProvider"]


def ort_tensorrt_options(
    onnx_path: str | Path, max_batch: int = 64, fp16: bool = False
) -> dict[str, str]:
    """Options for onnxruntime's TensorRT EP: engine cache beside the model, batch profile.

    Without an explicit profile the EP rebuilds its engine for every new batch size.
    """
    from s2m_model.export.tensorrt import batch_profile, onnx_input_shapes, shape_spec

    onnx_path = Path(onnx_path)
    try:
        profiles = batch_profile(onnx_input_shapes(onnx_path), 1, min(8, max_batch), max_batch)
    except ValueError:  # other dynamic axes: let the EP build per shape instead
        profiles = {}
    options = {
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(onnx_path.with_name(onnx_path.name + ".trt_cache")),
        "trt_fp16_enable": str(bool(fp16)),
    }
    if profiles:
        for key, idx in (("min", 0), ("opt", 1), ("max", 2)):
            options[f"trt_profile_{key}_shapes"] = shape_spec(profiles, idx)
    return options


class OnnxRuntimeBackend(InferenceBackend):
    """ONNX Runtime session over an exported ``.onnx`` file.

    Args:
        path: the ``.onnx`` file (validated with ``onnx`` before the runtime sees it).
        providers: execution providers in preference order; ``None`` = TensorRT EP > CUDA EP >
            CPU, limited to what this onnxruntime build has. If the session cannot be created
            with GPU providers (missing CUDA/TensorRT libraries) it falls back to the CPU with a
            warning; the providers actually used are in :attr:`providers`.
        intra_op_threads: threads for one operator (0 = onnxruntime's default).
        trt_max_batch, trt_fp16: with the default providers and onnxruntime-gpu's TensorRT EP,
            the batch range of its engine profile and whether it may use FP16. Its engines are
            cached in ``<model>.onnx.trt_cache/`` next to the file, so only the first session
            pays the (minutes-long on a Jetson) build.
    """

    name = "onnxruntime"

    def __init__(
        self,
        path: str | Path,
        providers: Sequence[str | tuple[str, dict]] | None = None,
        intra_op_threads: int = 0,
        trt_max_batch: int = 64,
        trt_fp16: bool = False,
    ) -> None:
        import onnxruntime as ort

        from s2m_model.export.onnx_file import check_onnx_file

        self.path = Path(path)
        check_onnx_file(self.path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(intra_op_threads)
        options.log_severity_level = 3  # errors only; provider fallbacks are logged by us
        wanted: list[str | tuple[str, dict]] = (
            list(providers)
            if providers is not None
            else [
                ("TensorrtExecutionProvider", ort_tensorrt_options(self.path, trt_max_batch,
                                                                   trt_fp16))
                if p == "TensorrtExecutionProvider"
                else p
                for p in default_ort_providers()
            ]
        )
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=wanted)
        except Exception as exc:  # noqa: BLE001 - ORT raises bare Exception subclasses
            if wanted == ["CPUExecutionProvider"]:
                raise ValueError(f"onnxruntime cannot load {self.path}: {exc}") from exc
            log.warning("onnxruntime providers %s failed (%s); using the CPU", wanted, exc)
            self.session = ort.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        self.providers: list[str] = list(self.session.get_providers())
        self.input_specs = [
            TensorSpec(
                i.name,
                tuple(d if isinstance(d, int) else None for d in i.shape),
                _ORT_DTYPES.get(i.type),
            )
            for i in self.session.get_inputs()
        ]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self.session.run(self.output_names, inputs)
        return dict(zip(self.output_names, values, strict=True))


# --------------------------------------------------------------------------------------------
# TensorRT
# --------------------------------------------------------------------------------------------


def check_engine_file(path: str | Path) -> bytes:
    """Read a serialized TensorRT engine and check its signature; returns the bytes.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: empty file or one that does not start like a TensorRT engine (deserialising
            arbitrary bytes is what could crash the runtime, so it never sees them).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"TensorRT engine not found: {path}")
    data = path.read_bytes()
    if len(data) < 64:
        raise ValueError(f"{path} is not a TensorRT engine ({len(data)} bytes)")
    if data[:4] not in TENSORRT_MAGICS:
        # ONNX protobufs start with field 1 (ir_version) = byte 0x08.
        hint = " (it looks like an ONNX model: build an engine from it first)" \
            if data[:1] == b"\x08" else ""
        raise ValueError(
            f"{path} is not a TensorRT engine: it starts with {data[:4]!r}, expected one of "
            f"{[m.decode() for m in TENSORRT_MAGICS]}{hint}"
        )
    return data


class TensorRTBackend(InferenceBackend):
    """A serialized TensorRT engine (TensorRT >= 10, name-based I/O API).

    I/O goes through torch CUDA tensors (no pycuda / cuda-python needed): inputs are copied to
    the GPU, the engine runs on torch's current CUDA stream, outputs are copied back.

    Engines are specific to the GPU model and the TensorRT version that built them; rebuild them
    on the target (``s2m export ... --engine``). Dynamic batch: any batch inside the engine's
    optimization profile (``min_batch``/``max_batch``).

    Args:
        engine_path: ``.engine`` file written by :func:`s2m_model.export.tensorrt.build_engine`
            or ``trtexec --saveEngine``.
        device: CUDA device index.

    Raises:
        FileNotFoundError / ValueError: missing or corrupt engine file (checked before TensorRT
            is even imported).
        RuntimeError: TensorRT or a CUDA-enabled torch is not available, or the engine was built
            by another TensorRT version / for another GPU.
    """

    name = "tensorrt"

    def __init__(self, engine_path: str | Path, device: int = 0) -> None:
        self.path = Path(engine_path)
        data = check_engine_file(self.path)

        from s2m_model.export.tensorrt import TensorRTUnavailable, tensorrt_available

        ok, reason = tensorrt_available()
        if not ok:
            raise TensorRTUnavailable(f"TensorRT not available: {reason}")
        import tensorrt as trt
        import torch

        if not torch.cuda.is_available():
            raise TensorRTUnavailable(
                "TensorRTBackend moves data with torch CUDA tensors, but this torch has no CUDA"
            )
        self._torch = torch
        self._trt = trt
        self.device = torch.device("cuda", device)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        with torch.cuda.device(self.device):
            self.engine = self._runtime.deserialize_cuda_engine(data)
        if self.engine is None:
            raise RuntimeError(
                f"TensorRT {trt.__version__} could not deserialize {self.path}: engines only "
                "load with the TensorRT version and GPU that built them; rebuild it on this "
                "machine (s2m export ... --engine)"
            )
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise RuntimeError(f"TensorRT could not create an execution context for {self.path}")

        specs: list[TensorSpec] = []
        self.output_names = []
        self._dtypes: dict[str, torch.dtype] = {}
        self._batch_range: dict[str, tuple[int, int]] = {}
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            dtype = _trt_to_torch_dtype(trt, self.engine.get_tensor_dtype(name))
            self._dtypes[name] = dtype
            shape = tuple(int(d) for d in self.engine.get_tensor_shape(name))
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                if any(d < 0 for d in shape[1:]):
                    raise ValueError(
                        f"{self.path}: input {name!r} {shape} is dynamic beyond the batch axis"
                    )
                if shape and shape[0] < 0:
                    lo, _, hi = self.engine.get_tensor_profile_shape(name, 0)
                    self._batch_range[name] = (int(lo[0]), int(hi[0]))
                np_dtype = np.dtype(str(dtype).removeprefix("torch."))
                specs.append(
                    TensorSpec(name, tuple(None if d < 0 else d for d in shape), np_dtype)
                )
            else:
                self.output_names.append(name)
        self.input_specs = specs

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        ctx = self.context
        with torch.cuda.device(self.device):
            stream = torch.cuda.current_stream(self.device)
            keep: list[torch.Tensor] = []  # tensors must outlive execute_async_v3
            for name, arr in inputs.items():
                if name in self._batch_range:
                    lo, hi = self._batch_range[name]
                    if not lo <= arr.shape[0] <= hi:
                        raise ValueError(
                            f"{self.name}: batch {arr.shape[0]} outside the engine's profile "
                            f"[{lo}, {hi}] for {name!r}; rebuild with a larger --max-batch"
                        )
                t = torch.from_numpy(arr).to(self.device, self._dtypes[name], non_blocking=False)
                if not ctx.set_input_shape(name, tuple(t.shape)):
                    raise ValueError(f"{self.name}: TensorRT rejected shape {tuple(t.shape)} "
                                     f"for {name!r}")
                ctx.set_tensor_address(name, t.data_ptr())
                keep.append(t)
            unresolved = ctx.infer_shapes()
            if unresolved:
                raise RuntimeError(f"{self.name}: could not infer shapes of {unresolved}")
            outputs: dict[str, torch.Tensor] = {}
            for name in self.output_names:
                shape = tuple(int(d) for d in ctx.get_tensor_shape(name))
                if any(d < 0 for d in shape):
                    raise RuntimeError(f"{self.name}: output {name!r} has data-dependent shape")
                out = torch.empty(shape, dtype=self._dtypes[name], device=self.device)
                ctx.set_tensor_address(name, out.data_ptr())
                outputs[name] = out
            if not ctx.execute_async_v3(stream.cuda_stream):
                raise RuntimeError(f"{self.name}: TensorRT execution failed for {self.path}")
            stream.synchronize()
            return {name: t.cpu().numpy() for name, t in outputs.items()}


def _trt_to_torch_dtype(trt: Any, dtype: Any) -> torch.dtype:
    import torch

    table = {
        "FLOAT": torch.float32,
        "HALF": torch.float16,
        "BF16": torch.bfloat16,
        "INT8": torch.int8,
        "UINT8": torch.uint8,
        "INT32": torch.int32,
        "INT64": torch.int64,
        "BOOL": torch.bool,
    }
    for key, value in table.items():
        if getattr(trt.DataType, key, None) == dtype:
            return value
    raise ValueError(f"TensorRT tensor dtype {dtype} is not supported by TensorRTBackend")


# --------------------------------------------------------------------------------------------
# factory
# --------------------------------------------------------------------------------------------

BACKEND_KINDS = ("auto", "torch", "onnxruntime", "tensorrt")


def load_backend(
    path_or_module: str | Path | torch.nn.Module, kind: str = "auto", **kwargs: Any
) -> InferenceBackend:
    """Open a model with the matching backend.

    Args:
        path_or_module: an ``nn.Module`` (-> :class:`TorchBackend`), a ``.onnx`` file
            (-> :class:`OnnxRuntimeBackend`) or a ``.engine``/``.plan``/``.trt`` file
            (-> :class:`TensorRTBackend`).
        kind: ``'auto'`` (by type / suffix) or one of ``'torch'``, ``'onnxruntime'``,
            ``'tensorrt'`` to insist on one.
        **kwargs: passed to the backend's constructor (e.g. ``providers=`` for ONNX Runtime).

    Raises:
        ValueError: unknown kind, a kind that does not fit the file, an unknown suffix.
        FileNotFoundError: the file does not exist.
    """
    if kind not in BACKEND_KINDS:
        raise ValueError(f"unknown backend kind {kind!r}; choose one of {BACKEND_KINDS}")
    if not isinstance(path_or_module, str | Path):
        if kind not in ("auto", "torch"):
            raise ValueError(f"kind={kind!r} needs a file path, got a {type(path_or_module)}")
        return TorchBackend(path_or_module, **kwargs)
    path = Path(path_or_module)
    if kind == "torch":
        raise ValueError("kind='torch' needs an nn.Module, not a file path")
    if not path.exists():
        raise FileNotFoundError(f"model file not found: {path}")
    suffix = path.suffix.lower()
    if kind == "auto":
        if suffix in ONNX_SUFFIXES:
            kind = "onnxruntime"
        elif suffix in ENGINE_SUFFIXES:
            kind = "tensorrt"
        else:
            raise ValueError(
                f"cannot tell the backend of {path} from its suffix; expected one of "
                f"{ONNX_SUFFIXES + ENGINE_SUFFIXES} or pass kind="
            )
    if kind == "onnxruntime":
        return OnnxRuntimeBackend(path, **kwargs)
    if suffix in ONNX_SUFFIXES:
        raise ValueError(
            f"{path} is an ONNX file; build a TensorRT engine from it first "
            "(s2m export ... --engine, or s2m_model.export.tensorrt.build_engine)"
        )
    return TensorRTBackend(path, **kwargs)
