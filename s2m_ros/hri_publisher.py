"""ROS4HRI (REP-155) publishers of ``s2m_node`` (parameter ``hri``): the I/O half of
:mod:`s2m_ros.hri`, which builds the messages.

Per processed frame: ``/humans/bodies/tracked`` (``hri_msgs/IdsList``, every frame, empty when
nobody is seen) and, per body, ``/humans/bodies/<id>/roi``, ``.../skeleton2d`` (image input
only: skeleton input has no box and no 2D keypoints) and ``.../joint_states``. A body's
publishers are created when its track first appears and destroyed in the first frame without
it, so no stale body topic stays advertised. The topics are absolute (REP-155), whatever the
node's namespace.
"""

from __future__ import annotations

import time
from typing import Any

from rclpy.qos import QoSProfile

from s2m_ros import hri


class HriPublisher:
    """Publishes a frame's people as REP-155 bodies on ``node``.

    Args:
        node: the rclpy node owning the publishers.
        depth: history depth of the publishers.
        salt: body id salt (default: the start time, so ids of different runs differ).
    """

    def __init__(self, node: Any, depth: int = 10, salt: str | None = None) -> None:
        from hri_msgs.msg import IdsList

        self.node = node
        self.qos = QoSProfile(depth=depth)
        self.ids = hri.BodyIds(salt if salt is not None else f"{time.time_ns():x}")
        self.pub_tracked = node.create_publisher(IdsList, hri.TRACKED_TOPIC, self.qos)
        self._bodies: dict[str, dict[str, Any]] = {}  # body id -> sub-topic -> publisher

    @property
    def bodies(self) -> list[str]:
        """Ids of the bodies whose publishers exist."""
        return sorted(self._bodies)

    def _publishers(self, body: str) -> dict[str, Any]:
        pubs = self._bodies.get(body)
        if pubs is None:
            from hri_msgs.msg import NormalizedRegionOfInterest2D, Skeleton2D
            from sensor_msgs.msg import JointState

            types = {
                "roi": NormalizedRegionOfInterest2D,
                "skeleton2d": Skeleton2D,
                "joint_states": JointState,
            }
            pubs = {
                name: self.node.create_publisher(cls, hri.body_topic(body, name), self.qos)
                for name, cls in types.items()
            }
            self._bodies[body] = pubs
        return pubs

    def publish(self, results: list, header: Any, image_size: tuple[int, int] | None) -> list[Any]:
        """Publish one frame; returns the ``body_<id>`` TransformStamped (for /tf; none when
        ``header.frame_id`` is empty).

        Args:
            results: the frame's PersonResult list (one body per ``track_id``).
            header: std_msgs/Header of the outputs (input stamp, camera frame).
            image_size: ``(width, height)`` of the input image, None for skeleton input.
        """
        current: dict[str, Any] = {}
        for person in results:
            body = self.ids.get(person.track_id)
            if body not in current:  # untracked people share track 0: the first one wins
                current[body] = person
        for body in [b for b in self._bodies if b not in current]:
            for pub in self._bodies.pop(body).values():
                self.node.destroy_publisher(pub)
        for tid, body in self.ids.active.items():
            if body not in current:
                self.ids.forget(tid)
        transforms = []
        for body, person in current.items():
            pubs = self._publishers(body)
            if image_size is None:
                msgs = {"joint_states": hri.joint_state_msg(person, header)}
            else:
                msgs = hri.body_messages(person, body, image_size[0], image_size[1], header)
            for name, msg in msgs.items():
                pubs[name].publish(msg)
            if header.frame_id:
                transforms.append(hri.body_transform(person, body, header))
        self.pub_tracked.publish(hri.ids_list_msg(sorted(current), header))
        return transforms

    def close(self) -> None:
        """Destroy every publisher (idempotent)."""
        for pubs in self._bodies.values():
            for pub in pubs.values():
                self.node.destroy_publisher(pub)
        self._bodies.clear()
