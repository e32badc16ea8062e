"""Benchmark: the refinement pieces (SR, per-track shape, PR endpoints, adaptive regressor,
soft silhouette, image fit, the whole Refiner) against the baseline DIK only, betas 0.

Everything runs in this process on seeded synthetic bodies (:mod:`s2m_model.refine.synthetic`:
plausible poses, betas ~ N(0,1), upright in front of a 640x480 camera with the default field of
view), so ground truth is exact:

- ``shape_from_bones``: betas from the GT ``h36m17`` skeleton (regressed from the posed mesh);
  long-bone length error (mm) and PVE (mm, bodies posed by DIK on that skeleton) for SR's
  betas vs betas 0 vs the true betas; ms per frame at batch 1.
- ``shape_track``: one person, 60 frames, 1.5 cm joint noise: per-frame vs fused beta error.
- ``endpoints``: world-rotation error (deg) of ankles, wrists, head, neck with BlazePose points
  regressed from the mesh (noise-free and with 1 cm noise) vs DIK alone.
- ``adaptive_regressor``: held-out MPJPE of the fixed vs the fitted regressor, on a synthetic
  definition shift and (with ``../shared/data``) on CMU mocap (train 131_01+02, test 131_03).
- ``silhouette``: IoU of the reduced soft silhouette vs a hard raster of the full mesh; ms.
- ``fit``: 2D keypoints (2 px noise) + lifted skeleton (3 cm noise), start = DIK with SR
  betas: reprojection px, MPJPE/PVE before/after, converged share, ms per person at batch 1
  and batched; with the mask term: IoU before/after and ms.
- ``ablation``: DIK only / + SR / + PR / + fit / full (Refiner), PVE, MPJPE, endpoint error,
  ms per person (skeleton -> refined parameters, batch 1).

Times are per process (CPU) and wall, torch on one thread (per-person work is too small for
more: on the shared 2-core machine OpenMP spin-waits make 2 threads several times slower).
Usage: ``.venv/bin/python bench/refine.py [--quick]``; prints one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import roma
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED_DATA = REPO.parent / "shared" / "data"

from s2m_model import dik  # noqa: E402
from s2m_model.body import load_body_model  # noqa: E402
from s2m_model.camera import Camera  # noqa: E402
from s2m_model.data.raster import rasterize  # noqa: E402
from s2m_model.eval import metrics  # noqa: E402
from s2m_model.refine import (  # noqa: E402
    AdaptiveRegressor,
    BoneShapeSolver,
    FitConfig,
    ImageFitter,
    RefineConfig,
    Refiner,
    ShapeTrack,
    fit_regressor,
    refine_endpoints,
)
from s2m_model.refine.adaptive_regressor import initial_regressor  # noqa: E402
from s2m_model.refine.endpoints import joint_status  # noqa: E402
from s2m_model.refine.silhouette import (  # noqa: E402
    box_grid_coords,
    front_faces,
    mask_to_grid,
    posed_subset,
    reduce_mesh,
    soft_silhouette,
)
from s2m_model.refine.synthetic import sample_bodies  # noqa: E402
from s2m_model.smpl_layout import JOINT_INDEX, world_from_local  # noqa: E402
from s2m_model.util.timing import summarize  # noqa: E402

CAMERA = Camera.from_fov(640, 480)
ENDPOINTS = ("left_ankle", "right_ankle", "left_wrist", "right_wrist", "head", "neck")


def timed(fn, repeats: int) -> dict:
    """Median/p95 wall and CPU ms of ``fn()`` over ``repeats`` calls (after 2 warm-ups)."""
    for _ in range(2):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - t) * 1e3)
        cpu.append((time.process_time() - c) * 1e3)
    return {"wall_ms": summarize(wall, 2), "cpu_ms": summarize(cpu, 2)}


def local_of(out) -> torch.Tensor:
    return roma.rotvec_to_rotmat(torch.cat([out.global_orient[:, None], out.body_pose], 1))


def posed(body, betas, rotmats, transl):
    pose = roma.rotmat_to_rotvec(rotmats.to(body.dtype))
    return body(betas=betas.to(body.dtype), global_orient=pose[:, 0], body_pose=pose[:, 1:],
                transl=transl.to(body.dtype))  # fmt: skip


def endpoint_errors(rotmats, truth_world) -> dict:
    world = world_from_local(rotmats.to(truth_world.dtype))
    out = {}
    for name in ENDPOINTS:
        j = JOINT_INDEX[name]
        err = roma.rotmat_geodesic_distance(world[:, j], truth_world[:, j]) * 180 / math.pi
        out[name] = {
            "mean": round(float(err.mean()), 2),
            "p95": round(float(err.quantile(0.95)), 2),
        }
    every = torch.tensor([[v["mean"] for v in out.values()]])
    out["all_mean"] = round(float(every.mean()), 2)
    return out


def image_obs(body, out, pixel_noise: float, seed: int):
    k = torch.tensor(CAMERA.intrinsics, dtype=out.vertices.dtype)
    kp = body.regress(out.vertices, "coco17")
    uv = kp[..., :2] / kp[..., 2:] * k[:2] + k[2:]
    g = torch.Generator().manual_seed(seed)
    return uv + pixel_noise * torch.randn(uv.shape, generator=g, dtype=uv.dtype)


def masks_for(body, vertices, size=(64, 48), pad=10):
    """Hard full-mesh silhouettes on a grid over each body's box (+pad px), and the boxes."""
    masks, boxes = [], []
    for b in range(vertices.shape[0]):
        depth, _ = rasterize(vertices[b].numpy(), body.faces, CAMERA)
        full = np.isfinite(depth)
        ys, xs = np.nonzero(full)
        box = np.array([xs.min() - pad, ys.min() - pad, xs.max() + pad, ys.max() + pad], np.float32)
        boxes.append(box)
        masks.append(mask_to_grid(full, box, size))
    return torch.tensor(np.stack(masks)), torch.tensor(np.stack(boxes))


