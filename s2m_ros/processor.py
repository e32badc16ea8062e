"""One input message in, the output messages of ``s2m_node`` out — without any node.

:class:`FrameProcessor` is shared by ``s2m_node`` (live) and ``s2m eval-bag`` (offline): it
decodes an Image / CompressedImage / Skeleton3D (:mod:`s2m_ros.convert`), runs the s2m
pipeline (``Pipeline.process`` or ``Pipeline.process_skeleton``) and builds BodyArray,
BodyMesh and TF messages. :func:`build_pipeline` makes the pipeline from node parameters
(:mod:`s2m_ros.params`), :func:`warm_up` runs its slow first calls before the first frame.

Frames: outputs are in the input's frame (camera optical frame for images: x right, y down,
z forward; or ``camera_frame``), metres, stamped with the input's stamp.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from s2m_model.camera import Camera
from s2m_model.results import PersonResult
from s2m_ros import convert
from s2m_ros.params import pipeline_fields

# Plausible focal lengths, in multiples of the image width: a 1e-3 x width focal length is a
# >179.8 deg field of view, 1e6 x width a 0.00006 deg one; outside that, K is garbage (fx = 1e30
# would make every later frame fail with non-finite results).
FOCAL_RANGE_X_WIDTH = (1e-3, 1e6)
# Principal point within this many image sizes of the image (off-centre crops keep it near).
PRINCIPAL_RANGE_X_SIZE = 10.0
MAX_CAMERA_SIDE = 100_000


def check_camera_info(msg: Any) -> None:
    """Validate a sensor_msgs/CameraInfo before it replaces the last good one.

    An all-zero K (an uncalibrated camera) is accepted: :meth:`FrameProcessor.camera` falls
    back to ``fov_deg`` for it.

    Raises:
        ValueError: width/height out of [0, 100000], K not 9 finite numbers, focal lengths
            outside :data:`FOCAL_RANGE_X_WIDTH` x width (or x height) in pixels, or a
            principal point far outside the image.
    """
    width, height = int(msg.width), int(msg.height)
    if not (0 <= width <= MAX_CAMERA_SIDE and 0 <= height <= MAX_CAMERA_SIDE):
        raise ValueError(f"CameraInfo size {width}x{height} is out of range")
    try:
        k = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"CameraInfo k must hold 9 numbers: {exc}") from exc
    if not np.isfinite(k).all():
        raise ValueError(f"CameraInfo k is not finite: {k.ravel().tolist()}")
    if not k.any():
        return  # uncalibrated
    fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    size = max(width, height, 1)  # a CameraInfo without a size: judge against 1 px
    low, high = FOCAL_RANGE_X_WIDTH[0] * size, FOCAL_RANGE_X_WIDTH[1] * size
    if not (low <= fx <= high and low <= fy <= high):
        raise ValueError(
            f"CameraInfo focal lengths fx={fx:g}, fy={fy:g} px are implausible for a "
            f"{width}x{height} image (expected {low:g}..{high:g})"
        )
    reach = PRINCIPAL_RANGE_X_SIZE * size
    if max(width, height) and not (abs(cx) <= reach and abs(cy) <= reach):
        raise ValueError(f"CameraInfo principal point ({cx:g}, {cy:g}) is far outside the image")


class StartupError(RuntimeError):
    """``s2m_node`` cannot start (bad parameter, missing model, ...); the message says why."""


def build_pipeline(params: Mapping[str, Any]) -> Any:
    """The s2m pipeline configured from node parameters (:data:`s2m_ros.params.PARAMS`),
    models loaded.

    The pipeline parameters are ``PipelineConfig`` fields of the same names; its validator
    checks them.

    Raises:
        StartupError: the pipeline cannot be built (bad setting, missing model file, ...).
    """
    from s2m_model.pipeline import Pipeline, PipelineConfig

    try:
        pipe = Pipeline(PipelineConfig(**pipeline_fields(params)))
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


@dataclass
class Prepared:
    """One input frame between :meth:`FrameProcessor.prepare` and :meth:`FrameProcessor.finish`.

    Attributes:
        kind: ``"image"``, ``"compressed"`` or ``"skeleton"``.
        stamp_ns: the message's stamp. frame_id: the output frame.
        timings: ``{stage: ms}`` so far (decode).
        frame: the pipeline's :class:`~s2m_model.pipeline.DetectedFrame` (image input).
        skeleton: the decoded Skeleton3D (skeleton input).
        image_size: ``(width, height)`` of image input; None for skeletons.
        detect_s: seconds spent in the detector stage (image input).
    """

    kind: str
    stamp_ns: int
    frame_id: str
    timings: dict[str, float]
    frame: Any = None
    skeleton: Any = None
    image_size: tuple[int, int] | None = None
    detect_s: float = 0.0


@dataclass
class FrameOutput:
    """Everything published for one input frame.

    Attributes:
        header: std_msgs/Header (input stamp, output frame).
        results: people found (camera/skeleton frame, metres), sorted by track id.
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
    image_size: tuple[int, int] | None = None  # (width, height) of image input; None: skeleton


