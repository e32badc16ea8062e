"""s2m_ros.hri_publisher: REP-155 body publishers created and destroyed with the tracks, on an
in-process rclpy node (no second process)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")
pytest.importorskip("hri_msgs.msg", reason="hri_msgs not built (tools/build_msgs.sh)")

from s2m_ros import convert, hri  # noqa: E402
from s2m_ros.hri_publisher import HriPublisher  # noqa: E402
from s2m_ros.testing import free_domain_id, ros_node, sample_person  # noqa: E402


def _topics(node) -> set[str]:
    names = node.get_publisher_names_and_types_by_node(node.get_name(), node.get_namespace())
    return {name for name, _ in names}


def _person(track_id: int):
    p = sample_person(track_id, track_id=track_id)
    p.keypoints_2d = np.full((17, 3), 0.5, np.float32) * [100, 100, 1]
    return p


def test_publishers_follow_tracks():
    header = convert.make_header(10, "camera_optical")
    with ros_node("s2m_hri_pub_test", free_domain_id(64)) as (node, _executor):
        pub = HriPublisher(node, salt="t")
        a, b = hri.body_id(1, "t"), hri.body_id(2, "t")
        tfs = pub.publish([_person(1), _person(2)], header, (640, 480))
        assert pub.bodies == sorted([a, b])
        assert [t.child_frame_id for t in tfs] == [f"body_{a}", f"body_{b}"]
        topics = _topics(node)
        for body in (a, b):
            for name in hri.BODY_SUBTOPICS:
                assert hri.body_topic(body, name) in topics
        assert hri.TRACKED_TOPIC in topics

        # track 1 vanishes: its publishers go, track 2 keeps its id
        pub.publish([_person(2)], header, (640, 480))
        assert pub.bodies == [b]
        topics = _topics(node)
        assert not any(t.startswith(f"/humans/bodies/{a}/") for t in topics)
        assert hri.body_topic(b, "roi") in topics

        # skeleton input (no image size): joint_states only, no TF without a frame id
        tfs = pub.publish([_person(2)], convert.make_header(11, ""), None)
        assert tfs == []
        pub.publish([], header, (640, 480))  # nobody: every body topic goes
        assert pub.bodies == []
        assert not any(
            t.startswith("/humans/bodies/") and t != hri.TRACKED_TOPIC for t in _topics(node)
        )
        pub.close()
        pub.close()
