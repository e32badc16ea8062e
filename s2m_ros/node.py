"""``s2m_node``: camera images or 3D skeletons in, SMPL-layout bodies out (see config/live.yaml).

A thin node: messages are converted (:mod:`s2m_ros.convert`), the frame goes through the s2m
pipeline (:mod:`s2m_model.pipeline`: detector -> lifter -> DIK -> body), results are published.

Inputs (``input_mode``):

* ``image``: sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8, mono8) on ``image_topic`` or
  sensor_msgs/CompressedImage on ``<image_topic>/compressed`` (``compressed: true``), with the
  sensor-data QoS; optional sensor_msgs/CameraInfo on ``camera_info_topic`` (K -> intrinsics,
  else a pinhole camera of ``fov_deg``);
* ``skeleton``: s2m_ros/Skeleton3D on ``skeleton_topic`` (any registered joint format).

Subscription callbacks only store the newest frame (a frame replaced before it was processed
counts as dropped); one worker thread processes frames, at most ``max_rate_hz`` per second.
The pipeline is warmed up before the subscriptions exist (:func:`warm_up`).

Outputs, all stamped with the input's stamp, frame = the input's frame (camera optical frame:
x right, y down, z forward; or ``camera_frame``): ``bodies`` (s2m_ros/BodyArray, one per
processed frame, empty when nobody is seen), ``mesh`` (s2m_ros/BodyMesh) with ``mesh_faces``
(s2m_ros/MeshFaces, latched), ``markers`` (visualization_msgs/MarkerArray TRIANGLE_LIST meshes,
at most ``marker_rate_hz``), per-joint TF on ``/tf`` and diagnostic_msgs/DiagnosticArray on
``/diagnostics`` at 1 Hz (rates, per-stage latency, drops, errors and the last error text).

Bad frames (unsupported encoding, zero size, wrong step, truncated data, all-NaN skeletons) and
pipeline exceptions never stop the node: they are counted, reported in the diagnostics and the
next frame is processed. Parameters are validated at start-up (an invalid value exits with
status 2 and the reason) and at run time (rejected with the reason).
"""

from __future__ import annotations

import math
import re
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

from s2m_model.results import PersonResult
from s2m_ros import convert

