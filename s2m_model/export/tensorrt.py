"""Build TensorRT engines from exported ONNX files (TensorRT 10.x Python API).

An engine is compiled for one GPU model and one TensorRT version, so it is built on the target
(a Jetson, or the x86 GPU box that runs the node), never shipped. ``tensorrt`` is an optional
dependency: on a Jetson it comes with JetPack (``python3-libnvinfer``), on x86 from the
``tensorrt-cu12`` wheel; nothing here imports it at module import time.

The command-line equivalent of :func:`build_engine` is printed by :func:`trtexec_command`.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MIN_TENSORRT_MAJOR = 10


class TensorRTUnavailable(RuntimeError):
    """TensorRT (or a GPU it can use) is not available on this machine."""


@functools.lru_cache(maxsize=1)
def tensorrt_available() -> tuple[bool, str]:
    """Whether TensorRT >= 10 can build and run engines here, and why not.

    Returns:
        ``(True, "TensorRT <version>")`` or ``(False, reason)`` where the reason names what is
        missing (the Python package, a recent enough version, a CUDA device).
    """
    try:
        import tensorrt as trt
    except ImportError as exc:
        return False, (
            f"the 'tensorrt' Python package is not installed ({exc}); on a Jetson it comes with "
            "JetPack (apt install python3-libnvinfer), on x86 with `pip install tensorrt-cu12`"
        )
    except OSError as exc:  # the package is there but libnvinfer is not loadable
        return False, f"the 'tensorrt' package failed to load its libraries: {exc}"
    version = getattr(trt, "__version__", "0")
    try:
        major = int(version.split(".")[0])
    except ValueError:
        major = 0
    if major < MIN_TENSORRT_MAJOR:
        return False, f"TensorRT {version} found, s2m needs >= {MIN_TENSORRT_MAJOR}"
    try:
        builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    except Exception as exc:  # noqa: BLE001 - the bindings raise plain RuntimeError/TypeError
        return False, f"TensorRT {version} cannot create a builder (no usable CUDA GPU?): {exc}"
    if builder is None:
        return False, f"TensorRT {version} cannot create a builder (no usable CUDA GPU?)"
    return True, f"TensorRT {version}"


def onnx_input_shapes(onnx_path: Path) -> dict[str, tuple[int, ...]]:
    """Input name -> ONNX shape with -1 for symbolic/unknown axes (read with ``onnx``)."""
    from s2m_model.export.onnx_file import check_onnx_file

    model = check_onnx_file(onnx_path)
    initializers = {init.name for init in model.graph.initializer}
    shapes: dict[str, tuple[int, ...]] = {}
    for inp in model.graph.input:
        if inp.name in initializers:
            continue
        dims = inp.type.tensor_type.shape.dim
        shapes[inp.name] = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)
    return shapes


def _check_batches(min_batch: int, opt_batch: int, max_batch: int) -> None:
    if not 1 <= min_batch <= opt_batch <= max_batch:
        raise ValueError(
            f"need 1 <= min_batch <= opt_batch <= max_batch, got {min_batch}, {opt_batch}, "
            f"{max_batch}"
        )


def batch_profile(
    shapes: dict[str, tuple[int, ...]], min_batch: int, opt_batch: int, max_batch: int
) -> dict[str, tuple[tuple[int, ...], ...]]:
    """min/opt/max shapes for every input whose batch axis is dynamic.

    Raises:
        ValueError: an input with a dynamic axis other than 0.
    """
    out: dict[str, tuple[tuple[int, ...], ...]] = {}
    for name, shape in shapes.items():
        if any(d < 0 for d in shape[1:]):
            raise ValueError(
                f"input {name!r} has shape {shape}: only the batch axis (0) may be dynamic"
            )
        if shape and shape[0] < 0:
            out[name] = tuple((b, *shape[1:]) for b in (min_batch, opt_batch, max_batch))
    return out


def shape_spec(profiles: dict[str, tuple[tuple[int, ...], ...]], index: int) -> str:
    """``name:AxBxC,name2:...`` for profile entry ``index`` (0 min, 1 opt, 2 max), the syntax of
    trtexec's ``--minShapes`` and onnxruntime's ``trt_profile_*_shapes``."""
    return ",".join(
        f"{name}:{'x'.join(str(d) for d in shapes[index])}" for name, shapes in profiles.items()
    )


def trtexec_command(
    onnx_path: str | Path,
    engine_path: str | Path,
    fp16: bool = False,
    min_batch: int = 1,
    opt_batch: int = 8,
    max_batch: int = 64,
    workspace_gb: float = 1.0,
) -> str:
    """The ``trtexec`` command line that builds the same engine as :func:`build_engine`.

    Needs only ``onnx`` (reads the input shapes), so it can be printed on a machine without
    TensorRT and run on the Jetson.
    """
    _check_batches(min_batch, opt_batch, max_batch)
    shapes = onnx_input_shapes(Path(onnx_path))
    profiles = batch_profile(shapes, min_batch, opt_batch, max_batch)
    parts = ["trtexec", f"--onnx={onnx_path}", f"--saveEngine={engine_path}"]
    if profiles:
        for flag, idx in (("--minShapes", 0), ("--optShapes", 1), ("--maxShapes", 2)):
            parts.append(f"{flag}={shape_spec(profiles, idx)}")
    parts.append(f"--memPoolSize=workspace:{int(workspace_gb * 1024)}M")
    if fp16:
        parts.append("--fp16")
    else:
        parts.append("--noTF32")
    return " ".join(parts)


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    fp16: bool = False,
    min_batch: int = 1,
    opt_batch: int = 8,
    max_batch: int = 64,
    workspace_gb: float = 1.0,
    tf32: bool = False,
    verbose: bool = False,
) -> Path:
    """Compile an ONNX model into a serialized TensorRT engine for this GPU.

    Args:
        onnx_path: model from :func:`s2m_model.export.onnx.export_onnx` (dynamic batch axis 0;
            all other axes static).
        engine_path: where to write the engine (parent folders are created; written atomically).
        fp16: allow half-precision kernels (TensorRT 10 ``BuilderFlag.FP16``). I/O stays
            float32; accuracy drops to ~1e-3 relative, see docs/export.md before using it for IK.
            Ignored with a warning when the GPU has no fast FP16.
        min_batch, opt_batch, max_batch: the optimization profile of the batch axis; the engine
            accepts any batch in ``[min_batch, max_batch]`` and is tuned for ``opt_batch``.
        workspace_gb: scratch memory TensorRT may use while choosing kernels (GiB).
        tf32: allow TF32 matrix products in float32 mode (faster on Ampere+, ~1e-3 error);
            off by default so a float32 engine matches ONNX Runtime to ~1e-5.
        verbose: TensorRT's verbose build log.

    Returns:
        ``engine_path`` as a :class:`~pathlib.Path`.

    Raises:
        TensorRTUnavailable: no TensorRT >= 10 or no GPU (the message says which).
        FileNotFoundError / ValueError: missing or corrupt ONNX file, an ONNX graph TensorRT
            cannot parse (the parser's errors are in the message), bad batch bounds.
        RuntimeError: the build itself failed, or fp16 was asked of a TensorRT without
            weak typing (>= 11).
    """
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    _check_batches(min_batch, opt_batch, max_batch)
    if workspace_gb <= 0:
        raise ValueError(f"workspace_gb must be > 0, got {workspace_gb}")
    shapes = onnx_input_shapes(onnx_path)  # validates the file before TensorRT sees it
    ok, reason = tensorrt_available()
    if not ok:
        raise TensorRTUnavailable(f"TensorRT not available: {reason}")
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # TensorRT 10 networks are always explicit-batch; the flag is deprecated (0 = default).
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise ValueError(
            f"TensorRT could not parse {onnx_path}:\n  " + "\n  ".join(errors or ["(no detail)"])
        )

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    _set_precision(trt, builder, config, fp16=fp16, tf32=tf32)

    profiles = batch_profile(shapes, min_batch, opt_batch, max_batch)
    if profiles:
        profile = builder.create_optimization_profile()
        for i in range(network.num_inputs):
            name = network.get_input(i).name
            if name in profiles:
                profile.set_shape(name, *profiles[name])
        if config.add_optimization_profile(profile) < 0:
            raise ValueError(f"invalid optimization profile {profiles}")

    log.info("building TensorRT engine %s (fp16=%s, batch %d..%d, opt %d)", engine_path, fp16,
             min_batch, max_batch, opt_batch)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(
            f"TensorRT failed to build an engine from {onnx_path}; rerun with verbose=True "
            "(s2m -v export ...) for the builder log"
        )
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = engine_path.with_name(engine_path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(memoryview(serialized))
    os.replace(tmp, engine_path)
    return engine_path


def _set_precision(trt: Any, builder: Any, config: Any, fp16: bool, tf32: bool) -> None:
    """Builder precision flags across TensorRT 10 (weak typing) and 11 (flags removed)."""
    if not tf32 and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)
    if not fp16:
        return
    if not hasattr(trt.BuilderFlag, "FP16"):
        raise RuntimeError(
            f"fp16 needs TensorRT 10.x (BuilderFlag.FP16); TensorRT {trt.__version__} removed "
            "weak typing: convert the ONNX file to mixed precision first (e.g. ModelOpt "
            "AutoCast) and build it without fp16"
        )
    if not getattr(builder, "platform_has_fast_fp16", True):
        log.warning("this GPU has no fast FP16; building a float32 engine instead")
        return
    config.set_flag(trt.BuilderFlag.FP16)
