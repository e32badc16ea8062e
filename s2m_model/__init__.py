"""s2m_model — Skeleton2Mesh as a pure-Python library (no ROS imports).

The public API, flat::

    import s2m_model as s2m

    pipe = s2m.Pipeline(s2m.PipelineConfig())          # camera frames -> SMPL-layout bodies
    people = pipe(image)                               # list[s2m.PersonResult]
    cam = s2m.Camera.from_fov(640, 480)                # the one pinhole camera
    body = s2m.load_body_model("s2m-free")             # SMPL-layout body model
    fmt = s2m.get_format("h36m17")                     # skeleton formats
    result = s2m.dik.solve(joints, "h36m17", body)     # skeleton -> SMPL rotations

- :class:`Pipeline`, :class:`PipelineConfig`, :class:`PersonResult` —
  :mod:`s2m_model.pipeline`: detector -> lifter -> DIK -> body, frame by frame.
- :class:`Camera` — :mod:`s2m_model.camera`: intrinsics, projection, the FOV default.
- :func:`load_body_model` — :mod:`s2m_model.body`: the free ``s2m-free`` body or real SMPL.
- :func:`get_format` — :mod:`s2m_model.skeletons`: registered skeleton formats.
- :mod:`dik` — :mod:`s2m_model.dik`: analytic differentiable inverse kinematics.

These names are imported lazily (module ``__getattr__``): ``import s2m_model`` loads neither
torch nor any submodule, and no submodule has to import this package's names (no cycles).

Conventions: lengths in metres, angles in radians, rotations as axis-angle ``(..., 3)`` unless
named otherwise. Body frame as in SMPL: Y up, the body faces +Z, its left is +X. Camera frame:
x right, y down, z forward.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> (module, attribute; None = the module itself)
_PUBLIC: dict[str, tuple[str, str | None]] = {
    "Pipeline": ("s2m_model.pipeline", "Pipeline"),
    "PipelineConfig": ("s2m_model.pipeline", "PipelineConfig"),
    "PersonResult": ("s2m_model.pipeline", "PersonResult"),
    "Camera": ("s2m_model.camera", "Camera"),
    "load_body_model": ("s2m_model.body", "load_body_model"),
    "get_format": ("s2m_model.skeletons", "get_format"),
    "dik": ("s2m_model.dik", None),
}

__all__ = [
    "Camera",
    "PersonResult",
    "Pipeline",
    "PipelineConfig",
    "dik",
    "get_format",
    "load_body_model",
]

if TYPE_CHECKING:  # static checkers and IDEs see the real objects
    from s2m_model import dik
    from s2m_model.body import load_body_model
    from s2m_model.camera import Camera
    from s2m_model.pipeline import PersonResult, Pipeline, PipelineConfig
    from s2m_model.skeletons import get_format


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _PUBLIC[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
