"""A short soak (bench/soak.py, <= 30 s): a 30 FPS 640x480 stream into s2m_node over DDS;
every frame the node received has an outcome (unaccounted == 0) and the JSON has its keys.
No latency threshold: this machine is shared."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")

REPO = Path(__file__).resolve().parents[1]
KEYS = {
    "published", "processed", "dropped", "failed", "unaccounted", "rss_mb", "rss_growth_pct",
    "latency_ms", "output_hz", "received_by_node", "lost_in_transport",
}  # fmt: skip


def test_short_soak_accounts_for_every_frame():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run = subprocess.run(
        [sys.executable, str(REPO / "bench" / "soak.py"), "--seconds", "8", "--warmup", "2",
         "--baseline-frames", "0"],
        capture_output=True, text=True, timeout=240, env=env, cwd=REPO,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout)
    assert KEYS <= set(result), sorted(KEYS - set(result))
    assert set(result["rss_mb"]) == {"start", "end"}
    assert {"p50", "p95", "p99"} <= set(result["latency_ms"])
    assert result["published"] > 100  # ~30 FPS for 8 s
    assert result["received_by_node"] > 0 and result["processed"] > 0
    assert result["unaccounted"] == 0, result
    assert result["processed"] + result["dropped"] + result["failed"] == result["received_by_node"]
    assert result["node_exit"] == "rc=0"
