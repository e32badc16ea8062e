"""Ground-truth generator: fitted mocap poses x random bodies x random cameras -> shards.

Per sample (all random draws from ``numpy.random.default_rng([seed, shard_index])``, so a
shard is reproducible on its own and the result does not depend on the number of workers):

1. a fitted mocap frame (uniform over the split's fitted frames) and random betas
   ``N(0, 0.8^2)`` clipped to +-2;
2. the body is placed where the fitted body was (the pelvis, its height scaled by the new
   body's leg length so the feet stay near the floor) and a camera is drawn: horizontal FOV
   45-75 deg at 640x480 (``fx = fy``, principal point at the centre), distance 2.5-6 m from
   the pelvis, yaw 0-360 deg around it, height 0.5-2.2 m above the floor (mocap y = 0),
   looking at the pelvis, roll +-5 deg;
3. the body parameters are re-expressed in the camera frame (x right, y down, z forward):
   ``R_c = R_cw R_w``, ``t_c = R_cw (J0 + t_w - C) - J0`` (SMPL rotates about the rest pelvis
   ``J0``, then translates), so ``body(betas, R_c, pose, t_c)`` *is* the body in the camera;
4. joints of every image format (``smpl24`` from the kinematic tree, the others through
   ``body.regress``), their projections, visibility (inside the image and not hidden by the
   mesh: a z-buffer test at half the image resolution with a per-keypoint depth tolerance),
   and the silhouette at ``mask_size``.

The shard layout is docs/data-format.md; the z-buffer is :mod:`s2m_model.data.raster`, the
visibility test :mod:`s2m_model.data.visibility`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import roma
import torch

from s2m_model.camera import Camera, project_points
from s2m_model.data import shards
from s2m_model.data.catalogue import LICENCES, SPLITS, list_clips
from s2m_model.data.fit_cache import fit_clips, single_thread
from s2m_model.data.mocap_fit import DEFAULT_REFINE_STEPS, FIT_VERSION, MocapFit
from s2m_model.data.raster import depth_and_mask
from s2m_model.data.visibility import face_parts, keypoint_visibility, visibility_models
from s2m_model.data.workers import map_in_processes, shard_plan
from s2m_model.skeletons import get_format
from s2m_model.smpl_layout import JOINT_INDEX, NUM_BETAS

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1
"""Bump when the generated numbers change for the same seed."""


@dataclass(frozen=True)
class GeneratorConfig:
    """Sampling ranges and output sizes (angles in degrees, lengths in metres, sizes in px)."""

    image_size: tuple[int, int] = (640, 480)
    mask_size: tuple[int, int] = (160, 120)
    depth_scale: float = 0.5  # z-buffer resolution for visibility, relative to the image
    fov_deg: tuple[float, float] = (45.0, 75.0)
    distance_m: tuple[float, float] = (2.5, 6.0)
    yaw_deg: tuple[float, float] = (0.0, 360.0)
    camera_height_m: tuple[float, float] = (0.5, 2.2)
    roll_deg: tuple[float, float] = (-5.0, 5.0)
    beta_std: float = 0.8
    beta_clip: float = 2.0
    formats: tuple[str, ...] = shards.FORMATS
    # Depth tolerance of the occlusion test (see VisibilityModel).
    visibility_base_m: float = 0.02
    visibility_depth_factor: float = 2.0
    visibility_own_margin_m: float = 0.12
    chunk: int = 64  # samples per batched body evaluation

    def __post_init__(self) -> None:
        for name in ("fov_deg", "distance_m", "yaw_deg", "camera_height_m", "roll_deg"):
            lo, hi = getattr(self, name)
            if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
                raise ValueError(f"{name} must be a finite (low, high) range, got {(lo, hi)}")
        if not (1.0 < self.fov_deg[0] and self.fov_deg[1] < 179.0):
            raise ValueError(f"fov_deg must lie in (1, 179), got {self.fov_deg}")
        if self.distance_m[0] <= 0.3:
            raise ValueError(f"distance_m must be > 0.3 m, got {self.distance_m}")
        for name in ("image_size", "mask_size"):
            w, h = getattr(self, name)
            if not (int(w) == w and int(h) == h and w > 0 and h > 0):
                raise ValueError(f"{name} must be positive integers (width, height)")
        if not 0 < self.depth_scale <= 1 or self.beta_std < 0 or self.beta_clip < 0:
            raise ValueError("depth_scale must be in (0, 1], beta_std and beta_clip >= 0")
        for fmt in self.formats:
            get_format(fmt)


# ------------------------------------------------------------------------------ pose pool


@dataclass
class PosePool:
    """Fitted frames of a split, flattened. P = frames over all clips.

    Attributes:
        clips: clip names (``clip_id`` indexes them).
        clip_id: (P,) int32; frame: (P,) int32 source frame index.
        betas: (P,10) the fit's betas; global_orient (P,3), body_pose (P,23,3), transl (P,3):
            the fitted body in the mocap world frame (Y up, floor at y = 0).
    """

    clips: list[str]
    clip_id: np.ndarray
    frame: np.ndarray
    betas: np.ndarray
    global_orient: np.ndarray
    body_pose: np.ndarray
    transl: np.ndarray

    @classmethod
    def from_fits(cls, fits: Sequence[MocapFit]) -> PosePool:
        """Pool of all fitted frames of ``fits`` (in the given clip order)."""
        fits = [f for f in fits if f.num_frames > 0]
        if not fits:
            raise ValueError("no fitted frames to sample poses from")
        counts = [f.num_frames for f in fits]
        return cls(
            clips=[f.name for f in fits],
            clip_id=np.repeat(np.arange(len(fits), dtype=np.int32), counts),
            frame=np.concatenate([f.frame_index for f in fits]).astype(np.int32),
            betas=np.concatenate([np.repeat(f.betas[None], n, 0) for f, n in zip(fits, counts,
                                                                                 strict=True)]),
            global_orient=np.concatenate([f.global_orient for f in fits]),
            body_pose=np.concatenate([f.body_pose for f in fits]),
            transl=np.concatenate([f.transl for f in fits]),
        )  # fmt: skip

    def __len__(self) -> int:
        return int(self.clip_id.shape[0])


# ------------------------------------------------------------------------------ cameras


def look_at_rotation(eye: np.ndarray, target: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """(N,3,3) world -> camera rotations (rows: camera x right, y down, z forward).

    ``eye``/``target`` (N,3) in a Y-up world; ``roll`` (N,) radians about the optical axis.
    """
    fwd = target - eye
    fwd = fwd / np.linalg.norm(fwd, axis=-1, keepdims=True)
    up = np.broadcast_to([0.0, 1.0, 0.0], fwd.shape)
    right = np.cross(fwd, up)
    norm = np.linalg.norm(right, axis=-1, keepdims=True)
    if (norm < 1e-6).any():
        raise ValueError("camera looks straight up or down: its right axis is undefined")
    right = right / norm
    down = np.cross(fwd, right)
    rot = np.stack([right, down, fwd], axis=1)
    c, s = np.cos(roll), np.sin(roll)
    zero, one = np.zeros_like(c), np.ones_like(c)
    rz = np.stack([np.stack([c, -s, zero], -1), np.stack([s, c, zero], -1),
                   np.stack([zero, zero, one], -1)], axis=1)  # fmt: skip
    return rz @ rot


def to_camera_frame(
    global_orient: torch.Tensor,
    transl: torch.Tensor,
    rest_pelvis: torch.Tensor,
    rot_cw: torch.Tensor,
    eye: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """World-frame SMPL root parameters -> camera frame, exactly.

    SMPL places a point as ``x = R (x_rest - J0) + J0 + t``; with ``x_c = R_cw (x - eye)`` the
    camera-frame parameters are ``R_c = R_cw R`` and ``t_c = R_cw (J0 + t - eye) - J0``.

    Args:
        global_orient: (B,3) axis-angle in the world frame. transl: (B,3) metres.
        rest_pelvis: (B,3) the rest pelvis ``J0`` of each body's betas.
        rot_cw: (B,3,3) world -> camera rotation. eye: (B,3) camera centre in the world.

    Returns:
        ``(global_orient_c (B,3), transl_c (B,3))``.
    """
    rot_c = rot_cw @ roma.rotvec_to_rotmat(global_orient)
    t_c = (rot_cw @ (rest_pelvis + transl - eye)[..., None])[..., 0] - rest_pelvis
    return roma.rotmat_to_rotvec(rot_c), t_c


# ------------------------------------------------------------------------------ generation


def _rest_geometry(body, betas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,3) rest pelvis and (B,) rest leg length (pelvis height above the ankles)."""
    rest = body.rest_joints(betas)
    la, ra = JOINT_INDEX["left_ankle"], JOINT_INDEX["right_ankle"]
    leg = rest[:, 0, 1] - 0.5 * (rest[:, la, 1] + rest[:, ra, 1])
    return rest[:, 0], leg