NODE_NAME = "s2m_node"
TF_TOPIC = "/tf"
DIAGNOSTICS_TOPIC = "/diagnostics"
DIAGNOSTICS_PERIOD_S = 1.0
# Statistics in the diagnostics cover the frames of the last few seconds.
STATS_WINDOW_S = 5.0
STATS_MAX_FRAMES = 1000


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of ``s2m_node``.

    Attributes:
        name: parameter name (as in config/live.yaml).
        default: default value; its Python type is the ROS parameter type.
        description: shown by ``ros2 param describe``.
        read_only: fixed after start-up (topics, models, queue sizes).
        min_value, max_value: inclusive range for numbers (None: unbounded).
        choices: allowed values for strings (None: any).
    """

    name: str
    default: bool | int | float | str
    description: str
    read_only: bool = True
    min_value: float | None = None
    max_value: float | None = None
    choices: tuple[str, ...] | None = None


PARAMS: tuple[ParamSpec, ...] = (
    # ---- input
    ParamSpec("input_mode", "image", "image: camera images -> 2D keypoints -> lifter; "
              "skeleton: s2m_ros/Skeleton3D input", choices=("image", "skeleton")),
    ParamSpec("image_topic", "/camera/image_raw", "sensor_msgs/Image topic (image mode)"),
    ParamSpec("compressed", False, "subscribe to <image_topic>/compressed (CompressedImage)"),
    ParamSpec("camera_info_topic", "/camera/camera_info",
              "sensor_msgs/CameraInfo for the intrinsics ('' = pinhole camera of fov_deg)"),
    ParamSpec("fov_deg", 60.0, "horizontal field of view (degrees) used without CameraInfo",
              read_only=False, min_value=1.0, max_value=179.0),
    ParamSpec("camera_frame", "", "frame_id of the outputs ('' = the input header's frame_id)",
              read_only=False),
    ParamSpec("skeleton_topic", "skeleton", "s2m_ros/Skeleton3D topic (skeleton mode)"),
    ParamSpec("skeleton_format", "h36m17",
              "joint layout of incoming skeletons whose message leaves `format` empty",
              read_only=False),
    # ---- models
    ParamSpec("body_model", "s2m-free", "s2m-free or a path to an SMPL .pkl/.npz file"),
    ParamSpec("detector", "mediapipe", "2D keypoint backend (image mode)"),
    ParamSpec("lifter", "default", "2D -> 3D skeleton lifter (image mode)"),
    ParamSpec("device", "cpu", "torch device: cpu, cuda or cuda:N"),
    ParamSpec("max_people", 4, "most people estimated per frame (best detector score first)",
              min_value=1, max_value=64),
    ParamSpec("min_confidence", 0.3, "keypoints/joints below this confidence are unobserved",
              min_value=0.0, max_value=1.0),
    ParamSpec("track", True, "keep track ids across frames"),
    # ---- rate and queues
    ParamSpec("max_rate_hz", 15.0, "process at most this many frames per second (0 = all)",
              read_only=False, min_value=0.0, max_value=1000.0),
    ParamSpec("input_queue_size", 1, "frames kept waiting for the worker (1 = newest only; "
              "older frames are dropped)", min_value=1, max_value=100),
    ParamSpec("output_queue_size", 10, "depth of the output publishers",
              min_value=1, max_value=1000),
    # ---- outputs
    ParamSpec("bodies_topic", "bodies", "s2m_ros/BodyArray output topic"),
    ParamSpec("publish_mesh", True, "publish s2m_ros/BodyMesh", read_only=False),
    ParamSpec("mesh_topic", "mesh", "s2m_ros/BodyMesh output topic"),
    ParamSpec("faces_topic", "mesh_faces", "s2m_ros/MeshFaces topic (latched)"),
    ParamSpec("publish_markers", True, "publish visualization_msgs/MarkerArray meshes",
              read_only=False),
    ParamSpec("markers_topic", "markers", "visualization_msgs/MarkerArray output topic"),
    ParamSpec("marker_rate_hz", 5.0, "most marker arrays per second (0 = every frame)",
              read_only=False, min_value=0.0, max_value=1000.0),
    ParamSpec("publish_tf", True, "publish per-joint TF on /tf", read_only=False),
    ParamSpec("tf_prefix", "s2m/", "TF frames <tf_prefix><track_id>/<joint>", read_only=False),
    ParamSpec("publish_diagnostics", True, "publish diagnostic_msgs on /diagnostics at 1 Hz",
              read_only=False),
)  # fmt: skip
PARAM_SPECS: dict[str, ParamSpec] = {p.name: p for p in PARAMS}
DEFAULTS: dict[str, Any] = {p.name: p.default for p in PARAMS}
_DEVICE_RE = re.compile(r"cpu|cuda(:\d+)?|mps")
_FRAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_/.\-]*")


class StartupError(RuntimeError):
    """``s2m_node`` cannot start (bad parameter, missing model, ...); the message says why."""


def check_param(name: str, value: Any) -> str | None:
    """Why ``value`` is not valid for parameter ``name``, or None when it is."""
    spec = PARAM_SPECS.get(name)
    if spec is None:
        return f"unknown parameter {name!r} (known: {', '.join(PARAM_SPECS)})"
    kind = type(spec.default)
    ok_type = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        ok_type = True
    if not ok_type:
        return f"{name} must be a {kind.__name__}, got {value!r}"
    if spec.min_value is not None and value < spec.min_value:
        return f"{name} must be >= {spec.min_value}, got {value!r}"
    if spec.max_value is not None and value > spec.max_value:
        return f"{name} must be <= {spec.max_value}, got {value!r}"
    if spec.choices is not None and value not in spec.choices:
        return f"{name} must be one of {', '.join(spec.choices)}, got {value!r}"
    if name == "skeleton_format":
        from s2m_model.skeletons import list_formats

        known = list_formats()
        if value not in known:
            return f"skeleton_format {value!r} is not registered (known: {', '.join(known)})"
    if name == "detector":
        from s2m_model.detect import DETECTORS

        if value.strip().lower() not in DETECTORS:
            return f"detector {value!r} is not one of {', '.join(DETECTORS)}"
    if name == "device" and not _DEVICE_RE.fullmatch(value):
        return f"device must be cpu, cuda or cuda:N, got {value!r}"
    if name in ("tf_prefix", "camera_frame") and value and not _FRAME_RE.fullmatch(value):
        return f"{name} {value!r} must be a tf2 frame id without a leading '/' or spaces"
    if name in ("image_topic", "skeleton_topic", "bodies_topic", "mesh_topic", "faces_topic",
                "markers_topic") and not value:  # fmt: skip
        return f"{name} must not be empty"
    if name == "body_model" and not value:
        return "body_model must be 's2m-free' or a path to an SMPL model file"
    return None


def check_params(values: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults updated with ``values``, every value checked.

    Raises:
        ValueError: the first invalid or unknown parameter, with the reason.
    """
    merged = dict(DEFAULTS)
    for name, value in values.items():
        problem = check_param(name, value)
        if problem:
            raise ValueError(problem)
        spec = PARAM_SPECS[name]
        merged[name] = float(value) if isinstance(spec.default, float) else value
    return merged


