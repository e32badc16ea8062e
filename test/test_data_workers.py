"""The shard plan and the worker pool shared by the two dataset builders."""

from __future__ import annotations

import math

import pytest

from s2m_model.data.workers import map_in_processes, shard_plan


def test_shard_plan_splits_the_rest_into_the_last_shard():
    sizes, names = shard_plan(250, 100)
    assert sizes == [100, 100, 50] and names == ["shard-00000.npz", "shard-00001.npz",
                                                 "shard-00002.npz"]  # fmt: skip
    assert shard_plan(100, 100) == ([100], ["shard-00000.npz"])
    with pytest.raises(ValueError, match="shard_size"):
        shard_plan(10, 0)


def test_map_in_processes_keeps_job_order():
    assert list(map_in_processes(math.sqrt, [9.0, 4.0, 1.0], workers=2)) == [3.0, 2.0, 1.0]
    assert list(map_in_processes(math.sqrt, [], workers=2)) == []
