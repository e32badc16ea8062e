"""``s2m eval``: score skeleton -> body methods on a ground-truth shards folder.

Methods (all output SMPL-layout parameters that pose the same body model):

- ``dik`` — :func:`s2m_model.dik.solve` on the ground-truth 3D joints of ``--format``.
- ``swing`` — :func:`s2m_model.ik_baselines.swing_only_ik` (DIK without the hinge prior).
- ``iterative`` — :func:`s2m_model.ik_baselines.iterative_ik` (optimisation, to convergence).
- ``pipeline`` — the shipped lifter on the ground-truth 2D ``coco17`` keypoints (visibility as
  confidence) and the camera, then DIK: the 3D part of the s2m pipeline without the detector.
- ``all`` — every method above that is available, compared in one table.

Metrics (``metrics.json``/``metrics.md`` per method, via :mod:`s2m_model.eval.report`):
``mpjpe``/``pa_mpjpe`` on all joints of ``--format`` (root = the format's pelvis, or the hips'
midpoint), ``pve``/``pa_pve`` over the mesh (each mesh aligned at its SMPL pelvis joint), all in
mm; ``joint_angle`` in radians (3DPW definition: mean angle of ``R_pred^T R_gt`` over the
*global* rotations of pelvis, hips, knees, shoulders, elbows, scored where the method solved
them) and ``joint_angle_deg``; ``pck`` (% of joints < 150 mm, root-aligned) and ``auc``
(0-150 mm); ``ms_per_sample`` (wall time of the method alone).

Shape: by default each method gets the ground-truth ``betas`` (``--betas gt``), so the scores
isolate the pose solution; ``--betas zero`` uses the mean shape.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

METHODS = ("dik", "swing", "iterative", "pipeline")


def register(subparsers) -> None:
    """Add the ``eval`` subcommand."""
    parser = subparsers.add_parser(
        "eval",
        help="score DIK / baselines / the pipeline on a ground-truth shards folder",
        description=(
            "Run a skeleton -> body method on the samples of a shards folder (`s2m data "
            "build`, docs/data-format.md) and write metrics.json, metrics.md and plots to OUT: "
            "MPJPE, PA-MPJPE, PVE, PA-PVE (mm), joint-angle error (radians, 3DPW definition), "
            "PCK@150mm and AUC (%). `--method all` writes one sub-folder per method and a "
            "comparison table."
        ),
    )
    parser.add_argument("--method", required=True, choices=(*METHODS, "all"))
    parser.add_argument("--data", required=True, help="shards folder (manifest.json + shards)")
    parser.add_argument("--out", required=True, help="output folder for the report")
    parser.add_argument("--format", default="h36m17", help="input skeleton format (h36m17)")
    parser.add_argument("--limit", type=int, default=None, help="first N samples only")
    parser.add_argument("--batch-size", type=int, default=128, help="samples per call (128)")
    parser.add_argument(
        "--betas", choices=("gt", "zero"), default="gt",
        help="shape given to the methods: ground truth (default) or the mean shape",
    )  # fmt: skip
    parser.add_argument("--body", default=None, help="body model (default: the manifest's)")
    parser.add_argument("--device", default="cpu", help="torch device (cpu)")
    parser.add_argument(
        "--optimizer", default="lm", choices=("lm", "lbfgs", "adam"),
        help="optimiser of the iterative baseline (lm)",
    )  # fmt: skip
    parser.add_argument("--lifter", default="default", help="lifter for --method pipeline")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch CPU threads (1: these small batched ops gain little from more, and extra "
        "threads spin-wait on a busy machine; 0: torch's default)",
    )  # fmt: skip
    parser.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.threads < 0:
        raise ValueError(f"--threads must be >= 0, got {args.threads}")
    methods = list(METHODS) if args.method == "all" else [args.method]
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        results = run_eval(
            args.data, args.out, methods, fmt=args.format, limit=args.limit,
            batch_size=args.batch_size, betas_mode=args.betas, body_name=args.body,
            device=args.device, optimizer=args.optimizer, lifter=args.lifter,
            skip_unavailable=args.method == "all",
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    for method, metrics in results.items():
        if metrics is None:
            print(f"{method:10s} not available")
            continue
        print(
            f"{method:10s} MPJPE {metrics['mpjpe']:.1f} mm  PA-MPJPE {metrics['pa_mpjpe']:.1f}  "
            f"PVE {metrics['pve']:.1f}  angle {metrics['joint_angle']:.3f} rad  "
            f"PCK {metrics['pck']:.1f}%  {metrics['ms_per_sample']:.2f} ms/sample"
        )
    print(f"report: {Path(args.out) / 'metrics.md'}")
    return 0


# --------------------------------------------------------------------------------------------
def load_ground_truth(data: str | Path, fmt: str, limit: int | None) -> dict[str, np.ndarray]:
    """The arrays of a shards folder that evaluation needs (first ``limit`` samples)."""
    from s2m_model.data.shards import load_shards, read_manifest

    manifest = read_manifest(data)
    if fmt not in manifest["formats"]:
        raise ValueError(
            f"{data}: no joints3d_{fmt} (the folder has formats {manifest['formats']})"
        )
    arrays = load_shards(data)
    keys = ("betas", "global_orient", "body_pose", "transl", f"joints3d_{fmt}", "camera",
            "keypoints2d_coco17")  # fmt: skip
    out = {k: arrays[k][:limit] for k in keys if k in arrays}
    if len(out["betas"]) == 0:
        raise ValueError(f"{data}: no samples to evaluate")
    out["body"] = np.array(manifest["body"])
    return out


def _method_fn(name: str, body, fmt, optimizer: str, lifter_name: str) -> Callable:
    """(joints (B,J,3), betas (B,10), batch dict) -> DIKResult, for one method."""
    from s2m_model import dik, ik_baselines

    if name == "dik":
        return lambda joints, betas, _: dik.solve(joints, fmt, body, betas=betas)
    if name == "swing":
        return lambda joints, betas, _: ik_baselines.swing_only_ik(joints, fmt, body, betas=betas)
    if name == "iterative":
        return lambda joints, betas, _: ik_baselines.iterative_ik(
            joints, fmt, body, betas=betas, optimizer=optimizer
        )
    if name == "pipeline":
        try:
            from s2m_model.lifter import load_lifter

            lifter = load_lifter(lifter_name, device=body.device)
        except (ImportError, FileNotFoundError, ValueError) as exc:
            raise RuntimeError(f"method 'pipeline' is not available yet: {exc}") from None

        def run(joints, betas, batch):
            kp = np.asarray(batch["keypoints2d_coco17"], dtype=np.float32)
            cam = np.asarray(batch["camera"], dtype=np.float32)
            # Samples the lifter cannot normalise stay an all-zero skeleton: scored as failures.
            ok = np.asarray(lifter.usable(kp), dtype=bool).reshape(-1)
            lifted = torch.zeros(len(kp), 17, 3, dtype=joints.dtype, device=joints.device)
            if ok.any():
                lifted[torch.from_numpy(ok)] = torch.as_tensor(
                    lifter.lift(kp[ok], camera=cam[ok])
                ).to(lifted)
            return dik.solve(lifted, "h36m17", body, betas=betas)

        return run
    raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")


class _Tensors:
    """``t("key")``: a batch array as a tensor on the body's device and dtype."""

    def __init__(self, batch: dict[str, np.ndarray], device, dtype) -> None:
        self.batch, self.device, self.dtype = batch, device, dtype

    def __call__(self, key: str) -> torch.Tensor:
        return torch.as_tensor(self.batch[key], device=self.device, dtype=self.dtype)


