"""Two processes over DDS: a publisher subprocess sends Body/BodyArray/BodyMesh messages, this
process subscribes and checks every field, the type hash on the wire and the QoS."""

from __future__ import annotations

import os
import textwrap

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402

from s2m_ros import convert  # noqa: E402
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

COUNT = 4
TIMEOUT_S = 30.0

# The publisher: builds the same deterministic people as the test (sample_person), publishes
# COUNT frames on a RELIABLE + TRANSIENT_LOCAL topic (a late subscriber still gets them all, no
# race with discovery), then waits for the test to close its stdin.
PUBLISHER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from s2m_ros import convert
    from s2m_ros.msg import Body, BodyArray, BodyMesh
    from s2m_ros.testing import sample_person

    prefix, count = sys.argv[1], int(sys.argv[2])
    rclpy.init()  # domain and discovery range from the environment
    node = rclpy.create_node("s2m_test_publisher")
    qos = QoSProfile(depth=count, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
    arrays = node.create_publisher(BodyArray, prefix + "/bodies", qos)
    single = node.create_publisher(Body, prefix + "/body", qos)
    meshes = node.create_publisher(BodyMesh, prefix + "/mesh", qos)
    for i in range(count):
        header = convert.make_header(1_000_000_000 * (i + 1) + i, "camera_optical")
        people = [sample_person(10 * i + k, track_id=k + 1, with_vertices=True)
                  for k in range(i % 3)]
        arrays.publish(convert.results_to_body_array(people, header, "s2m-free"))
        single.publish(convert.person_to_body_msg(sample_person(i, track_id=7), header))
        verts = np.stack([p.vertices for p in people]) if people else np.zeros((0, 6890, 3))
        meshes.publish(convert.body_mesh_msg(verts, [p.track_id for p in people], header, "f"))
    print("published", flush=True)
    sys.stdin.read()
    node.destroy_node()
    rclpy.shutdown()
    """
)


def test_two_processes_body_messages():
    from s2m_ros.msg import Body, BodyArray, BodyMesh

    from s2m_ros.bag import s2m_typestore

    domain = free_domain_id()
    prefix = f"/s2m_test_{os.getpid()}"
    child = start_script(PUBLISHER, domain, prefix, str(COUNT))
    received: dict[str, list] = {"bodies": [], "body": [], "mesh": []}
    try:
        with ros_node("s2m_test_subscriber", domain) as (node, executor):
            qos = QoSProfile(
                depth=COUNT,
                reliability=ReliabilityPolicy.RELIABLE,
                durability=DurabilityPolicy.TRANSIENT_LOCAL,
            )
            types = {"bodies": BodyArray, "body": Body, "mesh": BodyMesh}
            subs = [
                node.create_subscription(cls, f"{prefix}/{name}", received[name].append, qos)
                for name, cls in types.items()
            ]
            # discovery: wait on the graph, bounded (the child also has to start Python)
            topics = [s.topic_name for s in subs]
            found = wait_for_publishers(executor, node, topics, child, TIMEOUT_S)
            assert found, f"publisher not discovered: {child_tail(child)}"
            assert spin_until(
                executor, lambda: all(len(v) >= COUNT for v in received.values()), TIMEOUT_S
            ), {k: len(v) for k, v in received.items()}

            # the type hash on the wire equals the one rosbags computes from the .msg text
            info = node.get_publishers_info_by_topic(prefix + "/bodies")
            assert str(info[0].topic_type_hash) == s2m_typestore().hash_rihs01(
                "s2m_ros/msg/BodyArray"
            )
    finally:
        log = stop_process(child, TIMEOUT_S, close_stdin=True)
    assert child.returncode == 0, log

    for i, (arr, body, mesh) in enumerate(
        zip(received["bodies"], received["body"], received["mesh"], strict=True)
    ):
        stamp = 1_000_000_000 * (i + 1) + i
        assert convert.stamp_to_ns(arr.header.stamp) == stamp
        assert arr.header.frame_id == "camera_optical"
        people = [
            sample_person(10 * i + k, track_id=k + 1, with_vertices=True) for k in range(i % 3)
        ]
        assert [b.track_id for b in arr.bodies] == [p.track_id for p in people]
        for got, person in zip(arr.bodies, people, strict=True):
            _check_body(got, person, stamp)
        _check_body(body, sample_person(i, track_id=7), stamp)
        verts = convert.body_mesh_to_numpy(mesh)
        assert verts.shape == (len(people), 6890, 3)
        for v, person in zip(verts, people, strict=True):
            np.testing.assert_array_equal(v, person.vertices)


def _check_body(msg, person, stamp: int) -> None:
    a = convert.body_msg_to_arrays(msg)
    assert a["stamp_ns"] == stamp and a["track_id"] == person.track_id
    np.testing.assert_array_equal(a["betas"], person.betas)
    np.testing.assert_array_equal(a["joints"], person.joints)
    np.testing.assert_array_equal(a["transl"], person.transl)
    np.testing.assert_array_equal(a["confidence"], person.confidence)
    np.testing.assert_array_equal(a["solved"], person.solved)
    np.testing.assert_allclose(a["quaternions"], person.quaternions, atol=1e-12)
