"""Bad command lines (issue 14): `--out` at an existing file and `--device cuda` without CUDA
end in one clear error line (exit code 2), never a traceback; -v still shows the traceback."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from s2m_model import cli


def _fake_parser(handler) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s2m")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("fake")
    p.add_argument("--out")
    p.add_argument("--device", default=None)
    p.set_defaults(func=handler)
    return parser


def _make_out_folder(args) -> int:
    (Path(args.out) / "results").mkdir(parents=True, exist_ok=True)
    return 0


def _run(monkeypatch, capsys, handler, argv):
    monkeypatch.setattr(cli, "build_parser", lambda: _fake_parser(handler))
    rc = cli.main(argv)
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("sub", ["", "deeper/still"])
def test_out_at_an_existing_file_is_one_line(tmp_path, monkeypatch, capsys, sub):
    afile = tmp_path / "results.json"
    afile.write_text("{}")
    rc, err = _run(monkeypatch, capsys, _make_out_folder, ["fake", "--out", str(afile / sub)])
    assert rc == 2
    assert err.strip().count("\n") == 0 and "Traceback" not in err
    assert err.startswith("s2m fake: error:") and str(afile) in err and "--out" in err


def test_out_at_an_existing_file_with_verbose_shows_the_traceback(tmp_path, monkeypatch):
    afile = tmp_path / "f"
    afile.write_text("")
    monkeypatch.setattr(cli, "build_parser", lambda: _fake_parser(_make_out_folder))
    with pytest.raises(OSError):
        cli.main(["-v", "fake", "--out", str(afile)])


def test_file_expected_but_folder_given(tmp_path, monkeypatch, capsys):
    def write(args) -> int:
        Path(args.out).write_text("x")
        return 0

    rc, err = _run(monkeypatch, capsys, write, ["fake", "--out", str(tmp_path)])
    assert rc == 2 and "is a folder, but a file is needed" in err and "Traceback" not in err


def test_real_run_command_with_out_at_a_file(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    image = tmp_path / "img.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    afile = tmp_path / "out.txt"
    afile.write_text("")
    rc = cli.main(["run", str(image), "--out", str(afile)])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert f"s2m run: error: {afile} is a file" in err


@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_device_cuda_without_cuda_is_one_line(monkeypatch, capsys, device):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    called = []
    rc, err = _run(monkeypatch, capsys, lambda a: called.append(a) or 0,
                   ["fake", "--device", device])  # fmt: skip
    assert rc == 2 and not called
    assert err.strip().count("\n") == 0 and "CUDA is not available" in err
    assert "--device cpu" in err


def test_check_device_accepts_and_rejects(monkeypatch):
    cli.check_device(None)
    cli.check_device("cpu")
    with pytest.raises(ValueError, match="not a torch device"):
        cli.check_device("gpu0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    cli.check_device("cuda")
    cli.check_device("cuda:0")
    with pytest.raises(ValueError, match="only 1 CUDA device"):
        cli.check_device("cuda:3")


def test_torch_cuda_assertion_is_one_line_other_assertions_are_not(monkeypatch, capsys):
    def cuda_tensor(args) -> int:
        raise AssertionError("Torch not compiled with CUDA enabled")

    rc, err = _run(monkeypatch, capsys, cuda_tensor, ["fake"])
    assert rc == 2 and "Torch not compiled with CUDA enabled; use --device cpu" in err

    def bug(args) -> int:
        raise AssertionError("internal invariant")

    monkeypatch.setattr(cli, "build_parser", lambda: _fake_parser(bug))
    with pytest.raises(AssertionError):
        cli.main(["fake"])
