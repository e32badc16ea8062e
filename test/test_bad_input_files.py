"""Bad model and checkpoint files (issue 14): a crafted SMPL pickle cannot make the conversion
allocate without bound, genuine numpy pickles of any protocol load, and refusals of unsafe
torch checkpoints never advise turning the safety off."""

from __future__ import annotations

import codecs
import pickle

import numpy as np
import pytest
import scipy.sparse
import torch

from s2m_model.body import free_model_path, load_body_model
from s2m_model.body.files import MAX_DENSE_ELEMENTS, convert_pkl_to_npz, load_npz

KEYS = ("v_template", "shapedirs", "weights", "kintree_table", "f")


@pytest.fixture(scope="module")
def free_arrays() -> dict[str, np.ndarray]:
    arrays = load_npz(free_model_path())
    return {k: arrays[k] for k in (*KEYS, "J_regressor")}


def _write(path, obj, protocol=pickle.DEFAULT_PROTOCOL):
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def test_huge_sparse_matrix_is_refused_before_densifying(tmp_path, free_arrays):
    raw = {k: free_arrays[k] for k in KEYS}
    sparse = scipy.sparse.csc_matrix(free_arrays["J_regressor"][:, :4])
    sparse._shape = (10**8, 10**8)  # 8e16 bytes dense: the file itself stays tiny
    raw["J_regressor"] = sparse
    pkl = _write(tmp_path / "huge.pkl", raw)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="too large.*limit"):
        convert_pkl_to_npz(pkl)
    assert not (tmp_path / "huge.npz").exists()
    assert MAX_DENSE_ELEMENTS >= 24 * 6890 * 10  # real SMPL regressors stay far below


def test_sparse_matrix_with_indices_out_of_range_is_refused(tmp_path, free_arrays):
    raw = {k: free_arrays[k] for k in KEYS}
    sparse = scipy.sparse.csc_matrix(free_arrays["J_regressor"])
    sparse.indices = sparse.indices.copy()
    sparse.indices[0] = 10**6  # row beyond the 24 rows: would be read out of bounds
    raw["J_regressor"] = sparse
    pkl = _write(tmp_path / "badidx.pkl", raw)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="malformed sparse"):
        convert_pkl_to_npz(pkl)


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_numpy_pickles_of_every_protocol_convert(tmp_path, free_arrays, protocol):
    raw = {k: free_arrays[k] for k in KEYS}
    raw["J_regressor"] = scipy.sparse.csc_matrix(free_arrays["J_regressor"])
    raw["scale"] = np.float64(1.0)  # numpy scalars pickle through another global
    pkl = _write(tmp_path / f"p{protocol}.pkl", raw, protocol)
    with pytest.warns(UserWarning, match="pickle"):
        out = convert_pkl_to_npz(pkl)
    back = load_npz(out)
    for key in (*KEYS, "J_regressor"):
        assert np.array_equal(back[key], free_arrays[key]), key


class _Rot13:
    def __reduce__(self):
        return (codecs.encode, ("payload", "rot13"))


def test_codecs_other_than_latin1_are_refused(tmp_path, free_arrays):
    raw = {k: free_arrays[k] for k in KEYS}
    raw["J_regressor"] = free_arrays["J_regressor"]
    raw["extra"] = _Rot13()
    pkl = _write(tmp_path / "codec.pkl", raw, protocol=2)
    assert b"_codecs" in pkl.read_bytes()
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="refusing _codecs.encode"):
        load_body_model(pkl)


class _Custom:
    pass


def test_unsafe_torch_checkpoints_are_refused_without_unsafe_advice(tmp_path):
    from s2m_model.export.models import load_state_dict_checkpoint, toy_mlp_module
    from s2m_model.lifter.model import read_checkpoint

    path = tmp_path / "custom.pt"
    torch.save({"kind": "s2m-lifter", "state_dict": {"w": _Custom()}}, path)
    for load in (read_checkpoint, lambda p: load_state_dict_checkpoint(toy_mlp_module(), p)):
        with pytest.raises(ValueError) as info:
            load(path)
        text = str(info.value)
        assert "never unpickles" in text and "state_dict()" in text
        assert "weights_only" not in text and info.value.__cause__ is None
