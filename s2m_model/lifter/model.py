"""The 2D -> 3D pose lifter: normalisation, the residual MLP, checkpoints.

Data flow of :meth:`Lifter.lift`::

    keypoints2d (B,17,3) coco17 pixels + confidence, camera (B,4) or None
      -> normalise_keypoints: [virtual camera] -> root-centre (hip midpoint) -> / 2D size
      -> x_norm (B,51)                 (17 x (x, y, confidence), invalid joints all zero)
      -> Lifter.forward                (residual MLP; ONNX-exportable)
      -> (B,51) h36m17, metres, pelvis at 0, in the *virtual* camera frame
      -> rotate back into the real camera frame (identity when camera is None)

Virtual camera: with intrinsics, every keypoint is turned into a viewing ray and the rays are
rotated so that the hip-midpoint ray becomes the optical axis. The network then always sees a
person "in the image centre", so the perspective distortion of off-centre people does not have
to be learned, and the 3D output is rotated back so its axes are the real camera's (x right,
y down, z forward). Without intrinsics the pixels are used as they are (square pixels assumed)
and the output frame is the camera's only for people near the optical axis: the error grows with
the person's angle off the optical axis (30 deg at the side edge of a 60 deg lens).

Units: the network input is in units of the 2D size (mean distance of the valid keypoints to the
root). The output is in metres: a supervised model learns metric depth and size directly (the
body size is the one unobservable factor: it regresses to the training bodies' mean); an
unsupervised model predicts in 2D-size units and ``forward`` rescales each pose so its h36m17
bone lengths sum to that of the body model's mean skeleton (``config.mean_bone_sum``).
"""

from __future__ import annotations

import math
import pickle
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import roma
import torch
from torch import nn

from s2m_model.skeletons import get_format

INPUT_FORMAT = "coco17"
OUTPUT_FORMAT = "h36m17"
#: Internal second output layout: 3D coco17 joints, used by the unsupervised cycle (its input
#: layout must be re-projectable) and as extra supervision. Not part of ``forward``'s output.
AUX_FORMAT = "coco17"
NUM_IN = 17
NUM_OUT = 17
NUM_AUX = 17
COCO_HIPS = (11, 12)  # left_hip, right_hip in coco17
CHECKPOINT_KIND = "s2m-lifter"
CHECKPOINT_VERSION = 1
ASSETS = Path(__file__).resolve().parents[1] / "assets"
DEFAULT_CHECKPOINT = ASSETS / "lifter_default.pt"
#: Shipped weights by name (s2m_model/assets/README.md): ``default`` (synthetic 2D with
#: simulated detector noise) and ``detector-loop`` (fine-tuned on MediaPipe's own keypoints).
SHIPPED_CHECKPOINTS: dict[str, Path] = {
    "default": DEFAULT_CHECKPOINT, "detector-loop": ASSETS / "lifter_detector_loop.pt",
}  # fmt: skip
#: Samples need at least one hip and this many keypoints at or above ``min_confidence``.
MIN_VALID_JOINTS = 5


