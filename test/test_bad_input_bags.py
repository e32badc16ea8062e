"""Damaged bags and params files (issue 14): `s2m eval-bag` ends in one clear error line
(exit code 2), never a traceback. The broken files are generated in tmp_path."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("rosbags")

from s2m_model import cli  # noqa: E402
from s2m_ros.bag import BagError, BagWriter, bag_topics, read_bag, s2m_typestore  # noqa: E402


def _good_bag(root: Path, storage: str) -> Path:
    path = root / f"good_{storage}"
    string = s2m_typestore().types["std_msgs/msg/String"]
    with BagWriter(path, storage) as writer:
        for i in range(50):
            writer.write("/t", i * 1000, string(data="x" * 500))
    return path


def _storage_file(bag: Path) -> Path:
    return next(f for f in bag.iterdir() if f.suffix in (".mcap", ".db3"))


def _damage(bag: Path, kind: str) -> Path:
    broken = bag.with_name(f"{bag.name}_{kind}")
    shutil.copytree(bag, broken)
    data_file = _storage_file(broken)
    if kind == "truncated":
        data = data_file.read_bytes()
        data_file.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        data_file.write_bytes(b"")
    elif kind == "bad_yaml":
        (broken / "metadata.yaml").write_text("rosbag2_bagfile_information: [\n  : :\n")
    elif kind == "wrong_yaml":
        (broken / "metadata.yaml").write_text("something_else: 1\n")
    else:
        raise AssertionError(kind)
    return broken


def _eval_bag(capsys, argv: list[str]) -> tuple[int, str]:
    rc = cli.main(["eval-bag", *argv])
    return rc, capsys.readouterr().err


KINDS = ["truncated", "empty", "bad_yaml", "wrong_yaml"]


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
@pytest.mark.parametrize("kind", KINDS)
def test_damaged_bag_raises_bag_error(tmp_path, storage, kind):
    broken = _damage(_good_bag(tmp_path, storage), kind)
    with pytest.raises(BagError, match="cannot read bag"):
        bag_topics(broken)
    with pytest.raises(BagError):
        list(read_bag(broken))


def test_good_bag_still_reads(tmp_path):
    bag = _good_bag(tmp_path, "mcap")
    assert bag_topics(bag) == {"/t": "std_msgs/msg/String"}
    assert len(list(read_bag(bag))) == 50


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
@pytest.mark.parametrize("kind", KINDS)
def test_eval_bag_on_a_damaged_bag_is_one_line(tmp_path, capsys, storage, kind):
    pytest.importorskip("rclpy")
    broken = _damage(_good_bag(tmp_path, storage), kind)
    rc, err = _eval_bag(capsys, [str(broken), "--out", str(tmp_path / "out")])
    assert rc == 2
    assert "Traceback" not in err and err.strip().count("\n") == 0
    assert err.startswith("s2m eval-bag: error: cannot read bag") and str(broken) in err


def test_eval_bag_without_metadata_is_one_line(tmp_path, capsys):
    pytest.importorskip("rclpy")
    bag = _good_bag(tmp_path, "mcap")
    (bag / "metadata.yaml").unlink()
    rc, err = _eval_bag(capsys, [str(bag), "--out", str(tmp_path / "out")])
    assert rc == 2 and "Traceback" not in err and err.strip().count("\n") == 0


@pytest.mark.parametrize(
    "text",
    ["s2m_node:\n  ros__parameters: [\n   : :\n", "- a\n- b\n", "", "\t\x00: {"],
    ids=["broken", "list", "empty", "binary"],
)
def test_eval_bag_with_invalid_params_yaml_is_one_line(tmp_path, capsys, text):
    pytest.importorskip("rclpy")
    params = tmp_path / "params.yaml"
    params.write_text(text)
    bag = _good_bag(tmp_path, "mcap")
    rc, err = _eval_bag(capsys, [str(bag), "--out", str(tmp_path / "out"), "--params", str(params)])
    assert rc == 2
    assert "Traceback" not in err and err.strip().count("\n") == 0
    assert err.startswith("s2m eval-bag: error:") and str(params) in err
