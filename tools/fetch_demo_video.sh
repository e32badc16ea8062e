#!/usr/bin/env bash
# Fetch the demo video for `make demo`: the BSD-3-Clause clip inside the sports2d wheel.
#
#   tools/fetch_demo_video.sh [OUT_DIR]      (default: .venv/share/s2m/demo)
#
# Downloads exactly sports2d==0.8.34 with pip (no dependencies, nothing installed), checks the
# video against the sha256 recorded in the wheel's RECORD, and extracts only
# Sports2D/Demo/demo.mp4 and the licence into OUT_DIR as demo.mp4 and LICENSE-sports2d.txt.
# Idempotent: does nothing when OUT_DIR already holds a video with the right hash.
# Environment: PYTHON (default .venv/bin/python, else python3).
set -euo pipefail

OUT_DIR="${1:-.venv/share/s2m/demo}"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
SPORTS2D_VERSION="0.8.34"
# sha256 of Sports2D/Demo/demo.mp4 as recorded (urlsafe base64) in the wheel's RECORD
VIDEO_SHA256_B64="2aZkFxhWR7ESMEtXCT8MGA83p2jmoU2sp1ylQfO3gDk"

mkdir -p "$OUT_DIR"
"$PYTHON" - "$OUT_DIR" "$SPORTS2D_VERSION" "$VIDEO_SHA256_B64" <<'PY'
import base64
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

out_dir, version, want = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
video_member = "Sports2D/Demo/demo.mp4"
licence_member = f"sports2d-{version}.dist-info/licenses/LICENSE"
video_out, licence_out = out_dir / "demo.mp4", out_dir / "LICENSE-sports2d.txt"


def digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


if video_out.is_file() and licence_out.is_file() and digest(video_out.read_bytes()) == want:
    print(f"demo video already present: {video_out}")
    sys.exit(0)

with tempfile.TemporaryDirectory() as tmp:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--dest", tmp, f"sports2d=={version}"],
        check=True,
    )
    wheels = list(Path(tmp).glob(f"sports2d-{version}-*.whl"))
    if len(wheels) != 1:
        sys.exit(f"expected one sports2d {version} wheel, got {wheels}")
    with zipfile.ZipFile(wheels[0]) as wheel:
        video = wheel.read(video_member)
        licence = wheel.read(licence_member)
    if digest(video) != want:
        sys.exit(f"{video_member}: sha256 mismatch, refusing to use it")
    notice = (
        f"demo.mp4 is {video_member} from the sports2d {version} wheel on PyPI\n"
        "(https://github.com/davidpagnon/Sports2D), by David Pagnon / perfanalytics,\n"
        "distributed under the BSD 3-Clause License reproduced below.\n\n"
    )
    tmp_video = video_out.with_suffix(".mp4.part")
    tmp_video.write_bytes(video)
    tmp_video.replace(video_out)
    licence_out.write_text(notice + licence.decode("utf-8"))
print(f"demo video: {video_out} ({len(video)} bytes), licence: {licence_out}")
PY
