"""The file player: a video file or a bag's image topic published as a live camera.

One :class:`FilePlayer` serves both the ``s2m_file_source`` node (:mod:`s2m_ros.source_node`,
its own process, e.g. from the launch file) and ``s2m live --video`` (a thread next to
s2m_node), with one set of parameters and defaults (:data:`PLAYER_PARAMS`).

Publishes sensor_msgs/Image (``rgb8``) with strictly increasing stamps (the node clock at
publication, so downstream latency and TF lookups behave as with a live camera), at the
recorded rate times ``rate``, or as fast as possible with ``rate: 0``. Frame: the camera
optical frame ``frame_id`` (x right, y down, z forward); bag images keep their recorded
frame_id unless it is empty.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

PLAYER_NAME = "s2m_file_source"
#: Parameters of the player (config/live.yaml, section ``/**/s2m_file_source``) and defaults.
PLAYER_PARAMS: dict[str, bool | int | float | str] = {
    "path": "",  # a video file (anything ffmpeg reads) or a rosbag2 folder (MCAP or SQLite3)
    "bag_topic": "",  # image topic in the bag (Image or CompressedImage); '' = the first one
    "topic": "image_raw",  # output topic
    "frame_id": "camera_optical_frame",
    "rate": 1.0,  # playback speed factor of the recorded timing; 0 = as fast as possible
    "loop": False,  # start again at the end instead of finishing
    "max_frames": 0,  # stop after this many frames per pass (0 = all)
    "wait_for_subscribers": 1,  # wait until this many subscribers match before the first frame
    "qos_depth": 5,  # publisher queue depth (RELIABLE)
}
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
# The writer sees the reader before the reader has matched the writer: a best-effort reader
# would miss the first frame without this pause.
SUBSCRIBER_SETTLE_S = 0.5

Sleep = Callable[[float], bool]
"""Waits ``seconds`` (0: just yields); returns True when playback must stop."""


def iter_video(path: Path) -> Iterator[tuple[int, np.ndarray]]:
    """``(time_ns from start, (H, W, 3) uint8 RGB)`` for each frame of a video file."""
    import imageio.v3 as iio

    fps = float(iio.immeta(path, plugin="FFMPEG").get("fps") or 0.0)
    if not fps > 0:
        raise ValueError(f"{path}: unknown frame rate")
    for i, frame in enumerate(iio.imiter(path, plugin="FFMPEG")):
        yield round(i * 1e9 / fps), np.asarray(frame)[:, :, :3]


def iter_bag_images(path: Path, topic: str = "") -> Iterator[tuple[int, Any]]:
    """``(log time ns from the first frame, rclpy Image)`` of a bag's image topic.

    CompressedImage topics are decoded to ``rgb8`` images.

    Raises:
        ValueError: the bag has no image topic, or ``topic`` is not one.
    """
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import CompressedImage, Image

    from s2m_ros.bag import bag_topics, read_bag
    from s2m_ros.convert import compressed_image_to_numpy, numpy_to_image

    topics = bag_topics(path)
    if not topic:
        images = [t for t, kind in topics.items() if kind in IMAGE_TYPES]
        if not images:
            raise ValueError(f"{path}: no image topic (types {sorted(set(topics.values()))})")
        topic = images[0]
    if topics.get(topic) not in IMAGE_TYPES:
        raise ValueError(f"{path}: topic {topic!r} is not an image topic ({topics.get(topic)})")
    compressed = topics[topic] == IMAGE_TYPES[1]
    start = None
    for m in read_bag(path, topics=[topic], raw=True):
        start = m.timestamp_ns if start is None else start
        if compressed:
            c = deserialize_message(m.msg, CompressedImage)
            img = numpy_to_image(compressed_image_to_numpy(c), "rgb8", c.header.stamp)
            img.header.frame_id = c.header.frame_id
        else:
            img = deserialize_message(m.msg, Image)
        yield m.timestamp_ns - start, img


class FilePlayer:
    """Plays ``path`` on ``topic`` from an rclpy node (see the module docstring).

    The player declares :data:`PLAYER_PARAMS` on ``node``; values come from the node's
    parameter overrides and params files, as for any node.

    Args:
        node: the rclpy node to publish from (spun by the caller, or by ``sleep``).

    Raises:
        FileNotFoundError: ``path`` is not an existing file or folder.
        ValueError: another bad parameter value.
    """

    def __init__(self, node: Any) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from s2m_ros.convert import numpy_to_image

        # imported now: a first import while playing (torch, via the SMPL layout) would delay
        # the first frames by a second and break the pacing
        self._to_image = numpy_to_image
        self.node = node
        p = {k: node.declare_parameter(k, v).value for k, v in PLAYER_PARAMS.items()}
        p["rate"] = float(p["rate"])
        self.params = p
        self.path = Path(str(p["path"])).expanduser()
        if not p["path"] or not self.path.exists():
            raise FileNotFoundError(
                f"parameter 'path' must name a video file or a bag folder, got {p['path']!r}"
            )
        for name, low in (("rate", 0), ("max_frames", 0), ("wait_for_subscribers", 0),
                          ("qos_depth", 1)):  # fmt: skip
            if p[name] < low:
                raise ValueError(f"parameter {name!r} must be >= {low}, got {p[name]}")
        qos = QoSProfile(depth=p["qos_depth"], reliability=ReliabilityPolicy.RELIABLE)
        self.pub = node.create_publisher(Image, p["topic"], qos)
        self.published = 0
        self._last_stamp = -1

    def frames(self) -> Iterator[tuple[int, Any]]:
        """``(time ns from the first frame, RGB array or Image)`` of one pass over the file."""
        if self.path.is_dir():
            return iter_bag_images(self.path, self.params["bag_topic"])
        return iter_video(self.path)

    def play(self, sleep: Sleep) -> int:
        """Publish until the end (``loop`` false) or until ``sleep`` says stop.

        Returns:
            Frames published in this call.

        Raises:
            ValueError / OSError: the file cannot be read or has no frames.
        """
        p = self.params
        before = self.published
        while self.pub.get_subscription_count() < p["wait_for_subscribers"]:
            if sleep(0.01):
                return 0
        if p["wait_for_subscribers"] and sleep(SUBSCRIBER_SETTLE_S):
            return 0
        while True:
            pass_start = self.published
            t0 = None  # the clock starts at the first frame (opening a video takes a while)
            for i, (t_ns, frame) in enumerate(self.frames()):
                if p["max_frames"] and i >= p["max_frames"]:
                    break
                delay = 0.0
                if p["rate"] > 0:
                    t0 = time.monotonic() - t_ns * 1e-9 / p["rate"] if t0 is None else t0
                    delay = t0 + t_ns * 1e-9 / p["rate"] - time.monotonic()
                if sleep(max(delay, 0.0)):
                    return self.published - before
                self.pub.publish(self._message(frame))
                self.published += 1
            if self.published == pass_start:
                raise ValueError(f"{self.path}: no frames")
            if not p["loop"]:
                return self.published - before

    def _message(self, frame: Any) -> Any:
        stamp = max(self.node.get_clock().now().nanoseconds, self._last_stamp + 1)
        self._last_stamp = stamp
        if isinstance(frame, np.ndarray):
            return self._to_image(frame, "rgb8", stamp, self.params["frame_id"])
        frame.header.stamp.sec, frame.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        frame.header.frame_id = frame.header.frame_id or self.params["frame_id"]
        return frame

    def flush(self, timeout_s: float = 2.0) -> None:
        """Let reliable readers take the last frames before the publisher goes away."""
        from rclpy.duration import Duration

        deadline = time.monotonic() + timeout_s
        while self.pub.get_subscription_count() and time.monotonic() < deadline:
            if self.pub.wait_for_all_acked(Duration(seconds=0.1)):
                break
