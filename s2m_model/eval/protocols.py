"""Dataset evaluation protocols on top of :mod:`s2m_model.eval.metrics`.

=============  =======================  ======  ==========================================
protocol       joints (input order)     root    metrics (mm; PCK/AUC in percent)
=============  =======================  ======  ==========================================
``h36m-p1``    H36M-17, scored on 14    pelvis  ``mpjpe`` (primary), ``pa_mpjpe``
``h36m-p2``    H36M-17, scored on 14    pelvis  ``pa_mpjpe`` (primary), ``mpjpe``
``3dhp``       H36M-17 (all 17)         pelvis  ``pck`` @150 mm, ``auc`` (0..150 mm), both
                                                root-aligned; ``pa_pck``/``pa_auc``
                                                (Procrustes-aligned); ``mpjpe``, ``pa_mpjpe``
``surreal``    SMPL-24 (all 24)         pelvis  ``mpjpe``, ``pa_mpjpe``; with vertices also
                                                ``pve`` (pelvis-aligned) and ``pa_pve``
=============  =======================  ======  ==========================================

The H36M 14-joint subset (17 minus pelvis, spine, nose) is what mesh-recovery codebases (SPIN,
HMR) score; the root alignment happens on the full skeleton first. Protocol 1 is usually run on
all cameras of S9/S11 and protocol 2 on the frontal camera: select the frames with
:func:`s2m_model.data.datasets.h36m.protocol_subset`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from s2m_model.data.datasets.h36m import H36M_EVAL14
from s2m_model.eval import metrics

ArrayLike = torch.Tensor | np.ndarray


@dataclass(frozen=True)
class Protocol:
    """How one dataset is scored: expected joint count, root joint, scored joint subset."""

    name: str
    num_joints: int
    root: int
    joints: tuple[int, ...] | None
    primary: str


PROTOCOLS: dict[str, Protocol] = {
    "h36m-p1": Protocol("h36m-p1", 17, 0, H36M_EVAL14, "mpjpe"),
    "h36m-p2": Protocol("h36m-p2", 17, 0, H36M_EVAL14, "pa_mpjpe"),
    "3dhp": Protocol("3dhp", 17, 0, None, "pck"),
    "surreal": Protocol("surreal", 24, 0, None, "mpjpe"),
}


def _protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(
            f"unknown protocol {name!r}; choose one of {', '.join(PROTOCOLS)}"
        ) from None


def evaluate_joints(
    pred: ArrayLike,
    gt: ArrayLike,
    protocol: str,
    *,
    valid: ArrayLike | None = None,
    pred_vertices: ArrayLike | None = None,
    gt_vertices: ArrayLike | None = None,
) -> dict[str, float]:
    """Score ``pred`` against ``gt`` under a named protocol.

    Args:
        pred, gt: ``(N, J, 3)`` (any leading dims) joints in metres in the protocol's joint order
            (H36M-17 for ``h36m-*``/``3dhp``, SMPL-24 for ``surreal``).
        protocol: ``"h36m-p1"``, ``"h36m-p2"``, ``"3dhp"`` or ``"surreal"``.
        valid: optional bool ``(N, J)`` joints to score (NaN joints must be marked invalid).
        pred_vertices, gt_vertices: ``(N, V, 3)`` metres, ``surreal`` only (both or neither).

    Returns:
        ``{metric name: value}`` with errors in mm and PCK/AUC in percent, plus
        ``num_samples``. See the module table for the metrics of each protocol.

    Raises:
        ValueError: unknown protocol, wrong joint count, vertices given for a joint-only
            protocol, or anything the metrics refuse (NaN at scored joints, nothing to score).
    """
    proto = _protocol(protocol)
    p = metrics.to_tensor(pred, "pred")
    if p.ndim < 2 or p.shape[-2] != proto.num_joints:
        raise ValueError(
            f"protocol {protocol!r} expects (..., {proto.num_joints}, 3) joints, "
            f"got {tuple(p.shape)}"
        )
    common = {"joints": proto.joints, "valid": valid}
    out: dict[str, float] = {
        "mpjpe": float(metrics.mpjpe(pred, gt, proto.root, **common)),
        "pa_mpjpe": float(metrics.pa_mpjpe(pred, gt, **common)),
    }
    if protocol == "3dhp":
        for prefix, align in (("", "root"), ("pa_", "procrustes")):
            out[f"{prefix}pck"] = float(
                metrics.pck(pred, gt, 150.0, root=proto.root, align=align, **common)
            )
            out[f"{prefix}auc"] = float(
                metrics.auc(pred, gt, root=proto.root, align=align, **common)
            )
    if (pred_vertices is None) != (gt_vertices is None):
        raise ValueError("pass both pred_vertices and gt_vertices, or neither")
    if pred_vertices is not None:
        if protocol != "surreal":
            raise ValueError(f"vertices are scored by the 'surreal' protocol, not {protocol!r}")
        pj, gj = metrics.float_pair(pred, gt, ("pred", "gt"))
        pv = metrics.to_tensor(pred_vertices, "pred_vertices")
        if pv.ndim < 2 or tuple(pv.shape[:-2]) != tuple(pj.shape[:-2]):
            raise ValueError(
                f"pred_vertices must be (..., V, 3) with the joints' batch dims "
                f"{tuple(pj.shape[:-2])}, got {tuple(pv.shape)}"
            )
        vvalid = None
        if valid is not None:
            # The PVE root is the pelvis joint: a sample with an invalid pelvis is excluded.
            root_ok = metrics.valid_mask(valid, pj.shape[:-1], pj.device)[..., proto.root]
            vvalid = root_ok[..., None]
        out["pve"] = float(
            metrics.pve(
                pred_vertices, gt_vertices,
                pred_root=pj[..., proto.root, :], gt_root=gj[..., proto.root, :],
                valid=vvalid,
            )
        )  # fmt: skip
        out["pa_pve"] = float(metrics.pa_pve(pred_vertices, gt_vertices, valid=vvalid))
    out["num_samples"] = float(np.prod(p.shape[:-2], dtype=np.int64))
    return out


def per_joint_mpjpe(
    pred: ArrayLike,
    gt: ArrayLike,
    names: Sequence[str],
    *,
    root: int | Sequence[int] | None = 0,
    valid: ArrayLike | None = None,
) -> dict[str, float]:
    """Root-aligned error of each joint averaged over the samples, ``{name: mm}``.

    Joints that are never valid are left out (no NaN values).
    """
    p = metrics.to_tensor(pred, "pred")
    if p.ndim < 2 or p.shape[-2] != len(names):
        raise ValueError(f"{len(names)} names for joints of shape {tuple(p.shape)}")
    err = metrics.mpjpe(pred, gt, root, valid=valid, reduction="none")
    err = err.reshape(-1, len(names))
    ok = torch.isfinite(err)
    total = torch.where(ok, err, torch.zeros_like(err)).sum(dim=0)
    count = ok.sum(dim=0)
    return {name: float(total[j] / count[j]) for j, name in enumerate(names) if int(count[j]) > 0}
