"""Benchmark: throughput of the detector-in-the-loop data engine (``s2m data build --detector``).

Prints one JSON object:

- ``stages_ms``: median milliseconds per sample of each stage, in this process on one thread:
  ``background``, ``body`` (z-buffer + shading + compositing), ``occluders``, ``finish``
  (gamma/noise/blur/JPEG), ``detect`` (MediaPipe, static-image mode) — on ``--stage-n``
  samples of the default ranges.
- ``samples_per_second``: end-to-end ``DetectorLoop.generate`` (ground truth + render +
  detector) in this process, and the same-process baseline: the plain ground-truth generator
  (``generator.generate_samples``, no render, no detector) on the same poses.
- ``build``: ``build_detector_dataset`` into a temporary folder for each ``--workers`` value
  (process start-up, body and detector loading included), with its detection rate.

Poses: the ``test`` split's mocap fits when ``../shared/data`` is present (fitted and cached
on first use), else synthetic standing poses.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from s2m_model.body import load_body_model  # noqa: E402
from s2m_model.camera import Camera  # noqa: E402
from s2m_model.data import generator as gen  # noqa: E402
from s2m_model.data import scene  # noqa: E402
from s2m_model.data.detector_build import build_detector_dataset, load_pose_pool  # noqa: E402
from s2m_model.data.detector_loop import DetectorLoop, LoopConfig  # noqa: E402
from s2m_model.data.mocap_fit import MocapFit  # noqa: E402
from s2m_model.data.visibility import face_parts  # noqa: E402
from s2m_model.smpl_layout import JOINT_INDEX  # noqa: E402
from s2m_model.util.timing import summarize  # noqa: E402

SHARED = REPO.parent / "shared" / "data"


def synthetic_pool(body, frames: int = 16) -> gen.PosePool:
    """Standing poses, arms lowered, random heading (no mocap needed)."""
    g = np.random.default_rng(0)
    rest = body.rest_joints(torch.zeros(1, 10))[0]
    leg = float(rest[0, 1] - 0.5 * (rest[7, 1] + rest[8, 1]))
    pose = (0.12 * g.standard_normal((frames, 23, 3))).astype(np.float32)
    pose[:, JOINT_INDEX["left_shoulder"] - 1, 2] -= 1.1
    pose[:, JOINT_INDEX["right_shoulder"] - 1, 2] += 1.1
    zeros = np.zeros(frames, np.float32)
    fit = MocapFit(
        name="synthetic/stand_calm_001", betas=np.zeros(10, np.float32),
        global_orient=(g.standard_normal((frames, 3)) * [0.05, 1.5, 0.05]).astype(np.float32),
        body_pose=pose,
        transl=np.tile(np.float32([0.0, leg + 0.03 - float(rest[0, 1]), 0.0]), (frames, 1)),
        frame_index=np.arange(frames, dtype=np.int32), joint_error_mm=zeros, limb_error_mm=zeros,
        bone_error_deg=zeros, source_format="bandai27", fps=7.5, source_fps=30.0, subsample=4,
        source_frames=4 * frames, per_joint_error_mm=np.zeros(3, np.float32),
        mapped_joints=("a", "b", "c"),
    )  # fmt: skip
    return gen.PosePool.from_fits([fit])


def stage_times(body, pool, n: int) -> dict[str, float]:
    """Median ms per stage over ``n`` samples drawn like the builder's."""
    cfg = LoopConfig()
    labels = scene.face_labels(body, face_parts(body))
    times: dict[str, list[float]] = {k: [] for k in ("background", "body", "occluders",
                                                       "finish", "detect")}  # fmt: skip
    with DetectorLoop(body, cfg) as loop:
        ref = loop.generate(pool, n, seed=7)  # the same cameras and bodies as the builder
        detector = loop.detector
        for k in range(n):
            rng = np.random.default_rng([7, 0, k, 2])
            cam = Camera.coerce(ref["camera"][k], *cfg.image_size)
            rot, eye = ref["world_to_camera"][k].astype(np.float64), ref["camera_center_world"][k]
            with torch.no_grad():
                verts = body(**{key: torch.as_tensor(ref[key][k:k + 1]) for key in
                                ("betas", "global_orient", "body_pose", "transl")}).vertices
            verts = verts[0].double().numpy()
            t0 = time.perf_counter()
            bg, _ = scene.make_background(rng, cam.width, cam.height, cfg.scene, camera=cam,
                                          rot_cw=rot, eye=eye)  # fmt: skip
            t1 = time.perf_counter()
            out = scene.render_body(verts, body.faces, labels, cam, scene.sample_appearance(rng),
                                    scene.sample_light(rng), bg)  # fmt: skip
            t2 = time.perf_counter()
            box = np.array([0, 0, cam.width, cam.height], np.float64)
            if out.covered.any():
                jj, ii = np.nonzero(out.covered)
                box = np.array([ii.min(), jj.min(), ii.max(), jj.max()], np.float64)
            scene.draw_occluders(rng, out.image, box, cfg.scene)
            t3 = time.perf_counter()
            frame = scene.finish_image(rng, out.image, cfg.scene)
            t4 = time.perf_counter()
            detector.detect(frame)
            t5 = time.perf_counter()
            for key, a, b in (("background", t0, t1), ("body", t1, t2), ("occluders", t2, t3),
                              ("finish", t3, t4), ("detect", t4, t5)):  # fmt: skip
                times[key].append((b - a) * 1e3)
    return {k: round(summarize(v)["median"], 1) for k, v in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=48, help="samples per throughput run")
    parser.add_argument("--stage-n", type=int, default=16, help="samples for the stage timings")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--shared", type=Path, default=SHARED)
    args = parser.parse_args()
    torch.set_num_threads(1)
    body = load_body_model("s2m-free")
    if args.shared.is_dir():
        pool, poses = load_pose_pool("test", args.shared, body, show_progress=False), "mocap test"
    else:
        pool, poses = synthetic_pool(body), "synthetic standing"
    result: dict = {"poses": poses, "cpu_count": os.cpu_count(),
                    "load_average_1min": round(os.getloadavg()[0], 2)}  # fmt: skip
    result["stages_ms"] = stage_times(body, pool, args.stage_n)
    with DetectorLoop(body) as loop:
        loop.generate(pool, 2, seed=99)  # warm-up
        t0 = time.perf_counter()
        loop.generate(pool, args.n, seed=1)
        loop_rate = args.n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    gen.generate_samples(pool, body, args.n, seed=1)
    base_rate = args.n / (time.perf_counter() - t0)
    result["samples_per_second"] = {"detector_loop": round(loop_rate, 2),
                                    "baseline_ground_truth_only": round(base_rate, 1)}  # fmt: skip
    result["build"] = {}
    for workers in args.workers:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            manifest = build_detector_dataset(
                Path(tmp) / "d", "test", args.n, seed=2, shard_size=max(1, args.n // 4),
                workers=workers, pool=pool, show_progress=False,
            )  # fmt: skip
            seconds = time.perf_counter() - t0
        result["build"][f"workers_{workers}"] = {
            "samples_per_second": round(args.n / seconds, 2),
            "detected": manifest["detection"]["overall"]["detected"],
        }
    result["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
