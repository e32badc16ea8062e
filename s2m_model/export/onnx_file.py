"""Validate an ONNX file before any runtime sees it (a leaf module: imports only ``onnx``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx


def check_onnx_file(path: str | Path) -> onnx.ModelProto:
    """Load and validate an ONNX file before any runtime sees it.

    Returns:
        The loaded model (external data, if any, resolved from the file's folder).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: empty, unparsable, or structurally invalid (``onnx.checker``) file, or a
            graph without outputs. The message names the file.
    """
    import onnx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX file not found: {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty, not an ONNX model")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - protobuf DecodeError and friends
        raise ValueError(f"{path} is not a valid ONNX model: {exc}") from exc
    try:
        # The path form also validates models stored with external data (> 2 GB).
        onnx.checker.check_model(str(path))
    except Exception as exc:  # noqa: BLE001 - ValidationError, or protobuf errors again
        raise ValueError(f"{path} is not a valid ONNX model: {exc}") from exc
    if not model.graph.output:
        raise ValueError(f"{path} is not a usable ONNX model: its graph has no outputs")
    return model
