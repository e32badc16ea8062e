"""Latency summaries: the one place that turns a list of timings into median / p95 numbers."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np


def summarize(values: Sequence[float], ndigits: int | None = None) -> dict[str, float]:
    """``{"median", "p95", "p99", "mean", "max", "count"}`` of ``values`` (e.g. milliseconds).

    An empty sequence gives ``{"count": 0}`` only. ``ndigits`` rounds the float fields (for
    JSON reports meant to be read by people).
    """
    if len(values) == 0:
        return {"count": 0}
    a = np.asarray(values, dtype=np.float64)
    out = {
        "median": float(np.median(a)),
        "p95": float(np.percentile(a, 95)),
        "p99": float(np.percentile(a, 99)),
        "mean": float(a.mean()),
        "max": float(a.max()),
    }
    if ndigits is not None:
        out = {k: round(v, ndigits) for k, v in out.items()}
    return {**out, "count": int(a.size)}


@contextmanager
def stopwatch_ms(into: dict[str, float], key: str) -> Iterator[None]:
    """Add the wall time (ms) of the ``with`` block to ``into[key]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        into[key] = into.get(key, 0.0) + (time.perf_counter() - start) * 1e3
