"""The mocap fit cache: fits of whole datasets, computed once and kept in the user cache.

:func:`fit_clips` answers "the fits of these clips" from
``<cache>/mocap-fits/v<FIT_VERSION>/<dataset>-<body>-<hash>-s<step>-r<steps>.npz``, or fits the
clip's whole dataset now (one streaming pass over its archive, see
:mod:`s2m_model.data.catalogue`; the maths is :mod:`s2m_model.data.mocap_fit`) and caches it.
A fit cache is specific to the body model (its template and shape space are hashed into the
name) and to :data:`~s2m_model.data.mocap_fit.FIT_VERSION`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from s2m_model.data.bvh import Motion
from s2m_model.data.catalogue import ClipRef, iter_motions, list_clips
from s2m_model.data.mocap_fit import (
    DEFAULT_REFINE_STEPS,
    FIT_VERSION,
    MocapFit,
    auto_subsample,
    fit_motions,
)
from s2m_model.util.files import cache_dir, load_npz, save_npz_atomic

log = logging.getLogger(__name__)



@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread inside the block (restored after).

    The batches here are small: a second thread gains little and, on a busy machine, its
    spin-waiting cost 7x the CPU time. One thread also fixes the float summation order, so a
    result does not depend on the machine's core count.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def body_fingerprint(body) -> str:
    """Short hash of a body model's template and shape space (fits are body specific)."""
    h = hashlib.sha256()
    for t in (body.v_template, body.shapedirs, body.J_regressor):
        h.update(np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32).tobytes())
    return h.hexdigest()[:12]


_FIT_ARRAYS = ("global_orient", "body_pose", "transl", "frame_index", "joint_error_mm",
               "limb_error_mm", "bone_error_deg")  # fmt: skip


def save_fits(path: Path, fits: Sequence[MocapFit]) -> None:
    """Write ``fits`` (clips of one dataset, same mapped joints) into one ``.npz`` atomically."""
    if not fits:
        raise ValueError(f"{path}: no fits to save")
    arrays: dict[str, np.ndarray] = {
        "names": np.array([f.name for f in fits]),
        "counts": np.array([f.num_frames for f in fits], dtype=np.int64),
        "betas": np.stack([f.betas for f in fits]),
        "source_format": np.array([f.source_format for f in fits]),
        "fps": np.array([f.fps for f in fits]),
        "source_fps": np.array([f.source_fps for f in fits]),
        "subsample": np.array([f.subsample for f in fits], dtype=np.int64),
        "source_frames": np.array([f.source_frames for f in fits], dtype=np.int64),
        "per_joint_error_mm": np.stack([f.per_joint_error_mm for f in fits]),
        "mapped_joints": np.array(fits[0].mapped_joints),
    }
    for key in _FIT_ARRAYS:
        arrays[key] = np.concatenate([getattr(f, key) for f in fits])
    save_npz_atomic(path, arrays)


def load_fits(path: Path) -> dict[str, MocapFit]:
    """Fits by clip name from a file written by :func:`save_fits` (ValueError/KeyError if bad)."""
    a = load_npz(path)
    bounds = np.cumsum([0, *a["counts"].tolist()])
    out = {}
    for i, name in enumerate(a["names"].tolist()):
        sl = slice(int(bounds[i]), int(bounds[i + 1]))
        out[name] = MocapFit(
            name=name, betas=a["betas"][i], source_format=str(a["source_format"][i]),
            fps=float(a["fps"][i]), source_fps=float(a["source_fps"][i]),
            subsample=int(a["subsample"][i]), source_frames=int(a["source_frames"][i]),
            per_joint_error_mm=a["per_joint_error_mm"][i],
            mapped_joints=tuple(a["mapped_joints"].tolist()),
            **{k: a[k][sl] for k in _FIT_ARRAYS},
        )  # fmt: skip
    return out


