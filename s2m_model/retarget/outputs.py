"""Files written by ``s2m retarget --out DIR`` (I/O only; the numbers come from
:mod:`s2m_model.retarget.metrics`).

* ``joints.npz`` — ``q`` (T, dof) float64 radians (within limits), ``names`` (dof,) joint
  names (the columns of ``q``), ``t`` (T,) seconds; also ``root_pos`` (T, 3) metres and
  ``root_quat`` (T, 4) (w, x, y, z) of the floating base in the robot world (z up), and
  ``followed`` (T,) (False: no body, pose held).
* ``joints.csv`` — header ``t,<names...>``, one row per frame (same numbers as ``q``).
* ``summary.json`` — ``frames``, ``dof``, ``joint_limit_violations``,
  ``velocity_limit_violations``, ``retarget_ms`` {median, p95, ...}, ``end_effector_err_mm``
  {hands, feet, head: {median, p95, ...}} and the further fields of
  :func:`~s2m_model.retarget.metrics.summarize_result`, plus ``input`` and ``robot_model``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from s2m_model.retarget.sequence import RetargetResult
from s2m_model.util.files import save_npz_atomic


def write_outputs(out_dir: str | Path, result: RetargetResult, summary: dict[str, Any]) -> dict:
    """Write ``joints.npz``, ``joints.csv`` and ``summary.json`` into ``out_dir``.

    Returns ``{name: path}`` of the written files.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    npz = save_npz_atomic(out / "joints.npz", {
        "q": result.q.astype(np.float64), "names": np.array(result.names),
        "t": result.t.astype(np.float64), "root_pos": result.root_pos,
        "root_quat": result.root_quat, "followed": result.followed,
    })  # fmt: skip
    csv_path = out / "joints.csv"
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["t", *result.names])
        for t, row in zip(result.t, result.q, strict=True):
            writer.writerow([f"{t:.6f}", *(f"{v:.6f}" for v in row)])
    summary_path = out / "summary.json"
    summary_path.write_text(json.dumps(summary, indent=2))
    return {"joints_npz": str(npz), "joints_csv": str(csv_path), "summary": str(summary_path)}
