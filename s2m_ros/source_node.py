"""``s2m_file_source``: play a video file or a bag's image topic as a live camera.

The node of :class:`s2m_ros.player.FilePlayer` (parameters and defaults:
:data:`s2m_ros.player.PLAYER_PARAMS`, config/live.yaml section ``/**/s2m_file_source``):

    s2m_file_source --ros-args -p path:=walk.mp4 -p topic:=/camera/image_raw -p rate:=0.5

Exits with status 0 when playback ends (``loop: false``) or on Ctrl-C / SIGTERM, so a launch
file can react to it; with status 2 and the reason on a bad parameter or an unreadable file.
"""

from __future__ import annotations

import sys
import time


def main(args: list[str] | None = None) -> int:
    """Entry point of ``s2m_file_source`` (ROS arguments: ``--ros-args -p path:=...``)."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    from s2m_ros.player import PLAYER_NAME, FilePlayer

    rclpy.init(args=args)
    node = rclpy.create_node(PLAYER_NAME)
    logger = node.get_logger()
    try:
        player = FilePlayer(node)
    except (ValueError, FileNotFoundError) as exc:
        logger.error(str(exc))
        node.destroy_node()
        rclpy.try_shutdown()
        return 2
    executor = SingleThreadedExecutor()
    executor.add_node(node)

    def sleep(seconds: float) -> bool:
        # waiting is spinning, so parameter services answer while the player owns the timing
        deadline = time.monotonic() + seconds
        executor.spin_once(timeout_sec=0.0)
        while (remaining := deadline - time.monotonic()) > 0 and rclpy.ok():
            executor.spin_once(timeout_sec=min(remaining, 0.1))
        return not rclpy.ok()

    try:
        player.play(sleep)
        logger.info(f"published {player.published} frames from {player.path}")
        player.flush()
        return 0
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    except (ValueError, OSError) as exc:
        logger.error(f"cannot play {player.path}: {exc}")
        return 2
    finally:
        executor.remove_node(node)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
