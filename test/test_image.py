"""Image validation, loading (incl. corrupt files) and frame iteration (images, folders, video)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from s2m_model.image import (
    MAX_IMAGE_SIDE,
    iter_frames,
    list_images,
    load_image,
    probe_video,
    validate_image,
)


def _rgb(h: int = 12, w: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# --- validate_image -------------------------------------------------------------------------


def test_validate_rgb_uint8_is_unchanged():
    img = _rgb()
    out = validate_image(img)
    assert out.dtype == np.uint8 and out.shape == (12, 16, 3)
    np.testing.assert_array_equal(out, img)
    assert out.flags.c_contiguous


def test_validate_grey_2d_and_single_channel_become_rgb():
    grey = _rgb()[:, :, 0]
    for arr in (grey, grey[:, :, None]):
        out = validate_image(arr)
        assert out.shape == (12, 16, 3)
        for c in range(3):
            np.testing.assert_array_equal(out[:, :, c], grey)


def test_validate_rgba_drops_alpha():
    rgba = np.concatenate([_rgb(), np.full((12, 16, 1), 7, np.uint8)], axis=2)
    out = validate_image(rgba)
    np.testing.assert_array_equal(out, rgba[:, :, :3])


def test_validate_float_in_unit_range_is_scaled():
    img = _rgb()
    out = validate_image(img.astype(np.float64) / 255.0)
    np.testing.assert_array_equal(out, img)
    out32 = validate_image(np.full((4, 5), 0.5, np.float32))
    assert out32.shape == (4, 5, 3) and int(out32[0, 0, 0]) == 128


def test_validate_non_contiguous_view_becomes_contiguous():
    img = _rgb(20, 20)[::2, ::3]
    out = validate_image(img)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, img)


def test_validate_bool_mask_maps_to_0_255():
    mask = np.zeros((3, 3), bool)
    mask[1, 1] = True
    out = validate_image(mask)
    assert out[1, 1, 0] == 255 and out[0, 0, 0] == 0


@pytest.mark.parametrize(
    ("arr", "match"),
    [
        (np.zeros((0, 10, 3), np.uint8), "empty"),
        (np.zeros((10, 0), np.uint8), "empty"),
        (np.zeros((10,), np.uint8), "shape"),
        (np.zeros((2, 3, 4, 3), np.uint8), "shape"),
        (np.zeros((4, 4, 2), np.uint8), "channels"),
        (np.full((4, 4, 3), np.nan, np.float32), "NaN"),
        (np.full((4, 4, 3), np.inf), "NaN"),
        (np.full((4, 4, 3), 2.0), r"\[0, 1\]"),
        (np.full((4, 4, 3), -0.1), r"\[0, 1\]"),
        (np.zeros((4, 4, 3), np.uint16), "dtype"),
        (np.zeros((4, 4, 3), np.int64), "dtype"),
        (np.zeros((MAX_IMAGE_SIDE + 1, 1, 3), np.uint8), "exceeds"),
        (None, "None"),
        (np.array([[object()]]), "object"),
    ],
)
def test_validate_rejects_bad_arrays(arr, match):
    with pytest.raises(ValueError, match=match):
        validate_image(arr)


def test_validate_max_side_is_configurable():
    img = _rgb(30, 40)
    with pytest.raises(ValueError, match="40x30"):
        validate_image(img, max_side=39)
    assert validate_image(img, max_side=40).shape == (30, 40, 3)


def test_validate_accepts_pil_images():
    img = _rgb()
    np.testing.assert_array_equal(validate_image(Image.fromarray(img)), img)


# --- load_image ------------------------------------------------------------------------------


def test_load_png_roundtrip_rgb_grey_rgba(tmp_path):
    img = _rgb()
    Image.fromarray(img).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(load_image(tmp_path / "rgb.png"), img)

    Image.fromarray(img[:, :, 1]).save(tmp_path / "grey.png")
    grey = load_image(tmp_path / "grey.png")
    assert grey.shape == (12, 16, 3)
    np.testing.assert_array_equal(grey[:, :, 2], img[:, :, 1])

    rgba = np.dstack([img, np.full((12, 16), 100, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(load_image(tmp_path / "rgba.png"), img)


def test_load_16bit_grey_is_rescaled(tmp_path):
    data = np.array([[0, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(data).save(tmp_path / "deep.png")
    out = load_image(tmp_path / "deep.png")
    np.testing.assert_array_equal(out[0, :, 0], [0, 128, 255])


def test_load_applies_exif_orientation(tmp_path):
    img = _rgb(10, 30)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    Image.fromarray(img).save(tmp_path / "rot.jpg", exif=exif, quality=95)
    assert load_image(tmp_path / "rot.jpg").shape == (30, 10, 3)


def test_load_truncated_jpeg_names_the_file(tmp_path):
    path = tmp_path / "cut.jpg"
    Image.fromarray(_rgb(64, 64)).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.jpg"):
        load_image(path)


def test_load_garbage_and_empty_files_name_the_file(tmp_path):
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(np.random.default_rng(1).bytes(500))
    with pytest.raises(ValueError, match="garbage.png"):
        load_image(garbage)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.jpg"):
        load_image(empty)


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "nope.png")


def test_load_refuses_huge_image_from_header(tmp_path):
    Image.fromarray(_rgb(10, 50)).save(tmp_path / "wide.png")
    with pytest.raises(ValueError, match="wide.png.*exceeds"):
        load_image(tmp_path / "wide.png", max_side=49)


# --- iter_frames -----------------------------------------------------------------------------


def _write_folder(folder, values):
    folder.mkdir()
    for i, v in values:
        Image.fromarray(np.full((6, 8, 3), v, np.uint8)).save(folder / f"frame_{i}.png")


def test_iter_single_image(tmp_path):
    img = _rgb()
    Image.fromarray(img).save(tmp_path / "one.png")
    frames = list(iter_frames(tmp_path / "one.png"))
    assert len(frames) == 1
    index, stamp, frame = frames[0]
    assert (index, stamp) == (0, 0.0)
    np.testing.assert_array_equal(frame, img)


def test_iter_folder_natural_order_timestamps_stride(tmp_path):
    folder = tmp_path / "seq"
    _write_folder(folder, [(10, 30), (2, 20), (1, 10), (100, 40)])
    (folder / "notes.txt").write_text("not an image")
    assert [p.name for p in list_images(folder)] == [
        "frame_1.png", "frame_2.png", "frame_10.png", "frame_100.png"
    ]
    frames = list(iter_frames(folder, fps=10.0))
    assert [f[0] for f in frames] == [0, 1, 2, 3]
    np.testing.assert_allclose([f[1] for f in frames], [0.0, 0.1, 0.2, 0.3])
    assert [int(f[2][0, 0, 0]) for f in frames] == [10, 20, 30, 40]

    strided = list(iter_frames(folder, fps=10.0, stride=2, max_frames=1))
    assert [(f[0], int(f[2][0, 0, 0])) for f in strided] == [(0, 10)]
    strided = list(iter_frames(folder, stride=3))
    assert [f[0] for f in strided] == [0, 3]


def test_iter_folder_skips_or_raises_on_corrupt_frame(tmp_path):
    folder = tmp_path / "seq"
    _write_folder(folder, [(0, 10), (2, 30)])
    (folder / "frame_1.png").write_bytes(b"\x89PNG broken")
    frames = list(iter_frames(folder))
    assert [(f[0], int(f[2][0, 0, 0])) for f in frames] == [(0, 10), (2, 30)]
    with pytest.raises(ValueError, match="frame_1.png"):
        list(iter_frames(folder, skip_bad=False))


def test_iter_bad_arguments(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        list(iter_frames(tmp_path / "empty"))
    (tmp_path / "x.xyz").write_text("?")
    with pytest.raises(ValueError, match="unknown input type"):
        list(iter_frames(tmp_path / "x.xyz"))
    with pytest.raises(FileNotFoundError):
        list(iter_frames(tmp_path / "missing.mp4"))
    for kwargs in ({"stride": 0}, {"fps": 0.0}, {"fps": float("nan")}, {"max_frames": -1}):
        with pytest.raises(ValueError):
            list(iter_frames(tmp_path / "empty", **kwargs))


def test_iter_video_roundtrip(tmp_path):
    import imageio.v3 as iio

    path = tmp_path / "clip.mp4"
    levels = [20, 60, 100, 140, 180, 220]
    frames = np.stack([np.full((48, 64, 3), v, np.uint8) for v in levels])
    iio.imwrite(path, frames, fps=10, plugin="FFMPEG", macro_block_size=16)

    info = probe_video(path)
    assert info["fps"] == pytest.approx(10.0)
    assert (info["width"], info["height"]) == (64, 48)

    got = list(iter_frames(path))
    assert [g[0] for g in got] == list(range(len(levels)))
    np.testing.assert_allclose([g[1] for g in got], np.arange(len(levels)) / 10.0)
    means = [float(g[2].mean()) for g in got]
    np.testing.assert_allclose(means, levels, atol=6)  # lossy codec
    assert all(g[2].shape == (48, 64, 3) and g[2].dtype == np.uint8 for g in got)

    assert [g[0] for g in iter_frames(path, stride=2, max_frames=2)] == [0, 2]


def test_iter_corrupt_video_names_the_file(tmp_path):
    path = tmp_path / "broken.mp4"
    path.write_bytes(np.random.default_rng(2).bytes(2000))
    with pytest.raises(ValueError, match="broken.mp4"):
        list(iter_frames(path))
