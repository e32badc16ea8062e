"""Adaptive joint regressor (paper Sec. 3.5): a learnable vertex -> joint matrix per format.

Mesh joints meet a dataset's or a detector's joints through a regressor ``W`` (J x V): each
joint is a weighted sum of mesh vertices. The fixed regressors (:mod:`s2m_model.body.regressors`)
are our guess of where each dataset puts its joints; the adaptive one starts from that guess
and learns from pairs (posed mesh vertices, target joints) with the paper's loss

    mean_j |W_j M - J_j|  +  convexity * sum_j |sum_v W_jv - 1|      (convexity = 0.4)

The row-sum term keeps each row close to an affine (translation-equivariant) combination, so
the joints move with the body. The matrix stays sparse and local: row ``j`` may only use the
vertices of its initial support grown by ``rings`` mesh neighbourhoods, which keeps it a
surface/volume definition near the joint rather than a fit of the training poses.

Storage: ``.npz`` of plain arrays (no pickles): format, joint names, vertex count, COO rows /
columns / values. Units: metres; vertices are in any frame (the regressor is translation
equivariant when its rows sum to 1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from s2m_model.body.regressors import RECIPES
from s2m_model.skeletons import get_format
from s2m_model.smpl_layout import JOINT_INDEX

__all__ = [
    "AdaptiveRegressor", "TrainReport", "fit_regressor", "initial_regressor",
    "mesh_neighbourhood", "train_regressor",
]  # fmt: skip

#: The paper's weight of the row-sum (convexity) term.
CONVEXITY = 0.4
_NPZ_VERSION = 1


def initial_regressor(body, fmt) -> torch.Tensor:
    """(J,V) the fixed regressor of ``fmt`` on ``body``, the adaptive regressor's start.

    Formats with a surface definition use ``body.regressor``; mocap formats take, per joint,
    the SMPL joint ``smpl_map`` names, else the surface landmark of the same name
    (``head_top``), else the row of the nearest such ancestor (zero-offset helper joints sit on
    their parent).
    """
    fmt = get_format(fmt) if isinstance(fmt, str) else fmt
    if fmt.name == "smpl24" or fmt.name in RECIPES:
        return body.regressor(fmt.name).clone()
    rows: list[torch.Tensor | None] = [None] * fmt.num_joints
    for j, name in enumerate(fmt.joint_names):
        if name in fmt.smpl_map:
            rows[j] = body.J_regressor[JOINT_INDEX[fmt.smpl_map[name]]]
        elif name in body.landmark_names:
            rows[j] = body.landmark(name)
    for j in range(fmt.num_joints):
        k = j
        while rows[k] is None and fmt.parents[k] >= 0:
            k = fmt.parents[k]
        if rows[k] is None:
            raise ValueError(f"{fmt.name}: no initial definition for joint {fmt.joint_names[j]}")
        rows[j] = rows[k]
    return torch.stack(rows).to(body.dtype).clone()


def mesh_neighbourhood(faces: np.ndarray, num_vertices: int) -> sp.csr_matrix:
    """(V,V) boolean vertex adjacency (edges of the triangles, plus the diagonal)."""
    f = np.asarray(faces, dtype=np.int64)
    i = np.concatenate([f[:, 0], f[:, 1], f[:, 2], np.arange(num_vertices)])
    j = np.concatenate([f[:, 1], f[:, 2], f[:, 0], np.arange(num_vertices)])
    adj = sp.coo_matrix((np.ones(len(i), dtype=bool), (i, j)), shape=(num_vertices,) * 2)
    return (adj + adj.T).tocsr().astype(bool)


class AdaptiveRegressor(torch.nn.Module):
    """Sparse learnable regressor: ``forward(vertices (B,V,3)) -> joints (B,J,3)`` (metres).

    The non-zeros live at fixed (row, column) positions (``rows``, ``cols``); ``values`` is the
    learnable parameter. Build with :meth:`from_body`, train with :func:`train_regressor`,
    persist with :meth:`save` / :meth:`load`.
    """

    def __init__(
        self,
        fmt: str,
        joint_names: tuple[str, ...],
        num_vertices: int,
        rows: torch.Tensor,
        cols: torch.Tensor,
        values: torch.Tensor,
    ) -> None:
        super().__init__()
        if not (rows.shape == cols.shape == values.shape and rows.ndim == 1):
            raise ValueError("rows, cols and values must be 1-D of the same length")
        if len(rows) and (int(rows.max()) >= len(joint_names) or int(cols.max()) >= num_vertices):
            raise ValueError("regressor index out of range for its joints/vertices")
        self.fmt, self.joint_names, self.num_vertices = fmt, tuple(joint_names), num_vertices
        self.register_buffer("rows", rows.long())
        self.register_buffer("cols", cols.long())
        self.values = torch.nn.Parameter(values.clone())
        self.register_buffer("initial", values.detach().clone())

    @classmethod
    def from_body(cls, body, fmt, rings: int = 2, init: torch.Tensor | None = None):
        """Start from the fixed regressor (or ``init`` (J,V)); support grown by ``rings``."""
        fmt = get_format(fmt) if isinstance(fmt, str) else fmt
        if rings < 0:
            raise ValueError(f"rings must be >= 0, got {rings}")
        w0 = initial_regressor(body, fmt) if init is None else init.to(body.dtype)
        nv = body.num_vertices
        if w0.shape != (fmt.num_joints, nv):
            raise ValueError(f"init must be ({fmt.num_joints},{nv}), got {tuple(w0.shape)}")
        support = sp.csr_matrix(w0.detach().cpu().numpy() != 0)
        adj = mesh_neighbourhood(body.faces, nv)
        for _ in range(rings):
            support = (support @ adj).astype(bool)
        coo = support.tocoo()
        rows, cols = torch.as_tensor(coo.row), torch.as_tensor(coo.col)
        values = w0.detach().cpu()[rows, cols]
        return cls(fmt.name, fmt.joint_names, nv, rows, cols, values.to(body.dtype))

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def dense(self) -> torch.Tensor:
        """(J,V) the regressor as a dense matrix (e.g. to replace ``body.regressor(fmt)``)."""
        out = self.values.new_zeros(self.num_joints, self.num_vertices)
        return out.index_put((self.rows, self.cols), self.values, accumulate=True)

    def row_sums(self) -> torch.Tensor:
        """(J,) sum of each row's weights (1 for an affine combination)."""
        return self.values.new_zeros(self.num_joints).index_add(0, self.rows, self.values)

    def convexity_penalty(self) -> torch.Tensor:
        """The paper's ``sum_j |sum_v W_jv - 1|``."""
        return (self.row_sums() - 1.0).abs().sum()

    def forward(self, vertices: torch.Tensor) -> torch.Tensor:
        if vertices.ndim != 3 or vertices.shape[1:] != (self.num_vertices, 3):
            raise ValueError(
                f"vertices must be (B,{self.num_vertices},3), got {tuple(vertices.shape)}"
            )
        contrib = vertices[:, self.cols] * self.values.to(vertices.dtype)[None, :, None]
        out = vertices.new_zeros(vertices.shape[0], self.num_joints, 3)
        return out.index_add(1, self.rows, contrib)

    # -- persistence ----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write a pickle-free ``.npz`` (plain arrays only)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            path,
            version=np.int64(_NPZ_VERSION),
            fmt=np.array(self.fmt),
            joint_names=np.array(self.joint_names),
            num_vertices=np.int64(self.num_vertices),
            rows=self.rows.cpu().numpy().astype(np.int32),
            cols=self.cols.cpu().numpy().astype(np.int32),
            values=self.values.detach().cpu().numpy().astype(np.float64),
        )
        return path if path.suffix == ".npz" else path.with_suffix(path.suffix + ".npz")

    @classmethod
    def load(cls, path: str | os.PathLike, body=None) -> AdaptiveRegressor:
        """Read :meth:`save`'s file; with ``body``, check it matches the mesh and use its dtype."""
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a readable adaptive-regressor .npz ({exc})") from None
        missing = {"version", "fmt", "joint_names", "num_vertices", "rows", "cols", "values"}
        missing -= set(arrays)
        if missing:
            raise ValueError(f"{path}: missing arrays {sorted(missing)}")
        if int(arrays["version"]) != _NPZ_VERSION:
            raise ValueError(f"{path}: version {int(arrays['version'])}, expected {_NPZ_VERSION}")
        nv = int(arrays["num_vertices"])
        dtype = body.dtype if body is not None else torch.float64
        if body is not None and body.num_vertices != nv:
            raise ValueError(f"{path}: made for {nv} vertices, body has {body.num_vertices}")
        return cls(
            str(arrays["fmt"]),
            tuple(str(n) for n in arrays["joint_names"]),
            nv,
            torch.as_tensor(arrays["rows"].astype(np.int64)),
            torch.as_tensor(arrays["cols"].astype(np.int64)),
            torch.as_tensor(arrays["values"]).to(dtype),
        )


