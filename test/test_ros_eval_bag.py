"""``s2m eval-bag`` on generated bags: every input frame accounted for, outputs stamped like the
inputs, metrics.json complete, accuracy against ground truth from the same body model."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")

from test_ros_node import posed_skeletons  # noqa: E402

from s2m_model.results import PersonResult  # noqa: E402
from s2m_ros import convert  # noqa: E402
from s2m_ros.bag import BagWriter, bag_topics, read_bag  # noqa: E402

N = 5
BAD = 2  # index of the all-NaN skeleton


def _write_skeleton_bag(path, body, extra=None) -> list[int]:
    """N Skeleton3D frames (frame BAD all NaN) and ground-truth BodyArrays; returns stamps.
    ``extra(bag)`` may write more messages first."""
    h36m, joints = posed_skeletons(body, N)
    stamps = [2_000_000_000 + k * 40_000_000 + (k % 2) * 3_000_000 for k in range(N)]
    with BagWriter(path, storage="sqlite3") as bag:
        if extra is not None:
            extra(bag)
        for k, stamp in enumerate(stamps):
            header = convert.make_header(stamp, "mocap")
            positions = np.full((17, 3), np.nan) if k == BAD else h36m[k]
            msg = convert.numpy_to_skeleton_msg(positions, "h36m17", header, track_id=1)
            bag.write("/mocap/skeleton", stamp + 1000, msg)
            gt = PersonResult(
                betas=np.zeros(10, np.float32), global_orient=np.zeros(3, np.float32),
                body_pose=np.zeros((23, 3), np.float32), transl=np.zeros(3, np.float32),
                joints=joints[k].astype(np.float32), track_id=1,
            )  # fmt: skip
            bag.write("/gt/bodies", stamp + 2000, convert.results_to_body_array([gt], header))
    return stamps


def test_eval_bag_skeletons_with_ground_truth(tmp_path, body):
    from s2m_model.cli import main

    stamps = _write_skeleton_bag(tmp_path / "in", body)
    out = tmp_path / "eval"
    # every frame on its own (no temporal filter): the error is DIK's alone
    params = tmp_path / "params.yaml"
    params.write_text("/**/s2m_node:\n  ros__parameters:\n    temporal: false\n")
    rc = main(
        ["eval-bag", str(tmp_path / "in"), "--out", str(out), "--gt-topic", "/gt/bodies",
         "--topic", "/mocap/skeleton", "--params", str(params)]
    )  # fmt: skip
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    frames = metrics["frames"]
    assert frames["in"] == N and frames["failed"] == 1 and frames["dropped"] == 0
    assert frames["out"] == N - 1 and metrics["all_frames_accounted"]
    assert (
        "no valid joint" in metrics["failures"][0]["error"]
        and metrics["failures"][0]["index"] == BAD
    )
    for stage in ("decode", "dik", "body", "pipeline", "convert", "frame"):
        s = metrics["latency_ms"][stage]
        assert s["count"] == N - 1 and 0 <= s["median"] <= s["p95"] <= s["max"]
    assert metrics["processing_rate_hz"] > 0
    jitter = metrics["input_stamps"]
    assert jitter["frames"] == N and jitter["non_increasing"] == 0
    assert jitter["period_ms"]["max"] - jitter["period_ms"]["min"] == pytest.approx(6.0)
    acc = metrics["accuracy"]
    assert acc["matched"] == N - 1 and acc["missed_gt_people"] == 0
    assert acc["mpjpe_mm"] < 10.0 and acc["pa_mpjpe_mm"] <= acc["mpjpe_mm"] + 1e-6
    assert acc["abs_mpjpe_mm"] < 10.0
    assert acc["id_switches"] == 0  # one person, one track
    tracking = metrics["tracking"]
    assert tracking["persons_per_frame"] == {"mean": 1.0, "max": 1}
    assert tracking["tracks"] == 1 and tracking["track_length_frames"]["max"] == N - 1
    assert set(acc["per_joint_mpjpe_mm"]) >= {"left_knee", "right_elbow"}
    assert (out / "latency.png").stat().st_size > 0 and (out / "per_joint_error.png").is_file()

    topics = bag_topics(out / "bag")
    assert topics["/s2m/bodies"] == "s2m_ros/msg/BodyArray"
    assert topics["/s2m/mesh_faces"] == "s2m_ros/msg/MeshFaces"
    assert topics["/tf"] == "tf2_msgs/msg/TFMessage"
    msgs = list(read_bag(out / "bag"))
    by_topic: dict[str, list] = {}
    for m in msgs:
        by_topic.setdefault(m.topic, []).append(m)
    assert len(by_topic["/mocap/skeleton"]) == len(by_topic["/gt/bodies"]) == N  # copied
    assert len(by_topic["/s2m/mesh_faces"]) == 1
    good = [s for k, s in enumerate(stamps) if k != BAD]
    for name in ("/s2m/bodies", "/s2m/mesh", "/tf"):
        assert len(by_topic[name]) == N - 1, name
    assert [convert.stamp_to_ns(m.msg.header.stamp) for m in by_topic["/s2m/bodies"]] == good
    assert [m.timestamp_ns for m in by_topic["/s2m/bodies"]] == [s + 1000 for s in good]


def test_eval_bag_refuses_a_params_file_ros_would_ignore(tmp_path, capsys):
    """Outputs go to the /s2m namespace, so the file must address s2m_node there."""
    from s2m_model.cli import main

    params = tmp_path / "params.yaml"
    params.write_text("s2m_node:\n  ros__parameters:\n    temporal: false\n")
    rc = main(["eval-bag", str(tmp_path / "no_bag"), "--out", str(tmp_path / "o"),
               "--params", str(params)])  # fmt: skip
    assert rc == 2
    assert "no section for node /s2m/s2m_node" in capsys.readouterr().err


def test_eval_bag_refuses_bad_input(tmp_path, body):
    from s2m_ros.eval_bag import evaluate_bag

    _write_skeleton_bag(tmp_path / "in", body)
    with pytest.raises(ValueError, match="not in the bag"):
        evaluate_bag(tmp_path / "in", tmp_path / "o1", topic="/camera/image_raw")
    with pytest.raises(ValueError, match="ground-truth topic"):
        evaluate_bag(tmp_path / "in", tmp_path / "o2", gt_topic="/mocap/skeleton")
    with pytest.raises(FileNotFoundError):
        evaluate_bag(tmp_path / "missing", tmp_path / "o3")


def test_eval_bag_images(tmp_path, shared_data):
    """A real photo (COCO) as CompressedImage frames: one body per frame, stamps kept."""
    import cv2

    from s2m_ros.eval_bag import evaluate_bag

    pytest.importorskip("mediapipe")
    _need_lifter()
    rgb = cv2.imread(str(shared_data / "images" / "coco_000000000785.jpg"))
    ok, jpeg = cv2.imencode(".jpg", rgb)
    assert ok
    from sensor_msgs.msg import CompressedImage

    stamps = [10**18 + k * 33_333_333 for k in range(3)]
    with BagWriter(tmp_path / "in", storage="mcap") as bag:
        for stamp in stamps:
            header = convert.make_header(stamp, "camera_optical_frame")
            msg = CompressedImage(header=header, format="jpeg", data=jpeg.tobytes())
            bag.write("/camera/image_raw/compressed", stamp, msg)
    result = evaluate_bag(tmp_path / "in", tmp_path / "eval", storage="sqlite3")
    frames = result.metrics["frames"]
    assert frames["in"] == frames["out"] == 3 and frames["with_people"] == 3
    bodies = [m.msg for m in read_bag(result.bag, topics=["/s2m/bodies"])]
    assert [convert.stamp_to_ns(b.header.stamp) for b in bodies] == stamps
    for b in bodies:
        (person,) = b.bodies
        pelvis = person.joints[0]
        assert 1.0 < pelvis.z < 30.0  # in front of the camera, metres
    assert result.metrics["latency_ms"]["detect"]["count"] == 3


def _need_lifter() -> None:
    from s2m_model.lifter import DEFAULT_CHECKPOINT

    if not DEFAULT_CHECKPOINT.is_file():
        pytest.skip(f"the default lifter weights are not built ({DEFAULT_CHECKPOINT})")


def test_record_live_topics(tmp_path):
    """``s2m record``: a publisher thread (a plain and a latched topic) -> a bag."""
    import threading

    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    from s2m_ros.cli import record_topics
    from s2m_ros.testing import free_domain_id, ros_node

    domain = free_domain_id()
    topic, latched_topic = f"/rec_{os.getpid()}/chatter", f"/rec_{os.getpid()}/latched"
    stop = threading.Event()
    with ros_node("s2m_record_source", domain) as (node, executor):
        latched = QoSProfile(
            depth=1,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        node.create_publisher(String, latched_topic, latched).publish(String(data="faces"))
        pub = node.create_publisher(String, topic, 10)
        count = iter(range(10**6))
        node.create_timer(0.02, lambda: pub.publish(String(data=f"m{next(count)}")))

        def spin() -> None:
            while not stop.is_set():
                executor.spin_once(timeout_sec=0.05)

        spinner = threading.Thread(target=spin)
        spinner.start()
        try:
            counts = record_topics(
                [topic, latched_topic, "/not/there"],
                str(tmp_path / "rec"),
                duration=1.0,
                discovery_timeout=1.0,
                domain_id=domain,
            )
        finally:
            stop.set()
            spinner.join()
    assert counts[topic] >= 10 and counts[latched_topic] == 1, counts
    assert "/not/there" not in counts
    msgs = [m for m in read_bag(tmp_path / "rec") if m.topic == topic]
    assert len(msgs) == counts[topic]
    numbers = [int(m.msg.data[1:]) for m in msgs]
    assert all(b > a for a, b in zip(numbers, numbers[1:], strict=False))  # in order, no repeats
    assert [m.msg.data for m in read_bag(tmp_path / "rec", topics=[latched_topic])] == ["faces"]


def test_eval_bag_refuses_an_implausible_camera_info(tmp_path, body):
    """A CameraInfo with fx = 1e30 is refused and counted; every frame is still processed."""
    from sensor_msgs.msg import CameraInfo

    from s2m_ros.eval_bag import evaluate_bag

    def bad_camera_info(bag) -> None:
        info = CameraInfo(header=convert.make_header(1_000_000_000, "cam"), width=640, height=480)
        info.k = [1e30, 0.0, 320.0, 0.0, 1e30, 240.0, 0.0, 0.0, 1.0]
        bag.write("/camera/camera_info", 1_000_000_000, info)

    _write_skeleton_bag(tmp_path / "in", body, extra=bad_camera_info)
    result = evaluate_bag(tmp_path / "in", tmp_path / "eval", topic="/mocap/skeleton",
                          camera_info_topic="/camera/camera_info", storage="sqlite3")  # fmt: skip
    frames = result.metrics["frames"]
    assert frames["camera_info_rejected"] == 1
    assert frames["in"] == N and result.metrics["all_frames_accounted"]
