"""``s2m eval-bag``: run s2m offline on every frame of a recorded bag and measure it.

Reads the input topic of a rosbag2 (MCAP or SQLite3): sensor_msgs/Image, CompressedImage or
s2m_ros/Skeleton3D, plus an optional ground-truth s2m_ros/BodyArray topic; runs the same
processing as ``s2m_node`` (:class:`s2m_ros.processor.FrameProcessor`) on every input frame in
order (offline: nothing is dropped, the result is deterministic), and writes into ``--out``:

* ``bag/`` — a rosbag2 with the input topics (copied) and the outputs, stamped with the input
  stamps and logged at the input's log time: ``<prefix>/bodies`` (BodyArray),
  ``<prefix>/mesh`` (BodyMesh), ``<prefix>/mesh_faces`` (MeshFaces, latched) and ``/tf``;
* ``metrics.json`` — frames in / out / dropped / failed (every input frame accounted for),
  latency per stage (median, p95; ms), processing rate, the input's stamp jitter, and with
  ground truth MPJPE / PA-MPJPE / absolute MPJPE (mm) and per-joint errors;
* ``latency.png`` (latency histogram) and ``per_joint_error.png`` (with ground truth).

Frames: outputs are in the input's frame (camera optical frame for images: x right, y down,
z forward), metres; the ground truth must be in the same frame. Errors are in millimetres.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from s2m_model.tracking.metrics import track_summary

log = logging.getLogger(__name__)

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
SKELETON_TYPE = "s2m_ros/msg/Skeleton3D"
BODY_ARRAY_TYPE = "s2m_ros/msg/BodyArray"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
INPUT_KINDS = {IMAGE_TYPE: "image", COMPRESSED_TYPE: "compressed", SKELETON_TYPE: "skeleton"}
DEFAULT_TOPIC = "/camera/image_raw"
MAX_LISTED_FAILURES = 50


@dataclass
class EvalResult:
    """What :func:`evaluate_bag` wrote: the metrics dict and the output paths."""

    metrics: dict[str, Any]
    out_dir: Path
    bag: Path
    files: dict[str, Path] = field(default_factory=dict)


def _json_safe(value: Any) -> Any:
    """``value`` with NaN/inf floats as None (strict JSON) and numpy scalars as Python ones."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def pick_input_topic(topics: Mapping[str, str], topic: str | None) -> tuple[str, str]:
    """``(topic, kind)`` of the input: ``topic`` when given, else ``/camera/image_raw`` when
    present, else the first Image, CompressedImage or Skeleton3D topic.

    Raises:
        ValueError: the topic is missing or of an unsupported type; no input topic at all.
    """
    if topic:
        if topic not in topics:
            listing = ", ".join(f"{t} ({k})" for t, k in sorted(topics.items()))
            raise ValueError(f"topic {topic!r} is not in the bag; it has: {listing}")
        if topics[topic] not in INPUT_KINDS:
            raise ValueError(
                f"topic {topic!r} is {topics[topic]}; expected one of {', '.join(INPUT_KINDS)}"
            )
        return topic, INPUT_KINDS[topics[topic]]
    if topics.get(DEFAULT_TOPIC) in INPUT_KINDS:
        return DEFAULT_TOPIC, INPUT_KINDS[topics[DEFAULT_TOPIC]]
    for name, kind in sorted(topics.items()):
        if kind in INPUT_KINDS:
            return name, INPUT_KINDS[kind]
    raise ValueError(f"no Image, CompressedImage or Skeleton3D topic in the bag: {dict(topics)}")


def stamp_jitter(stamps_ns: Sequence[int]) -> dict[str, Any]:
    """Regularity of the input header stamps.

    Returns:
        ``{"frames", "duration_s", "rate_hz" (1 / median period), "period_ms": {median, mean,
        std, min, max}, "jitter_ms": {"std", "p95_abs", "max_abs"} (deviation of the periods
        from the median period), "non_increasing"}`` (periods only with >= 2 frames).
    """
    s = np.asarray(stamps_ns, dtype=np.int64)
    out: dict[str, Any] = {"frames": int(s.size)}
    if s.size < 2:
        return out
    periods = np.diff(s).astype(np.float64) * 1e-6
    median = float(np.median(periods))
    dev = np.abs(periods - median)
    out.update(
        {
            "duration_s": float((s[-1] - s[0]) * 1e-9),
            "rate_hz": 1e3 / median if median > 0 else None,
            "period_ms": {
                "median": median,
                "mean": float(periods.mean()),
                "std": float(periods.std()),
                "min": float(periods.min()),
                "max": float(periods.max()),
            },
            "jitter_ms": {
                "std": float(periods.std()),
                "p95_abs": float(np.percentile(dev, 95)),
                "max_abs": float(dev.max()),
            },
            "non_increasing": int((np.diff(s) <= 0).sum()),
        }
    )
    return out