def fit_regressor(
    reg: AdaptiveRegressor,
    vertices: torch.Tensor,
    targets: torch.Tensor,
    valid: torch.Tensor | None = None,
    *,
    ridge: float = 1e-2,
) -> AdaptiveRegressor:
    """Closed-form fit of ``reg`` in place: per joint, ridge regression on its support with
    the rows' sum held at exactly 1 (the convexity term's minimiser).

    Row ``j`` becomes ``w0 + d`` minimising ``sum_n |X_n d - r_n|^2 + alpha |d|^2`` subject to
    ``sum(d) = 0``, with ``X_n`` the support vertices centred on the current joint and ``r_n``
    the target's offset from it; ``alpha = ridge * mean squared vertex offset`` (dimensionless
    ``ridge``, larger = closer to the start). Solved in the smaller of the primal (support
    size) and dual (3 x samples) forms. This is the squared-error version of the paper's
    loss; :func:`train_regressor` then fine-tunes with the paper's loss itself if wanted.

    Args:
        vertices: (N,V,3) posed mesh vertices (metres); targets: (N,J,3) joints (NaN = missing).
        valid: (N,J) bool joints to use (default: finite targets).
    """
    if vertices.ndim != 3 or targets.shape != (vertices.shape[0], reg.num_joints, 3):
        raise ValueError(
            f"expected vertices (N,V,3) and targets (N,{reg.num_joints},3), got "
            f"{tuple(vertices.shape)} and {tuple(targets.shape)}"
        )
    if not ridge > 0:
        raise ValueError(f"ridge must be > 0, got {ridge}")
    if valid is None:
        valid = torch.isfinite(targets).all(-1)
    dtype = torch.float64  # normal equations of correlated neighbours need the precision
    values = reg.values.detach().to(dtype).clone()
    rows = reg.rows.cpu()
    for j in range(reg.num_joints):
        sel = torch.nonzero(rows == j)[:, 0]
        use = torch.nonzero(valid[:, j])[:, 0]
        if len(sel) < 2 or len(use) == 0:
            continue
        w0 = values[sel]
        w0 = w0 + (1.0 - w0.sum()) / len(sel)  # start from an exactly affine row
        x = vertices[use][:, reg.cols[sel]].to(dtype)  # (n,s,3)
        p0 = torch.einsum("s,nsc->nc", w0, x)
        a = (x - p0[:, None]).permute(0, 2, 1).reshape(-1, len(sel))  # (3n,s)
        r = (targets[use, j].to(dtype) - p0).reshape(-1)
        b = a - a.mean(1, keepdim=True)  # B = A P: keeps sum(d) = 0 exactly
        alpha = ridge * float((a * a).mean()) * a.shape[0]
        if b.shape[1] <= b.shape[0]:
            eye = torch.eye(b.shape[1], dtype=dtype)
            d = torch.linalg.solve(b.T @ b + alpha * eye, b.T @ r)
        else:
            eye = torch.eye(b.shape[0], dtype=dtype)
            d = b.T @ torch.linalg.solve(b @ b.T + alpha * eye, r)
        values[sel] = w0 + d
    with torch.no_grad():
        reg.values.copy_(values.to(reg.values.dtype))
    return reg