def load_params_file(path: str, node_name: str = NODE_NAME) -> dict[str, Any]:
    """The ``<node_name>: ros__parameters:`` section of a ROS 2 params file, checked.

    Raises:
        FileNotFoundError: no such file. ValueError: no section for the node, or a bad value.
    """
    from pathlib import Path

    import yaml

    text = Path(path).read_text()
    data = yaml.safe_load(text) or {}
    section = None
    for key in (node_name, f"/{node_name}", "/**", "**"):
        if isinstance(data.get(key), dict) and "ros__parameters" in data[key]:
            section = data[key]["ros__parameters"] or {}
            break
    if section is None:
        raise ValueError(f"{path}: no '{node_name}: ros__parameters:' section")
    return check_params(section)


# --------------------------------------------------------------------------- pipeline


# node parameter -> s2m_model.pipeline.PipelineConfig field
PIPELINE_FIELDS: dict[str, str] = {
    "body_model": "body",
    "detector": "detector",
    "lifter": "lifter",
    "device": "device",
    "track": "temporal",
    "fov_deg": "fov_deg",
    "min_confidence": "min_keypoint_confidence",
    "max_people": "max_persons",
}


def build_pipeline(params: Mapping[str, Any]) -> Any:
    """The s2m pipeline configured from node parameters (see :data:`PARAMS`), models loaded.

    Raises:
        StartupError: the pipeline cannot be built (missing model file, unknown detector, ...).
    """
    from s2m_model.pipeline import Pipeline, PipelineConfig

    try:
        config = PipelineConfig(**{f: params[p] for p, f in PIPELINE_FIELDS.items()})
        pipe = Pipeline(config)
        # load the models now: a missing model must stop the start-up, not the first frame
        _ = pipe.body
        if params["input_mode"] == "image":
            _ = pipe.detector, pipe.lifter
    except (ValueError, FileNotFoundError, RuntimeError, OSError, ImportError) as exc:
        raise StartupError(f"cannot build the s2m pipeline: {exc}") from exc
    return pipe


def warm_up(pipeline: Any, image_mode: bool) -> float:
    """Run the pipeline's first, slow calls now instead of on the first frames; returns seconds.

    The first DIK calls (with and without a previous frame) and the detector's first frame
    cost seconds (lazy caches, first kernel runs); a live node would otherwise publish its
    first bodies seconds late. Uses the body's rest skeleton and a black frame, then
    ``reset()`` so no track survives.
    """
    t0 = time.perf_counter()
    body = getattr(pipeline, "body", None)
    if body is not None and hasattr(pipeline, "process_skeleton"):
        import torch

        with torch.no_grad():
            rest = body.rest_points(fmt="h36m17")[0].cpu().numpy()
        for i in range(3):
            pipeline.process_skeleton(rest, "h36m17", stamp=i / 30.0)
    if image_mode and hasattr(pipeline, "process"):
        pipeline.process(np.zeros((480, 640, 3), np.uint8))
    pipeline.reset()
    return time.perf_counter() - t0


def pinhole_from_fov(width: int, height: int, fov_deg: float) -> tuple[float, float, float, float]:
    """``(fx, fy, cx, cy)`` in pixels of a pinhole camera with horizontal FOV ``fov_deg``."""
    fx = 0.5 * width / math.tan(math.radians(fov_deg) / 2.0)
    return fx, fx, 0.5 * width, 0.5 * height


def camera_info_intrinsics(msg: Any, width: int, height: int) -> tuple[float, float, float, float]:
    """``(fx, fy, cx, cy)`` from a sensor_msgs/CameraInfo ``k``, scaled to a ``width`` x
    ``height`` image when the info was calibrated at another resolution.

    Raises:
        ValueError: K has no positive focal lengths.
    """
    k = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
    fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    if not (np.isfinite(k).all() and fx > 0 and fy > 0):
        raise ValueError(f"CameraInfo K has no valid focal lengths (fx={fx}, fy={fy})")
    sx = width / msg.width if msg.width else 1.0
    sy = height / msg.height if msg.height else 1.0
    return float(fx * sx), float(fy * sy), float(cx * sx), float(cy * sy)


# --------------------------------------------------------------------------- processing


@dataclass
class FrameOutput:
    """Everything published for one input frame.

    Attributes:
        header: std_msgs/Header (input stamp, output frame).
        results: people found (camera/skeleton frame, metres).
        timings_ms: ``{stage: ms}`` (decode, the pipeline's stages, pipeline, convert).
        bodies: s2m_ros/BodyArray. mesh: s2m_ros/BodyMesh or None (no mesh requested/available).
        tf: tf2_msgs/TFMessage or None. vertices: ``(N, V, 3)`` float32 or None.
        warnings: non-fatal problems (e.g. TF skipped without a frame id).
    """

    header: Any
    results: list[PersonResult]
    timings_ms: dict[str, float]
    bodies: Any
    mesh: Any = None
    tf: Any = None
    vertices: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)