# ------------------------------------------------------------------------------------ pieces
def bench_shape(body, n: int, repeats: int) -> dict:
    out = sample_bodies(body, n, seed=3)
    skel = body.regress(out.vertices, "h36m17")
    solver = BoneShapeSolver(body, "h36m17")
    est = solver(skel)
    long = solver.bones.long_bone_indices()
    true_len = solver.rest_lengths(out.betas)
    err = (est.fitted - true_len)[:, long].abs() * 1000
    zero = (solver.rest_lengths(torch.zeros_like(out.betas)) - true_len)[:, long].abs() * 1000

    def pve(betas):
        r = dik.solve(skel, "h36m17", body, betas=betas)
        o = posed(body, betas, r.rotmats, r.transl)
        return round(float(metrics.pve(o.vertices, out.vertices)), 2)

    s32 = BoneShapeSolver(load_body_model("s2m-free"), "h36m17")
    one = skel[:1].float()
    return {
        "samples": n,
        "long_bone_error_mm": {
            "sr": summarize(err.flatten().tolist(), 2),
            "betas0": summarize(zero.flatten().tolist(), 2),
        },  # fmt: skip
        "pve_mm": {
            "sr": pve(est.betas),
            "betas0": pve(torch.zeros_like(out.betas)),
            "true_betas": pve(out.betas),
        },  # fmt: skip
        "beta_abs_error_mean": round(float((est.betas - out.betas).abs().mean()), 3),
        "per_frame_batch1": timed(lambda: s32(one), repeats),
        "goals": {"long_bone_mm": 10.0, "pve_mm": 25.0},
    }


