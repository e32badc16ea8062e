"""The `s2m` entry point and the body part of `s2m demo`."""

from __future__ import annotations

import subprocess
import sys

from PIL import Image

from s2m_model.cli import build_parser, main
from s2m_model.demo import DEMO_POSES


def test_help_lists_every_command():
    text = build_parser().format_help()
    for command in ("body", "demo", "export", "detect"):
        assert command in text
    out = subprocess.run([sys.executable, "-m", "s2m_model.cli", "body", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "build" in out and "info" in out and "convert" in out


def test_demo_body_previews(tmp_path, body):
    assert main(["demo", "--out", str(tmp_path), "--skip-video", "--size", "96"]) == 0
    for name in DEMO_POSES:
        png = tmp_path / "body" / f"{name}.png"
        img = Image.open(png)
        assert img.size == (2 * 72, 96)
        # Something was drawn: not a blank white image.
        assert min(img.convert("L").getextrema()) < 200
        assert (tmp_path / "body" / f"{name}.ply").stat().st_size > 100_000


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["body", "info", str(tmp_path / "nope.npz")]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "Traceback" not in err
