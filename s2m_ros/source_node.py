"""``s2m_file_source``: play a video file or a bag's image topic as a live camera.

Publishes sensor_msgs/Image (``rgb8``) on ``topic`` with strictly increasing stamps (the node
clock at publication, so downstream latency and TF lookups behave as with a live camera), at
the recorded rate times ``rate``, or as fast as possible with ``rate: 0``.

Parameters (see config/live.yaml, section ``s2m_file_source``):
    path (str): a video file (anything ffmpeg reads) or a rosbag2 folder (MCAP or SQLite3).
    bag_topic (str): image topic in the bag (sensor_msgs/Image or CompressedImage);
        '' = the first image topic found.
    topic (str): output topic, default ``image_raw``.
    frame_id (str): frame of the images (camera optical frame: x right, y down, z forward);
        bag images keep their recorded frame_id unless it is empty.
    rate (float): playback speed factor of the recorded timing; 0 = as fast as possible.
    loop (bool): start again at the end instead of exiting.
    max_frames (int): stop after this many frames per pass (0 = all).
    wait_for_subscribers (int): wait until this many subscribers match before the first frame.
    qos_depth (int): publisher queue depth (RELIABLE).

Exits with status 0 when playback ends (``loop: false``), so a launch file can react to it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")


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


def main(args: list[str] | None = None) -> int:
    """Entry point of ``s2m_file_source`` (ROS arguments: ``--ros-args -p path:=...``)."""
    import rclpy
    from rclpy.duration import Duration
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from s2m_ros.convert import numpy_to_image

    rclpy.init(args=args)
    node = Node("s2m_file_source")
    p = {
        "path": node.declare_parameter("path", "").value,
        "bag_topic": node.declare_parameter("bag_topic", "").value,
        "topic": node.declare_parameter("topic", "image_raw").value,
        "frame_id": node.declare_parameter("frame_id", "camera_optical_frame").value,
        "rate": float(node.declare_parameter("rate", 1.0).value),
        "loop": bool(node.declare_parameter("loop", False).value),
        "max_frames": int(node.declare_parameter("max_frames", 0).value),
        "wait_for_subscribers": int(node.declare_parameter("wait_for_subscribers", 0).value),
        "qos_depth": int(node.declare_parameter("qos_depth", 5).value),
    }
    logger = node.get_logger()
    path = Path(p["path"]).expanduser()
    problem = None
    if not p["path"] or not path.exists():
        problem = f"parameter 'path' must name a video file or a bag folder, got {p['path']!r}"
    elif p["rate"] < 0:
        problem = f"parameter 'rate' must be >= 0, got {p['rate']}"
    if problem:
        logger.error(problem)
        node.destroy_node()
        rclpy.try_shutdown()
        return 2
    pub = node.create_publisher(
        Image,
        p["topic"],
        QoSProfile(depth=max(1, p["qos_depth"]), reliability=ReliabilityPolicy.RELIABLE),
    )
    executor = SingleThreadedExecutor()
    executor.add_node(node)

    def wait(seconds: float) -> None:
        # waiting is spinning, so parameter services answer while the playback loop owns timing
        deadline = time.monotonic() + seconds
        executor.spin_once(timeout_sec=0.0)
        while (remaining := deadline - time.monotonic()) > 0 and rclpy.ok():
            executor.spin_once(timeout_sec=min(remaining, 0.1))

    def frames() -> Iterator[tuple[int, Any]]:
        if path.is_dir():
            return iter_bag_images(path, p["bag_topic"])
        return iter_video(path)

    published, last_stamp = 0, -1
    try:
        while rclpy.ok() and pub.get_subscription_count() < p["wait_for_subscribers"]:
            wait(0.01)
        while rclpy.ok():
            t0 = None  # the clock starts at the first frame (opening a video takes a while)
            before = published
            for i, (t_ns, frame) in enumerate(frames()):
                if p["max_frames"] and i >= p["max_frames"]:
                    break
                if p["rate"] > 0:
                    t0 = time.monotonic() - t_ns / 1e9 / p["rate"] if t0 is None else t0
                    wait(t0 + t_ns / 1e9 / p["rate"] - time.monotonic())
                else:
                    wait(0.0)
                stamp = max(node.get_clock().now().nanoseconds, last_stamp + 1)
                last_stamp = stamp
                if isinstance(frame, np.ndarray):
                    msg = numpy_to_image(frame, "rgb8", stamp, p["frame_id"])
                else:
                    msg = frame
                    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
                    msg.header.frame_id = msg.header.frame_id or p["frame_id"]
                if not rclpy.ok():
                    break
                pub.publish(msg)
                published += 1
            if published == before and rclpy.ok():
                raise ValueError("no frames")
            if not p["loop"]:
                break
        logger.info(f"published {published} frames from {path}")
        # let reliable readers take the last frames before the publisher goes away
        deadline = time.monotonic() + 2.0
        while pub.get_subscription_count() and time.monotonic() < deadline:
            if pub.wait_for_all_acked(Duration(seconds=0.1)):
                break
        return 0
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    except (ValueError, OSError) as exc:
        logger.error(f"cannot play {path}: {exc}")
        return 2
    finally:
        executor.remove_node(node)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
