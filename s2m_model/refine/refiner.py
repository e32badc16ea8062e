"""The refinement stage as one call: DIK result -> shape, endpoints, image fit.

:class:`Refiner` chains the pieces of this package in the order the pipeline needs them, each
behind a switch (:class:`RefineConfig`):

1. **SR** — betas from the skeleton's bone lengths (:mod:`.shape_from_bones`), fused per track
   (:mod:`.shape_track`) when track ids are given (:meth:`Refiner.estimate_shape`); DIK is
   solved with the new shape (by ``__call__``, or by the caller, e.g. through onnxruntime,
   who then calls :meth:`Refiner.refine`).
2. **PR** — ankles, wrists, head/neck from BlazePose 3D points (:mod:`.endpoints`).
3. **Fit** — LM on the 2D keypoints, the lifted skeleton and optionally the mask
   (:mod:`.fit`).

Every output rotation carries a status (:data:`.endpoints.DEFAULT` / ``SOLVED`` /
``REFINED``). Frames: the skeleton's (e.g. the camera frame: x right, y down, z forward);
metres, radians, pixels.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import roma
import torch

from s2m_model import dik

from .endpoints import REFINED, joint_status, refine_endpoints
from .fit import FitConfig, FitResult, ImageFitter
from .shape_from_bones import BoneShapeSolver
from .shape_track import ShapeTracks

__all__ = ["RefineConfig", "RefineResult", "Refiner"]


@dataclass(frozen=True)
class RefineConfig:
    """Switches and settings of :class:`Refiner`.

    Attributes:
        shape: estimate betas from bone lengths (else the given/zero betas are kept).
        track: fuse betas per track id (needs ``track_ids``); off = per-frame betas.
        endpoints: refine ankles/wrists/head from BlazePose 3D points when given.
        fit: fit to the 2D keypoints (and the mask when given).
        use_mask: include the silhouette term when a mask is given (slower: see docs).
        length_sigma: SR's bone-length noise (metres).
        track_window: frames a track's shape remembers.
        fit_config: settings of the image fit.
    """

    shape: bool = True
    track: bool = True
    endpoints: bool = True
    fit: bool = True
    use_mask: bool = False
    length_sigma: float = 0.01
    track_window: float = 300.0
    fit_config: FitConfig = field(default_factory=FitConfig)


@dataclass
class RefineResult:
    """Refined bodies (B people).

    Attributes:
        global_orient (B,3), body_pose (B,23,3): axis-angle (radians); rotmats (B,24,3,3).
        transl: (B,3) metres; betas: (B,10); betas_std: (B,10) their uncertainty.
        status: (B,24) int8 per-joint DEFAULT / SOLVED / REFINED.
        fit: the image fit's diagnostics (None if it did not run).
    """

    global_orient: torch.Tensor
    body_pose: torch.Tensor
    rotmats: torch.Tensor
    transl: torch.Tensor
    betas: torch.Tensor
    betas_std: torch.Tensor
    status: torch.Tensor
    fit: FitResult | None = None


class Refiner:
    """PR + SR + image fit for one body, skeleton format and keypoint format.

    Args:
        body: the :class:`~s2m_model.body.BodyModel`.
        skeleton_fmt: the lifted 3D skeleton's format (DIK's input), e.g. ``"h36m17"``.
        keypoint_fmt: the 2D detector's format, e.g. ``"coco17"`` or ``"blazepose33"``.
        config: :class:`RefineConfig`.
        regressor2d: optional (K,V) regressor for the keypoints (an adaptive one's ``dense()``).
    """

    def __init__(self, body, skeleton_fmt: str = "h36m17", keypoint_fmt: str = "coco17",
                 config: RefineConfig | None = None, regressor2d=None) -> None:  # fmt: skip
        self.body, self.fmt = body, skeleton_fmt
        self.config = config or RefineConfig()
        self.shape = BoneShapeSolver(body, skeleton_fmt, length_sigma=self.config.length_sigma)
        self.tracks = ShapeTracks(window=self.config.track_window)
        self.fitter = ImageFitter(body, keypoint_fmt, skeleton_fmt, self.config.fit_config,
                                  regressor2d=regressor2d)  # fmt: skip

    def reset(self) -> None:
        """Forget all tracks' shapes."""
        self.tracks = ShapeTracks(window=self.config.track_window)

    def estimate_shape(
        self,
        skeleton: torch.Tensor,
        confidence: torch.Tensor | None = None,
        track_ids: Sequence[Hashable] | None = None,
        betas: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """SR step: (betas (B,10), std (B,10)) from the skeleton's bones, fused per track when
        ``track_ids`` are given (and ``track`` is on). With ``shape`` off: ``betas`` (default
        zeros) and the prior's std."""
        cfg, batch, dtype = self.config, skeleton.shape[0], skeleton.dtype
        if not cfg.shape:
            fixed = torch.zeros(batch, 10, dtype=dtype) if betas is None else betas
            return fixed, torch.ones(batch, 10, dtype=dtype)
        est = self.shape(skeleton, confidence)
        if cfg.track and track_ids is not None:
            self.tracks.update(track_ids, est.betas, est.covariance)
            fused, std = self.tracks.get(track_ids)
            return fused.to(dtype), std.to(dtype)
        return est.betas, torch.diagonal(est.covariance, dim1=-2, dim2=-1).sqrt()

    def __call__(
        self,
        skeleton: torch.Tensor,
        *,
        confidence: torch.Tensor | None = None,
        track_ids: Sequence[Hashable] | None = None,
        betas: torch.Tensor | None = None,
        prev: dik.DIKResult | None = None,
        **evidence,
    ) -> RefineResult:
        """SR, then DIK (``dik.solve``) with the new shape, then :meth:`refine`.

        Args:
            skeleton: (B,J,3) lifted skeleton in ``skeleton_fmt`` (metres); NaN = missing.
            confidence: (B,J) skeleton joint confidences.
            track_ids: one id per person, for the per-track shape.
            betas: (B,10) shape to use when ``shape`` is off (default zeros).
            prev: the previous frame's DIK result (DIK's temporal fallback).
            evidence: the image evidence of :meth:`refine` (keypoints, camera, ...).
        """
        betas, std = self.estimate_shape(skeleton, confidence, track_ids, betas)
        solved = dik.solve(skeleton, self.fmt, self.body, betas=betas.to(self.body.dtype),
                           confidence=confidence, prev=prev)  # fmt: skip
        return self.refine(skeleton, solved, betas, betas_std=std, **evidence)

    def refine(
        self,
        skeleton: torch.Tensor,
        solved: dik.DIKResult,
        betas: torch.Tensor,
        *,
        betas_std: torch.Tensor | None = None,
        keypoints: torch.Tensor | None = None,
        keypoint_confidence: torch.Tensor | None = None,
        camera=None,
        points3d: torch.Tensor | None = None,
        points3d_confidence: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        box: torch.Tensor | None = None,
    ) -> RefineResult:
        """PR and the image fit on a DIK result the caller already has (e.g. DIK through
        onnxruntime, solved with ``betas`` from :meth:`estimate_shape`).

        Args:
            skeleton: (B,J,3) the skeleton DIK solved (metres).
            solved: its :class:`~s2m_model.dik.DIKResult` (``rotmats``, ``transl``, ``solved``).
            betas: (B,10) the shape DIK used.
            keypoints, keypoint_confidence: (B,K,2) pixels and (B,K) confidences of the 2D
                detector (``keypoint_fmt``), for the fit.
            camera: :class:`~s2m_model.camera.Camera` or intrinsics, for the fit.
            points3d, points3d_confidence: (B,33,3) BlazePose points in the skeleton's frame
                and (B,33) confidences, for PR (see :func:`.endpoints.align_points`).
            mask, box: (B,H,W) person mask on a grid over ``box`` (B,4) image pixels.
        """
        if solved.rotmats is None:
            raise ValueError("the DIK result has no rotmats")
        std = torch.ones_like(betas) if betas_std is None else betas_std
        rotmats, status = self.endpoints(solved.rotmats, joint_status(solved.solved), betas,
                                         solved.transl, points3d, points3d_confidence)  # fmt: skip
        transl, fit = solved.transl, None
        if self.config.fit and keypoints is not None:
            fit = self.fit(rotmats, transl, betas, solved.solved, status, keypoints, camera,
                           keypoint_confidence=keypoint_confidence, skeleton=skeleton,
                           mask=mask, box=box)  # fmt: skip
            rotmats, transl, betas, status = fit.rotmats, fit.transl, fit.betas, fit.status
        rotvec = roma.rotmat_to_rotvec(rotmats)
        return RefineResult(
            global_orient=rotvec[:, 0], body_pose=rotvec[:, 1:], rotmats=rotmats,
            transl=transl, betas=betas, betas_std=std, status=status, fit=fit,
        )  # fmt: skip

    def endpoints(
        self,
        rotmats: torch.Tensor,
        status: torch.Tensor,
        betas: torch.Tensor,
        transl: torch.Tensor,
        points3d: torch.Tensor | None,
        points3d_confidence: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """PR step alone: (rotmats (B,24,3,3), status (B,24) int8) with the ankles, wrists and
        head/neck refined from ``points3d`` (B,33,3) BlazePose points in the skeleton's frame;
        unchanged when ``endpoints`` is off or there are no points. ``transl`` (B,3) is DIK's."""
        if not self.config.endpoints or points3d is None:
            return rotmats, status
        pr = refine_endpoints(rotmats, points3d, self.body, betas, transl=transl,
                              confidence=points3d_confidence, status=status)  # fmt: skip
        return pr.rotmats, pr.status

    def fit(
        self,
        rotmats: torch.Tensor,
        transl: torch.Tensor,
        betas: torch.Tensor,
        solved: torch.Tensor,
        status: torch.Tensor,
        keypoints: torch.Tensor,
        camera,
        *,
        keypoint_confidence: torch.Tensor | None = None,
        skeleton: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        box: torch.Tensor | None = None,
    ) -> FitResult:
        """The image fit alone (whatever ``fit`` says: the caller decided to fit).

        ``transl`` (B,3) must place the body in the camera frame of ``camera`` (e.g. from the
        keypoints); ``solved`` (B,24) DIK's solved joints, ``status`` (B,24) after PR; the rest
        as in :meth:`refine`. The mask is used only with ``use_mask``.
        """
        if camera is None:
            raise ValueError("the image fit needs the camera (intrinsics)")
        # Joints PR set are as well determined as DIK's: the same (tighter) pose prior.
        determined = solved | (status == REFINED)
        return self.fitter.fit(
            rotmats, transl, keypoints, camera, betas=betas,
            confidence=keypoint_confidence, skeleton3d=skeleton, solved=determined,
            status=status, mask=mask if self.config.use_mask else None, box=box,
        )  # fmt: skip
