"""Latency of the inference backends on a small lifter-sized MLP (CPU), JSON on stdout.

Baseline: ``TorchBackend`` (torch eager) in the same process. For each batch size it reports
the median and 95th percentile latency of one backend call (input validation and numpy
conversion included, as the ROS node pays them) and ``speedup_vs_torch`` = torch median /
backend median. ``raw_*`` rows time the bare ``module(x)`` / ``session.run`` for the overhead of
the common interface. Usage: ``python bench/export_runtime.py [--iters 300] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from s2m_model.export.onnx import export_onnx
from s2m_model.export.runtime import OnnxRuntimeBackend, TorchBackend
from s2m_model.util.timing import summarize


def lifter_mlp(hidden: int = 256) -> torch.nn.Module:
    """17 COCO keypoints x 2 -> 17 joints x 3 (metres), two hidden layers."""
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(34, hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, 51),
    ).eval()


def time_calls(fn: Callable[[], object], iters: int, warmup: int) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    samples = np.empty(iters)
    for i in range(iters):
        start = time.perf_counter()
        fn()
        samples[i] = time.perf_counter() - start
    stats = summarize((samples * 1e3).tolist())
    return {"median_ms": stats["median"], "p95_ms": stats["p95"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads for torch and onnxruntime (same for both)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--hidden", type=int, default=256)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    model = lifter_mlp(args.hidden)
    results: dict[str, object] = {
        "bench": "export_runtime",
        "model": f"MLP 34-{args.hidden}-{args.hidden}-51 float32",
        "baseline": "TorchBackend (torch eager, same process)",
        "threads": args.threads,
        "iters": args.iters,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "results": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model, (torch.zeros(4, 34),), Path(tmp) / "mlp.onnx", ["x"], ["y"])
        ort_backend = OnnxRuntimeBackend(path, providers=["CPUExecutionProvider"],
                                         intra_op_threads=args.threads)
        torch_backend = TorchBackend(model, ["x"], ["y"])
        results["onnxruntime_providers"] = ort_backend.providers
        rng = np.random.default_rng(0)
        for batch in args.batches:
            x = rng.standard_normal((batch, 34)).astype(np.float32)
            xt = torch.from_numpy(x)

            def raw_torch(xt: torch.Tensor = xt) -> object:
                with torch.inference_mode():
                    return model(xt)

            rows = {
                "torch": time_calls(lambda x=x: torch_backend(x=x), args.iters, args.warmup),
                "onnxruntime": time_calls(lambda x=x: ort_backend(x=x), args.iters, args.warmup),
                "raw_torch": time_calls(raw_torch, args.iters, args.warmup),
                "raw_onnxruntime": time_calls(
                    lambda x=x: ort_backend.session.run(None, {"x": x}), args.iters, args.warmup
                ),
            }
            base = rows["torch"]["median_ms"]
            for row in rows.values():
                row["speedup_vs_torch"] = base / row["median_ms"]
            results["results"][f"batch_{batch}"] = rows  # type: ignore[index]
    json.dump(results, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
