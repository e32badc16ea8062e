"""The SMPL-layout body model: a thin, validated wrapper around ``smplx.SMPL``."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import numpy as np
import torch

from s2m_model.smpl_layout import JOINT_NAMES, NUM_BETAS, NUM_BODY_JOINTS, NUM_JOINTS, PARENTS

#: smplx's pose-corrective features: one flattened 3x3 (R - I) per non-root joint.
NUM_POSE_FEATURES = NUM_BODY_JOINTS * 9


@dataclass
class BodyOutput:
    """Posed body. ``vertices`` (B,V,3) (None if not requested) and ``joints`` (B,24,3) in
    metres, body frame (24 = :data:`~s2m_model.smpl_layout.NUM_JOINTS`)."""

    vertices: torch.Tensor | None
    joints: torch.Tensor
    betas: torch.Tensor
    global_orient: torch.Tensor
    body_pose: torch.Tensor
    transl: torch.Tensor


def _smplx_layer(arrays: dict[str, np.ndarray], dtype: torch.dtype):
    import smplx
    from smplx.utils import Struct

    # C-contiguous copies: the same numbers in another memory layout (e.g. a Fortran-ordered
    # J_regressor from a sparse SMPL file) would change float summation order.
    keys = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")
    data = {k: np.ascontiguousarray(v) for k, v in arrays.items() if k in keys}
    data["shapedirs"] = data["shapedirs"][:, :, :NUM_BETAS]
    if "posedirs" not in data:
        data["posedirs"] = np.zeros((data["v_template"].shape[0], 3, NUM_POSE_FEATURES))
    # Same code path as an official SMPL file, minus the pickle: smplx reads the Struct.
    # smplx prints "WARNING: You are using a SMPL model, with only 10 shape coefficients" for
    # every model with fewer than 300 components (s2m-free, official SMPL): that is the layout
    # s2m asks for, so that one line is dropped; anything else smplx prints is passed on.
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        layer = smplx.SMPL(
            model_path="",
            data_struct=Struct(**data),
            num_betas=NUM_BETAS,
            dtype=dtype,
            create_betas=False,
            create_global_orient=False,
            create_body_pose=False,
            create_transl=False,
        )
    rest = [ln for ln in captured.getvalue().splitlines()
            if ln.strip() and "shape coefficients" not in ln]  # fmt: skip
    if rest:
        print("\n".join(rest))
    return layer


class BodyModel(torch.nn.Module):
    """SMPL-layout body: 24 joints in SMPL order, axis-angle pose, 10 shape coefficients.

    Call it with batched parameters (any omitted one is zero)::

        out = body(betas=(B,10), global_orient=(B,3), body_pose=(B,23,3), transl=(B,3))
        out.vertices  # (B,V,3) metres
        out.joints    # (B,24,3) metres

    Rotations are axis-angle in radians, local to the parent joint (SMPL convention). The body
    frame is SMPL's: Y up, facing +Z, the body's left is +X; the zero pose is a T-pose.

    The model's arrays are properties (``v_template``, ``shapedirs``, ``posedirs``,
    ``J_regressor``, ``lbs_weights``, ``faces``, ``parents``); ``smpl`` is the underlying
    ``smplx.SMPL`` layer, kept as the reference implementation (tests compare against it).
    """

    joint_names: tuple[str, ...] = JOINT_NAMES

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        name: str,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.name = name
        self.smpl = _smplx_layer(arrays, dtype)
        self.register_buffer("_parents", torch.tensor(PARENTS, dtype=torch.long))
        self.register_buffer("faces_tensor", torch.as_tensor(arrays["f"].astype(np.int64)))
        landmarks = arrays.get("landmarks")
        names = arrays.get("landmark_names")
        self.landmark_names: tuple[str, ...] = (
            tuple(str(n) for n in names) if names is not None else ()
        )
        self.register_buffer(
            "landmarks",
            torch.as_tensor(landmarks, dtype=dtype)
            if landmarks is not None
            else torch.zeros(0, arrays["v_template"].shape[0], dtype=dtype),
        )
        self._regressors: dict[str, torch.Tensor] = {}
        self.zero_posedirs = not np.any(arrays.get("posedirs", 0.0))
        self._skinning = "dense"
        self._sparse_weights: torch.Tensor | None = None  # CSR (V,24), built on first use
        # The last betas and their shaped vertices: a tracked person (and the pipeline, which
        # uses mean shape) keeps its betas from frame to frame, so skinning reuses them.
        self._shaped_cache: tuple[torch.Tensor, torch.Tensor] | None = None
        self.to(device)

    # -- properties ---------------------------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        return self.smpl.v_template.dtype

    @property
    def device(self) -> torch.device:
        return self.smpl.v_template.device

    @property
    def faces(self) -> np.ndarray:
        """(F,3) int64 triangle indices (constant for a model)."""
        return self.faces_tensor.cpu().numpy()

    @property
    def parents(self) -> torch.Tensor:
        """(24,) parent index per joint, -1 for the pelvis."""
        return self._parents

    @property
    def num_vertices(self) -> int:
        return int(self.smpl.v_template.shape[0])

    @property
    def v_template(self) -> torch.Tensor:
        return self.smpl.v_template

    @property
    def J_regressor(self) -> torch.Tensor:  # noqa: N802 - SMPL's name
        """(24,V) vertex -> SMPL joint regressor."""
        return self.smpl.J_regressor

    @property
    def shapedirs(self) -> torch.Tensor:
        """(V,3,10) vertex offsets (metres) per unit beta."""
        return self.smpl.shapedirs

    @property
    def posedirs(self) -> torch.Tensor:
        """(207,3V) pose-corrective blend shapes in smplx's layout (all zero for s2m-free)."""
        return self.smpl.posedirs

    @property
    def lbs_weights(self) -> torch.Tensor:
        """(V,24) skinning weights (rows sum to 1), SMPL joint order."""
        return self.smpl.lbs_weights

    @property
    def skinning(self) -> str:
        """``"dense"`` (default: all 24 weights per vertex, smplx's numbers) or ``"sparse"``
        (each vertex's 4 heaviest joints, renormalised; :mod:`s2m_model.body.skinning`). Only
        the free-body path (zero ``posedirs``) honours ``"sparse"``; smplx's layer is dense."""
        return self._skinning

    @skinning.setter
    def skinning(self, mode: str) -> None:
        from .skinning import SKINNING_MODES

        if mode not in SKINNING_MODES:
            raise ValueError(f"skinning must be one of {SKINNING_MODES}, got {mode!r}")
        self._skinning = mode

    def _sparse_lbs_weights(self) -> torch.Tensor:
        from .skinning import sparse_matrix

        w = self.smpl.lbs_weights
        cached = self._sparse_weights
        if cached is None or cached.device != w.device or cached.dtype != w.dtype:
            self._sparse_weights = sparse_matrix(w)
        return self._sparse_weights

    # -- validation ---------------------------------------------------------------------------
    def _param(self, value, name: str, tail: tuple[int, ...], batch: int | None) -> torch.Tensor:
        if value is None:
            # An omitted parameter follows the others' batch, including an empty batch (0).
            size = 1 if batch is None else batch
            return torch.zeros((size, *tail), dtype=self.dtype, device=self.device)
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(value)
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{name} must be a torch tensor or numpy array, got {type(value)}")
        if not value.is_floating_point():
            raise ValueError(f"{name} must be floating point, got {value.dtype}")
        if name == "body_pose" and value.ndim == 2 and value.shape[-1] == NUM_BODY_JOINTS * 3:
            value = value.reshape(-1, NUM_BODY_JOINTS, 3)
        if value.ndim != len(tail) + 1 or tuple(value.shape[1:]) != tail:
            raise ValueError(
                f"{name} must have shape (B,{','.join(map(str, tail))}), got {tuple(value.shape)}"
            )
        if batch is not None and value.shape[0] != batch:
            raise ValueError(f"{name} has batch size {value.shape[0]}, expected {batch}")
        if not torch.isfinite(value).all():
            raise ValueError(f"{name} contains NaN or inf")
        return value.to(device=self.device, dtype=self.dtype)

    def _batch(self, *values) -> int | None:
        for v in values:
            if v is not None and hasattr(v, "shape") and len(v.shape) > 0:
                return int(v.shape[0])
        return None

    # -- forward ------------------------------------------------------------------------------
    def forward(
        self, betas=None, global_orient=None, body_pose=None, transl=None, with_vertices=True
    ) -> BodyOutput:
        """Pose the body. Shapes: betas (B,10), global_orient (B,3), body_pose (B,23,3) or
        (B,69), transl (B,3); any may be omitted (zeros). Raises ValueError on bad input.
        ``with_vertices=False`` skips skinning (``vertices`` is None): joints only, ~10x faster."""
        batch = self._batch(betas, global_orient, body_pose, transl)
        betas = self._param(betas, "betas", (NUM_BETAS,), batch)
        batch = betas.shape[0]
        global_orient = self._param(global_orient, "global_orient", (3,), batch)
        body_pose = self._param(body_pose, "body_pose", (NUM_BODY_JOINTS, 3), batch)
        transl = self._param(transl, "transl", (3,), batch)
        if batch == 0:  # smplx's reshapes cannot infer an empty batch
            joints = betas.new_zeros(0, NUM_JOINTS, 3)
            vertices = betas.new_zeros(0, self.num_vertices, 3) if with_vertices else None
        elif self.zero_posedirs:
            vertices, joints = self._lbs(betas, global_orient, body_pose, transl, with_vertices)
        else:
            out = self.smpl(
                betas=betas,
                global_orient=global_orient,
                body_pose=body_pose.reshape(batch, NUM_BODY_JOINTS * 3),
                transl=transl,
                return_verts=with_vertices,
            )
            # smplx appends extra joints picked by SMPL vertex ids; they are meaningless on
            # other topologies, so keep the 24 SMPL joints only.
            vertices, joints = out.vertices, out.joints[:, :NUM_JOINTS]
        return BodyOutput(
            vertices=vertices,
            joints=joints,
            betas=betas,
            global_orient=global_orient,
            body_pose=body_pose,
            transl=transl,
        )

    def _lbs(self, betas, global_orient, body_pose, transl, with_vertices: bool):
        """smplx's linear blend skinning, minus the pose-corrective term when ``posedirs`` are
        all zero (the free body): that term is an (B,207)x(207,3V) product of zeros, most of the
        cost at batch 1. Same smplx building blocks, same results (tested)."""
        from smplx.lbs import batch_rigid_transform, batch_rodrigues

        batch = betas.shape[0]
        rot = batch_rodrigues(
            torch.cat([global_orient, body_pose.reshape(batch, NUM_BODY_JOINTS * 3)], 1).reshape(
                -1, 3
            )
        )
        rot = rot.reshape(batch, NUM_JOINTS, 3, 3)
        rest = self.rest_joints(betas)
        joints, rel = batch_rigid_transform(rot, rest, self._parents, dtype=self.dtype)
        joints = joints + transl[:, None]
        if not with_vertices:
            return None, joints
        from .skinning import skin_dense_columns, skin_sparse

        shaped = self._shaped_for(betas)
        if self._skinning == "sparse":
            verts = skin_sparse(self._sparse_lbs_weights(), rel[..., :3, :], shaped)
        else:
            # Vertex-last layout of the same dense formula (faster; see skin_dense_columns).
            columns = self._columns_for(shaped)
            verts = skin_dense_columns(self._weights_t(), rel[..., :3, :], columns)
        return verts + transl[:, None], joints

    def _weights_t(self) -> torch.Tensor:
        """(24,V) transposed skinning weights, contiguous (cached per device/dtype)."""
        w = self.smpl.lbs_weights
        cached = getattr(self, "_weights_t_cache", None)
        if cached is None or cached.device != w.device or cached.dtype != w.dtype:
            cached = self._weights_t_cache = w.T.contiguous()
        return cached

    def _columns_for(self, shaped: torch.Tensor) -> torch.Tensor:
        """(B,4,V) homogeneous columns of ``shaped``, reused for the same shaped tensor."""
        from .skinning import homogeneous_columns

        cached = getattr(self, "_columns_cache", None)
        if cached is not None and cached[0] is shaped:
            return cached[1]
        columns = homogeneous_columns(shaped)
        if not shaped.requires_grad:
            self._columns_cache = (shaped, columns)
        return columns

    def _shaped_for(self, betas: torch.Tensor) -> torch.Tensor:
        """:meth:`shaped_vertices`, reused while the same betas come back (same numbers)."""
        cached = self._shaped_cache
        if (
            cached is not None
            and cached[0].shape == betas.shape
            and cached[0].dtype == betas.dtype
            and cached[0].device == betas.device
            and torch.equal(cached[0], betas)
        ):
            return cached[1]
        shaped = self.shaped_vertices(betas)
        # Never cache a graph (training): its tensors would outlive the backward pass.
        keep = not (betas.requires_grad or shaped.requires_grad)
        self._shaped_cache = (betas.detach().clone(), shaped) if keep else None
        return shaped

    def shaped_vertices(self, betas: torch.Tensor) -> torch.Tensor:
        """(B,V,3) zero-pose (T-pose) vertices for the given betas (B,10)."""
        betas = self._param(betas, "betas", (NUM_BETAS,), None)
        return self.smpl.v_template + torch.einsum("bl,vcl->bvc", betas, self.smpl.shapedirs)

    def rest_joints(self, betas: torch.Tensor | None = None) -> torch.Tensor:
        """(B,24,3) joints of the zero pose (T-pose) for betas (B,10) (default: one zero shape)."""
        return self.rest_points(betas, "smpl24")

    def rest_points(self, betas: torch.Tensor | None = None, fmt="smpl24") -> torch.Tensor:
        """(B,J,3) T-pose joints of format ``fmt`` for betas (B,10), in O(J) per sample.

        Regressors are linear, so the rest skeleton is ``R v_template + (R shapedirs) betas``;
        both terms are cached per format (no pass over the vertices).
        """
        if betas is None:
            betas = torch.zeros(1, NUM_BETAS, dtype=self.dtype, device=self.device)
        betas = self._param(betas, "betas", (NUM_BETAS,), None)
        mean, dirs = self.rest_basis(fmt)
        return mean + torch.einsum("jcl,bl->bjc", dirs, betas)

    def rest_basis(self, fmt="smpl24") -> tuple[torch.Tensor, torch.Tensor]:
        """The rest skeleton of format ``fmt`` (name or object) as a linear function of betas:
        ``(mean (J,3), dirs (J,3,10))`` with ``rest_points(b) == mean + dirs @ b`` (metres).

        Cached per format; treat the tensors as read-only.
        """
        return self._rest_basis(fmt if isinstance(fmt, str) else fmt.name)

    def _rest_basis(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        key = "rest:" + name
        if key not in self._regressors:
            reg = self.smpl.J_regressor if name == "smpl24" else self.regressor(name)
            mean = reg @ self.smpl.v_template
            dirs = torch.einsum("jv,vcl->jcl", reg, self.smpl.shapedirs)
            self._regressors[key] = (mean, dirs)
        return self._regressors[key]

    # -- skeleton formats ---------------------------------------------------------------------
    def regressor(self, fmt) -> torch.Tensor:
        """(J,V) vertex -> joint regressor of a registered skeleton format (name or object)."""
        from .regressors import build_regressor

        name = fmt if isinstance(fmt, str) else getattr(fmt, "name", None)
        if not isinstance(name, str):
            raise TypeError(f"fmt must be a skeleton format name ('h36m17', 'coco17', ...) or "
                            f"a SkeletonFormat, got {type(fmt).__name__}")  # fmt: skip
        if name not in self._regressors:
            self._regressors[name] = build_regressor(self, name).to(self.device, self.dtype)
        return self._regressors[name]

    def regress(self, vertices: torch.Tensor, fmt) -> torch.Tensor:
        """(B,J,3) joints of format ``fmt`` (e.g. 'h36m17', 'coco17') from vertices (B,V,3).

        Integer or numpy vertices are taken in the body's dtype (the regressor is fractional:
        in integer arithmetic it would silently round to zeros)."""
        if isinstance(vertices, np.ndarray):
            vertices = torch.from_numpy(vertices)
        if not isinstance(vertices, torch.Tensor):
            raise ValueError(f"vertices must be a torch tensor or numpy array, got "
                             f"{type(vertices).__name__}")  # fmt: skip
        if not vertices.is_floating_point():
            if vertices.dtype == torch.bool or vertices.is_complex():
                raise ValueError(f"vertices must be real numbers, got {vertices.dtype}")
            vertices = vertices.to(self.dtype)
        if vertices.ndim != 3 or vertices.shape[1:] != (self.num_vertices, 3):
            raise ValueError(
                f"vertices must be (B,{self.num_vertices},3), got {tuple(vertices.shape)}"
            )
        return torch.einsum("jv,bvc->bjc", self.regressor(fmt).to(vertices.dtype), vertices)

    def landmark(self, name: str) -> torch.Tensor:
        """(V,) convex vertex weights of a named surface landmark (e.g. 'nose', 'head_top')."""
        if name not in self.landmark_names:
            raise ValueError(
                f"no landmark '{name}' on body '{self.name}'; "
                f"known: {', '.join(self.landmark_names)}"
            )
        return self.landmarks[self.landmark_names.index(name)]

    def extra_repr(self) -> str:
        return f"name={self.name}, vertices={self.num_vertices}, dtype={self.dtype}"