def generate_samples(
    pool: PosePool,
    body,
    n: int,
    seed: int,
    shard_index: int = 0,
    cfg: GeneratorConfig | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """``n`` samples as shard arrays (docs/data-format.md); deterministic in (seed, shard_index).

    ``progress(k)`` is called after each chunk of ``k`` samples.
    """
    cfg = cfg or GeneratorConfig()
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng([int(seed), int(shard_index)])
    width, height = cfg.image_size
    idx = rng.integers(0, len(pool), size=n)
    betas = np.clip(rng.normal(0.0, cfg.beta_std, (n, NUM_BETAS)), -cfg.beta_clip, cfg.beta_clip)
    betas = betas.astype(np.float32)  # the stored values are the ones used everywhere
    fov = np.radians(rng.uniform(*cfg.fov_deg, n))
    dist = rng.uniform(*cfg.distance_m, n)
    yaw = np.radians(rng.uniform(*cfg.yaw_deg, n))
    cam_h = rng.uniform(*cfg.camera_height_m, n)
    roll = np.radians(rng.uniform(*cfg.roll_deg, n))
    # (n,4) fx, fy, cx, cy: Camera.from_fov per sample, batched (square pixels, centred).
    focal = 0.5 * width / np.tan(0.5 * fov)
    camera = np.stack([focal, focal, np.full(n, width / 2.0), np.full(n, height / 2.0)], 1)

    out: dict[str, list[np.ndarray]] = {}
    vis_models = visibility_models(body, cfg.formats, base_m=cfg.visibility_base_m,
                                   depth_factor=cfg.visibility_depth_factor,
                                   own_margin_m=cfg.visibility_own_margin_m)  # fmt: skip
    faces = body.faces
    parts = face_parts(body)
    with single_thread(), torch.no_grad():
        for start in range(0, n, cfg.chunk):
            sl = slice(start, min(n, start + cfg.chunk))
            part = _chunk(pool, body, faces, parts, vis_models, cfg, idx[sl], betas[sl],
                          camera[sl], dist[sl], yaw[sl], cam_h[sl], roll[sl])  # fmt: skip
            for key, val in part.items():
                out.setdefault(key, []).append(val)
            if progress is not None:
                progress(sl.stop - sl.start)
    if n == 0:
        shapes = shards.expected_shapes(cfg.formats, cfg.mask_size)
        kinds = {"f": np.float32, "i": np.int32, "u": np.uint8}
        return {k: np.zeros((0, *s), kinds[kind]) for k, (s, kind) in shapes.items()}
    return {k: np.concatenate(v) for k, v in out.items()}


def _chunk(pool, body, faces, parts, vis_models, cfg, idx, betas_np, camera, dist, yaw, cam_h,
           roll):  # fmt: skip
    b = len(idx)
    width, height = cfg.image_size
    dt = body.dtype
    betas = torch.as_tensor(betas_np, dtype=dt)
    fit_betas = torch.as_tensor(pool.betas[idx], dtype=dt)
    pelvis0, leg = (t.cpu() for t in _rest_geometry(body, betas))
    fit_pelvis0, fit_leg = (t.cpu() for t in _rest_geometry(body, fit_betas))
    # Where the fitted body's pelvis was; its height follows the new body's legs.
    pelvis_w = fit_pelvis0 + torch.as_tensor(pool.transl[idx], dtype=dt)
    pelvis_w[:, 1] = pelvis_w[:, 1] * leg / fit_leg
    target = pelvis_w.double().numpy()
    dy = cam_h - target[:, 1]
    horiz = np.sqrt(np.maximum(dist**2 - dy**2, 0.25))
    eye = target + np.stack([horiz * np.sin(yaw), dy, horiz * np.cos(yaw)], 1)
    rot_cw = look_at_rotation(eye, target, roll)
    go_c, t_c = to_camera_frame(
        torch.as_tensor(pool.global_orient[idx], dtype=torch.float64),
        pelvis_w.double() - pelvis0.double(),
        pelvis0.double(),
        torch.as_tensor(rot_cw),
        torch.as_tensor(eye),
    )
    go_c32 = go_c.to(torch.float32)
    t_c32 = t_c.to(torch.float32)
    pose = torch.as_tensor(pool.body_pose[idx], dtype=torch.float32)
    # The body sees exactly the stored (float32) parameters.
    res = body(betas=torch.as_tensor(betas_np.astype(np.float32)).to(dt),
               global_orient=go_c32.to(dt), body_pose=pose.to(dt), transl=t_c32.to(dt))  # fmt: skip
    verts = res.vertices
    arrays: dict[str, np.ndarray] = {
        "betas": betas_np.astype(np.float32),
        "global_orient": go_c32.numpy(),
        "body_pose": pose.numpy(),
        "transl": t_c32.numpy(),
        "camera": camera.astype(np.float32),
        "image_size": np.tile(np.array([width, height], dtype=np.int32), (b, 1)),
        "clip_id": pool.clip_id[idx].astype(np.int32),
        "frame": pool.frame[idx].astype(np.int32),
    }
    # Regressors in float64: surface landmarks sum ~13k weighted vertices.
    joints = {
        fmt: (res.joints if fmt == "smpl24" else body.regress(verts.double(), fmt))
        .float().cpu().numpy()
        for fmt in cfg.formats
    }
    masks = np.zeros((b, cfg.mask_size[1], cfg.mask_size[0]), dtype=bool)
    vis = {fmt: np.zeros((b, j.shape[1]), dtype=bool) for fmt, j in joints.items()}
    v_np = verts.double().cpu().numpy()
    for s in range(b):
        cam = Camera.coerce(camera[s], width, height)
        depth, label, masks[s] = depth_and_mask(v_np[s], faces, cam, cfg.mask_size,
                                                cfg.depth_scale, parts)  # fmt: skip
        for fmt, pts in joints.items():
            vis[fmt][s] = keypoint_visibility(pts[s].astype(np.float64), cam, depth, label,
                                              vis_models[fmt])  # fmt: skip
    for fmt, pts in joints.items():
        uv = project_points(pts.astype(np.float64), camera.astype(np.float64))
        arrays[f"joints3d_{fmt}"] = pts.astype(np.float32)
        arrays[f"keypoints2d_{fmt}"] = np.concatenate(
            [uv, vis[fmt][..., None].astype(np.float64)], -1
        ).astype(np.float32)
    arrays["mask"] = shards.pack_masks(masks)
    return arrays


# ------------------------------------------------------------------------------ build


def default_shared_dir() -> Path:
    """``$S2M_SHARED_DATA``, else ``../shared/data`` from the working directory, else next to
    the repository."""
    env = os.environ.get("S2M_SHARED_DATA")
    if env:
        return Path(env)
    here = Path.cwd().parent / "shared" / "data"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def _prepare_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a folder")
    if out.is_dir():
        ours = {shards.MANIFEST, "fit_report.json", "fit_report.png"}
        foreign = [p.name for p in out.iterdir()
                   if p.name not in ours and not p.name.startswith("shard-")]  # fmt: skip
        if foreign:
            raise ValueError(f"{out} holds files that are not an s2m dataset ({foreign[:3]}); "
                             "pick an empty or new folder")  # fmt: skip
        for p in out.iterdir():
            if p.name.startswith("shard-") or p.name == shards.MANIFEST:
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)


