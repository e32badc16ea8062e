"""``s2m_node``: camera images or 3D skeletons in, SMPL-layout bodies out (see config/live.yaml).

A thin node: parameters come from :mod:`s2m_ros.params`, each frame goes through
:class:`s2m_ros.processor.FrameProcessor` (messages -> s2m pipeline -> messages), statistics
through :mod:`s2m_ros.diagnostics`; this module only wires topics, the worker thread and the
parameter callbacks.

Inputs (``input_mode``):

* ``image``: sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8, mono8) on ``image_topic`` or
  sensor_msgs/CompressedImage on ``<image_topic>/compressed`` (``compressed: true``), with the
  sensor-data QoS; optional sensor_msgs/CameraInfo on ``camera_info_topic`` (K -> intrinsics,
  else a pinhole camera of ``fov_deg``);
* ``skeleton``: s2m_ros/Skeleton3D on ``skeleton_topic`` (any registered joint format).

Subscription callbacks only store the newest frame (:class:`s2m_ros.frame_queue.FrameQueue`;
a frame replaced before it was processed counts as dropped); one worker thread processes
frames, at most ``max_rate_hz`` per second. The pipeline is warmed up before the subscriptions
exist.

Outputs, all stamped with the input's stamp, frame = the input's frame (camera optical frame:
x right, y down, z forward; or ``camera_frame``): ``bodies`` (s2m_ros/BodyArray, one per
processed frame, empty when nobody is seen), ``mesh`` (s2m_ros/BodyMesh) with ``mesh_faces``
(s2m_ros/MeshFaces, latched), ``markers`` (visualization_msgs/MarkerArray TRIANGLE_LIST meshes,
at most ``marker_rate_hz``, only while subscribed), per-joint TF on ``/tf`` and
diagnostic_msgs/DiagnosticArray on ``/diagnostics`` at 1 Hz (rates, per-stage latency, drops,
errors and the last error text). With ``hri: true``, also the ROS4HRI (REP-155) body topics
``/humans/bodies/...`` and TF ``body_<id>`` (:mod:`s2m_ros.hri_publisher`).

Bad frames (unsupported encoding, zero size, wrong step, truncated data, all-NaN skeletons) and
pipeline exceptions never stop the node: they are counted, reported in the diagnostics and the
next frame is processed. Parameters are validated at start-up (an invalid value exits with
status 2 and the reason) and at run time (rejected with the reason).
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

from s2m_ros import convert
from s2m_ros.diagnostics import NodeStats, diagnostic_status
from s2m_ros.frame_queue import FrameQueue
from s2m_ros.markers import serialized_mesh_markers
from s2m_ros.params import NODE_NAME, PARAM_SPECS, PARAMS, check_param, check_params, descriptor
from s2m_ros.processor import FrameOutput, FrameProcessor, StartupError, build_pipeline, warm_up

if TYPE_CHECKING:
    from s2m_ros.hri_publisher import HriPublisher

TF_TOPIC = "/tf"
DIAGNOSTICS_TOPIC = "/diagnostics"
DIAGNOSTICS_PERIOD_S = 1.0


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
            try:
                param = self.declare_parameter(spec.name, spec.default, descriptor(spec))
            except ParameterException as exc:
                raise StartupError(f"invalid parameter {spec.name}: {exc}") from exc
            values[spec.name] = param.value
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
        self._create_publishers(p)
        self._create_subscriptions(p)
        self.create_timer(DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)
        # pipelined: this thread decodes and detects, a second one estimates and publishes
        self._pipelined = bool(p["pipelined"]) and p["input_mode"] != "skeleton" \
            and self.processor.two_stage
        self._handoff = FrameQueue(p["input_queue_size"])  # the same depth between the stages
        self._in_stage2 = 0  # frames handed to the second stage and not yet finished/replaced
        self._stage2_done = threading.Condition()
        self._workers = [threading.Thread(target=self._work, name="s2m_worker", daemon=True)]
        if self._pipelined:
            self._workers.append(threading.Thread(target=self._work_finish, name="s2m_estimate",
                                                  daemon=True))  # fmt: skip
        for worker in self._workers:
            worker.start()
        self.get_logger().info(
            f"{p['input_mode']} mode: {self.input_topic} -> {self.pub_bodies.topic_name} "
            f"(body model {self.processor.model_name}, "
            f"{self.processor.num_vertices} vertices)"
        )

    def _create_publishers(self, p: dict[str, Any]) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from tf2_msgs.msg import TFMessage
        from visualization_msgs.msg import MarkerArray

        from s2m_ros.msg import BodyArray, BodyMesh, MeshFaces

        out_qos = QoSProfile(depth=p["output_queue_size"])
        latched = QoSProfile(
            depth=1,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        self.pub_bodies = self.create_publisher(BodyArray, p["bodies_topic"], out_qos)
        self.pub_mesh = self.create_publisher(BodyMesh, p["mesh_topic"], out_qos)
        self.pub_faces = self.create_publisher(MeshFaces, p["faces_topic"], latched)
        self.pub_markers = self.create_publisher(MarkerArray, p["markers_topic"], out_qos)
        self.pub_tf = self.create_publisher(TFMessage, TF_TOPIC, QoSProfile(depth=100))
        self.pub_diag = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)
        self.pub_faces.publish(self.processor.mesh_faces_msg(self.get_clock().now()))
        self.hri: HriPublisher | None = None
        if p["hri"]:  # ROS4HRI bodies (s2m_ros.hri_publisher); hri_msgs needed only then
            from s2m_ros.hri_publisher import HriPublisher

            self.hri = HriPublisher(self, p["output_queue_size"])

    def _create_subscriptions(self, p: dict[str, Any]) -> None:
        in_qos = QoSProfile(
            depth=max(5, p["input_queue_size"]),
            reliability=qos_profile_sensor_data.reliability,
            durability=qos_profile_sensor_data.durability,
        )
        if p["input_mode"] == "skeleton":
            from s2m_ros.msg import Skeleton3D

            sub = self.create_subscription(
                Skeleton3D, p["skeleton_topic"], self._receiver("skeleton"), in_qos
            )
        else:
            from sensor_msgs.msg import CameraInfo, CompressedImage, Image

            topic = p["image_topic"]
            if p["compressed"]:
                topic = topic if topic.endswith("/compressed") else topic + "/compressed"
                sub = self.create_subscription(
                    CompressedImage, topic, self._receiver("compressed"), in_qos
                )
            else:
                sub = self.create_subscription(Image, topic, self._receiver("image"), in_qos)
            if p["camera_info_topic"]:
                self.create_subscription(
                    CameraInfo, p["camera_info_topic"], self._on_camera_info, in_qos
                )
        self.input_topic: str = sub.topic_name  # fully qualified (namespace applied)

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
        try:
            self.processor.set_camera_info(msg)
        except ValueError as exc:  # keep the last good one; a bad K must not fail every frame
            self.stats.reject("camera_info", exc)
            self.get_logger().warning(f"CameraInfo rejected: {exc}", throttle_duration_sec=5.0)

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
            kind, msg, received = item
            try:
                prepared = self.processor.prepare(kind, msg, drain=self._drain
                                                  if self._pipelined else None)  # fmt: skip
            except Exception as exc:  # a bad frame must not stop the node
                self._failed(exc)
                continue
            if not self._pipelined:
                self._finish(prepared, received)
                continue
            with self._stage2_done:
                self._in_stage2 += 1
            if self._handoff.put((prepared, received)):
                self.stats.drop()  # the second stage was still busy with an older frame
                self._stage2_left()

    def _work_finish(self) -> None:
        """The second stage of a pipelined node: bodies, messages, publishing."""
        while not self._stop.is_set():
            item = self._handoff.get(timeout=0.1)
            if item is not None:
                try:
                    self._finish(*item)
                finally:
                    self._stage2_left()

    def _stage2_left(self) -> None:
        """A frame left the second stage (finished, failed or replaced)."""
        with self._stage2_done:
            self._in_stage2 -= 1
            self._stage2_done.notify_all()

    def _drain(self) -> None:
        """Wait until the second stage has finished every frame handed to it (the pipeline is
        about to be reset); gives up after 10 s or at shutdown."""
        with self._stage2_done:
            self._stage2_done.wait_for(lambda: self._in_stage2 <= 0 or self._stop.is_set(),
                                       timeout=10.0)  # fmt: skip

    def _failed(self, exc: Exception) -> None:
        if self._stop.is_set() or not self.context.ok():
            return  # shutting down (Ctrl-C, SIGTERM): publishers may already be gone
        self.stats.fail(exc)
        self.get_logger().warning(
            f"frame failed: {type(exc).__name__}: {exc}", throttle_duration_sec=5.0
        )

    def _finish(self, prepared: Any, received: float) -> None:
        try:
            out = self.processor.finish(prepared)
            t0 = time.perf_counter()
            self._publish(out)
            out.timings_ms["publish"] = (time.perf_counter() - t0) * 1e3
        except Exception as exc:  # a bad frame or a pipeline bug must not stop the node
            self._failed(exc)
            return
        out.timings_ms["total"] = (time.perf_counter() - received) * 1e3
        age_ns = self.get_clock().now().nanoseconds - convert.stamp_to_ns(out.header.stamp)
        out.timings_ms["age"] = age_ns * 1e-6
        for warning in out.warnings:
            if warning not in self._warned:
                self._warned.add(warning)
                self.get_logger().warning(warning)
        # the pipeline's cumulative counters (fit not converged, detector failures, ...)
        self.stats.done(out.timings_ms, len(out.results), getattr(self.pipeline, "counters", None))

    def _publish(self, out: FrameOutput) -> None:
        p = self.params
        self.pub_bodies.publish(out.bodies)
        if out.mesh is not None and p["publish_mesh"]:
            self.pub_mesh.publish(out.mesh)
        if out.tf is not None and p["publish_tf"]:
            self.pub_tf.publish(out.tf)
        if self.hri is not None:
            body_tfs = self.hri.publish(out.results, out.header, out.image_size)
            if body_tfs and p["publish_tf"]:
                from tf2_msgs.msg import TFMessage

                self.pub_tf.publish(TFMessage(transforms=body_tfs))
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
                # CDR bytes: the message path costs ~0.3-0.6 s per body (s2m_ros.markers)
                self.pub_markers.publish(
                    serialized_mesh_markers(out.vertices, self.processor.faces, out.header, ids)
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
        return len(self._queue) == 0 and len(self._handoff) == 0 and self.stats.idle()

    def close(self) -> None:
        """Stop the worker (idempotent); call before ``destroy_node``."""
        self._stop.set()
        self._queue.close()
        self._handoff.close()
        for worker in self._workers:
            if worker.is_alive() and worker is not threading.current_thread():
                worker.join(timeout=10.0)
        if getattr(self, "hri", None) is not None:
            self.hri.close()


def main(args: list[str] | None = None) -> int:
    """Entry point of ``s2m_node`` (ROS arguments: ``--ros-args --params-file live.yaml``)."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    from s2m_model.pipeline import DEFAULT_THREADS, set_torch_threads

    try:
        rclpy.init(args=args)
    except Exception as exc:  # rcl's RCLError: e.g. unparsable --ros-args
        print(f"{NODE_NAME}: cannot start: {exc}", file=sys.stderr)
        return 2
    set_torch_threads(DEFAULT_THREADS)  # a program's choice (tiny per-frame tensors)
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
