"""Console noise (issue 14): loading the default body prints nothing on stdout/stderr, and the
detectors' native (absl / glog / TFLite) banners on fd 2 are dropped while errors still show."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from s2m_model.util.quiet_stderr import (
    NATIVE_LOGS_ENV,
    filter_native_output,
    is_harmless,
    quiet_native_stderr,
)


def test_loading_the_free_body_prints_nothing(body, capfd):
    from s2m_model.body import load_body_model

    capfd.readouterr()  # whatever the session fixture's first build printed
    model = load_body_model("s2m-free", dtype=torch.float32)
    out, err = capfd.readouterr()
    assert model.faces.shape[1] == 3
    # smplx's "only 10 shape coefficients" line used to appear on every run
    assert "shape coefficients" not in out + err
    assert out.strip() == "", out


# --- native banners on fd 2 (absl / glog / TFLite) -------------------------------------------

BANNER = re.compile(r"absl::InitializeLog|XNNPACK delegate|inference_feedback_manager"
                    r"|landmark_projection_calculator")
XNNPACK = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
ABSL = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
FEEDBACK = ("W0000 00:00:1796284814.178918    9498 inference_feedback_manager.cc:114] Feedback "
            "manager requires a model with a single signature inference. Disabling support for "
            "feedback tensors.\n")
GLOG_ERROR = "E0000 00:00:1796284814.1    9498 calculator_graph.cc:887] INTERNAL: boom\n"
PERSON = Path(__file__).resolve().parents[1].parent / "shared/data/images/coco_000000000785.jpg"

_SCRIPT = """
import sys, time, numpy as np
from s2m_model.detect.mediapipe_pose import MediaPipeDetector
from s2m_model.detect.blazepose_tflite import BlazePoseTFLite
frames = [np.zeros((480, 640, 3), np.uint8)]
if len(sys.argv) > 1:
    from s2m_model.image import load_image
    frames.append(load_image(sys.argv[1]))  # a person: MediaPipe warns once more
for detector in (MediaPipeDetector(), BlazePoseTFLite()):
    time.sleep(0.3)  # MediaPipe's graph threads used to print here, after the constructor
    found = [len(detector.detect(f)) for f in frames]
    detector.reset()  # MediaPipe re-opens its calculators
    time.sleep(0.3)
    print(type(detector).__name__, found + [len(detector.detect(frames[-1]))])
    detector.close()
