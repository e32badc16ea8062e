"""Shard plans and the worker-process pool shared by the dataset builders.

:func:`s2m_model.data.generator.build_dataset` (plain ground truth) and
:func:`s2m_model.data.detector_build.build_detector_dataset` (renders + detector) split ``n``
samples into shards the same way and build them in ``spawn`` worker processes the same way;
this module holds that one loop. Computation only (the workers do their own I/O).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from s2m_model.data import shards

__all__ = ["map_in_processes", "shard_plan"]


def shard_plan(n: int, shard_size: int) -> tuple[list[int], list[str]]:
    """Sizes and file names of the shards of ``n`` samples, ``shard_size`` each (last: rest)."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    sizes = [min(shard_size, n - s) for s in range(0, n, shard_size)]
    return sizes, [shards.shard_name(i) for i in range(len(sizes))]


def map_in_processes(
    fn: Callable[[Any], Any],
    jobs: Sequence[Any],
    workers: int,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
) -> Iterator[Any]:
    """``fn(job)`` for every job in up to ``workers`` fresh processes, results in job order.

    ``spawn`` processes (not ``fork``): torch and MediaPipe threads do not survive a fork.
    ``initializer(*initargs)`` runs once per process (load the body, the detector, ...).
    """
    import multiprocessing as mp

    if not jobs:
        return
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=ctx, initializer=initializer,
                             initargs=initargs) as ex:  # fmt: skip
        yield from ex.map(fn, jobs)
