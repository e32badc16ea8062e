"""Benchmark: the pipeline's front ends (``lifter`` setting) chosen by measurement.

1. **Held-out detector-in-the-loop split** (``--test``, built by ``s2m data build --split test
   --detector mediapipe``: clip groups never trained on) — each front end + DIK + body, scored
   by :func:`s2m_model.eval.frontends.evaluate_frontends` with the mesh joints regressed to
   ``h36m17`` and to ``blazepose33``, next to the detector's own world landmarks; again on the
   samples of ``--holdout-style`` (a style the fused front end was not trained on) and, when
   given, on ``--test-cmu`` (CMU mocap, another source).
2. **Demo clip** (``.venv/share/s2m/demo/demo.mp4``, first ``--demo-frames`` frames letterboxed
   to 640x480, video mode, default config): median reprojection of the mesh's COCO-17 joints
   against the detector's keypoints as a fraction of the box height, and jitter (mean
   acceleration of the 24 mesh joints, m/s^2 at the video's frame rate).
3. **COCO photo**: :func:`bench.pipeline.coco_accuracy` (mesh COCO-17 2D error, mask IoU).

Prints one JSON object. ``--skip-demo`` / ``--skip-coco`` leave parts out. Torch runs on one
thread (tiny tensors; more threads only contend on a shared CPU).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def _round(obj):
    if isinstance(obj, float):  # 4 significant digits: mm and box fractions (0.0342) alike
        return float(f"{obj:.4g}")
    if isinstance(obj, dict):
        return {k: _round(v) for k, v in obj.items()}
    return obj


def heldout(folder: Path, body, models, front_ends, styles, limit) -> dict:
    from s2m_model.eval.frontends import evaluate_frontends
    from s2m_model.lifter.fused_cli import read_folder
    from s2m_model.lifter.fused_train import clip_styles

    arrays, clips = read_folder(folder)
    n = len(arrays["betas"]) if limit is None else min(limit, len(arrays["betas"]))
    out = {"all": evaluate_frontends(arrays, body, models, front_ends, idx=np.arange(n))}
    style = np.asarray(clip_styles(clips))[arrays["clip_id"][:n]]
    for s in styles:
        idx = np.flatnonzero(style == s)
        if len(idx):
            out[f"style_{s}"] = evaluate_frontends(arrays, body, models, front_ends, idx=idx)
    return out


def demo_clip(front_ends, frames: int, body) -> dict:
    import torch
    from pipeline import DEMO_VIDEO, letterbox  # bench/pipeline.py

    from s2m_model.camera import Camera
    from s2m_model.eval.frontends import jitter, reprojection_fraction
    from s2m_model.image import iter_frames
    from s2m_model.pipeline import Pipeline, PipelineConfig

    if not DEMO_VIDEO.is_file():
        return {"error": f"{DEMO_VIDEO} not found"}
    video = [letterbox(f) for _, _, f in iter_frames(DEMO_VIDEO, max_frames=frames)]
    cam = Camera.from_fov(video[0].shape[1], video[0].shape[0])
    fps = PipelineConfig().default_fps
    out: dict = {"frames": len(video), "fps_assumed": fps}
    for name in front_ends:
        fracs, joints, used = [], [], set()
        with Pipeline(PipelineConfig(lifter=name), body=body) as pipe:
            for frame in video:
                results = pipe.process(frame)
                if not results:
                    continue
                r = results[0]
                used.add(r.lifter)
                coco = body.regress(torch.from_numpy(r.vertices)[None], "coco17")[0].numpy()
                fracs.append(reprojection_fraction(cam.project(coco), r.keypoints_2d, r.bbox))
                joints.append(r.joints)
            counters = dict(pipe.counters)
        out[name] = {
            "frames_with_person": len(joints),
            "front_end_used": sorted(used),
            "reprojection_median_box_frac": float(np.nanmedian(fracs)) if fracs else None,
            "jitter_m_s2": jitter(np.stack(joints), fps) if len(joints) >= 3 else None,
            "counters": counters,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    import torch

    from s2m_model.body import load_body_model
    from s2m_model.eval.frontends import FRONT_ENDS
    from s2m_model.lifter import load_lifter
    from s2m_model.lifter.fused import load_fused
    from s2m_model.pipeline import PipelineConfig

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--test", type=Path, default=Path("/work/data-s2m/test"))
    p.add_argument("--test-cmu", type=Path, default=None)
    p.add_argument("--holdout-style", action="append", default=[])
    p.add_argument("--fused", default="default", help="fused weights (default: shipped)")
    p.add_argument("--lifter", default="default",
                   help="s2m lifter weights on the held-out split (default: shipped)")
    p.add_argument("--limit", type=int, default=None, help="first N test samples only")
    p.add_argument("--demo-frames", type=int, default=90)
    p.add_argument("--skip-demo", action="store_true")
    p.add_argument("--skip-coco", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    with contextlib.redirect_stdout(sys.stderr):  # the body loader prints: keep stdout JSON
        body = load_body_model("s2m-free")
    models = {"s2m": load_lifter(args.lifter), "fused": load_fused(args.fused)}
    report: dict = {"default_lifter": PipelineConfig().lifter,
                    "heldout": heldout(args.test, body, models, FRONT_ENDS,
                                       args.holdout_style, args.limit)}  # fmt: skip
    if args.test_cmu is not None:
        report["test_cmu"] = heldout(args.test_cmu, body, models, FRONT_ENDS, [], args.limit)
    det = report["heldout"]["all"]["detector"]["blazepose33"]["pa_mpjpe"]
    report["goals"] = {
        name: {"pa_mpjpe_blazepose33": report["heldout"]["all"][name]["blazepose33"]["pa_mpjpe"],
               "le_45mm": report["heldout"]["all"][name]["blazepose33"]["pa_mpjpe"] <= 45.0,
               "le_0.8x_detector": report["heldout"]["all"][name]["blazepose33"]["pa_mpjpe"]
               <= 0.8 * det}  # fmt: skip
        for name in FRONT_ENDS
    }
    if not args.skip_demo:
        report["demo"] = demo_clip(FRONT_ENDS, args.demo_frames, body)
    if not args.skip_coco:
        from pipeline import coco_accuracy  # bench/pipeline.py

        report["coco_photo"] = coco_accuracy(FRONT_ENDS)
    print(json.dumps(_round(report), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