"""


def _run_detectors(native_logs: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, NATIVE_LOGS_ENV: "1" if native_logs else "0"}
    args = [sys.executable, "-c", _SCRIPT] + ([str(PERSON)] if PERSON.is_file() else [])
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])  # fmt: skip


def test_building_and_running_the_detectors_prints_no_native_banner():
    quiet = _run_detectors(native_logs=False)
    assert quiet.returncode == 0, quiet.stderr
    assert "MediaPipeDetector" in quiet.stdout and "BlazePoseTFLite" in quiet.stdout
    assert not BANNER.search(quiet.stderr), quiet.stderr
    assert quiet.stderr.strip() == "", quiet.stderr
    # The control: with S2M_NATIVE_LOGS=1 the same run shows the banners (so they are real).
    loud = _run_detectors(native_logs=True)
    assert loud.returncode == 0, loud.stderr
    assert "absl::InitializeLog" in loud.stderr and "XNNPACK delegate" in loud.stderr


def test_errors_and_unknown_lines_are_replayed_banners_dropped(capfd):
    capfd.readouterr()
    with quiet_native_stderr():
        os.write(2, (XNNPACK + ABSL + GLOG_ERROR + FEEDBACK + "something else\n").encode())
        os.write(2, b"F0000 00:00:1.2  1 graph.cc:1] Check failed: x\nno newline at the end")
    err = capfd.readouterr().err
    assert err == (GLOG_ERROR + "something else\n"
                   + "F0000 00:00:1.2  1 graph.cc:1] Check failed: x\nno newline at the end")


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_fd_is_restored_and_the_exception_propagates(capfd):
    before, fds = os.fstat(2), _fd_count()
    boom = RuntimeError("graph failed")
    with pytest.raises(RuntimeError) as info, quiet_native_stderr():
        assert os.fstat(2).st_ino != before.st_ino  # redirected inside
        os.write(2, (ABSL + "E0000 00:00:1.0  1 x.cc:1] real error\n").encode())
        raise boom
    assert info.value is boom
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
    assert _fd_count() == fds  # the saved descriptor and the temporary file are closed
    assert capfd.readouterr().err == "E0000 00:00:1.0  1 x.cc:1] real error\n"


def test_overlapping_blocks_from_threads_keep_one_redirection(capfd):
    capfd.readouterr()
    original = os.fstat(2).st_ino
    inner_done = threading.Event()

    def other_thread() -> None:
        with quiet_native_stderr():
            os.write(2, (XNNPACK + "thread: error 1\n").encode())
        inner_done.set()

    with quiet_native_stderr():
        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join(10)
        assert inner_done.is_set()
        assert os.fstat(2).st_ino != original  # the inner exit did not restore fd 2
        os.write(2, (ABSL + "main: error 2\n").encode())
    assert os.fstat(2).st_ino == original
    assert capfd.readouterr().err == "thread: error 1\nmain: error 2\n"


def test_native_logs_env_switches_the_redirection_off(capfd, monkeypatch):
    monkeypatch.setenv(NATIVE_LOGS_ENV, "1")
    capfd.readouterr()
    with quiet_native_stderr():
        os.write(2, XNNPACK.encode())
    assert capfd.readouterr().err == XNNPACK


@pytest.mark.parametrize(("line", "harmless"), [
    (XNNPACK, True), (ABSL, True), (FEEDBACK, True),
    ("I0000 00:00:1796284814.1  12 gl_context.cc:357] GL version: 3.2\n", True),
    ("W0000 00:00:1796284858.2  98 landmark_projection_calculator.cc:186] Using NORM_RECT "
     "without IMAGE_DIMENSIONS is only supported for the square ROI.\n", True),
    (GLOG_ERROR, False), ("ERROR: failed to invoke the interpreter\n", False),
    ("INFO: error while applying the delegate\n", False),  # an error wins over INFO
    ("W0000 00:00:1.0  1 other.cc:1] an unknown warning\n", False),
    ("Traceback (most recent call last):\n", False), ("\n", False),
])  # fmt: skip
def test_is_harmless(line, harmless):
    assert is_harmless(line) is harmless
    assert filter_native_output(line) == ("" if harmless else line)
    assert filter_native_output(line.replace("\n", "\r\n")) == (
        "" if harmless else line.replace("\n", "\r\n"))


def test_a_progress_bar_sharing_the_line_with_a_banner_is_kept():
    bar = "s2m run:   0%|   | 0/1 [00:00<?, ?frame/s]\r"
    assert filter_native_output(bar + XNNPACK + bar + "done\n") == bar + bar + "done\n"


# --- the MediaPipe detector: quiet graph creation and first frames only ------------------------


class _NoisyPose:
    """A fake MediaPipe graph that writes the XNNPACK banner to fd 2 on every frame."""

    def __init__(self, person_from: int) -> None:
        self.person_from, self.frames = person_from, 0

    def process(self, rgb):
        self.frames += 1
        os.write(2, XNNPACK.encode())
        point = SimpleNamespace(x=0.5, y=0.5, z=0.0, visibility=0.9)
        found = self.frames >= self.person_from
        return SimpleNamespace(
            pose_landmarks=SimpleNamespace(landmark=[point] * 33) if found else None,
            pose_world_landmarks=None, segmentation_mask=None,
        )  # fmt: skip

    def reset(self) -> None: ...

    def close(self) -> None: ...


@pytest.mark.parametrize(("person_from", "quiet_frames", "loud_from"), [
    (2, 100, 3),  # quiet until the first frame with a person, then not redirected
    (1000, 2, 3),  # nobody: quiet for QUIET_FRAMES frames only
])  # fmt: skip
def test_mediapipe_graph_is_quiet_until_its_first_person(
    capfd, monkeypatch, person_from, quiet_frames, loud_from
):
    from s2m_model.detect import mediapipe_pose

    monkeypatch.setattr(mediapipe_pose, "QUIET_FRAMES", quiet_frames)
    detector = mediapipe_pose.MediaPipeDetector(
        static_image_mode=True, enable_segmentation=False,
        pose_factory=lambda options: _NoisyPose(person_from),
    )  # fmt: skip
    capfd.readouterr()
    frame = np.zeros((48, 64, 3), np.uint8)
    for i in range(1, loud_from + 1):
        detector.detect(frame)
        err = capfd.readouterr().err
        assert err == ("" if i < loud_from else XNNPACK), (i, err)
    detector.reset()  # a restarted graph is quiet again on its first frames
    detector.detect(frame)
    assert capfd.readouterr().err == ""
    detector.close()
