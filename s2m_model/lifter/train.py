"""Training and evaluation of the lifter (supervised or 2D-only unsupervised).

Both modes read the same samples (a data-shard dict, see docs/data-format.md):

- ``supervised``: mean per-joint distance between the lifted and the true 3D joints (h36m17,
  plus the auxiliary coco17 3D output at half weight), metres, virtual-camera frame.
- ``unsupervised`` (Chen et al., CVPR 2019; only 2D keypoints and camera intrinsics are used):
  lift -> reproject (perspective, pelvis at the depth implied by the 2D size) == input 2D;
  rotate the lift about the pelvis (random azimuth, small elevation) -> project -> lift again
  -> rotate back == first lift (3D cycle) and its projection == input 2D (2D cycle); a 2D pose
  discriminator (LSGAN, spectrally normalised) on the rotated projections vs real 2D poses;
  left/right bone-length symmetry; a knee-bend prior (knees do not bend forwards) that breaks
  the depth-mirror ambiguity. The 2D targets are the coco17 and h36m17 keypoints of the same
  view.

Augmentation (both modes): horizontal mirroring, 2D noise that grows as the simulated
confidence drops, random keypoint dropout (and whole-leg truncation), so that detector output
with missing or shaky joints is in-distribution.

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
import roma
import torch
from torch import nn

from s2m_model.lifter.model import (
    COCO_HIPS,
    NUM_AUX,
    NUM_IN,
    NUM_OUT,
    Lifter,
    LifterConfig,
    centre_and_scale,
    save_checkpoint,
    virtual_camera,
)
from s2m_model.skeletons import get_format

log = logging.getLogger(__name__)

REQUIRED_KEYS = ("keypoints2d_coco17", "keypoints2d_h36m17", "joints3d_h36m17", "camera")
OPTIONAL_KEYS = ("joints3d_coco17",)
_LEGS = (13, 14, 15, 16)  # coco17 knees + ankles: the usual truncation at the image bottom


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


# ------------------------------------------------------------------------------------ data
@dataclass
class Prepared:
    """Training tensors, all in the virtual camera of each sample (N samples).

    ``xy_coco`` / ``xy_h36m`` (N,17,2) normalised image coordinates (x/z, y/z);
    ``j3d_h36m`` / ``j3d_coco`` (N,17,3) metres relative to the h36m17 pelvis (coco may be
    absent: None).
    """

    xy_coco: torch.Tensor
    xy_h36m: torch.Tensor
    j3d_h36m: torch.Tensor
    j3d_coco: torch.Tensor | None

    def __len__(self) -> int:
        return self.xy_coco.shape[0]

    def to(self, device: torch.device | str) -> Prepared:
        return Prepared(*(t.to(device) if t is not None else None for t in
                          (self.xy_coco, self.xy_h36m, self.j3d_h36m, self.j3d_coco)))

    def take(self, idx: torch.Tensor) -> Prepared:
        return Prepared(*(t[idx] if t is not None else None for t in
                          (self.xy_coco, self.xy_h36m, self.j3d_h36m, self.j3d_coco)))


def load_arrays(folder: str | Path, max_samples: int | None = None) -> dict[str, np.ndarray]:
    """The arrays the lifter needs from a shard folder (masks etc. are not kept in memory).

    Raises:
        FileNotFoundError / ValueError: see :func:`s2m_model.data.shards.iter_shards`.
    """
    from s2m_model.data.shards import iter_shards

    keys = (*REQUIRED_KEYS, *OPTIONAL_KEYS)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    count = 0
    for shard in iter_shards(folder):
        for k in keys:
            if k in shard:
                parts[k].append(shard[k])
        count += len(shard["camera"])
        if max_samples is not None and count >= max_samples:
            break
    out = {k: np.concatenate(v)[:max_samples] for k, v in parts.items() if v}
    check_arrays(out, str(folder))
    return out


def check_arrays(arrays: Mapping[str, np.ndarray], source: str) -> int:
    """Validate the keys/shapes the lifter needs; returns the sample count N.

    Raises:
        ValueError: a key is missing, has the wrong shape, or holds NaN/inf.
    """
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"{source}: missing arrays {missing} (see docs/data-format.md)")
    n = int(np.shape(arrays["camera"])[0])
    if n < 1:
        raise ValueError(f"{source}: no samples")
    want = {"camera": (n, 4)}
    for k in ("keypoints2d_coco17", "keypoints2d_h36m17", "joints3d_h36m17", "joints3d_coco17"):
        want[k] = (n, 17, 3)
    for k, shape in want.items():
        if k in arrays:
            got = tuple(np.shape(arrays[k]))
            if got != shape:
                raise ValueError(f"{source}: {k} has shape {got}, expected {shape}")
            if not np.isfinite(np.asarray(arrays[k], dtype=np.float64)).all():
                raise ValueError(f"{source}: {k} contains NaN or inf")
    if (np.asarray(arrays["camera"])[:, :2] <= 0).any():
        raise ValueError(f"{source}: camera focal lengths must be > 0")
    return n


def prepare(arrays: Mapping[str, np.ndarray], source: str = "data") -> Prepared:
    """Shard arrays -> :class:`Prepared` (virtual camera from the coco17 hips of each sample)."""
    n = check_arrays(arrays, source)
    cam = torch.as_tensor(np.asarray(arrays["camera"]), dtype=torch.float32)
    kp_c = torch.as_tensor(np.asarray(arrays["keypoints2d_coco17"]), dtype=torch.float32)
    kp_h = torch.as_tensor(np.asarray(arrays["keypoints2d_h36m17"]), dtype=torch.float32)
    all_valid = torch.ones(n, NUM_IN, dtype=torch.bool)
    # Concatenating both layouts gives them one virtual camera (coco17 first: its hips root it).
    xy, rot = virtual_camera(torch.cat([kp_c[..., :2], kp_h[..., :2]], 1),
                             torch.cat([all_valid, all_valid], 1), cam)
    j3d_h = torch.as_tensor(np.asarray(arrays["joints3d_h36m17"]), dtype=torch.float32)
    pelvis = j3d_h[:, :1]
    j3d_c = None
    if "joints3d_coco17" in arrays:
        j3d_c = (torch.as_tensor(np.asarray(arrays["joints3d_coco17"]), dtype=torch.float32)
                 - pelvis) @ rot.mT
    return Prepared(xy[:, :NUM_IN], xy[:, NUM_IN:], (j3d_h - pelvis) @ rot.mT, j3d_c)


def mirror(batch: Prepared, flip: torch.Tensor) -> Prepared:
    """Mirror the samples where ``flip`` (B,) is True: negate x and swap left/right joints."""
    perm_c = list(get_format("coco17").flip_perm)
    perm_h = list(get_format("h36m17").flip_perm)

    def one(t: torch.Tensor | None, perm: list[int]) -> torch.Tensor | None:
        if t is None:
            return None
        m = t[:, perm].clone()
        m[..., 0] = -m[..., 0]
        return torch.where(flip.view(-1, 1, 1), m, t)

    return Prepared(one(batch.xy_coco, perm_c), one(batch.xy_h36m, perm_h),
                    one(batch.j3d_h36m, perm_h), one(batch.j3d_coco, perm_c))


@dataclass
class Inputs:
    """One augmented batch: ``x`` (B,51) network input, ``valid`` (B,17) kept keypoints,
    ``root`` (B,2) and ``scale`` (B,) of the input normalisation (virtual-camera units)."""

    x: torch.Tensor
    valid: torch.Tensor
    root: torch.Tensor
    scale: torch.Tensor


def make_inputs(
    xy: torch.Tensor, noise: float, drop: float, g: torch.Generator | None
) -> Inputs:
    """Simulate detector output from clean 2D ``xy`` (B,17,2) and normalise it.

    Confidence ~ U(0.2, 1) per keypoint; Gaussian noise with std ``level * size * (1.5 - conf)``
    where ``level ~ U(0, noise)`` per sample and ``size`` is the clean 2D size; half of the
    samples drop keypoints at a rate ~ U(0, drop), 5% lose both legs below the hips; at least
    one hip and 5 keypoints always remain.
    """
    b, dev = xy.shape[0], xy.device

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g, device=dev)

    _, _, size = centre_and_scale(xy, torch.ones(b, NUM_IN, dtype=torch.bool, device=dev))
    conf = 0.2 + 0.8 * rand(b, NUM_IN)
    level = noise * rand(b) * size
    eps = torch.randn(b, NUM_IN, 2, generator=g, device=dev)
    noisy = xy + eps * (level[:, None] * (1.5 - conf))[..., None]
    rate = drop * rand(b) * (rand(b) < 0.5)
    valid = rand(b, NUM_IN) >= rate[:, None]
    legs = (rand(b) < 0.05) & (drop > 0)
    valid[:, list(_LEGS)] &= ~legs[:, None]
    hips = list(COCO_HIPS)
    no_hip = ~valid[:, hips].any(1)
    valid[:, hips] |= no_hip[:, None]
    valid |= (valid.sum(1) < 5)[:, None]
    x2, root, scale = centre_and_scale(noisy, valid)
    c = conf * valid
    return Inputs(torch.cat([x2, c[..., None]], -1).reshape(b, NUM_IN * 3), valid, root, scale)


# ---------------------------------------------------------------------------------- losses
def joint_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean Euclidean distance over (B,J,D) points (same unit as the inputs)."""
    return torch.linalg.vector_norm(pred - target, dim=-1).mean()


