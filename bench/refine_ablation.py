"""Benchmark: the refinement ablation (paper Table 4 style) on the held-out detector-in-the-loop
split, through the :class:`s2m_model.refine.Refiner` API (not the pipeline).

Inputs per sample are what the pipeline has: the ``fused`` front end's ``blazepose33`` skeleton
(from MediaPipe's landmarks on the render), the detector's COCO-17 keypoints, box and mask, the
camera intrinsics. Rows, cumulative: ``dik_only`` (betas 0, body placed on the keypoints) /
``+adaptive_regressor`` (mesh -> detector keypoints by the fitted regressor: placement, 2D
score, fit) / ``+sr`` (closed-form SR betas) / ``+pr`` (analytic endpoints from the skeleton's
hand/foot/face points, and the learned PR net when ``--nets`` is given) / ``+fit`` (LM on the 2D
keypoints) / ``full`` (+ the learned SR net when given, + the mask term on ``--mask-samples``).

Metrics (detected samples only, vs. the exact ground-truth body): MPJPE / PA-MPJPE (mm, mesh
``h36m17`` joints, pelvis-aligned), PVE (mm, pelvis-aligned), joint-angle error (deg, 3DPW
style), endpoint world-rotation error (deg: wrists, ankles, head, neck), long-bone length error
(mm: thighs, shins, upper arms, forearms of the mesh's rest skeleton vs the truth), mask IoU
(hard raster of the mesh vs of the true body at 160x120), 2D error (px: the mesh's COCO-17
points vs the detector's keypoints with confidence >= 0.5; and ``2d_gt_px``, the fixed
regressor's points vs the true projections), ms per person (batched CPU time of the row's
steps / samples). Prints one JSON object; torch on one thread.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import roma
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ENDPOINTS = ("left_ankle", "right_ankle", "left_wrist", "right_wrist", "head", "neck")
LONG = (("left_hip", "left_knee"), ("right_hip", "right_knee"), ("left_knee", "left_ankle"),
        ("right_knee", "right_ankle"), ("left_shoulder", "left_elbow"),
        ("right_shoulder", "right_elbow"), ("left_elbow", "left_wrist"),
        ("right_elbow", "right_wrist"))  # fmt: skip


def load(folder: Path, body, limit: int | None, frontend: str = "mediapipe-world"):
    """Samples (detected) with the front end's skeleton and the refinement inputs."""
    from s2m_model.eval.frontends import frontend_skeletons
    from s2m_model.lifter.fused import load_fused
    from s2m_model.lifter.fused_cli import read_folder
    from s2m_model.refine.silhouette import mask_to_grid

    arrays, _ = read_folder(folder)
    idx = np.flatnonzero(arrays["det_detected"].astype(bool))[:limit]
    models = {"fused": load_fused("default")} if frontend == "fused" else {}
    if frontend == "s2m":
        from s2m_model.lifter import load_lifter

        models["s2m"] = load_lifter("default")
    skel, fmt, conf = frontend_skeletons(frontend, arrays, idx, models)
    box = np.asarray(arrays["det_bbox"][idx], np.float32)
    dm = np.asarray(arrays["det_mask"][idx])
    scale = dm.shape[2] / float(arrays["image_size"][idx[0]][0])
    grid = np.stack(
        [mask_to_grid(m > 0, b * scale, (32, 24)) for m, b in zip(dm, box, strict=True)]
    )

    def t(k):
        return torch.as_tensor(np.asarray(arrays[k][idx]), dtype=torch.float32)

    return {"skeleton": skel.float(), "fmt": fmt, "conf": conf.float(),
            "kp": t("det_keypoints2d_coco17"), "box": torch.as_tensor(box),
            "grid": torch.as_tensor(grid), "camera": t("camera"),
            "image_size": np.asarray(arrays["image_size"][idx]),
            "gt": {k: t(k) for k in ("betas", "global_orient", "body_pose", "transl")},
            "gt_h36m": t("joints3d_h36m17"), "gt_kp2d": t("keypoints2d_coco17")}  # fmt: skip


def long_bone_mm(body, betas, gt_betas) -> float:
    from s2m_model.smpl_layout import JOINT_INDEX

    a, b = body.rest_joints(betas.to(body.dtype)), body.rest_joints(gt_betas.to(body.dtype))

    def length(x, p, c):
        return (x[:, JOINT_INDEX[p]] - x[:, JOINT_INDEX[c]]).norm(dim=-1)

    err = [(length(a, p, c) - length(b, p, c)).abs() for p, c in LONG]
    return float(torch.stack(err).mean()) * 1000


def silhouettes(body, vertices, cams, image_size, scale=0.25):
    from s2m_model.camera import Camera
    from s2m_model.data.raster import rasterize

    out = []
    for v, k, (w, h) in zip(vertices, cams, image_size, strict=True):
        cam = Camera(float(k[0]) * scale, float(k[1]) * scale, float(k[2]) * scale,
                     float(k[3]) * scale, int(w * scale), int(h * scale))  # fmt: skip
        depth, _ = rasterize(v.numpy().astype(np.float64), body.faces, cam)
        out.append(np.isfinite(depth))
    return np.stack(out)


