"""The s2m pipeline: RGB frame -> 2D keypoints -> 3D skeleton -> DIK -> posed body in metres.

>>> from s2m_model.pipeline import Pipeline, PipelineConfig
>>> pipe = Pipeline(PipelineConfig(device="cpu"))
>>> for person in pipe.process(frame, camera=(fx, fy, cx, cy), stamp=t):  # doctest: +SKIP
...     person.transl, person.vertices       # camera frame, metres

Stages of :meth:`Pipeline.process` (each timed in ``PersonResult.timings_ms``):

1. ``detect`` — the detector (MediaPipe BlazePose by default, video mode) gives COCO-17
   keypoints in pixels with confidences.
2. ``lift`` — the lifter turns them into a root-relative ``h36m17`` skeleton (metres, camera
   axes: x right, y down, z forward).
3. ``dik`` — :func:`s2m_model.dik.solve` gives SMPL-layout local rotations (confidences from
   the 2D keypoints; the previous frame of the same track as the straight-limb fallback).
4. ``filter`` (temporal mode) — per-track One-Euro filters on the rotations (on SO(3)) and on
   the translation, see :mod:`s2m_model.temporal`.
5. ``body`` — the body model is posed, and its metric position in the camera frame is solved
   by linear least squares so that its projected COCO-17 points (regressed from the vertices;
   the 12 limb joints when vertices are skipped) match the 2D keypoints, weighted by
   confidence (SPIN's ``estimate_translation``). Intrinsics come from the ``camera`` argument,
   else a pinhole with ``fov_deg`` horizontal field of view centred on the image.

:meth:`Pipeline.process_skeleton` skips 1-2 for users with their own 3D estimator: the result
is in the input skeleton's frame.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import roma
import torch

from s2m_model.results import PersonResult

log = logging.getLogger(__name__)

__all__ = [
    "COCO17_TO_H36M17_CONFIDENCE",
    "Pipeline",
    "PipelineConfig",
    "camera_from",
    "estimate_translation",
]

# For each h36m17 joint, the COCO-17 keypoints whose confidence it gets (the minimum: a derived
# joint is only as sure as its least sure source; the head top takes the best face point).
COCO17_TO_H36M17_CONFIDENCE: tuple[tuple[int, ...], ...] = (
    (11, 12), (12,), (14,), (16,), (11,), (13,), (15,), (5, 6, 11, 12), (5, 6), (0,),
    (0, 1, 2, 3, 4), (5,), (7,), (9,), (6,), (8,), (10,),
)  # fmt: skip
_HEAD_TOP = 10
# COCO-17 keypoint -> SMPL joint for the limb keypoints (used to place the body when vertices
# are skipped): shoulders, elbows, wrists, hips, knees, ankles.
_COCO_LIMBS_TO_SMPL: dict[int, int] = {
    5: 16, 6: 17, 7: 18, 8: 19, 9: 20, 10: 21, 11: 1, 12: 2, 13: 4, 14: 5, 15: 7, 16: 8,
}  # fmt: skip
_COCO_HIPS = (11, 12)
# Traced DIK graphs per body model (weak: they go with the body), shared by all pipelines.
_DIK_GRAPHS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
MIN_DEPTH_M = 0.1
"""People whose solved depth is below this (metres) are dropped (behind/at the camera)."""


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------
@dataclass
class PipelineConfig:
    """Pipeline settings; every field has a working default.

    Attributes:
        body: body model, ``"s2m-free"`` or a path to an SMPL ``.npz``/``.pkl``.
        detector: ``"mediapipe"`` or ``"onnx"`` (then ``detector_options`` needs ``model_path``).
        detector_options: extra keyword arguments of the detector.
        video_mode: MediaPipe tracks landmarks across frames (faster, steadier on a stream;
            frames must come from one stream in order). False: every frame is a new photo.
        lifter: lifter name or checkpoint for :func:`s2m_model.lifter.load_lifter`.
        device: torch device of the lifter and body (``"cpu"``, ``"cuda"``, ``"cuda:0"``).
        temporal: track people across frames and filter their pose (One-Euro); off = every
            frame independent (``track_id`` 0).
        rot_min_cutoff: One-Euro cutoff at rest for rotations (Hz); lower = smoother.
        rot_beta: cutoff increase per rad/s of joint angular speed (less lag when fast).
        transl_min_cutoff: One-Euro cutoff at rest for the translation (Hz).
        transl_beta: cutoff increase per m/s of translation speed.
        d_cutoff: cutoff (Hz) of the speed estimates of both filters.
        default_fps: frame rate assumed for timestamps when ``stamp`` is None (frames/s).
        track_max_age: frames a track survives unseen.
        fov_deg: horizontal field of view (degrees) assumed when no intrinsics are given.
        min_keypoint_confidence: keypoints below this confidence count as unobserved (DIK,
            placement, tracking).
        min_keypoints: a person needs at least this many observed keypoints and both hips.
        max_persons: at most this many people per frame (best detector score first).
        compute_vertices: pose the mesh (``PersonResult.vertices``); False = joints only, faster.
        dik_backend: ``"jit"`` runs DIK as a TorchScript trace (one per format and batch size,
            traced on first use in ~0.2-2 s; same numbers, 2-4x faster on a CPU), ``"eager"``
            calls :func:`s2m_model.dik.solve` directly.
        num_threads: ``torch.set_num_threads`` at start-up when ``device`` is the CPU
            (process-wide). 1 by default: the per-frame tensors are tiny, so more threads do
            not help and, on a busy CPU (the detector runs its own threads), they contend and
            can be 10-100x slower. None = leave torch's setting.
    """

    body: str = "s2m-free"
    detector: str = "mediapipe"
    detector_options: dict[str, Any] = field(default_factory=dict)
    video_mode: bool = True
    lifter: str = "default"
    device: str = "cpu"
    temporal: bool = True
    rot_min_cutoff: float = 1.0
    rot_beta: float = 1.0
    transl_min_cutoff: float = 1.0
    transl_beta: float = 2.0
    d_cutoff: float = 1.0
    default_fps: float = 30.0
    track_max_age: int = 10
    fov_deg: float = 55.0
    min_keypoint_confidence: float = 0.3
    min_keypoints: int = 6
    max_persons: int = 4
    compute_vertices: bool = True
    dik_backend: str = "jit"
    num_threads: int | None = 1

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""

        def positive(name: str) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number, got {value!r}")
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be > 0, got {value}")

        for name in ("body", "detector", "lifter", "device"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name} must be a non-empty string, got {value!r}")
        for name in ("video_mode", "temporal", "compute_vertices"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.dik_backend not in ("jit", "eager"):
            raise ValueError(f"dik_backend must be 'jit' or 'eager', got {self.dik_backend!r}")
        if not isinstance(self.detector_options, Mapping):
            raise ValueError(f"detector_options must be a mapping, got {self.detector_options!r}")
        for name in ("rot_min_cutoff", "transl_min_cutoff", "d_cutoff", "default_fps"):
            positive(name)
        for name in ("rot_beta", "transl_beta"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not (
                math.isfinite(value) and value >= 0
            ):
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        positive("fov_deg")
        if not self.fov_deg < 180:
            raise ValueError(f"fov_deg must be in (0, 180), got {self.fov_deg}")
        conf = self.min_keypoint_confidence
        if isinstance(conf, bool) or not isinstance(conf, int | float) or not 0 <= conf <= 1:
            raise ValueError(f"min_keypoint_confidence must be in [0, 1], got {conf!r}")
        for name, low in (("track_max_age", 0), ("min_keypoints", 2), ("max_persons", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if self.num_threads is not None and (
            isinstance(self.num_threads, bool)
            or not isinstance(self.num_threads, int)
            or self.num_threads < 1
        ):
            raise ValueError(f"num_threads must be a positive integer or null, got "
                             f"{self.num_threads!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PipelineConfig:
        """Build from a mapping of field names (missing fields keep their defaults).

        Integers are accepted for float fields. Raises ValueError on unknown keys or bad values.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"pipeline config must be a mapping, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(
                f"unknown pipeline config keys {unknown}; known: {', '.join(sorted(names))}"
            )
        return cls(**dict(data))

    @classmethod
    def from_yaml(cls, path: str | Path) -> PipelineConfig:
        """Read a YAML file: the fields at the top level, or under a ``pipeline:`` key."""
        import yaml

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"pipeline config not found: {path}")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML ({exc})") from exc
        if data is None:
            data = {}
        if isinstance(data, Mapping) and set(data) == {"pipeline"}:
            data = data["pipeline"] or {}
        try:
            return cls.from_dict(data)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (YAML/JSON serialisable)."""
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------------------------
# Camera and translation
# --------------------------------------------------------------------------------------------
def camera_from(camera: Any, width: int, height: int, fov_deg: float = 55.0):
    """A :class:`~s2m_model.body.render.Camera` for an image of ``width`` x ``height`` pixels.

    Args:
        camera: None (pinhole with horizontal ``fov_deg``, principal point at the centre), a
            ``Camera``, a sequence ``(fx, fy, cx, cy)`` in pixels, or a 3x3 intrinsic matrix K.

    Raises:
        ValueError: malformed intrinsics (wrong size, non-finite, non-positive focal length).
    """
    from s2m_model.body.render import Camera

    if camera is None:
        return Camera.default(width, height, fov_deg=fov_deg)
    if isinstance(camera, Camera):
        fx, fy, cx, cy = camera.fx, camera.fy, camera.cx, camera.cy
    else:
        try:
            arr = np.asarray(camera, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"camera must be (fx, fy, cx, cy) or a 3x3 K, got {camera!r}") from exc
        if arr.shape == (3, 3):
            fx, fy, cx, cy = arr[0, 0], arr[1, 1], arr[0, 2], arr[1, 2]
        elif arr.shape == (4,):
            fx, fy, cx, cy = arr
        else:
            raise ValueError(f"camera must be (fx, fy, cx, cy) or a 3x3 K, got shape {arr.shape}")
    values = np.array([fx, fy, cx, cy], dtype=np.float64)
    if not np.isfinite(values).all() or fx <= 0 or fy <= 0:
        raise ValueError(f"camera intrinsics must be finite with fx, fy > 0, got {values.tolist()}")
    return Camera(float(fx), float(fy), float(cx), float(cy), int(width), int(height))


def estimate_translation(
    points: np.ndarray,
    keypoints: np.ndarray,
    weights: np.ndarray,
    intrinsics: Sequence[float],
) -> np.ndarray:
    """Translation ``t`` (metres) so that ``points + t`` project onto ``keypoints``.

    Linear least squares on the pinhole equations (SPIN's ``estimate_translation_np``): for each
    point ``X`` with pixel ``(u, v)``, ``fx (X_x + t_x) = (u - cx)(X_z + t_z)`` and likewise for y,
    each row weighted by ``sqrt(weight)``. Exact for noise-free projections.

    Args:
        points: (B, K, 3) or (K, 3) 3D points in camera axes (x right, y down, z forward), metres,
            relative to any origin.
        keypoints: (B, K, 2) or (K, 2) pixels.
        weights: (B, K) or (K,) >= 0 (e.g. confidences; 0 = ignore the point).
        intrinsics: ``(fx, fy, cx, cy)`` in pixels.

    Returns:
        (B, 3) or (3,) float64 translations; rows with fewer than 2 usable points, or a
        degenerate system, are NaN (the caller decides what to do with them).
    """
    pts = np.asarray(points, dtype=np.float64)
    kp = np.asarray(keypoints, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    single = pts.ndim == 2
    if single:
        pts, kp, w = pts[None], kp[None], w[None]
    if pts.ndim != 3 or pts.shape[-1] != 3 or kp.shape != pts.shape[:2] + (2,) or (
        w.shape != pts.shape[:2]
    ):
        raise ValueError(
            f"expected points (B,K,3), keypoints (B,K,2), weights (B,K); got {pts.shape}, "
            f"{kp.shape}, {w.shape}"
        )
    fx, fy, cx, cy = (float(v) for v in intrinsics)
    usable = np.isfinite(pts).all(-1) & np.isfinite(kp).all(-1) & np.isfinite(w) & (w > 0)
    w = np.where(usable, w, 0.0)
    pts = np.where(usable[..., None], pts, 0.0)
    kp = np.where(usable[..., None], kp, 0.0)
    du, dv = kp[..., 0] - cx, kp[..., 1] - cy
    zero = np.zeros_like(du)
    # Rows: [fx, 0, -du] t = du Z - fx X ; [0, fy, -dv] t = dv Z - fy Y.
    a = np.concatenate([
        np.stack([np.full_like(du, fx), zero, -du], -1),
        np.stack([zero, np.full_like(dv, fy), -dv], -1),
    ], axis=1)  # fmt: skip
    b = np.concatenate(
        [du * pts[..., 2] - fx * pts[..., 0], dv * pts[..., 2] - fy * pts[..., 1]], axis=1
    )
    sw = np.sqrt(np.concatenate([w, w], axis=1))
    a, b = a * sw[..., None], b * sw
    out = np.full((pts.shape[0], 3), np.nan)
    for i in range(pts.shape[0]):
        if usable[i].sum() < 2:
            continue
        ata = a[i].T @ a[i]
        if np.linalg.cond(ata) > 1e12:
            continue
        out[i] = np.linalg.solve(ata, a[i].T @ b[i])
    return out[0] if single else out


# --------------------------------------------------------------------------------------------
# Pipeline
# --------------------------------------------------------------------------------------------
class Pipeline:
    """Camera frames (or 3D skeletons) -> SMPL-layout bodies, frame by frame.

    Models load lazily on first use (skeleton mode never loads the detector or the lifter).
    Pre-built components can be injected (``detector=``, ``lifter=``, ``body=``), e.g. to
    share a body model or to use a custom detector.

    Not thread-safe: use one pipeline per stream. Call :meth:`reset` between streams.
    """

    def __init__(
        self,
        config: PipelineConfig | None = None,
        *,
        detector: Any = None,
        lifter: Any = None,
        body: Any = None,
    ) -> None:
        self.config = config if config is not None else PipelineConfig()
        if not isinstance(self.config, PipelineConfig):
            raise ValueError(f"config must be a PipelineConfig, got {type(self.config).__name__}")
        self.config.validate()
        if self.config.num_threads is not None and torch.device(self.config.device).type == "cpu":
            torch.set_num_threads(self.config.num_threads)
        self._detector, self._lifter, self._body = detector, lifter, body
        from s2m_model.temporal import Tracker

        self.tracker = Tracker(
            max_age=self.config.track_max_age, min_confidence=self.config.min_keypoint_confidence
        )
        self._frame = 0
        self._betas: torch.Tensor | None = None
        self.last_timings: dict[str, float] = {}
        """Stage timings (ms) of the last call, also when nobody was found."""

    # -- components ---------------------------------------------------------------------------
    @property
    def body(self):
        """The :class:`~s2m_model.body.BodyModel` (loaded on first use, float32)."""
        if self._body is None:
            from s2m_model.body import load_body_model

            self._body = load_body_model(self.config.body, device=self.config.device)
        return self._body

    @property
    def detector(self):
        """The 2D keypoint detector (built on first use)."""
        if self._detector is None:
            from s2m_model.detect import get_detector

            options = dict(self.config.detector_options)
            if self.config.detector.strip().lower() == "mediapipe":
                options.setdefault("static_image_mode", not self.config.video_mode)
            self._detector = get_detector(self.config.detector, **options)
        return self._detector

    @property
    def lifter(self):
        """The 2D -> 3D lifter (loaded on first use)."""
        if self._lifter is None:
            from s2m_model.lifter import load_lifter

            self._lifter = load_lifter(self.config.lifter, device=self.config.device)
        return self._lifter

    @property
    def faces(self) -> np.ndarray:
        """(F, 3) int64 triangles of the body mesh."""
        return self.body.faces

    def reset(self) -> None:
        """Start a new stream: forget tracks, filters and the detector's tracking state."""
        self.tracker.reset()
        self._frame = 0
        reset = getattr(self._detector, "reset", None)
        if callable(reset):
            reset()

    def close(self) -> None:
        """Release the detector's native resources."""
        if self._detector is not None and callable(getattr(self._detector, "close", None)):
            self._detector.close()
        self._detector = None

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- public entry points ------------------------------------------------------------------
    def process(
        self, image: Any, camera: Any = None, stamp: float | None = None
    ) -> list[PersonResult]:
        """Estimate the bodies of the people in one RGB frame.

        Args:
            image: (H, W, 3) uint8 RGB (anything :func:`s2m_model.image.validate_image` takes).
            camera: intrinsics, see :func:`camera_from` (None: ``config.fov_deg`` pinhole).
            stamp: capture time in seconds (for the temporal filters); None = frame counter /
                ``config.default_fps``.

        Returns:
            One :class:`PersonResult` per person (at most ``max_persons``, best first), in the
            camera frame (x right, y down, z forward, metres); ``[]`` when nobody is found.

        Raises:
            ValueError: ``image`` is not a valid image, or ``camera`` is malformed.
        """
        from s2m_model.image import validate_image

        cfg = self.config
        t_start = time.perf_counter()
        rgb = validate_image(image)
        height, width = rgb.shape[:2]
        cam = camera_from(camera, width, height, cfg.fov_deg)
        stamp = self._stamp(stamp)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        detections = self.detector.detect(rgb)
        timings["detect"] = _ms(t0)
        people = self._select(detections)
        if not people:
            return self._finish([], timings, t_start, empty_dim=2)
        body = self.body
        lifter = self.lifter
        intrinsics = np.array([cam.fx, cam.fy, cam.cx, cam.cy], dtype=np.float32)
        with torch.inference_mode():
            t0 = time.perf_counter()
            keypoints = np.stack([d.keypoints for d in people]).astype(np.float32)  # (P,17,3)
            usable = getattr(lifter, "usable", None)
            if callable(usable):  # the lifter refuses people it cannot normalise
                ok = np.asarray(usable(keypoints), dtype=bool).reshape(-1)
                people = [d for d, k in zip(people, ok, strict=True) if k]
                keypoints = keypoints[ok]
            lifted = None
            if people:
                lifted = torch.as_tensor(lifter.lift(keypoints, camera=intrinsics))
                lifted = lifted.to(device=body.device, dtype=body.dtype).reshape(-1, 17, 3)
            timings["lift"] = _ms(t0)
            if lifted is None or not torch.isfinite(lifted).all():
                if lifted is not None:
                    log.warning("the lifter returned non-finite joints; frame skipped")
                return self._finish([], timings, t_start, empty_dim=2)
            boxes = np.stack([d.bbox for d in people]).astype(np.float32)
            conf_np = _h36m_confidence(keypoints[..., 2])
            tracks = (
                self.tracker.update(keypoints[..., :2], keypoints[..., 2], boxes)
                if cfg.temporal else None
            )
            results = self._solve(
                lifted, "h36m17", torch.from_numpy(conf_np).to(body.device), tracks, stamp,
                timings, keypoints=keypoints, cam=cam,
            )  # fmt: skip
        for result, det, box in zip(results, people, boxes, strict=True):
            if result is None:
                continue
            result.keypoints_2d = det.keypoints.astype(np.float32).copy()
            result.bbox = box.copy()
        return self._finish(results, timings, t_start)

    def process_skeleton(
        self,
        joints: Any,
        fmt: str = "h36m17",
        confidence: Any = None,
        stamp: float | None = None,
    ) -> list[PersonResult]:
        """Skeleton mode: fit bodies to 3D skeletons from your own estimator.

        Args:
            joints: (J, 3) or (P, J, 3) positions in metres in format ``fmt``, in any
                right-handed frame (the results are in that frame). NaN marks a missing joint.
            fmt: a registered skeleton format (``"h36m17"``, ``"coco17"``, ``"smpl24"``, ...).
            confidence: (J,) or (P, J) in [0, 1] (default: 1 for every finite joint).
            stamp: time in seconds for the temporal filters (None: frame counter / fps).

        Returns:
            One :class:`PersonResult` per skeleton with enough valid joints (both hips and
            ``min_keypoints`` joints), in input order; no ``keypoints_2d``/``bbox``.

        Raises:
            ValueError: unknown format, wrong shapes, infinite values, confidence outside [0, 1].
        """
        from s2m_model.dik import format_roles
        from s2m_model.skeletons import get_format

        cfg = self.config
        t_start = time.perf_counter()
        skel = get_format(fmt) if isinstance(fmt, str) else fmt
        arr = joints.detach().cpu().numpy() if isinstance(joints, torch.Tensor) else joints
        try:
            arr = np.asarray(arr, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"joints must be a numeric array, got {type(joints).__name__}"
            ) from exc
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3 or arr.shape[1:] != (skel.num_joints, 3):
            raise ValueError(
                f"joints must be ({skel.num_joints}, 3) or (P, {skel.num_joints}, 3) for format "
                f"'{skel.name}', got {np.shape(arr)}"
            )
        if np.isinf(arr).any():
            raise ValueError("joints contain infinite values (use NaN for missing joints)")
        finite = np.isfinite(arr).all(-1)
        if confidence is None:
            conf = finite.astype(np.float64)
        else:
            if isinstance(confidence, torch.Tensor):
                confidence = confidence.detach().cpu().numpy()
            conf = np.asarray(confidence, dtype=np.float64)
            if conf.size != finite.size:
                raise ValueError(f"confidence must be {finite.shape}, got {conf.shape}")
            conf = conf.reshape(finite.shape)
            if not (np.isfinite(conf).all() and (conf >= 0).all() and (conf <= 1).all()):
                raise ValueError("confidence must lie in [0, 1]")
            conf = np.where(finite, conf, 0.0)
        stamp = self._stamp(stamp)
        roles = format_roles(skel)
        # The root needs the pelvis point and both hips.
        root_points = [i for r in ("pelvis", "left_hip", "right_hip") for i in roles.get(r, ())]
        observed = conf >= cfg.min_keypoint_confidence
        keep = (observed.sum(1) >= cfg.min_keypoints) & observed[:, root_points].all(1)
        timings: dict[str, float] = {}
        if not keep.any():
            return self._finish([], timings, t_start, empty_dim=3)
        arr, conf = arr[keep], conf[keep]
        body = self.body
        tracks = self.tracker.update(arr, conf, None) if cfg.temporal else None
        with torch.inference_mode():
            joints_t = torch.from_numpy(arr).to(device=body.device, dtype=body.dtype)
            conf_t = torch.from_numpy(conf).to(device=body.device, dtype=body.dtype)
            results = self._solve(joints_t, skel, conf_t, tracks, stamp, timings)
        return self._finish(results, timings, t_start)

    # -- internals ----------------------------------------------------------------------------
    def _finish(
        self, results: list, timings: dict[str, float], t_start: float, empty_dim: int = 2
    ) -> list[PersonResult]:
        """Close a call: drop unplaced people, stamp timings; with nobody, age the tracks."""
        out = [r for r in results if r is not None]
        if not results and self.config.temporal:
            self.tracker.update(np.zeros((0, 1, empty_dim)))
        timings["total"] = _ms(t_start)
        for r in out:
            r.timings_ms = dict(timings)
        self.last_timings = timings
        return out

    def _stamp(self, stamp: float | None) -> float:
        self._frame += 1
        if stamp is None:
            return self._frame / self.config.default_fps
        stamp = float(stamp)
        if not math.isfinite(stamp):
            raise ValueError(f"stamp must be a finite time in seconds, got {stamp}")
        return stamp

    def _select(self, detections: list) -> list:
        """Detections with both hips and ``min_keypoints`` observed keypoints, best first."""
        cfg = self.config
        keep = []
        for det in sorted(detections, key=lambda d: -float(d.score)):
            observed = det.keypoints[:, 2] >= cfg.min_keypoint_confidence
            if observed.sum() >= cfg.min_keypoints and observed[list(_COCO_HIPS)].all():
                keep.append(det)
        return keep[: cfg.max_persons]

    def _betas_for(self, batch: int) -> torch.Tensor:
        body = self.body
        if self._betas is None or self._betas.shape[0] != batch:
            # Zeros until shape refinement exists; cached so no per-frame allocation.
            self._betas = torch.zeros(batch, 10, dtype=body.dtype, device=body.device)
        return self._betas

    def _dik(self, joints, fmt, conf, tracks) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """DIK over all people, with the previous rotations of each track (grouped: the solver
        takes one ``prev`` per batch; each track keeps its result as the next ``prev``).
        Returns local rotmats (P,24,3,3), solved (P,24) and DIK's translations (P,3)."""
        n = joints.shape[0]
        prevs = [None if tracks is None else tracks[i].state.get("dik_rotmats") for i in range(n)]
        groups = [[i for i in range(n) if prevs[i] is not None],
                  [i for i in range(n) if prevs[i] is None]]  # fmt: skip
        if not groups[0] or not groups[1]:  # the usual case: one call, no scatter
            prev = torch.cat(prevs) if groups[0] else None
            rotmats, solved, transl = self._dik_call(joints, fmt, conf, prev)
        else:
            rotmats = joints.new_empty(n, 24, 3, 3)
            solved = torch.zeros(n, 24, dtype=torch.bool, device=joints.device)
            transl = joints.new_zeros(n, 3)
            for idx in groups:
                prev = torch.cat([prevs[i] for i in idx]) if prevs[idx[0]] is not None else None
                rotmats[idx], solved[idx], transl[idx] = self._dik_call(
                    joints[idx], fmt, conf[idx], prev
                )
        if tracks is not None:
            ok = torch.isfinite(rotmats).flatten(1).all(1).tolist()
            for i in range(n):
                tracks[i].state["dik_rotmats"] = rotmats[i : i + 1] if ok[i] else None
        return rotmats, solved, transl

    def _dik_call(self, joints, fmt, conf, prev_rotmats):
        """One :func:`s2m_model.dik.solve` call, through a traced graph when enabled."""
        batch = joints.shape[0]
        graph = None
        if self.config.dik_backend == "jit":
            key = (fmt.name, batch, prev_rotmats is not None, joints.dtype, str(joints.device),
                   self.config.min_keypoint_confidence)  # fmt: skip
            graphs = _DIK_GRAPHS.setdefault(self.body, {})
            if key not in graphs:
                graphs[key] = self._trace_dik(fmt, batch, prev_rotmats is not None)
            graph = graphs[key]
        if graph is not None:
            args = (joints, conf.to(joints.dtype), self._betas_for(batch))
            if prev_rotmats is not None:
                args += (prev_rotmats,)
            return graph(*args)
        module = _DIKGraph(self.body, fmt, self.config.min_keypoint_confidence)
        return module(joints, conf, self._betas_for(batch), prev_rotmats)

    def _trace_dik(self, fmt, batch: int, with_prev: bool):
        """TorchScript trace of DIK for one format/batch size: DIK is branch-free, so the trace
        is exact, and it runs 2-4x faster than eager at batch 1 (Python overhead of ~3000
        small ops). Falls back to eager (None) if tracing fails."""
        import warnings

        body = self.body
        module = _DIKGraph(body, fmt, self.config.min_keypoint_confidence).eval()
        try:
            with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # Any finite example traces the same (branch-free) graph.
                gen = torch.Generator().manual_seed(0)
                joints = torch.randn(batch, fmt.num_joints, 3, generator=gen).to(
                    device=body.device, dtype=body.dtype)
                args = (joints, torch.ones(joints.shape[:2], dtype=body.dtype, device=body.device),
                        torch.zeros(batch, 10, dtype=body.dtype, device=body.device))
                if with_prev:
                    eye = torch.eye(3, dtype=body.dtype, device=body.device)
                    args += (eye.expand(batch, 24, 3, 3).clone(),)
                traced = torch.jit.trace(module, args, check_trace=False)
                return torch.jit.freeze(traced.eval())
        except Exception as exc:  # noqa: BLE001 - any tracer failure: eager is always correct
            log.warning("DIK could not be traced for format %s (%s); using eager mode",
                        fmt.name, exc)
            return None

    def _filter(self, values, tracks, stamp: float, key: str, make_filter):
        """Per-track filtering of ``values[i]``; each track keeps its filter in ``state[key]``."""
        out = values.clone() if isinstance(values, torch.Tensor) else values.copy()
        for i, track in enumerate(tracks):
            filt = track.state.get(key)
            if filt is None:
                filt = track.state[key] = make_filter()
            out[i] = filt(values[i], stamp)
        return out

    def _filter_rotations(self, rotmats: torch.Tensor, tracks, stamp: float) -> torch.Tensor:
        from s2m_model.temporal import SO3OneEuroFilter

        cfg = self.config
        return self._filter(rotmats, tracks, stamp, "rot_filter", lambda: SO3OneEuroFilter(
            cfg.rot_min_cutoff, cfg.rot_beta, cfg.d_cutoff))  # fmt: skip

    def _filter_translations(self, transl: np.ndarray, tracks, stamp: float) -> np.ndarray:
        from s2m_model.temporal import OneEuroFilter

        cfg = self.config
        return self._filter(transl, tracks, stamp, "transl_filter", lambda: OneEuroFilter(
            cfg.transl_min_cutoff, cfg.transl_beta, cfg.d_cutoff))  # fmt: skip

    def _solve(
        self, joints, fmt, conf, tracks, stamp: float, timings: dict[str, float],
        keypoints: np.ndarray | None = None, cam=None,
    ) -> list[PersonResult | None]:  # fmt: skip
        """DIK -> filter -> body -> (image mode) metric placement. ``joints`` (P,J,3)."""
        from s2m_model.dik import format_roles
        from s2m_model.skeletons import get_format

        cfg = self.config
        body = self.body
        n = joints.shape[0]
        skel = get_format(fmt) if isinstance(fmt, str) else fmt
        t0 = time.perf_counter()
        raw, solved, dik_transl = self._dik(joints, skel, conf, tracks)
        # DIK is NaN-free by design; should a pose still be non-finite, drop that person
        # rather than let NaN reach the filters or the caller.
        finite = torch.isfinite(raw).flatten(1).all(1) & torch.isfinite(dik_transl).all(1)
        if not bool(finite.all()):
            log.warning("DIK returned a non-finite pose; person dropped")
            eye = torch.eye(3, dtype=raw.dtype, device=raw.device)
            raw = torch.where(finite[:, None, None, None], raw, eye)
            dik_transl = torch.where(finite[:, None], dik_transl, torch.zeros_like(dik_transl))
        finite_np = finite.cpu().numpy()
        timings["dik"] = _ms(t0)

        t0 = time.perf_counter()
        rotmats = raw if tracks is None else self._filter_rotations(raw, tracks, stamp)
        timings["filter"] = _ms(t0)

        t0 = time.perf_counter()
        rotvec = roma.rotmat_to_rotvec(rotmats)  # (P,24,3)
        betas = self._betas_for(n)
        out = body(
            betas=betas, global_orient=rotvec[:, 0], body_pose=rotvec[:, 1:],
            with_vertices=cfg.compute_vertices,
        )  # fmt: skip
        if keypoints is not None:
            transl = self._place(out, keypoints, cam)  # (P,3) float64, NaN = unplaceable
        else:
            # DIK puts the format's pelvis point (offset o from the root joint in the rest
            # pose) on the input's: pelvis = transl + root + R0 o. Keep that true for the
            # filtered root rotation R0'.
            pelvis = joints[:, list(format_roles(skel)["pelvis"])].mean(1)
            root = out.joints[:, 0]  # the root joint does not move when the body rotates
            offset = (raw[:, 0].transpose(-1, -2) @ (pelvis - dik_transl - root)[..., None])
            transl_t = pelvis - root - (rotmats[:, 0] @ offset)[..., 0]
            transl = transl_t.double().cpu().numpy()
        placed = np.isfinite(transl).all(1) & finite_np
        if tracks is not None and placed.any():
            idx = np.flatnonzero(placed)
            transl[idx] = self._filter_translations(transl[idx], [tracks[i] for i in idx], stamp)
        joints_np = out.joints.float().cpu().numpy()
        verts_np = None if out.vertices is None else out.vertices.float().cpu().numpy()
        rotvec_np = rotvec.float().cpu().numpy()
        solved_np = solved.cpu().numpy()
        conf_np = conf.float().cpu().numpy()
        results: list[PersonResult | None] = []
        for i in range(n):
            if not placed[i]:
                log.debug("person %d could not be placed in the camera frame; dropped", i)
                results.append(None)
                continue
            t = transl[i].astype(np.float32)
            results.append(
                PersonResult(
                    betas=betas[i].float().cpu().numpy().copy(),
                    global_orient=rotvec_np[i, 0].copy(),
                    body_pose=rotvec_np[i, 1:].copy(),
                    transl=t,
                    joints=joints_np[i] + t,
                    vertices=None if verts_np is None else verts_np[i] + t,
                    solved=solved_np[i].copy(),
                    confidence=_smpl_confidence(skel, conf_np[i], solved_np[i]),
                    track_id=0 if tracks is None else tracks[i].track_id,
                )
            )
        timings["body"] = _ms(t0)
        return results

    def _place(self, out, keypoints: np.ndarray, cam) -> np.ndarray:
        """(P,3) body translations in the camera frame from the 2D keypoints (NaN: failed)."""
        cfg = self.config
        if out.vertices is not None:
            points = self.body.regress(out.vertices, "coco17").double().cpu().numpy()
            kp = keypoints
        else:
            limbs = list(_COCO_LIMBS_TO_SMPL)
            points = out.joints[:, list(_COCO_LIMBS_TO_SMPL.values())].double().cpu().numpy()
            kp = keypoints[:, limbs]
        weights = np.where(kp[..., 2] >= cfg.min_keypoint_confidence, kp[..., 2], 0.0)
        intrinsics = (cam.fx, cam.fy, cam.cx, cam.cy)
        transl = estimate_translation(points, kp[..., :2], weights, intrinsics)
        # The whole body must be in front of the camera.
        depth_ok = (transl[:, 2] + points[..., 2].min(1)) > MIN_DEPTH_M
        transl[~depth_ok] = np.nan
        return transl


# --------------------------------------------------------------------------------------------
class _DIKGraph(torch.nn.Module):
    """:func:`s2m_model.dik.solve` for one format and body as a module (for tracing):
    ``forward(joints (B,J,3), confidence (B,J), betas (B,10), prev_rotmats (B,24,3,3) | None)
    -> (rotmats (B,24,3,3), solved (B,24), transl (B,3))``."""

    def __init__(self, body, fmt, min_confidence: float) -> None:
        super().__init__()
        self.body, self.fmt, self.min_confidence = body, fmt, float(min_confidence)

    def forward(self, joints, confidence, betas, prev_rotmats=None):
        from s2m_model import dik

        prev = None
        if prev_rotmats is not None:
            # solve() reads only the previous local rotations from ``prev``.
            zeros = joints.new_zeros(joints.shape[0], 3)
            prev = dik.DIKResult(global_orient=zeros, body_pose=zeros, solved=zeros,
                                 transl=zeros, rotmats=prev_rotmats)  # fmt: skip
        res = dik.solve(joints, self.fmt, self.body, betas=betas, confidence=confidence,
                        prev=prev, min_confidence=self.min_confidence)  # fmt: skip
        return res.rotmats, res.solved, res.transl


# --------------------------------------------------------------------------------------------
def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1e3


# (17, 5) source indices, padded by repeating the first (min/max unchanged): one gather.
_CONF_SOURCES = np.array([(src * 5)[:5] for src in COCO17_TO_H36M17_CONFIDENCE])


def _h36m_confidence(coco_conf: np.ndarray) -> np.ndarray:
    """(P,17) h36m17 confidences from (P,17) COCO-17 keypoint confidences."""
    gathered = coco_conf[:, _CONF_SOURCES]  # (P,17,5)
    out = gathered.min(-1).astype(np.float32)
    out[:, _HEAD_TOP] = gathered[:, _HEAD_TOP].max(-1)
    return out


def _smpl_confidence(fmt, conf: np.ndarray, solved: np.ndarray) -> np.ndarray:
    """(24,) per SMPL joint: the confidence of the input joint mapped to it; joints solved
    without a direct input (spine, collars, ...) get the mean input confidence; others 0."""
    from s2m_model.body.free import SMPL_JOINT_NAMES

    out = np.zeros(24, dtype=np.float32)
    mapped = np.zeros(24, dtype=bool)
    for joint, smpl in fmt.smpl_map.items():
        j = SMPL_JOINT_NAMES.index(smpl)
        out[j] = conf[fmt.index(joint)]
        mapped[j] = True
    fill = float(conf.mean()) if conf.size else 0.0
    out[~mapped & solved] = fill
    return np.clip(out, 0.0, 1.0)
