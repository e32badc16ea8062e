"""The ROS subcommands of ``s2m``: ``live``, ``eval-bag`` and ``record``.

A plug-in of the ``s2m`` CLI: :func:`register` is the entry point ``ros`` of the group
``s2m.commands`` (setup.py), so the ROS-free library never imports this layer by name. Nothing
here imports rclpy at import time, so ``s2m --help`` works without ROS 2 and stays instant.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

# s2m_ros.params.DEFAULT_NAMESPACE, repeated so that `s2m --help` imports neither torch nor
# rclpy (test_ros_launch checks that they agree).
DEFAULT_NAMESPACE = "/s2m"


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``live``, ``eval-bag`` and ``record`` subcommands (each sets ``func``, a
    callable taking the parsed arguments and returning the exit code)."""
    fmt = argparse.RawDescriptionHelpFormatter

    live = sub.add_parser(
        "live",
        help="run s2m_node (and a video player) in one process: the pip-only launch file",
        formatter_class=fmt,
        description="Run s2m_node with a ROS 2 params file, in one process (no `ros2 launch`).\n"
        "With --video, a player publishes the video (or a bag's image topic) on s2m_node's\n"
        "image topic; without it, s2m_node listens to a camera driver (e.g. usb_cam).\n\n"
        "Outputs, in --namespace (default /s2m, as the launch file): bodies\n"
        "(s2m_ros/BodyArray), mesh (BodyMesh), mesh_faces (latched), markers (RViz), plus\n"
        "/tf (s2m/<track>/<joint>) and /diagnostics. Stops on Ctrl-C, after\n"
        "--duration seconds, or at the end of the video when the params file says loop: false;\n"
        "then prints a JSON summary (frames in/processed/dropped/failed, latency).",
        epilog="examples:\n"
        "  s2m live --video walk.mp4 --rate 0.5\n"
        "  s2m live --params my.yaml --set max_rate_hz=5 --set device=cuda\n"
        "  s2m live --set input_mode=skeleton --set skeleton_topic=/mocap/skeleton",
    )
    live.add_argument(
        "--params", help="ROS 2 params file (default: config/live.yaml of the s2m_ros package)"
    )
    live.add_argument("--video", help="video file or rosbag2 folder to play as the camera")
    live.add_argument("--rate", type=float, help="playback speed of --video (0 = fastest)")
    live.add_argument(
        "--duration", type=float, default=0.0, help="stop after S seconds (0 = until Ctrl-C)"
    )
    live.add_argument(
        "--namespace",
        default=DEFAULT_NAMESPACE,
        help=f"namespace of s2m_node (default {DEFAULT_NAMESPACE}; '' = the root namespace)",
    )
    live.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override an s2m_node parameter (repeatable), e.g. --set max_rate_hz=5",
    )
    live.set_defaults(func=run_live)

    ev = sub.add_parser(
        "eval-bag",
        help="run s2m on every frame of a bag: output bag, metrics.json and plots",
        formatter_class=fmt,
        description="Process every frame of a rosbag2 (MCAP or SQLite3) offline and\n"
        "deterministically, as s2m_node would (no frame dropped). Input: a sensor_msgs/Image,\n"
        "CompressedImage or s2m_ros/Skeleton3D topic. Writes into --out:\n"
        "  bag/              the input topics and the outputs (bodies, mesh, mesh_faces, /tf)\n"
        "  metrics.json      frames in/out/dropped/failed, latency per stage (median, p95),\n"
        "                    processing rate, input stamp jitter, and with --gt-topic\n"
        "                    MPJPE / PA-MPJPE / absolute MPJPE (mm) and per-joint errors\n"
        "  latency.png, per_joint_error.png",
        epilog="example:\n"
        "  s2m eval-bag recording/ --out out/eval --topic /camera/image_raw --gt-topic /gt/bodies",
    )
    ev.add_argument("bag", help="input rosbag2 folder")
    ev.add_argument("--out", required=True, help="output folder (its bag/ must not exist)")
    ev.add_argument(
        "--topic",
        help="input topic (default: /camera/image_raw if present, else the first image or "
        "Skeleton3D topic)",
    )
    ev.add_argument("--gt-topic", help="ground-truth s2m_ros/BodyArray topic (same stamps)")
    ev.add_argument(
        "--camera-info-topic",
        help="sensor_msgs/CameraInfo topic (default: camera_info_topic of the params, if present)",
    )
    ev.add_argument("--params", help="params file with an s2m_node section (default: defaults)")
    ev.add_argument(
        "--storage", choices=("mcap", "sqlite3"), default="mcap", help="output bag storage"
    )
    ev.add_argument("--prefix", default="/s2m", help="namespace of the output topics")
    ev.add_argument("--max-frames", type=int, default=0, help="stop after N frames (0 = all)")
    ev.set_defaults(func=run_eval_bag)

    rec = sub.add_parser(
        "record",
        help="record live ROS 2 topics into a bag (like `ros2 bag record`)",
        formatter_class=fmt,
        description="Record topics of the running ROS 2 graph into a rosbag2 (MCAP or SQLite3)\n"
        "without ros2cli: the topic types are discovered, messages stored serialized.\n"
        "Latched topics (TRANSIENT_LOCAL publishers, /tf_static) keep their last message.",
        epilog="example:\n  s2m record --topics /camera/image_raw /s2m/bodies /tf --out run1 "
        "--duration 30",
    )
    rec.add_argument("--topics", nargs="+", required=True, help="topics to record")
    rec.add_argument("--out", required=True, help="bag folder to create")
    rec.add_argument(
        "--duration", type=float, default=0.0, help="record S seconds (0 = until Ctrl-C)"
    )
    rec.add_argument(
        "--storage", choices=("mcap", "sqlite3"), default="mcap", help="bag storage format"
    )
    rec.add_argument(
        "--discovery-timeout",
        type=float,
        default=5.0,
        help="seconds to wait for the topics to appear",
    )
    rec.set_defaults(func=run_record)


