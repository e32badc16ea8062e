"""Serve a recording to a browser: Rerun's bundled web viewer (WebAssembly, from the
``rerun-sdk`` wheel, nothing downloaded) over local HTTP + WebSocket.

    python -m s2m_model.viewer.serve OUT/viewer.rrd      # then open the printed URL

The viewer process runs with its own configuration folder in which Rerun's usage analytics
are disabled (no user setting is changed).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

WEB_PORT = 9090
WS_PORT = 9877


def _env() -> dict[str, str]:
    """Environment for the rerun process: a private config dir with analytics disabled."""
    config = Path(tempfile.gettempdir()) / "s2m-rerun-config"
    env = {**os.environ, "XDG_CONFIG_HOME": str(config)}
    if not (config / "rerun" / "analytics.json").is_file():
        subprocess.run([sys.executable, "-m", "rerun_cli", "analytics", "disable"], env=env,
                       capture_output=True, timeout=60, check=False)  # fmt: skip
    return env


def viewer_url(web_port: int = WEB_PORT, ws_port: int = WS_PORT) -> str:
    return f"http://localhost:{web_port}/?url=ws://localhost:{ws_port}"


def serve_web(recording: str | Path, web_port: int = WEB_PORT, ws_port: int = WS_PORT,
              wait_s: float = 30.0) -> tuple[subprocess.Popen, str]:  # fmt: skip
    """Start the web viewer on ``recording``; returns ``(process, url)`` once the page answers.

    Raises:
        FileNotFoundError: no such recording. RuntimeError: the viewer did not start.
    """
    path = Path(recording)
    if not path.is_file():
        raise FileNotFoundError(f"no such recording: {path}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rerun_cli", "--serve-web", "--web-viewer-port", str(web_port),
         "--ws-server-port", str(ws_port), str(path)],
        env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"rerun web viewer exited: {proc.stderr.read().decode()[-500:]}")
        try:
            urllib.request.urlopen(f"http://localhost:{web_port}/", timeout=1).close()
            return proc, viewer_url(web_port, ws_port)
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"rerun web viewer did not answer on port {web_port} in {wait_s:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="serve an s2m viewer recording to a browser")
    parser.add_argument("recording", help="a .rrd file (s2m retarget --view writes viewer.rrd)")
    parser.add_argument("--web-port", type=int, default=WEB_PORT)
    parser.add_argument("--ws-port", type=int, default=WS_PORT)
    args = parser.parse_args(argv)
    proc, url = serve_web(args.recording, args.web_port, args.ws_port)
    print(f"open {url}  (Ctrl-C to stop)", flush=True)
    try:
        proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
