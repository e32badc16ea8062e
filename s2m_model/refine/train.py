"""Training of the learned PR / SR networks with the paper's loss (computation; no file reading).

The loss (Skeleton2Mesh Sec. 3.6), per sample, on the refined body (DIK's rotations with PR's
residuals, SR's betas) — joints regressed from the posed mesh:

``L = w2D |j2D - J2D| + w3D |j3D - J3D| + wmask (1 - IoU) + wsreg |beta| + wwreg L_wreg
+ wpreg sum |theta_PR|``

- ``j2D``: the mesh's keypoints (``keypoint_fmt``) projected with the camera, against the
  detector's keypoints, confidence-weighted, in units of the person's box height;
- ``j3D``: the mesh's joints in ``target_fmt`` root-relative, against the lifted skeleton
  (``unsupervised``: no labels, as in the paper) or the ground truth (``supervised``), metres;
- ``IoU``: soft silhouette of a ~1k-vertex mesh (:mod:`.silhouette`) against the person mask,
  on ``mask_batch`` samples of each batch (rendering is the slow part on a CPU);
- ``L_wreg``: the adaptive regressor's convexity term, when one is trained jointly (else 0).

Weights default to the paper's: w2D 1.0, w3D 2.5, wmask 0.15, wsreg 0.06, wwreg 1.0,
wpreg 0.05; Adam, lr ×0.95 per epoch. ``torchrun``: DDP when ``WORLD_SIZE`` is set (gloo on
CPU), each rank a shard of the samples; rank 0 writes checkpoints and the CSV log.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from s2m_model import dik

from .nets_io import save_refine_nets
from .pose_net import PoseRefineNet, apply_residual, pose_regulariser
from .shape_from_bones import BoneShapeSolver
from .shape_net import ShapeRefineNet, shape_regulariser
from .silhouette import (
    box_grid_coords,
    front_faces,
    posed_subset,
    reduce_mesh,
    soft_iou_loss,
    soft_silhouette,
)

__all__ = ["LossWeights", "RefineSamples", "RefineTrainConfig", "prepare_samples", "refine_loss",
           "train_refine"]  # fmt: skip

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LossWeights:
    """The paper's loss weights (Sec. 3.6)."""

    w2d: float = 1.0
    w3d: float = 2.5
    wmask: float = 0.15
    wsreg: float = 0.06
    wwreg: float = 1.0
    wpreg: float = 0.05


@dataclass
class RefineSamples:
    """Network inputs, DIK's starting point and the training targets (N samples).

    Attributes:
        skeleton: (N,J,3) lifted skeleton (metres, camera axes), ``skeleton_fmt``.
        keypoints: (N,K,3) detector keypoints (pixels + confidence), ``keypoint_fmt``.
        box: (N,4) person box (pixels); mask: (N,h,w) mask coverage over the box.
        camera: (N,4) intrinsics fx, fy, cx, cy (pixels).
        rotmats: (N,24,3,3) DIK's local rotations (solved with ``betas0``); transl: (N,3) the
            body translation placing it in the camera frame (metres).
        betas0: (N,10) closed-form SR betas (the shape net's start).
        target3d: (N,Jt,3) the 3D target in ``target_fmt`` (lifted or ground truth), metres.
    """

    skeleton: torch.Tensor
    keypoints: torch.Tensor
    box: torch.Tensor
    mask: torch.Tensor
    camera: torch.Tensor
    rotmats: torch.Tensor
    transl: torch.Tensor
    betas0: torch.Tensor
    target3d: torch.Tensor

    def __len__(self) -> int:
        return int(self.skeleton.shape[0])

    def index(self, idx: torch.Tensor) -> RefineSamples:
        return RefineSamples(**{k: v[idx] for k, v in asdict_shallow(self).items()})


def asdict_shallow(s: RefineSamples) -> dict[str, torch.Tensor]:
    return {k: getattr(s, k) for k in s.__dataclass_fields__}


