"""Training and evaluation of the lifter (supervised or 2D-only unsupervised).

Both modes read the same samples (a data-shard dict, see docs/data-format.md) through
:mod:`s2m_model.lifter.samples` (virtual camera, mirroring, simulated detector noise and
dropout) and minimise a loss of :mod:`s2m_model.lifter.losses`: ``supervised`` (3D joint error,
metres) or ``unsupervised`` (Chen et al., CVPR 2019: reprojection, 3D/2D rotation cycles, a 2D
pose discriminator, bone symmetry and a knee-bend prior, from 2D keypoints and intrinsics only).

DDP: when launched with ``torchrun`` (``WORLD_SIZE`` > 1) each process initialises the process
group, trains on its :class:`~torch.utils.data.DistributedSampler` share (BatchNorm synced across
GPUs; CPU ranks keep local statistics), and rank 0 evaluates, logs and writes files.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from s2m_model.lifter.losses import (
    Discriminator,
    SupervisedObjective,
    UnsupervisedObjective,
    disc_input,
    joint_error,
    random_rotation,
)
from s2m_model.lifter.model import NUM_OUT, Lifter, LifterConfig, save_checkpoint
from s2m_model.lifter.samples import check_arrays, make_inputs, mirror, prepare
from s2m_model.skeletons import get_format
from s2m_model.util.plotting import pyplot

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Options of :func:`train_lifter` (all JSON-able; the CLI maps its flags 1:1).

    Attributes:
        mode: ``"supervised"`` or ``"unsupervised"``.
        epochs, batch, lr: optimisation (Adam, linear warm-up then cosine decay to 1%).
        weight_decay: AdamW decay.
        hidden, blocks, dropout, norm: :class:`LifterConfig` architecture.
        noise: largest 2D noise std as a fraction of the 2D size (mean joint distance to the
            hips' midpoint); each sample draws its own level in [0, noise].
        drop: largest per-keypoint dropout rate (half of the samples get no dropout).
        seed: RNG seed. device: ``"cpu"`` / ``"cuda"`` (DDP: ``cuda:LOCAL_RANK``).
        w_*: unsupervised loss weights (reprojection, 3D cycle, 2D cycle, adversarial, symmetry,
            knee bend).
        elevation: largest |elevation| (radians) of the unsupervised random rotation.
        spectral: spectral normalisation in the critic. disc_lr: critic learning rate
            (default ``lr``).
        eval_every: evaluate on the validation set every this many epochs (and after the last).
        init: start from these weights (``"default"`` or a checkpoint path; fine-tuning) instead
            of a random initialisation; the architecture fields must match the checkpoint's.
    """

    mode: str = "supervised"
    epochs: int = 20
    batch: int = 512
    lr: float = 1e-3
    weight_decay: float = 1e-4
    hidden: int = 512
    blocks: int = 2
    dropout: float = 0.1
    norm: str = "batch"
    noise: float = 0.1
    drop: float = 0.2
    seed: int = 0
    device: str = "cpu"
    w_reproj: float = 1.0
    w_cycle3d: float = 1.0
    w_cycle2d: float = 1.0
    w_adv: float = 0.05
    w_sym: float = 0.5
    w_bend: float = 1.0
    elevation: float = 0.25
    spectral: bool = True
    disc_lr: float | None = None
    eval_every: int = 1
    init: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in ("supervised", "unsupervised"):
            raise ValueError(f"mode must be 'supervised' or 'unsupervised', got {self.mode!r}")
        for name in ("epochs", "batch", "eval_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not 0 <= self.noise <= 1 or not 0 <= self.drop < 1:
            raise ValueError("noise must be in [0, 1] and drop in [0, 1)")



# ------------------------------------------------------------------------------ evaluation
def evaluate(
    lifter: Lifter,
    arrays: Mapping[str, np.ndarray],
    use_camera: bool = True,
    noise_px: float = 0.0,
    visible_only: bool = False,
    seed: int = 0,
    chunk: int = 4096,
) -> dict[str, float]:
    """Val MPJPE / PA-MPJPE (mm) of ``lifter.lift`` on shard arrays (all 17 joints, pelvis root).

    Every keypoint gets confidence 1 (the ground-truth 2D of occluded joints is still a
    position), or with ``visible_only`` its visibility flag (hidden and out-of-image keypoints
    missing; samples that then cannot be lifted are skipped and counted). ``noise_px`` adds
    Gaussian pixel noise (seeded).
    """
    from s2m_model.eval.metrics import mpjpe, pa_mpjpe

    check_arrays(arrays, "val")
    kp = torch.as_tensor(np.asarray(arrays["keypoints2d_coco17"]), dtype=torch.float32).clone()
    cam = torch.as_tensor(np.asarray(arrays["camera"]), dtype=torch.float32)
    gt = torch.as_tensor(np.asarray(arrays["joints3d_h36m17"]), dtype=torch.float32)
    if visible_only:
        kp[..., 2] = (kp[..., 2] > 0.5).float()
        keep = lifter.usable(kp)
        kp, cam, gt = kp[keep], cam[keep], gt[keep]
    else:
        kp[..., 2] = 1.0
    n = kp.shape[0]
    if n == 0:
        raise ValueError("no liftable validation samples")
    if noise_px > 0:
        g = torch.Generator().manual_seed(seed)
        kp[..., :2] += noise_px * torch.randn(kp[..., :2].shape, generator=g)
    gt = gt - gt[:, :1]
    errs, pa_errs = [], []
    for s in range(0, n, chunk):
        pred = lifter.lift(kp[s:s + chunk], cam[s:s + chunk] if use_camera else None).cpu()
        errs.append(mpjpe(pred, gt[s:s + chunk], root=0, reduction="sample"))
        pa_errs.append(pa_mpjpe(pred, gt[s:s + chunk], reduction="sample"))
    return {"mpjpe_mm": float(torch.cat(errs).mean()),
            "pa_mpjpe_mm": float(torch.cat(pa_errs).mean()), "samples": n}


def evaluate_all(lifter: Lifter, arrays: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """The validation report: GT 2D with/without camera, with 5 px noise, and with hidden
    keypoints missing (all with camera except the second)."""
    return {
        "gt2d_camera": evaluate(lifter, arrays, use_camera=True),
        "gt2d_no_camera": evaluate(lifter, arrays, use_camera=False),
        "noise5px_camera": evaluate(lifter, arrays, use_camera=True, noise_px=5.0),
        "visible_only_camera": evaluate(lifter, arrays, use_camera=True, visible_only=True),
    }


# -------------------------------------------------------------------------------- training
def mean_bone_sum(body_name: str = "s2m-free") -> float:
    """Metres: sum of the h36m17 bone lengths of the body model's mean (betas = 0) skeleton."""
    import contextlib
    import io

    from s2m_model.body import load_body_model

    with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a notice on stdout
        body = load_body_model(body_name)
    rest = body.rest_points(None, "h36m17")[0].double()
    bones = get_format("h36m17").bones
    return float(sum(torch.linalg.vector_norm(rest[c] - rest[p]) for p, c in bones))


@dataclass
class _Dist:
    world: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device: str) -> tuple[_Dist, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist(), torch.device(device)
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
        backend = "nccl"
    else:
        dev = torch.device("cpu")
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return _Dist(world, dist.get_rank(), local_rank), dev


def _lr_lambda(total_steps: int, warmup: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, total_steps - warmup)
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return f


def _load_init(lifter: Lifter, cfg: TrainConfig) -> None:
    """Copy the weights of ``cfg.init`` into ``lifter`` (same architecture required)."""
    from s2m_model.lifter.model import load_lifter

    base = load_lifter(cfg.init)
    ours, theirs = lifter.config, base.config
    diff = [k for k in ("hidden", "blocks", "norm") if getattr(ours, k) != getattr(theirs, k)]
    if diff:
        raise ValueError(f"--init {cfg.init}: its {', '.join(diff)} differ from the training "
                         f"options ({[(k, getattr(theirs, k)) for k in diff]})")
    lifter.load_state_dict(base.state_dict())


def train_lifter(
    cfg: TrainConfig,
    train_arrays: Mapping[str, np.ndarray],
    val_arrays: Mapping[str, np.ndarray] | None = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
    bone_sum: float | None = None,
    max_steps: int | None = None,
) -> tuple[Lifter, dict[str, Any]]:
    """Train a lifter; rank 0 writes ``lifter.pt``, ``history.json``, ``report.json`` and
    ``curve.png`` to ``out_dir`` (if given).

    Args:
        cfg: options. train_arrays / val_arrays: shard dicts (``load_shards``).
        progress: tqdm bars (rank 0).
        bone_sum: metres, mean-skeleton bone-length sum (default: from the s2m-free body).
        max_steps: stop after this many optimiser steps in total (tests).

    Returns:
        The trained lifter (eval mode, unwrapped) and the report dict (history, final val
        metrics, timing).
    """
    from tqdm.auto import tqdm

    dist_info, device = _init_distributed(cfg.device)
    torch.manual_seed(cfg.seed)
    data = prepare(train_arrays, "train").to(device)
    n = len(data)
    batch = min(cfg.batch, n)
    if bone_sum is None:
        bone_sum = mean_bone_sum()
    lifter = Lifter(LifterConfig(hidden=cfg.hidden, blocks=cfg.blocks, dropout=cfg.dropout,
                                 norm=cfg.norm, mode=cfg.mode, mean_bone_sum=bone_sum)).to(device)
    if cfg.init is not None:
        _load_init(lifter, cfg)
    disc = (Discriminator(spectral=cfg.spectral).to(device) if cfg.mode == "unsupervised"
            else None)
    objective: nn.Module = (UnsupervisedObjective(lifter) if cfg.mode == "unsupervised"
                            else SupervisedObjective(lifter))
    if dist_info.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        if device.type == "cuda":  # SyncBatchNorm is GPU-only; CPU ranks keep local BN stats
            objective = nn.SyncBatchNorm.convert_sync_batchnorm(objective)
        ids = [device.index] if device.type == "cuda" else None
        objective = DDP(objective, device_ids=ids)
        if disc is not None:
            disc = DDP(disc, device_ids=ids)
        lifter = objective.module.lifter  # the synced-BN copy that is trained
    sampler = torch.utils.data.DistributedSampler(
        range(n), num_replicas=dist_info.world, rank=dist_info.rank, shuffle=True,
        seed=cfg.seed, drop_last=True)
    steps_per_epoch = max(1, len(sampler) // batch)
    total_steps = steps_per_epoch * cfg.epochs
    opt = torch.optim.AdamW(lifter.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, _lr_lambda(total_steps, min(500, max(1, total_steps // 20))))
    disc_opt = (torch.optim.Adam(disc.parameters(), lr=cfg.disc_lr or cfg.lr, betas=(0.5, 0.999))
                if disc is not None else None)
    weights = {"reproj": cfg.w_reproj, "cycle3d": cfg.w_cycle3d, "cycle2d": cfg.w_cycle2d,
               "adv": cfg.w_adv, "sym": cfg.w_sym, "bend": cfg.w_bend}
    g = torch.Generator(device=device).manual_seed(cfg.seed * 1000 + dist_info.rank)
    history: list[dict[str, Any]] = []
    out = Path(out_dir) if out_dir is not None else None
    t0 = time.perf_counter()
    step = 0
    for epoch in range(cfg.epochs):
        sampler.set_epoch(epoch)
        order = torch.tensor(list(iter(sampler)), device=device)
        objective.train()
        sums: dict[str, float] = {}
        bar = tqdm(range(steps_per_epoch), desc=f"{cfg.mode} epoch {epoch + 1}/{cfg.epochs}",
                   disable=not (progress and dist_info.main), leave=False)
        for i in bar:
            b = mirror(data.take(order[i * batch:(i + 1) * batch]),
                       torch.rand(batch, generator=g, device=device) < 0.5)
            inp = make_inputs(b.xy_coco, cfg.noise, cfg.drop, g)
            if cfg.mode == "supervised":
                raw = objective(inp.x)
                loss = joint_error(raw[:, :NUM_OUT], b.j3d_h36m)
                parts = {"mpjpe_m": loss.detach()}
                if b.j3d_coco is not None:
                    loss = loss + 0.5 * joint_error(raw[:, NUM_OUT:], b.j3d_coco)
            else:
                target = torch.cat([b.xy_h36m, b.xy_coco], 1)
                target = (target - inp.root[:, None]) / inp.scale[:, None, None]
                rot = random_rotation(batch, cfg.elevation, g, device)
                plain_disc = disc.module if hasattr(disc, "module") else disc
                plain_disc.requires_grad_(False)  # the generator step only reads the critic
                loss, parts, fake = objective(inp.x, inp.valid, inp.scale, target, rot,
                                              plain_disc, weights)
                plain_disc.requires_grad_(True)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(lifter.parameters(), 5.0)
            opt.step()
            sched.step()
            if disc is not None and disc_opt is not None:
                real = disc_input(torch.cat([b.xy_h36m, b.xy_coco], 1))
                scores = disc(torch.cat([real, fake.detach()], 0))
                d_loss = ((scores[:batch] - 1) ** 2).mean() + (scores[batch:] ** 2).mean()
                disc_opt.zero_grad(set_to_none=True)
                d_loss.backward()
                disc_opt.step()
                parts = {**parts, "disc": d_loss.detach()}
            if not torch.isfinite(loss):
                raise RuntimeError(f"training diverged at epoch {epoch + 1}, step {i} (loss "
                                   f"{float(loss)}); try a lower --lr")
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            if i % 20 == 0:
                bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
            step += 1
            if max_steps is not None and step >= max_steps:
                break
        row: dict[str, Any] = {"epoch": epoch + 1, "steps": i + 1,
                               "time_s": round(time.perf_counter() - t0, 2),
                               "lr": float(sched.get_last_lr()[0])}
        row.update({k: v / (i + 1) for k, v in sums.items()})
        last = epoch + 1 == cfg.epochs or (max_steps is not None and step >= max_steps)
        due = (epoch + 1) % cfg.eval_every == 0 or last
        if dist_info.main and val_arrays is not None and due:
            lifter.eval()
            row["val"] = evaluate(lifter, val_arrays, use_camera=True)
            lifter.train()
        history.append(row)
        if dist_info.main:
            msg = ", ".join(f"{k} {v:.4g}" for k, v in row.items() if isinstance(v, float))
            if "val" in row:
                msg += (f", val MPJPE {row['val']['mpjpe_mm']:.1f} mm, PA-MPJPE "
                        f"{row['val']['pa_mpjpe_mm']:.1f} mm")
            log.info("epoch %d: %s", epoch + 1, msg)
            if out is not None:
                _write_outputs(out, lifter, cfg, history, None)
        if max_steps is not None and step >= max_steps:
            break
    train_time = time.perf_counter() - t0
    lifter.eval()
    report: dict[str, Any] = {"mode": cfg.mode, "train_samples": n, "train_time_s": train_time,
                              "world_size": dist_info.world, "config": asdict(cfg),
                              "history": history}
    if dist_info.main:
        if val_arrays is not None:
            report["val"] = evaluate_all(lifter, val_arrays)
        if out is not None:
            _write_outputs(out, lifter, cfg, history, report)
    if dist_info.world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return lifter, report


def _write_outputs(out: Path, lifter: Lifter, cfg: TrainConfig, history: list[dict[str, Any]],
                   report: dict[str, Any] | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    extra = {"train": asdict(cfg), "epochs_done": len(history)}
    if report is not None and "val" in report:
        extra["val"] = report["val"]
    save_checkpoint(lifter, out / "lifter.pt", extra=json.loads(json.dumps(extra)))
    (out / "history.json").write_text(json.dumps(history, indent=1))
    if report is not None:
        (out / "report.json").write_text(json.dumps(report, indent=1))
    plot_curve(history, out / "curve.png", cfg.mode)


def plot_curve(history: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    """Training loss and val MPJPE / PA-MPJPE per epoch (PNG)."""
    plt = pyplot()
    epochs = [r["epoch"] for r in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for key in ("loss", "mpjpe_m", "reproj", "cycle3d", "cycle2d", "adv", "sym", "disc"):
        if any(key in r for r in history):
            ax1.plot(epochs, [r.get(key, np.nan) for r in history], marker=".", label=key)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("training loss (mean per epoch)")
    ax1.set_yscale("log")
    ax1.legend(fontsize=8)
    val = [(r["epoch"], r["val"]) for r in history if "val" in r]
    if val:
        ax2.plot([e for e, _ in val], [v["mpjpe_mm"] for _, v in val], marker="o", label="MPJPE")
        ax2.plot([e for e, _ in val], [v["pa_mpjpe_mm"] for _, v in val], marker="o",
                 label="PA-MPJPE")
        ax2.legend()
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("val error (mm)")
    fig.suptitle(f"lifter training ({title})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
