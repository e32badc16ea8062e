"""``s2m export``: model -> ONNX (+ parity check) -> optional TensorRT engine.

Exit codes: 0 success; 2 bad input or a failed parity check (``s2m`` prints one error line);
3 ``--engine`` was asked for but TensorRT is not available here (the ONNX file is still written
and checked, and the equivalent ``trtexec`` command to run on the target is printed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from s2m_model.export.models import EXPORTABLE, ExportOptions

EXIT_NO_TENSORRT = 3


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export`` subcommand."""
    parser = subparsers.add_parser(
        "export",
        help="export a model to ONNX (and a TensorRT engine)",
        description=(
            "Export a registered model to ONNX with a dynamic batch axis, check it against "
            "torch with onnxruntime (batch --batch and 1), and optionally build a TensorRT "
            "engine for this machine's GPU."
        ),
        epilog=(
            "Exit codes: 0 ok; 2 bad input or parity above --atol; 3 --engine given but TensorRT "
            "is not available (ONNX still written, trtexec command printed). "
            "See docs/export.md."
        ),
    )
    parser.add_argument("--model", required=True, choices=sorted(EXPORTABLE),
                        help="registered model name")
    parser.add_argument("--onnx", required=True, type=Path, help="output .onnx file")
    parser.add_argument("--engine", type=Path, default=None,
                        help="also build a TensorRT engine here (needs TensorRT >= 10 + a GPU)")
    parser.add_argument("--fp16", action="store_true", help="allow FP16 kernels in the engine")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="weights (torch state dict) to load into the model")
    parser.add_argument("--batch", type=int, default=4,
                        help="example batch size for tracing and the parity check (default 4)")
    parser.add_argument("--max-batch", type=int, default=64,
                        help="largest batch the engine accepts (default 64)")
    parser.add_argument("--opt-batch", type=int, default=None,
                        help="batch the engine is tuned for (default: min(8, --max-batch))")
    parser.add_argument("--workspace-gb", type=float, default=1.0,
                        help="TensorRT builder workspace in GiB (default 1)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    parser.add_argument("--format", default="h36m17",
                        help="skeleton format of the dik/dik-body input (default h36m17)")
    parser.add_argument("--body", default="s2m-free",
                        help="body model for dik/dik-body: 's2m-free' or an SMPL .npz/.pkl")
    parser.add_argument("--exporter", choices=("auto", "torchscript", "dynamo"), default="auto",
                        help="torch ONNX exporter (default auto = torchscript)")
    parser.add_argument("--atol", type=float, default=1e-4,
                        help="max abs difference allowed between onnxruntime and torch")
    parser.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    """Run the export; see the module docstring for exit codes."""
    from s2m_model.export.onnx import export_onnx, verify_onnx
    from s2m_model.export.tensorrt import (
        TensorRTUnavailable,
        build_engine,
        tensorrt_available,
        trtexec_command,
    )

    if args.batch < 1:
        raise ValueError(f"--batch must be >= 1, got {args.batch}")
    opt_batch = args.opt_batch if args.opt_batch is not None else min(8, args.max_batch)
    if args.engine is not None and not 1 <= opt_batch <= args.max_batch:
        raise ValueError(f"need 1 <= --opt-batch <= --max-batch, got {opt_batch}, "
                         f"{args.max_batch}")

    options = ExportOptions(batch=args.batch, checkpoint=args.checkpoint, format=args.format,
                            body=args.body)  # fmt: skip
    module, example_inputs, input_names, output_names = EXPORTABLE[args.model](options)
    path = export_onnx(module, example_inputs, args.onnx, input_names, output_names,
                       dynamic_batch=True, opset=args.opset, exporter=args.exporter)
    print(f"exported {args.model} -> {path} (opset {args.opset}, dynamic batch)")
    for batch in sorted({args.batch, 1}):
        diffs = verify_onnx(module, path, tuple(t[:batch] for t in example_inputs),
                            atol=args.atol)
        report = ", ".join(f"{name} {diff:.2e}" for name, diff in diffs.items())
        print(f"parity onnxruntime vs torch, batch {batch}: max abs diff {report}")

    if args.engine is None:
        return 0
    trt_kwargs = dict(fp16=args.fp16, min_batch=1, opt_batch=opt_batch,
                      max_batch=args.max_batch, workspace_gb=args.workspace_gb)
    ok, reason = tensorrt_available()
    if not ok:
        print(f"TensorRT not available: {reason}", file=sys.stderr)
        print("build the engine on the target instead:\n  "
              + trtexec_command(path, args.engine, **trt_kwargs), file=sys.stderr)
        return EXIT_NO_TENSORRT
    try:
        engine = build_engine(path, args.engine, verbose=getattr(args, "verbose", False),
                              **trt_kwargs)
    except TensorRTUnavailable as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_NO_TENSORRT
    print(f"built TensorRT engine -> {engine} ({reason}, fp16={args.fp16}, "
          f"batch 1..{args.max_batch})")
    _check_engine(engine, module, example_inputs, input_names, batch=args.batch,
                  max_batch=args.max_batch, fp16=args.fp16, atol=args.atol)  # fmt: skip
    return 0


def _check_engine(
    engine: Path,
    module: Any,
    example_inputs: tuple[Any, ...],
    input_names: list[str],
    *,
    batch: int,
    max_batch: int,
    fp16: bool,
    atol: float,
) -> None:
    """Parity of the fresh engine against torch; with fp16 the bound is 1% of the output scale."""
    from s2m_model.export.onnx import ParityError, max_abs_diff
    from s2m_model.export.runtime import TensorRTBackend, TorchBackend

    trt_backend = TensorRTBackend(engine)
    batch = min(batch, max_batch)
    inputs = {n: t[:batch].numpy() for n, t in zip(input_names, example_inputs, strict=True)}
    got = trt_backend(**inputs)
    want = TorchBackend(module, input_names=input_names,
                        output_names=trt_backend.output_names)(**inputs)
    diffs = {k: max_abs_diff(got[k], want[k]) for k in trt_backend.output_names}
    report = ", ".join(f"{k} {v:.2e}" for k, v in diffs.items())
    print(f"parity TensorRT vs torch, batch {batch}: max abs diff {report}")
    scale = max(float(abs(v).max()) for v in want.values())
    atol = max(atol, 1e-2 * max(1.0, scale)) if fp16 else atol
    if not all(v <= atol for v in diffs.values()):
        raise ParityError(f"TensorRT engine {engine} differs from torch by more than {atol:g}: "
                          f"{report}", diffs)
