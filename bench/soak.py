"""Soak benchmark: a 30 FPS 640x480 camera stream into s2m_node (its own process) over DDS.

For ``--seconds`` (default 600) this process publishes sensor_msgs/Image frames at ``--fps``
(stamped with the publication time; the demo video letterboxed to 640x480 and cycled, else
noise), receives the BodyArray outputs, and samples the node's resident memory. At the end it
waits until the node has accounted for every frame it received (its /diagnostics counters),
then prints one JSON object:

- ``published``: frames sent; ``received_by_node``: the node's ``frames_in``;
  ``lost_in_transport``: published - received (best-effort sensor QoS, as a camera driver);
- ``processed``, ``dropped`` (replaced in the node's input queue: rate limit / slow frames),
  ``failed``: the node's counters; ``unaccounted`` = received - processed - dropped - failed
  (must be 0: every frame the node got has an outcome); ``outputs_received``: BodyArrays here;
- ``rss_mb`` {start, end} of s2m_node (start: after ``--warmup`` seconds), ``rss_growth_pct``;
- ``latency_ms`` {p50, p95, p99, ...}: publish stamp -> BodyArray received, per output;
- ``output_hz``: BodyArrays received per second of streaming;
- ``node_stage_ms``: the node's own stage timings over its last seconds (its /diagnostics:
  ``total`` is arrival -> published, ``age`` the frame stamp's age when published);
- baseline, same run and frames: ``pipeline_inprocess_ms`` (``Pipeline.process`` in this
  process, no ROS), with ``--baseline-frames`` > 0.

FastDDS uses config/fastdds_large_data.xml (large images over shared memory) unless
FASTDDS_DEFAULT_PROFILES_FILE is set. Domain: a free ROS_DOMAIN_ID, discovery on localhost.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from s2m_ros.live import use_large_data_profile  # noqa: E402

TOPIC, BODIES = "/soak/image", "/soak/bodies"
GOALS = {"rss_growth_pct": 5.0, "unaccounted": 0, "latency_p95_ms": 50.0}


def load_frames(count: int) -> tuple[list[np.ndarray], str]:
    """Up to ``count`` 640x480 rgb8 frames and where they come from (as bench/ros_latency)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from ros_latency import load_frames as latency_frames

    return latency_frames(count)


def rss_mb(pid: int) -> float:
    """Resident set size of process ``pid`` in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for process {pid}")


def node_counters(diagnostics: list) -> dict[str, int] | None:
    """frames_in / processed / dropped / failed from s2m_node's last /diagnostics message."""
    keys = {
        "frames_in": "frames_in",
        "frames_processed": "processed",
        "frames_dropped": "dropped",
        "frames_failed": "failed",
    }
    for msg in reversed(diagnostics):
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            if status.name.startswith("s2m_node") and "frames_in" in values:
                return {name: int(values[key]) for key, name in keys.items()}
    return None


def node_stage_ms(diagnostics: list) -> dict[str, dict[str, float]]:
    """The node's own per-stage latency over its last seconds (``{stage: {median, p95}}`` ms,
    from ``latency_<stage>_median_ms`` / ``_p95_ms`` of its last /diagnostics message): where
    the time between a frame's arrival and its outputs goes."""
    for msg in reversed(diagnostics):
        for status in msg.status:
            if not status.name.startswith("s2m_node"):
                continue
            stages: dict[str, dict[str, float]] = {}
            for kv in status.values:
                for stat in ("median", "p95"):
                    suffix = f"_{stat}_ms"
                    if kv.key.startswith("latency_") and kv.key.endswith(suffix):
                        stage = kv.key[len("latency_"):-len(suffix)]
                        stages.setdefault(stage, {})[stat] = float(kv.value)
            if stages:
                return stages
    return {}


