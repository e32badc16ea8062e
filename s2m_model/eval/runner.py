"""``s2m eval``'s driver: read a ground-truth shards folder, score methods, write the reports.

The scoring is :mod:`s2m_model.eval.scoring`, the report files :mod:`s2m_model.eval.report`;
this module only moves data between them and the disk.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from s2m_model.eval.report import write_comparison, write_report
from s2m_model.eval.scoring import evaluate_method, scoring_definition


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
    from s2m_model.skeletons import get_format

    get_format(fmt)  # unknown format: a clear error before any loading
    gt = load_ground_truth(data, fmt, limit)
    body = load_body_model(body_name or str(gt["body"]), device=device)
    out = Path(out)
    scoring = scoring_definition(fmt)
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
        write_report(metrics, per_joint, errors, dest, title=title, scoring=scoring)
    if len(methods) > 1:
        write_comparison(out, results, notes, data, fmt, betas_mode, scoring=scoring)
    return results
