"""``s2m live``: ``s2m_node`` (and a video/bag player) in one process, without ``ros2 launch``.

The pip-only equivalent of ``ros2 launch s2m_ros live.launch.py``: the same params file
(config/live.yaml, sections ``s2m_node`` and ``s2m_file_source``), the same node, spun by one
``MultiThreadedExecutor``. With ``--video`` a file player publishes the video (or a bag's image
topic) on s2m_node's image topic; without it, s2m_node listens to a camera driver started
elsewhere. Outputs as the launch file, without its namespace: ``bodies``, ``mesh``,
``mesh_faces``, ``markers``, ``/tf``, ``/diagnostics``.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# s2m_file_source parameters and their defaults for live use (config/live.yaml overrides them).
PLAYER_DEFAULTS: dict[str, Any] = {
    "path": "",
    "bag_topic": "",
    "topic": "/camera/image_raw",
    "frame_id": "camera_optical_frame",
    "rate": 1.0,
    "loop": True,
    "max_frames": 0,
    "wait_for_subscribers": 1,
    "qos_depth": 5,
}
PLAYER_NAME = "s2m_file_source"
# Large camera images over FastDDS shared memory with best-effort readers need a bigger segment
# than the default 512 kB (ros2/rmw_fastrtps#739); see the comment in the file.
FASTDDS_PROFILE = "fastdds_large_data.xml"
FASTDDS_PROFILE_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"
SUBSCRIBER_SETTLE_S = 0.5
# After the player's last frame, s2m_node gets this long to finish the frames in flight.
DRAIN_TIMEOUT_S = 10.0


def config_file(name: str) -> Path | None:
    """``config/<name>`` of the source tree, else of the installed share folder, else None."""
    for folder in (
        Path(__file__).resolve().parents[1] / "config",
        Path(sys.prefix) / "share" / "s2m_ros" / "config",
    ):
        if (folder / name).is_file():
            return folder / name
    return None


def use_large_data_profile() -> str | None:
    """Point FastDDS at config/fastdds_large_data.xml unless the user chose a profile.

    Must run before the process creates its first DDS participant. Returns the profile used.
    """
    import os

    if os.environ.get(FASTDDS_PROFILE_ENV):
        return os.environ[FASTDDS_PROFILE_ENV]
    path = config_file(FASTDDS_PROFILE)
    if path is not None:
        os.environ[FASTDDS_PROFILE_ENV] = str(path)
    return None if path is None else str(path)


def default_params_file() -> Path:
    """config/live.yaml of the source tree, else of the installed share folder.

    Raises:
        FileNotFoundError: neither exists.
    """
    path = config_file("live.yaml")
    if path is None:
        raise FileNotFoundError("no config/live.yaml in the source tree or share folder: --params")
    return path


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["max_rate_hz=5", "publish_tf=false"]`` -> checked s2m_node parameter values.

    Values are YAML scalars; integers are accepted for float parameters.

    Raises:
        ValueError: no ``=``, an unknown parameter, or an invalid value.
    """
    import yaml

    from s2m_ros.node import PARAM_SPECS, check_param

    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects NAME=VALUE, got {item!r}")
        value = yaml.safe_load(text) if text else ""
        spec = PARAM_SPECS.get(name)
        if spec is not None and isinstance(spec.default, str) and not isinstance(value, str):
            value = text  # e.g. a frame id that looks like a number
        problem = check_param(name, value)
        if problem:
            raise ValueError(problem)
        out[name] = float(value) if isinstance(spec.default, float) else value
    return out


