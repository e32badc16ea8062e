"""``s2m retarget``: the plug-in parser, a results folder, a BVH clip, clear errors."""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json

import numpy as np
import pytest

pytest.importorskip("mink", reason="mink is not installed")

import roma  # noqa: E402
import torch  # noqa: E402

from s2m_model.retarget import cli, synthetic  # noqa: E402
from s2m_model.retarget.robot import load_robot  # noqa: E402

SUMMARY_KEYS = {"frames", "dof", "joint_limit_violations", "velocity_limit_violations",
                "retarget_ms", "end_effector_err_mm"}  # fmt: skip


def _parse(argv):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    cli.register(sub)
    return parser.parse_args(argv)


def _results_folder(path, frames=20, track_id=3):
    """Write a synthetic `s2m run` results folder (camera frame, person 3 m in front)."""
    m = synthetic.motion("wave", frames)
    to_cam = np.diag([1.0, -1.0, -1.0])  # facing the camera, y down
    results = path / "results"
    results.mkdir(parents=True)
    local = m["local"].copy()
    local[:, 0] = to_cam @ local[:, 0]
    rotvec = roma.rotmat_to_rotvec(torch.as_tensor(local)).numpy()
    joints = m["joints"] @ to_cam.T + np.array([0.0, 0.8, 3.0])
    for i in range(frames):
        np.savez(results / f"{i:06d}.npz", track_id=np.array([track_id]),
                 global_orient=rotvec[i, :1].astype(np.float32),
                 body_pose=rotvec[i, 1:][None].astype(np.float32),
                 joints=joints[i][None].astype(np.float32),
                 solved=np.ones((1, 24), bool), stamp=np.array(m["t"][i]))  # fmt: skip
    return path


def test_register_adds_retarget():
    args = _parse(["retarget", "clip.bvh", "--out", "o", "--robot", "s2m_humanoid"])
    assert args.func is cli.run and args.robot == "s2m_humanoid" and args.filter == "auto"


def test_results_folder_to_joints(tmp_path):
    src = _results_folder(tmp_path / "run")
    out = tmp_path / "out"
    argv = ["retarget", str(src), "--robot", "s2m_humanoid", "--out", str(out)]
    has_rerun = importlib.util.find_spec("rerun") is not None
    args = _parse(argv + (["--view"] if has_rerun else []))
    assert args.func(args) == 0
    if has_rerun:
        assert (out / "viewer.rrd").stat().st_size > 10_000
    summary = json.loads((out / "summary.json").read_text())
    assert SUMMARY_KEYS <= summary.keys()
    assert summary["frames"] == 20 and summary["dof"] == 25
    assert summary["joint_limit_violations"] == 0 == summary["velocity_limit_violations"]
    assert {"hands", "feet", "head"} <= summary["end_effector_err_mm"].keys()
    assert {"median", "p95"} <= summary["retarget_ms"].keys()
    assert summary["input_track_id"] == 3 and summary["temporal_filter"] is True
    data = np.load(out / "joints.npz")
    robot = load_robot("s2m_humanoid")
    assert data["q"].shape == (20, 25) and list(data["names"]) == list(robot.joint_names)
    assert data["t"].shape == (20,)
    assert (data["q"] >= robot.lower - 1e-9).all() and (data["q"] <= robot.upper + 1e-9).all()
    with (out / "joints.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["t", *robot.joint_names] and len(rows) == 21
    np.testing.assert_allclose(np.array(rows[1:], float)[:, 1:], data["q"], atol=1e-5)


def test_errors_are_clear(tmp_path, capsys):
    assert cli.main([str(tmp_path / "missing.bvh"), "--out", str(tmp_path / "o"),
                     "--robot", "s2m_humanoid"]) == 2  # fmt: skip
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "x.npz").write_bytes(b"not a zip")
    assert cli.main([str(tmp_path / "empty"), "--out", str(tmp_path / "o"),
                     "--robot", "s2m_humanoid"]) == 2  # fmt: skip
    assert "error" in capsys.readouterr().err
    src = _results_folder(tmp_path / "run", frames=3)
    assert cli.main([str(src), "--out", str(tmp_path / "o"), "--robot", "s2m_humanoid",
                     "--track", "9"]) == 2  # fmt: skip
    assert "track 9 never appears" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("mjlab") is None, reason="mjlab is not installed")
def test_bvh_clip_on_g1(tmp_path, shared_data):
    clip = shared_data / "cmu-mocap" / "131_01.bvh.xz"
    out = tmp_path / "out"
    assert cli.main([str(clip), "--out", str(out), "--max-frames", "30"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 30 and summary["dof"] == 29 and summary["robot"] == "g1"
    assert summary["joint_limit_violations"] == 0 == summary["velocity_limit_violations"]
    assert summary["input_kind"] == "bvh" and summary["temporal_filter"] is False
    assert summary["end_effector_err_mm"]["feet"]["median"] < 50


class _FakePipeline:
    """Stands in for :class:`s2m_model.pipeline.Pipeline`: the synthetic wave, one person."""

    def __init__(self, config=None):
        folder = _FakePipeline.folder
        self.frames = [np.load(f) for f in sorted((folder / "results").glob("*.npz"))]
        self.i = 0

    def process(self, image, camera=None, stamp=None):
        from types import SimpleNamespace

        f = self.frames[self.i % len(self.frames)]
        self.i += 1
        kp = np.full((17, 3), 0.9)
        kp[:, 0], kp[:, 1] = image.shape[1] / 2, image.shape[0] / 2
        return [SimpleNamespace(track_id=3, global_orient=f["global_orient"][0],
                                body_pose=f["body_pose"][0], joints=f["joints"][0],
                                solved=f["solved"][0], keypoints_2d=kp)]  # fmt: skip

    def close(self):
        pass


def test_image_folder_view_has_the_camera_image(tmp_path, monkeypatch):
    pytest.importorskip("rerun", reason="rerun-sdk is not installed")
    import imageio.v3 as iio
    import rerun as rr

    import s2m_model.pipeline as pipeline_module

    _FakePipeline.folder = _results_folder(tmp_path / "fake", frames=6)
    monkeypatch.setattr(pipeline_module, "Pipeline", _FakePipeline)
    images = tmp_path / "images"
    images.mkdir()
    for i in range(6):
        iio.imwrite(images / f"{i:03d}.png", np.full((240, 320, 3), 40 * i, np.uint8))
    out = tmp_path / "out"
    args = _parse(["retarget", str(images), "--robot", "s2m_humanoid", "--out", str(out),
                   "--view"])  # fmt: skip
    assert args.func(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 6 and summary["input_kind"] == "pipeline"
    schema = rr.dataframe.load_recording(str(out / "viewer.rrd")).schema()
    entities = {c.entity_path for c in schema.component_columns()}
    assert {"/camera/image", "/camera/image/keypoints", "/world/robot/pelvis/mesh"} <= entities
