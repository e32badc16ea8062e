"""The ``fused`` front end: the detector's 2D landmarks **and** its world landmarks -> 3D joints.

Data flow of :meth:`FusedLifter.lift`::

    landmarks (B,33,4) BlazePose pixels x, y, relative z, visibility (Detection.keypoints_blazepose)
    world     (B,33,3) BlazePose world landmarks, metres, hip-centred (Detection.keypoints_world)
    camera    (B,4) fx, fy, cx, cy pixels
      -> fused_inputs: 2D rays (x-cx)/fx, (y-cy)/fy, centred on the hip midpoint, / their 2D
         size; visibilities; the world landmarks re-centred on their hip midpoint; the hip
         midpoint's ray (where the person is in the image: perspective)
      -> (B,201) -> residual MLP -> (B,33,3) correction
      -> world (hip-centred) + correction = blazepose33 joints, metres, hip midpoint at 0,
         camera axes (x right, y down, z forward)

Why a residual on the world landmarks: MediaPipe's own 3D skeleton is already metric and far
better on real photos than a lifter trained on clean synthetic keypoints (docs/benchmarks.md);
the network only has to learn what the detector gets wrong (mostly depth and limb length),
and with zero weights it *is* the ``mediapipe-world`` front end.

Trained supervised on detector-in-the-loop data (:mod:`s2m_model.lifter.fused_train`): the real
detector's outputs on renders of ground-truth bodies. Weights are a plain dict of tensors and
JSON-able config, loaded with ``torch.load(..., weights_only=True)`` (no pickled code).
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from s2m_model.lifter.model import ResidualBlock, check_mlp_size
from s2m_model.skeletons import get_format

__all__ = [
    "DEFAULT_FUSED",
    "FUSED_FORMAT",
    "FusedConfig",
    "FusedLifter",
    "fused_inputs",
    "load_fused",
    "save_fused",
]

FUSED_FORMAT = "blazepose33"
NUM_POINTS = 33
HIPS = (23, 24)  # left_hip, right_hip in blazepose33
NUM_INPUT = NUM_POINTS * 2 + NUM_POINTS + NUM_POINTS * 3 + 3
CHECKPOINT_KIND = "s2m-fused"
CHECKPOINT_VERSION = 1
DEFAULT_FUSED = Path(__file__).resolve().parents[1] / "assets" / "fused_default.pt"


@dataclass
class FusedConfig:
    """Architecture of a :class:`FusedLifter` (stored in every checkpoint).

    Attributes:
        hidden: width of the residual MLP.
        blocks: residual blocks (2 linear layers each).
        dropout: dropout inside the blocks (training only).
        meta: JSON-able notes (training data, licence, metrics); not used by the model.
    """

    hidden: int = 256
    blocks: int = 2
    dropout: float = 0.1
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_mlp_size(self.hidden, self.blocks, self.dropout)

    @classmethod
    def from_dict(cls, data: Any) -> FusedConfig:
        """Inverse of ``asdict``; ValueError on unknown keys or bad values."""
        if not isinstance(data, dict):
            raise ValueError(f"fused config must be a dict, got {type(data).__name__}")
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown fused config keys: {unknown}")
        return cls(**data)


def _tensor(value: Any, name: str, shape: tuple[int, ...], device) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(value, dtype=np.float32) if not torch.is_tensor(value)
                        else value, dtype=torch.float32, device=device)  # fmt: skip
    if t.ndim != len(shape) + 1 or tuple(t.shape[1:]) != shape:
        raise ValueError(f"{name} must be (B,{','.join(map(str, shape))}), got {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or inf")
    return t


def fused_inputs(landmarks: Any, world: Any, camera: Any, device=None) -> torch.Tensor:
    """Network input of a batch.

    Args:
        landmarks: (B,33,4) BlazePose pixels x, y, relative z (unused), visibility in [0, 1].
        world: (B,33,3) world landmarks, metres (any origin: re-centred on the hip midpoint).
        camera: (B,4) or (4,) fx, fy, cx, cy pixels.

    Returns:
        (B,201) float32: 33 x 2 normalised 2D offsets, 33 visibilities, 33 x 3 hip-centred world
        points, the hip midpoint's ray (x, y) and the log of the 2D size.

    Raises:
        ValueError: bad shapes, non-finite values, non-positive focal lengths, or a person whose
            2D landmarks all coincide.
    """
    lm = _tensor(landmarks, "landmarks", (NUM_POINTS, 4), device)
    w = _tensor(world, "world", (NUM_POINTS, 3), lm.device)
    cam = torch.as_tensor(np.asarray(camera, np.float32) if not torch.is_tensor(camera)
                          else camera, dtype=torch.float32, device=lm.device)  # fmt: skip
    if cam.ndim == 1:
        cam = cam.expand(lm.shape[0], 4)
    if tuple(cam.shape) != (lm.shape[0], 4):
        raise ValueError(f"camera must be (4,) or (B,4), got {tuple(cam.shape)}")
    if not bool((cam[:, :2] > 0).all()):
        raise ValueError("camera focal lengths must be > 0 pixels")
    rays = (lm[..., :2] - cam[:, None, 2:]) / cam[:, None, :2]
    root = rays[:, list(HIPS)].mean(1, keepdim=True)
    rel = rays - root
    scale = torch.linalg.vector_norm(rel, dim=-1).mean(-1)
    if not bool((scale > 1e-6).all()):
        raise ValueError("a person's 2D landmarks all coincide: cannot normalise")
    rel = rel / scale[:, None, None]
    vis = lm[..., 3].clamp(0.0, 1.0)
    w = w - w[:, list(HIPS)].mean(1, keepdim=True)
    parts = [rel.flatten(1), vis, w.flatten(1), root[:, 0], scale.log()[:, None]]
    return torch.cat(parts, 1)


class FusedLifter(nn.Module):
    """2D landmarks + world landmarks -> blazepose33 3D joints (see the module docstring).

    ``forward(x (B,201)) -> (B,33,3)`` metres, hip midpoint at 0, camera axes: the hip-centred
    world landmarks (read back from ``x``) plus a learned correction. Default size (hidden 256,
    2 blocks): ~0.34 M parameters, ~1.4 MB float32.
    """

    output_format = FUSED_FORMAT

    def __init__(self, config: FusedConfig | None = None) -> None:
        super().__init__()
        self.config = config or FusedConfig()
        c = self.config
        self.stem = nn.Sequential(nn.Linear(NUM_INPUT, c.hidden), nn.LayerNorm(c.hidden),
                                  nn.ReLU(), nn.Dropout(c.dropout))  # fmt: skip
        self.blocks = nn.Sequential(
            *[ResidualBlock(c.hidden, "layer", c.dropout) for _ in range(c.blocks)]
        )
        self.head = nn.Linear(c.hidden, NUM_POINTS * 3)
        with torch.no_grad():  # start as the detector's own skeleton (zero correction)
            self.head.weight.zero_()
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B,201) from :func:`fused_inputs` -> (B,33,3) metres, hip midpoint at 0."""
        start = NUM_POINTS * 3
        world = x[:, start : start + NUM_POINTS * 3].reshape(-1, NUM_POINTS, 3)
        out = world + self.head(self.blocks(self.stem(x))).reshape(-1, NUM_POINTS, 3)
        return out - out[:, list(HIPS)].mean(1, keepdim=True)

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def lift(self, landmarks: Any, world: Any, camera: Any) -> torch.Tensor:
        """(B,33,4) pixels + visibility, (B,33,3) world landmarks, (B,4)|(4,) intrinsics ->
        (B,33,3) float32 blazepose33 joints (metres, hip midpoint at 0, camera axes) on the
        model's device; B = 0 gives (0,33,3). ValueError on bad input (:func:`fused_inputs`)."""
        if int(np.shape(landmarks)[0]) == 0:
            return torch.zeros(0, NUM_POINTS, 3, device=self.device)
        x = fused_inputs(landmarks, world, camera, self.device)
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return self(x)
        finally:
            self.train(was_training)


