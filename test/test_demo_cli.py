"""The `s2m` entry point and the body part of `s2m demo`."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from PIL import Image

from s2m_model.cli import build_parser, main
from s2m_model.demo import DEMO_POSES


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """`s2m demo` sets torch's threads for its process (--threads): undo it afterwards."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


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


def test_run_and_demo_expose_front_end_and_threads(tmp_path, body, monkeypatch):
    """`s2m run --lifter/--lifter-model/--threads` parse (bad choices refused), and `s2m demo`
    hands its pipeline options on to `s2m run`."""
    import s2m_model.cli

    parser = build_parser()
    args = parser.parse_args(["run", "clip.mp4", "--out", "o", "--lifter", "mediapipe-world",
                              "--lifter-model", "ckpt.pt", "--threads", "2"])  # fmt: skip
    assert (args.lifter, args.lifter_model, args.threads) == ("mediapipe-world", "ckpt.pt", 2)
    assert parser.parse_args(["run", "x", "--out", "o"]).threads == 1
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "x", "--out", "o", "--lifter", "banana"])

    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")  # only its existence is checked before `s2m run` takes over
    calls: list[list[str]] = []
    monkeypatch.setattr(s2m_model.cli, "main", lambda argv: calls.append(argv) or 0)
    assert main(["demo", "--out", str(tmp_path), "--size", "64", "--video", str(video),
                 "--lifter", "mediapipe-world", "--threads", "1"]) == 0  # fmt: skip
    (argv,) = calls
    assert argv[:2] == ["run", str(video)]
    assert argv[argv.index("--lifter") + 1] == "mediapipe-world"
    assert argv[argv.index("--threads") + 1] == "1"
