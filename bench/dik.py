"""Benchmark: DIK vs the swing-only analytic IK vs the iterative IK (to convergence).

One batch of ``h36m17`` skeletons regressed from posed bodies, so every method sees exact input
and the ground-truth rotations are known:

- ``bandai`` (default when ``../shared/data`` and the mocap fits are available): frames drawn
  (seeded) from the Bandai-Namco dataset-1 clips of the ``train`` split (held-in), as fitted by
  :mod:`s2m_model.data.mocap` (cached fits; the first run fits the dataset, minutes);
- ``plausible``: random poses inside joint limits (hinge elbows/knees), random shapes.

Methods, all in this process on the same batch, after a warm-up:

- ``dik``: :func:`s2m_model.dik.solve` (median over ``--repeats`` runs);
- ``swing``: :func:`s2m_model.ik_baselines.swing_only_ik` (median over ``--repeats``);
- ``iterative``: :func:`s2m_model.ik_baselines.iterative_ik`, Levenberg-Marquardt per sample
  (the paper's baseline is Minimal-IK, also LM), run once until every sample converged;
  ``--lbfgs`` adds the torch L-BFGS variant.

Per frame (``per_frame``): DIK on one skeleton, and ``--naive`` skeletons solved one at a time
by the same LM evaluated through the full mesh each step (``model="mesh"``): the setting of
Minimal-IK, the paper's baseline.

Reported per method: wall and CPU (process) seconds per batch and ms per skeleton, MPJPE,
PA-MPJPE, PVE (mm), joint-angle error (radians, 3DPW definition: global rotations of pelvis,
hips, knees, shoulders, elbows). Ratios: iterative / DIK time, batched and per frame (the
issue's goal is >= 10,000x; the paper reports 30.6 s vs 0.019 s = 1,611x on unstated hardware),
and the speed-up of the factored joint model over evaluating the full mesh.

Usage: ``.venv/bin/python bench/dik.py [--batch 64] [--source auto|bandai|plausible]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED_DATA = REPO.parent / "shared" / "data"
GOAL_RATIO = 10_000.0
PAPER = {"iterative_s": 30.6, "dik_s": 0.019, "ratio": 30.6 / 0.019,
         "iterative_joint_angle_rad": 0.592, "dik_joint_angle_rad": 0.391}  # fmt: skip


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def plausible_params(batch: int, seed: int, body) -> dict[str, torch.Tensor]:
    """Random shapes/orientations and poses inside joint limits (hinge-only elbows/knees)."""
    from s2m_model import dik
    from s2m_model.smpl_layout import JOINT_NAMES, NUM_BETAS, NUM_BODY_JOINTS

    g = torch.Generator().manual_seed(seed)
    dtype = body.dtype

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g, dtype=torch.float64).to(dtype)

    def rotvec(max_angle: float) -> torch.Tensor:
        axis = torch.nn.functional.normalize(torch.randn(batch, 3, generator=g), dim=-1)
        return axis.to(dtype) * rand(batch, 1) * max_angle

    betas = torch.randn(batch, NUM_BETAS, generator=g).to(dtype) * 0.7
    pose = torch.zeros(batch, NUM_BODY_JOINTS, 3, dtype=dtype)
    for j, name in enumerate(JOINT_NAMES[1:]):
        if name.endswith(("knee", "elbow")):
            pose[:, j] = dik.hinge_axis(body, name, betas) * (0.15 + rand(batch, 1) * 1.8)
        elif name.endswith(("hip", "shoulder")):
            pose[:, j] = rotvec(1.0)
        elif name.startswith("spine") or name in ("neck", "head"):
            pose[:, j] = rotvec(0.25)
        else:
            pose[:, j] = rotvec(0.3)
    return {"betas": betas, "global_orient": rotvec(np.pi), "body_pose": pose,
            "transl": torch.randn(batch, 3, generator=g).to(dtype)}  # fmt: skip


def bandai_params(batch: int, seed: int, body) -> tuple[dict[str, torch.Tensor], dict]:
    """``batch`` frames drawn from the fitted held-in (train) Bandai dataset-1 clips."""
    from s2m_model.data.catalogue import list_clips
    from s2m_model.data.fit_cache import fit_clips

    refs = [r for r in list_clips(SHARED_DATA, ["bandai-1"]) if r.split == "train"]
    fits = list(fit_clips(refs, body).values())
    counts = np.array([f.num_frames for f in fits])
    pool = int(counts.sum())
    rng = np.random.default_rng(seed)
    picks = np.sort(rng.choice(pool, size=min(batch, pool), replace=False))
    clip_of = np.searchsorted(np.cumsum(counts), picks, side="right")
    frame_of = picks - np.concatenate([[0], np.cumsum(counts)])[clip_of]
    arrays = {k: [] for k in ("betas", "global_orient", "body_pose", "transl")}
    for c, f in zip(clip_of, frame_of, strict=True):
        arrays["betas"].append(fits[c].betas)
        for k in ("global_orient", "body_pose", "transl"):
            arrays[k].append(getattr(fits[c], k)[f])
    params = {k: torch.as_tensor(np.stack(v), dtype=body.dtype) for k, v in arrays.items()}
    info = {"source": "bandai-1 train clips (mocap fits, s2m_model.data.mocap)",
            "clips": len(fits), "frame_pool": pool,
            "clips_sampled": int(len(set(clip_of.tolist())))}  # fmt: skip
    return params, info


def timed(fn, repeats: int) -> tuple[float, float, object]:
    """Median wall and CPU seconds of ``fn()`` over ``repeats`` calls, and its last result."""
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus), result


def joint_model_speedup(body, fmt: str, batch: int) -> dict[str, float]:
    """Forward+backward seconds of the factored joint model vs the full mesh, same batch."""
    from s2m_model.ik_baselines import POSE, JointModel
    from s2m_model.smpl_layout import NUM_BETAS

    g = torch.Generator().manual_seed(1)
    pose = (torch.randn(batch, POSE, generator=g) * 0.3).to(body.dtype)
    betas = torch.zeros(batch, NUM_BETAS, dtype=body.dtype)
    transl = torch.zeros(batch, 3, dtype=body.dtype)
    out = {}
    for mode in ("factored", "mesh"):
        model = JointModel(body, fmt, mode=mode)

        def step(model=model) -> None:
            p = pose.clone().requires_grad_(True)
            model(betas, p, transl).square().sum().backward()

        step()
        out[mode] = timed(step, 5)[0]
    return {"factored_s": out["factored"], "mesh_s": out["mesh"],
            "speedup": out["mesh"] / out["factored"]}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=64, help="skeletons per batch (64)")
    parser.add_argument("--source", choices=("auto", "bandai", "plausible"), default="auto")
    parser.add_argument("--format", default="h36m17")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs of DIK/swing")
    parser.add_argument("--lbfgs", action="store_true", help="also run the L-BFGS iterative IK")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--naive", type=int, default=4,
        help="skeletons for the per-frame full-mesh LM baseline (0: skip)",
    )  # fmt: skip
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch CPU threads (1: on a shared machine extra threads spin-wait and make "
        "timings erratic)",
    )  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from s2m_model import dik
    from s2m_model.body import load_body_model
    from s2m_model.eval.scoring import score_batch, summarise
    from s2m_model.ik_baselines import iterative_ik, swing_only_ik

    with contextlib.redirect_stdout(sys.stderr):  # smplx prints a notice: keep stdout JSON
        body = load_body_model("s2m-free", dtype=torch.float32)
    load_before = os.getloadavg()[0]
    data_info: dict = {}
    params = None
    if args.source in ("auto", "bandai"):
        try:
            params, data_info = bandai_params(args.batch, args.seed, body)
        except (ImportError, FileNotFoundError, ValueError) as exc:
            if args.source == "bandai":
                raise
            data_info = {"bandai_unavailable": str(exc)}
    if params is None:
        params = plausible_params(args.batch, args.seed, body)
        data_info.update(source="plausible poses (random, inside joint limits; hinge elbows/"
                         "knees)")  # fmt: skip
    batch = params["betas"].shape[0]
    with torch.no_grad():
        out = body(**params)
        joints = out.joints if args.format == "smpl24" else body.regress(out.vertices, args.format)
    betas = params["betas"]

    methods = {
        "dik": lambda j, b: dik.solve(j, args.format, body, betas=b),
        "swing": lambda j, b: swing_only_ik(j, args.format, body, betas=b),
    }
    iterative = {"iterative": "lm"}
    if args.lbfgs:
        iterative["iterative_lbfgs"] = "lbfgs"
    # Warm-up: caches (rest skeletons, regressors, the joint model), torch.func tracing.
    for fn in methods.values():
        fn(joints[:2], betas[:2])
    for opt in iterative.values():
        iterative_ik(joints[:2], args.format, body, betas=betas[:2], optimizer=opt)

    report: dict = {}
    for name, fn in methods.items():
        with torch.no_grad():
            wall, cpu, result = timed(lambda fn=fn: fn(joints, betas), args.repeats)
        report[name] = {"s_per_batch": wall, "cpu_s_per_batch": cpu, "result": result}
    for name, opt in iterative.items():
        w0, c0 = time.perf_counter(), time.process_time()
        result, info = iterative_ik(
            joints, args.format, body, betas=betas, optimizer=opt, return_info=True
        )
        report[name] = {"s_per_batch": time.perf_counter() - w0,
                        "cpu_s_per_batch": time.process_time() - c0, "result": result,
                        "optimizer": opt, "steps": info.steps, "converged": info.converged,
                        "rmse_mm_max": float(info.rmse.max()) * 1000}  # fmt: skip
    # Per frame: DIK on one skeleton, and a Minimal-IK-like LM through the full mesh.
    with torch.no_grad():
        dik_one = timed(lambda: methods["dik"](joints[:1], betas[:1]), args.repeats)[0]
    per_frame = {"dik_s": dik_one}
    if args.naive > 0:
        iterative_ik(joints[:1], args.format, body, betas=betas[:1], model="mesh", steps=2)
        n = min(args.naive, batch)
        w0, steps = time.perf_counter(), []
        for i in range(n):
            _, info = iterative_ik(
                joints[i : i + 1], args.format, body, betas=betas[i : i + 1], model="mesh",
                return_info=True,
            )  # fmt: skip
            steps.append(info.steps)
        per_frame.update(
            iterative_mesh_s=(time.perf_counter() - w0) / n, iterative_mesh_samples=n,
            iterative_mesh_steps=steps,
        )  # fmt: skip
    load_after = os.getloadavg()[0]

    gt = dict(params)
    for entry in report.values():
        result = entry.pop("result")
        scores = summarise(score_batch(result, joints, args.format, body, betas, gt))
        entry["ms_per_skeleton"] = entry["s_per_batch"] / batch * 1000
        entry.update({
            "mpjpe_mm": scores["mpjpe"], "pa_mpjpe_mm": scores["pa_mpjpe"],
            "pve_mm": scores["pve"], "pa_pve_mm": scores["pa_pve"],
            "joint_angle_rad": scores["joint_angle"], "joint_angle_deg": scores["joint_angle_deg"],
        })  # fmt: skip
    dik_s, dik_cpu = report["dik"]["s_per_batch"], report["dik"]["cpu_s_per_batch"]
    ratios = {f"{k}_over_dik": v["s_per_batch"] / dik_s for k, v in report.items() if k != "dik"}
    ratios["iterative_over_dik_cpu"] = report["iterative"]["cpu_s_per_batch"] / dik_cpu
    if "iterative_mesh_s" in per_frame:
        naive = per_frame["iterative_mesh_s"]
        ratios["per_frame_mesh_lm_over_dik_per_frame"] = naive / dik_one
        ratios["per_frame_mesh_lm_over_dik_batched_per_skeleton"] = naive / (dik_s / batch)
    print(json.dumps({
        "bench": "dik_vs_baselines",
        "format": args.format, "batch": batch, "data": data_info,
        "hardware": {"cpu": cpu_model(), "logical_cpus": os.cpu_count(),
                     "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                     "dtype": "float32", "device": "cpu",
                     "loadavg_1min": [round(load_before, 2), round(load_after, 2)]},
        "methods": report,
        "per_frame": per_frame,
        "ratios": ratios,
        "goal_ratio": GOAL_RATIO,
        "meets_goal": {k: v >= GOAL_RATIO for k, v in ratios.items() if "over_dik" in k
                       and not k.startswith("swing")},
        "joint_model": joint_model_speedup(body, args.format, batch),
        "paper": PAPER,
    }, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
