"""Registry of models that ``s2m export`` can export.

Each entry maps a name to a *builder*: a function that takes an :class:`ExportOptions` (what
``s2m export`` was asked for) and returns ``(module, example_inputs, input_names,
output_names)``:

- ``module``: a ``torch.nn.Module`` in float32 whose ``forward`` takes the inputs positionally
  and returns a tensor or a tuple of tensors in ``output_names`` order (wrap models that return
  dicts or dataclasses in a small adapter module);
- ``example_inputs``: a tuple of float32 tensors with the batch on axis 0; use
  ``options.batch`` as the batch size (the CLI checks parity on it and on batch 1);
- ``input_names`` / ``output_names``: the tensor names in the ONNX file and engine.

Extension point — to add a model (the lead registers ``'lifter'``, ``'dik'``, ``'dik-body'``)::

    @register_exportable("lifter")
    def _lifter(options: ExportOptions) -> ExportSpec:
        from s2m_model.lifter import Lifter          # heavy imports inside the builder
        model = Lifter()
        if options.checkpoint:
            load_state_dict_checkpoint(model, options.checkpoint)
        x = torch.randn(options.batch, 17, 2, generator=torch.Generator().manual_seed(0))
        return model, (x,), ["keypoints_2d"], ["joints_3d"]

Keep this module free of torch imports at import time: ``s2m --help`` imports it to list the
model names.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ExportOptions:
    """What a builder needs to know about the requested export.

    Attributes:
        batch: example batch size for tracing and the parity check (>= 1).
        checkpoint: weights (a torch state dict, or an ``s2m train lifter`` checkpoint) to load
            into the model; ``None`` = the model's default weights.
        format: skeleton format of the ``dik`` / ``dik-body`` input.
        body: body model of ``dik`` / ``dik-body``: ``"s2m-free"`` or an SMPL ``.npz``/``.pkl``.
    """

    batch: int = 4
    checkpoint: str | os.PathLike[str] | None = None
    format: str = "h36m17"
    body: str = "s2m-free"

    def __post_init__(self) -> None:
        if isinstance(self.batch, bool) or not isinstance(self.batch, int) or self.batch < 1:
            raise ValueError(f"batch must be an integer >= 1, got {self.batch!r}")
        if not self.format or not self.body:
            raise ValueError("format and body must be non-empty names")


ExportSpec = tuple["torch.nn.Module", tuple["torch.Tensor", ...], list[str], list[str]]
Builder = Callable[[ExportOptions], ExportSpec]

EXPORTABLE: dict[str, Builder] = {}


def register_exportable(name: str) -> Callable[[Builder], Builder]:
    """Decorator adding a builder to :data:`EXPORTABLE` under ``name`` (unique)."""

    def decorate(builder: Builder) -> Builder:
        if name in EXPORTABLE:
            raise ValueError(f"exportable model {name!r} is already registered")
        EXPORTABLE[name] = builder
        return builder

    return decorate


def load_state_dict_checkpoint(module: torch.nn.Module, path: str | Path) -> None:
    """Load weights into ``module`` from a ``torch.save``'d state dict (never unpickles code).

    Accepts a bare state dict or a dict holding one under ``"state_dict"`` or ``"model"``.

    Raises:
        FileNotFoundError: missing file. ValueError: unreadable file or mismatching keys/shapes.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        data: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises pickle/zip/runtime errors alike
        if isinstance(exc, pickle.UnpicklingError):  # not torch's tip to load unsafely
            exc = ("it holds Python objects besides tensors, which s2m never unpickles (that "
                   "can run code); re-save it as a plain state dict: "
                   "torch.save(model.state_dict(), path)")  # fmt: skip
        raise ValueError(f"cannot read checkpoint {path}: {exc}") from None
    if isinstance(data, dict):
        for key in ("state_dict", "model"):
            if isinstance(data.get(key), dict):
                data = data[key]
                break
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a state dict (got {type(data).__name__})")
    try:
        module.load_state_dict(data)
    except RuntimeError as exc:
        raise ValueError(f"checkpoint {path} does not fit {type(module).__name__}: {exc}") from exc


def toy_mlp_module(in_features: int = 34, hidden: int = 64, out_features: int = 51) -> Any:
    """A small MLP shaped like a 2D->3D lifter (17 joints x 2 -> 17 joints x 3), fixed seed."""
    import torch

    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(1234)  # deterministic weights without disturbing callers' RNG
        return torch.nn.Sequential(
            torch.nn.Linear(in_features, hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden, hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden, out_features),
        ).eval()
    finally:
        torch.random.set_rng_state(generator_state)