def _global_rotmats(global_orient: torch.Tensor, body_pose: torch.Tensor) -> torch.Tensor:
    import roma

    from s2m_model.dik import _world_from_local

    local = roma.rotvec_to_rotmat(torch.cat([global_orient[:, None], body_pose], 1))
    return _world_from_local(local)


def score_batch(
    result,
    joints: torch.Tensor,
    fmt: str,
    body,
    betas: torch.Tensor,
    gt: dict[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """Per-element errors of one batch of results (see the module docstring for definitions).

    Args:
        result: a :class:`~s2m_model.dik.DIKResult` (B samples) in the frame of ``joints``.
        joints: (B,J,3) ground-truth joints of format ``fmt`` (metres).
        body: the body model; ``betas`` (B,10) the shape the method used.
        gt: ground-truth ``betas`` (B,10), ``global_orient`` (B,3), ``body_pose`` (B,23,3),
            ``transl`` (B,3) tensors on the body's device and dtype.

    Returns:
        ``mpjpe``, ``pa_mpjpe``, ``pck`` (B,J); ``pve``, ``pa_pve``, ``auc`` (B,);
        ``joint_angle`` (B,9) radians, NaN where the method did not solve the joint.
    """
    from s2m_model.dik import format_roles
    from s2m_model.eval import metrics as M
    from s2m_model.skeletons import get_format

    root = list(format_roles(get_format(fmt)).get("pelvis", ()))
    if not root:
        raise ValueError(f"format '{fmt}' has no pelvis or hips to root-align on")
    dtype = body.dtype
    with torch.no_grad():
        gt_out = body(**gt)
        pred = body(
            betas=betas, global_orient=result.global_orient.to(dtype),
            body_pose=result.body_pose.to(dtype), transl=result.transl.to(dtype),
        )  # fmt: skip
        pred_joints = pred.joints if fmt == "smpl24" else body.regress(pred.vertices, fmt)
        return {
            "mpjpe": M.mpjpe(pred_joints, joints, root, reduction="none"),
            "pa_mpjpe": M.pa_mpjpe(pred_joints, joints, reduction="none"),
            "pve": M.pve(pred.vertices, gt_out.vertices, pred_root=pred.joints[:, 0],
                         gt_root=gt_out.joints[:, 0], reduction="sample"),
            "pa_pve": M.pa_pve(pred.vertices, gt_out.vertices, reduction="sample"),
            "joint_angle": M.joint_angle_error(
                _global_rotmats(result.global_orient.to(dtype), result.body_pose.to(dtype)),
                _global_rotmats(gt["global_orient"], gt["body_pose"]),
                joints=M.PW3D_ANGLE_JOINTS, valid=result.solved, reduction="none",
            ),
            "pck": M.pck(pred_joints, joints, 150.0, root=root, reduction="none"),
            "auc": M.auc(pred_joints, joints, root=root, reduction="sample"),
        }  # fmt: skip


def summarise(scores: dict[str, torch.Tensor]) -> dict[str, float]:
    """Means of :func:`score_batch` outputs (NaN entries = not scored), plus degrees."""
    out = {}
    for name, values in scores.items():
        values = values[torch.isfinite(values)].double()
        out[name] = float(values.mean()) if values.numel() else math.nan
    if "joint_angle" in out:
        out["joint_angle_deg"] = math.degrees(out["joint_angle"])
    return out


def evaluate_method(
    method: str,
    gt: dict[str, np.ndarray],
    body,
    fmt: str = "h36m17",
    *,
    batch_size: int = 128,
    betas_mode: str = "gt",
    optimizer: str = "lm",
    lifter: str = "default",
    progress: bool = True,
) -> tuple[dict[str, float], dict[str, float], np.ndarray]:
    """Run ``method`` on every sample of ``gt`` and score it.

    Args:
        method: ``"dik"``, ``"swing"``, ``"iterative"`` or ``"pipeline"``.
        gt: arrays from :func:`load_ground_truth` (camera frame, metres, radians).
        body: the :class:`~s2m_model.body.BodyModel` the ground truth was posed with.
        fmt: input skeleton format (``joints3d_<fmt>``).

    Returns:
        ``(metrics, per_joint_mm, per_sample_mpjpe_mm)``; see the module docstring.
    """
    from tqdm import tqdm

    from s2m_model.skeletons import get_format

    skel = get_format(fmt)
    fn = _method_fn(method, body, skel, optimizer, lifter)
    dtype, device = body.dtype, body.device
    n = len(gt["betas"])
    parts: dict[str, list[torch.Tensor]] = {}
    seconds = 0.0
    batches = range(0, n, batch_size)
    for start in tqdm(batches, desc=f"eval {method}", unit="batch", disable=not progress):
        sl = slice(start, min(start + batch_size, n))
        batch = {k: v[sl] for k, v in gt.items() if k != "body"}
        t = _Tensors(batch, device, dtype)
        params = {k: t(k) for k in ("betas", "global_orient", "body_pose", "transl")}
        betas = params["betas"] if betas_mode == "gt" else torch.zeros_like(params["betas"])
        joints = t(f"joints3d_{fmt}")
        t0 = time.perf_counter()
        result = fn(joints, betas, batch)
        seconds += time.perf_counter() - t0
        for name, values in score_batch(result, joints, fmt, body, betas, params).items():
            parts.setdefault(name, []).append(values.cpu())
    scores = {k: torch.cat(v) for k, v in parts.items()}
    out = summarise(scores)
    out["num_samples"] = float(n)
    out["ms_per_sample"] = seconds / n * 1000.0
    per_joint_mm = scores["mpjpe"].double().mean(0)
    per_joint = {name: float(per_joint_mm[j]) for j, name in enumerate(skel.joint_names)}
    return out, per_joint, scores["mpjpe"].mean(-1).numpy()


def run_eval(
    data: str | Path,
    out: str | Path,
    methods: list[str],
    *,
    fmt: str = "h36m17",
    limit: int | None = None,
    batch_size: int = 128,
    betas_mode: str = "gt",
    body_name: str | None = None,
    device: str = "cpu",
    optimizer: str = "lm",
    lifter: str = "default",
    skip_unavailable: bool = False,
    progress: bool = True,
) -> dict[str, dict[str, float] | None]:
    """Evaluate ``methods`` on a shards folder and write the report(s) into ``out``.

    One method: ``out/metrics.json``, ``out/metrics.md`` and plots. Several: the same per
    method in ``out/<method>/`` plus a comparison ``out/metrics.json`` (``{"methods": {name:
    metrics or null}, ...}``) and ``out/metrics.md``. With ``skip_unavailable`` a method that
    is not available (e.g. ``pipeline`` without lifter weights) is reported as ``None``
    instead of raising.
    """
    from s2m_model.body import load_body_model
    from s2m_model.eval.report import write_report
    from s2m_model.skeletons import get_format

    get_format(fmt)  # unknown format: a clear error before any loading
    gt = load_ground_truth(data, fmt, limit)
    body = load_body_model(body_name or str(gt["body"]), device=device)
    out = Path(out)
    results: dict[str, dict[str, float] | None] = {}
    notes: dict[str, str] = {}
    for method in methods:
        dest = out / method if len(methods) > 1 else out
        try:
            metrics, per_joint, errors = evaluate_method(
                method, gt, body, fmt, batch_size=batch_size, betas_mode=betas_mode,
                optimizer=optimizer, lifter=lifter, progress=progress,
            )  # fmt: skip
        except RuntimeError as exc:
            if not skip_unavailable:
                raise
            results[method], notes[method] = None, str(exc)
            continue
        results[method] = metrics
        title = f"s2m eval: {method} on {Path(data).name} ({fmt}, betas {betas_mode})"
        write_report(metrics, per_joint, errors, dest, title=title)
    if len(methods) > 1:
        _write_comparison(out, results, notes, data, fmt, betas_mode)
    return results


COMPARED = (("mpjpe", "MPJPE (mm)"), ("pa_mpjpe", "PA-MPJPE (mm)"), ("pve", "PVE (mm)"),
            ("pa_pve", "PA-PVE (mm)"), ("joint_angle", "joint angle (rad)"),
            ("pck", "PCK@150 (%)"), ("auc", "AUC (%)"), ("ms_per_sample", "ms/sample"))  # fmt: skip


def _write_comparison(out: Path, results, notes, data, fmt: str, betas_mode: str) -> None:
    out.mkdir(parents=True, exist_ok=True)

    def clean(m: dict[str, float] | None) -> dict[str, Any] | None:
        return None if m is None else {k: (v if math.isfinite(v) else None) for k, v in m.items()}

    payload = {
        "data": str(data), "format": fmt, "betas": betas_mode,
        "methods": {k: clean(v) for k, v in results.items()}, "notes": notes,
    }  # fmt: skip
    (out / "metrics.json").write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n")
    lines = [f"# s2m eval: methods on {Path(data).name} ({fmt}, betas {betas_mode})", "",
             "| Method | " + " | ".join(label for _, label in COMPARED) + " |",
             "|---|" + "---:|" * len(COMPARED)]  # fmt: skip
    for method, m in results.items():
        if m is None:
            lines.append(f"| {method} | " + " | ".join("n/a" for _ in COMPARED) + " |")
            continue
        cells = [f"{m[k]:.3f}" if k == "joint_angle" else f"{m[k]:.2f}" for k, _ in COMPARED]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    for method, note in notes.items():
        lines += ["", f"- {method}: {note}"]
    (out / "metrics.md").write_text("\n".join(lines) + "\n")