@dataclass
class LifterConfig:
    """Architecture and conventions of a :class:`Lifter` (stored in every checkpoint).

    Attributes:
        hidden: width of the residual MLP.
        blocks: number of residual blocks (2 linear layers each).
        dropout: dropout probability inside the blocks (training only).
        norm: ``"batch"`` (BatchNorm1d, as Martinez et al. 2017) or ``"layer"`` (LayerNorm).
        mode: ``"supervised"`` (output learned in metres) or ``"unsupervised"`` (output in 2D-size
            units, rescaled in ``forward`` to the mean skeleton's bone-length sum).
        min_confidence: keypoints below this confidence count as missing (zeroed).
        mean_bone_sum: metres; sum of the h36m17 bone lengths of the body model's mean skeleton
            (used by ``mode="unsupervised"`` only).
        meta: free-form JSON-able notes (training data, metrics); not used by the model.
    """

    hidden: int = 512
    blocks: int = 2
    dropout: float = 0.1
    norm: str = "batch"
    mode: str = "supervised"
    min_confidence: float = 0.1
    mean_bone_sum: float = 4.3
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_mlp_size(self.hidden, self.blocks, self.dropout)
        if self.norm not in ("batch", "layer"):
            raise ValueError(f"norm must be 'batch' or 'layer', got {self.norm!r}")
        if self.mode not in ("supervised", "unsupervised"):
            raise ValueError(f"mode must be 'supervised' or 'unsupervised', got {self.mode!r}")
        if not 0.0 <= float(self.min_confidence) <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {self.min_confidence!r}")
        if not (math.isfinite(float(self.mean_bone_sum)) and self.mean_bone_sum > 0):
            raise ValueError(f"mean_bone_sum must be > 0 metres, got {self.mean_bone_sum!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (what checkpoints store)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> LifterConfig:
        """Inverse of :meth:`to_dict`; ValueError on unknown keys or bad values."""
        if not isinstance(data, dict):
            raise ValueError(f"lifter config must be a dict, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown lifter config keys: {unknown}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ValueError(f"bad lifter config: {exc}") from exc


class NormalisedKeypoints(NamedTuple):
    """Result of :func:`normalise_keypoints` for a batch of B samples.

    Attributes:
        x: (B,51) network input: 17 x (x, y, confidence); x, y root-centred and divided by
            ``scale``; missing joints are (0, 0, 0).
        root: (B,2) hip midpoint in the frame the keypoints were normalised in (virtual-camera
            normalised image coordinates with a camera, else pixels).
        scale: (B,) 2D size in the same units (mean distance of the valid joints to ``root``).
        rotation: (B,3,3) virtual-camera rotation ``R`` (real camera -> virtual camera);
            identity without a camera. A virtual-frame point ``p`` is ``R^T p`` in the camera.
        valid: (B,17) bool, keypoints used.
    """

    x: torch.Tensor
    root: torch.Tensor
    scale: torch.Tensor
    rotation: torch.Tensor
    valid: torch.Tensor


def _as_float_tensor(value: Any, name: str, device: torch.device | None = None) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        dt = value.dtype
        if not np.issubdtype(dt, np.number) or np.issubdtype(dt, np.complexfloating):
            raise ValueError(f"{name} must be a real numeric array, got dtype {value.dtype}")
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        raise ValueError(
            f"{name} must be a torch tensor or numpy array, got {type(value).__name__}"
        )
    if value.is_complex() or value.dtype == torch.bool:
        raise ValueError(f"{name} must be real-valued, got {value.dtype}")
    value = value.to(device=device if device is not None else value.device, dtype=torch.float32)
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name} contains NaN or inf")
    return value


def rotation_to_optical_axis(rays: torch.Tensor) -> torch.Tensor:
    """(B,3,3) rotations taking each direction ``rays`` (B,3) onto +z by the shortest arc.

    The shortest arc keeps the image "up" as close as possible, so the virtual camera does not
    roll. Built from a rotation vector with ``roma``.
    """
    d = rays / torch.linalg.vector_norm(rays, dim=-1, keepdim=True)
    axis = torch.stack([d[:, 1], -d[:, 0], torch.zeros_like(d[:, 0])], dim=-1)  # d x z
    sin = torch.linalg.vector_norm(axis, dim=-1)
    angle = torch.atan2(sin, d[:, 2])
    # angle/sin -> 1 on the axis (no rotation needed there).
    factor = torch.where(sin > 1e-9, angle / sin.clamp_min(1e-9), torch.ones_like(sin))
    return roma.rotvec_to_rotmat(axis * factor[:, None])


def virtual_camera(
    keypoints_xy: torch.Tensor, valid: torch.Tensor, camera: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels -> normalised image coordinates of a virtual camera looking at the hip midpoint.

    Args:
        keypoints_xy: (B,J,2) pixels (coco17 order for the hip indices).
        valid: (B,J) bool; the root ray is the mean of the valid hips' rays.
        camera: (B,4) fx, fy, cx, cy in pixels (fx, fy > 0).

    Returns:
        (B,J,2) coordinates x/z, y/z in the virtual camera and its (B,3,3) rotation ``R``
        (camera -> virtual camera).
    """
    fx, fy, cx, cy = camera.unbind(-1)
    rays = torch.stack(
        [
            (keypoints_xy[..., 0] - cx[:, None]) / fx[:, None],
            (keypoints_xy[..., 1] - cy[:, None]) / fy[:, None],
            torch.ones_like(keypoints_xy[..., 0]),
        ],
        dim=-1,
    )
    hips = list(COCO_HIPS)
    w = valid[:, hips].to(rays.dtype)
    root_ray = (rays[:, hips] * w[..., None]).sum(1) / w.sum(1, keepdim=True).clamp_min(1.0)
    # No valid hip (caller rejects such samples): any ray keeps the maths finite.
    axis = torch.tensor([0.0, 0.0, 1.0], device=rays.device, dtype=rays.dtype)
    root_ray = torch.where(w.sum(1, keepdim=True) > 0, root_ray, axis)
    rot = rotation_to_optical_axis(root_ray)
    p = rays @ rot.mT
    # Rays more than 90 deg off the root ray cannot come from one pinhole image of a person.
    xy = p[..., :2] / p[..., 2:].clamp_min(1e-6)
    return xy, rot


def centre_and_scale(
    xy: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Root-centre at the valid hips' midpoint and divide by the mean joint distance to it.

    Args:
        xy: (B,17,2) coco17 positions (any 2D unit). valid: (B,17) bool.

    Returns:
        ``(xy_norm (B,17,2), root (B,2), scale (B,))``; invalid joints are 0 in ``xy_norm``.
        ``scale`` is 0 where it cannot be computed (callers check with :func:`usable_mask`).
    """
    v = valid.to(xy.dtype)
    hips = list(COCO_HIPS)
    wh = v[:, hips]
    root = (xy[:, hips] * wh[..., None]).sum(1) / wh.sum(1, keepdim=True).clamp_min(1.0)
    d = torch.linalg.vector_norm(xy - root[:, None], dim=-1)
    scale = (d * v).sum(1) / v.sum(1).clamp_min(1.0)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    xy_norm = (xy - root[:, None]) / safe[:, None, None] * v[..., None]
    return xy_norm, root, scale


def usable_mask(valid: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) bool: at least one valid hip, ``MIN_VALID_JOINTS`` valid joints (and 2D size > 0)."""
    ok = valid[:, list(COCO_HIPS)].any(1) & (valid.sum(1) >= MIN_VALID_JOINTS)
    if scale is not None:
        ok = ok & (scale > 1e-9)
    return ok


def normalise_keypoints(
    keypoints2d: Any,
    camera: Any | None = None,
    min_confidence: float = 0.1,
    device: torch.device | str | None = None,
) -> NormalisedKeypoints:
    """Turn detector output into the lifter's input.

    Args:
        keypoints2d: (B,17,3) torch/numpy, coco17 order: x, y in pixels, confidence in [0, 1].
        camera: optional (B,4) or (4,) fx, fy, cx, cy in pixels. ``None``: pixels are used as
            they are (image-independent; the output frame then ignores the person's offset from
            the optical axis).
        min_confidence: keypoints with confidence below it are treated as missing.
        device: where the result lives (default: the input's device).

    Returns:
        :class:`NormalisedKeypoints`. Translating or uniformly scaling the pixel keypoints (no
        camera) leaves ``x`` unchanged.

    Raises:
        ValueError: wrong shape, NaN/inf, confidence outside [0, 1], non-positive focal length,
            or a sample without a valid hip or with fewer than ``MIN_VALID_JOINTS`` valid
            keypoints (the message lists the sample indices).
    """
    dev = torch.device(device) if device is not None else None
    kp = _as_float_tensor(keypoints2d, "keypoints2d", dev)
    if kp.ndim != 3 or tuple(kp.shape[1:]) != (NUM_IN, 3):
        raise ValueError(
            f"keypoints2d must be (B,{NUM_IN},3) {INPUT_FORMAT} x, y (pixels), confidence; "
            f"got {tuple(kp.shape)}"
        )
    conf = kp[..., 2]
    if bool(((conf < -1e-3) | (conf > 1 + 1e-3)).any()):
        raise ValueError("keypoint confidences must lie in [0, 1]")
    conf = conf.clamp(0.0, 1.0)  # float round-off from detectors, e.g. 1.0000001
    batch = kp.shape[0]
    valid = conf >= min_confidence
    if camera is not None:
        cam = _as_float_tensor(camera, "camera", kp.device)
        if cam.ndim == 1:
            cam = cam.expand(batch, -1)
        if cam.ndim != 2 or cam.shape != (batch, 4):
            raise ValueError(f"camera must be (B,4) or (4,) fx, fy, cx, cy; got {tuple(cam.shape)}")
        if bool((cam[:, :2] <= 0).any()):
            raise ValueError("camera focal lengths fx, fy must be > 0 pixels")
        xy, rot = virtual_camera(kp[..., :2], valid, cam)
    else:
        xy = kp[..., :2]
        rot = torch.eye(3, device=kp.device).expand(batch, 3, 3).clone()
    xy_norm, root, scale = centre_and_scale(xy, valid)
    ok = usable_mask(valid, scale)
    if not bool(ok.all()):
        bad = torch.nonzero(~ok).flatten().tolist()
        raise ValueError(
            f"samples {bad[:10]}{'...' if len(bad) > 10 else ''} cannot be lifted: each needs a "
            f"hip and >= {MIN_VALID_JOINTS} keypoints with confidence >= {min_confidence}, not "
            "all at one point (filter with Lifter.usable)"
        )
    c = torch.where(valid, conf, torch.zeros_like(conf))
    x = torch.cat([xy_norm, c[..., None]], dim=-1).reshape(batch, NUM_IN * 3)
    return NormalisedKeypoints(x, root, scale, rot, valid)


def example_input(batch: int, seed: int = 0) -> torch.Tensor:
    """(batch,51) deterministic, plausible normalised inputs (tracing, parity checks).

    A T-pose-like coco17 layout with random jitter, normalised like real detections.
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    g = torch.Generator().manual_seed(seed)
    # coco17 (x right, y down) of a standing person, arbitrary units.
    base = torch.tensor([
        [0, -7], [-0.4, -7.3], [0.4, -7.3], [-0.8, -7], [0.8, -7], [-1.8, -5.5], [1.8, -5.5],
        [-2.2, -3], [2.2, -3], [-2.4, -0.8], [2.4, -0.8], [-1, 0], [1, 0], [-1.1, 4],
        [1.1, 4], [-1.2, 8], [1.2, 8],
    ], dtype=torch.float32)  # fmt: skip
    xy = base + 0.4 * torch.randn(batch, NUM_IN, 2, generator=g)
    conf = 0.3 + 0.7 * torch.rand(batch, NUM_IN, 1, generator=g)
    return normalise_keypoints(torch.cat([xy, conf], -1)).x


def check_mlp_size(hidden: Any, blocks: Any, dropout: Any) -> None:
    """ValueError unless ``hidden`` > 0 and ``blocks`` >= 0 are ints and ``dropout`` is in
    [0, 1): the residual-MLP size fields of the lifter and fused configs."""
    if not (isinstance(hidden, int) and hidden > 0):
        raise ValueError(f"hidden must be a positive int, got {hidden!r}")
    if not (isinstance(blocks, int) and blocks >= 0):
        raise ValueError(f"blocks must be an int >= 0, got {blocks!r}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")


class ResidualBlock(nn.Module):
    """Martinez et al. residual block: 2 x (linear, norm, ReLU, dropout) + skip, (B,W) -> (B,W).

    ``norm``: ``"batch"`` (BatchNorm1d) or ``"layer"`` (LayerNorm: safe at batch 1). Shared by
    the s2m lifter and the fused front end (same parameter names, ``body.<i>``)."""

    def __init__(self, width: int, norm: str, dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(2):
            layers += [
                nn.Linear(width, width),
                nn.BatchNorm1d(width) if norm == "batch" else nn.LayerNorm(width),
                nn.ReLU(),
                nn.Dropout(dropout),
            ]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Lifter(nn.Module):
    """coco17 2D keypoints -> h36m17 3D joints; a residual MLP (Martinez et al. 2017).

    ``forward(x_norm (B,51)) -> (B,51)``: normalised input from :func:`normalise_keypoints`
    -> h36m17 joints in metres, pelvis at 0, virtual-camera axes (x right, y down, z forward).
    This is the ONNX-exportable part. :meth:`lift` wraps normalisation and the rotation back to
    the camera frame. :meth:`predict` gives the raw training output (h36m17 + coco17 3D).

    Default size (hidden 512, 2 blocks): ~1.1 M parameters, ~4.4 MB float32.
    """

    input_format = INPUT_FORMAT
    output_format = OUTPUT_FORMAT

    def __init__(self, config: LifterConfig | None = None) -> None:
        super().__init__()
        self.config = config or LifterConfig()
        c = self.config
        self.stem = nn.Sequential(
            nn.Linear(NUM_IN * 3, c.hidden),
            nn.BatchNorm1d(c.hidden) if c.norm == "batch" else nn.LayerNorm(c.hidden),
            nn.ReLU(),
            nn.Dropout(c.dropout),
        )
        self.blocks = nn.Sequential(
            *[ResidualBlock(c.hidden, c.norm, c.dropout) for _ in range(c.blocks)]
        )
        self.head = nn.Linear(c.hidden, (NUM_OUT + NUM_AUX) * 3)
        with torch.no_grad():  # start near the zero pose: the first steps then refine, not undo
            self.head.weight.mul_(0.1)
            self.head.bias.zero_()
        bones = get_format(OUTPUT_FORMAT).bones
        self.register_buffer("_bone_parent", torch.tensor([p for p, _ in bones]), persistent=False)
        self.register_buffer("_bone_child", torch.tensor([c_ for _, c_ in bones]), persistent=False)

    # -- network ------------------------------------------------------------------------------
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """(B,51) normalised input -> (B,34,3) raw output: h36m17 then coco17 joints, relative to
        the h36m17 pelvis, in metres (supervised) or 2D-size units (unsupervised)."""
        out = self.head(self.blocks(self.stem(x))).reshape(x.shape[0], NUM_OUT + NUM_AUX, 3)
        return out - out[:, :1]

    def bone_sum(self, joints: torch.Tensor) -> torch.Tensor:
        """(B,) sum of the h36m17 bone lengths of (B,17,3) joints (same unit as the joints)."""
        bones = joints[:, self._bone_child] - joints[:, self._bone_parent]
        return torch.linalg.vector_norm(bones, dim=-1).sum(-1)

    def to_metres(self, raw: torch.Tensor) -> torch.Tensor:
        """(B,J,3) raw output (first 17 joints h36m17) -> metres; identity when supervised."""
        if self.config.mode == "supervised":
            return raw
        total = self.bone_sum(raw[:, :NUM_OUT]).clamp_min(1e-6)
        return raw * (self.config.mean_bone_sum / total)[:, None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B,51) normalised coco17 input -> (B,51) h36m17 joints, metres, pelvis at 0."""
        joints = self.to_metres(self.predict(x)[:, :NUM_OUT])
        return joints.reshape(x.shape[0], NUM_OUT * 3)

    # -- inference API ------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def usable(self, keypoints2d: Any) -> torch.Tensor:
        """(B,) bool: which samples :meth:`lift` accepts (a hip + enough confident keypoints)."""
        kp = _as_float_tensor(keypoints2d, "keypoints2d")
        if kp.ndim != 3 or tuple(kp.shape[1:]) != (NUM_IN, 3):
            raise ValueError(f"keypoints2d must be (B,{NUM_IN},3), got {tuple(kp.shape)}")
        valid = kp[..., 2] >= self.config.min_confidence
        _, _, scale = centre_and_scale(kp[..., :2], valid)
        return usable_mask(valid, scale)

    def lift(self, keypoints2d: Any, camera: Any | None = None) -> torch.Tensor:
        """Lift detector keypoints to 3D.

        Args:
            keypoints2d: (B,17,3) torch or numpy, coco17 order: x, y in pixels, confidence in
                [0, 1]. Keypoints below ``config.min_confidence`` are treated as missing.
            camera: optional (B,4) or (4,) fx, fy, cx, cy (pixels). With it the output axes are
                exactly the camera's; without it they are correct for people near the optical
                axis (see the module docstring).

        Returns:
            (B,17,3) float32 h36m17 joints in metres, root-relative (pelvis at 0), camera axes
            (x right, y down, z forward), on the lifter's device. B = 0 gives (0,17,3).

        Raises:
            ValueError: bad shapes/values, or samples that cannot be lifted (see
                :func:`normalise_keypoints`; filter them with :meth:`usable`).
        """
        shape = tuple(getattr(keypoints2d, "shape", ()))
        if len(shape) == 3 and shape[0] == 0:
            if shape[1:] != (NUM_IN, 3):
                raise ValueError(f"keypoints2d must be (B,{NUM_IN},3), got {shape}")
            return torch.zeros(0, NUM_OUT, 3, device=self.device)
        norm = normalise_keypoints(keypoints2d, camera, self.config.min_confidence, self.device)
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                joints = self(norm.x).reshape(-1, NUM_OUT, 3)
        finally:
            self.train(was_training)
        return joints @ norm.rotation  # row vectors: p_cam = R^T p_virtual

    def extra_repr(self) -> str:
        c = self.config
        return f"mode={c.mode}, hidden={c.hidden}, blocks={c.blocks}, norm={c.norm}"


# -------------------------------------------------------------------------------- checkpoints
def save_checkpoint(lifter: Lifter, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ``lifter`` as a plain dict (tensors + JSON-able config) loadable with
    ``torch.load(..., weights_only=True)``.

    Layout: ``{"kind": "s2m-lifter", "version": 1, "config": {...}, "state_dict": {...},
    "extra": {...}}``. The file is written to a temporary name and renamed (atomic).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in lifter.state_dict().items()}
    payload = {
        "kind": CHECKPOINT_KIND,
        "version": CHECKPOINT_VERSION,
        "config": lifter.config.to_dict(),
        "state_dict": state,
        "extra": dict(extra or {}),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


_UNSAFE_CHECKPOINT = (
    "it holds Python objects besides tensors, which s2m never unpickles (that can run code); "
    "re-save the weights as a plain state dict: torch.save(model.state_dict(), path)"
)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and check a lifter checkpoint dict (never unpickles code).

    Raises:
        FileNotFoundError: missing file. ValueError: unreadable/corrupt file or wrong layout.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"lifter checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - zip, pickle and runtime errors look alike here
        if isinstance(exc, pickle.UnpicklingError):  # not torch's tip to load unsafely
            exc = _UNSAFE_CHECKPOINT
        raise ValueError(f"cannot read lifter checkpoint {path} (corrupt or not a torch file): "
                         f"{exc}") from None
    if not isinstance(data, dict) or data.get("kind") != CHECKPOINT_KIND:
        raise ValueError(f"{path} is not an s2m lifter checkpoint (no kind={CHECKPOINT_KIND!r})")
    if data.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path}: unsupported lifter checkpoint version {data.get('version')!r}")
    state = data.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: 'state_dict' must map names to tensors")
    return data


def load_lifter(name_or_path: str | Path = "default", device: str | torch.device = "cpu") -> Lifter:
    """Load a lifter in eval mode.

    Args:
        name_or_path: a name of :data:`SHIPPED_CHECKPOINTS` (``"default"``,
            ``"detector-loop"``) or a path to a checkpoint written by :func:`save_checkpoint` /
            ``s2m train lifter``.
        device: torch device.

    Raises:
        FileNotFoundError: missing file. ValueError: corrupt file, wrong layout, or weights that
            do not fit the stored config.
    """
    path = SHIPPED_CHECKPOINTS.get(str(name_or_path), Path(name_or_path))
    data = read_checkpoint(path)
    config = LifterConfig.from_dict(data.get("config"))
    lifter = Lifter(config)
    try:
        lifter.load_state_dict(data["state_dict"])
    except RuntimeError as exc:
        raise ValueError(f"weights in {path} do not fit the lifter config: {exc}") from exc
    for name, t in lifter.state_dict().items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"{path}: parameter {name} contains NaN or inf")
    return lifter.to(device).eval()