@register_exportable("toy-mlp")
def _toy_mlp(options: ExportOptions) -> ExportSpec:
    """Test/demo model: (B, 34) -> (B, 51), random weights unless ``--checkpoint`` is given."""
    import torch

    model = toy_mlp_module()
    if options.checkpoint:
        load_state_dict_checkpoint(model, options.checkpoint)
    x = torch.randn(options.batch, 34, generator=torch.Generator().manual_seed(0))
    return model, (x,), ["x"], ["y"]


def _dik_spec(options: ExportOptions, with_body: bool) -> ExportSpec:
    import torch

    from s2m_model.body import load_body_model
    from s2m_model.dik import DIKModule
    from s2m_model.smpl_layout import NUM_BETAS

    fmt = options.format
    body = load_body_model(options.body)
    module = DIKModule(body, fmt, with_body=with_body).eval()
    rest = body.rest_points(torch.zeros(options.batch, NUM_BETAS), fmt)
    g = torch.Generator().manual_seed(0)
    joints = rest + 0.02 * torch.randn(rest.shape, generator=g)
    names = ["global_orient", "body_pose", "transl", "solved"]
    if with_body:
        names += ["vertices", "body_joints"]
    return module, (joints, torch.zeros(options.batch, NUM_BETAS)), ["joints", "betas"], names


@register_exportable("dik")
def _dik(options: ExportOptions) -> ExportSpec:
    """DIK for the skeleton format --format (default h36m17) on the s2m-free body."""
    return _dik_spec(options, with_body=False)


@register_exportable("dik-body")
def _dik_body(options: ExportOptions) -> ExportSpec:
    """DIK + body forward (vertices, joints): skeleton -> mesh in one graph."""
    return _dik_spec(options, with_body=True)


@register_exportable("lifter")
def _lifter(options: ExportOptions) -> ExportSpec:
    """2D->3D lifter: normalised coco17 (B,51) -> h36m17 metres (B,51); shipped default weights
    unless ``--checkpoint`` names an ``s2m train lifter`` checkpoint."""
    from s2m_model.lifter import load_lifter
    from s2m_model.lifter.model import example_input

    lifter = load_lifter(options.checkpoint or "default")
    return lifter, (example_input(options.batch),), ["keypoints_2d_norm"], ["joints_3d"]


def _refine_net(options: ExportOptions, which: str) -> ExportSpec:
    import torch

    from s2m_model.refine.nets_io import load_refine_nets
    from s2m_model.refine.pose_net import PoseRefineNet
    from s2m_model.refine.shape_net import ShapeRefineNet
    from s2m_model.skeletons import get_format

    if options.checkpoint:
        pose, shape, _ = load_refine_nets(options.checkpoint)
        net = pose if which == "pose" else shape
        if net is None:
            raise ValueError(f"{options.checkpoint} holds no {which} network")
    else:  # untrained, with a seeded non-zero head so the parity check means something
        state = torch.random.get_rng_state()
        try:
            torch.manual_seed(1234)
            j = get_format(options.format).num_joints
            net = PoseRefineNet(j, 17) if which == "pose" else ShapeRefineNet(options.format, 17)
            torch.nn.init.normal_(net.head.weight, std=0.05)
        finally:
            torch.random.set_rng_state(state)
    net = net.float().eval()
    b, g = options.batch, torch.Generator().manual_seed(0)
    joints = net.num_skeleton_joints if which == "pose" else get_format(net.skeleton_fmt).num_joints
    skel = torch.randn(b, joints, 3, generator=g) * 0.3
    kp = torch.cat([torch.rand(b, net.num_keypoints, 2, generator=g) * 200 + 100,
                    torch.rand(b, net.num_keypoints, 1, generator=g)], -1)  # fmt: skip
    box = torch.tensor([[100.0, 80.0, 300.0, 400.0]]).repeat(b, 1)
    mask = torch.rand(b, 32, 24, generator=g)
    names = ["skeleton", "keypoints", "box", "mask"]
    if which == "pose":
        import roma

        rot = roma.random_rotmat(b * 24, generator=g).reshape(b, 24, 3, 3)
        return net, (skel, kp, box, mask, rot), [*names, "rotmats"], ["residual"]
    betas0 = torch.randn(b, 10, generator=g)
    return net, (skel, kp, box, mask, betas0), [*names, "betas0"], ["betas"]


@register_exportable("refine-pose")
def _refine_pose(options: ExportOptions) -> ExportSpec:
    """Learned PR: (skeleton, keypoints, box, mask (B,32,24), DIK rotmats) -> residual
    rotations (B,8,3,3); ``--checkpoint`` an ``s2m train refine`` file (else untrained)."""
    return _refine_net(options, "pose")


@register_exportable("refine-shape")
def _refine_shape(options: ExportOptions) -> ExportSpec:
    """Learned SR: (skeleton, keypoints, box, mask (B,32,24), betas0) -> betas (B,10);
    ``--checkpoint`` an ``s2m train refine`` file (else untrained)."""
    return _refine_net(options, "shape")
