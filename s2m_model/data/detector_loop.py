"""Detector-in-the-loop samples: ground-truth bodies rendered into procedural scenes, with the
real detector's output on every render stored beside the exact ground truth.

Per sample (shard-level draws from ``numpy.random.default_rng([seed, shard_index, 1])``, the
scene of sample ``k`` from ``default_rng([seed, shard_index, k, 2])``, so a shard is
reproducible on its own, whatever the chunking or the number of worker processes):

1. a fitted mocap frame of the split (:class:`~s2m_model.data.generator.PosePool`): by default
   a pose type (clip content: walk, kick, wave-left-hand, ...) uniformly, then a frame of it
   (``pose_balance="content"``; the motion sets are very unequal: locomotion and hand waving
   hold most frames), or uniformly over all frames (``"frame"``, as the plain generator); betas
   ``N(0, beta_std^2)`` clipped to ``+-beta_clip``; the body stands where the fitted body stood
   (pelvis height scaled by the new legs, feet near the floor y = 0);
2. a camera: horizontal FOV 40-90 deg, yaw 0-360 deg around the person, height 0.3-2.6 m above
   the floor, roll +-15 deg; its distance makes a 1.7 m person ``person_height_frac`` of the
   image height (0.35-1.1, log-uniform; clamped to 1-15 m); it looks at the pelvis and is then
   panned/tilted so the pelvis lands off-centre, and with ``truncate_prob`` near or past the
   image border (people partly out of frame);
3. the scene (:mod:`s2m_model.data.scene`): a procedural background (one kind is the floor seen
   by this camera), skin/hair/clothes colours and patterns, a Lambert key light + ambient,
   0-2 occluders in front of the person, gamma/noise/blur/JPEG;
4. ground truth as in :mod:`s2m_model.data.generator` (docs/data-format.md: params in the
   camera frame, joints of every image format, 2D keypoints), except that ``visibility`` also
   counts a keypoint behind an occluder as hidden and ``mask`` is the *visible* silhouette
   (body minus occluders; a mask pixel is set when half its image pixels are body);
5. the detector (MediaPipe BlazePose, static-image mode: every render is an unrelated photo)
   on the final ``uint8`` frame: its 33 landmarks, world landmarks, COCO-17 keypoints, box,
   score, mask, and a status (found / nobody / failed).

The extra arrays are :data:`DETECTOR_ARRAYS` (docs/detector-loop.md). This module computes
only; :mod:`s2m_model.data.detector_build` writes shards and manifests.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import roma
import torch
from PIL import Image

from s2m_model.camera import Camera, project_points
from s2m_model.data import scene, shards
from s2m_model.data.fit_cache import single_thread
from s2m_model.data.generator import PosePool, look_at_rotation, to_camera_frame
from s2m_model.data.visibility import face_parts, keypoint_visibility, visibility_models
from s2m_model.detect.base import DetectorError
from s2m_model.smpl_layout import JOINT_INDEX, NUM_BETAS

DETECTOR_LOOP_VERSION = 1
"""Bump when the samples change for the same seed."""

NOMINAL_STATURE_M = 1.7
"""Height used to turn ``person_height_frac`` into a camera distance."""

STATUS_FOUND, STATUS_NONE, STATUS_FAILED = 0, 1, 2
"""``det_status`` values: a person found, nobody found, the detector failed (DetectorError)."""

CMU_CONTENT = {"131_01": "walk", "131_02": "walk", "131_03": "hop"}


def detector_shapes(mask_size: Sequence[int]) -> dict[str, tuple[tuple[int, ...], str]]:
    """Key -> (per-sample shape, dtype kind ``'f'`` float32 / ``'i'`` int32 / ``'u'`` uint8) of
    the arrays a detector-loop shard holds beyond :func:`s2m_model.data.shards.expected_shapes`.
    ``mask_size`` is (width, height)."""
    w, h = (int(v) for v in mask_size)
    return {
        "det_status": ((), "u"), "det_detected": ((), "u"), "det_score": ((), "f"),
        "det_landmarks": ((33, 4), "f"), "det_world": ((33, 3), "f"),
        "det_keypoints2d_coco17": ((17, 3), "f"), "det_bbox": ((4,), "f"),
        "det_mask": ((h, w), "u"),
        "scene_background": ((), "i"), "scene_occluded": ((), "f"), "scene_truncated": ((), "f"),
        "world_to_camera": ((3, 3), "f"), "camera_center_world": ((3,), "f"),
    }  # fmt: skip


DETECTOR_ARRAYS: tuple[str, ...] = tuple(detector_shapes((1, 1)))
"""Names of the detector-loop arrays (see :func:`detector_shapes`)."""

_KINDS = {"f": np.float32, "i": np.int32, "u": np.uint8}


@dataclass(frozen=True)
class LoopConfig:
    """Sampling ranges (angles in degrees, lengths in metres, sizes in pixels)."""

    image_size: tuple[int, int] = (640, 480)
    mask_size: tuple[int, int] = (160, 120)
    fov_deg: tuple[float, float] = (40.0, 90.0)
    person_height_frac: tuple[float, float] = (0.35, 1.1)
    distance_m: tuple[float, float] = (1.0, 15.0)
    yaw_deg: tuple[float, float] = (0.0, 360.0)
    camera_height_m: tuple[float, float] = (0.3, 2.6)
    roll_deg: tuple[float, float] = (-15.0, 15.0)
    offset_frac: float = 0.35  # pelvis within this fraction of the half image from the centre
    truncate_prob: float = 0.2  # ... else 0.5-1.1 half images off: partly out of frame
    beta_std: float = 0.9
    beta_clip: float = 2.5
    pose_balance: str = "content"  # or "frame" (see the module docstring)
    formats: tuple[str, ...] = shards.FORMATS
    scene: scene.SceneConfig = field(default_factory=scene.SceneConfig)
    min_detection_confidence: float = 0.5
    chunk: int = 16  # samples per batched body evaluation

    def __post_init__(self) -> None:
        for name in ("fov_deg", "person_height_frac", "distance_m", "yaw_deg",
                     "camera_height_m", "roll_deg"):  # fmt: skip
            lo, hi = getattr(self, name)
            if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
                raise ValueError(f"{name} must be a finite (low, high) range, got {(lo, hi)}")
        if not (1.0 < self.fov_deg[0] and self.fov_deg[1] < 179.0):
            raise ValueError(f"fov_deg must lie in (1, 179), got {self.fov_deg}")
        if self.person_height_frac[0] <= 0 or self.distance_m[0] <= 0.3:
            raise ValueError("person_height_frac must be > 0 and distance_m > 0.3 m")
        if self.camera_height_m[0] <= 0.05:
            raise ValueError("camera_height_m must stay above the floor (> 0.05 m)")
        for name in ("image_size", "mask_size"):
            w, h = getattr(self, name)
            if not (int(w) == w and int(h) == h and w > 0 and h > 0):
                raise ValueError(f"{name} must be positive integers (width, height)")
        if not (0 <= self.offset_frac <= 1 and 0 <= self.truncate_prob <= 1):
            raise ValueError("offset_frac and truncate_prob must lie in [0, 1]")
        if self.beta_std < 0 or self.beta_clip < 0 or self.chunk < 1:
            raise ValueError("beta_std, beta_clip must be >= 0 and chunk >= 1")
        if not 0.0 <= self.min_detection_confidence <= 1.0:
            raise ValueError("min_detection_confidence must lie in [0, 1]")
        if self.pose_balance not in ("content", "frame"):
            raise ValueError(f"pose_balance must be 'content' or 'frame', not {self.pose_balance}")
        if "blazepose33" not in self.formats:
            raise ValueError("formats must include blazepose33 (the detector's own points)")
        shards.expected_shapes(self.formats, self.mask_size)  # unknown formats raise here


def clip_labels(name: str) -> tuple[str, str]:
    """``(content, style)`` of a clip name: ``"dataset-1/walk_normal_001"`` -> ``("walk",
    "normal")``, ``"cmu/131_03"`` -> ``("hop", "cmu")``; unknown layouts -> ``(stem, "?")``."""
    stem = name.split("/", 1)[-1]
    if name.startswith("cmu/"):
        return CMU_CONTENT.get(stem, stem), "cmu"
    parts = stem.rsplit("_", 2)
    if len(parts) == 3 and parts[2].isdigit():
        return parts[0], parts[1]
    return stem, "?"


def pose_weights(pool: PosePool, balance: str = "content") -> np.ndarray:
    """(P,) probabilities of drawing each pool frame: equal per pose type (clip content, see
    :func:`clip_labels`) then per frame (``"content"``), or equal per frame (``"frame"``)."""
    if balance == "frame":
        return np.full(len(pool), 1.0 / len(pool))
    content = np.array([clip_labels(c)[0] for c in pool.clips])[pool.clip_id]
    _, inverse, counts = np.unique(content, return_inverse=True, return_counts=True)
    w = 1.0 / counts[inverse]
    return w / w.sum()


def _axis_to(direction: np.ndarray) -> np.ndarray:
    """(N,3,3) rotations taking the optical axis (0, 0, 1) onto unit ``direction`` (N,3)."""
    z = np.broadcast_to([0.0, 0.0, 1.0], direction.shape)
    axis = np.cross(z, direction)
    sin = np.linalg.norm(axis, axis=-1, keepdims=True)
    angle = np.arctan2(sin, (z * direction).sum(-1, keepdims=True))
    rotvec = np.where(sin > 1e-12, axis / np.maximum(sin, 1e-12) * angle, 0.0)
    return roma.rotvec_to_rotmat(torch.as_tensor(rotvec)).numpy()


def _downsample(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H,W) float in [0, 1] -> (h,w) float32 box averages at ``size`` (width, height)."""
    pil = Image.fromarray(np.asarray(mask, dtype=np.float32), mode="F")
    return np.asarray(pil.resize(tuple(size), Image.BOX), dtype=np.float32)


