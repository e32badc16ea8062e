"""Console noise (issue 14): loading the default body prints nothing on stdout/stderr."""

from __future__ import annotations

import torch


def test_loading_the_free_body_prints_nothing(body, capfd):
    from s2m_model.body import load_body_model

    capfd.readouterr()  # whatever the session fixture's first build printed
    model = load_body_model("s2m-free", dtype=torch.float32)
    out, err = capfd.readouterr()
    assert model.faces.shape[1] == 3
    # smplx's "only 10 shape coefficients" line used to appear on every run
    assert "shape coefficients" not in out + err
    assert out.strip() == "", out