def project(points: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
    """Perspective projection of pelvis-relative points (B,J,3) with the pelvis at ``depth``
    (B,) on the optical axis and focal length ``depth`` (magnification 1 at the pelvis)."""
    z = (depth[:, None] + points[..., 2]).clamp_min(1e-2 * depth[:, None])
    return points[..., :2] * (depth[:, None] / z)[..., None]


def hip_centred(xy: torch.Tensor, coco_offset: int) -> torch.Tensor:
    """Subtract the coco17 hips' midpoint (coco joints start at ``coco_offset`` in ``xy``)."""
    hips = [coco_offset + h for h in COCO_HIPS]
    return xy - xy[:, hips].mean(1, keepdim=True)


def random_rotation(b: int, elevation: float, g: torch.Generator | None,
                    device: torch.device) -> torch.Tensor:
    """(B,3,3) rotations: azimuth ~ U(-pi, pi) about the camera's vertical (y) axis, then an
    elevation ~ U(-elevation, elevation) about x."""
    az = (2 * torch.rand(b, generator=g, device=device) - 1) * math.pi
    el = (2 * torch.rand(b, generator=g, device=device) - 1) * elevation
    zero = torch.zeros_like(az)
    r_az = roma.rotvec_to_rotmat(torch.stack([zero, az, zero], -1))
    r_el = roma.rotvec_to_rotmat(torch.stack([el, zero, zero], -1))
    return r_el @ r_az


def _mirrored_bones() -> tuple[list[int], list[int], list[int], list[int]]:
    """(parent, child) index lists of left bones and their right twins over the 34-joint raw
    output (h36m17 then coco17)."""
    lp, lc, rp, rc = [], [], [], []
    for offset, name in ((0, "h36m17"), (NUM_OUT, "coco17")):
        fmt = get_format(name)
        perm = fmt.flip_perm
        lefts = {a for a, _ in fmt.left_right}
        for p, c in fmt.bones:
            if c in lefts:
                lp.append(offset + p)
                lc.append(offset + c)
                rp.append(offset + perm[p])
                rc.append(offset + perm[c])
    return lp, lc, rp, rc


def knee_bend_penalty(joints: torch.Tensor, margin: float = 0.05) -> torch.Tensor:
    """Mean hinge penalty on knees bending forwards in (B,17,3) h36m17 joints (any unit).

    The knee's bend normal ``(knee - hip) x (ankle - knee)`` points to the body's left for a
    normal (backward) bend. A 3D pose and its depth mirror project to the same 2D, and the
    mirror bends its knees forwards, so this anatomical prior picks the right one.
    """
    left = joints[:, 4] - joints[:, 1]  # L_Hip - R_Hip
    left = left / torch.linalg.vector_norm(left, dim=-1, keepdim=True).clamp_min(1e-6)
    penalty = joints.new_zeros(())
    for hip, knee, ankle in ((1, 2, 3), (4, 5, 6)):
        thigh = joints[:, knee] - joints[:, hip]
        shin = joints[:, ankle] - joints[:, knee]
        n = torch.linalg.cross(thigh, shin, dim=-1)
        denom = (torch.linalg.vector_norm(thigh, dim=-1)
                 * torch.linalg.vector_norm(shin, dim=-1)).clamp_min(1e-6)
        penalty = penalty + torch.relu(-(n * left).sum(-1) / denom - margin).mean()
    return penalty / 2


class Discriminator(nn.Module):
    """2D pose critic: (B,68) normalised coco17 + h36m17 2D -> (B,) realness score."""

    def __init__(self, hidden: int = 256, spectral: bool = True) -> None:
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm if spectral else (lambda m: m)
        self.net = nn.Sequential(
            sn(nn.Linear((NUM_OUT + NUM_AUX) * 2, hidden)), nn.LeakyReLU(0.2),
            sn(nn.Linear(hidden, hidden)), nn.LeakyReLU(0.2),
            sn(nn.Linear(hidden, hidden)), nn.LeakyReLU(0.2),
            sn(nn.Linear(hidden, 1)),
        )

    def forward(self, poses: torch.Tensor) -> torch.Tensor:
        return self.net(poses.reshape(poses.shape[0], -1))[:, 0]


def disc_input(xy34: torch.Tensor) -> torch.Tensor:
    """(B,34,2) h36m17 + coco17 2D -> root-centred (coco hips) and scaled by the coco 2D size."""
    coco = xy34[:, NUM_OUT:]
    ones = torch.ones(coco.shape[:2], dtype=torch.bool, device=coco.device)
    _, root, scale = centre_and_scale(coco, ones)
    return (xy34 - root[:, None]) / scale.clamp_min(1e-6)[:, None, None]


class SupervisedObjective(nn.Module):
    """``forward`` = :meth:`Lifter.predict` (h36m17 + coco17 raw output) for DDP wrapping."""

    def __init__(self, lifter: Lifter) -> None:
        super().__init__()
        self.lifter = lifter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lifter.predict(x)


class UnsupervisedObjective(nn.Module):
    """The lifter's unsupervised loss in one ``forward`` (so DDP sees one forward per backward).

    The discriminator is passed in unwrapped: the generator step only reads it, and its own
    gradients are cleared before the discriminator step.
    """

    def __init__(self, lifter: Lifter) -> None:
        super().__init__()
        self.lifter = lifter
        self._bones = _mirrored_bones()

    def forward(
        self,
        x: torch.Tensor,
        valid: torch.Tensor,
        scale: torch.Tensor,
        target34: torch.Tensor,
        rot: torch.Tensor,
        disc: nn.Module,
        weights: dict[str, float],
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """Args: x (B,51) input; valid (B,17); scale (B,) input 2D size (virtual units);
        target34 (B,34,2) clean h36m17 + coco17 2D in input units; rot (B,3,3).

        Returns: total loss, its named parts, and the (B,34,2) fake 2D poses (for the critic).
        """
        lifter = self.lifter
        b = x.shape[0]
        depth = 1.0 / scale.clamp_min(1e-4)  # pelvis depth in 2D-size units (see project)
        y = lifter.predict(x)
        target = hip_centred(target34, NUM_OUT)
        reproj = joint_error(hip_centred(project(y, depth), NUM_OUT), target)

        y_rot = y @ rot.mT
        p_rot = project(y_rot, depth)
        x_rot, _, s_rot = centre_and_scale(p_rot[:, NUM_OUT:], valid)
        conf = x.reshape(b, NUM_IN, 3)[..., 2:]
        x2 = torch.cat([x_rot, conf], -1).reshape(b, NUM_IN * 3)
        y2 = lifter.predict(x2) * s_rot.clamp_min(1e-6)[:, None, None]
        y_back = y2 @ rot
        cycle3d = joint_error(y_back, y)
        cycle2d = joint_error(hip_centred(project(y_back, depth), NUM_OUT), target)

        fake = disc_input(p_rot)
        adv = ((disc(fake) - 1.0) ** 2).mean()

        lp, lc, rp, rc = self._bones
        len_l = torch.linalg.vector_norm(y[:, lc] - y[:, lp], dim=-1)
        len_r = torch.linalg.vector_norm(y[:, rc] - y[:, rp], dim=-1)
        sym = ((len_l - len_r).abs() / (len_l + len_r).clamp_min(1e-6)).mean()

        parts = {"reproj": reproj, "cycle3d": cycle3d, "cycle2d": cycle2d, "adv": adv,
                 "sym": sym, "bend": knee_bend_penalty(y[:, :NUM_OUT])}
        total = sum(weights[k] * v for k, v in parts.items())
        return total, parts, fake


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