def project(points, cams):
    z = points[..., 2].clamp(min=1e-3)
    return torch.stack([cams[:, :1] * points[..., 0] / z + cams[:, 2:3],
                        cams[:, 1:2] * points[..., 1] / z + cams[:, 3:4]], -1)  # fmt: skip


def score(body, d, r, w2d, gt_out, gt_world, gt_sil) -> dict:
    from s2m_model.eval.scoring import score_batch
    from s2m_model.smpl_layout import JOINT_INDEX, world_from_local

    res = dik_like(r)
    s = score_batch(res, d["gt_h36m"], "h36m17", body, r["betas"], d["gt"])
    with torch.no_grad():
        out = body(betas=r["betas"], global_orient=res.global_orient, body_pose=res.body_pose,
                   transl=res.transl)  # fmt: skip
    world = world_from_local(r["rotmats"].double())
    ends = [float((roma.rotmat_geodesic_distance(world[:, JOINT_INDEX[n]],
                                                 gt_world[:, JOINT_INDEX[n]]) * 180 / math.pi
                   ).mean()) for n in ENDPOINTS]  # fmt: skip
    kp = torch.einsum("jv,bvc->bjc", w2d.to(out.vertices), out.vertices)
    ok = d["kp"][..., 2] >= 0.5
    e2 = (project(kp, d["camera"]) - d["kp"][..., :2]).norm(dim=-1)
    fixed = body.regress(out.vertices, "coco17")
    gt_vis = d["gt_kp2d"][..., 2] > 0
    e2gt = (project(fixed, d["camera"]) - d["gt_kp2d"][..., :2]).norm(dim=-1)
    sil = silhouettes(body, out.vertices, d["camera"], d["image_size"])
    inter, union = (sil & gt_sil).sum((1, 2)), (sil | gt_sil).sum((1, 2))
    ja = torch.rad2deg(s["joint_angle"]).nanmean(1)

    def m(x):
        x = x[torch.isfinite(x)]
        return round(float(x.mean()), 2)

    return {"mpjpe_mm": m(s["mpjpe"].mean(1)), "pa_mpjpe_mm": m(s["pa_mpjpe"].mean(1)),
            "pve_mm": m(s["pve"]), "joint_angle_deg": m(ja),
            "endpoint_deg": round(float(np.mean(ends)), 2),
            "long_bone_mm": round(long_bone_mm(body, r["betas"], d["gt"]["betas"]), 2),
            "mask_iou": round(float(np.mean(inter / np.maximum(union, 1))), 3),
            "2d_px": round(float(e2[ok].mean()), 2),
            "2d_px_median": round(float(e2[ok].median()), 2),
            "2d_gt_px": round(float(e2gt[gt_vis].mean()), 2)}  # fmt: skip