def baseline(frames: list[np.ndarray], count: int) -> dict:
    """``Pipeline.process`` per frame in this process (ms), node defaults, no ROS."""
    from s2m_model.pipeline import DEFAULT_THREADS, Pipeline, PipelineConfig, set_torch_threads
    from s2m_model.util.timing import summarize

    set_torch_threads(DEFAULT_THREADS)  # as s2m_node's main does
    pipe = Pipeline(PipelineConfig())
    times = []
    t_start = time.monotonic()
    for i in range(count + 5):
        t0 = time.perf_counter()
        pipe.process(frames[i % len(frames)], stamp=time.monotonic() - t_start)
        if i >= 5:  # the first calls load and warm the models
            times.append((time.perf_counter() - t0) * 1e3)
    pipe.close()
    return summarize(times, ndigits=2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="streaming time")
    parser.add_argument("--fps", type=float, default=30.0, help="published frames per second")
    parser.add_argument(
        "--max-rate-hz", type=float, default=None, help="s2m_node max_rate_hz (default: its own)"
    )
    parser.add_argument("--no-pipelined", action="store_true",
                        help="s2m_node pipelined:=false (detector and estimate in one thread)")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds before rss start")
    parser.add_argument("--baseline-frames", type=int, default=60, help="0: no baseline")
    parser.add_argument("--startup-timeout", type=float, default=180.0)
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.fps <= 0:
        parser.error("--seconds and --fps must be > 0")

    profile = use_large_data_profile()  # before this process creates a DDS participant
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import qos_profile_sensor_data
    from s2m_ros.msg import BodyArray
    from sensor_msgs.msg import Image

    from s2m_model.util.timing import summarize
    from s2m_ros.convert import numpy_to_image, stamp_to_ns
    from s2m_ros.testing import free_domain_id, ros_env, ros_node, spin_until, stop_process

    frames, source = load_frames(90)
    domain = free_domain_id()
    node_cmd = [
        sys.executable, "-m", "s2m_ros.node", "--ros-args",
        "-p", "input_mode:=image", "-p", f"image_topic:={TOPIC}", "-p", "camera_info_topic:=''",
        "-p", f"bodies_topic:={BODIES}",
    ]  # fmt: skip
    if args.max_rate_hz is not None:
        node_cmd += ["-p", f"max_rate_hz:={float(args.max_rate_hz)}"]
    if args.no_pipelined:
        node_cmd += ["-p", "pipelined:=false"]
    log = Path(tempfile.mkdtemp(prefix="s2m_soak_")) / "s2m_node.log"
    with log.open("w") as log_file:
        child = subprocess.Popen(node_cmd, env=ros_env(domain), stdout=log_file, stderr=log_file)
    result: dict = {
        "frames_source": source,
        "image": "640x480 rgb8",
        "fps": args.fps,
        "seconds": args.seconds,
        "max_rate_hz": args.max_rate_hz,
        "pipelined": not args.no_pipelined,
        "fastdds_profile": profile,
    }
    try:
        with ros_node("s2m_soak", domain) as (node, executor):
            now = node.get_clock().now
            latency_ms: list[float] = []
            outputs = 0

            def on_bodies(msg) -> None:
                nonlocal outputs
                outputs += 1
                latency_ms.append((now().nanoseconds - stamp_to_ns(msg.header.stamp)) * 1e-6)

            node.create_subscription(BodyArray, BODIES, on_bodies, 50)
            diagnostics: list = []
            node.create_subscription(
                DiagnosticArray, "/diagnostics", lambda m: diagnostics.append(m), 10
            )
            pub = node.create_publisher(Image, TOPIC, qos_profile_sensor_data)
            ready = spin_until(
                executor,
                lambda: pub.get_subscription_count() > 0 or child.poll() is not None,
                args.startup_timeout,
            )
            if not ready or child.poll() is not None:
                raise RuntimeError(f"s2m_node did not start: {log.read_text()[-2000:]}")
            # the node's first frames load and warm its models: one frame until an output
            spin_until(executor, lambda: False, 0.5)
            warm_deadline = time.monotonic() + args.startup_timeout
            while outputs == 0 and time.monotonic() < warm_deadline and child.poll() is None:
                pub.publish(numpy_to_image(frames[0], "rgb8", now().nanoseconds, "camera"))
                spin_until(executor, lambda: outputs > 0, 1.0)
            spin_until(executor, lambda: False, 1.0)
            before = node_counters(diagnostics) or {}
            if not before:
                spin_until(executor, lambda: node_counters(diagnostics) is not None, 3.0)
                before = node_counters(diagnostics) or {}
            latency_ms.clear()
            outputs = 0

            published = 0
            rss_start = rss_end = None
            period = 1.0 / args.fps
            t0 = time.monotonic()
            while (elapsed := time.monotonic() - t0) < args.seconds:
                if child.poll() is not None:
                    raise RuntimeError(f"s2m_node exited: {log.read_text()[-2000:]}")
                frame = frames[published % len(frames)]
                pub.publish(numpy_to_image(frame, "rgb8", now().nanoseconds, "camera"))
                published += 1
                if rss_start is None and elapsed >= min(args.warmup, args.seconds / 2):
                    rss_start = rss_mb(child.pid)
                next_tick = t0 + published * period
                while (wait := next_tick - time.monotonic()) > 0:
                    executor.spin_once(timeout_sec=wait)
            streamed_s = time.monotonic() - t0
            rss_end = rss_mb(child.pid)
            out_count = outputs

            # every frame the node received gets an outcome; wait for the counters to settle
            def settled() -> bool:
                c = node_counters(diagnostics)
                return bool(
                    c
                    and c["frames_in"] - before.get("frames_in", 0) > 0
                    and c["frames_in"] == c["processed"] + c["dropped"] + c["failed"]
                )

            spin_until(executor, lambda: False, 1.5)
            spin_until(executor, settled, 15.0)
            spin_until(executor, lambda: False, 1.5)  # the next diagnostics, to be sure
            after = node_counters(diagnostics) or {}
            stages = node_stage_ms(diagnostics)
    finally:
        tail = stop_process(child)
    counts = {k: after.get(k, 0) - before.get(k, 0) for k in ("frames_in", *after) if k}
    received = counts.get("frames_in", 0)
    handled = counts.get("processed", 0) + counts.get("dropped", 0) + counts.get("failed", 0)
    lat = summarize(latency_ms, ndigits=2)
    result.update(
        {
            "published": published,
            "received_by_node": received,
            "lost_in_transport": published - received,
            "processed": counts.get("processed", 0),
            "dropped": counts.get("dropped", 0),
            "failed": counts.get("failed", 0),
            "unaccounted": received - handled,
            "outputs_received": out_count,
            "rss_mb": {"start": round(rss_start or 0.0, 1), "end": round(rss_end, 1)},
            "rss_growth_pct": round(100.0 * (rss_end / rss_start - 1.0), 2) if rss_start else None,
            "latency_ms": {
                "p50": lat.get("median"),
                "p95": lat.get("p95"),
                "p99": lat.get("p99"),
                **{k: v for k, v in lat.items() if k not in ("median", "p95", "p99")},
            },
            "output_hz": round(out_count / streamed_s, 2),
            "node_stage_ms": stages,
            "streamed_s": round(streamed_s, 1),
            "node_exit": tail.splitlines()[0] if tail else "",
        }
    )
    if args.baseline_frames > 0:
        result["pipeline_inprocess_ms"] = baseline(frames, args.baseline_frames)
    p95 = result["latency_ms"]["p95"]
    result["goals"] = GOALS
    result["meets_goals"] = bool(
        result["unaccounted"] == 0
        and result["rss_growth_pct"] is not None
        and result["rss_growth_pct"] < GOALS["rss_growth_pct"]
        and p95 is not None
        and p95 <= GOALS["latency_p95_ms"]
    )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
