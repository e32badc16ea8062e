"""Parts of s2m_node without DDS: parameters vs config/live.yaml, the newest-frame queue and its
drop accounting, the fast serialized mesh markers, the frame processor's bad-frame errors and
the diagnostics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")

from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402

from s2m_ros import convert  # noqa: E402
from s2m_ros import node as s2m_node  # noqa: E402

LIVE_YAML = Path(__file__).resolve().parents[1] / "config" / "live.yaml"


def test_live_yaml_matches_declared_parameters():
    section = yaml.safe_load(LIVE_YAML.read_text())["s2m_node"]["ros__parameters"]
    assert set(section) == set(s2m_node.PARAM_SPECS)
    params = s2m_node.load_params_file(str(LIVE_YAML))
    for name, value in section.items():
        assert params[name] == value
        assert type(params[name]) is type(s2m_node.PARAM_SPECS[name].default), name


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("max_rate_hz", -1.0, ">= 0.0"),
        ("fov_deg", 200.0, "<= 179.0"),
        ("input_mode", "video", "one of image, skeleton"),
        ("skeleton_format", "nope", "not registered"),
        ("detector", "yolo", "not one of"),
        ("device", "gpu0", "cpu, cuda"),
        ("tf_prefix", "/s2m/", "leading '/'"),
        ("camera_frame", "my frame", "leading '/' or spaces"),
        ("max_people", 1.5, "must be a int"),
        ("publish_tf", "yes", "must be a bool"),
        ("bodies_topic", "", "must not be empty"),
        ("not_a_param", 1, "unknown parameter"),
    ],
)
def test_check_param_rejects_with_reason(name, value, words):
    problem = s2m_node.check_param(name, value)
    assert problem is not None and words in problem
    with pytest.raises(ValueError, match="."):
        s2m_node.check_params({name: value})


def test_check_params_accepts_ints_for_floats():
    params = s2m_node.check_params({"max_rate_hz": 5, "tf_prefix": "", "camera_frame": "cam_1"})
    assert params["max_rate_hz"] == 5.0 and isinstance(params["max_rate_hz"], float)
    assert params["publish_mesh"] is True  # defaults fill the rest


def test_frame_queue_keeps_newest_and_counts_drops():
    q = s2m_node.FrameQueue(maxlen=1)
    assert q.put("a") == 0
    assert q.put("b") == 1  # "a" was never processed: dropped
    assert q.get(timeout=0.01) == "b"
    assert q.get(timeout=0.01) is None
    q2 = s2m_node.FrameQueue(maxlen=2)
    assert [q2.put(x) for x in "abc"] == [0, 0, 1]
    assert [q2.get(0.01), q2.get(0.01)] == ["b", "c"]
    q2.close()
    assert q2.get(timeout=5.0) is None  # closed: returns at once


def test_stats_account_for_every_frame():
    stats = s2m_node.NodeStats()
    for dropped in (0, 1, 0, 0):
        stats.received(dropped)
    stats.done({"pipeline": 10.0, "total": 12.0}, people=2)
    stats.done({"pipeline": 30.0, "total": 31.0}, people=0)
    stats.fail(ValueError("empty image: 0x0 pixels"))
    snap = stats.snapshot()
    assert snap["frames_in"] == snap["processed"] + snap["dropped"] + snap["failed"] == 4
    assert snap["people"] == 2 and snap["errors"] == {"ValueError": 1}
    assert snap["latency_ms"]["pipeline"]["median"] == pytest.approx(20.0)
    status = s2m_node.diagnostic_status(snap, "s2m_node: pipeline", "test")
    values = {kv.key: kv.value for kv in status.values}
    assert status.level == status.WARN and "empty image" in status.message
    assert values["frames_dropped"] == "1" and values["frames_failed"] == "1"
    assert float(values["latency_total_p95_ms"]) > float(values["latency_total_median_ms"])


def test_mesh_markers_cdr_equals_the_message_path():
    from visualization_msgs.msg import MarkerArray

    rng = np.random.default_rng(3)
    verts = rng.normal(size=(3, 7, 3))
    verts[1, 2] = np.nan  # a broken body is skipped, as by convert.mesh_markers
    faces = rng.integers(0, 7, size=(5, 3))
    header = convert.make_header(123_456_789, "cam")
    ids = [4, 9, 2]
    fast = s2m_node.mesh_markers_cdr(verts, faces, header, ids, alpha=0.5)
    got = deserialize_message(fast, MarkerArray)
    want = convert.mesh_markers(verts, faces, header, ids, alpha=0.5)
    # the same message, field for field (float32 fields compared after their own round trip)
    assert got == deserialize_message(serialize_message(want), MarkerArray)
    assert [m.id for m in got.markers] == [0, 4, 2]  # DELETEALL, then the two finite bodies
    np.testing.assert_array_equal(
        [[p.x, p.y, p.z] for p in got.markers[2].points], verts[2][faces.reshape(-1)]
    )
    assert len(got.markers[1].points) == 15


class _NoPeople:
    """A pipeline that finds nobody (enough to exercise the frame checks)."""

    body = None

    def process(self, image, camera=None, stamp=None):
        assert image.dtype == np.uint8 and image.shape[2] == 3
        self.camera = camera
        return []

    def reset(self):
        pass


def _processor():
    from s2m_model.body import load_body_model

    params = s2m_node.check_params({"fov_deg": 90.0})
    return s2m_node.FrameProcessor(_NoPeople(), params, body=load_body_model("s2m-free"))


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"encoding": "16UC1"}, "depth"),
        ({"width": 0, "height": 0, "step": 0, "data": b""}, "empty image"),
        ({"step": 5}, "shorter than a row"),
        ({"data": bytes(10)}, "truncated"),
    ],
)
def test_bad_frames_raise_clear_errors(change, words):
    msg = convert.numpy_to_image(np.zeros((4, 6, 3), np.uint8), "rgb8", 1, "cam")
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(ValueError, match=words):
        _processor().process("image", msg)


def test_good_frame_without_people_publishes_an_empty_array():
    proc = _processor()
    msg = convert.numpy_to_image(np.zeros((4, 6, 3), np.uint8), "bgr8", 77, "cam")
    out = proc.process("image", msg)
    assert out.bodies.bodies == [] and convert.stamp_to_ns(out.bodies.header.stamp) == 77
    assert out.mesh is not None and out.tf is None
    # no CameraInfo: a 90 degree pinhole (fx = width / 2)
    assert proc.pipeline.camera == pytest.approx((3.0, 3.0, 3.0, 2.0))


def test_docs_list_every_parameter():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "ros.md").read_text()
    missing = [name for name in s2m_node.PARAM_SPECS if f"| `{name}` |" not in doc]
    assert not missing, f"docs/ros.md lacks parameters {missing}"


def test_live_overrides_are_typed_and_checked():
    from s2m_ros.live import parse_overrides

    got = parse_overrides(["max_rate_hz=5", "publish_tf=false", "camera_frame=123", "tf_prefix="])
    assert got == {"max_rate_hz": 5.0, "publish_tf": False, "camera_frame": "123", "tf_prefix": ""}
    assert isinstance(got["max_rate_hz"], float)
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_overrides(["max_rate_hz"])
    with pytest.raises(ValueError, match="unknown parameter"):
        parse_overrides(["speed=3"])
