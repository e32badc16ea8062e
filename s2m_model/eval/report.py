"""Evaluation reports: ``metrics.json``, a markdown table ``metrics.md`` and PNG plots."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: Files written by :func:`write_report` (the plots only when there is data for them).
JSON_NAME = "metrics.json"
MARKDOWN_NAME = "metrics.md"
PER_JOINT_PNG = "per_joint_error.png"
CDF_PNG = "error_cdf.png"


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def write_report(
    metrics: Mapping[str, float],
    per_joint: Mapping[str, float] | None,
    errors: np.ndarray | torch.Tensor | None,
    out_dir: str | Path,
    *,
    title: str = "s2m evaluation",
    error_label: str = "MPJPE (mm)",
    scoring: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write an evaluation report into ``out_dir`` (created if needed).

    Args:
        metrics: ``{name: value}`` (errors in mm, PCK/AUC in percent, as the metrics return).
            Non-finite values are written as JSON ``null`` / ``n/a``.
        per_joint: ``{joint name: mean error in mm}`` for the bar chart, or None/empty.
        errors: per-sample errors in mm (any shape, flattened; non-finite entries dropped) for
            the cumulative distribution plot, or None/empty.
        out_dir: output folder.
        title: heading of the markdown file and the plots.
        error_label: axis label of ``errors`` and ``per_joint``.
        scoring: which skeleton definition the metrics use
            (:func:`s2m_model.eval.scoring.scoring_definition`), written as ``"scoring"`` and
            stated under the title; None: not stated.

    Returns:
        ``{"json": path, "markdown": path, "per_joint_png": path, "cdf_png": path}`` for the
        files written (the PNG keys only when there was data to plot).

    ``metrics.json`` holds ``{"metrics": {...}, "per_joint_mm": {...}, "errors_summary":
    {"count", "mean", "median", "p90", "max"}}`` and loads back with ``json.load``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clean = {str(k): _finite_or_none(v) for k, v in metrics.items()}
    joints = {str(k): _finite_or_none(v) for k, v in (per_joint or {}).items()}
    err = np.zeros(0)
    if errors is not None:
        err = errors.detach().cpu().numpy() if isinstance(errors, torch.Tensor) else errors
        err = np.asarray(err, dtype=np.float64).reshape(-1)
        err = err[np.isfinite(err)]
    summary: dict[str, float | int | None] = {"count": int(err.size)}
    if err.size:
        summary.update(
            mean=float(err.mean()),
            median=float(np.median(err)),
            p90=float(np.percentile(err, 90)),
            max=float(err.max()),
        )

    paths: dict[str, Path] = {"json": out / JSON_NAME, "markdown": out / MARKDOWN_NAME}
    payload = {"metrics": clean, "per_joint_mm": joints, "errors_summary": summary}
    if scoring is not None:
        payload["scoring"] = dict(scoring)
    paths["json"].write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n")

    lines = [f"# {title}", ""]
    lines += _scoring_lines(scoring)
    lines += ["| Metric | Value |", "|---|---:|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in clean.items()]
    if joints:
        lines += ["", f"## Per joint ({error_label})", "", "| Joint | Error |", "|---|---:|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in joints.items()]
    if err.size:
        lines += [
            "", f"## Per-sample {error_label}: n = {err.size}, mean {_fmt(summary['mean'])}, "
            f"median {_fmt(summary['median'])}, 90th percentile {_fmt(summary['p90'])}, "
            f"max {_fmt(summary['max'])}",
        ]  # fmt: skip
    paths["markdown"].write_text("\n".join(lines) + "\n")

    plotted = {k: v for k, v in joints.items() if v is not None}
    if plotted or err.size:
        # Figure without pyplot renders with Agg and never touches a display or global state.
        from matplotlib.figure import Figure

        if plotted:
            fig = Figure(figsize=(max(6.0, 0.45 * len(plotted)), 4.0))
            ax = fig.add_subplot()
            ax.bar(range(len(plotted)), list(plotted.values()), color="tab:blue")
            ax.set_xticks(range(len(plotted)), list(plotted.keys()), rotation=60, ha="right")
            ax.set_ylabel(error_label)
            ax.set_title(f"{title}: per-joint error")
            fig.tight_layout()
            paths["per_joint_png"] = out / PER_JOINT_PNG
            fig.savefig(paths["per_joint_png"], dpi=100)
        if err.size:
            xs = np.sort(err)
            ys = np.arange(1, xs.size + 1) / xs.size * 100.0
            fig = Figure(figsize=(6.0, 4.0))
            ax = fig.add_subplot()
            ax.step(xs, ys, where="post", color="tab:orange")
            ax.set_xlabel(error_label)
            ax.set_ylabel("samples with error <= x (%)")
            ax.set_ylim(0, 100)
            ax.grid(True, alpha=0.3)
            ax.set_title(f"{title}: error CDF")
            fig.tight_layout()
            paths["cdf_png"] = out / CDF_PNG
            fig.savefig(paths["cdf_png"], dpi=100)
    return paths


def _scoring_lines(scoring: Mapping[str, Any] | None) -> list[str]:
    """Markdown lines stating the skeleton definition of the metrics (none without one)."""
    if scoring is None:
        return []
    lines = [f"Primary: {scoring['primary']} ({', '.join(scoring['primary_metrics'])})."]
    if scoring.get("limb12_regressors"):
        regs = ", ".join(scoring["limb12_regressors"])
        lines.append(
            f"Also: `limb12_*_<regressor>`, the 12 limb points through each regressor ({regs}) "
            f"against the same {scoring['gt_definition']} GT."
        )
    return lines + [""]


COMPARED = (("mpjpe", "MPJPE (mm)"), ("pa_mpjpe", "PA-MPJPE (mm)"), ("pve", "PVE (mm)"),
            ("pa_pve", "PA-PVE (mm)"), ("joint_angle", "joint angle (rad)"),
            ("pck", "PCK@150 (%)"), ("auc", "AUC (%)"), ("ms_per_sample", "ms/sample"))  # fmt: skip


def write_comparison(
    out: Path,
    results: Mapping[str, Mapping[str, float] | None],
    notes: Mapping[str, str],
    data: str | Path,
    fmt: str,
    betas_mode: str,
    scoring: Mapping[str, Any] | None = None,
) -> None:
    """``out/metrics.json`` (``{"methods": {name: metrics or null}, ...}``) and ``out/metrics.md``
    comparing several methods (``None``: not available, explained in ``notes``)."""
    out.mkdir(parents=True, exist_ok=True)

    def clean(m: Mapping[str, float] | None) -> dict[str, Any] | None:
        return None if m is None else {k: (v if math.isfinite(v) else None) for k, v in m.items()}

    payload = {
        "data": str(data), "format": fmt, "betas": betas_mode,
        "methods": {k: clean(v) for k, v in results.items()}, "notes": dict(notes),
    }  # fmt: skip
    if scoring is not None:
        payload["scoring"] = dict(scoring)
    (out / "metrics.json").write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n")
    lines = [f"# s2m eval: methods on {Path(data).name} ({fmt}, betas {betas_mode})", "",
             *_scoring_lines(scoring),
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