def _require_rclpy() -> None:
    try:
        import rclpy  # noqa: F401
    except ImportError as exc:
        raise RuntimeError(
            f"ROS 2 (rclpy) is not installed ({exc}); see docs/ros.md for the pip install"
        ) from exc


def _threads() -> None:
    from s2m_model.pipeline import DEFAULT_THREADS, set_torch_threads

    set_torch_threads(DEFAULT_THREADS)  # a program's choice: tiny per-frame tensors


def run_live(args: argparse.Namespace) -> int:
    from s2m_ros.params import parse_overrides

    overrides = parse_overrides(args.set)  # a bad --set fails before any ROS start-up
    _require_rclpy()
    from s2m_ros.live import default_params_file
    from s2m_ros.live import run_live as run

    _threads()
    summary = run(
        args.params or default_params_file(),
        video=args.video,
        rate=args.rate,
        duration=args.duration,
        overrides=overrides,
        namespace=args.namespace,
    )
    print(json.dumps(summary, indent=2))
    return 0


def run_eval_bag(args: argparse.Namespace) -> int:
    _require_rclpy()
    from s2m_ros.eval_bag import evaluate_bag
    from s2m_ros.params import load_params_file

    _threads()
    # the outputs' namespace is the node's: a params file addresses s2m_node there
    try:
        params = load_params_file(args.params, namespace=args.prefix) if args.params else {}
    except ValueError as exc:
        # YAML parser messages span several lines: the CLI prints one error line
        raise ValueError(" ".join(str(exc).split())) from exc
    result = evaluate_bag(
        args.bag,
        args.out,
        topic=args.topic,
        gt_topic=args.gt_topic,
        camera_info_topic=args.camera_info_topic,
        params=params,
        storage=args.storage,
        prefix=args.prefix,
        max_frames=args.max_frames,
        progress=sys.stderr.isatty(),
    )
    m = result.metrics
    brief: dict[str, Any] = {
        "frames": m["frames"],
        "latency_ms": {
            k: m["latency_ms"][k] for k in ("pipeline", "frame") if k in m["latency_ms"]
        },
        "processing_rate_hz": m["processing_rate_hz"],
        "accuracy": {k: v for k, v in (m["accuracy"] or {}).items() if not isinstance(v, dict)},
        "out": str(result.out_dir),
    }
    print(json.dumps(brief, indent=2))
    return 0


def record_topics(
    topics: list[str],
    out: str,
    duration: float = 0.0,
    storage: str = "mcap",
    discovery_timeout: float = 5.0,
    domain_id: int | None = None,
) -> dict[str, int]:
    """Record ``topics`` of the live graph into the bag ``out``; returns messages per topic.

    ``domain_id`` None: ``ROS_DOMAIN_ID`` from the environment.

    Raises:
        ValueError: none of the topics appeared within ``discovery_timeout`` seconds.
    """
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy
    from rclpy.signals import SignalHandlerOptions

    from s2m_ros.bag import LATCHED_TOPICS, BagRecorder

    context = rclpy.Context()
    rclpy.init(
        args=[],
        context=context,
        domain_id=domain_id,
        signal_handler_options=SignalHandlerOptions.ALL,
    )
    node = rclpy.create_node("s2m_record", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    counts: dict[str, int] = {}
    try:
        deadline = time.monotonic() + discovery_timeout
        found: dict[str, str] = {}
        while context.ok() and time.monotonic() < deadline and len(found) < len(topics):
            executor.spin_once(timeout_sec=0.05)
            graph = dict(node.get_topic_names_and_types())
            found = {t: graph[t][0] for t in topics if graph.get(t)}
        missing = [t for t in topics if t not in found]
        if not found:
            raise ValueError(f"none of {topics} appeared within {discovery_timeout} s")
        if missing:
            node.get_logger().warning(f"not recording {missing}: no publisher found")
        latched = set(LATCHED_TOPICS)
        for t in found:
            infos = node.get_publishers_info_by_topic(t)
            if infos and all(
                i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos
            ):
                latched.add(t)
        with BagRecorder(node, out, found, storage=storage, latched=latched) as recorder:
            end = time.monotonic() + duration if duration > 0 else None
            try:
                while context.ok() and (end is None or time.monotonic() < end):
                    executor.spin_once(timeout_sec=0.1)
            except (KeyboardInterrupt, ExternalShutdownException):
                pass  # Ctrl-C ends the recording; the bag is closed below
            counts = dict(recorder.counts)
    finally:
        executor.remove_node(node)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    return counts


def run_record(args: argparse.Namespace) -> int:
    _require_rclpy()
    counts = record_topics(
        args.topics, args.out, args.duration, args.storage, args.discovery_timeout
    )
    print(json.dumps({"bag": args.out, "messages": counts}, indent=2))
    return 0
