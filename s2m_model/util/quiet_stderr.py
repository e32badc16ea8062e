"""Silence the banners that native (C++) libraries write straight to the stderr file descriptor.

MediaPipe's graphs and the LiteRT (TFLite) interpreter log through absl / glog / TFLite's own
logger, which write to file descriptor 2 directly: ``sys.stderr`` redirection, the ``logging``
module and environment variables such as ``GLOG_minloglevel`` / ``TF_CPP_MIN_LOG_LEVEL`` do not
reach them (issue 14). Every run used to start with lines like::

    INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    W0000 00:00:1796284814.178918    9498 inference_feedback_manager.cc:114] Feedback manager ...
    W0000 00:00:1796284858.248510    9844 landmark_projection_calculator.cc:186] Using NORM_RECT ...

:func:`quiet_native_stderr` points fd 2 at an anonymous temporary file (``os.dup`` /
``os.dup2``) for the duration of a ``with`` block, then restores it and writes back to the real
stderr everything except the known-harmless lines (:func:`is_harmless`). Errors (glog ``E`` /
``F`` severity, ``ERROR:`` / ``FATAL:``, anything containing "error" or "Check failed") are
always written back, and so is any line it does not recognise (e.g. what another thread printed
meanwhile): it drops only what it knows to be noise. Output is written back when the block ends,
so it is delayed, not lost.

Scope and caveats:

* **Process-wide.** File descriptor 2 belongs to the whole process, so while a block is open
  the stderr output of *every* thread (Python's ``sys.stderr`` included) goes to the temporary
  file, and appears only when the block ends. Use it around graph / interpreter creation and
  the first inference(s), not around every frame of a long-running multi-threaded node.
  Overlapping blocks (nested, or from several threads) are safe: a reference count keeps one
  redirection open until the last block ends, which then writes back what all of them caught.
* **Crashes.** If native code aborts the process inside a block (a failed ``CHECK``), its last
  message is in the temporary file and never reaches the terminal. Set ``S2M_NATIVE_LOGS=1``
  (:data:`NATIVE_LOGS_ENV`) to switch the redirection off and see everything.
* **Python exceptions are never swallowed**: the block only restores the descriptor (in a
  ``finally``) and re-raises.
* If fd 2 is closed or no temporary file can be made, the block runs unredirected.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from typing import BinaryIO

NATIVE_LOGS_ENV = "S2M_NATIVE_LOGS"
"""Environment variable: a non-empty value other than ``0`` disables :func:`quiet_native_stderr`
(every native line then reaches the terminal, e.g. to debug a crash)."""

_GLOG = r"^[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ "
"""A glog / absl line prefix: severity letter, MMDD, time, thread id."""

HARMLESS_PATTERNS: tuple[re.Pattern[str], ...] = (
    # absl's note, printed once per process before the first absl log line.
    re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written "
               r"to STDERR"),
    # TFLite's own INFO lines ("Created TensorFlow Lite XNNPACK delegate for CPU.",
    # "Initialized TensorFlow Lite runtime.").
    re.compile(r"^INFO: "),
    # glog / absl INFO severity.
    re.compile(r"^I\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ "),
    # MediaPipe 0.10.21 warnings on every graph, about features s2m does not use.
    re.compile(_GLOG + r"inference_feedback_manager\.cc:\d+\] Feedback manager requires a model "
               r"with a single signature inference"),
    re.compile(_GLOG + r"landmark_projection_calculator\.cc:\d+\] Using NORM_RECT without "
               r"IMAGE_DIMENSIONS"),
)
"""Lines :func:`quiet_native_stderr` drops (unless :func:`is_error` says otherwise)."""

_ERROR = re.compile(r"^[EF]\d{4} |^(ERROR|FATAL)\b|error|Check failed", re.IGNORECASE)


def is_error(line: str) -> bool:
    """True for an error line: glog ``E`` / ``F`` severity, ``ERROR`` / ``FATAL`` prefixes, or
    any mention of "error" (any case) or "Check failed"."""
    return _ERROR.search(line) is not None


def is_harmless(line: str, patterns: Sequence[re.Pattern[str]] = HARMLESS_PATTERNS) -> bool:
    """True for a known-harmless banner line (one of ``patterns``) that is not an error."""
    line = line.rstrip("\r\n")
    return not is_error(line) and any(p.search(line) for p in patterns)


_LINES = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")
"""A line with its ending; a carriage return ends one too (a progress bar redrawing itself)."""


def filter_native_output(
    text: str, *pattern_sets: Sequence[re.Pattern[str]]
) -> str:
    """``text`` without its known-harmless lines (the other lines and their endings kept;
    a carriage return also ends a line, so a progress bar sharing a line with a banner is kept).

    A line is dropped when it is harmless under every one of ``pattern_sets`` (default: the
    one set :data:`HARMLESS_PATTERNS`), so overlapping blocks with different patterns never
    drop what one of them wants to see.
    """
    sets = pattern_sets or (HARMLESS_PATTERNS,)
    return "".join(
        line for line in _LINES.findall(text) if not all(is_harmless(line, p) for p in sets)
    )


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def _flush_python_stderr() -> None:
    for stream in (sys.stderr, sys.__stderr__):
        with contextlib.suppress(Exception):  # closed or replaced streams
            if stream is not None:
                stream.flush()


class _Redirect:
    """The one process-wide fd-2 redirection, shared by overlapping blocks (reference count)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.saved_fd: int | None = None
        self.capture: BinaryIO | None = None
        self.patterns: list[Sequence[re.Pattern[str]]] = []

    def enter(self, patterns: Sequence[re.Pattern[str]]) -> bool:
        """Start (or join) the redirection; False when it could not be started."""
        with self.lock:
            if self.depth == 0:
                capture = saved = None
                try:
                    capture = tempfile.TemporaryFile(mode="w+b")
                    saved = os.dup(2)
                    _flush_python_stderr()
                    os.dup2(capture.fileno(), 2)
                except OSError:
                    if saved is not None:
                        os.close(saved)
                    if capture is not None:
                        capture.close()
                    return False
                self.capture, self.saved_fd, self.patterns = capture, saved, []
            self.depth += 1
            self.patterns.append(patterns)
            return True

    def exit(self) -> None:
        """Leave; the last block out restores fd 2 and writes back what matters."""
        with self.lock:
            self.depth -= 1
            if self.depth > 0:
                return
            capture, saved, patterns = self.capture, self.saved_fd, self.patterns
            self.capture, self.saved_fd, self.patterns = None, None, []
            assert capture is not None and saved is not None
            try:
                _flush_python_stderr()
                os.dup2(saved, 2)
            finally:
                os.close(saved)
            try:
                capture.seek(0)
                text = capture.read().decode("utf-8", errors="replace")
            finally:
                capture.close()
            kept = filter_native_output(text, *patterns)
            if kept:
                with contextlib.suppress(OSError):  # stderr gone: nothing to tell anyone
                    _write_all(2, kept.encode("utf-8", errors="replace"))


_REDIRECT = _Redirect()


def native_logs_enabled() -> bool:
    """True when :data:`NATIVE_LOGS_ENV` asks for every native line (no redirection)."""
    return os.environ.get(NATIVE_LOGS_ENV, "").strip() not in ("", "0")


@contextlib.contextmanager
def quiet_native_stderr(
    patterns: Sequence[re.Pattern[str]] = HARMLESS_PATTERNS,
) -> Iterator[None]:
    """Drop the known-harmless lines native code writes to fd 2 inside the block.

    See the module docstring: the redirection is process-wide (all threads), output is
    written back when the block ends, errors and unknown lines are always kept, the
    descriptor is restored even when the block raises, and exceptions propagate unchanged.

    Args:
        patterns: regular expressions of the lines to drop (default :data:`HARMLESS_PATTERNS`).
    """
    if native_logs_enabled() or not _REDIRECT.enter(patterns):
        yield
        return
    try:
        yield
    finally:
        _REDIRECT.exit()