def fit_cache_path(dataset: str, body, subsample: int | None, refine_steps: int) -> Path:
    """``<cache>/mocap-fits/v<FIT_VERSION>/<dataset>-<body>-<hash>-s<step>-r<steps>.npz``."""
    step = "auto" if subsample is None else str(subsample)
    return (
        cache_dir() / "mocap-fits" / f"v{FIT_VERSION}"
        / f"{dataset}-{body.name}-{body_fingerprint(body)}-s{step}-r{refine_steps}.npz"
    )  # fmt: skip


def fit_clips(
    refs: Sequence[ClipRef],
    body,
    *,
    subsample: int | None = None,
    refine_steps: int = DEFAULT_REFINE_STEPS,
    cache: bool = True,
    batch_frames: int = 4096,
    progress: Callable[[int], None] | None = None,
) -> dict[str, MocapFit]:
    """Fits of the clips ``refs`` by name, from the cache or fitted now (and cached).

    A dataset (``bandai-1``, ``bandai-2``, ``cmu``) is fitted and cached as a whole the first
    time any of its clips is asked for (one streaming pass over an archive; ~``batch_frames``
    fitted frames per batch), so later calls for other splits are instant.
    ``progress(n)`` is called with the number of clips just fitted.
    """
    wanted: dict[str, list[ClipRef]] = {}
    for ref in refs:
        wanted.setdefault(ref.dataset, []).append(ref)
    out: dict[str, MocapFit] = {}
    for dataset, ds_refs in wanted.items():
        path = fit_cache_path(dataset, body, subsample, refine_steps)
        fits: dict[str, MocapFit] | None = None
        if cache and path.is_file():
            try:
                fits = load_fits(path)
            except (ValueError, KeyError) as exc:
                log.warning("ignoring a damaged fit cache %s (%s)", path, exc)
        if fits is None or any(r.name not in fits for r in ds_refs):
            # Fit the whole dataset: its clips come from one archive pass anyway.
            all_refs = [
                r for r in list_clips(Path(ds_refs[0].source).parents[1], [dataset])
                if r.dataset == dataset
            ]
            known = {r.name for r in all_refs}
            all_refs += [r for r in ds_refs if r.name not in known]
            fits = _fit_refs(all_refs, body, subsample, refine_steps, batch_frames, progress)
            if cache:
                save_fits(path, list(fits.values()))
        missing = [r.name for r in ds_refs if r.name not in fits]
        if missing:
            raise ValueError(f"no fit for clips {missing[:5]}")
        out.update({r.name: fits[r.name] for r in ds_refs})
    return out


def _fit_refs(
    refs: Sequence[ClipRef],
    body,
    subsample: int | None,
    refine_steps: int,
    batch_frames: int,
    progress: Callable[[int], None] | None,
) -> dict[str, MocapFit]:
    t0 = time.perf_counter()
    fits: dict[str, MocapFit] = {}
    batch: list[tuple[ClipRef, Motion]] = []
    frames = 0

    def flush() -> None:
        nonlocal frames
        by_fmt: dict[str | None, list[tuple[ClipRef, Motion]]] = {}
        for ref, m in batch:
            by_fmt.setdefault(m.format, []).append((ref, m))
        for fmt, items in by_fmt.items():
            if fmt is None:
                raise ValueError(f"{items[0][1].source}: not a Bandai or CMU skeleton")
            with single_thread():
                result = fit_motions(
                    [m for _, m in items], body, names=[r.name for r, _ in items],
                    subsample=subsample, refine_steps=refine_steps,
                )  # fmt: skip
            fits.update({f.name: f for f in result})
        if progress is not None:
            progress(len(batch))
        batch.clear()
        frames = 0

    for ref, motion in iter_motions(refs):
        batch.append((ref, motion))
        frames += -(-motion.num_frames // (subsample or auto_subsample(motion.fps)))
        if frames >= batch_frames:
            flush()
    if batch:
        flush()
    log.info("fitted %d clips in %.1f s", len(fits), time.perf_counter() - t0)
    return {r.name: fits[r.name] for r in refs if r.name in fits}
