"""s2m_node's ``pipelined`` mode (in-process, a stub pipeline with slow halves): the detector
of frame t+1 runs while frame t is estimated, in two threads; every frame comes out, in order,
accounted for; a stamp going backwards resets the pipeline only after the estimates in flight."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")

from rclpy.parameter import Parameter  # noqa: E402

from s2m_ros import convert  # noqa: E402
from s2m_ros.testing import free_domain_id, ros_node, spin_until  # noqa: E402

TOPIC = "/s2m_pipelined_test"
HALF_S = 0.05  # each half of the stub pipeline takes this long


class _SlowHalves:
    """A pipeline whose ``detect`` and ``estimate`` each sleep ``HALF_S`` and log when and in
    which thread they ran; ``reset`` checks that no estimate is running."""

    def __init__(self, body):
        self.body = body
        self.log: list[tuple[str, float, float, str, float]] = []
        self.estimating = 0
        self.resets: list[int] = []
        self._lock = threading.Lock()

    def detect(self, image, camera=None, stamp=None):
        start = time.perf_counter()
        time.sleep(HALF_S)
        self.log.append(("detect", start, time.perf_counter(), threading.current_thread().name,
                         stamp))  # fmt: skip
        return stamp

    def estimate(self, frame):
        with self._lock:
            self.estimating += 1
        start = time.perf_counter()
        time.sleep(HALF_S)
        self.log.append(("estimate", start, time.perf_counter(),
                         threading.current_thread().name, frame))  # fmt: skip
        with self._lock:
            self.estimating -= 1
        return []

    def process(self, image, camera=None, stamp=None):
        return self.estimate(self.detect(image, camera, stamp))

    def reset(self):
        self.resets.append(self.estimating)


def run_node(pipelined: bool, stamps: list[int]) -> tuple[_SlowHalves, list, dict]:
    """Send ``stamps`` as frames (deep queue, no rate limit); the stub, the BodyArrays received
    and the node's final counters."""
    from s2m_ros.msg import BodyArray
    from sensor_msgs.msg import Image

    from s2m_model.body import load_body_model
    from s2m_ros.node import S2MNode

    pipeline = _SlowHalves(load_body_model("s2m-free"))
    with ros_node("s2m_pipelined_probe", free_domain_id(70)) as (test_node, executor):
        node = S2MNode(pipeline, context=test_node.context, parameter_overrides=[
            Parameter("image_topic", value=f"{TOPIC}/image"),
            Parameter("bodies_topic", value=f"{TOPIC}/bodies"),
            Parameter("camera_info_topic", value=""),
            Parameter("publish_markers", value=False),
            Parameter("max_rate_hz", value=0.0),
            Parameter("input_queue_size", value=len(stamps)),
            Parameter("pipelined", value=pipelined),
        ])  # fmt: skip
        executor.add_node(node)
        try:
            got: list = []
            test_node.create_subscription(BodyArray, f"{TOPIC}/bodies", got.append, 50)
            pub = test_node.create_publisher(Image, f"{TOPIC}/image", 50)
            assert spin_until(executor, lambda: pub.get_subscription_count() > 0, 20.0)
            pipeline.log.clear()  # the start-up warm-up frame and its reset
            pipeline.resets.clear()
            image = np.zeros((48, 64, 3), np.uint8)
            for stamp in stamps:
                pub.publish(convert.numpy_to_image(image, "rgb8", stamp, "cam"))
            assert spin_until(executor, lambda: len(got) >= len(stamps), 20.0), len(got)
            spin_until(executor, node.idle, 5.0)
            snap = node.stats.snapshot()
        finally:
            node.close()
            node.destroy_node()
    return pipeline, got, snap


def test_pipelined_node_overlaps_detection_and_estimation_in_order():
    stamps = [1_000_000_000 + k * 33_000_000 for k in range(6)]
    pipeline, got, snap = run_node(True, stamps)
    assert [convert.stamp_to_ns(a.header.stamp) for a in got] == stamps
    assert (snap["processed"], snap["dropped"], snap["failed"]) == (6, 0, 0)
    detects = [e for e in pipeline.log if e[0] == "detect"]
    estimates = [e for e in pipeline.log if e[0] == "estimate"]
    assert {e[3] for e in detects} == {"s2m_worker"} and {e[3] for e in estimates} == {
        "s2m_estimate"}  # fmt: skip
    assert [e[4] for e in estimates] == [s * 1e-9 for s in stamps]  # frames in order
    # Frame k+1 was detected while frame k was estimated (a single thread never overlaps).
    pairs = zip(detects[1:], estimates[:-1], strict=True)
    overlaps = sum(d[1] < e[2] and e[1] < d[2] for d, e in pairs)
    assert overlaps >= 3, pipeline.log


def test_unpipelined_node_runs_both_halves_in_one_thread():
    stamps = [1_000_000_000 + k * 33_000_000 for k in range(3)]
    pipeline, got, snap = run_node(False, stamps)
    assert len(got) == 3 and snap["processed"] == 3
    assert {e[3] for e in pipeline.log} == {"s2m_worker"}


def test_stamp_going_back_resets_after_the_estimates_in_flight():
    stamps = [5_000_000_000, 5_033_000_000, 5_066_000_000, 1_000_000_000, 1_033_000_000]
    pipeline, got, snap = run_node(True, stamps)
    assert [convert.stamp_to_ns(a.header.stamp) for a in got] == stamps
    assert pipeline.resets == [0]  # one reset, with no estimate running
    assert snap["processed"] == 5