class FrameProcessor:
    """Message in -> pipeline -> output messages, without any node (shared by ``s2m_node`` and
    ``s2m eval-bag``).

    Args:
        pipeline: an object with ``process(image, camera, stamp)``,
            ``process_skeleton(joints, fmt, confidence, stamp)`` and ``reset()``.
        params: node parameters (:func:`check_params`); read on every frame, so run-time
            changes apply to the next frame.
        body: the pipeline's body model (faces, name); default ``pipeline.body``.
    """

    def __init__(self, pipeline: Any, params: Mapping[str, Any], body: Any = None) -> None:
        self.pipeline = pipeline
        self.params = params
        self.body = body if body is not None else getattr(pipeline, "body", None)
        if self.body is None:
            from s2m_model.body import load_body_model

            self.body = load_body_model(params["body_model"], device=params["device"])
        self.model_name = str(getattr(self.body, "name", params["body_model"]))
        self.faces = np.asarray(self.body.faces, dtype=np.int64)
        self.num_vertices = int(self.body.num_vertices)
        self.faces_id = convert.faces_id(self.model_name, self.num_vertices, self.faces)
        self.camera_info: Any = None
        self._last_stamp_ns = -1

    def mesh_faces_msg(self, stamp: Any = None) -> Any:
        """The latched s2m_ros/MeshFaces of the body model."""
        header = convert.make_header(stamp)
        return convert.mesh_faces_msg(self.faces, self.num_vertices, self.model_name, header)

    def intrinsics(self, width: int, height: int) -> tuple[float, float, float, float]:
        """Camera intrinsics for a ``width`` x ``height`` image: CameraInfo, else ``fov_deg``."""
        if self.camera_info is not None:
            try:
                return camera_info_intrinsics(self.camera_info, width, height)
            except ValueError:
                pass  # an uncalibrated camera publishes K = 0: fall back to the FOV
        return pinhole_from_fov(width, height, self.params["fov_deg"])

    def process(self, kind: str, msg: Any) -> FrameOutput:
        """Process one ``"image"``, ``"compressed"`` or ``"skeleton"`` message.

        Raises:
            ValueError: a bad frame (encoding, size, step, data length, NaN skeleton) or
                non-finite results. Pipeline exceptions propagate unchanged.
        """
        p = self.params
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        stamp_ns = convert.stamp_to_ns(msg.header.stamp)
        frame_id = p["camera_frame"] or str(msg.header.frame_id)
        if stamp_ns < self._last_stamp_ns:
            self.pipeline.reset()  # time went backwards (a looped bag): forget the tracks
        self._last_stamp_ns = stamp_ns
        if kind == "skeleton":
            if not msg.format:
                msg.format = p["skeleton_format"]
            skel = convert.skeleton_msg_to_numpy(msg)
            if not np.any(skel.confidences > 0):
                raise ValueError("skeleton has no valid joint (all NaN or confidence 0)")
            positions = np.where(skel.confidences[:, None] > 0, skel.positions, np.nan)
            timings["decode"] = (time.perf_counter() - t0) * 1e3
            t1 = time.perf_counter()
            results = self._process_skeleton(skel, positions, stamp_ns)
        else:
            if kind == "compressed":
                rgb = convert.compressed_image_to_numpy(msg)
            else:
                rgb = convert.image_to_numpy(msg)
            timings["decode"] = (time.perf_counter() - t0) * 1e3
            t1 = time.perf_counter()
            camera = self.intrinsics(rgb.shape[1], rgb.shape[0])
            results = list(self.pipeline.process(rgb, camera=camera, stamp=stamp_ns * 1e-9))
        t2 = time.perf_counter()
        stages = results[0].timings_ms if results else getattr(self.pipeline, "last_timings", {})
        timings.update({k: float(v) for k, v in stages.items() if k != "total"})
        timings["pipeline"] = (t2 - t1) * 1e3
        out = self._messages(results, stamp_ns, frame_id)
        out.timings_ms = {**timings, "convert": (time.perf_counter() - t2) * 1e3}
        return out

    def _process_skeleton(self, skel: Any, positions: np.ndarray, stamp_ns: int) -> list:
        results = list(
            self.pipeline.process_skeleton(
                positions, skel.format, confidence=skel.confidences, stamp=stamp_ns * 1e-9
            )
        )
        if skel.track_id:  # the sender's tracker names the person
            for r in results:
                r.track_id = skel.track_id
        return results

    def _messages(self, results: list[PersonResult], stamp_ns: int, frame_id: str) -> FrameOutput:
        p = self.params
        header = convert.make_header(stamp_ns, frame_id)
        bodies = convert.results_to_body_array(results, header, self.model_name)
        ordered = sorted(results, key=lambda r: (r.track_id == 0, r.track_id))
        out = FrameOutput(header=header, results=ordered, timings_ms={}, bodies=bodies)
        if all(r.vertices is not None for r in ordered):
            verts = (
                np.stack([np.asarray(r.vertices, np.float32) for r in ordered])
                if ordered
                else np.zeros((0, self.num_vertices, 3), np.float32)
            )
            out.vertices = verts
            if p["publish_mesh"]:
                ids = [r.track_id for r in ordered]
                out.mesh = convert.body_mesh_msg(verts, ids, header, self.faces_id)
        if p["publish_tf"] and ordered:
            if frame_id:
                from tf2_msgs.msg import TFMessage

                transforms = []
                for r in ordered:
                    transforms.extend(convert.body_to_tf(r, header, p["tf_prefix"]))
                out.tf = TFMessage(transforms=transforms)
            else:
                out.warnings.append("input has no frame_id and camera_frame is empty: no TF")
        return out


