"""Benchmark: camera image published -> s2m_ros/BodyArray received, s2m_node in its own process.

The bench publishes a 640x480 rgb8 sensor_msgs/Image (stamped with the publication time),
waits for the BodyArray carrying that stamp, then sends the next frame (closed loop: latency
without queueing). Frames: the demo video (letterboxed to 640x480, cycled) or the COCO photo,
or noise when neither exists (the detector then finds nobody).

Baselines, in the same run and on the same frames:

- ``echo_roundtrip_ms``: the same Image through an echo node in another process and back (the
  DDS transport cost of one image hop, twice);
- ``pipeline_inprocess_ms``: ``Pipeline.process`` on the frames in this process, after the
  ROS loops (the compute cost without ROS; per stage in ``pipeline_inprocess_stage_median_ms``).

Prints one JSON object: median / p95 / mean / max (ms) of each, s2m_node's own per-stage
latency (``node_stages_ms``, from /diagnostics), the ROS overhead (median end to end minus the
node's median ``pipeline`` stage on the same frames), the ratio to the in-process baseline, and
whether the 40 ms median goal is met.
FastDDS uses config/fastdds_large_data.xml (large images over shared memory) unless
FASTDDS_DEFAULT_PROFILES_FILE is set.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from s2m_ros.live import use_large_data_profile  # noqa: E402

GOAL_MEDIAN_MS = 40.0
WIDTH, HEIGHT = 640, 480
DEMO_VIDEO = REPO / ".venv" / "share" / "s2m" / "demo" / "demo.mp4"
COCO = REPO.parent / "shared" / "data" / "images" / "coco_000000000785.jpg"
TOPIC, BODIES = "/bench/image", "/bench/bodies"
ECHO_IN, ECHO_OUT = "/bench/echo_in", "/bench/echo_out"

# argv: input topic, output topic
ECHO = textwrap.dedent(
    """
    import sys
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    rclpy.init()
    node = rclpy.create_node("s2m_bench_echo")
    pub = node.create_publisher(Image, sys.argv[2], qos_profile_sensor_data)
    node.create_subscription(Image, sys.argv[1], pub.publish, qos_profile_sensor_data)
    try:
        rclpy.spin(node)
    except Exception:
        pass
    """
)


def letterbox(image: np.ndarray) -> np.ndarray:
    """Resize keeping the aspect ratio, pad with black to (480, 640, 3) uint8."""
    import cv2

    scale = min(WIDTH / image.shape[1], HEIGHT / image.shape[0])
    w, h = round(image.shape[1] * scale), round(image.shape[0] * scale)
    canvas = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    top, left = (HEIGHT - h) // 2, (WIDTH - w) // 2
    canvas[top : top + h, left : left + w] = cv2.resize(image, (w, h))
    return canvas


def load_frames(count: int) -> tuple[list[np.ndarray], str]:
    """Up to ``count`` 640x480 frames and where they come from."""
    if DEMO_VIDEO.is_file():
        import imageio.v3 as iio

        frames = []
        for frame in iio.imiter(DEMO_VIDEO, plugin="FFMPEG"):
            frames.append(letterbox(np.asarray(frame)[:, :, :3]))
            if len(frames) >= count:
                break
        return frames, f"demo video ({DEMO_VIDEO.name})"
    if COCO.is_file():
        from s2m_model.image import load_image

        return [letterbox(load_image(COCO))], "COCO 785"
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)], "noise"


def stats(values: list[float]) -> dict[str, float]:
    """median / p95 / p99 / mean / max (ms, 2 decimals) and count."""
    from s2m_model.util.timing import summarize

    return summarize(values, ndigits=2)


def closed_loop(executor, node, pub, frames, received, count: int, timeout_s: float) -> list:
    """Publish ``count`` frames one at a time; latency (ms) from stamp to reply."""
    from s2m_ros.convert import numpy_to_image
    from s2m_ros.testing import spin_until

    latencies, lost = [], 0
    for i in range(count):
        stamp = node.get_clock().now().nanoseconds
        pub.publish(numpy_to_image(frames[i % len(frames)], "rgb8", stamp, "camera_optical_frame"))
        if spin_until(executor, lambda s=stamp: s in received, timeout_s):
            latencies.append((received.pop(stamp) - stamp) * 1e-6)
        else:
            lost += 1  # best-effort: a lost frame is counted, the loop goes on
    return latencies, lost


def _node_stages(diagnostics: list) -> dict[str, dict[str, float]]:
    """Per-stage latency (ms, median and p95 over the last 5 s) from s2m_node's last
    /diagnostics message."""
    for msg in reversed(diagnostics):
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            stages: dict[str, dict[str, float]] = {}
            for key, value in values.items():
                for stat in ("median", "p95"):
                    suffix = f"_{stat}_ms"
                    if key.startswith("latency_") and key.endswith(suffix):
                        name = key[len("latency_") : -len(suffix)]
                        stages.setdefault(name, {})[stat] = float(value)
            if stages:
                return stages
    return {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=200, help="measured frames per loop")
    parser.add_argument("--warmup", type=int, default=10, help="unmeasured frames first")
    parser.add_argument("--lifter", default="default", help="s2m lifter weights (lifter_model)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait per frame")
    args = parser.parse_args()

    profile = use_large_data_profile()  # before this process creates a DDS participant
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import qos_profile_sensor_data
    from s2m_ros.msg import BodyArray
    from sensor_msgs.msg import Image

    from s2m_ros.convert import stamp_to_ns
    from s2m_ros.testing import free_domain_id, ros_env, ros_node, spin_until

    frames, source = load_frames(60)
    domain = free_domain_id()
    env = ros_env(domain)
    node_cmd = [
        sys.executable, "-m", "s2m_ros.node", "--ros-args",
        "-p", "input_mode:=image", "-p", f"image_topic:={TOPIC}", "-p", "camera_info_topic:=''",
        "-p", f"bodies_topic:={BODIES}", "-p", "max_rate_hz:=0.0",
        "-p", f"lifter_model:={args.lifter}",
    ]  # fmt: skip
    log = Path(tempfile.mkdtemp(prefix="s2m_bench_")) / "s2m_node.log"
    with log.open("w") as log_file:
        children = [subprocess.Popen(node_cmd, env=env, stdout=log_file, stderr=log_file)]
    children += [
        subprocess.Popen([sys.executable, "-c", ECHO, ECHO_IN, ECHO_OUT], env=env),
    ]
    result: dict = {"frames_source": source, "image": f"{WIDTH}x{HEIGHT} rgb8"}
    try:
        with ros_node("s2m_bench", domain) as (node, executor):
            got: dict[int, int] = {}
            echoed: dict[int, int] = {}

            def on_bodies(msg) -> None:
                got[stamp_to_ns(msg.header.stamp)] = node.get_clock().now().nanoseconds
                result["people_last_frame"] = len(msg.bodies)

            node.create_subscription(BodyArray, BODIES, on_bodies, 10)
            diagnostics: list = []
            node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
            node.create_subscription(
                Image,
                ECHO_OUT,
                lambda m: echoed.__setitem__(
                    stamp_to_ns(m.header.stamp), node.get_clock().now().nanoseconds
                ),
                qos_profile_sensor_data,
            )
            pub = node.create_publisher(Image, TOPIC, qos_profile_sensor_data)
            pub_echo = node.create_publisher(Image, ECHO_IN, qos_profile_sensor_data)
            ready = spin_until(
                executor,
                lambda: (
                    (pub.get_subscription_count() and pub_echo.get_subscription_count())
                    or children[0].poll() is not None
                ),
                120.0,
            )
            if not ready or children[0].poll() is not None:
                raise RuntimeError(f"s2m_node did not start: {log.read_text()[-2000:]}")
            spin_until(executor, lambda: False, 0.5)  # let the readers match the writer
            closed_loop(executor, node, pub, frames, got, args.warmup, 30.0)
            e2e, lost = closed_loop(executor, node, pub, frames, got, args.frames, args.timeout)
            got.clear()
            stages = _node_stages(diagnostics)
            echo, echo_lost = closed_loop(
                executor, node, pub_echo, frames, echoed, args.frames, args.timeout
            )
            got.clear()
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()

    from s2m_model.pipeline import DEFAULT_THREADS, Pipeline, PipelineConfig, set_torch_threads

    set_torch_threads(DEFAULT_THREADS)  # as s2m_node's main does
    pipe = Pipeline(PipelineConfig(lifter_model=args.lifter))
    compute: list[float] = []
    compute_stages: dict[str, list[float]] = {}
    t_start = time.monotonic()
    for i in range(args.warmup + args.frames):
        t0 = time.perf_counter()
        pipe.process(frames[i % len(frames)], stamp=time.monotonic() - t_start)
        if i >= args.warmup:
            compute.append((time.perf_counter() - t0) * 1e3)
            for stage, ms in pipe.last_timings.items():
                compute_stages.setdefault(stage, []).append(ms)
    pipe.close()
    node_pipeline = stages.get("pipeline", {}).get("median", float("nan"))

    result.update(
        {
            "fastdds_profile": profile,
            "e2e_ms": stats(e2e),
            "e2e_lost_frames": lost,
            "node_stages_ms": stages,
            "echo_roundtrip_ms": stats(echo),
            "echo_lost_frames": echo_lost,
            "pipeline_inprocess_ms": stats(compute),
            "pipeline_inprocess_stage_median_ms": {
                k: round(float(np.median(v)), 2) for k, v in compute_stages.items()
            },
            # the ROS share on the same frames: end to end minus the node's pipeline stage
            "ros_overhead_median_ms": round(float(np.median(e2e)) - node_pipeline, 2),
            "ratio_e2e_vs_pipeline_inprocess": round(
                float(np.median(e2e)) / float(np.median(compute)), 3
            ),
            "goal_median_ms": GOAL_MEDIAN_MS,
            "meets_goal": bool(np.median(e2e) <= GOAL_MEDIAN_MS),
        }
    )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
