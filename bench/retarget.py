"""Benchmark: retargeting onto the Unitree G1 (and the s2m_humanoid URDF) — speed and quality.

Prints one JSON object. Inputs: CMU subject 131 and Bandai-Namco clips from ``../shared/data``
(fitted to the SMPL-layout body at 30 Hz), the demo clip through the s2m pipeline (if
``.venv/share/s2m/demo/demo.mp4`` exists), and a synthetic clip (always, needs no data). Per
clip, three runs in this process:

* ``output`` — the default offline settings (IK, planted feet), no temporal filter;
* ``filtered`` — the same with the One-Euro filter on the output (jitter with/without);
* ``baseline_no_feet`` — the same IK without the planted-foot handling (the foot sliding and
  foot error a plain IK gives).

Fields: ``retarget_ms`` (target building + IK per frame, median / p95), limit violations,
``end_effector_err_mm`` (hands / feet / head, median / p95), ``foot_slide_mm_s`` (robot sole
speed while the human foot is planted), ``jitter_rad_s2`` (mean |joint acceleration|); see
``s2m_model/retarget/metrics.py``. ``pooled`` gathers all clips' frames.

    python bench/retarget.py [--quick] [--no-demo]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from s2m_model.retarget import (  # noqa: E402
    TargetConfig,
    from_smpl,
    load_robot,
    retarget_motion,
    synthetic,
)
from s2m_model.retarget.metrics import (  # noqa: E402
    end_effector_errors,
    foot_sliding,
    jitter,
    joint_limit_violations,
    velocity_limit_violations,
)
from s2m_model.util.timing import summarize  # noqa: E402

DATA = REPO.parent / "shared" / "data"
DEMO = REPO / ".venv" / "share" / "s2m" / "demo" / "demo.mp4"
CMU = ("131_01", "131_02", "131_03")
BANDAI = ("dataset-1_walk_normal_001", "dataset-1_run_normal_001",
          "dataset-1_dance-short_normal_001", "dataset-1_kick_normal_001",
          "dataset-1_byebye_normal_001")  # fmt: skip


def _clips(quick: bool):
    """Yield ``(name, HumanMotion, info)``."""
    m = synthetic.motion("squat", 150)
    yield "synthetic_squat", from_smpl(m["local"], m["joints"], m["t"]), {"kind": "synthetic"}
    if not DATA.is_dir():
        return
    from s2m_model.body import load_body_model
    from s2m_model.retarget.sources import load_bvh_motion

    with contextlib.redirect_stdout(sys.stderr):  # smplx prints a notice on stdout
        body = load_body_model("s2m-free")
    for name in CMU[:1] if quick else CMU:
        path = DATA / "cmu-mocap" / f"{name}.bvh.xz"
        yield (f"cmu_{name}", *load_bvh_motion(path, body=body))
    archive = DATA / "bandai-motion" / "dataset-1.tar.xz"
    for clip in BANDAI[:1] if quick else BANDAI:
        try:
            yield (clip, *load_bvh_motion(archive, clip=clip, body=body))
        except ValueError as exc:  # a clip missing from this copy of the dataset
            print(f"skipping {clip}: {exc}", file=sys.stderr)


def _scores(robot, result) -> dict:
    return {
        "joint_limit_violations": joint_limit_violations(robot, result.q),
        "velocity_limit_violations": velocity_limit_violations(robot, result.q, result.t),
        "end_effector_err_mm": {g: {k: v[k] for k in ("median", "p95")}
                                for g, v in end_effector_errors(robot, result).items()
                                if v.get("count")},  # fmt: skip
        "foot_slide_mm_s": {k: v for k, v in foot_sliding(robot, result).items()
                            if k in ("median", "p95", "mean")},  # fmt: skip
        "jitter_rad_s2": round(jitter(result.q, result.t), 3),
    }


def bench_clip(robot, motion) -> tuple[dict, np.ndarray]:
    out = retarget_motion(robot, motion, temporal_filter=False)
    filt = retarget_motion(robot, motion, temporal_filter=True)
    base = retarget_motion(robot, motion, temporal_filter=False,
                           targets=TargetConfig(feet=False))  # fmt: skip
    ms = out.retarget_ms[1:]  # the first frame converges from the neutral pose (40 steps)
    return {
        "frames": len(motion),
        "retarget_ms": {k: round(v, 3) for k, v in summarize(ms).items() if k != "count"},
        "output": _scores(robot, out),
        "filtered": _scores(robot, filt),
        "baseline_no_feet": _scores(robot, base),
        "planted_fraction": round(float(out.planted.mean()), 3),
        "safety_clamps": out.clamps, "ik_failures": out.failures,
    }, ms  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one clip per dataset")
    parser.add_argument("--no-demo", action="store_true", help="skip the demo clip")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    g1 = load_robot("g1")
    humanoid = load_robot("s2m_humanoid")
    report: dict = {
        "bench": "retarget", "robot": "g1", "dof": g1.dof,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "clips": {}, "s2m_humanoid": {},
    }
    clips = list(_clips(args.quick))
    if DEMO.is_file() and not args.no_demo:
        from s2m_model.retarget.sources import run_pipeline

        start = time.perf_counter()
        motion, info = run_pipeline(DEMO, max_frames=90 if args.quick else 300)
        info["pipeline_s"] = round(time.perf_counter() - start, 1)
        clips.append(("demo_video", motion, info))
    pooled_ms: list[np.ndarray] = []
    for name, motion, info in clips:
        entry, ms = bench_clip(g1, motion)
        entry["input"] = info
        report["clips"][name] = entry
        pooled_ms.append(ms)
        print(f"{name}: {entry['frames']} frames, {entry['retarget_ms']['median']:.2f} ms",
              file=sys.stderr)
    name, motion, _ = clips[min(1, len(clips) - 1)]
    report["s2m_humanoid"] = {"clip": name, **bench_clip(humanoid, motion)[0]}
    ms = np.concatenate(pooled_ms)
    report["pooled"] = {
        "frames": int(ms.size),
        "retarget_ms": {k: round(v, 3) for k, v in summarize(ms).items() if k != "count"},
        "joint_limit_violations": sum(c["output"]["joint_limit_violations"]
                                      + c["filtered"]["joint_limit_violations"]
                                      for c in report["clips"].values()),
        "velocity_limit_violations": sum(c["output"]["velocity_limit_violations"]
                                         + c["filtered"]["velocity_limit_violations"]
                                         for c in report["clips"].values()),
    }  # fmt: skip
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