def match_people(
    pred: Sequence[np.ndarray], gt: Sequence[np.ndarray]
) -> list[tuple[int | None, int]]:
    """Greedy matching of ground-truth to predicted people by pelvis distance.

    Args:
        pred, gt: ``(24, 3)`` joint arrays (metres, same frame).

    Returns:
        ``(pred index or None, gt index)`` for every ground-truth person.
    """
    pairs = sorted(
        (float(np.linalg.norm(p[0] - g[0])), i, j)
        for i, p in enumerate(pred)
        for j, g in enumerate(gt)
    )
    used_p: set[int] = set()
    matched: dict[int, int] = {}
    for _, i, j in pairs:
        if i not in used_p and j not in matched:
            used_p.add(i)
            matched[j] = i
    return [(matched.get(j), j) for j in range(len(gt))]


def accuracy(pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """MPJPE (pelvis-aligned), PA-MPJPE and absolute MPJPE in mm over matched people.

    Args:
        pairs: ``(pred (24, 3), gt (24, 3))`` SMPL joints in metres.
    """
    from s2m_model.eval import metrics
    from s2m_model.eval.protocols import per_joint_mpjpe
    from s2m_model.smpl_layout import JOINT_NAMES

    if not pairs:
        return {"matched": 0}
    pred = np.stack([p for p, _ in pairs]).astype(np.float64)
    gt = np.stack([g for _, g in pairs]).astype(np.float64)
    return {
        "matched": len(pairs),
        "mpjpe_mm": float(metrics.mpjpe(pred, gt, 0)),
        "pa_mpjpe_mm": float(metrics.pa_mpjpe(pred, gt)),
        "abs_mpjpe_mm": float(metrics.mpjpe(pred, gt, None)),
        "per_joint_mpjpe_mm": per_joint_mpjpe(pred, gt, JOINT_NAMES, root=0),
    }


def _plots(
    out_dir: Path, latencies: Mapping[str, Sequence[float]], per_joint: Mapping[str, float]
) -> dict[str, Path]:
    from s2m_model.util.plotting import pyplot

    plt = pyplot()
    files: dict[str, Path] = {}
    stages = [s for s, v in latencies.items() if len(v)]
    if stages:
        fig, ax = plt.subplots(figsize=(7, 4))
        top = max(max(v) for v in latencies.values() if len(v))
        bins = np.linspace(0.0, max(top, 1e-3) * 1.05, 40)
        for stage in stages:
            ax.hist(latencies[stage], bins=bins, alpha=0.5, label=stage)
        ax.set_xlabel("latency per frame (ms)")
        ax.set_ylabel("frames")
        ax.set_title("s2m eval-bag: processing latency by stage")
        ax.legend(fontsize=8)
        fig.tight_layout()
        files["latency_png"] = out_dir / "latency.png"
        fig.savefig(files["latency_png"], dpi=100)
        plt.close(fig)
    if per_joint:
        fig, ax = plt.subplots(figsize=(7, 6))
        names = list(per_joint)
        ax.barh(names, [per_joint[n] for n in names])
        ax.invert_yaxis()
        ax.set_xlabel("MPJPE, pelvis-aligned (mm)")
        ax.set_title("s2m eval-bag: error per joint")
        fig.tight_layout()
        files["per_joint_png"] = out_dir / "per_joint_error.png"
        fig.savefig(files["per_joint_png"], dpi=100)
        plt.close(fig)
    return files


def evaluate_bag(
    bag: str | Path,
    out_dir: str | Path,
    *,
    topic: str | None = None,
    gt_topic: str | None = None,
    camera_info_topic: str | None = None,
    params: Mapping[str, Any] | None = None,
    storage: str = "mcap",
    prefix: str = "/s2m",
    max_frames: int = 0,
    pipeline: Any = None,
    progress: bool = False,
) -> EvalResult:
    """Run s2m on every input frame of ``bag``; write the output bag, metrics and plots.

    Args:
        bag: rosbag2 folder. out_dir: output folder (its ``bag/`` must not exist yet).
        topic: input topic (default: see :func:`pick_input_topic`).
        gt_topic: ground-truth s2m_ros/BodyArray topic, matched to frames by header stamp.
        camera_info_topic: CameraInfo topic for the intrinsics (default: the params' one when
            the bag has it; else a pinhole of ``fov_deg``).
        params: ``s2m_node`` parameters (:func:`s2m_ros.params.check_params`).
        storage: output bag storage, ``"mcap"`` or ``"sqlite3"``.
        prefix: namespace of the output topics.
        max_frames: stop after this many input frames (0 = all).
        pipeline: a pipeline to use instead of building one from ``params``.
        progress: show a tqdm progress bar.

    Raises:
        FileNotFoundError: no such bag. ValueError: bad topics, parameters or storage.
    """
    from rclpy.serialization import deserialize_message
    from tqdm import tqdm

    from s2m_model.util.timing import summarize
    from s2m_ros import convert
    from s2m_ros.bag import STORAGES, BagWriter, bag_topics, message_class, read_bag
    from s2m_ros.params import check_params
    from s2m_ros.processor import FrameProcessor, build_pipeline, warm_up

    bag, out_dir = Path(bag), Path(out_dir)
    if not bag.exists():
        raise FileNotFoundError(f"no bag at {bag}")
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
    if max_frames < 0:
        raise ValueError(f"max_frames must be >= 0, got {max_frames}")
    if not prefix.startswith("/"):
        raise ValueError(f"prefix must start with '/', got {prefix!r}")
    topics = bag_topics(bag)
    in_topic, kind = pick_input_topic(topics, topic)
    if gt_topic and topics.get(gt_topic) != BODY_ARRAY_TYPE:
        raise ValueError(
            f"ground-truth topic {gt_topic!r} must be {BODY_ARRAY_TYPE} in the bag, "
            f"got {topics.get(gt_topic)}"
        )
    p = check_params(dict(params or {}))
    p["input_mode"] = "skeleton" if kind == "skeleton" else "image"
    if camera_info_topic is None:
        camera_info_topic = p["camera_info_topic"] if kind != "skeleton" else ""
    if camera_info_topic and topics.get(camera_info_topic) != CAMERA_INFO_TYPE:
        camera_info_topic = ""
    out_bag = out_dir / "bag"
    if out_bag.exists():
        raise ValueError(f"{out_bag} already exists: choose another --out or remove it")
    out_dir.mkdir(parents=True, exist_ok=True)

    pipe = pipeline if pipeline is not None else build_pipeline(p)
    processor = FrameProcessor(pipe, p)
    warm_up(pipe, kind != "skeleton")  # latency statistics of the steady state
    in_cls = message_class(topics[in_topic])
    out_topics = {k: f"{prefix}/{p[k + '_topic'].lstrip('/')}" for k in ("bodies", "mesh")}
    faces_topic = f"{prefix}/{p['faces_topic'].lstrip('/')}"
    copied = [t for t in (in_topic, camera_info_topic, gt_topic) if t]

    stamps: list[int] = []
    latencies: dict[str, list[float]] = {}
    frame_ms: list[float] = []
    failures: list[dict[str, Any]] = []
    gt_by_stamp: dict[int, list[np.ndarray]] = {}
    preds: dict[int, list[np.ndarray]] = {}
    pred_ids: dict[int, list[int]] = {}
    ids_per_frame: list[list[int]] = []
    counts = {"in": 0, "out": 0, "dropped": 0, "failed": 0, "with_people": 0, "people": 0,
              "camera_info_rejected": 0}  # fmt: skip
    t_start = time.perf_counter()
    with BagWriter(out_bag, storage=storage) as writer:
        for t in copied:
            writer.add_topic(t, topics[t])
        bar = tqdm(desc="eval-bag", unit="frame", disable=not progress)
        faces_written = False
        for m in read_bag(bag, topics=copied, raw=True):
            writer.write(m.topic, m.timestamp_ns, m.msg)
            if m.topic == camera_info_topic:
                try:  # like the node: an implausible CameraInfo is refused, the last good kept
                    processor.set_camera_info(deserialize_message(m.msg, message_class(m.msgtype)))
                except ValueError as exc:
                    counts["camera_info_rejected"] += 1
                    log.warning("CameraInfo refused: %s", exc)
                continue
            if m.topic == gt_topic:
                gt_msg = deserialize_message(m.msg, message_class(m.msgtype))
                joints = [convert.body_msg_to_arrays(b)["joints"] for b in gt_msg.bodies]
                gt_by_stamp[convert.stamp_to_ns(gt_msg.header.stamp)] = joints
                continue
            if max_frames and counts["in"] >= max_frames:
                continue
            counts["in"] += 1
            bar.update(1)
            if not faces_written:
                writer.add_topic(faces_topic, "s2m_ros/msg/MeshFaces", latched=True)
                writer.write(faces_topic, m.timestamp_ns, processor.mesh_faces_msg(m.timestamp_ns))
                faces_written = True
            t0 = time.perf_counter()
            try:
                msg = deserialize_message(m.msg, in_cls)
                stamps.append(convert.stamp_to_ns(msg.header.stamp))
                out = processor.process(kind, msg)
            except Exception as exc:  # like the node: a bad frame is counted, not fatal
                counts["failed"] += 1
                if len(failures) < MAX_LISTED_FAILURES:
                    failures.append(
                        {
                            "index": counts["in"] - 1,
                            "log_time_ns": m.timestamp_ns,
                            "error": f"{type(exc).__name__}: {exc}",
                        }
                    )
                continue
            writer.write(out_topics["bodies"], m.timestamp_ns, out.bodies)
            if out.mesh is not None:
                writer.write(out_topics["mesh"], m.timestamp_ns, out.mesh)
            if out.tf is not None:
                writer.write("/tf", m.timestamp_ns, out.tf)
            frame_ms.append((time.perf_counter() - t0) * 1e3)
            for stage, ms in out.timings_ms.items():
                latencies.setdefault(stage, []).append(ms)
            counts["out"] += 1
            counts["with_people"] += bool(out.results)
            counts["people"] += len(out.results)
            preds[convert.stamp_to_ns(out.header.stamp)] = [r.joints for r in out.results]
            pred_ids[convert.stamp_to_ns(out.header.stamp)] = [r.track_id for r in out.results]
            ids_per_frame.append([r.track_id for r in out.results])
        bar.close()
    if counts["in"] == 0:
        raise ValueError(f"no frames on {in_topic} in {bag}")
    latencies["frame"] = frame_ms

    metrics: dict[str, Any] = {
        "bag": str(bag),
        "topic": in_topic,
        "type": topics[in_topic],
        "output_bag": str(out_bag),
        "frames": counts,
        "all_frames_accounted": counts["in"]
        == counts["out"] + counts["dropped"] + counts["failed"],
        "latency_ms": {stage: summarize(v) for stage, v in latencies.items()},
        "processing_rate_hz": (len(frame_ms) / (sum(frame_ms) * 1e-3)) if frame_ms else 0.0,
        "wall_time_s": time.perf_counter() - t_start,
        "input_stamps": stamp_jitter(stamps),
        "failures": failures,
        # Persons per frame (mean/max), track count, track lengths in frames (median/max).
        "tracking": track_summary(ids_per_frame),
        "accuracy": None,
    }
    per_joint: dict[str, float] = {}
    if gt_topic:
        pairs = []
        frames_with_gt = missed = extra = switches = 0
        # GT people are identified by their index in the GT message (a stable order is
        # assumed); an id switch = a GT person matched to a track id other than last time.
        last_id: dict[int, int] = {}
        for stamp, gt_people in sorted(gt_by_stamp.items()):
            if stamp not in preds:
                continue
            frames_with_gt += 1
            matches = match_people(preds[stamp], gt_people)
            for i, j in matches:
                if i is None:
                    continue
                tid = pred_ids[stamp][i]
                switches += j in last_id and last_id[j] != tid
                last_id[j] = tid
            missed += sum(i is None for i, _ in matches)
            extra += max(0, len(preds[stamp]) - len(gt_people))
            pairs += [(preds[stamp][i], gt_people[j]) for i, j in matches if i is not None]
        acc = accuracy(pairs)
        acc.update(
            {
                "gt_topic": gt_topic,
                "gt_frames": len(gt_by_stamp),
                "frames_with_gt": frames_with_gt,
                "missed_gt_people": missed,
                "extra_predictions": extra,
                "id_switches": int(switches),
            }
        )
        metrics["accuracy"] = acc
        per_joint = acc.get("per_joint_mpjpe_mm", {})
    stages = {k: v for k, v in latencies.items() if k not in ("frame",)}
    files = _plots(out_dir, stages, per_joint)
    metrics["plots"] = {k: str(v) for k, v in files.items()}
    files["metrics_json"] = out_dir / "metrics.json"
    files["metrics_json"].write_text(json.dumps(_json_safe(metrics), indent=2) + "\n")
    return EvalResult(metrics=metrics, out_dir=out_dir, bag=out_bag, files=files)