_WORKER: dict[str, Any] = {}


def _worker_init(pool: PosePool, body_name: str, cfg: GeneratorConfig) -> None:
    from s2m_model.body import load_body_model

    torch.set_num_threads(1)
    _WORKER.update(pool=pool, body=load_body_model(body_name), cfg=cfg)


def _worker_shard(args: tuple[int, int, int, str]) -> tuple[int, int]:
    index, size, seed, path = args
    w = _WORKER
    arrays = generate_samples(w["pool"], w["body"], size, seed, index, w["cfg"])
    shards.write_shard(path, arrays, w["cfg"].formats, w["cfg"].mask_size)
    return index, size


def manifest_base(
    split: str, seed: int, n: int, names: Sequence[str], cfg: Any, clips: Sequence[str],
    body_name: str,
) -> dict[str, Any]:
    """The manifest fields every built dataset shares (the plain generator and the
    detector-in-the-loop build): provenance, layout and the mocap licence of ``split``.
    ``cfg`` has ``formats``, ``image_size`` and ``mask_size``; ``names`` are the shard files."""
    if split == "test-cmu":
        licence = f"{LICENCES['cmu']} (derived from the CMU Graphics Lab Motion Capture Database)"
    else:
        licence = f"{LICENCES['bandai']} (derived from the Bandai-Namco Research Motion Dataset)"
    return {
        "generator": shards.GENERATOR_NAME, "seed": int(seed), "split": split,
        "num_samples": int(n), "shards": list(names), "formats": list(cfg.formats),
        "clips": list(clips), "image_size": list(cfg.image_size),
        "mask_size": list(cfg.mask_size), "body": body_name, "licence": licence,
    }  # fmt: skip


