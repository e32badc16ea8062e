"""Viewer: Rerun recordings of retargeted motion, and the web viewer really rendering them in
headless Chromium (screenshot with robot and human pixels; skipped without a browser)."""

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


def _human_pixels(img: np.ndarray) -> int:
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    return int(((r > 150) & (r > g + 40) & (r > b + 60)).sum())  # the orange skeleton


@pytest.mark.skipif(BROWSER is None, reason="no chromium (apt-get install chromium) to render in")
def test_web_viewer_renders_in_headless_chromium(tmp_path):
    pytest.importorskip("websockets", reason="websockets (DevTools client) is not installed")
    name = "g1" if importlib.util.find_spec("mjlab") else "s2m_humanoid"
    robot = load_robot(name)
    motion, result = _clip(robot, 30)
    path = write_recording(tmp_path, robot, result, motion)
    web, ws, cdp = _free_port(), _free_port(), _free_port()
    proc, url = serve_web(path, web_port=web, ws_port=ws)
    try:
        image = _screenshot(url, cdp, tmp_path / "profile",
                            lambda im: _robot_pixels(im) > 1500 and _human_pixels(im) > 100)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    import imageio.v3 as iio

    iio.imwrite(tmp_path / "viewer.png", image.astype(np.uint8))
    assert image.std() > 10, "blank page"
    assert _robot_pixels(image) > 1500, f"no robot on screen ({tmp_path / 'viewer.png'})"
    assert _human_pixels(image) > 100, f"no human skeleton on screen ({tmp_path / 'viewer.png'})"
