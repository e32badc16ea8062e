"""rosbag2 (MCAP and SQLite3) with the s2m messages through rosbags: every field survives a round
trip, and BagRecorder records live topics (latched /tf_static included)."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from rclpy.serialization import deserialize_message  # noqa: E402

from s2m_ros import convert  # noqa: E402
from s2m_ros.bag import (  # noqa: E402
    BagRecorder,
    BagWriter,
    message_class,
    read_bag,
    ros_type_name,
)
from s2m_ros.testing import free_domain_id, ros_node, sample_person, spin_until  # noqa: E402


def _assert_same(ours, theirs, path: str = "msg") -> None:
    """Field-by-field equality of an rclpy message and a rosbags dataclass (recursive)."""
    fields = getattr(type(ours), "get_fields_and_field_types", None)
    if fields is not None:
        for name in fields():
            _assert_same(getattr(ours, name), getattr(theirs, name), f"{path}.{name}")
        return
    if isinstance(ours, (str, bool, int, float)):
        assert ours == theirs, f"{path}: {ours!r} != {theirs!r}"
        return
    ours_list, theirs_list = list(ours), list(theirs)
    assert len(ours_list) == len(theirs_list), f"{path}: length {len(ours_list)}"
    if ours_list and hasattr(type(ours_list[0]), "get_fields_and_field_types"):
        for i, (a, b) in enumerate(zip(ours_list, theirs_list, strict=True)):
            _assert_same(a, b, f"{path}[{i}]")
    else:
        np.testing.assert_array_equal(np.asarray(ours_list), np.asarray(theirs_list), path)


def _frame_messages() -> list[tuple[str, int, object]]:
    """One frame's worth of s2m output as (topic, log time ns, rclpy message)."""
    stamp = 1_700_000_000_000_000_123
    header = convert.make_header(stamp, "camera_optical")
    people = [sample_person(1, track_id=4, with_vertices=True), sample_person(2, track_id=9)]
    faces = np.random.default_rng(0).integers(0, 6890, size=(100, 3))
    from tf2_msgs.msg import TFMessage

    skeleton = convert.numpy_to_skeleton_msg(
        np.random.default_rng(1).normal(size=(17, 3)),
        "h36m17",
        header,
        confidences=np.linspace(0, 1, 17),
        joint_names=[f"j{i}" for i in range(17)],
        track_id=3,
    )
    image = convert.numpy_to_image(
        np.random.default_rng(2).integers(0, 256, (6, 4, 3), dtype=np.uint8), "bgr8", stamp, "cam"
    )
    return [
        ("/s2m/mesh_faces", stamp - 5, convert.mesh_faces_msg(faces, 6890, "s2m-free", header)),
        ("/camera/image_raw", stamp, image),
        ("/s2m/skeleton", stamp, skeleton),
        ("/s2m/bodies", stamp + 1, convert.results_to_body_array(people, header, "s2m-free")),
        ("/s2m/body", stamp + 2, convert.person_to_body_msg(people[0], header, "s2m-free")),
        (
            "/s2m/mesh",
            stamp + 3,
            convert.body_mesh_msg(
                np.stack([people[0].vertices, people[0].vertices * 2]), [4, 9], header, "f:1"
            ),
        ),
        ("/tf", stamp + 4, TFMessage(transforms=convert.body_to_tf(people[0], header))),
    ]


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_round_trip_every_field(tmp_path, storage):
    messages = _frame_messages()
    with BagWriter(tmp_path / "bag", storage=storage) as bag:
        for topic, t, msg in messages:
            bag.write(topic, t, msg)
    assert (tmp_path / "bag" / "metadata.yaml").is_file()

    read = list(read_bag(tmp_path / "bag"))
    assert [(m.topic, m.timestamp_ns) for m in read] == [(t, ts) for t, ts, _ in messages]
    for (topic, _, ours), got in zip(messages, read, strict=True):
        assert got.msgtype == ros_type_name(ours), topic
        _assert_same(ours, got.msg, topic)

    # the raw CDR bytes deserialise into rclpy messages equal to the originals
    raw = list(read_bag(tmp_path / "bag", topics=["/s2m/bodies", "/tf"], raw=True))
    assert [m.topic for m in raw] == ["/s2m/bodies", "/tf"]
    for m in raw:
        original = next(msg for topic, _, msg in messages if topic == m.topic)
        assert deserialize_message(m.msg, type(original)) == original


def test_bag_writer_rejects_bad_use(tmp_path):
    with BagWriter(tmp_path / "bag") as bag:
        with pytest.raises(ValueError, match="add_topic"):
            bag.write("/raw", 0, b"\x00\x01")
        with pytest.raises(ValueError, match="unknown message type"):
            bag.add_topic("/x", "nope_msgs/msg/Nothing")
        bag.add_topic("/s2m/bodies", "s2m_ros/msg/BodyArray")
        with pytest.raises(ValueError, match="was added as"):
            bag.add_topic("/s2m/bodies", "s2m_ros/msg/Body")
    with pytest.raises(ValueError, match="storage"):
        BagWriter(tmp_path / "other", storage="rosbag1")
    with pytest.raises(ValueError, match="not importable"):
        message_class("nope_msgs/msg/Nothing")
    with pytest.raises(ValueError, match="expected a type"):
        message_class("Body")
    assert message_class("s2m_ros/msg/BodyArray").__name__ == "BodyArray"


def test_bag_recorder_records_live_topics(tmp_path):
    from s2m_ros.msg import BodyArray
    from tf2_msgs.msg import TFMessage

    prefix = f"/s2m_test_{os.getpid()}"
    bodies_topic, static_topic = f"{prefix}/bodies", "/tf_static"
    header = convert.make_header(42, "cam")
    sent = [
        convert.results_to_body_array([sample_person(i, track_id=i + 1)], header) for i in range(3)
    ]
    static = TFMessage(transforms=convert.body_to_tf(sample_person(5), header))
    latched = QoSProfile(
        depth=1,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )
    with ros_node("s2m_test_recorder", free_domain_id()) as (node, executor):
        # published before the recorder exists: only TRANSIENT_LOCAL can deliver it
        static_pub = node.create_publisher(TFMessage, static_topic, latched)
        static_pub.publish(static)
        pub = node.create_publisher(BodyArray, bodies_topic, 10)
        recorder = BagRecorder(
            node,
            tmp_path / "rec",
            {bodies_topic: BodyArray, static_topic: "tf2_msgs/msg/TFMessage"},
        )
        assert spin_until(executor, lambda: pub.get_subscription_count() >= 1, 20.0)
        assert spin_until(executor, lambda: recorder.counts[static_topic] >= 1, 20.0)
        for msg in sent:
            pub.publish(msg)
        assert spin_until(executor, lambda: recorder.counts[bodies_topic] >= len(sent), 20.0)
        recorder.close()
        recorder.close()  # idempotent

    read = list(read_bag(tmp_path / "rec", raw=True))
    bodies = [deserialize_message(m.msg, BodyArray) for m in read if m.topic == bodies_topic]
    assert bodies == sent
    statics = [deserialize_message(m.msg, TFMessage) for m in read if m.topic == static_topic]
    assert statics == [static]
    assert all(m.timestamp_ns > 0 for m in read)  # receive time, not the header stamp