def bench_track(body) -> dict:
    frames, noise = 60, 0.015
    out = sample_bodies(body, frames, seed=5)
    betas = out.betas[:1].expand(frames, -1)
    out = body(betas=betas, global_orient=out.global_orient, body_pose=out.body_pose)
    g = torch.Generator().manual_seed(5)
    skel = body.regress(out.vertices, "h36m17")
    skel = skel + noise * torch.randn(skel.shape, generator=g, dtype=skel.dtype)
    est = BoneShapeSolver(body, "h36m17", length_sigma=1.5 * noise)(skel)
    solver = BoneShapeSolver(body, "h36m17")
    long = solver.bones.long_bone_indices()
    truth = solver.rest_lengths(out.betas[:1])[:, long]

    def long_mm(betas) -> float:  # long-bone length error of a shape estimate
        return float((solver.rest_lengths(betas)[:, long] - truth).abs().mean()) * 1000

    track = ShapeTrack(window=None)
    errs, stds = [], []
    for b, c in zip(est.betas, est.covariance, strict=True):
        track.update(b, c)
        errs.append(long_mm(track.betas[None]))
        stds.append(float(track.snapshot().std[0]))
    return {
        "frames": frames, "joint_noise_m": noise,
        "long_bone_error_mm": {"per_frame_mean": round(long_mm(est.betas), 2),
                               "track_after_1": round(errs[0], 2),
                               "track_after_10": round(errs[9], 2),
                               "track_after_60": round(errs[-1], 2)},
        "beta0_std": {"after_1": round(stds[0], 3), "after_60": round(stds[-1], 3)},
        "rejected": track.rejected, "converged_all_betas": track.converged,
        "note": "betas beyond the first few barely change bone lengths: they stay at the "
                "prior (std ~1), so the track is not 'converged' in every beta",
    }  # fmt: skip


def bench_endpoints(body, n: int, repeats: int) -> dict:
    out = sample_bodies(body, n, seed=11)
    truth = world_from_local(local_of(out))
    skel = body.regress(out.vertices, "h36m17")
    pts = body.regress(out.vertices, "blazepose33")
    r = dik.solve(skel, "h36m17", body, betas=out.betas)
    res = {"samples": n, "dik_only": endpoint_errors(r.rotmats, truth)}
    g = torch.Generator().manual_seed(0)
    for noise in (0.0, 0.01, 0.02):
        noisy = pts + noise * torch.randn(pts.shape, generator=g, dtype=pts.dtype)
        e = refine_endpoints(r.rotmats, noisy, body, out.betas, transl=r.transl,
                             status=joint_status(r.solved))  # fmt: skip
        res[f"pr_noise_{int(noise * 1000)}mm"] = endpoint_errors(e.rotmats, truth)
    b32 = load_body_model("s2m-free")
    x, p, t = r.rotmats[:1].float(), pts[:1].float(), r.transl[:1].float()
    res["per_person_batch1"] = timed(lambda: refine_endpoints(x, p, b32, transl=t), repeats)
    res["goal_deg"] = 20.0
    return res