class DetectorLoop:
    """Renders samples and runs the detector on them, in one process.

    Args:
        body: the SMPL-layout body (:func:`s2m_model.body.load_body_model`).
        cfg: sampling ranges.
        detector: a :class:`~s2m_model.detect.base.Detector` returning BlazePose landmarks
            (default: a static-image :class:`~s2m_model.detect.mediapipe_pose.MediaPipeDetector`,
            closed by :meth:`close`).
    """

    def __init__(self, body, cfg: LoopConfig | None = None, detector=None) -> None:
        self.cfg = cfg or LoopConfig()
        self.body = body
        self.faces = body.faces
        # One torch thread here and in generate(): the body caches tensors (regressors, rest
        # shapes) on first use, and their float sums change in the last bit with the thread
        # count, which would make a build depend on the process it ran in.
        with single_thread():
            self.labels = scene.face_labels(body, face_parts(body))
            self.vis_models = visibility_models(body, self.cfg.formats)
        self._own_detector = detector is None
        if detector is None:
            from s2m_model.detect.mediapipe_pose import MediaPipeDetector

            detector = MediaPipeDetector(
                static_image_mode=True, min_detection_confidence=self.cfg.min_detection_confidence
            )
        self.detector = detector

    def close(self) -> None:
        """Close the detector if this object built it."""
        if self._own_detector:
            self.detector.close()

    def __enter__(self) -> DetectorLoop:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -------------------------------------------------------------------------- sampling

    def generate(
        self,
        pool: PosePool,
        n: int,
        seed: int,
        shard_index: int = 0,
        progress: Callable[[int], None] | None = None,
        images: list[np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """``n`` samples as shard arrays (ground truth + :data:`DETECTOR_ARRAYS`).

        Deterministic in ``(seed, shard_index)``. ``progress(1)`` is called after each sample;
        when ``images`` is a list, the rendered ``uint8`` frames are appended to it.
        """
        cfg = self.cfg
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        width, height = cfg.image_size
        rng = np.random.default_rng([int(seed), int(shard_index), 1])
        idx = rng.choice(len(pool), size=n, p=pose_weights(pool, cfg.pose_balance))
        betas = np.clip(rng.normal(0.0, cfg.beta_std, (n, NUM_BETAS)), -cfg.beta_clip,
                        cfg.beta_clip).astype(np.float32)  # fmt: skip
        fov = np.radians(rng.uniform(*cfg.fov_deg, n))
        lo, hi = np.log(cfg.person_height_frac)
        frac = np.exp(rng.uniform(lo, hi, n))
        yaw = np.radians(rng.uniform(*cfg.yaw_deg, n))
        cam_h = rng.uniform(*cfg.camera_height_m, n)
        roll = np.radians(rng.uniform(*cfg.roll_deg, n))
        offset = rng.uniform(-cfg.offset_frac, cfg.offset_frac, (n, 2))
        far = rng.uniform(size=n) < cfg.truncate_prob
        ang = rng.uniform(0, 2 * np.pi, n)
        mag = rng.uniform(0.5, 1.1, n)
        offset[far] = np.stack([np.cos(ang), np.sin(ang)], 1)[far] * mag[far, None]
        focal = 0.5 * width / np.tan(0.5 * fov)
        dist = np.clip(NOMINAL_STATURE_M * focal / (frac * height), *cfg.distance_m)
        camera = np.stack([focal, focal, np.full(n, width / 2.0), np.full(n, height / 2.0)], 1)

        out: dict[str, list[np.ndarray]] = {}
        with torch.no_grad(), single_thread():
            for start in range(0, n, cfg.chunk):
                sl = slice(start, min(n, start + cfg.chunk))
                part = self._chunk(pool, idx[sl], betas[sl], camera[sl], dist[sl], yaw[sl],
                                   cam_h[sl], roll[sl], offset[sl], seed, shard_index, start,
                                   progress, images)  # fmt: skip
                for key, val in part.items():
                    out.setdefault(key, []).append(val)
        if n == 0:
            shapes = {**shards.expected_shapes(cfg.formats, cfg.mask_size),
                      **detector_shapes(cfg.mask_size)}  # fmt: skip
            return {k: np.zeros((0, *s), _KINDS[kind]) for k, (s, kind) in shapes.items()}
        return {k: np.concatenate(v) for k, v in out.items()}

    def _chunk(self, pool, idx, betas_np, camera, dist, yaw, cam_h, roll, offset, seed,
               shard_index, start, progress, images) -> dict[str, np.ndarray]:  # fmt: skip
        cfg, body = self.cfg, self.body
        b = len(idx)
        width, height = cfg.image_size
        dt = body.dtype
        betas = torch.as_tensor(betas_np, dtype=dt)
        pelvis0, leg = _rest_geometry(body, betas)
        fit_pelvis0, fit_leg = _rest_geometry(body, torch.as_tensor(pool.betas[idx], dtype=dt))
        # Where the fitted body's pelvis was; its height follows the new body's legs.
        pelvis_w = (fit_pelvis0 + torch.as_tensor(pool.transl[idx], dtype=dt)).double()
        pelvis_w[:, 1] = pelvis_w[:, 1] * (leg / fit_leg).double()
        target = pelvis_w.numpy()
        dy = cam_h - target[:, 1]
        horiz = np.sqrt(np.maximum(dist**2 - dy**2, 0.25))
        eye = target + np.stack([horiz * np.sin(yaw), dy, horiz * np.cos(yaw)], 1)
        # Look at the pelvis, then pan/tilt so that it projects at the drawn offset.
        ray = np.stack([offset[:, 0] * width / 2 / camera[:, 0],
                        offset[:, 1] * height / 2 / camera[:, 1], np.ones(b)], 1)  # fmt: skip
        pan = _axis_to(ray / np.linalg.norm(ray, axis=1, keepdims=True))
        rot_cw = np.swapaxes(pan, 1, 2) @ look_at_rotation(eye, target, roll)
        go_c, t_c = to_camera_frame(
            torch.as_tensor(pool.global_orient[idx], dtype=torch.float64),
            pelvis_w - pelvis0.double(), pelvis0.double(), torch.as_tensor(rot_cw),
            torch.as_tensor(eye),
        )  # fmt: skip
        go_c32, t_c32 = go_c.to(torch.float32), t_c.to(torch.float32)
        pose = torch.as_tensor(pool.body_pose[idx], dtype=torch.float32)
        # The body sees exactly the stored (float32) parameters.
        res = body(betas=betas, global_orient=go_c32.to(dt), body_pose=pose.to(dt),
                   transl=t_c32.to(dt))  # fmt: skip
        verts = res.vertices
        joints = {
            fmt: (res.joints if fmt == "smpl24" else body.regress(verts.double(), fmt))
            .float().cpu().numpy()
            for fmt in cfg.formats
        }  # fmt: skip
        arrays: dict[str, np.ndarray] = {
            "betas": betas_np, "global_orient": go_c32.numpy(), "body_pose": pose.numpy(),
            "transl": t_c32.numpy(), "camera": camera.astype(np.float32),
            "image_size": np.tile(np.array([width, height], dtype=np.int32), (b, 1)),
            "clip_id": pool.clip_id[idx].astype(np.int32),
            "frame": pool.frame[idx].astype(np.int32),
            "world_to_camera": rot_cw.astype(np.float32),
            "camera_center_world": eye.astype(np.float32),
        }  # fmt: skip
        uv = {f: project_points(p.astype(np.float64), camera.astype(np.float64))
              for f, p in joints.items()}  # fmt: skip
        vis = {f: np.zeros(p.shape[:2], bool) for f, p in joints.items()}
        per_sample: dict[str, list[np.ndarray]] = {}
        v_np = verts.double().cpu().numpy()
        for s in range(b):
            cam = Camera.coerce(camera[s], width, height)
            srng = np.random.default_rng([int(seed), int(shard_index), start + s, 2])
            image, body_px, occluder, kind = self._render(srng, cam, v_np[s], rot_cw[s], eye[s],
                                                          uv["blazepose33"][s])  # fmt: skip
            for fmt, pts in joints.items():
                seen = keypoint_visibility(pts[s].astype(np.float64), cam, body_px.depth,
                                           body_px.part, self.vis_models[fmt])  # fmt: skip
                u = np.clip(np.floor(uv[fmt][s, :, 0]), 0, width - 1).astype(np.int64)
                v = np.clip(np.floor(uv[fmt][s, :, 1]), 0, height - 1).astype(np.int64)
                vis[fmt][s] = seen & ~occluder[v, u]
            visible_body = body_px.covered & ~occluder
            area = max(int(body_px.covered.sum()), 1)
            bp = uv["blazepose33"][s]
            inside = (bp[:, 0] >= 0) & (bp[:, 0] < width) & (bp[:, 1] >= 0) & (bp[:, 1] < height)
            record = {
                "mask": _downsample(visible_body, cfg.mask_size) >= 0.5,
                "scene_occluded": np.float32(1.0 - visible_body.sum() / area),
                "scene_truncated": np.float32(1.0 - inside.mean()),
                "scene_background": np.int32(kind),
                **self._detect(image),
            }
            for key, val in record.items():
                per_sample.setdefault(key, []).append(np.asarray(val))
            if images is not None:
                images.append(image)
            if progress is not None:
                progress(1)
        for fmt, pts in joints.items():
            arrays[f"joints3d_{fmt}"] = pts.astype(np.float32)
            arrays[f"keypoints2d_{fmt}"] = np.concatenate(
                [uv[fmt], vis[fmt][..., None].astype(np.float64)], -1
            ).astype(np.float32)
        stacked = {k: np.stack(v) for k, v in per_sample.items()}
        arrays["mask"] = shards.pack_masks(stacked.pop("mask"))
        shapes = detector_shapes(cfg.mask_size)
        for key, val in stacked.items():
            arrays[key] = val.astype(_KINDS[shapes[key][1]])
        return arrays

    def _render(self, rng, cam: Camera, verts, rot_cw, eye, points2d):
        """One final frame: ``(uint8 image, BodyRender, (H,W) occluder mask, background id)``."""
        sc = self.cfg.scene
        background, kind = scene.make_background(rng, cam.width, cam.height, sc, camera=cam,
                                                 rot_cw=rot_cw, eye=eye)  # fmt: skip
        rendered = scene.render_body(verts, self.faces, self.labels, cam,
                                     scene.sample_appearance(rng, sc), scene.sample_light(rng, sc),
                                     background)  # fmt: skip
        if rendered.covered.any():
            jj, ii = np.nonzero(rendered.covered)
            box = np.array([ii.min(), jj.min(), ii.max() + 1, jj.max() + 1], np.float64)
        else:  # the body is entirely out of frame: occluders go where its joints project
            box = np.concatenate([points2d.min(0), points2d.max(0)])
        occluder = scene.draw_occluders(rng, rendered.image, box, sc)
        return scene.finish_image(rng, rendered.image, sc), rendered, occluder, kind

    def _detect(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """The detector's output on one frame as per-sample arrays (zeros when none)."""
        w, h = self.cfg.mask_size
        rec = {
            "det_status": np.uint8(STATUS_NONE), "det_detected": np.uint8(0),
            "det_score": np.float32(0), "det_landmarks": np.zeros((33, 4), np.float32),
            "det_world": np.zeros((33, 3), np.float32),
            "det_keypoints2d_coco17": np.zeros((17, 3), np.float32),
            "det_bbox": np.zeros(4, np.float32), "det_mask": np.zeros((h, w), np.uint8),
        }  # fmt: skip
        try:
            found = self.detector.detect(image)
        except DetectorError:
            rec["det_status"] = np.uint8(STATUS_FAILED)  # counted in the detector's stats
            return rec
        if not found:
            return rec
        d = found[0]
        rec.update(det_status=np.uint8(STATUS_FOUND), det_detected=np.uint8(1),
                   det_score=np.float32(d.score), det_keypoints2d_coco17=d.keypoints,
                   det_bbox=d.bbox)  # fmt: skip
        if d.keypoints_blazepose is not None:
            rec["det_landmarks"] = d.keypoints_blazepose
        if d.keypoints_world is not None:
            rec["det_world"] = d.keypoints_world
        if d.mask is not None:
            rec["det_mask"] = np.round(_downsample(d.mask, (w, h)) * 255).astype(np.uint8)
        return rec


def _rest_geometry(body, betas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,3) rest pelvis and (B,) rest leg length (pelvis height above the ankles)."""
    rest = body.rest_joints(betas).cpu()
    la, ra = JOINT_INDEX["left_ankle"], JOINT_INDEX["right_ankle"]
    return rest[:, 0], rest[:, 0, 1] - 0.5 * (rest[:, la, 1] + rest[:, ra, 1])


def check_detector_arrays(arrays: Mapping[str, np.ndarray], mask_size: Sequence[int],
                          where: str = "shard") -> int:  # fmt: skip
    """Validate the detector-loop arrays of one shard; returns N. ValueError naming the key."""
    n = None
    for key, (shape, kind) in detector_shapes(mask_size).items():
        if key not in arrays:
            raise ValueError(f"{where}: missing detector-loop array '{key}'")
        a = np.asarray(arrays[key])
        if a.dtype != _KINDS[kind] or a.shape[1:] != shape:
            raise ValueError(f"{where}: '{key}' must be (N,{','.join(map(str, shape))}) "
                             f"{np.dtype(_KINDS[kind])}, got {a.shape} {a.dtype}")  # fmt: skip
        if n is None:
            n = a.shape[0]
        elif a.shape[0] != n:
            raise ValueError(f"{where}: '{key}' has {a.shape[0]} samples, expected {n}")
        if kind == "f" and not np.isfinite(a).all():
            raise ValueError(f"{where}: '{key}' contains NaN or inf")
    return int(n or 0)


# ------------------------------------------------------------------------------ report


def keypoint_errors(arrays: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per detected sample, how far the detector's 33 landmarks lie from the ground truth's
    ``blazepose33`` projections, over the points visible in the ground truth.

    Returns:
        ``(median_px (N,), median_rel (N,))``: median pixel distance, and the same divided by
        the height of the ground-truth box of all 33 points; NaN where nothing is detected or
        no point is visible.
    """
    gt = np.asarray(arrays["keypoints2d_blazepose33"], np.float64)
    det = np.asarray(arrays["det_landmarks"], np.float64)[..., :2]
    ok = (np.asarray(arrays["det_detected"]) > 0)[:, None] & (gt[..., 2] > 0.5)
    dist = np.where(ok, np.linalg.norm(det - gt[..., :2], axis=-1), np.nan)
    box_h = np.maximum(gt[..., 1].max(1) - gt[..., 1].min(1), 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: undetected samples
        med = np.nanmedian(dist, axis=1)
    return med, med / box_h


def _rate(mask: np.ndarray, detected: np.ndarray, correct: np.ndarray) -> dict[str, Any]:
    n = int(mask.sum())
    if n == 0:
        return {"n": 0}
    return {"n": n, "detected": round(float(detected[mask].mean()), 3),
            "correct": round(float(correct[mask].mean()), 3)}  # fmt: skip


def detection_report(arrays: Mapping[str, np.ndarray], clips: Sequence[str],
                     correct_rel: float = 0.1) -> dict[str, Any]:  # fmt: skip
    """Detection rates overall and per pose type (clip content), style, background kind,
    truncation and occlusion; and the detector's 2D agreement with the ground truth.

    A detection is *correct* when the median distance of its landmarks to the ground truth
    (visible points) is below ``correct_rel`` x the person's box height.
    """
    detected = np.asarray(arrays["det_detected"]) > 0
    n = len(detected)
    med_px, med_rel = keypoint_errors(arrays)
    correct = detected & (np.nan_to_num(med_rel, nan=np.inf) < correct_rel)
    clip_id = np.asarray(arrays["clip_id"])
    labels = [clip_labels(c) for c in clips]
    content = np.array([labels[i][0] for i in clip_id]) if n else np.array([], str)
    style = np.array([labels[i][1] for i in clip_id]) if n else np.array([], str)
    bg = np.asarray(arrays["scene_background"])
    trunc = np.asarray(arrays["scene_truncated"])
    occl = np.asarray(arrays["scene_occluded"])
    status = np.asarray(arrays["det_status"])

    def groups(values: np.ndarray) -> dict[str, Any]:
        return {str(k): _rate(values == k, detected, correct) for k in sorted(set(values))}

    fin = np.isfinite(med_px)
    return {
        "num_samples": n,
        "overall": _rate(np.ones(n, bool), detected, correct),
        "failed": int((status == STATUS_FAILED).sum()),
        "correct_rel": correct_rel,
        "median_error_px": round(float(np.median(med_px[fin])), 2) if fin.any() else None,
        "median_error_rel": round(float(np.median(med_rel[fin])), 4) if fin.any() else None,
        "by_content": groups(content),
        "by_style": groups(style),
        "by_background": {scene.BACKGROUNDS[int(k)]: v for k, v in groups(bg).items()},
        "by_truncation": {
            "none": _rate(trunc == 0, detected, correct),
            "<=25%": _rate((trunc > 0) & (trunc <= 0.25), detected, correct),
            ">25%": _rate(trunc > 0.25, detected, correct),
        },
        "by_occlusion": {
            "none": _rate(occl == 0, detected, correct),
            "<=30%": _rate((occl > 0) & (occl <= 0.3), detected, correct),
            ">30%": _rate(occl > 0.3, detected, correct),
        },
    }


def person_height_px(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """(N,) height of the ground-truth blazepose33 box in pixels (for normalising errors)."""
    gt = np.asarray(arrays["keypoints2d_blazepose33"], np.float64)
    return gt[..., 1].max(1) - gt[..., 1].min(1)


__all__ = [
    "DETECTOR_ARRAYS", "DETECTOR_LOOP_VERSION", "DetectorLoop", "LoopConfig",
    "NOMINAL_STATURE_M", "STATUS_FAILED", "STATUS_FOUND", "STATUS_NONE", "check_detector_arrays",
    "clip_labels", "detection_report", "detector_shapes", "keypoint_errors", "person_height_px",
    "pose_weights",
]  # fmt: skip
