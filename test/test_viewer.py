"""Viewer: Rerun recordings of retargeted motion, and the web viewer really rendering them in
headless Chromium (screenshot with robot, human and camera-image pixels; skipped without a
browser)."""

from __future__ import annotations

import base64
import importlib.util
import json
import shutil
import socket
import subprocess
import time
import urllib.request

import numpy as np
import pytest

pytest.importorskip("rerun", reason="rerun-sdk is not installed")
pytest.importorskip("mink", reason="mink is not installed")

from s2m_model.retarget import from_smpl, load_robot, retarget_motion, synthetic  # noqa: E402
from s2m_model.viewer import human_vertices, robot_meshes, write_recording  # noqa: E402
from s2m_model.viewer.camera_frames import CameraFrames  # noqa: E402
from s2m_model.viewer.serve import serve_web  # noqa: E402

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")


def _clip(robot, frames=20):
    m = synthetic.motion("wave", frames)
    motion = from_smpl(m["local"], m["joints"], m["t"])
    return motion, retarget_motion(robot, motion)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_recording_of_the_urdf_robot(tmp_path):
    robot = load_robot("s2m_humanoid")
    meshes = robot_meshes(robot)
    assert len(meshes) >= 10  # pelvis, thighs, shins, feet, torso, head, arms, hands
    motion, result = _clip(robot)
    path = write_recording(tmp_path, robot, result, motion)
    assert path.name == "viewer.rrd" and path.stat().st_size > 10_000


def _entities(path) -> set[str]:
    import rerun as rr

    schema = rr.dataframe.load_recording(str(path)).schema()
    return {c.entity_path for c in schema.component_columns()}


GREEN = (20, 230, 20)  # the test's camera image: a colour nothing else in the scene has


def _camera(frames: int, width: int = 960, height: int = 720) -> CameraFrames:
    cam = CameraFrames()
    kp = np.array([[width / 2, height / 2, 0.9]] * 17)
    kp[3, 2] = 0.1  # low confidence: not drawn
    for i in range(frames):
        cam.add(i, np.full((height, width, 3), GREEN, np.uint8), {1: kp, 2: None})
    return cam


def test_camera_frames_are_downscaled_jpeg_with_scaled_keypoints():
    cam = _camera(2)
    assert len(cam) == 2 and cam.size == (480, 360)
    assert cam.jpeg[0][:2] == b"\xff\xd8"  # JPEG magic
    assert len(cam.jpeg[0]) < 20_000  # far below the 480x360x3 raw bytes
    assert set(cam.keypoints[0]) == {1}  # None keypoints skipped
    np.testing.assert_allclose(cam.keypoints[0][1][0], [240, 180, 0.9])
    small = CameraFrames()
    small.add(0, np.zeros((40, 60), np.uint8))  # grey, smaller than max_width: kept as is
    assert small.size == (60, 40) and 0 not in small.keypoints
    with pytest.raises(ValueError, match="camera frame"):
        small.add(1, np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match="keypoints of track 3"):
        small.add(1, np.zeros((4, 4, 3), np.uint8), {3: np.zeros((17,))})
    with pytest.raises(ValueError, match="quality"):
        CameraFrames(quality=0)


def test_recording_with_camera_image_and_keypoints(tmp_path):
    robot = load_robot("s2m_humanoid")
    motion, result = _clip(robot, 6)
    path = write_recording(tmp_path, robot, result, motion, camera=_camera(6))
    entities = _entities(path)
    assert {"/camera/image", "/camera/image/keypoints", "/camera/image/bones"} <= entities
    assert "/world/human/skeleton/joints" in entities and "/world/targets" in entities


def test_people_only_recording_for_s2m_run(tmp_path, body):
    m = synthetic.motion("wave", 4)
    motion = from_smpl(m["local"], m["joints"], m["t"])
    path = write_recording(tmp_path, None, None, {1: motion, 4: motion}, body=body,
                           camera=_camera(4))  # fmt: skip
    entities = _entities(path)
    assert {"/world/human/1/mesh", "/world/human/4/skeleton/bones", "/camera/image"} <= entities
    assert not any(e.startswith(("/world/robot", "/world/ground")) for e in entities)
    with pytest.raises(ValueError, match="needs its retarget result"):
        write_recording(tmp_path, load_robot("s2m_humanoid"), None, motion)


def test_human_mesh_follows_the_motion(body):
    m = synthetic.motion("wave", 3)
    motion = from_smpl(m["local"], m["joints"], m["t"])
    verts = human_vertices(motion, body)
    assert verts.ndim == 3 and verts.shape[0] == 3 and verts.shape[2] == 3
    # the mesh stands where the skeleton stands: pelvis inside the mesh's bounding box
    for i in range(3):
        lo, hi = verts[i].min(0), verts[i].max(0)
        assert (motion.joints[i, 0] > lo).all() and (motion.joints[i, 0] < hi).all()
        assert hi[2] - lo[2] > 1.2  # standing, z up


