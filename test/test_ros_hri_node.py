"""s2m_node with ``hri: true`` (in-process, a stub pipeline): an Image in -> the REP-155 body
topics out, with the ids of s2m_ros.hri; a vanished track's topics are withdrawn."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")
pytest.importorskip("hri_msgs.msg", reason="hri_msgs not built (tools/build_msgs.sh)")

from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402

from s2m_ros import convert, hri  # noqa: E402
from s2m_ros.testing import free_domain_id, ros_node, sample_person, spin_until  # noqa: E402

TIMEOUT_S = 20.0


class _People:
    """A pipeline that sees the people of ``self.tracks`` in every frame."""

    def __init__(self, body):
        self.body = body
        self.tracks = [1, 2]

    def process(self, image, camera=None, stamp=None):
        out = []
        for t in self.tracks:
            p = sample_person(t, track_id=t)
            p.keypoints_2d = np.tile(np.array([[32.0, 24.0, 0.9]], np.float32), (17, 1))
            out.append(p)
        return out

    def reset(self):
        pass


def test_node_publishes_rep155_bodies():
    from hri_msgs.msg import IdsList, Skeleton2D
    from sensor_msgs.msg import Image

    from s2m_model.body import load_body_model
    from s2m_ros.node import S2MNode

    pipeline = _People(load_body_model("s2m-free"))
    with ros_node("s2m_hri_node_test", free_domain_id(64)) as (test_node, executor):
        node = S2MNode(
            pipeline,
            context=test_node.context,
            parameter_overrides=[
                Parameter("hri", value=True),
                Parameter("image_topic", value="/s2m_hri_node_test/image"),
                Parameter("camera_info_topic", value=""),
                Parameter("publish_markers", value=False),
                Parameter("max_rate_hz", value=0.0),
            ],
        )
        executor.add_node(node)
        try:
            tracked: list = []
            skeletons: list = []
            test_node.create_subscription(IdsList, hri.TRACKED_TOPIC, tracked.append, 10)
            salt = node.hri.ids.salt  # ids are the hri.body_id of each track
            ids = sorted(hri.body_id(t, salt) for t in (1, 2))
            test_node.create_subscription(
                Skeleton2D,
                hri.body_topic(hri.body_id(2, salt), "skeleton2d"),
                skeletons.append,
                10,
            )
            pub = test_node.create_publisher(
                Image, "/s2m_hri_node_test/image", qos_profile_sensor_data
            )
            frame = convert.numpy_to_image(np.zeros((48, 64, 3), np.uint8), "rgb8", 5, "cam")
            assert spin_until(executor, lambda: pub.get_subscription_count() > 0, TIMEOUT_S)

            def sent_until(cond) -> bool:
                for _ in range(int(TIMEOUT_S / 0.2)):
                    pub.publish(frame)
                    if spin_until(executor, cond, 0.2):
                        return True
                return False

            assert sent_until(lambda: any(list(m.ids) == ids for m in tracked) and skeletons)
            pts = np.array([[p.x, p.y, p.c] for p in skeletons[-1].skeleton])
            np.testing.assert_allclose(pts[hri.NUM_SKELETON2D - 1], [0.5, 0.5, 0.9], rtol=1e-6)

            pipeline.tracks = [2]  # track 1 leaves: its topics are withdrawn
            keep = hri.body_id(2, salt)
            assert sent_until(lambda: list(tracked[-1].ids) == [keep])
            assert node.hri.bodies == [keep]
        finally:
            node.close()
            executor.remove_node(node)
            node.destroy_node()
