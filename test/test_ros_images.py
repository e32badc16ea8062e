"""sensor_msgs/Image and CompressedImage <-> numpy without cv_bridge: encodings, padding, and
clear errors on bad input."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")

import cv2  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

from s2m_ros.convert import (  # noqa: E402
    compressed_image_to_numpy,
    image_to_numpy,
    numpy_to_image,
    stamp_to_ns,
)


@pytest.fixture
def rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_colour_round_trip(rgb, encoding):
    msg = numpy_to_image(rgb, encoding, stamp=1_500_000_000_250, frame_id="cam")
    assert (msg.width, msg.height, msg.encoding) == (7, 5, encoding)
    assert stamp_to_ns(msg.header.stamp) == 1_500_000_000_250 and msg.header.frame_id == "cam"
    out = image_to_numpy(msg)
    assert out.shape == (5, 7, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, rgb)


def test_wire_channel_order(rgb):
    """bgr8 really is stored blue first (not just consistent with itself)."""
    msg = numpy_to_image(rgb, "bgr8")
    wire = np.frombuffer(msg.data, np.uint8).reshape(5, 7, 3)
    np.testing.assert_array_equal(wire, rgb[:, :, ::-1])
    rgba = numpy_to_image(rgb, "rgba8")
    assert set(np.frombuffer(rgba.data, np.uint8)[3::4]) == {255}


def test_mono8_becomes_grey_rgb(rgb):
    grey = rgb[:, :, 0]
    out = image_to_numpy(numpy_to_image(grey, "mono8"))
    np.testing.assert_array_equal(out, np.repeat(grey[:, :, None], 3, axis=2))


def test_padded_rows(rgb):
    """A step with padding bytes (as some drivers send) is honoured."""
    padded = np.zeros((5, 7 * 3 + 11), np.uint8)
    padded[:, :21] = rgb.reshape(5, 21)
    msg = Image(height=5, width=7, encoding="rgb8", step=32, data=padded.tobytes())
    out = image_to_numpy(msg)
    np.testing.assert_array_equal(out, rgb)
    assert out.flags.c_contiguous


def test_copy_flag(rgb):
    msg = numpy_to_image(rgb)
    view = image_to_numpy(msg)
    fresh = image_to_numpy(msg, copy=True)
    assert np.shares_memory(view, np.frombuffer(msg.data, np.uint8))
    assert not np.shares_memory(fresh, np.frombuffer(msg.data, np.uint8))


def _image(**fields) -> Image:
    base = {"height": 2, "width": 3, "encoding": "rgb8", "step": 9, "data": bytes(18)}
    base.update(fields)
    return Image(**base)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"encoding": "16UC1", "step": 6, "data": bytes(12)}, "depth"),
        ({"encoding": "32FC1"}, "depth"),
        ({"encoding": "yuv422"}, "unsupported image encoding 'yuv422'"),
        ({"encoding": ""}, "unsupported"),
        ({"width": 0, "step": 0, "data": b""}, "empty image"),
        ({"height": 0, "data": b""}, "empty image"),
        ({"step": 8}, "step 8 is shorter"),
        ({"data": bytes(17)}, "truncated"),
        ({"data": bytes(19)}, "oversized"),
        ({"encoding": "rgba8"}, "shorter than a row"),  # step 9 < 3 * 4 bytes
    ],
)
def test_bad_images_raise_clear_errors(fields, match):
    with pytest.raises(ValueError, match=match):
        image_to_numpy(_image(**fields))


@pytest.mark.parametrize(
    ("arr", "encoding", "match"),
    [
        (np.zeros((2, 3, 3), np.float32), "rgb8", "uint8"),
        (np.zeros((2, 3), np.uint8), "rgb8", r"\(H, W, 3\)"),
        (np.zeros((2, 3, 3), np.uint8), "mono8", "mono8"),
        (np.zeros((0, 3, 3), np.uint8), "rgb8", "non-empty"),
        (np.zeros((2, 3, 3), np.uint8), "16UC1", "unsupported"),
    ],
)
def test_numpy_to_image_bad_input(arr, encoding, match):
    with pytest.raises(ValueError, match=match):
        numpy_to_image(arr, encoding)


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_compressed_round_trip(ext):
    # smooth image so that JPEG stays close
    y, x = np.mgrid[0:32, 0:48]
    rgb = np.stack([x * 5, y * 7, (x + y) * 3], axis=2).astype(np.uint8)
    ok, buf = cv2.imencode(ext, rgb[:, :, ::-1])
    assert ok
    msg = CompressedImage(format=ext[1:], data=buf.tobytes())
    out = compressed_image_to_numpy(msg)
    assert out.shape == rgb.shape
    if ext == ".png":
        np.testing.assert_array_equal(out, rgb)
    else:
        assert np.abs(out.astype(int) - rgb).mean() < 4


@pytest.mark.parametrize(
    ("fmt", "data", "match"),
    [
        ("jpeg", b"", "empty"),
        ("jpeg", b"not an image at all", "could not decode"),
        ("16UC1; compressedDepth png", b"\x89PNG", "depth"),
    ],
)
def test_compressed_bad_input(fmt, data, match):
    with pytest.raises(ValueError, match=match):
        compressed_image_to_numpy(CompressedImage(format=fmt, data=data))
