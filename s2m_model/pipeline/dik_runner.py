"""DIK in the pipeline: :func:`s2m_model.dik.solve` for one body, eager, as TorchScript traces
or as an exported ONNX graph run by onnxruntime.

:class:`DIKRunner` is the pipeline's one DIK wrapper. Each runner keeps its own traces (one per
format, batch size, with/without a previous frame, dtype and device), so there is no
process-wide cache: traces live and die with the pipeline that made them.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable

import torch

from s2m_model import dik
from s2m_model.smpl_layout import NUM_BETAS, NUM_JOINTS

log = logging.getLogger(__name__)

__all__ = ["DIK_BACKENDS", "DIKRunner"]

#: The ``backend`` values of :class:`DIKRunner` (and ``PipelineConfig.dik_backend``).
DIK_BACKENDS = ("jit", "eager", "onnxruntime")

DIKOutput = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
"""``(rotmats (B,24,3,3) local rotations, solved (B,24) bool, transl (B,3) metres)``."""


class DIKRunner:
    """``dik.solve`` with a fixed body and confidence threshold, for batches of skeletons.

    Args:
        body: the :class:`~s2m_model.body.BodyModel` whose rest skeleton is zero rotation.
        min_confidence: joints below it are missing (``dik.solve``'s ``min_confidence``).
        backend: ``"jit"``: each (format, batch, prev, dtype, device) combination is traced on
            first use (~0.2-2 s; DIK is branch-free, so the trace is exact, and it runs 2-4x
            faster than eager at batch 1, where ~3000 small ops dominate). A failed trace falls
            back to eager, logged. ``"eager"``: plain calls. ``"onnxruntime"``: each (format,
            prev) combination is exported to ONNX on first use (~3-10 s) and run by onnxruntime
            on the CPU with one intra-op thread (the batch axis is dynamic, so one graph serves
            every batch size); 1.4x faster than the trace at batch 1 on a 2-core Xeon
            (``bench/skeleton_to_mesh.py``), rotations within ~1e-5 of eager (float32 op
            order). Only float32 CPU tensors use it; anything else, or a failed export, runs
            the ``"jit"`` path, logged.
    """

    def __init__(self, body, min_confidence: float, backend: str = "jit") -> None:
        if backend not in DIK_BACKENDS:
            raise ValueError(f"DIK backend must be one of {DIK_BACKENDS}, got {backend!r}")
        self.body = body
        self.min_confidence = float(min_confidence)
        self.backend = backend
        self._traces: dict[tuple, Callable[..., DIKOutput] | None] = {}
        self._sessions: dict[tuple, Callable[..., DIKOutput] | None] = {}

    def __call__(
        self,
        joints: torch.Tensor,
        fmt,
        confidence: torch.Tensor,
        betas: torch.Tensor,
        prev_rotmats: torch.Tensor | None = None,
    ) -> DIKOutput:
        """Solve a batch.

        Args:
            joints: (B,J,3) skeletons in format ``fmt`` (metres, any right-handed frame).
            fmt: the :class:`~s2m_model.skeletons.SkeletonFormat`.
            confidence: (B,J) in [0, 1].
            betas: (B,10) body shape.
            prev_rotmats: (B,24,3,3) the previous frame's local rotations (straight-limb
                fallback), or None.
        """
        confidence = confidence.to(joints.dtype)
        graph = None
        if (
            self.backend == "onnxruntime"
            and joints.dtype == torch.float32
            and (joints.device.type == "cpu")
        ):
            key = (fmt.name, prev_rotmats is not None)
            if key not in self._sessions:
                self._sessions[key] = self._onnx(fmt, prev_rotmats is not None)
            graph = self._sessions[key]
            if graph is not None:
                args = (joints, confidence, betas)
                return graph(*args) if prev_rotmats is None else graph(*args, prev_rotmats)
        if self.backend != "eager":
            key = (fmt.name, joints.shape[0], prev_rotmats is not None, joints.dtype,
                   str(joints.device))  # fmt: skip
            if key not in self._traces:
                self._traces[key] = self._trace(fmt, joints.shape[0], prev_rotmats is not None)
            graph = self._traces[key]
        if graph is None:
            return self._solve(joints, fmt, confidence, betas, prev_rotmats)
        args = (joints, confidence, betas)
        return graph(*args) if prev_rotmats is None else graph(*args, prev_rotmats)

    @property
    def num_traces(self) -> int:
        """Traced graphs and onnxruntime sessions held by this runner."""
        return sum(g is not None for g in (*self._traces.values(), *self._sessions.values()))

    def _solve(self, joints, fmt, confidence, betas, prev_rotmats=None) -> DIKOutput:
        prev = None
        if prev_rotmats is not None:
            # solve() reads only the previous local rotations from ``prev``.
            zeros = joints.new_zeros(joints.shape[0], 3)
            prev = dik.DIKResult(global_orient=zeros, body_pose=zeros, solved=zeros,
                                 transl=zeros, rotmats=prev_rotmats)  # fmt: skip
        res = dik.solve(joints, fmt, self.body, betas=betas, confidence=confidence, prev=prev,
                        min_confidence=self.min_confidence)  # fmt: skip
        return res.rotmats, res.solved, res.transl

    def _trace(self, fmt, batch: int, with_prev: bool) -> Callable[..., DIKOutput] | None:
        body = self.body

        def solve_fixed(joints, confidence, betas, prev_rotmats=None):
            return self._solve(joints, fmt, confidence, betas, prev_rotmats)

        try:
            with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tracer warnings about constants
                # Any finite example traces the same (branch-free) graph.
                gen = torch.Generator().manual_seed(0)
                opts = {"dtype": body.dtype, "device": body.device}
                joints = torch.randn(batch, fmt.num_joints, 3, generator=gen).to(**opts)
                args = (joints, torch.ones(joints.shape[:2], **opts),
                        torch.zeros(batch, NUM_BETAS, **opts))  # fmt: skip
                if with_prev:
                    args += (torch.eye(3, **opts).expand(batch, NUM_JOINTS, 3, 3).clone(),)
                return torch.jit.trace(solve_fixed, args, check_trace=False)
        except Exception as exc:  # noqa: BLE001 - any tracer failure: eager is always correct
            log.warning("DIK could not be traced for format %s (%s); using eager mode",
                        fmt.name, exc)  # fmt: skip
            return None

    def _onnx(self, fmt, with_prev: bool) -> Callable[..., DIKOutput] | None:
        """``solve`` for ``fmt`` exported to ONNX (dynamic batch) in an onnxruntime session."""
        import tempfile
        from pathlib import Path

        try:
            import numpy as np

            from s2m_model.export.onnx import export_onnx
            from s2m_model.export.runtime import OnnxRuntimeBackend

            module = _SolveModule(self, fmt)
            gen = torch.Generator().manual_seed(0)
            batch = 2  # >= 2: a batch of 1 could be traced as a broadcastable constant
            joints = torch.randn(batch, fmt.num_joints, 3, generator=gen)
            args = (joints, torch.ones(joints.shape[:2]), torch.zeros(batch, NUM_BETAS))
            names = ["joints", "confidence", "betas"]
            if with_prev:
                args += (torch.eye(3).expand(batch, NUM_JOINTS, 3, 3).clone(),)
                names.append("prev_rotmats")
            with (
                tempfile.TemporaryDirectory(prefix="s2m_dik_") as tmp,
                torch.inference_mode(False),
                torch.no_grad(),
                warnings.catch_warnings(),
            ):
                warnings.simplefilter("ignore")  # tracer warnings about constants
                path = export_onnx(module.float().eval(), args, Path(tmp) / "dik.onnx", names,
                                   ["rotmats", "solved", "transl"])  # fmt: skip
                # The session holds the model in memory: the file may go.
                session = OnnxRuntimeBackend(path, providers=["CPUExecutionProvider"],
                                             intra_op_threads=1).session  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - any exporter/runtime failure: jit is correct
            log.warning("DIK could not run in onnxruntime for format %s (%s); using the "
                        "TorchScript path", fmt.name, exc)  # fmt: skip
            return None

        def run(joints, confidence, betas, prev_rotmats=None) -> DIKOutput:
            feeds = {"joints": joints.detach().numpy(),
                     "confidence": confidence.detach().to(torch.float32).numpy(),
                     "betas": betas.detach().to(torch.float32).numpy()}  # fmt: skip
            if prev_rotmats is not None:
                feeds["prev_rotmats"] = prev_rotmats.detach().to(torch.float32).numpy()
            rotmats, solved, transl = session.run(None, feeds)
            return (torch.from_numpy(rotmats), torch.from_numpy(np.asarray(solved, bool)),
                    torch.from_numpy(transl))  # fmt: skip

        return run


class _SolveModule(torch.nn.Module):
    """:meth:`DIKRunner._solve` for one format as a module (what the ONNX exporter takes)."""

    def __init__(self, runner: DIKRunner, fmt) -> None:
        super().__init__()
        self.runner, self.fmt = runner, fmt

    def forward(self, joints, confidence, betas, prev_rotmats=None):
        rotmats, solved, transl = self.runner._solve(joints, self.fmt, confidence, betas,
                                                     prev_rotmats)  # fmt: skip
        return rotmats, solved, transl