# --------------------------------------------------------------------------- markers


def mesh_markers_cdr(
    vertices: np.ndarray,
    faces: np.ndarray,
    header: Any,
    track_ids: Sequence[int] | None = None,
    **kwargs: Any,
) -> bytes:
    """Serialized visualization_msgs/MarkerArray of :func:`s2m_ros.convert.mesh_markers`,
    built in milliseconds instead of ~0.6 s per body.

    Args:
        vertices: ``(N, V, 3)`` metres, header frame. faces: ``(F, 3)`` indices < V.
        header: frame and stamp. track_ids: N marker ids (default 0..N-1).
        kwargs: ``ns``, ``alpha``, ``lifetime_s`` of :func:`~s2m_ros.convert.mesh_markers`.

    Returns:
        CDR bytes for ``Publisher.publish`` (rclpy publishes bytes as a serialized message).
    """
    from rclpy.serialization import serialize_message

    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 3 or v.shape[2] != 3:
        raise ValueError(f"vertices: expected (N, V, 3), got {v.shape}")
    f = np.asarray(faces, dtype=np.int64)
    if f.ndim != 2 or f.shape[1] != 3 or len(f) == 0 or f.min() < 0 or f.max() >= v.shape[1]:
        raise ValueError(f"faces: expected (F, 3) indices in [0, {v.shape[1]}), got {f.shape}")
    ids = list(range(len(v))) if track_ids is None else [int(t) for t in track_ids]
    if len(ids) != len(v):
        raise ValueError(f"{len(ids)} track_ids for {len(v)} bodies")
    keep = [k for k in range(len(v)) if np.isfinite(v[k]).all()]
    # rclpy converts the F*3 Point objects of TRIANGLE_LIST markers one by one (~0.6 s per
    # body, no array path): serialise the markers with 3 placeholder points each, then put the
    # real points into the CDR bytes. Each list grows by a multiple of 8 bytes, so every later
    # field keeps its CDR alignment.
    sentinels = np.array([[-9876.54321 - k, 1234.5 + k, -0.0123 * (k + 1)] for k in keep])
    template = convert.mesh_markers(
        sentinels.reshape(len(keep), 1, 3) if keep else np.zeros((0, 1, 3)),
        np.zeros((1, 3), np.int64),
        header,
        [ids[k] for k in keep],
        **kwargs,
    )
    data = bytearray(serialize_message(template))
    if data[1] != 1:  # pragma: no cover - rclpy serialises little-endian CDR on every platform
        raise RuntimeError("expected little-endian CDR from rclpy")
    start = 4
    for k, sentinel in zip(keep, sentinels, strict=True):
        pattern = np.tile(sentinel, 3).astype("<f8").tobytes()
        pos = data.find(pattern, start)
        # the uint32 length precedes the points, maybe with 4 bytes of padding (zeros)
        counts = (c for c in (pos - 4, pos - 8) if c >= 4 and data[c : c + 4] == b"\x03\0\0\0")
        count_at = next(counts, None)
        if pos < 0 or count_at is None:  # pragma: no cover - a change of the Marker layout
            raise RuntimeError("placeholder points not found in the serialized MarkerArray")
        points = v[k][f.reshape(-1)].astype("<f8").tobytes()
        struct.pack_into("<I", data, count_at, 3 * len(f))
        data[pos : pos + len(pattern)] = points
        start = pos + len(points)
    return bytes(data)


# --------------------------------------------------------------------------- statistics


def summarize(values: Sequence[float]) -> dict[str, float]:
    """``{"median", "p95", "mean", "max", "count"}`` of ``values`` (empty -> count 0 only)."""
    if len(values) == 0:
        return {"count": 0}
    a = np.asarray(values, dtype=np.float64)
    return {
        "median": float(np.median(a)),
        "p95": float(np.percentile(a, 95)),
        "mean": float(a.mean()),
        "max": float(a.max()),
        "count": int(a.size),
    }