def _translation(points: torch.Tensor, uv: torch.Tensor, w: torch.Tensor,
                 cam: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """(B,3) t so that points (B,K,3) + t project onto uv (B,K,2), weights w (B,K) (linear LS
    on the pinhole equations); rows without 3 usable points get t = (0, 0, 3)."""
    fx, fy, cx, cy = (cam[:, i : i + 1] for i in range(4))
    du, dv = uv[..., 0] - cx, uv[..., 1] - cy
    zero = torch.zeros_like(du)
    # fx (X + tx) = du (Z + tz)  ->  [fx, 0, -du] t = du Z - fx X; likewise for y.
    a = torch.cat([torch.stack([fx.expand_as(du), zero, -du], -1),
                   torch.stack([zero, fy.expand_as(dv), -dv], -1)], 1)  # fmt: skip
    b = torch.cat([du * points[..., 2] - fx * points[..., 0],
                   dv * points[..., 2] - fy * points[..., 1]], 1)  # fmt: skip
    sw = torch.cat([w, w], 1).sqrt()[..., None]
    a, b = a * sw, b * sw[..., 0]
    ata = a.transpose(1, 2) @ a + 1e-9 * torch.eye(3, dtype=a.dtype)
    t = torch.linalg.solve(ata, (a.transpose(1, 2) @ b[..., None]))[..., 0]
    bad = ((w > 0).sum(1) < 3) | ~torch.isfinite(t).all(-1) | (t[:, 2] <= 0.1)
    t[bad] = torch.tensor([0.0, 0.0, 3.0], dtype=t.dtype)
    return t


def prepare_samples(body, skeleton: torch.Tensor, skeleton_fmt: str, confidence: torch.Tensor,
                    keypoints: torch.Tensor, keypoint_fmt: str, box: torch.Tensor,
                    mask: torch.Tensor, camera: torch.Tensor, target3d: torch.Tensor,
                    batch: int = 256) -> RefineSamples:  # fmt: skip
    """SR (closed form) + DIK + placement for every sample: the networks' fixed starting point.

    Shapes as in :class:`RefineSamples`; ``confidence`` (N,J) of the skeleton. The translation
    fits the posed body's ``keypoint_fmt`` points to the keypoints (depth from the body's
    size, as in the pipeline).
    """
    solver = BoneShapeSolver(body, skeleton_fmt)
    dtype = body.dtype
    rot, tr, b0 = [], [], []
    with torch.no_grad():
        for s in range(0, len(skeleton), batch):
            sk = skeleton[s : s + batch].to(dtype)
            cf = confidence[s : s + batch].to(dtype)
            betas = solver(sk, cf).betas.to(dtype)
            res = dik.solve(sk, skeleton_fmt, body, betas=betas, confidence=cf)
            out = body(betas=betas, global_orient=res.global_orient, body_pose=res.body_pose)
            pts = body.regress(out.vertices, keypoint_fmt)
            kp = keypoints[s : s + batch].to(dtype)
            t = _translation(pts, kp[..., :2], kp[..., 2].clamp(min=0), camera[s : s + batch]
                             .to(dtype))  # fmt: skip
            rot.append(res.rotmats)
            tr.append(t)
            b0.append(betas)
    f = torch.float32
    return RefineSamples(
        skeleton=skeleton.to(f), keypoints=keypoints.to(f), box=box.to(f), mask=mask.to(f),
        camera=camera.to(f), rotmats=torch.cat(rot).to(f), transl=torch.cat(tr).to(f),
        betas0=torch.cat(b0).to(f), target3d=target3d.to(f),
    )  # fmt: skip


class _PointModel:
    """Regressed points of formats from the few vertices their regressors touch (fast)."""

    def __init__(self, body, formats: tuple[str, ...]) -> None:
        regs = [body.regressor(f).to(torch.float32) for f in formats]
        keep = torch.unique(torch.cat([torch.nonzero(r.abs().sum(0) > 0)[:, 0] for r in regs]))
        self.body, self.keep = body, keep
        self.regs = [r[:, keep] for r in regs]

    def __call__(self, betas, rotmats, transl) -> list[torch.Tensor]:
        v = posed_subset(self.body, self.keep, betas, rotmats, transl)
        return [torch.einsum("jv,bvc->bjc", r.to(v), v) for r in self.regs]


def _root_relative(x: torch.Tensor) -> torch.Tensor:
    return x - x.mean(1, keepdim=True)


def refine_loss(body, points: _PointModel, pose: PoseRefineNet | None,
                shape: ShapeRefineNet | None, s: RefineSamples, weights: LossWeights,
                mesh=None, mask_batch: int = 8,
                regressor_penalty: torch.Tensor | None = None,
                ) -> tuple[torch.Tensor, dict]:  # fmt: skip
    """The paper's loss on one batch; returns (scalar, {term: float}). See the module doc."""
    rot, betas = s.rotmats, s.betas0
    residual = None
    if pose is not None:
        residual = pose(s.skeleton, s.keypoints, s.box, s.mask, s.rotmats)
        rot = apply_residual(s.rotmats, residual, pose.joints)
    if shape is not None:
        betas = shape(s.skeleton, s.keypoints, s.box, s.mask, s.betas0)
    kp3, tgt3 = points(betas, rot, s.transl)
    fx, fy, cx, cy = (s.camera[:, i : i + 1] for i in range(4))
    z = kp3[..., 2].clamp(min=0.1)
    uv = torch.stack([fx * kp3[..., 0] / z + cx, fy * kp3[..., 1] / z + cy], -1)
    height = (s.box[:, 3] - s.box[:, 1]).clamp(min=1.0)[:, None]
    conf = s.keypoints[..., 2].clamp(min=0)
    # Capped at one box height: a body placed badly by a wild detection must not dominate.
    err = ((uv - s.keypoints[..., :2]).norm(dim=-1) / height).clamp(max=1.0)
    l2d = (err * conf).sum(1) / conf.sum(1).clamp(min=1e-6)
    valid = torch.isfinite(s.target3d).all(-1)
    tgt = torch.where(valid[..., None], s.target3d, torch.zeros_like(s.target3d))
    diff = (_root_relative(tgt3) - _root_relative(tgt)).norm(dim=-1) * valid
    l3d = diff.sum(1) / valid.sum(1).clamp(min=1)
    terms = {"2d": l2d.mean(), "3d": l3d.mean(), "sreg": shape_regulariser(betas).mean()}
    terms["preg"] = pose_regulariser(residual).mean() if residual is not None else l2d.new_zeros(())
    terms["wreg"] = regressor_penalty if regressor_penalty is not None else l2d.new_zeros(())
    terms["mask"] = l2d.new_zeros(())
    if mesh is not None and weights.wmask > 0 and mask_batch > 0:
        m = min(mask_batch, len(s))
        size = tuple(s.mask.shape[1:])
        verts = posed_subset(body, mesh.keep, betas[:m], rot[:m], s.transl[:m])
        coords = box_grid_coords(verts, s.camera[:m], s.box[:m], size)
        sil = soft_silhouette(coords, mesh.faces, size, face_mask=front_faces(verts, mesh.faces))
        terms["mask"] = soft_iou_loss(sil, s.mask[:m]).mean()
    w = weights
    total = (w.w2d * terms["2d"] + w.w3d * terms["3d"] + w.wmask * terms["mask"]
             + w.wsreg * terms["sreg"] + w.wwreg * terms["wreg"]
             + w.wpreg * terms["preg"])  # fmt: skip
    return total, {k: float(v.detach()) for k, v in terms.items()}


@dataclass
class RefineTrainConfig:
    """Settings of :func:`train_refine`.

    ``lr`` default 3e-5 is the paper's (batch 512, 200 epochs); short CPU runs need a larger
    one (the CLI's ``--lr``). ``target_fmt`` is the format of ``target3d``.
    """

    mode: str = "supervised"
    epochs: int = 10
    batch: int = 256
    lr: float = 3e-5
    lr_decay: float = 0.95
    weights: LossWeights = field(default_factory=LossWeights)
    keypoint_fmt: str = "coco17"
    target_fmt: str = "blazepose33"
    skeleton_fmt: str = "blazepose33"
    train_pose: bool = True
    train_shape: bool = True
    mask_batch: int = 8
    hidden: int = 256
    seed: int = 0
    meta: dict = field(default_factory=dict)


def _ddp() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("gloo")
    rank = torch.distributed.get_rank() if world > 1 else 0
    return rank, world


def evaluate(body, points, pose, shape, samples: RefineSamples, cfg: RefineTrainConfig,
             batch: int = 512) -> dict:  # fmt: skip
    """Mean loss terms (no mask term) over ``samples``: 2D in box heights, 3D in mm."""
    sums: dict[str, float] = {}
    with torch.no_grad():
        for s in range(0, len(samples), batch):
            part = samples.index(torch.arange(s, min(s + batch, len(samples))))
            _, terms = refine_loss(body, points, pose, shape, part, cfg.weights, mesh=None)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v * len(part)
    out = {k: v / len(samples) for k, v in sums.items()}
    out["3d_mm"] = out.pop("3d") * 1000.0
    return out


def train_refine(body, train: RefineSamples, val: RefineSamples | None, cfg: RefineTrainConfig,
                 out_dir: str | os.PathLike | None = None,
                 progress: bool = True) -> tuple[PoseRefineNet | None, ShapeRefineNet | None,
                                                 list[dict]]:  # fmt: skip
    """Train the networks; returns (pose net, shape net, per-epoch history).

    Writes ``out_dir/refine.pt`` (after every epoch; load with
    :func:`.nets_io.load_refine_nets`) and ``out_dir/log.csv`` (rank 0 only).

    Raises:
        ValueError: bad config (mode, epochs, batch, lr).
    """
    from tqdm import tqdm

    if cfg.mode not in ("supervised", "unsupervised"):
        raise ValueError(f"mode must be supervised or unsupervised, got {cfg.mode!r}")
    if cfg.epochs < 1 or cfg.batch < 1 or not cfg.lr > 0:
        raise ValueError("epochs, batch and lr must be positive")
    if not (cfg.train_pose or cfg.train_shape):
        raise ValueError("nothing to train: both train_pose and train_shape are off")
    rank, world = _ddp()
    torch.manual_seed(cfg.seed)
    j, k = train.skeleton.shape[1], train.keypoints.shape[1]
    pose = PoseRefineNet(j, k, hidden=cfg.hidden) if cfg.train_pose else None
    shape = ShapeRefineNet(cfg.skeleton_fmt, k, hidden=cfg.hidden // 2) if cfg.train_shape else None
    nets = torch.nn.ModuleList([n for n in (pose, shape) if n is not None])
    model: torch.nn.Module = nets
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(nets)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.lr_decay)
    points = _PointModel(body, (cfg.keypoint_fmt, cfg.target_fmt))
    mesh = None
    if cfg.weights.wmask > 0 and cfg.mask_batch > 0:
        mesh = reduce_mesh(body.v_template.cpu().numpy(), body.faces, 1000)
    g = torch.Generator().manual_seed(cfg.seed)
    history: list[dict] = []
    out = Path(out_dir) if out_dir is not None else None
    writer = None
    if out is not None and rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    if val is not None and rank == 0:  # epoch 0: the untrained nets = identity, the baseline
        base = evaluate(body, points, pose, shape, val, cfg)
        history.append({"epoch": 0, **{f"val_{k}": v for k, v in base.items()}})
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        order = torch.randperm(len(train), generator=g)[rank::world]
        steps = range(0, len(order), cfg.batch)
        bar = tqdm(steps, desc=f"refine epoch {epoch + 1}/{cfg.epochs}",
                   disable=not progress or rank != 0, leave=False)  # fmt: skip
        sums: dict[str, float] = {}
        n = 0
        for s in bar:
            batch = train.index(order[s : s + cfg.batch])
            loss, terms = refine_loss(body, points, pose, shape, batch, cfg.weights, mesh=mesh,
                                      mask_batch=cfg.mask_batch)  # fmt: skip
            if not math.isfinite(float(loss.detach())):
                raise FloatingPointError(f"non-finite refine loss at epoch {epoch + 1}")
            opt.zero_grad()
            loss.backward()
            opt.step()
            for key, v in {"loss": float(loss.detach()), **terms}.items():
                sums[key] = sums.get(key, 0.0) + v
            n += 1
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
        sched.step()
        row = {"epoch": epoch + 1, "lr": opt.param_groups[0]["lr"],
               "time_s": round(time.perf_counter() - t0, 2),
               **{f"train_{k}": v / max(n, 1) for k, v in sums.items()}}  # fmt: skip
        if val is not None and rank == 0:
            row.update({f"val_{k}": v for k, v in
                        evaluate(body, points, pose, shape, val, cfg).items()})  # fmt: skip
        history.append(row)
        log.info("refine epoch %d: %s", epoch + 1, row)
        if out is not None and rank == 0:
            meta = {**cfg.meta, "mode": cfg.mode, "epoch": epoch + 1, "history": row}
            save_refine_nets(out / "refine.pt", pose, shape, meta=meta)
            new = writer is None
            with open(out / "log.csv", "w" if new else "a", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=list(row))
                if new:
                    writer.writeheader()
                writer.writerow(row)
    if world > 1:
        torch.distributed.barrier()
    return pose, shape, history


def config_dict(cfg: RefineTrainConfig) -> dict:
    """JSON-ready copy of the config."""
    return asdict(cfg)
