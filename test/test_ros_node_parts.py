"""Parts of s2m_node without DDS: parameters vs config/live.yaml and PipelineConfig, params-file
matching under namespaces, the newest-frame queue and its drop accounting, the serialised mesh
markers, the frame processor's camera and bad-frame errors, and the diagnostics."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")

from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402

from s2m_model.camera import DEFAULT_FOV_DEG, Camera  # noqa: E402
from s2m_ros import convert, markers  # noqa: E402
from s2m_ros import params as ros_params  # noqa: E402
from s2m_ros.diagnostics import NodeStats, diagnostic_status  # noqa: E402
from s2m_ros.frame_queue import FrameQueue  # noqa: E402
from s2m_ros.processor import FrameProcessor  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LIVE_YAML = REPO / "config" / "live.yaml"


def test_live_yaml_matches_declared_parameters():
    section = yaml.safe_load(LIVE_YAML.read_text())["/**/s2m_node"]["ros__parameters"]
    assert set(section) == set(ros_params.PARAM_SPECS)
    for namespace in ("/s2m", "", "/robot/perception"):  # the key matches any namespace
        params = ros_params.load_params_file(LIVE_YAML, namespace=namespace)
        for name, value in section.items():
            assert params[name] == value
            assert type(params[name]) is type(ros_params.PARAM_SPECS[name].default), name


def test_pipeline_parameters_are_pipeline_config_fields():
    from s2m_model.pipeline import PipelineConfig

    fields = {f.name: f for f in dataclasses.fields(PipelineConfig)}
    defaults = PipelineConfig()
    assert set(ros_params.PIPELINE_PARAMS) == {
        "body", "detector", "lifter", "lifter_model", "device", "temporal", "track_appearance",
        "fov_deg", "min_keypoint_confidence", "max_persons", "refine_shape", "refine_endpoints",
        "refine_fit", "refine_mask", "fit_iterations",
    }  # fmt: skip
    for name in ros_params.PIPELINE_PARAMS:
        assert name in fields, f"{name} is not a PipelineConfig field"
        assert ros_params.PARAM_SPECS[name].default == getattr(defaults, name), name
    assert ros_params.PARAM_SPECS["fov_deg"].default == DEFAULT_FOV_DEG == 55.0
    # no old names left anywhere in the parameters
    for old in ("body_model", "track", "max_people", "min_confidence"):
        assert old not in ros_params.PARAM_SPECS
        assert ros_params.check_param(old, 1) is not None
    config = PipelineConfig(**ros_params.pipeline_fields(ros_params.DEFAULTS))
    assert config.fov_deg == DEFAULT_FOV_DEG and config.temporal is True


def test_cli_namespace_constant_matches():
    from s2m_ros import cli

    assert cli.DEFAULT_NAMESPACE == ros_params.DEFAULT_NAMESPACE == "/s2m"


@pytest.mark.parametrize(
    ("key", "namespace", "matches"),
    [
        ("s2m_node", "/s2m", False),  # the old key: ignored under a namespace
        ("s2m_node", "", True),
        ("/s2m/s2m_node", "/s2m", True),
        ("/s2m/s2m_node", "/other", False),
        ("/**/s2m_node", "/s2m", True),
        ("/**/s2m_node", "/a/b", True),
        ("/**/s2m_node", "", True),
        ("/**", "/s2m", True),
        ("/*/s2m_node", "/s2m", True),
        ("/*/s2m_node", "/a/b", False),
        ("/**/other_node", "/s2m", False),
    ],
)
def test_params_file_keys_match_like_rcl(tmp_path, monkeypatch, key, namespace, matches):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({key: {"ros__parameters": {"max_rate_hz": 3}}}))
    fqn = ros_params.node_fqn("s2m_node", namespace)
    assert bool(ros_params.matching_sections(path, fqn)) == matches
    for without_rclpy in (False, True):  # rcl reads the values; the YAML reader agrees
        if without_rclpy:
            monkeypatch.setitem(sys.modules, "rclpy", None)  # `import rclpy` fails
        if matches:
            got = ros_params.load_params_file(path, namespace=namespace)["max_rate_hz"]
            assert got == 3.0 and isinstance(got, float)
        else:
            with pytest.raises(ValueError, match="no section for node"):
                ros_params.load_params_file(path, namespace=namespace)


def test_params_file_values_are_rcls(tmp_path):
    """A quoted number stays a string (rclpy's YAML helper would make it an int); an old
    parameter name and a bad value are errors that name the file."""
    path = tmp_path / "p.yaml"
    path.write_text('/**/s2m_node:\n  ros__parameters:\n    camera_frame: "123"\n')
    assert ros_params.load_params_file(path)["camera_frame"] == "123"
    path.write_text("/**/s2m_node:\n  ros__parameters:\n    max_people: 3\n")
    with pytest.raises(ValueError, match="unknown parameter 'max_people'"):
        ros_params.load_params_file(path)
    path.write_text("/**/s2m_node:\n  ros__parameters:\n    device: banana\n")
    with pytest.raises(ValueError, match=r"p.yaml: device must be cpu, cuda"):
        ros_params.load_params_file(path)
    path.write_text("[1, 2]\n")
    with pytest.raises(ValueError, match="mapping"):
        ros_params.load_params_file(path)
    with pytest.raises(FileNotFoundError):
        ros_params.load_params_file(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("max_rate_hz", -1.0, ">= 0.0"),
        ("fov_deg", 200.0, "a number in (0, 180)"),
        ("input_mode", "video", "one of image, skeleton"),
        ("skeleton_format", "nope", "not registered"),
        ("detector", "yolo", "not one of"),
        ("lifter", "default", "one of 's2m', 'mediapipe-world'"),
        ("device", "gpu0", "cpu, cuda"),
        ("tf_prefix", "/s2m/", "leading '/'"),
        ("camera_frame", "my frame", "leading '/' or spaces"),
        ("max_persons", 1.5, "must be a int"),
        ("max_persons", 0, "an integer >= 1"),
        ("min_keypoint_confidence", 1.5, "a number in [0, 1]"),
        ("body", "", "a non-empty string"),
        ("publish_tf", "yes", "must be a bool"),
        ("bodies_topic", "", "must not be empty"),
        ("not_a_param", 1, "unknown parameter"),
    ],
)
def test_check_param_rejects_with_reason(name, value, words):
    problem = ros_params.check_param(name, value)
    assert problem is not None and words in problem
    with pytest.raises(ValueError, match="."):
        ros_params.check_params({name: value})


def test_check_params_accepts_ints_for_floats():
    params = ros_params.check_params({"max_rate_hz": 5, "tf_prefix": "", "camera_frame": "cam_1"})
    assert params["max_rate_hz"] == 5.0 and isinstance(params["max_rate_hz"], float)
    assert params["publish_mesh"] is True  # defaults fill the rest


def test_descriptors_carry_ranges_and_rules():
    spec = ros_params.PARAM_SPECS
    d = ros_params.descriptor(spec["min_keypoint_confidence"])
    (fp_range,) = d.floating_point_range
    assert d.read_only and (fp_range.from_value, fp_range.to_value) == (0.0, 1.0)
    assert "(0, 180)" in ros_params.descriptor(spec["fov_deg"]).additional_constraints
    assert not ros_params.descriptor(spec["fov_deg"]).read_only
    d = ros_params.descriptor(spec["input_queue_size"])
    assert (d.integer_range[0].from_value, d.integer_range[0].to_value) == (1, 100)
    assert "mediapipe-world" in ros_params.descriptor(spec["lifter"]).additional_constraints


def test_frame_queue_keeps_newest_and_counts_drops():
    q = FrameQueue(maxlen=1)
    assert q.put("a") == 0
    assert q.put("b") == 1  # "a" was never processed: dropped
    assert q.get(timeout=0.01) == "b"
    assert q.get(timeout=0.01) is None
    q2 = FrameQueue(maxlen=2)
    assert [q2.put(x) for x in "abc"] == [0, 0, 1]
    assert [q2.get(0.01), q2.get(0.01)] == ["b", "c"]
    q2.close()
    assert q2.get(timeout=5.0) is None  # closed: returns at once
    with pytest.raises(ValueError, match="maxlen"):
        FrameQueue(0)


def test_stats_account_for_every_frame():
    stats = NodeStats()
    for dropped in (0, 1, 0, 0):
        stats.received(dropped)
    assert not stats.idle()
    stats.done({"pipeline": 10.0, "total": 12.0}, people=2)
    stats.done({"pipeline": 30.0, "total": 31.0}, people=0)
    stats.fail(ValueError("empty image: 0x0 pixels"))
    assert stats.idle()
    snap = stats.snapshot()
    assert snap["frames_in"] == snap["processed"] + snap["dropped"] + snap["failed"] == 4
    assert snap["people"] == 2 and snap["errors"] == {"ValueError": 1}
    assert snap["latency_ms"]["pipeline"]["median"] == pytest.approx(20.0)
    status = diagnostic_status(snap, "s2m_node: pipeline", "test")
    values = {kv.key: kv.value for kv in status.values}
    assert status.level == status.WARN and "empty image" in status.message
    assert values["frames_dropped"] == "1" and values["frames_failed"] == "1"
    assert float(values["latency_total_p95_ms"]) > float(values["latency_total_median_ms"])


@pytest.mark.parametrize("frame_id", ["c", "ca", "cam", "cam1", "camera_optical_frame"])
def test_serialized_mesh_markers_equal_the_message_path(frame_id):
    """The fast bytes deserialise to the plain message, whatever the CDR padding around the
    points (frame ids of every length mod 8 shift the layout)."""
    from visualization_msgs.msg import MarkerArray

    rng = np.random.default_rng(3)
    verts = rng.normal(size=(3, 7, 3))
    verts[1, 2] = np.nan  # a broken body is skipped, as by markers.mesh_markers
    faces = rng.integers(0, 7, size=(5, 3))
    header = convert.make_header(123_456_789, frame_id)
    ids = [4, 9, 2]
    fast = markers.serialized_mesh_markers(verts, faces, header, ids, alpha=0.5, ns=frame_id)
    got = deserialize_message(fast, MarkerArray)
    want = markers.mesh_markers(verts, faces, header, ids, alpha=0.5, ns=frame_id)
    # the same message, field for field (float32 fields compared after their own round trip)
    assert got == deserialize_message(serialize_message(want), MarkerArray)
    assert [m.id for m in got.markers] == [0, 4, 2]  # DELETEALL, then the two finite bodies
    np.testing.assert_array_equal(
        [[p.x, p.y, p.z] for p in got.markers[2].points], verts[2][faces.reshape(-1)]
    )
    assert len(got.markers[1].points) == 15
    empty = markers.serialized_mesh_markers(np.zeros((0, 7, 3)), faces, header, [])
    assert [m.action for m in deserialize_message(empty, MarkerArray).markers] == [3]  # DELETEALL


def test_markers_reject_bad_input():
    header = convert.make_header(1, "cam")
    faces = np.array([[0, 1, 2]])
    with pytest.raises(ValueError, match="track_ids"):
        markers.serialized_mesh_markers(np.zeros((2, 3, 3)), faces, header, [1])
    with pytest.raises(ValueError, match="face indices"):
        markers.serialized_mesh_markers(np.zeros((1, 2, 3)), faces, header)
    with pytest.raises(ValueError, match="vertices"):
        markers.mesh_markers(np.zeros((1, 3, 2)), faces, header)


class _NoPeople:
    """A pipeline that finds nobody (enough to exercise the frame checks)."""

    body = None

    def process(self, image, camera=None, stamp=None):
        assert image.dtype == np.uint8 and image.shape[2] == 3
        self.camera = camera
        return []

    def reset(self):
        pass


def no_people_processor():
    from s2m_model.body import load_body_model

    params = ros_params.check_params({"fov_deg": 90.0})
    return FrameProcessor(_NoPeople(), params, body=load_body_model("s2m-free"))


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
        no_people_processor().process("image", msg)


def test_good_frame_without_people_publishes_an_empty_array():
    from sensor_msgs.msg import CameraInfo

    proc = no_people_processor()
    msg = convert.numpy_to_image(np.zeros((4, 6, 3), np.uint8), "bgr8", 77, "cam")
    out = proc.process("image", msg)
    assert out.bodies.bodies == [] and convert.stamp_to_ns(out.bodies.header.stamp) == 77
    assert out.mesh is not None and out.tf is None
    # no CameraInfo: a 90 degree pinhole (fx = width / 2), as a Camera of the image size
    cam = proc.pipeline.camera
    assert isinstance(cam, Camera) and (cam.width, cam.height) == (6, 4)
    np.testing.assert_allclose(cam.intrinsics, (3.0, 3.0, 3.0, 2.0))
    # CameraInfo calibrated at twice the resolution: K scaled to the image
    proc.camera_info = CameraInfo(width=12, height=8, k=[10.0, 0, 6, 0, 12.0, 4, 0, 0, 1])
    proc.process("image", msg)
    np.testing.assert_allclose(proc.pipeline.camera.intrinsics, (5.0, 6.0, 3.0, 2.0))
    # an uncalibrated camera (K = 0) falls back to fov_deg
    proc.camera_info = CameraInfo(width=6, height=4)
    proc.process("image", msg)
    np.testing.assert_allclose(proc.pipeline.camera.intrinsics, (3.0, 3.0, 3.0, 2.0))


def test_docs_list_every_parameter():
    doc = (REPO / "docs" / "ros.md").read_text()
    missing = [name for name in ros_params.PARAM_SPECS if f"| `{name}` |" not in doc]
    assert not missing, f"docs/ros.md lacks parameters {missing}"
    for spec in ros_params.PARAMS:  # the documented default is the real one
        row = next(line for line in doc.splitlines() if line.startswith(f"| `{spec.name}` |"))
        shown = row.split("|")[2].strip()
        assert shown in (str(spec.default), str(spec.default).lower(), "''"), (spec.name, shown)


def test_live_overrides_are_typed_and_checked():
    got = ros_params.parse_overrides(
        ["max_rate_hz=5", "publish_tf=false", "camera_frame=123", "tf_prefix="]
    )
    assert got == {"max_rate_hz": 5.0, "publish_tf": False, "camera_frame": "123", "tf_prefix": ""}
    assert isinstance(got["max_rate_hz"], float)
    with pytest.raises(ValueError, match="NAME=VALUE"):
        ros_params.parse_overrides(["max_rate_hz"])
    with pytest.raises(ValueError, match="unknown parameter"):
        ros_params.parse_overrides(["speed=3"])
