"""Benchmark: skeleton -> mesh (DIK + body) at batch 1, and DIK throughput, JSON on stdout.

Input: ``h36m17`` skeletons regressed from random bodies inside joint limits
(``bench/dik.py``'s ``plausible_params``, seeded), the s2m-free body, float32, one torch thread
(``--threads``; onnxruntime gets the same). All runs are in this process, after a warm-up.

- ``baseline_ms``: today's eager torch path: ``dik.solve`` eager -> rotation vectors -> body
  forward with dense skinning (median of ``--iters`` calls at batch 1).
- ``cpu_batch1_ms``: the pipeline's path (``DIKRunner`` with the pipeline's default backend,
  the body with the skinning the pipeline uses), median at batch 1. ``variants_batch1_ms``
  times the other combinations (eager / jit / onnxruntime DIK x dense / sparse skinning) in
  the same run; ``fastest_batch1`` names the best one.
- ``sparse_skinning``: vertex error (mm) of top-4 sparse skinning vs dense on ``--error-batch``
  random bodies, and body-forward medians at batch 1 and 64 for both.
- ``dik_throughput_per_s``: skeletons/s of the best CPU DIK route and batch; ``dik_throughput``
  lists eager torch, the TorchScript trace and the exported ONNX graph
  (:mod:`s2m_model.export`) in onnxruntime per batch (``--batches``).
- ``gpu``: with CUDA, the same path on the GPU: eager, ``torch.compile`` (``reduce-overhead``,
  i.e. CUDA graphs) at batch 1 and DIK throughput; else ``null`` with ``gpu_reason``.

Goals (issue 14): skeleton -> mesh <= 2 ms at batch 1 (``goal_2ms_met``), DIK >= 1 M
skeletons/s on the CPU (``goal_dik_1m_met``).

Usage: ``.venv/bin/python bench/skeleton_to_mesh.py [--iters 200] [--threads 1] [--no-onnx]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
FMT = "h36m17"
MIN_CONFIDENCE = 0.3

from dik import cpu_model  # noqa: E402  (bench/dik.py, on the path above)


def median_ms(fn: Callable[[], object], iters: int, warmup: int = 10, sync=None) -> float:
    """Median wall milliseconds of ``fn()`` (``sync`` called before each clock read)."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(iters):
        if sync:
            sync()
        start = time.perf_counter()
        fn()
        if sync:
            sync()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def skeletons(body, batch: int, seed: int = 0) -> tuple[torch.Tensor, dict]:
    from dik import plausible_params

    params = plausible_params(batch, seed, body)
    body.skinning = "dense"
    with torch.no_grad():
        verts = body(**params).vertices
    return body.regress(verts, FMT), params


def skeleton_to_mesh(body, dik_fn, skinning: str):
    """One person: skeleton (1,17,3) -> posed vertices, the pipeline's sequence of ops."""
    import roma

    from s2m_model.smpl_layout import NUM_BETAS

    betas = torch.zeros(1, NUM_BETAS, dtype=body.dtype)

    def run(joints, conf):
        body.skinning = skinning
        rotmats, _, _ = dik_fn(joints, conf, betas)
        rotvec = roma.rotmat_to_rotvec(rotmats)
        return body(betas=betas, global_orient=rotvec[:, 0], body_pose=rotvec[:, 1:]).vertices

    return run


def eager_dik(body):
    from s2m_model import dik

    def run(joints, conf, betas):
        r = dik.solve(joints, FMT, body, betas=betas, confidence=conf,
                      min_confidence=MIN_CONFIDENCE)  # fmt: skip
        return r.rotmats, r.solved, r.transl

    return run


def runner_dik(body, backend: str):
    from s2m_model.pipeline.dik_runner import DIKRunner
    from s2m_model.skeletons import get_format

    runner, fmt = DIKRunner(body, MIN_CONFIDENCE, backend), get_format(FMT)
    return lambda joints, conf, betas: runner(joints, fmt, conf, betas)


def sparse_report(body, batch: int, iters: int) -> dict:
    from dik import plausible_params

    params = plausible_params(batch, 1, body)
    with torch.no_grad():
        body.skinning = "dense"
        dense = body(**params).vertices
        body.skinning = "sparse"
        sparse = body(**params).vertices
    err = (dense - sparse).norm(dim=-1) * 1e3
    out = {"bodies": batch, "max_mm": float(err.max()), "mean_mm": float(err.mean()),
           "p99_mm": float(err.flatten().quantile(0.99))}  # fmt: skip
    for b in (1, 64):
        p = {k: v[:b] for k, v in params.items()}
        for mode in ("dense", "sparse"):
            body.skinning = mode
            with torch.no_grad():
                out[f"body_{mode}_b{b}_ms"] = median_ms(lambda p=p: body(**p),
                                                        iters if b == 1 else 5, 2)  # fmt: skip
    body.skinning = "dense"
    return out


