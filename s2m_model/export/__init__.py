"""Deployment: ONNX export, TensorRT engines, and one inference interface over all runtimes.

- :mod:`s2m_model.export.onnx` — :func:`export_onnx` (dynamic batch axis) and
  :func:`verify_onnx` (onnxruntime vs torch parity).
- :mod:`s2m_model.export.tensorrt` — :func:`build_engine` (TensorRT 10 builder) and
  :func:`tensorrt_available`.
- :mod:`s2m_model.export.runtime` — :class:`InferenceBackend` with :class:`TorchBackend`,
  :class:`OnnxRuntimeBackend`, :class:`TensorRTBackend`, and :func:`load_backend`.
- :mod:`s2m_model.export.models` — the ``EXPORTABLE`` registry behind ``s2m export``.

Names are loaded lazily so that importing this package (e.g. for ``s2m --help``) pulls in
neither torch nor onnx. See docs/export.md.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "export_onnx": "onnx",
    "verify_onnx": "onnx",
    "check_onnx_file": "onnx_file",
    "ParityError": "onnx",
    "build_engine": "tensorrt",
    "tensorrt_available": "tensorrt",
    "trtexec_command": "tensorrt",
    "TensorRTUnavailable": "tensorrt",
    "InferenceBackend": "runtime",
    "TorchBackend": "runtime",
    "OnnxRuntimeBackend": "runtime",
    "TensorRTBackend": "runtime",
    "load_backend": "runtime",
    "EXPORTABLE": "models",
    "register_exportable": "models",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
    return getattr(module, name)
