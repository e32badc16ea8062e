"""``s2m_node``'s statistics and their diagnostic_msgs form.

:class:`NodeStats` counts every input frame into exactly one of processed, dropped or failed and
keeps per-stage timings of the last seconds; :func:`diagnostic_status` turns a snapshot into the
diagnostic_msgs/DiagnosticStatus the node publishes on ``/diagnostics`` at 1 Hz. Latency
summaries (median, p95, ...) come from :func:`s2m_model.util.timing.summarize`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from s2m_model.util.timing import summarize

# Statistics in the diagnostics cover the frames of the last few seconds.
STATS_WINDOW_S = 5.0
STATS_MAX_FRAMES = 1000


class NodeStats:
    """Thread-safe counters and per-frame timings of ``s2m_node``.

    Every input frame ends up in exactly one of processed, dropped (replaced in the input queue
    before the worker took it, or between the two stages of a pipelined node) or failed (bad
    frame or pipeline error); frames in flight are
    ``frames_in - processed - dropped - failed``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.frames_in = self.processed = self.dropped = self.failed = 0
        self.people = 0
        self.errors: dict[str, int] = {}
        # rejected messages that are not frames (e.g. CameraInfo), per input: {input: count}
        self.rejected: dict[str, int] = {}
        self.last_error = ""
        # the pipeline's own cumulative counters (Pipeline.counters), latest copy
        self.pipeline_counters: dict[str, int] = {}
        self.last_error_time = 0.0
        self._recent: deque[tuple[float, dict[str, float]]] = deque(maxlen=STATS_MAX_FRAMES)
        self._recent_in: deque[float] = deque(maxlen=STATS_MAX_FRAMES)
        self._recent_fail: deque[float] = deque(maxlen=STATS_MAX_FRAMES)

    def received(self, dropped: int) -> None:
        """One frame arrived; ``dropped`` older frames were replaced unprocessed."""
        with self._lock:
            self.frames_in += 1
            self.dropped += dropped
            self._recent_in.append(time.monotonic())

    def drop(self) -> None:
        """One frame that had been taken from the input queue was replaced before its second
        stage took it (``pipelined``): dropped like a frame replaced in the input queue."""
        with self._lock:
            self.dropped += 1

    def done(
        self,
        timings_ms: Mapping[str, float],
        people: int,
        counters: Mapping[str, int] | None = None,
    ) -> None:
        """One frame was processed and published (``{stage: ms}``, people found; ``counters``:
        the pipeline's cumulative :attr:`~s2m_model.pipeline.Pipeline.counters`, if given)."""
        with self._lock:
            self.processed += 1
            self.people += people
            if counters is not None:
                self.pipeline_counters = dict(counters)
            self._recent.append((time.monotonic(), dict(timings_ms)))

    def fail(self, error: BaseException) -> None:
        """One frame failed with ``error`` (counted per exception type, last text kept)."""
        text = f"{type(error).__name__}: {error}"
        with self._lock:
            self.failed += 1
            kind = type(error).__name__
            self.errors[kind] = self.errors.get(kind, 0) + 1
            self.last_error = text[:500]
            self.last_error_time = time.monotonic()
            self._recent_fail.append(self.last_error_time)

    def reject(self, what: str, error: BaseException) -> None:
        """A non-frame input ``what`` (e.g. ``"camera_info"``) was refused with ``error``; the
        frame counters are unchanged (it was never a frame)."""
        with self._lock:
            self.rejected[what] = self.rejected.get(what, 0) + 1
            self.last_error = f"{what} rejected: {type(error).__name__}: {error}"[:500]
            self.last_error_time = time.monotonic()

    def idle(self) -> bool:
        """True when every received frame is accounted for (none waiting or in flight)."""
        with self._lock:
            return self.frames_in == self.processed + self.dropped + self.failed

    def snapshot(self, window_s: float = STATS_WINDOW_S) -> dict[str, Any]:
        """Counters, rates over the last ``window_s`` and per-stage latency summaries (ms)."""
        now = time.monotonic()
        with self._lock:
            recent = [t for s, t in self._recent if now - s <= window_s]
            n_in = sum(1 for s in self._recent_in if now - s <= window_s)
            n_fail = sum(1 for s in self._recent_fail if now - s <= window_s)
            snap = {
                "frames_in": self.frames_in,
                "processed": self.processed,
                "dropped": self.dropped,
                "failed": self.failed,
                "people": self.people,
                "errors": dict(self.errors),
                "rejected": dict(self.rejected),
                "last_error": self.last_error,
                "last_error_age_s": now - self.last_error_time if self.last_error else None,
                "pipeline": dict(self.pipeline_counters),
            }
        stages: dict[str, list[float]] = {}
        for t in recent:
            for name, ms in t.items():
                stages.setdefault(name, []).append(ms)
        snap.update(
            {
                "input_rate_hz": n_in / window_s,
                "rate_hz": len(recent) / window_s,
                "failed_recent": n_fail,
                "processed_recent": len(recent),
                "latency_ms": {k: summarize(v) for k, v in stages.items()},
            }
        )
        return snap


def diagnostic_status(snap: Mapping[str, Any], name: str, hardware_id: str) -> Any:
    """diagnostic_msgs/DiagnosticStatus of a :meth:`NodeStats.snapshot`.

    Level: ERROR when every recent frame failed, WARN when some failed or no input arrived in
    the window, else OK; the message carries the last error text. The pipeline's counters
    (e.g. ``fit_failed``: people whose image fit went wrong) are added as
    ``pipeline_<name>`` values.
    """
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

    failed, ok = snap["failed_recent"], snap["processed_recent"]
    if failed and not ok:
        level, message = DiagnosticStatus.ERROR, f"all recent frames failed: {snap['last_error']}"
    elif failed:
        level, message = DiagnosticStatus.WARN, f"{failed} frame(s) failed: {snap['last_error']}"
    elif snap["input_rate_hz"] == 0:
        level, message = DiagnosticStatus.WARN, "no input"
    else:
        level, message = DiagnosticStatus.OK, "ok"
    values = {
        "frames_in": snap["frames_in"],
        "frames_processed": snap["processed"],
        "frames_dropped": snap["dropped"],
        "frames_failed": snap["failed"],
        "input_rate_hz": f"{snap['input_rate_hz']:.2f}",
        "rate_hz": f"{snap['rate_hz']:.2f}",
        "people": snap["people"],
        "errors": ", ".join(f"{k}={v}" for k, v in sorted(snap["errors"].items())),
        "rejected": ", ".join(f"{k}={v}" for k, v in sorted(snap.get("rejected", {}).items())),
        "last_error": snap["last_error"],
    }
    for key, count in sorted(snap.get("pipeline", {}).items()):
        values[f"pipeline_{key}"] = count
    for stage, s in snap["latency_ms"].items():
        if s.get("count"):
            values[f"latency_{stage}_median_ms"] = f"{s['median']:.2f}"
            values[f"latency_{stage}_p95_ms"] = f"{s['p95']:.2f}"
    return DiagnosticStatus(
        level=level,
        name=name,
        message=message[:500],
        hardware_id=hardware_id,
        values=[KeyValue(key=k, value=str(v)) for k, v in values.items()],
    )