def dik_throughput(body, batches: list[int], with_onnx: bool, threads: int) -> dict:
    import numpy as np

    from s2m_model.smpl_layout import NUM_BETAS

    routes: dict[str, dict[str, float]] = {"eager": {}, "jit": {}}
    eager, jit = eager_dik(body), runner_dik(body, "jit")
    session = None
    if with_onnx:
        from s2m_model.dik import DIKModule
        from s2m_model.export.onnx import export_onnx
        from s2m_model.export.runtime import OnnxRuntimeBackend

        tmp = Path(tempfile.mkdtemp(prefix="s2m_bench_dik_"))
        example, _ = skeletons(body, 4, seed=5)
        path = export_onnx(DIKModule(body, FMT).eval(), (example, torch.zeros(4, NUM_BETAS)),
                           tmp / "dik.onnx", ["joints", "betas"],
                           ["global_orient", "body_pose", "transl", "solved"])  # fmt: skip
        session = OnnxRuntimeBackend(path, providers=["CPUExecutionProvider"],
                                     intra_op_threads=threads).session  # fmt: skip
        shutil.rmtree(tmp, ignore_errors=True)  # the session holds the model in memory
        routes["onnxruntime"] = {}
    for batch in batches:
        joints, _ = skeletons(body, batch, seed=2)
        conf = torch.ones(joints.shape[:2])
        betas = torch.zeros(batch, NUM_BETAS)
        reps = 3
        with torch.no_grad():
            for name, fn in (("eager", eager), ("jit", jit)):
                ms = median_ms(lambda fn=fn, a=(joints, conf, betas): fn(*a), reps, 1)
                routes[name][str(batch)] = batch / ms * 1e3
        if session is not None:
            feeds = {"joints": joints.numpy().astype(np.float32),
                     "betas": betas.numpy().astype(np.float32)}  # fmt: skip
            ms = median_ms(lambda f=feeds: session.run(None, f), reps, 1)
            routes["onnxruntime"][str(batch)] = batch / ms * 1e3
    return routes


def gpu_report(iters: int) -> tuple[dict | None, str | None]:
    if not torch.cuda.is_available():
        return None, "CUDA not available to this torch build/machine"
    from s2m_model.body import load_body_model
    from s2m_model.smpl_layout import NUM_BETAS

    body = load_body_model("s2m-free", device="cuda")
    body.skinning = "sparse"
    cpu_body = load_body_model("s2m-free")
    joints, _ = skeletons(cpu_body, 1)
    joints = joints.cuda()
    conf = torch.ones(joints.shape[:2], device="cuda")
    path = skeleton_to_mesh(body, eager_dik(body), "sparse")
    sync = torch.cuda.synchronize
    out: dict = {"device": torch.cuda.get_device_name(0)}
    with torch.no_grad():
        out["eager_batch1_ms"] = median_ms(lambda: path(joints, conf), iters, 10, sync)
        try:
            compiled = torch.compile(path, mode="reduce-overhead", fullgraph=False)
            out["compiled_batch1_ms"] = median_ms(lambda: compiled(joints, conf), iters, 20, sync)
        except Exception as exc:  # noqa: BLE001 - report why compile failed, keep the rest
            out["compiled_error"] = f"{type(exc).__name__}: {exc}"[:300]
        fn = eager_dik(body)
        best = 0.0
        for batch in (65536, 262144):
            j, _ = skeletons(cpu_body, 1024, seed=3)
            j = j.repeat(batch // 1024, 1, 1).cuda()
            c = torch.ones(j.shape[:2], device="cuda")
            b = torch.zeros(batch, NUM_BETAS, device="cuda")
            ms = median_ms(lambda j=j, c=c, b=b: fn(j, c, b), 5, 2, sync)
            best = max(best, batch / ms * 1e3)
        out["dik_throughput_per_s"] = best
    return out, None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--error-batch", type=int, default=256)
    parser.add_argument("--no-onnx", action="store_true", help="skip the onnxruntime route")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")  # tracer/exporter warnings: stdout carries the JSON only

    from s2m_model.body import load_body_model
    from s2m_model.pipeline.config import PipelineConfig

    cfg = PipelineConfig()
    pipeline_skinning = getattr(cfg, "body_skinning", "dense")
    body = load_body_model("s2m-free")
    joints, _ = skeletons(body, 1)
    conf = torch.ones(joints.shape[:2])
    variants = {}
    with torch.no_grad():
        for dik_name in ("eager", "jit", "onnxruntime")[: 2 if args.no_onnx else 3]:
            dik_fn = eager_dik(body) if dik_name == "eager" else runner_dik(body, dik_name)
            for skinning in ("dense", "sparse"):
                path = skeleton_to_mesh(body, dik_fn, skinning)
                variants[f"{dik_name}_{skinning}"] = median_ms(lambda p=path: p(joints, conf),
                                                               args.iters)  # fmt: skip
    cpu_ms = variants[f"{cfg.dik_backend}_{pipeline_skinning}"]
    routes = dik_throughput(body, args.batches, not args.no_onnx, args.threads)
    best_route, best_batch, best = max(
        ((r, int(b), v) for r, per in routes.items() for b, v in per.items()), key=lambda t: t[2]
    )
    gpu, reason = gpu_report(args.iters)
    report = {
        "hardware": f"{cpu_model()}, {args.threads} torch thread(s), torch {torch.__version__}",
        "load_average_1min": os.getloadavg()[0],
        "format": FMT,
        "cpu_batch1_ms": cpu_ms,
        "baseline_ms": variants["eager_dense"],
        "speedup_vs_baseline": variants["eager_dense"] / cpu_ms,
        "pipeline_path": {"dik_backend": cfg.dik_backend, "skinning": pipeline_skinning},
        "variants_batch1_ms": variants,
        "fastest_batch1": min(variants, key=variants.get),
        "sparse_skinning": sparse_report(body, args.error_batch, args.iters),
        "dik_throughput_per_s": best,
        "dik_throughput_best": {"route": best_route, "batch": best_batch},
        "dik_throughput": routes,
        "goal_2ms_met": cpu_ms <= 2.0,
        "goal_2ms_met_by_fastest_variant": min(variants.values()) <= 2.0,
        "goal_dik_1m_met": best >= 1e6,
        "gpu": gpu,
    }
    if reason:
        report["gpu_reason"] = reason
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