def bench_regressor(body, n: int) -> dict:
    train, test = sample_bodies(body, n, seed=21), sample_bodies(body, n // 2, seed=22)
    w0 = initial_regressor(body, "h36m17")
    vt = body.v_template
    target = w0.clone()
    for j in range(w0.shape[0]):  # half of each row moved onto the front of its support
        front = (w0[j] != 0) & (vt[:, 2] > (w0[j] @ vt)[2])
        if front.any():
            target[j] = 0.5 * w0[j] + 0.5 * front.to(w0.dtype) / front.sum()
    g = torch.Generator().manual_seed(0)
    y_train = torch.einsum("jv,bvc->bjc", target, train.vertices)
    y_train = y_train + 0.01 * torch.randn(y_train.shape, generator=g, dtype=y_train.dtype)
    y_test = torch.einsum("jv,bvc->bjc", target, test.vertices)
    reg = AdaptiveRegressor.from_body(body, "h36m17", rings=1)
    with torch.no_grad():
        fixed = float((reg(test.vertices) - y_test).norm(dim=-1).mean()) * 1000
        t = time.perf_counter()
        fit_regressor(reg, train.vertices, y_train)
        dt = time.perf_counter() - t
        learned = float((reg(test.vertices) - y_test).norm(dim=-1).mean()) * 1000
    res = {"synthetic_shift": {
        "train": n, "test": n // 2, "target_noise_m": 0.01,
        "held_out_mpjpe_mm": {"fixed": round(fixed, 2), "adaptive": round(learned, 2)},
        "fit_s": round(dt, 2), "weights": int(reg.values.numel()),
    }}  # fmt: skip
    res["cmu_mocap"] = bench_regressor_mocap(body)
    return res


def bench_regressor_mocap(body) -> dict:
    folder = SHARED_DATA / "cmu-mocap"
    if not folder.is_dir():
        return {"skipped": "../shared/data/cmu-mocap not present"}
    from s2m_model.data.bvh import load_bvh
    from s2m_model.data.mocap_fit import fit_motion
    from s2m_model.skeletons import get_format

    def clip(name):
        m = load_bvh(folder / f"{name}.bvh.xz")
        f = fit_motion(m, body, subsample=6)
        frames = f.num_frames
        o = body(betas=torch.tensor(f.betas, dtype=body.dtype)[None].expand(frames, -1),
                 global_orient=torch.tensor(f.global_orient, dtype=body.dtype),
                 body_pose=torch.tensor(f.body_pose, dtype=body.dtype),
                 transl=torch.tensor(f.transl, dtype=body.dtype))  # fmt: skip
        return o.vertices, torch.tensor(m.positions[f.frame_index], dtype=body.dtype)

    (v1, y1), (v2, y2), (v3, y3) = clip("131_01"), clip("131_02"), clip("131_03")
    fmt = get_format("cmu31")
    mapped = [fmt.index(n) for n in fmt.smpl_map]
    reg = AdaptiveRegressor.from_body(body, "cmu31", rings=2)
    with torch.no_grad():
        e0 = (reg(v3) - y3).norm(dim=-1) * 1000
        fit_regressor(reg, torch.cat([v1, v2]), torch.cat([y1, y2]))
        e1 = (reg(v3) - y3).norm(dim=-1) * 1000
    return {
        "train_frames": int(v1.shape[0] + v2.shape[0]), "test_frames": int(v3.shape[0]),
        "held_out_mpjpe_mm": {
            "all_joints": {"fixed": round(float(e0.mean()), 1),
                           "adaptive": round(float(e1.mean()), 1)},
            "smpl_mapped_joints": {"fixed": round(float(e0[:, mapped].mean()), 1),
                                   "adaptive": round(float(e1[:, mapped].mean()), 1)},
        },
        "note": "fixed = smpl_map SMPL joints / landmarks / parent rows (initial_regressor); "
                "targets = the BVH joints, bodies = s2m's mocap fits of the same frames",
    }  # fmt: skip


def bench_silhouette(body, n: int, repeats: int) -> dict:
    out = sample_bodies(body, n, seed=3, camera=True)
    mesh = reduce_mesh(body.v_template.numpy(), body.faces, 1000)
    masks, boxes = masks_for(body, out.vertices)
    k = torch.tensor(CAMERA.intrinsics, dtype=out.vertices.dtype)
    sub = posed_subset(body, mesh.keep, out.betas, local_of(out), out.transl)
    coords = box_grid_coords(sub, k, boxes, (64, 48))
    sil = soft_silhouette(coords, mesh.faces, (64, 48), face_mask=front_faces(sub, mesh.faces))
    iou = metrics.silhouette_iou(sil > 0.5, masks > 0.5, reduction="sample")
    one_c, one_f = coords[:1].float().requires_grad_(True), front_faces(sub[:1], mesh.faces)

    def fwd_bwd():
        soft_silhouette(one_c, mesh.faces, (64, 48), face_mask=one_f).sum().backward()

    return {
        "reduced_mesh": {"vertices": mesh.num_vertices, "faces": int(mesh.faces.shape[0])},
        "grid": [64, 48],
        "iou_vs_full_mesh_raster": summarize(iou.tolist(), 3),
        "render_batch1": timed(
            lambda: soft_silhouette(one_c.detach(), mesh.faces, (64, 48), face_mask=one_f), repeats
        ),  # fmt: skip
        "render_and_backward_batch1": timed(fwd_bwd, repeats),
    }


def bench_fit(body, n: int, repeats: int) -> dict:
    out = sample_bodies(body, n, seed=5, camera=True)
    uv = image_obs(body, out, 2.0, 0)
    g = torch.Generator().manual_seed(1)
    truth3d = body.regress(out.vertices, "h36m17")
    skel = truth3d + 0.03 * torch.randn(truth3d.shape, generator=g, dtype=truth3d.dtype)
    betas = BoneShapeSolver(body, "h36m17")(skel).betas
    r = dik.solve(skel, "h36m17", body, betas=betas)
    b32 = load_body_model("s2m-free")
    fitter = ImageFitter(b32, "coco17", "h36m17")
    res = fitter.fit(r.rotmats, r.transl, uv, CAMERA, betas=betas, skeleton3d=skel,
                     solved=r.solved)  # fmt: skip

    def scores(rotmats, transl, bet):
        o, m = posed(body, bet, rotmats, transl), rotmats.shape[0]
        return {"mpjpe_mm": round(float(metrics.mpjpe(body.regress(o.vertices, "h36m17"),
                                                       truth3d[:m])), 2),
                "pve_mm": round(float(metrics.pve(o.vertices, out.vertices[:m])), 2)}  # fmt: skip

    one = {k: v[:1] for k, v in {"rot": r.rotmats, "t": r.transl, "uv": uv, "skel": skel,
                                 "b": betas}.items()}  # fmt: skip

    def fit1():
        fitter.fit(one["rot"], one["t"], one["uv"], CAMERA, betas=one["b"],
                   skeleton3d=one["skel"], solved=r.solved[:1])  # fmt: skip

    t = time.process_time()
    fitter.fit(r.rotmats, r.transl, uv, CAMERA, betas=betas, skeleton3d=skel, solved=r.solved)
    batched_ms = (time.process_time() - t) * 1000 / n
    result = {
        "samples": n, "pixel_noise": 2.0, "skeleton_noise_m": 0.03,
        "reproj_px": {"start": round(float(res.reproj_px_start.mean()), 2),
                      "fit": round(float(res.reproj_px.mean()), 2)},
        "start": scores(r.rotmats, r.transl, betas),
        "fit": scores(res.rotmats, res.transl, res.betas),
        "converged_share": round(float(res.converged.float().mean()), 3),
        "iterations_mean": round(float(res.iterations.float().mean()), 2),
        "per_person_batch1": timed(fit1, repeats),
        f"per_person_batch{n}_cpu_ms": round(batched_ms, 2),
        "goal_ms": 5.0,
    }  # fmt: skip
    # With the silhouette term, a few people (slower).
    m = min(n, 4)
    masks, boxes = masks_for(body, out.vertices[:m])
    mfit = ImageFitter(b32, "coco17", "h36m17", FitConfig(mask_weight=100.0, iterations=8))
    t, c = time.perf_counter(), time.process_time()
    mres = mfit.fit(r.rotmats[:m], r.transl[:m], uv[:m], CAMERA, betas=betas[:m],
                    skeleton3d=skel[:m], solved=r.solved[:m], mask=masks, box=boxes)  # fmt: skip
    result["with_mask"] = {
        "samples": m, "grid": [64, 48], "mask_weight": 100.0, "iterations_cap": 8,
        "iou": {"start": round(float(mres.iou_start.mean()), 3),
                "fit": round(float(mres.iou.mean()), 3)},
        "fit": scores(mres.rotmats, mres.transl, mres.betas),
        "keypoints_only_fit": scores(res.rotmats[:m], res.transl[:m], res.betas[:m]),
        "per_person_cpu_ms": round((time.process_time() - c) * 1000 / m, 1),
        "per_person_wall_ms": round((time.perf_counter() - t) * 1000 / m, 1),
    }  # fmt: skip
    return result


def bench_ablation(body, n: int, repeats: int) -> dict:
    out = sample_bodies(body, n, seed=9, camera=True)
    truth = world_from_local(local_of(out))
    uv = image_obs(body, out, 2.0, 2)
    g = torch.Generator().manual_seed(3)
    truth3d = body.regress(out.vertices, "h36m17")
    skel = truth3d + 0.03 * torch.randn(truth3d.shape, generator=g, dtype=truth3d.dtype)
    pts = body.regress(out.vertices, "blazepose33")
    pts = pts + 0.01 * torch.randn(pts.shape, generator=g, dtype=pts.dtype)
    b32 = load_body_model("s2m-free")
    rows = {
        "dik_only": RefineConfig(shape=False, endpoints=False, fit=False),
        "+sr": RefineConfig(endpoints=False, fit=False),
        "+sr+pr": RefineConfig(fit=False),
        "+sr+fit": RefineConfig(endpoints=False),
        "full": RefineConfig(),
    }
    res = {"samples": n, "inputs": "h36m17 skeleton +3 cm noise, coco17 2D +2 px noise, "
                                   "blazepose33 3D points +1 cm noise"}  # fmt: skip
    for name, cfg in rows.items():
        ref = Refiner(b32, "h36m17", "coco17", cfg)
        kw = {"keypoints": uv.float(), "camera": CAMERA, "points3d": pts.float()}
        r = ref(skel.float(), **kw)
        o = posed(body, r.betas, r.rotmats, r.transl)
        one = {k: (v[:1] if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
        s1 = skel[:1].float()
        res[name] = {
            "pve_mm": round(float(metrics.pve(o.vertices, out.vertices)), 2),
            "mpjpe_mm": round(float(metrics.mpjpe(body.regress(o.vertices, "h36m17"),
                                                  truth3d)), 2),
            "endpoint_deg_mean": endpoint_errors(r.rotmats, truth)["all_mean"],
            "reproj_px": round(float(_reproj(body, o, uv)), 2),
            "per_person_batch1": timed(lambda ref=ref, s1=s1, one=one: ref(s1, **one),
                                       repeats)["cpu_ms"],
        }  # fmt: skip
    # PR + fit on a DIK result the pipeline already has (its DIK may run in onnxruntime).
    ref = Refiner(b32, "h36m17", "coco17", RefineConfig(track=False))
    s1 = skel[:1].float()
    betas1, _ = ref.estimate_shape(s1)
    solved1 = dik.solve(s1, "h36m17", b32, betas=betas1)
    kw1 = {"keypoints": uv[:1].float(), "camera": CAMERA, "points3d": pts[:1].float()}
    res["per_person_batch1_parts_cpu_ms"] = {
        "sr": timed(lambda: ref.estimate_shape(s1), repeats)["cpu_ms"]["median"],
        "dik_torch_eager": timed(lambda: dik.solve(s1, "h36m17", b32, betas=betas1),
                                 repeats)["cpu_ms"]["median"],
        "pr_and_fit": timed(lambda: ref.refine(s1, solved1, betas1, **kw1),
                            repeats)["cpu_ms"]["median"],
    }  # fmt: skip
    res["goal_ms_skeleton_to_refined"] = 8.0
    return res


def _reproj(body, o, uv) -> float:
    k = torch.tensor(CAMERA.intrinsics, dtype=o.vertices.dtype)
    kp = body.regress(o.vertices, "coco17")
    proj = kp[..., :2] / kp[..., 2:] * k[:2] + k[2:]
    return float((proj - uv.to(proj)).norm(dim=-1).mean())


def bench_detector_regressor(body, train: Path, test: Path, limit: int) -> dict:
    """Adaptive regressors for MediaPipe's coco17 / blazepose33 keypoints, fitted on the
    detector-in-the-loop ``train`` folder, scored on ``test``: held-out pixel distance of the
    true mesh's points to the detector's keypoints (conf >= 0.5), fixed vs adaptive."""
    from s2m_model.lifter.fused_cli import read_folder
    from s2m_model.refine.detector_regressor import fit_detector_regressor, reprojection_px

    def load(folder, n):
        a, _ = read_folder(folder)
        idx = np.flatnonzero(a["det_detected"].astype(bool))[:n]

        def t(k):
            return torch.as_tensor(a[k][idx]).to(body.dtype)

        with torch.no_grad():
            v = body(**{k: t(k) for k in ("betas", "global_orient", "body_pose", "transl")})
        lm = t("det_landmarks")
        kp = {"coco17": t("det_keypoints2d_coco17"),
              "blazepose33": torch.cat([lm[..., :2], lm[..., 3:4]], -1)}  # fmt: skip
        return v.vertices, t("camera"), kp

    vtr, ctr, ktr = load(train, limit)
    vte, cte, kte = load(test, None)
    out: dict = {"train": len(vtr), "test": len(vte)}
    for fmt in ("coco17", "blazepose33"):
        t0 = time.perf_counter()
        reg = fit_detector_regressor(body, fmt, vtr, ktr[fmt], ctr)
        fit_s = time.perf_counter() - t0
        fixed = reprojection_px(body.regress(vte, fmt), kte[fmt], cte)
        adapt = reprojection_px(reg(vte), kte[fmt], cte)
        out[fmt] = {"fit_s": round(fit_s, 1),
                    "fixed_px": {"mean": round(float(fixed.nanmean()), 2),
                                 "median": round(float(fixed.nanmedian()), 2)},
                    "adaptive_px": {"mean": round(float(adapt.nanmean()), 2),
                                    "median": round(float(adapt.nanmedian()), 2)}}  # fmt: skip
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples and repeats")
    ap.add_argument("--dloop", type=Path, default=None,
                    help="detector-in-the-loop root with train/ and test/: also fit and score "
                         "the MediaPipe keypoint regressors")  # fmt: skip
    ap.add_argument("--dloop-train", type=int, default=1500, help="training renders used")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    n, repeats = (16, 10) if args.quick else (64, 30)
    # smplx prints a warning on stdout when it loads a model: keep stdout pure JSON.
    with contextlib.redirect_stdout(sys.stderr):
        body = load_body_model("s2m-free", dtype=torch.float64)
        load_body_model("s2m-free")
    t0 = time.perf_counter()
    report = {
        "bench": "refine", "torch_threads": torch.get_num_threads(),
        "load_average_at_start": list(os.getloadavg()),
        "shape_from_bones": bench_shape(body, n, repeats),
        "shape_track": bench_track(body),
        "endpoints": bench_endpoints(body, n, repeats),
        "adaptive_regressor": bench_regressor(body, 2 * n if not args.quick else 48),
        "silhouette": bench_silhouette(body, min(n, 16), repeats),
        "fit": bench_fit(body, min(n, 32), repeats),
        "ablation": bench_ablation(body, min(n, 32), repeats),
    }  # fmt: skip
    if args.dloop is not None:
        report["detector_regressor"] = bench_detector_regressor(
            body, args.dloop / "train", args.dloop / "test", args.dloop_train
        )
    report["load_average_at_end"] = list(os.getloadavg())
    report["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