class NodeStats:
    """Thread-safe counters and per-frame timings of ``s2m_node``.

    Every input frame ends up in exactly one of processed, dropped (replaced in the input queue
    before the worker took it) or failed (bad frame or pipeline error); frames in flight are
    ``frames_in - processed - dropped - failed``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.frames_in = self.processed = self.dropped = self.failed = 0
        self.people = 0
        self.errors: dict[str, int] = {}
        self.last_error = ""
        self.last_error_time = 0.0
        self._recent: deque[tuple[float, dict[str, float]]] = deque(maxlen=STATS_MAX_FRAMES)
        self._recent_in: deque[float] = deque(maxlen=STATS_MAX_FRAMES)
        self._recent_fail: deque[float] = deque(maxlen=STATS_MAX_FRAMES)

    def received(self, dropped: int) -> None:
        with self._lock:
            self.frames_in += 1
            self.dropped += dropped
            self._recent_in.append(time.monotonic())

    def done(self, timings_ms: Mapping[str, float], people: int) -> None:
        with self._lock:
            self.processed += 1
            self.people += people
            self._recent.append((time.monotonic(), dict(timings_ms)))

    def fail(self, error: BaseException) -> None:
        text = f"{type(error).__name__}: {error}"
        with self._lock:
            self.failed += 1
            kind = type(error).__name__
            self.errors[kind] = self.errors.get(kind, 0) + 1
            self.last_error = text[:500]
            self.last_error_time = time.monotonic()
            self._recent_fail.append(self.last_error_time)

    def snapshot(self, window_s: float = STATS_WINDOW_S) -> dict[str, Any]:
        """Counters, rates over the last ``window_s`` and per-stage latency summaries (ms)."""
        now = time.monotonic()
        with self._lock:
            recent = [t for s, t in self._recent if now - s <= window_s]
            n_in = sum(1 for s in self._recent_in if now - s <= window_s)
            n_fail = sum(1 for s in self._recent_fail if now - s <= window_s)
            snap = {
                "frames_in": self.frames_in,
                "processed": self.processed,
                "dropped": self.dropped,
                "failed": self.failed,
                "people": self.people,
                "errors": dict(self.errors),
                "last_error": self.last_error,
                "last_error_age_s": now - self.last_error_time if self.last_error else None,
            }
        stages: dict[str, list[float]] = {}
        for t in recent:
            for name, ms in t.items():
                stages.setdefault(name, []).append(ms)
        snap.update(
            {
                "input_rate_hz": n_in / window_s,
                "rate_hz": len(recent) / window_s,
                "failed_recent": n_fail,
                "processed_recent": len(recent),
                "latency_ms": {k: summarize(v) for k, v in stages.items()},
            }
        )
        return snap


def diagnostic_status(snap: Mapping[str, Any], name: str, hardware_id: str) -> Any:
    """diagnostic_msgs/DiagnosticStatus of a :meth:`NodeStats.snapshot`.

    Level: ERROR when every recent frame failed, WARN when some failed or no input arrived in
    the window, else OK; the message carries the last error text.
    """
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

    failed, ok = snap["failed_recent"], snap["processed_recent"]
    if failed and not ok:
        level, message = DiagnosticStatus.ERROR, f"all recent frames failed: {snap['last_error']}"
    elif failed:
        level, message = DiagnosticStatus.WARN, f"{failed} frame(s) failed: {snap['last_error']}"
    elif snap["input_rate_hz"] == 0:
        level, message = DiagnosticStatus.WARN, "no input"
    else:
        level, message = DiagnosticStatus.OK, "ok"
    values = {
        "frames_in": snap["frames_in"],
        "frames_processed": snap["processed"],
        "frames_dropped": snap["dropped"],
        "frames_failed": snap["failed"],
        "input_rate_hz": f"{snap['input_rate_hz']:.2f}",
        "rate_hz": f"{snap['rate_hz']:.2f}",
        "people": snap["people"],
        "errors": ", ".join(f"{k}={v}" for k, v in sorted(snap["errors"].items())),
        "last_error": snap["last_error"],
    }
    for stage, s in snap["latency_ms"].items():
        if s.get("count"):
            values[f"latency_{stage}_median_ms"] = f"{s['median']:.2f}"
            values[f"latency_{stage}_p95_ms"] = f"{s['p95']:.2f}"
    return DiagnosticStatus(
        level=level,
        name=name,
        message=message[:500],
        hardware_id=hardware_id,
        values=[KeyValue(key=k, value=str(v)) for k, v in values.items()],
    )


# --------------------------------------------------------------------------- the node


class FrameQueue:
    """The newest ``maxlen`` frames for the worker; putting into a full queue drops the oldest."""

    def __init__(self, maxlen: int = 1) -> None:
        self._items: deque[Any] = deque()
        self._maxlen = maxlen
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item: Any) -> int:
        """Add ``item``; returns how many unprocessed frames it replaced (0 or 1)."""
        with self._cond:
            dropped = 0
            if len(self._items) >= self._maxlen:
                self._items.popleft()
                dropped = 1
            self._items.append(item)
            self._cond.notify()
            return dropped

    def get(self, timeout: float) -> Any | None:
        """The oldest queued frame, or None after ``timeout`` seconds or once closed."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            return self._items.popleft() if self._items else None

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class S2MNode(Node):
    """The s2m ROS 2 node (module docstring). ``close()`` before ``destroy_node()``.

    Args:
        pipeline: an s2m pipeline to use instead of building one from the parameters.
        node_name: ROS node name (parameters files address it by name).
        kwargs: rclpy ``Node`` keyword arguments (``context``, ``namespace``,
            ``parameter_overrides``, ...).

    Raises:
        StartupError: a parameter is invalid or the pipeline cannot be built.
    """

    def __init__(self, pipeline: Any = None, node_name: str = NODE_NAME, **kwargs: Any):
        super().__init__(node_name, **kwargs)
        try:
            self._setup(pipeline)
        except StartupError:
            self.destroy_node()
            raise
        except Exception as exc:  # rclpy raises many kinds (bad topic names, QoS, ...)
            self.destroy_node()
            raise StartupError(f"{type(exc).__name__}: {exc}") from exc

    # -- set-up ------------------------------------------------------------------------
    def _declare(self) -> dict[str, Any]:
        from rclpy.exceptions import ParameterException

        values = {}
        for spec in PARAMS:
            descriptor = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
            if spec.choices:
                descriptor.additional_constraints = "one of: " + ", ".join(spec.choices)
            if spec.min_value is not None and isinstance(spec.default, float):
                descriptor.floating_point_range = [
                    FloatingPointRange(from_value=spec.min_value, to_value=spec.max_value)
                ]
            elif spec.min_value is not None and isinstance(spec.default, int):
                descriptor.integer_range = [
                    IntegerRange(
                        from_value=int(spec.min_value), to_value=int(spec.max_value), step=1
                    )
                ]
            try:
                values[spec.name] = self.declare_parameter(
                    spec.name, spec.default, descriptor
                ).value
            except ParameterException as exc:
                raise StartupError(f"invalid parameter {spec.name}: {exc}") from exc
        try:
            return check_params(values)
        except ValueError as exc:
            raise StartupError(f"invalid parameter: {exc}") from exc

    def _setup(self, pipeline: Any) -> None:
        self.params = self._declare()
        self.add_on_set_parameters_callback(self._check_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        p = self.params
        self.pipeline = pipeline if pipeline is not None else build_pipeline(p)
        self.processor = FrameProcessor(self.pipeline, p)
        seconds = warm_up(self.pipeline, p["input_mode"] == "image")
        self.get_logger().debug(f"pipeline warmed up in {seconds:.1f} s")
        self.stats = NodeStats()
        self._queue = FrameQueue(p["input_queue_size"])
        self._stop = threading.Event()
        self._last_markers = -math.inf
        self._warned: set[str] = set()

        out_qos = QoSProfile(depth=p["output_queue_size"])
        latched = QoSProfile(
            depth=1,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        from diagnostic_msgs.msg import DiagnosticArray
        from tf2_msgs.msg import TFMessage
        from visualization_msgs.msg import MarkerArray

        from s2m_ros.msg import BodyArray, BodyMesh, MeshFaces

        self.pub_bodies = self.create_publisher(BodyArray, p["bodies_topic"], out_qos)
        self.pub_mesh = self.create_publisher(BodyMesh, p["mesh_topic"], out_qos)
        self.pub_faces = self.create_publisher(MeshFaces, p["faces_topic"], latched)
        self.pub_markers = self.create_publisher(MarkerArray, p["markers_topic"], out_qos)
        self.pub_tf = self.create_publisher(TFMessage, TF_TOPIC, QoSProfile(depth=100))
        self.pub_diag = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)
        self.pub_faces.publish(self.processor.mesh_faces_msg(self.get_clock().now()))

        in_qos = QoSProfile(
            depth=max(5, p["input_queue_size"]),
            reliability=qos_profile_sensor_data.reliability,
            durability=qos_profile_sensor_data.durability,
        )
        if p["input_mode"] == "skeleton":
            from s2m_ros.msg import Skeleton3D

            self.input_topic = p["skeleton_topic"]
            self.create_subscription(
                Skeleton3D, self.input_topic, self._receiver("skeleton"), in_qos
            )
        else:
            from sensor_msgs.msg import CameraInfo, CompressedImage, Image

            topic = p["image_topic"]
            if p["compressed"]:
                topic = topic if topic.endswith("/compressed") else topic + "/compressed"
                self.create_subscription(
                    CompressedImage, topic, self._receiver("compressed"), in_qos
                )
            else:
                self.create_subscription(Image, topic, self._receiver("image"), in_qos)
            self.input_topic = topic
            if p["camera_info_topic"]:
                self.create_subscription(
                    CameraInfo, p["camera_info_topic"], self._on_camera_info, in_qos
                )
        self.create_timer(DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)
        self._worker = threading.Thread(target=self._work, name="s2m_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"{p['input_mode']} mode: {self.input_topic} -> {self.pub_bodies.topic_name} "
            f"(body model {self.processor.model_name}, "
            f"{self.processor.num_vertices} vertices)"
        )

    # -- parameters ----------------------------------------------------------------------
    def _check_parameters(self, parameters: list) -> SetParametersResult:
        # runs after rclpy's type, range and read-only checks; rejects with the reason
        for param in parameters:
            if param.name in PARAM_SPECS:
                problem = check_param(param.name, param.value)
                if problem:
                    return SetParametersResult(successful=False, reason=problem)
        return SetParametersResult(successful=True)

    def _apply_parameters(self, parameters: list) -> None:
        # the worker reads self.params on every frame: changes apply from the next frame
        for param in parameters:
            spec = PARAM_SPECS.get(param.name)
            if spec is not None:
                value = param.value
                self.params[param.name] = float(value) if isinstance(spec.default, float) else value

    # -- input ---------------------------------------------------------------------------
    def _receiver(self, kind: str) -> Callable[[Any], None]:
        def receive(msg: Any) -> None:
            self.stats.received(self._queue.put((kind, msg, time.perf_counter())))

        return receive

    def _on_camera_info(self, msg: Any) -> None:
        self.processor.camera_info = msg

    # -- worker ----------------------------------------------------------------------------
    def _work(self) -> None:
        next_time = 0.0
        while not self._stop.is_set():
            wait = next_time - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                break
            item = self._queue.get(timeout=0.1)
            if item is None:
                continue
            rate = self.params["max_rate_hz"]
            next_time = time.monotonic() + (1.0 / rate if rate > 0 else 0.0)
            self._handle(*item)

    def _handle(self, kind: str, msg: Any, received: float) -> None:
        try:
            out = self.processor.process(kind, msg)
            t0 = time.perf_counter()
            self._publish(out)
            out.timings_ms["publish"] = (time.perf_counter() - t0) * 1e3
        except Exception as exc:  # a bad frame or a pipeline bug must not stop the node
            if self._stop.is_set() or not self.context.ok():
                return  # shutting down (Ctrl-C, SIGTERM): publishers may already be gone
            self.stats.fail(exc)
            self.get_logger().warning(
                f"frame failed: {type(exc).__name__}: {exc}", throttle_duration_sec=5.0
            )
            return
        out.timings_ms["total"] = (time.perf_counter() - received) * 1e3
        age_ns = self.get_clock().now().nanoseconds - convert.stamp_to_ns(out.header.stamp)
        out.timings_ms["age"] = age_ns * 1e-6
        for warning in out.warnings:
            if warning not in self._warned:
                self._warned.add(warning)
                self.get_logger().warning(warning)
        self.stats.done(out.timings_ms, len(out.results))

    def _publish(self, out: FrameOutput) -> None:
        p = self.params
        self.pub_bodies.publish(out.bodies)
        if out.mesh is not None and p["publish_mesh"]:
            self.pub_mesh.publish(out.mesh)
        if out.tf is not None and p["publish_tf"]:
            self.pub_tf.publish(out.tf)
        if (
            p["publish_markers"]
            and out.vertices is not None
            and self.pub_markers.get_subscription_count() > 0
        ):
            now = time.monotonic()
            rate = p["marker_rate_hz"]
            if rate <= 0 or now - self._last_markers >= 1.0 / rate:
                self._last_markers = now
                ids = [r.track_id for r in out.results]
                self.pub_markers.publish(
                    mesh_markers_cdr(out.vertices, self.processor.faces, out.header, ids)
                )

    def _publish_diagnostics(self) -> None:
        if not self.params["publish_diagnostics"]:
            return
        from diagnostic_msgs.msg import DiagnosticArray

        status = diagnostic_status(
            self.stats.snapshot(),
            f"{self.get_name()}: pipeline",
            f"s2m {self.params['input_mode']} {self.params['device']}",
        )
        header = convert.make_header(self.get_clock().now())
        self.pub_diag.publish(DiagnosticArray(header=header, status=[status]))

    # -- shutdown --------------------------------------------------------------------------
    def idle(self) -> bool:
        """True when no frame is queued or being processed."""
        s = self.stats
        return len(self._queue) == 0 and s.frames_in == s.processed + s.dropped + s.failed

    def close(self) -> None:
        """Stop the worker (idempotent); call before ``destroy_node``."""
        self._stop.set()
        self._queue.close()
        if self._worker.is_alive() and self._worker is not threading.current_thread():
            self._worker.join(timeout=10.0)


def main(args: list[str] | None = None) -> int:
    """Entry point of ``s2m_node`` (ROS arguments: ``--ros-args --params-file live.yaml``)."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    try:
        rclpy.init(args=args)
    except Exception as exc:  # rcl's RCLError: e.g. unparsable --ros-args
        print(f"{NODE_NAME}: cannot start: {exc}", file=sys.stderr)
        return 2
    try:
        node = S2MNode()
    except StartupError as exc:
        rclpy.logging.get_logger(NODE_NAME).error(f"cannot start: {exc}")
        rclpy.try_shutdown()
        return 2
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # Ctrl-C / SIGTERM: a clean exit, no traceback
    finally:
        node.close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