def save_fused(model: FusedLifter, path: str | Path) -> Path:
    """Write ``{"kind", "version", "config", "state_dict"}`` (tensors + JSON-able config,
    readable with ``weights_only=True``), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "kind": CHECKPOINT_KIND,
        "version": CHECKPOINT_VERSION,
        "config": asdict(model.config),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_fused(name_or_path: str | Path = "default", device: str | torch.device = "cpu"
               ) -> FusedLifter:  # fmt: skip
    """Load a fused front end in eval mode (``"default"``: the shipped weights).

    Raises:
        FileNotFoundError: missing file. ValueError: corrupt file, wrong layout, non-finite
            weights, or weights that do not fit the stored config.
    """
    if str(name_or_path) == "default":
        return _load_default(str(device))
    return _load(Path(name_or_path), device)


@functools.lru_cache(maxsize=4)
def _load_default(device: str) -> FusedLifter:
    # Shared, read-only: every pipeline of a process uses the same shipped weights.
    return _load(DEFAULT_FUSED, device)


def _load(path: Path, device) -> FusedLifter:
    if not path.is_file():
        raise FileNotFoundError(f"fused front-end weights not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - zip, pickle and runtime errors look alike here
        raise ValueError(f"cannot read fused weights {path}: {exc}") from exc
    if not isinstance(data, dict) or data.get("kind") != CHECKPOINT_KIND:
        raise ValueError(f"{path} is not an s2m fused checkpoint (no kind={CHECKPOINT_KIND!r})")
    if data.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path}: unsupported fused checkpoint version {data.get('version')!r}")
    model = FusedLifter(FusedConfig.from_dict(data.get("config")))
    try:
        model.load_state_dict(data["state_dict"])
    except (RuntimeError, KeyError, TypeError) as exc:
        raise ValueError(f"weights in {path} do not fit the fused config: {exc}") from exc
    for name, t in model.state_dict().items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"{path}: parameter {name} contains NaN or inf")
    get_format(FUSED_FORMAT)  # the registry knows the output format
    return model.to(device).eval()