def _screenshot(url: str, port: int, profile, until, timeout_s: float = 90.0) -> np.ndarray:
    """Load ``url`` in headless Chromium and screenshot it (DevTools protocol) until
    ``until(image)`` holds or ``timeout_s`` passes; returns the last image (H, W, 3)."""
    import imageio.v3 as iio
    from websockets.sync.client import connect

    browser = subprocess.Popen(
        [BROWSER, "--headless=new", "--no-sandbox", "--use-angle=swiftshader",
         "--enable-unsafe-swiftshader", f"--remote-debugging-port={port}",
         "--window-size=1280,800", f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                tabs = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json"))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        page = next(t for t in tabs if t["type"] == "page")
        with connect(page["webSocketDebuggerUrl"], max_size=None) as ws:
            counter = iter(range(1, 10_000))

            def call(method, **params):
                n = next(counter)
                ws.send(json.dumps({"id": n, "method": method, "params": params}))
                while True:
                    msg = json.loads(ws.recv(timeout=30))
                    if msg.get("id") == n:
                        return msg.get("result", {})

            call("Page.navigate", url=url)
            deadline = time.monotonic() + timeout_s
            while True:
                time.sleep(2.0)
                data = call("Page.captureScreenshot", format="png")["data"]
                image = iio.imread(base64.b64decode(data))[..., :3].astype(int)
                if until(image) or time.monotonic() > deadline:
                    return image
    finally:
        browser.terminate()
        browser.wait(timeout=20)


def _robot_pixels(img: np.ndarray) -> int:
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    return int(((b > r + 15) & (g > r) & (b > 110)).sum())  # the light-blue robot


def _image_pixels(img: np.ndarray) -> int:
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    return int(((g > 180) & (r < 80) & (b < 80)).sum())  # the green camera image


def _human_pixels(img: np.ndarray) -> int:
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    return int(((r > 150) & (r > g + 40) & (r > b + 60)).sum())  # the orange skeleton


@pytest.mark.skipif(BROWSER is None, reason="no chromium (apt-get install chromium) to render in")
def test_web_viewer_renders_in_headless_chromium(tmp_path):
    pytest.importorskip("websockets", reason="websockets (DevTools client) is not installed")
    name = "g1" if importlib.util.find_spec("mjlab") else "s2m_humanoid"
    robot = load_robot(name)
    motion, result = _clip(robot, 30)
    path = write_recording(tmp_path, robot, result, motion, camera=_camera(30))
    web, ws, cdp = _free_port(), _free_port(), _free_port()
    proc, url = serve_web(path, web_port=web, ws_port=ws)
    try:
        image = _screenshot(url, cdp, tmp_path / "profile",
                            lambda im: _robot_pixels(im) > 1500 and _human_pixels(im) > 100
                            and _image_pixels(im) > 5000)  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    import imageio.v3 as iio

    iio.imwrite(tmp_path / "viewer.png", image.astype(np.uint8))
    assert image.std() > 10, "blank page"
    assert _robot_pixels(image) > 1500, f"no robot on screen ({tmp_path / 'viewer.png'})"
    assert _human_pixels(image) > 100, f"no human skeleton on screen ({tmp_path / 'viewer.png'})"
    assert _image_pixels(image) > 5000, f"no camera image on screen ({tmp_path / 'viewer.png'})"


class _FakeRunPipeline:
    """Stands in for :class:`s2m_model.pipeline.Pipeline` in ``s2m run``: two people doing the
    synthetic wave, 3 m and 4 m in front of the camera (camera frame, y down)."""

    motion = synthetic.motion("wave", 3)

    def __init__(self, config=None):
        self.i, self.last_timings, self.counters, self.faces = 0, {"total": 1.0}, {}, None

    def process(self, image, camera=None, stamp=None):
        from types import SimpleNamespace

        import roma
        import torch

        to_cam = np.diag([1.0, -1.0, -1.0])
        local = self.motion["local"][self.i % 3].copy()
        local[0] = to_cam @ local[0]
        rotvec = roma.rotmat_to_rotvec(torch.as_tensor(local)).numpy()
        people = []
        for track, (x, z) in ((1, (-0.6, 3.0)), (2, (0.6, 4.0))):
            joints = self.motion["joints"][self.i % 3] @ to_cam.T + np.array([x, 0.8, z])
            kp = np.full((17, 3), 0.9)
            kp[:, :2] = (image.shape[1] / 2, image.shape[0] / 2)
            people.append(SimpleNamespace(
                track_id=track, betas=np.zeros(10), global_orient=rotvec[0],
                body_pose=rotvec[1:], transl=joints[0], joints=joints,
                solved=np.ones(24, bool), confidence=np.ones(24), keypoints_2d=kp,
                bbox=np.zeros(4), vertices=None, lifter="s2m"))  # fmt: skip
        self.i += 1
        return people

    def close(self):
        pass


def test_s2m_run_view_writes_people_and_camera(tmp_path, monkeypatch, capsys):
    import imageio.v3 as iio

    import s2m_model.pipeline as pipeline_module
    from s2m_model.cli import main

    monkeypatch.setattr(pipeline_module, "Pipeline", _FakeRunPipeline)
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        iio.imwrite(images / f"{i:03d}.png", np.full((240, 320, 3), GREEN, np.uint8))
    out = tmp_path / "out"
    assert main(["run", str(images), "--out", str(out), "--no-overlay", "--ply-every", "0",
                 "--view"]) == 0  # fmt: skip
    assert "python -m s2m_model.viewer.serve" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["outputs"]["viewer"] == str(out / "viewer.rrd")
    entities = _entities(out / "viewer.rrd")
    assert {"/world/human/1/mesh", "/world/human/2/skeleton/joints", "/camera/image",
            "/camera/image/keypoints"} <= entities  # fmt: skip
    assert not any(e.startswith("/world/robot") for e in entities)
    # without --view: no recording
    assert main(["run", str(images), "--out", str(tmp_path / "plain"), "--no-overlay",
                 "--ply-every", "0"]) == 0  # fmt: skip
    assert not (tmp_path / "plain" / "viewer.rrd").exists()


def test_viewer_import_is_lazy():
    import subprocess
    import sys

    code = ("import sys, s2m_model.viewer, s2m_model.retarget.cli; "
            "assert 'rerun' not in sys.modules, 'rerun imported'")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
