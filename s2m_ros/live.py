"""``s2m live``: ``s2m_node`` (and a video/bag player) in one process, without ``ros2 launch``.

The pip-only equivalent of ``ros2 launch s2m_ros live.launch.py``: the same params file
(config/live.yaml, sections ``/**/s2m_node`` and ``/**/s2m_file_source``), the same node in the
same namespace (``/s2m`` by default, like the launch file: outputs ``/s2m/bodies``,
``/s2m/mesh``, ``/s2m/mesh_faces``, ``/s2m/markers``, plus ``/tf`` and ``/diagnostics``), spun
by one ``MultiThreadedExecutor``. With ``--video`` the file player of :mod:`s2m_ros.player`
publishes the video (or a bag's image topic) on s2m_node's image topic; without it, s2m_node
listens to a camera driver started elsewhere.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from s2m_ros.params import DEFAULT_NAMESPACE, NODE_NAME, load_params_file
from s2m_ros.player import PLAYER_NAME, FilePlayer

# Large camera images over FastDDS shared memory with best-effort readers need a bigger segment
# than the default 512 kB (ros2/rmw_fastrtps#739); see the comment in the file.
FASTDDS_PROFILE = "fastdds_large_data.xml"
FASTDDS_PROFILE_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"
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


class _PlayerThread:
    """A :class:`FilePlayer` on its own node, playing from a thread until ``stop``."""

    def __init__(self, overrides: Mapping[str, Any], context: Any) -> None:
        import rclpy
        from rclpy.parameter import Parameter

        node = rclpy.create_node(
            PLAYER_NAME,
            context=context,
            parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()],
        )
        try:
            self.player = FilePlayer(node)
        except (ValueError, FileNotFoundError):
            node.destroy_node()
            raise
        self.node = node
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="s2m_player", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.player.play(self.stop.wait)
        except Exception as exc:  # reported by run_live, the process keeps its clean exit
            self.error = exc
        finally:
            self.done.set()

    def join(self) -> None:
        self.stop.set()
        self._thread.join(timeout=5.0)


def run_live(
    params_file: str | Path,
    video: str | None = None,
    rate: float | None = None,
    duration: float = 0.0,
    overrides: Mapping[str, Any] | None = None,
    namespace: str = DEFAULT_NAMESPACE,
) -> dict[str, Any]:
    """Run s2m_node (+ a file player with ``video``) until Ctrl-C/SIGTERM, ``duration``
    seconds, or the end of a non-looping video.

    Args:
        params_file: ROS 2 params file with ``/**/s2m_node`` (and ``/**/s2m_file_source``)
            sections; a file that does not address s2m_node in ``namespace`` is an error.
        video: video file or bag folder to play (None: listen to an external camera).
        rate: playback speed factor for ``video`` (None: the params file's ``rate``).
        duration: stop after this many seconds (0 = no limit).
        overrides: s2m_node parameter values that win over the params file.
        namespace: s2m_node's namespace ('' or '/' = the root namespace).

    Returns:
        Summary: frames in / processed / dropped / failed, people, frames published by the
        player, median and p95 latency (ms) of the last seconds, the last error, the
        fully qualified input and bodies topics.

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
    from s2m_ros.node import S2MNode
    from s2m_ros.processor import StartupError

    if video is not None and not Path(video).exists():
        raise FileNotFoundError(f"no video file or bag folder at {video}")
    if rate is not None and rate < 0:
        raise ValueError(f"--rate must be >= 0, got {rate}")
    if duration < 0:
        raise ValueError(f"--duration must be >= 0, got {duration}")
    use_large_data_profile()  # before this process's first DDS participant
    # a clear error before the node starts: a file ROS would ignore, or a bad value
    load_params_file(params_file, NODE_NAME, namespace)
    overrides = dict(overrides or {})
    if video is not None:
        overrides["input_mode"] = "image"
    context = rclpy.Context()
    rclpy.init(
        args=["s2m", "--ros-args", "--params-file", str(params_file)],
        context=context,
        # Ctrl-C and SIGTERM only raise a flag the loop reads (_StopOnSignal): rclpy's handlers
        # raise KeyboardInterrupt wherever the main thread is, and one raised inside the
        # executor's thread-pool locks left them held: shutdown() then hung for good.
        signal_handler_options=SignalHandlerOptions.NO,
    )
    stop = _StopOnSignal()
    node = player = None
    executor = MultiThreadedExecutor(context=context)
    try:
        try:
            node = S2MNode(
                context=context,
                namespace=namespace or "/",
                parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()],
            )
        except StartupError as exc:
            raise RuntimeError(f"s2m_node cannot start: {exc}") from exc
        executor.add_node(node)
        if video is not None:
            if node.params["compressed"]:
                raise ValueError("--video publishes raw images: set compressed: false")
            play: dict[str, Any] = {"path": str(video), "topic": node.input_topic}
            if rate is not None:
                play["rate"] = float(rate)
            player = _PlayerThread(play, context)
            executor.add_node(player.node)
        deadline = time.monotonic() + duration if duration > 0 else None
        drain_until = None
        while context.ok() and not stop.requested:
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
        stop.restore()
        if player is not None:
            player.join()
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


class _StopOnSignal:
    """While alive, SIGINT and SIGTERM (main thread only) set :attr:`requested` instead of
    raising; :meth:`restore` puts the previous handlers back. A plain attribute, no lock: the
    handler may run while the main thread holds any lock."""

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self) -> None:
        import signal

        self.requested = False
        self._previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                number = getattr(signal, name)
                self._previous[number] = signal.signal(number, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True

    def restore(self) -> None:
        import signal

        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}


def _summary(node: Any, player: _PlayerThread | None) -> dict[str, Any]:
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
        "published_by_player": player.player.published if player else None,
        "latency_total_ms": {k: total[k] for k in ("median", "p95") if k in total},
        "last_error": snap["last_error"],
        "input_topic": node.input_topic,
        "bodies_topic": node.pub_bodies.topic_name,
    }