def dik_like(r):
    from s2m_model import dik

    rv = roma.rotmat_to_rotvec(r["rotmats"])
    return dik.DIKResult(global_orient=rv[:, 0], body_pose=rv[:, 1:], solved=r["status"] > 0,
                         transl=r["transl"], rotmats=r["rotmats"])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    from s2m_model import dik
    from s2m_model.body import load_body_model
    from s2m_model.refine import RefineConfig, Refiner
    from s2m_model.refine.adaptive_regressor import AdaptiveRegressor
    from s2m_model.refine.endpoints import joint_status
    from s2m_model.refine.fit import FitConfig
    from s2m_model.refine.nets_io import load_refine_nets
    from s2m_model.refine.pose_net import apply_residual
    from s2m_model.refine.train import _translation
    from s2m_model.smpl_layout import world_from_local

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--test", type=Path, default=Path("/work/data-s2m/dloop/test"))
    p.add_argument("--limit", type=int, default=200)
    p.add_argument(
        "--frontend",
        default="mediapipe-world",
        choices=("mediapipe-world", "fused", "s2m"),
        help="front end whose skeleton is refined (default: the pipeline's)",
    )
    p.add_argument("--regressor", type=Path, default=None, help="adaptive coco17 regressor .npz")
    p.add_argument("--nets", type=Path, default=None, help="s2m train refine checkpoint")
    p.add_argument(
        "--mask-samples",
        type=int,
        default=0,
        help="also run the fit with the mask term on the first N samples (slow)",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    with contextlib.redirect_stdout(sys.stderr):
        body = load_body_model("s2m-free")
    d = load(args.test, body, args.limit, args.frontend)
    n, fmt = len(d["skeleton"]), d["fmt"]
    with torch.no_grad():
        gt_out = body(**d["gt"])
    gt_world = world_from_local(roma.rotvec_to_rotmat(torch.cat(
        [d["gt"]["global_orient"][:, None], d["gt"]["body_pose"]], 1)).double())  # fmt: skip
    gt_sil = silhouettes(body, gt_out.vertices, d["camera"], d["image_size"])
    w_fixed = body.regressor("coco17").float()
    w_adapt = w_fixed
    if args.regressor is not None:
        w_adapt = AdaptiveRegressor.load(args.regressor, body).dense().float().detach()
    pose_net = shape_net = None
    if args.nets is not None:
        pose_net, shape_net, _ = load_refine_nets(args.nets)
    kw = {"keypoints": d["kp"][..., :2], "keypoint_confidence": d["kp"][..., 2],
          "camera": d["camera"], "points3d": d["skeleton"],
          "points3d_confidence": d["conf"]}  # fmt: skip

    def run(adaptive: bool, sr: bool, pr: bool, fit: bool, nets: bool, mask: int = 0):
        w2d = w_adapt if adaptive else w_fixed
        t0 = time.process_time()
        cfg = RefineConfig(shape=sr, track=False, endpoints=pr, fit=fit, use_mask=mask > 0,
                           fit_config=FitConfig())  # fmt: skip
        ref = Refiner(body, fmt, "coco17", cfg, regressor2d=w2d if adaptive else None)
        sl = slice(0, mask) if mask else slice(None)
        skel, conf = d["skeleton"][sl], d["conf"][sl]
        betas, _ = ref.estimate_shape(skel, conf)
        if nets and shape_net is not None:
            with torch.no_grad():
                betas = shape_net(skel, d["kp"][sl], d["box"][sl], d["grid"][sl], betas)
        with torch.no_grad():
            solved = dik.solve(skel, fmt, body, betas=betas, confidence=conf, min_confidence=0.3)
            out = body(betas=betas, global_orient=solved.global_orient, body_pose=solved.body_pose)
            pts = torch.einsum("jv,bvc->bjc", w2d, out.vertices)
            kp = d["kp"][sl]
            t = _translation(pts, kp[..., :2], kp[..., 2].clamp(min=0), d["camera"][sl])
        solved = dataclasses.replace(solved, transl=solved.transl + t)
        if nets and pose_net is not None and pr:
            with torch.no_grad():
                res = pose_net(skel, kp, d["box"][sl], d["grid"][sl], solved.rotmats)
            rot = apply_residual(solved.rotmats, res, pose_net.joints)
            solved = dataclasses.replace(solved, rotmats=rot)
        ev = {k: (v[sl] if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
        if mask:
            ev.update(mask=d["grid"][sl], box=d["box"][sl])
        with torch.no_grad() if not fit else contextlib.nullcontext():
            r = ref.refine(skel, solved, betas, **ev)
        ms = (time.process_time() - t0) / len(skel) * 1000
        return {"rotmats": r.rotmats.detach(), "transl": r.transl.detach(),
                "betas": r.betas.detach(), "status": r.status if r.status is not None
                else joint_status(solved.solved)}, w2d, ms  # fmt: skip

    rows = {
        "dik_only": dict(adaptive=False, sr=False, pr=False, fit=False, nets=False),
        "+adaptive_regressor": dict(adaptive=True, sr=False, pr=False, fit=False, nets=False),
        "+sr": dict(adaptive=True, sr=True, pr=False, fit=False, nets=False),
        "+pr": dict(adaptive=True, sr=True, pr=True, fit=False, nets=True),
        "+fit": dict(adaptive=True, sr=True, pr=True, fit=True, nets=True),
        # The fit without SR and PR: tells whether the bone/point steps help this front end.
        "dik+adaptive+fit": dict(adaptive=True, sr=False, pr=False, fit=True, nets=False),
    }
    report: dict = {"split": str(args.test), "scored": n, "skeleton": f"{args.frontend} -> {fmt}",
                    "regressor": str(args.regressor), "nets": str(args.nets),
                    "hardware": "2-core shared x86 VM, CPU only, torch 1 thread"}  # fmt: skip
    for name, flags in rows.items():
        r, w2d, ms = run(**flags)
        report[name] = {**score(body, d, r, w2d, gt_out, gt_world, gt_sil),
                        "ms_per_person_batched": round(ms, 2)}  # fmt: skip
        print(name, report[name], file=sys.stderr)
    if args.mask_samples:
        m = min(args.mask_samples, n)
        sub = {k: (v[:m] if isinstance(v, (torch.Tensor, np.ndarray)) else v) for k, v in d.items()}
        sub["gt"] = {k: v[:m] for k, v in d["gt"].items()}
        for name, mask in (("+fit_on_mask_subset", 0), ("full_mask_subset", m)):
            r, w2d, ms = run(adaptive=True, sr=True, pr=True, fit=True, nets=True, mask=mask)
            if not mask:
                r = {k: v[:m] for k, v in r.items()}
            report[name] = {**score(body, sub, r, w2d, None, gt_world[:m], gt_sil[:m]),
                            "samples": m, "ms_per_person_batched": round(ms, 2)}  # fmt: skip
            print(name, report[name], file=sys.stderr)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
