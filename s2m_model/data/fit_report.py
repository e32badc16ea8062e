"""``s2m data fit-report``: fit (or load the cached fits of) every mocap clip and write the
fit-quality report, ``fit_report.json`` and ``fit_report.png``.

The numbers come from :func:`s2m_model.data.mocap_fit.clip_fit_stats` /
:func:`~s2m_model.data.mocap_fit.dataset_fit_stats`; this module only gathers and writes them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

from s2m_model.data.catalogue import KNOWN_DATASETS, SPLITS, list_clips
from s2m_model.data.fit_cache import fit_clips
from s2m_model.data.mocap_fit import (
    DEFAULT_REFINE_STEPS,
    FIT_VERSION,
    clip_fit_stats,
    dataset_fit_stats,
)
from s2m_model.util.plotting import pyplot


def write_fit_report(
    out: str | os.PathLike[str],
    shared_data_dir: str | os.PathLike[str],
    datasets: Sequence[str] = KNOWN_DATASETS,
    *,
    body_name: str = "s2m-free",
    subsample: int | None = None,
    refine_steps: int = DEFAULT_REFINE_STEPS,
) -> dict:
    """Fit (or load cached fits of) every clip of ``datasets``; write ``fit_report.json`` and
    ``fit_report.png`` into ``out``. Returns the per-dataset summary.

    Per clip: frames, fitted frames, split, and mean/max of ``joint_error_mm``,
    ``limb_error_mm`` and ``bone_error_deg`` over its fitted frames. Per dataset: the same over
    all fitted frames, the per-joint mean error, and the fitting time (0 when cached).
    """
    from s2m_model.body import load_body_model

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    body = load_body_model(body_name)
    refs = list_clips(shared_data_dir, datasets)
    clips, summary = [], {}
    for ds in datasets:
        ds_refs = [r for r in refs if r.dataset == ds]
        if not ds_refs:
            continue
        t0 = time.perf_counter()
        fits = fit_clips(ds_refs, body, subsample=subsample, refine_steps=refine_steps)
        seconds = time.perf_counter() - t0
        for r in ds_refs:
            clips.append({"name": r.name, "dataset": ds, "split": r.split,
                          **clip_fit_stats(fits[r.name])})  # fmt: skip
        summary[ds] = {
            **dataset_fit_stats([fits[r.name] for r in ds_refs]),
            "fit_seconds": round(seconds, 1),
            "splits": {s: sum(r.split == s for r in ds_refs) for s in SPLITS
                       if any(r.split == s for r in ds_refs)},
        }  # fmt: skip
    report = {"fit_version": FIT_VERSION, "body": body_name, "refine_steps": refine_steps,
              "subsample": subsample or "auto", "datasets": summary, "clips": clips}  # fmt: skip
    (out / "fit_report.json").write_text(json.dumps(report, indent=1) + "\n")
    plot_fit_report(out / "fit_report.png", clips, list(summary))
    return summary


def plot_fit_report(path: Path, clips: list[dict], datasets: list[str]) -> None:
    """Histograms of the per-clip mean errors (``clips`` as in ``fit_report.json``), per dataset."""
    plt = pyplot()
    keys = ("joint_error_mm", "limb_error_mm", "bone_error_deg")
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, key in zip(axes, keys, strict=True):
        for ds in datasets:
            vals = [c[key]["mean"] for c in clips if c["dataset"] == ds]
            ax.hist(vals, bins=30, alpha=0.6, label=f"{ds} ({len(vals)})")
        ax.set_xlabel(f"per-clip mean {key.replace('_', ' ')}")
        ax.set_ylabel("clips")
        ax.legend(fontsize=8)
    fig.suptitle("s2m mocap -> body fit errors")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