def build_dataset(
    out: str | os.PathLike[str],
    split: str,
    n: int,
    *,
    seed: int = 0,
    shared: str | os.PathLike[str] | None = None,
    shard_size: int = 1000,
    workers: int = 1,
    body_name: str = "s2m-free",
    cfg: GeneratorConfig | None = None,
    subsample: int | None = None,
    refine_steps: int = DEFAULT_REFINE_STEPS,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Build ``n`` samples of ``split`` into ``out`` (shards + manifest.json); returns the manifest.

    Fits the split's mocap clips first (cached in ``<cache>/mocap-fits``). The folder must be
    new, empty, or an earlier s2m dataset (whose shards are replaced).
    """
    from tqdm import tqdm

    from s2m_model.body import load_body_model

    cfg = cfg or GeneratorConfig()
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if n < 1 or shard_size < 1 or workers < 1:
        raise ValueError("n, shard_size and workers must be >= 1")
    out = Path(out)
    shared = Path(shared) if shared is not None else default_shared_dir()
    t0 = time.perf_counter()
    all_refs = list_clips(shared, ["cmu"] if split == "test-cmu" else ["bandai-1", "bandai-2"])
    refs = [r for r in all_refs if r.split == split]
    if not refs:
        raise ValueError(f"no clips in split {split!r} under {shared}")
    body = load_body_model(body_name)
    # Whole datasets are fitted (and cached) at once, so the bar counts all their clips.
    total = sum(r.dataset in {q.dataset for q in refs} for r in all_refs)
    with tqdm(total=total, desc="fit mocap clips", unit="clip", disable=not show_progress) as bar:
        fits = fit_clips(refs, body, subsample=subsample, refine_steps=refine_steps,
                         progress=bar.update)  # fmt: skip
        bar.update(max(0, bar.total - bar.n))
    pool = PosePool.from_fits([fits[r.name] for r in refs])
    t_fit = time.perf_counter() - t0
    _prepare_out(out)
    sizes, names = shard_plan(n, shard_size)
    with tqdm(total=n, desc=f"generate {split}", unit="sample", disable=not show_progress) as bar:
        if workers == 1:
            for i, size in enumerate(sizes):
                arrays = generate_samples(pool, body, size, seed, i, cfg, progress=bar.update)
                shards.write_shard(out / names[i], arrays, cfg.formats, cfg.mask_size)
        else:
            jobs = [(i, size, seed, str(out / names[i])) for i, size in enumerate(sizes)]
            for _, size in map_in_processes(_worker_shard, jobs, workers, _worker_init,
                                            (pool, body_name, cfg)):  # fmt: skip
                bar.update(size)
    manifest = {
        **manifest_base(split, seed, n, names, cfg, pool.clips, body_name),
        "version": GENERATOR_VERSION,
        "source_licences": {"bandai": LICENCES["bandai"], "cmu": LICENCES["cmu"]},
        "fit_version": FIT_VERSION,
        "fit": {"subsample": subsample or "auto", "refine_steps": refine_steps},
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()},
    }
    shards.write_manifest(out, manifest)
    log.info("built %d %s samples in %s (fits %.1f s, total %.1f s)", n, split, out, t_fit,
             time.perf_counter() - t0)  # fmt: skip
    return manifest


__all__ = [
    "GENERATOR_VERSION", "GeneratorConfig", "PosePool", "build_dataset", "default_shared_dir",
    "generate_samples", "look_at_rotation", "to_camera_frame",
]  # fmt: skip
