"""s2m_node in image mode, as a separate process over DDS, on a real photo (COCO val2017 785):
one body per frame with the input stamp, meshes and RViz markers; bad frames (wrong encoding,
zero size, mismatched step, truncated data) are counted and reported in /diagnostics while the
next good frame is processed."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")
pytest.importorskip("mediapipe", reason="the default detector needs mediapipe")

from test_ros_node import (  # noqa: E402
    NS,
    diag_values,
    send_until_result,
    start_node,
    stop_node,
)

from s2m_ros import convert  # noqa: E402
from s2m_ros.testing import free_domain_id, ros_node, spin_until  # noqa: E402

FRAME = "camera_optical_frame"


def _need_lifter() -> None:
    from s2m_model.lifter import DEFAULT_CHECKPOINT

    if not DEFAULT_CHECKPOINT.is_file():
        pytest.skip(f"the default lifter weights are not built ({DEFAULT_CHECKPOINT})")


def _photo(shared_data) -> np.ndarray:
    """The COCO photo at half size, (213, 320, 3) uint8 RGB.

    Half size keeps the message under FastDDS's default 512 kB shared-memory segment: larger
    images reach a best-effort (sensor-data) subscriber only when the *publisher's* process
    uses a bigger segment (config/fastdds_large_data.xml), and this test process may have
    started FastDDS without it.
    """
    import cv2

    from s2m_model.image import load_image

    rgb = load_image(shared_data / "images" / "coco_000000000785.jpg")
    return cv2.resize(rgb, (320, 213), interpolation=cv2.INTER_AREA)


def test_image_mode_real_photo_and_bad_frames(shared_data):
    from diagnostic_msgs.msg import DiagnosticArray
    from s2m_ros.msg import BodyArray, BodyMesh
    from sensor_msgs.msg import Image
    from visualization_msgs.msg import Marker, MarkerArray

    _need_lifter()
    photo = _photo(shared_data)
    domain = free_domain_id()
    # a deep input queue: every frame is processed in order, none dropped
    child = start_node(
        domain, "input_mode:=image", f"image_topic:={NS}/image", "camera_info_topic:=''",
        "max_rate_hz:=0.0", "input_queue_size:=10", "marker_rate_hz:=0.0",
    )  # fmt: skip
    try:
        with ros_node("s2m_image_probe", domain) as (node, executor):
            got = {"bodies": [], "mesh": [], "markers": [], "diag": []}
            node.create_subscription(BodyArray, f"{NS}/bodies", got["bodies"].append, 50)
            node.create_subscription(BodyMesh, f"{NS}/mesh", got["mesh"].append, 50)
            node.create_subscription(MarkerArray, f"{NS}/markers", got["markers"].append, 10)
            node.create_subscription(DiagnosticArray, "/diagnostics", got["diag"].append, 10)
            pub = node.create_publisher(Image, f"{NS}/image", 10)
            assert spin_until(
                executor,
                lambda: pub.get_subscription_count() > 0 or child.poll() is not None,
                60.0,
            ), "s2m_node did not subscribe"
            assert child.poll() is None, stop_node(child)

            def good(stamp: int):
                msg = convert.numpy_to_image(photo, "rgb8", stamp, FRAME)
                return send_until_result(executor, pub, got, msg, child)

            first = good(1_000_000_000)
            bad_frames = {
                "encoding": {"encoding": "16UC1"},
                "zero size": {"width": 0, "height": 0, "step": 0, "data": b""},
                "step": {"step": 320 * 3 - 1},
                "truncated": {"data": photo.tobytes()[:1000]},
            }
            results = []
            for k, change in enumerate(bad_frames.values()):
                bad = convert.numpy_to_image(photo, "rgb8", 2_000_000_000 + k, FRAME)
                for key, value in change.items():
                    setattr(bad, key, value)
                pub.publish(bad)
                results.append(good(3_000_000_000 + k))  # the node goes on

            def reported() -> bool:
                return any(diag_values(m).get("frames_failed") == "4" for m in got["diag"])

            assert spin_until(executor, reported, 10.0), [diag_values(m) for m in got["diag"]]
            spin_until(executor, lambda: len(got["markers"]) >= 2, 5.0)
    finally:
        log = stop_node(child)
    assert child.returncode == 0 and "Traceback" not in log, log

    for arr in [first, *results]:
        assert arr.header.frame_id == FRAME
        (person,) = arr.bodies  # one skier
        p = convert.body_msg_to_arrays(person)
        assert 1.0 < p["joints"][0, 2] < 30.0  # pelvis in front of the camera, metres
        assert np.all(p["bbox"][2:] > p["bbox"][:2])
    assert convert.stamp_to_ns(first.header.stamp) == 1_000_000_000
    assert [convert.stamp_to_ns(a.header.stamp) for a in results] == [
        3_000_000_000 + k for k in range(4)
    ]
    values = next(diag_values(m) for m in got["diag"] if diag_values(m)["frames_failed"] == "4")
    assert values["frames_dropped"] == "0"
    assert "truncated image data" in values["last_error"]  # the last bad frame's reason
    assert "latency_detect_median_ms" in values and "latency_total_p95_ms" in values
    mesh = got["mesh"][-1]
    assert convert.body_mesh_to_numpy(mesh).shape[0] == 1
    meshes = [m for arr in got["markers"] for m in arr.markers if m.type == Marker.TRIANGLE_LIST]
    assert meshes and len(meshes[0].points) % 3 == 0 and meshes[0].header.frame_id == FRAME
