"""ROS4HRI messages between two processes over DDS: a publisher subprocess sends IdsList,
NormalizedRegionOfInterest2D, Skeleton2D and JointState built by s2m_ros.hri; this process
checks the values and that the type hash on the wire is the one rosidl wrote for hri_msgs."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")
pytest.importorskip("hri_msgs.msg", reason="hri_msgs not built (tools/build_msgs.sh)")

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402

from s2m_ros import convert, hri  # noqa: E402
from s2m_ros.testing import (  # noqa: E402
    child_tail,
    free_domain_id,
    ros_node,
    sample_person,
    spin_until,
    start_script,
    stop_process,
    wait_for_publishers,
)

TIMEOUT_S = 30.0
W, H = 640, 480
STAMP = 5_000_000_007

# The publisher: one message of each type from the same deterministic person as the test, on
# RELIABLE + TRANSIENT_LOCAL topics (a late subscriber still gets them), then waits on stdin.
PUBLISHER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from hri_msgs.msg import IdsList, NormalizedRegionOfInterest2D, Skeleton2D
    from sensor_msgs.msg import JointState
    from s2m_ros import convert, hri
    from s2m_ros.testing import sample_person

    prefix, stamp = sys.argv[1], int(sys.argv[2])
    rclpy.init()
    node = rclpy.create_node("s2m_hri_publisher")
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
    person = sample_person(11, track_id=3)
    person.keypoints_2d = np.random.default_rng(5).uniform(1, 400, (17, 3)).astype(np.float32)
    person.keypoints_2d[:, 2] = 0.75
    header = convert.make_header(stamp, "camera_optical")
    bid = hri.body_id(person.track_id)
    msgs = hri.body_messages(person, bid, 640, 480, header)
    types = {"roi": NormalizedRegionOfInterest2D, "skeleton2d": Skeleton2D,
             "joint_states": JointState}
    pubs = [node.create_publisher(IdsList, prefix + "/tracked", qos)]
    pubs[0].publish(hri.ids_list_msg([bid], header))
    for name, cls in types.items():
        pub = node.create_publisher(cls, prefix + "/" + name, qos)
        pub.publish(msgs[name])
        pubs.append(pub)
    print("published", flush=True)
    sys.stdin.read()
    node.destroy_node()
    rclpy.shutdown()
    """
)


def _person():
    person = sample_person(11, track_id=3)
    person.keypoints_2d = np.random.default_rng(5).uniform(1, 400, (17, 3)).astype(np.float32)
    person.keypoints_2d[:, 2] = 0.75
    return person


def _rosidl_hash(type_name: str) -> str | None:
    pkg, _, name = type_name.split("/")
    path = Path(sys.prefix) / "share" / pkg / "msg" / f"{name}.json"
    if not path.is_file():
        return None
    hashes = json.loads(path.read_text())["type_hashes"]
    return next(h["hash_string"] for h in hashes if h["type_name"] == type_name)


def test_two_processes_hri_messages():
    from hri_msgs.msg import IdsList, NormalizedRegionOfInterest2D, Skeleton2D
    from sensor_msgs.msg import JointState

    domain = free_domain_id(64)
    prefix = f"/s2m_hri_test_{os.getpid()}"
    child = start_script(PUBLISHER, domain, prefix, str(STAMP))
    types = {
        "tracked": IdsList,
        "roi": NormalizedRegionOfInterest2D,
        "skeleton2d": Skeleton2D,
        "joint_states": JointState,
    }
    received: dict[str, list] = {name: [] for name in types}
    hashes: dict[str, str] = {}
    try:
        with ros_node("s2m_hri_subscriber", domain) as (node, executor):
            qos = QoSProfile(
                depth=1,
                reliability=ReliabilityPolicy.RELIABLE,
                durability=DurabilityPolicy.TRANSIENT_LOCAL,
            )
            subs = [
                node.create_subscription(cls, f"{prefix}/{name}", received[name].append, qos)
                for name, cls in types.items()
            ]
            topics = [s.topic_name for s in subs]
            found = wait_for_publishers(executor, node, topics, child, TIMEOUT_S)
            assert found, f"publisher not discovered: {child_tail(child)}"
            assert spin_until(executor, lambda: all(received.values()), TIMEOUT_S), {
                k: len(v) for k, v in received.items()
            }
            for name in types:
                info = node.get_publishers_info_by_topic(f"{prefix}/{name}")
                hashes[name] = str(info[0].topic_type_hash)
    finally:
        log = stop_process(child, TIMEOUT_S, close_stdin=True)
    assert child.returncode == 0, log

    person = _person()
    bid = hri.body_id(person.track_id)
    header = convert.make_header(STAMP, "camera_optical")
    want = hri.body_messages(person, bid, W, H, header)
    tracked = received["tracked"][0]
    assert list(tracked.ids) == [bid]
    for name in types:
        msg = received[name][0]
        assert convert.stamp_to_ns(msg.header.stamp) == STAMP
        assert msg.header.frame_id == "camera_optical"
    roi, w_roi = received["roi"][0], want["roi"]
    for f in ("xmin", "ymin", "xmax", "ymax", "c"):
        assert getattr(roi, f) == pytest.approx(getattr(w_roi, f), abs=1e-7), f
    got_pts = [(p.x, p.y, p.c) for p in received["skeleton2d"][0].skeleton]
    want_pts = [(p.x, p.y, p.c) for p in want["skeleton2d"].skeleton]
    np.testing.assert_allclose(got_pts, want_pts, rtol=1e-6)
    js = received["joint_states"][0]
    assert list(js.name) == list(hri.JOINT_STATE_NAMES)
    np.testing.assert_allclose(js.position, want["joint_states"].position, rtol=1e-12)

    # the hash on the wire is the rosidl one (hri_msgs/msg/... from cmake/hri_msgs)
    full = {
        "tracked": "hri_msgs/msg/IdsList",
        "roi": "hri_msgs/msg/NormalizedRegionOfInterest2D",
        "skeleton2d": "hri_msgs/msg/Skeleton2D",
        "joint_states": "sensor_msgs/msg/JointState",
    }
    for name, type_name in full.items():
        expected = _rosidl_hash(type_name)
        assert hashes[name].startswith("RIHS01_"), hashes[name]
        if expected is not None:
            assert hashes[name] == expected, type_name