class FrameProcessor:
    """Message in -> pipeline -> output messages (shared by ``s2m_node`` and ``s2m eval-bag``).

    Args:
        pipeline: an object with ``process(image, camera, stamp)``,
            ``process_skeleton(joints, fmt, confidence, stamp)`` and ``reset()``; with
            ``detect``/``estimate`` too (:class:`~s2m_model.pipeline.Pipeline`), :meth:`prepare`
            runs the detector and :meth:`finish` the rest, so that the two can overlap in two
            threads.
        params: node parameters (:func:`s2m_ros.params.check_params`); read on every frame, so
            run-time changes apply to the next frame.
        body: the pipeline's body model (faces, name); default ``pipeline.body``.
    """

    def __init__(self, pipeline: Any, params: Mapping[str, Any], body: Any = None) -> None:
        self.pipeline = pipeline
        self.params = params
        self.body = body if body is not None else getattr(pipeline, "body", None)
        if self.body is None:
            from s2m_model.body import load_body_model

            self.body = load_body_model(params["body"], device=params["device"])
        self.model_name = str(getattr(self.body, "name", params["body"]))
        self.faces = np.asarray(self.body.faces, dtype=np.int64)
        self.num_vertices = int(self.body.num_vertices)
        self.faces_id = convert.faces_id(self.model_name, self.num_vertices, self.faces)
        self.camera_info: Any = None
        self._last_stamp_ns = -1
        self.two_stage = callable(getattr(pipeline, "detect", None)) and callable(
            getattr(pipeline, "estimate", None))  # fmt: skip
        """Whether the pipeline has ``detect``/``estimate`` halves (prepare runs the detector)."""

    def mesh_faces_msg(self, stamp: Any = None) -> Any:
        """The latched s2m_ros/MeshFaces of the body model."""
        header = convert.make_header(stamp)
        return convert.mesh_faces_msg(self.faces, self.num_vertices, self.model_name, header)

    def set_camera_info(self, msg: Any) -> None:
        """Use ``msg`` (sensor_msgs/CameraInfo) for the next frames, if it is plausible.

        Raises:
            ValueError: see :func:`check_camera_info`; the last good CameraInfo stays in use.
        """
        check_camera_info(msg)
        self.camera_info = msg

    def camera(self, width: int, height: int) -> Camera:
        """The camera of a ``width`` x ``height`` image: the last CameraInfo (its K rescaled to
        the image size), else a pinhole of ``fov_deg``."""
        if self.camera_info is not None:
            try:
                return Camera.from_camera_info(self.camera_info, width, height)
            except ValueError:
                pass  # an uncalibrated camera publishes K = 0: fall back to the FOV
        return Camera.from_fov(width, height, self.params["fov_deg"])

    def process(self, kind: str, msg: Any) -> FrameOutput:
        """Process one ``"image"``, ``"compressed"`` or ``"skeleton"`` message.

        Raises:
            ValueError: a bad frame (encoding, size, step, data length, NaN skeleton) or
                non-finite results. Pipeline exceptions propagate unchanged.
        """
        return self.finish(self.prepare(kind, msg))

    def prepare(self, kind: str, msg: Any, drain: Callable[[], None] | None = None) -> Prepared:
        """The first half of :meth:`process`: decode the message and, for images, run the
        detector (:meth:`Pipeline.detect <s2m_model.pipeline.Pipeline.detect>`).

        Args:
            kind, msg: as :meth:`process`.
            drain: called before the pipeline is reset (a stamp earlier than the last one: a
                looped bag) when :meth:`finish` runs in another thread: it must return once
                every frame prepared before has been finished.

        Raises:
            ValueError: a bad frame; detector exceptions other than ``DetectorError``.
        """
        p = self.params
        t0 = time.perf_counter()
        stamp_ns = convert.stamp_to_ns(msg.header.stamp)
        frame_id = p["camera_frame"] or str(msg.header.frame_id)
        if stamp_ns < self._last_stamp_ns:  # time went backwards (a looped bag)
            if drain is not None:
                drain()
            self.pipeline.reset()  # forget the tracks
        self._last_stamp_ns = stamp_ns
        prepared = Prepared(kind, stamp_ns, frame_id, {})
        if kind == "skeleton":
            if not msg.format:
                msg.format = p["skeleton_format"]
            skel = convert.skeleton_msg_to_numpy(msg)
            if not np.any(skel.confidences > 0):
                raise ValueError("skeleton has no valid joint (all NaN or confidence 0)")
            prepared.skeleton = skel
            prepared.timings["decode"] = (time.perf_counter() - t0) * 1e3
            return prepared
        if kind == "compressed":
            rgb = convert.compressed_image_to_numpy(msg)
        else:
            rgb = convert.image_to_numpy(msg)
        prepared.timings["decode"] = (time.perf_counter() - t0) * 1e3
        prepared.image_size = (int(rgb.shape[1]), int(rgb.shape[0]))
        t1 = time.perf_counter()
        camera = self.camera(rgb.shape[1], rgb.shape[0])
        if self.two_stage:
            prepared.frame = self.pipeline.detect(rgb, camera=camera, stamp=stamp_ns * 1e-9)
        else:  # a pipeline with process() only: all of it runs in finish()
            prepared.frame = (rgb, camera)
        prepared.detect_s = time.perf_counter() - t1
        return prepared

    def finish(self, prepared: Prepared) -> FrameOutput:
        """The second half of :meth:`process`: the bodies and the messages to publish.

        Raises:
            ValueError: non-finite results. Pipeline exceptions propagate unchanged.
        """
        timings = dict(prepared.timings)
        t1 = time.perf_counter()
        if prepared.skeleton is not None:
            skel = prepared.skeleton
            positions = np.where(skel.confidences[:, None] > 0, skel.positions, np.nan)
            results = self._process_skeleton(skel, positions, prepared.stamp_ns)
        elif self.two_stage:
            results = list(self.pipeline.estimate(prepared.frame))
        else:
            rgb, camera = prepared.frame
            results = list(self.pipeline.process(rgb, camera=camera,
                                                 stamp=prepared.stamp_ns * 1e-9))  # fmt: skip
        t2 = time.perf_counter()
        stages = results[0].timings_ms if results else getattr(self.pipeline, "last_timings", {})
        timings.update({k: float(v) for k, v in stages.items() if k != "total"})
        # detection + estimation, without the wait between them when pipelined
        timings["pipeline"] = (prepared.detect_s + t2 - t1) * 1e3
        out = self._messages(results, prepared.stamp_ns, prepared.frame_id)
        out.image_size = prepared.image_size
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
