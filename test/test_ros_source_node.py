"""s2m_file_source in its own process: plays a video file or a bag's image topic over DDS with
increasing stamps; this process subscribes and checks the frames."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")

import cv2  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

from s2m_ros.bag import BagWriter  # noqa: E402
from s2m_ros.convert import image_to_numpy, make_header, stamp_to_ns  # noqa: E402
from s2m_ros.testing import free_domain_id, ros_env, ros_node, spin_until  # noqa: E402

TIMEOUT_S = 30.0
N = 5


def _frames() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(N, 24, 32, 3), dtype=np.uint8)


def _write_video(path) -> None:
    import imageio.v3 as iio

    # lossless (ffv1, bgr0) so frames can be compared exactly
    iio.imwrite(
        path, _frames(), fps=10, codec="ffv1", plugin="FFMPEG", pixelformat="bgr0",
        macro_block_size=1,
    )  # fmt: skip


def _write_bag(path) -> None:
    with BagWriter(path, storage="sqlite3") as bag:
        for i, rgb in enumerate(_frames()):
            ok, png = cv2.imencode(".png", rgb[:, :, ::-1])
            assert ok
            header = make_header(i, "recorded_cam")
            msg = CompressedImage(header=header, format="png", data=png.tobytes())
            bag.write("/cam/image/compressed", 1_000 + i * 100_000_000, msg)


def _play(tmp_path, source: str, rate: float) -> list[Image]:
    path = tmp_path / ("video.mkv" if source == "video" else "bag")
    (_write_video if source == "video" else _write_bag)(path)
    topic = f"/s2m_test_{os.getpid()}/image"
    domain = free_domain_id()
    child = subprocess.Popen(
        [
            sys.executable, "-m", "s2m_ros.source_node", "--ros-args",
            "-p", f"path:={path}", "-p", f"topic:={topic}", "-p", f"rate:={rate}",
            "-p", "loop:=false", "-p", "wait_for_subscribers:=1", "-p", f"qos_depth:={N}",
        ],
        env=ros_env(domain), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    received: list[Image] = []
    try:
        with ros_node("s2m_test_source_sub", domain) as (node, executor):
            qos = QoSProfile(depth=N, reliability=ReliabilityPolicy.RELIABLE)
            node.create_subscription(Image, topic, received.append, qos)
            done = spin_until(
                executor, lambda: len(received) >= N or child.poll() is not None, TIMEOUT_S
            )
            spin_until(executor, lambda: len(received) >= N, 2.0)  # frames still in flight
            assert done, "no frames before the timeout"
        out, err = child.communicate(timeout=TIMEOUT_S)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err[-2000:]
    assert f"published {N} frames" in out + err, (out + err)[-2000:]
    return received


def test_video_file_source(tmp_path):
    received = _play(tmp_path, "video", rate=2.0)
    assert len(received) == N
    stamps = [stamp_to_ns(m.header.stamp) for m in received]
    assert all(b > a for a, b in zip(stamps, stamps[1:], strict=False))
    # paced at 2x the 10 fps recording: 4 frame periods / 2 = 0.2 s between first and last.
    # Stamps are publish times and the schedule is absolute, so a late first frame (a loaded
    # machine) shortens the span a little; unpaced playback would take milliseconds.
    assert stamps[-1] - stamps[0] >= 0.2e9 * 0.75
    for msg, rgb in zip(received, _frames(), strict=True):
        assert msg.header.frame_id == "camera_optical_frame" and msg.encoding == "rgb8"
        np.testing.assert_array_equal(image_to_numpy(msg), rgb)


def test_bag_compressed_source(tmp_path):
    received = _play(tmp_path, "bag", rate=0.0)
    stamps = [stamp_to_ns(m.header.stamp) for m in received]
    assert all(b > a for a, b in zip(stamps, stamps[1:], strict=False))
    assert stamps[0] > 10**18  # restamped with the current time, not the recorded stamp
    for msg, rgb in zip(received, _frames(), strict=True):
        assert msg.header.frame_id == "recorded_cam"  # a bag's frame_id is kept
        np.testing.assert_array_equal(image_to_numpy(msg), rgb)
