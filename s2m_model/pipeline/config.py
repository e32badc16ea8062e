"""Pipeline settings: :class:`PipelineConfig`, its one declarative validator, YAML I/O.

Every field is checked against one row of :data:`FIELD_RULES` (type, range, choices), so a new
setting is one dataclass field plus one table row. The table is public so other layers (the ROS
node's parameters, CLIs) can describe and check the same settings without repeating them.

Thread settings are not here on purpose: ``torch.set_num_threads`` is process-wide, so the
programs (``s2m run``, ``s2m demo``, the ROS node, the benchmarks) set it, not a library object;
see :func:`set_torch_threads`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s2m_model.camera import DEFAULT_FOV_DEG

if TYPE_CHECKING:
    from s2m_model.tracking.tracker import TrackerConfig

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_THREADS",
    "FIELD_RULES",
    "LIFTERS",
    "FieldRule",
    "PipelineConfig",
    "set_torch_threads",
]

#: Front ends (the ``lifter`` setting): what turns a detection into a 3D skeleton for DIK.
#: ``s2m``: the s2m 2D -> 3D lifter (weights: ``lifter_model``) on the COCO-17 keypoints, output
#: ``h36m17``. ``mediapipe-world``: the detector's 33 metric BlazePose world landmarks
#: (:attr:`s2m_model.detect.Detection.keypoints_world`) as they are, format ``blazepose33``.
#: ``fused``: :class:`s2m_model.lifter.fused.FusedLifter` (shipped weights) on the detector's 2D
#: landmarks + world landmarks + intrinsics, output ``blazepose33``; like ``mediapipe-world``, a
#: detection without them falls back to ``s2m``.
LIFTERS: tuple[str, ...] = ("s2m", "mediapipe-world", "fused")

#: Torch threads the CLIs set by default on the CPU: the per-frame tensors are tiny, so more
#: threads do not help, and on a busy CPU they contend with the detector's own threads
#: (measured: body forward 1 ms with 1 thread, 95 ms with 2 on a loaded 2-core machine).
DEFAULT_THREADS = 1

# Checkpoint suffixes that mark a legacy ``lifter: <checkpoint>`` value (see _legacy_lifter).
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


@dataclass(frozen=True)
class FieldRule:
    """What one :class:`PipelineConfig` field accepts.

    Attributes:
        kind: ``bool``, ``int``, ``float`` (ints accepted, finite), ``str`` (non-empty) or
            ``Mapping``.
        low, high: inclusive bounds for numbers (None: unbounded).
        low_open, high_open: make ``low`` / ``high`` exclusive.
        choices: the allowed values of a string field.
    """

    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] | None = None

    def describe(self) -> str:
        """Human-readable domain, e.g. ``'a number in (0, 180)'``."""
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        noun = {bool: "true or false", int: "an integer", float: "a number",
                str: "a non-empty string", Mapping: "a mapping"}[self.kind]  # fmt: skip
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{noun} in {left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f"{noun} {'>' if self.low_open else '>='} {self.low:g}"
        return noun

    def accepts(self, value: Any) -> bool:
        """True when ``value`` is of the right type and inside the range/choices."""
        if self.kind is bool:
            return isinstance(value, bool)
        if self.kind is str:
            ok = isinstance(value, str) and bool(value.strip())
            return ok and (self.choices is None or value in self.choices)
        if self.kind is Mapping:
            return isinstance(value, Mapping)
        numeric = int if self.kind is int else int | float
        if isinstance(value, bool) or not isinstance(value, numeric) or not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)


#: field -> what it accepts; :meth:`PipelineConfig.validate` checks every field against it.
FIELD_RULES: dict[str, FieldRule] = {
    "body": FieldRule(str),
    "detector": FieldRule(str),
    "detector_options": FieldRule(Mapping),
    "video_mode": FieldRule(bool),
    "lifter": FieldRule(str, choices=LIFTERS),
    "lifter_model": FieldRule(str),
    "device": FieldRule(str),
    "temporal": FieldRule(bool),
    "rot_min_cutoff": FieldRule(float, low=0.0, low_open=True),
    "rot_beta": FieldRule(float, low=0.0),
    "transl_min_cutoff": FieldRule(float, low=0.0, low_open=True),
    "transl_beta": FieldRule(float, low=0.0),
    "d_cutoff": FieldRule(float, low=0.0, low_open=True),
    "default_fps": FieldRule(float, low=0.0, low_open=True),
    "track_max_age": FieldRule(int, low=0),
    "track_appearance": FieldRule(bool),
    "fov_deg": FieldRule(float, low=0.0, high=180.0, low_open=True, high_open=True),
    "min_keypoint_confidence": FieldRule(float, low=0.0, high=1.0),
    "min_keypoints": FieldRule(int, low=2),
    "max_persons": FieldRule(int, low=1),
    "compute_vertices": FieldRule(bool),
    "dik_backend": FieldRule(str, choices=("jit", "eager", "onnxruntime")),
    "refine_shape": FieldRule(bool),
    "refine_endpoints": FieldRule(bool),
    "refine_fit": FieldRule(bool),
    "refine_mask": FieldRule(bool),
    "fit_iterations": FieldRule(int, low=1, high=50),
}

# Keys that used to be settings, with where they went (a clear error instead of "unknown key").
_REMOVED_KEYS = {
    "num_threads": "torch threads are a process setting now: pass --threads to `s2m run` / "
    "`s2m demo`, or call s2m_model.pipeline.set_torch_threads (torch.set_num_threads) yourself",
}


@dataclass
class PipelineConfig:
    """Pipeline settings; every field has a working default (checked by :data:`FIELD_RULES`).

    Attributes:
        body: body model, ``"s2m-free"`` or a path to an SMPL ``.npz``/``.pkl``.
        detector: ``"mediapipe"`` or ``"onnx"`` (then ``detector_options`` needs ``model_path``).
        detector_options: extra keyword arguments of the detector.
        video_mode: MediaPipe tracks landmarks across frames (faster, steadier on a stream;
            frames must come from one stream in order). False: every frame is a new photo.
        lifter: the front end, one of :data:`LIFTERS`: ``"s2m"`` (the 2D -> 3D lifter) or
            ``"mediapipe-world"`` (the detector's metric world landmarks straight into DIK; a
            detection without them falls back to ``"s2m"``, counted in
            :attr:`Pipeline.counters`). For compatibility, ``"default"`` or a checkpoint path
            given here means ``lifter="s2m"`` with that ``lifter_model``.
        lifter_model: weights of the s2m lifter: ``"default"`` or ``"detector-loop"``
            (shipped; the latter fine-tuned on MediaPipe's own keypoints) or a checkpoint path,
            for :func:`s2m_model.lifter.load_lifter`.
        device: torch device of the lifter and body (``"cpu"``, ``"cuda"``, ``"cuda:0"``).
        temporal: track people across frames and filter their pose (One-Euro); off = every
            frame independent (``track_id`` 0).
        rot_min_cutoff: One-Euro cutoff at rest for rotations (Hz); lower = smoother.
        rot_beta: cutoff increase per rad/s of joint angular speed (less lag when fast).
        transl_min_cutoff: One-Euro cutoff at rest for the translation (Hz).
        transl_beta: cutoff increase per m/s of translation speed.
        d_cutoff: cutoff (Hz) of the speed estimates of both filters.
        default_fps: frame rate assumed for timestamps when ``stamp`` is None (frames/s).
        track_max_age: frames a track survives unseen.
        track_appearance: also match people to tracks by the colours of their clothes (a
            histogram per person, ~0.5 ms), and give a lost track's id back to a detection of
            the same colours near where it was last seen (a person the detector missed for a
            few frames while jumping or crouching keeps their id).
        fov_deg: horizontal field of view (degrees) assumed when no intrinsics are given.
        min_keypoint_confidence: keypoints below this confidence count as unobserved (DIK,
            placement, tracking).
        min_keypoints: a person needs at least this many observed keypoints and both hips.
        max_persons: at most this many people per frame (best detector score first).
        compute_vertices: pose the mesh (``PersonResult.vertices``); False = joints only, faster.
        dik_backend: ``"jit"`` runs DIK as a TorchScript trace (one per format and batch size,
            traced on first use in ~0.2-2 s; same numbers, 2-4x faster on a CPU), ``"eager"``
            calls :func:`s2m_model.dik.solve` directly, ``"onnxruntime"`` runs the exported
            DIK graph in onnxruntime (CPU float32; ~1.4x faster than the trace at batch 1,
            rotations within ~1e-5; see :class:`~s2m_model.pipeline.dik_runner.DIKRunner`).
        refine_shape: shape refinement (SR, :mod:`s2m_model.refine`): betas from the 3D
            skeleton's bone lengths, fused into one running shape per track (with
            ``temporal``), solved by DIK with that shape. False: betas 0 (the mean shape).
        refine_endpoints: pose refinement (PR) of ankles, wrists and head/neck from the
            BlazePose 3D points (the detection's world landmarks, or the ``blazepose33``
            skeleton itself) where they exist.
        refine_fit: a few Levenberg-Marquardt iterations fitting the posed mesh to the 2D
            keypoints (image mode only), with a prior near the lifted skeleton.
        refine_mask: add the silhouette term (the detector's person mask) to the fit; slow
            (~250 ms per person), so off by default.
        fit_iterations: iteration cap of the image fit (2: on the COCO photo the same mesh 2D
            error as 4, 6.28 vs 6.26 px, at about half the cost).
    """

    body: str = "s2m-free"
    detector: str = "mediapipe"
    detector_options: dict[str, Any] = field(default_factory=dict)
    video_mode: bool = True
    lifter: str = "mediapipe-world"
    lifter_model: str = "default"
    device: str = "cpu"
    temporal: bool = True
    rot_min_cutoff: float = 1.0
    rot_beta: float = 1.0
    transl_min_cutoff: float = 1.0
    transl_beta: float = 2.0
    d_cutoff: float = 1.0
    default_fps: float = 30.0
    track_max_age: int = 10
    track_appearance: bool = True
    fov_deg: float = DEFAULT_FOV_DEG
    min_keypoint_confidence: float = 0.3
    min_keypoints: int = 6
    max_persons: int = 4
    compute_vertices: bool = True
    dik_backend: str = "jit"
    refine_shape: bool = True
    refine_endpoints: bool = True
    refine_fit: bool = True
    refine_mask: bool = False
    fit_iterations: int = 2

    def __post_init__(self) -> None:
        self._legacy_lifter()
        self.validate()

    def _legacy_lifter(self) -> None:
        """``lifter`` used to hold the lifter's weights (``"default"`` or a checkpoint path);
        such a value still means the s2m lifter with those weights."""
        value = self.lifter
        if not isinstance(value, str) or value in LIFTERS:
            return
        if value == "default" or value.endswith(_CHECKPOINT_SUFFIXES) or "/" in value:
            log.debug("lifter=%r read as lifter='s2m', lifter_model=%r", value, value)
            self.lifter, self.lifter_model = "s2m", value

    def validate(self) -> None:
        """Raise ValueError naming the first bad field and what it accepts."""
        for name, rule in FIELD_RULES.items():
            value = getattr(self, name)
            if not rule.accepts(value):
                hint = ""
                if name == "lifter":
                    hint = " (the s2m lifter's weights go in lifter_model)"
                raise ValueError(f"{name} must be {rule.describe()}{hint}, got {value!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PipelineConfig:
        """Build from a mapping of field names (missing fields keep their defaults).

        Integers are accepted for float fields. Raises ValueError on unknown keys or bad values.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"pipeline config must be a mapping, got {type(data).__name__}")
        for key, where in _REMOVED_KEYS.items():
            if key in data:
                raise ValueError(f"{key} is no longer a pipeline setting: {where}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(
                f"unknown pipeline config keys {unknown}; known: {', '.join(sorted(names))}"
            )
        return cls(**dict(data))

    @classmethod
    def from_yaml(cls, path: str | Path) -> PipelineConfig:
        """Read a YAML file: the fields at the top level, or under a ``pipeline:`` key."""
        import yaml

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"pipeline config not found: {path}")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML ({exc})") from exc
        if data is None:
            data = {}
        if isinstance(data, Mapping) and set(data) == {"pipeline"}:
            data = data["pipeline"] or {}
        try:
            return cls.from_dict(data)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (YAML/JSON serialisable)."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> PipelineConfig:
        """A validated copy with some fields changed (e.g. CLI overrides)."""
        return self.from_dict({**self.to_dict(), **changes})

    def tracker_config(self) -> TrackerConfig:
        """The image-mode tracker's parameters for these settings: every person gets a result
        on their first frame (``min_hits`` 1: a photo is one frame), ``track_max_age`` and
        ``min_keypoint_confidence`` as set here, the rest :class:`TrackerConfig`'s defaults."""
        from s2m_model.tracking.tracker import TrackerConfig

        return TrackerConfig(min_hits=1, max_age=self.track_max_age,
                             min_keypoint_confidence=self.min_keypoint_confidence)


def set_torch_threads(threads: int | None, device: str = "cpu") -> int:
    """Set torch's intra-op thread count for a CPU run (process-wide: call it from programs).

    Args:
        threads: threads (>= 1); None leaves torch's setting.
        device: the pipeline's torch device; non-CPU devices leave the setting alone.

    Returns:
        The thread count torch uses afterwards.

    Raises:
        ValueError: ``threads`` is not a positive integer or None.
    """
    import torch

    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        if torch.device(device).type == "cpu":
            torch.set_num_threads(threads)
    return torch.get_num_threads()