@dataclass
class TrainReport:
    """What :func:`train_regressor` did: steps, final training loss terms, loss history."""

    steps: int
    joint_loss_m: float
    convexity: float
    history: list[float] = field(default_factory=list)


def joint_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean Euclidean distance (metres) over the valid joints."""
    dist = torch.linalg.vector_norm(torch.where(valid[..., None], pred - target, 0.0), dim=-1)
    return dist.sum() / valid.sum().clamp(min=1)


def train_regressor(
    reg: AdaptiveRegressor,
    vertices: torch.Tensor,
    targets: torch.Tensor,
    valid: torch.Tensor | None = None,
    *,
    steps: int = 400,
    lr: float = 1e-5,
    batch_size: int = 64,
    convexity: float = CONVEXITY,
    anchor: float = 0.0,
    seed: int = 0,
    progress: bool = False,
) -> TrainReport:
    """Train ``reg`` in place with Adam on (vertices (N,V,3), targets (N,J,3)) pairs.

    Args:
        valid: (N,J) bool joints to learn from (default: finite targets).
        lr: Adam step (weight units; the fixed rows hold ~1e-3 per vertex). Adam moves every
            weight by about ``lr`` per step, and neighbouring vertices are nearly collinear, so
            from the fixed regressor it needs many small steps: start from
            :func:`fit_regressor` and fine-tune with ``lr`` ~1e-5.
        convexity: weight of the row-sum term (the paper's 0.4).
        anchor: optional weight of ``sum (W - W_init)^2`` (keeps unseen directions put).
        seed: minibatch order.
        progress: show a tqdm bar.
    """
    if vertices.ndim != 3 or targets.shape != (vertices.shape[0], reg.num_joints, 3):
        raise ValueError(
            f"expected vertices (N,V,3) and targets (N,{reg.num_joints},3), got "
            f"{tuple(vertices.shape)} and {tuple(targets.shape)}"
        )
    if steps < 1 or not lr > 0 or batch_size < 1:
        raise ValueError("steps and batch_size must be >= 1 and lr > 0")
    if valid is None:
        valid = torch.isfinite(targets).all(-1)
    targets = torch.nan_to_num(targets)
    n = vertices.shape[0]
    # Gather each sample's support vertices once: a step then touches nnz, not V, vertices.
    support = vertices[:, reg.cols].to(reg.values.dtype)  # (N,nnz,3)
    opt = torch.optim.Adam([reg.values], lr=lr)
    gen = torch.Generator().manual_seed(seed)
    history: list[float] = []
    bar = range(steps)
    if progress:
        from tqdm import tqdm

        bar = tqdm(bar, desc=f"adaptive regressor {reg.fmt}", unit="step")
    loss_j = torch.zeros(())
    for _ in bar:
        idx = torch.randint(n, (min(batch_size, n),), generator=gen)
        contrib = support[idx] * reg.values[None, :, None]
        pred = contrib.new_zeros(len(idx), reg.num_joints, 3).index_add(1, reg.rows, contrib)
        loss_j = joint_loss(pred, targets[idx].to(pred), valid[idx])
        loss = loss_j + convexity * reg.convexity_penalty()
        if anchor > 0:
            loss = loss + anchor * ((reg.values - reg.initial) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(float(loss_j.detach()))
    return TrainReport(
        steps=steps,
        joint_loss_m=float(loss_j.detach()),
        convexity=float(reg.convexity_penalty().detach()),
        history=history,
    )