class FilePlayer:
    """Plays a video file or a bag's image topic as sensor_msgs/Image (``rgb8``), like
    ``s2m_file_source``, from a thread of this process.

    Stamps are the node clock at publication (strictly increasing); pacing follows the
    recording times ``rate``, or as fast as possible with ``rate`` 0.

    Args:
        overrides: parameter values that win over the params file (e.g. ``path``, ``rate``).
        context: rclpy context.

    Raises:
        ValueError / FileNotFoundError: a bad parameter or a missing file.
    """

    def __init__(self, overrides: Mapping[str, Any], context: Any = None) -> None:
        import rclpy
        from rclpy.parameter import Parameter
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        self.node = rclpy.create_node(
            PLAYER_NAME,
            context=context,
            parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()],
        )
        p = {k: self.node.declare_parameter(k, v).value for k, v in PLAYER_DEFAULTS.items()}
        self.params = p
        self.path = Path(str(p["path"])).expanduser()
        if not p["path"] or not self.path.exists():
            self.node.destroy_node()
            raise FileNotFoundError(f"no video file or bag folder at {p['path']!r}")
        if p["rate"] < 0:
            self.node.destroy_node()
            raise ValueError(f"rate must be >= 0, got {p['rate']}")
        self.pub = self.node.create_publisher(
            Image,
            p["topic"],
            QoSProfile(depth=max(1, p["qos_depth"]), reliability=ReliabilityPolicy.RELIABLE),
        )
        self.published = 0
        self.error: BaseException | None = None
        self.done = threading.Event()

    def _frames(self) -> Iterator[tuple[int, Any]]:
        from s2m_ros.source_node import iter_bag_images, iter_video

        if self.path.is_dir():
            return iter_bag_images(self.path, self.params["bag_topic"])
        return iter_video(self.path)

    def play(self, stop: threading.Event) -> None:
        """Publish until the end (``loop`` false) or ``stop``; errors go to ``self.error``."""
        from s2m_ros.convert import numpy_to_image

        p = self.params
        try:
            while self.pub.get_subscription_count() < p["wait_for_subscribers"]:
                if stop.wait(0.01):
                    return
            # the writer sees the reader before the reader has matched the writer: a
            # best-effort reader would miss the first frame without this pause
            if p["wait_for_subscribers"] and stop.wait(SUBSCRIBER_SETTLE_S):
                return
            last_stamp = -1
            while not stop.is_set():
                before, t0 = self.published, None
                for i, (t_ns, frame) in enumerate(self._frames()):
                    if stop.is_set() or (p["max_frames"] and i >= p["max_frames"]):
                        break
                    if p["rate"] > 0:
                        t0 = time.monotonic() - t_ns * 1e-9 / p["rate"] if t0 is None else t0
                        delay = t0 + t_ns * 1e-9 / p["rate"] - time.monotonic()
                        if delay > 0 and stop.wait(delay):
                            break
                    stamp = max(self.node.get_clock().now().nanoseconds, last_stamp + 1)
                    last_stamp = stamp
                    if isinstance(frame, np.ndarray):
                        msg = numpy_to_image(frame, "rgb8", stamp, p["frame_id"])
                    else:
                        msg = frame
                        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 10**9)
                        msg.header.frame_id = msg.header.frame_id or p["frame_id"]
                    self.pub.publish(msg)
                    self.published += 1
                if self.published == before and not stop.is_set():
                    raise ValueError(f"{self.path}: no frames")
                if not p["loop"]:
                    break
        except Exception as exc:  # reported by the caller, the process keeps its clean exit
            self.error = exc
        finally:
            self.done.set()


