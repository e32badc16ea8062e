"""launch_testing: start launch/live.launch.py for real and wait for s2m_node's outputs.

Skipped here: launch, launch_ros and launch_testing have no PyPI wheels (and PyPI's `launch`
is an unrelated project). Runs on a robot with a ROS 2 distro after `colcon build`
(`colcon test --packages-select s2m_ros`, or pytest with the launch_testing plugin).
"""

from __future__ import annotations

import time
import unittest
from pathlib import Path

import pytest

pytest.importorskip(
    "launch_testing",
    reason="launch_testing is not installable from PyPI (no wheel); runs on robots with ROS 2",
)
pytest.importorskip("launch_ros", reason="launch_ros is not installable from PyPI (no wheel)")

import launch_testing.actions  # noqa: E402
import rclpy  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402

from launch import LaunchDescription  # noqa: E402

LAUNCH = Path(__file__).resolve().parents[1] / "launch" / "live.launch.py"
TIMEOUT_S = 60.0


@pytest.mark.launch_test
def generate_test_description():
    live = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(LAUNCH)),
        launch_arguments={"camera": "none", "rviz": "false"}.items(),
    )
    return LaunchDescription([live, launch_testing.actions.ReadyToTest()])


class TestLiveLaunch(unittest.TestCase):
    def test_s2m_node_advertises_bodies(self):
        context = rclpy.Context()
        rclpy.init(context=context)
        node = rclpy.create_node("s2m_launch_probe", context=context)
        try:
            deadline = time.monotonic() + TIMEOUT_S
            while node.count_publishers("/s2m/bodies") < 1 and time.monotonic() < deadline:
                time.sleep(0.1)  # the graph is updated by rmw, no spinning needed
            self.assertGreaterEqual(node.count_publishers("/s2m/bodies"), 1)
            types = dict(node.get_topic_names_and_types())
            self.assertEqual(types["/s2m/bodies"], ["s2m_ros/msg/BodyArray"])
        finally:
            node.destroy_node()
            rclpy.shutdown(context=context)
