"""Bad images and videos (issue 14): a huge JPEG is refused from its header (never decoded),
a truncated video ends with a warning (frames read vs expected), a broken video gives one
error line instead of ffmpeg's ~50-line banner."""

from __future__ import annotations

import io
import logging
import time

import numpy as np
import pytest
from PIL import Image

from s2m_model.image import ffmpeg_error, iter_frames, load_image, probe_video


def _jpeg_with_header_size(width: int, height: int) -> bytes:
    """A 16x16 JPEG whose SOF0 header claims ``width`` x ``height`` (a few hundred bytes)."""
    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    # SOF0: marker(2) length(2) precision(1) height(2) width(2)
    data[sof + 5 : sof + 7] = height.to_bytes(2, "big")
    data[sof + 7 : sof + 9] = width.to_bytes(2, "big")
    return bytes(data)


@pytest.mark.parametrize("pil_bomb_check", [True, False], ids=["pil-limit", "no-pil-limit"])
@pytest.mark.parametrize("side", [20000, 9000])
def test_huge_jpeg_is_refused_from_the_header(tmp_path, monkeypatch, side, pil_bomb_check):
    path = tmp_path / "huge.jpg"
    path.write_bytes(_jpeg_with_header_size(side, side))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with Image.open(path) as img:
        assert img.size == (side, side)  # the header really claims it
    monkeypatch.undo()
    if not pil_bomb_check:  # our own header check must refuse it even without PIL's
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)

    def no_decode(self, *args, **kwargs):
        raise AssertionError("decoded an image that the header already refuses")

    monkeypatch.setattr(Image.Image, "load", no_decode)
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", no_decode)
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"huge\.jpg.*exceeds the limit"):
        load_image(path)
    assert time.perf_counter() - t0 < 1.0


def _write_video(path, frames: int = 60, faststart: bool = True) -> bytes:
    iio = pytest.importorskip("imageio.v3")
    pytest.importorskip("imageio_ffmpeg")
    video = (np.random.default_rng(0).random((frames, 64, 64, 3)) * 255).astype(np.uint8)
    # faststart: the index (moov) first, so a truncated file still opens and decodes part-way
    params = ["-movflags", "+faststart"] if faststart else []
    iio.imwrite(path, video, fps=30, plugin="FFMPEG", codec="libx264", output_params=params)
    return path.read_bytes()


def test_truncated_video_ends_early_with_a_warning(tmp_path, caplog):
    data = _write_video(tmp_path / "full.mp4")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="s2m_model.image"):
        n = sum(1 for _ in iter_frames(cut))
    assert 0 < n < 60
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("ended early" in w and f"{n} of 60" in w for w in warnings), warnings


def test_complete_video_gives_no_warning(tmp_path, caplog):
    _write_video(tmp_path / "full.mp4")
    with caplog.at_level(logging.WARNING, logger="s2m_model.image"):
        assert sum(1 for _ in iter_frames(tmp_path / "full.mp4")) == 60
        # stopping early on purpose is not a truncation
        assert len(list(iter_frames(tmp_path / "full.mp4", max_frames=5))) == 5
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("kind", ["random", "head"])
def test_broken_video_is_one_error_line_without_the_banner(tmp_path, capfd, kind):
    data = _write_video(tmp_path / "full.mp4", faststart=False)
    broken = tmp_path / "broken.mp4"
    payload = np.random.default_rng(1).bytes(4096) if kind == "random" else data[:4096]
    broken.write_bytes(payload)
    capfd.readouterr()
    with pytest.raises(ValueError) as info:
        probe_video(broken)
    message = str(info.value)
    assert "\n" not in message and "broken.mp4" in message
    assert "ffmpeg version" not in message and "configuration:" not in message
    assert "Invalid data" in message or "moov atom" in message
    with pytest.raises(ValueError) as info:
        list(iter_frames(broken))
    assert "\n" not in str(info.value)
    out = capfd.readouterr()
    assert "ffmpeg version" not in out.out + out.err


def test_ffmpeg_error_without_stderr_keeps_the_message():
    assert ffmpeg_error(RuntimeError("Could not load\nmeta")) == "Could not load meta"
    assert ffmpeg_error(RuntimeError("")) == "RuntimeError"