def run_live(
    params_file: str | Path,
    video: str | None = None,
    rate: float | None = None,
    duration: float = 0.0,
    overrides: Mapping[str, Any] | None = None,
    ros_args: Sequence[str] = (),
) -> dict[str, Any]:
    """Run s2m_node (+ a file player with ``video``) until Ctrl-C/SIGTERM, ``duration``
    seconds, or the end of a non-looping video.

    Args:
        params_file: ROS 2 params file with ``s2m_node`` (and ``s2m_file_source``) sections.
        video: video file or bag folder to play (None: listen to an external camera).
        rate: playback speed factor for ``video`` (None: the params file's ``rate``).
        duration: stop after this many seconds (0 = no limit).
        overrides: s2m_node parameter values that win over the params file.
        ros_args: extra ROS arguments (e.g. ``["-r", "__ns:=/s2m"]``).

    Returns:
        Summary: frames in / processed / dropped / failed, people, frames published by the
        player, median and p95 latency (ms) of the last seconds, the last error.

    Raises:
        RuntimeError: rclpy is missing or s2m_node cannot start (the reason is included).
        FileNotFoundError / ValueError: bad files or values.
    """
    try:
        import rclpy
        from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
        from rclpy.parameter import Parameter
        from rclpy.signals import SignalHandlerOptions
    except ImportError as exc:
        raise RuntimeError(f"ROS 2 (rclpy) is not installed: {exc}") from exc
    from s2m_ros.node import S2MNode, StartupError, load_params_file

    params_file = Path(params_file)
    if not params_file.is_file():
        raise FileNotFoundError(f"no params file at {params_file}")
    load_params_file(str(params_file))  # a clear error before any ROS start-up
    if video is not None and not Path(video).exists():
        raise FileNotFoundError(f"no video file or bag folder at {video}")
    if rate is not None and rate < 0:
        raise ValueError(f"--rate must be >= 0, got {rate}")
    if duration < 0:
        raise ValueError(f"--duration must be >= 0, got {duration}")
    overrides = dict(overrides or {})
    if video is not None:
        overrides["input_mode"] = "image"
    use_large_data_profile()
    context = rclpy.Context()
    rclpy.init(
        args=["s2m", "--ros-args", "--params-file", str(params_file), *ros_args],
        context=context,
        signal_handler_options=SignalHandlerOptions.ALL,  # Ctrl-C and SIGTERM end cleanly
    )
    node = player = None
    stop = threading.Event()
    thread = None
    executor = MultiThreadedExecutor(context=context)
    try:
        try:
            node = S2MNode(
                context=context,
                parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()],
            )
        except StartupError as exc:
            raise RuntimeError(f"s2m_node cannot start: {exc}") from exc
        executor.add_node(node)
        if video is not None:
            if node.params["compressed"]:
                raise ValueError("--video publishes raw images: set compressed: false")
            play = {"path": str(video), "topic": node.params["image_topic"]}
            if rate is not None:
                play["rate"] = float(rate)
            player = FilePlayer(play, context=context)
            executor.add_node(player.node)
            thread = threading.Thread(target=player.play, args=(stop,), daemon=True)
            thread.start()
        deadline = time.monotonic() + duration if duration > 0 else None
        drain_until = None
        while context.ok():
            executor.spin_once(timeout_sec=0.1)
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            if player is not None and player.done.is_set():
                if player.error is not None:
                    raise ValueError(f"cannot play {video}: {player.error}")
                drain_until = drain_until or now + DRAIN_TIMEOUT_S
                if node.idle() or now >= drain_until:
                    break
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # Ctrl-C / SIGTERM: a clean exit with the summary
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=5.0)
        summary = _summary(node, player)
        if node is not None:
            node.close()
        for n in (player.node if player else None, node):
            if n is not None:
                executor.remove_node(n)
                n.destroy_node()
        executor.shutdown()
        rclpy.try_shutdown(context=context)
    return summary


def _summary(node: Any, player: FilePlayer | None) -> dict[str, Any]:
    if node is None:
        return {}
    snap = node.stats.snapshot()
    total = snap["latency_ms"].get("total", {})
    return {
        "frames_in": snap["frames_in"],
        "processed": snap["processed"],
        "dropped": snap["dropped"],
        "failed": snap["failed"],
        "people": snap["people"],
        "published_by_player": player.published if player else None,
        "latency_total_ms": {k: total[k] for k in ("median", "p95") if k in total},
        "last_error": snap["last_error"],
    }
