"""One shape per tracked person: per-frame betas fused into a converging estimate.

Per-frame shape estimates (e.g. :class:`~s2m_model.refine.shape_from_bones.ShapeEstimate`) are
Gaussian: betas with a covariance. Fusing them in information form is a weighted running mean
whose weights are the per-frame precisions, so a frame with the arms hidden (legs only) moves
only the shape directions the legs see. Each frame's posterior includes the same prior; it is
taken out before fusing (``includes_prior``) so the prior counts once, not once per frame.

``window`` makes it a forgetting average (old information decays by ``1 - 1/window`` per frame):
the estimate still converges (its variance levels off at about ``1/window`` of one frame's) but
can follow a track that switched people. Frames whose betas are implausible under the current
estimate (squared Mahalanobis distance above ``gate``) are rejected and counted.

Betas are SMPL shape coefficients (dimensionless); variances are in betas^2.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

import torch

from s2m_model.smpl_layout import NUM_BETAS

__all__ = ["ShapeTrack", "ShapeTracks", "TrackShape"]

#: Chi-square 99.9 % quantile for 10 degrees of freedom: the default outlier gate.
CHI2_10DOF_999 = 29.59


@dataclass
class TrackShape:
    """Snapshot of one track's shape: betas ``(10,)``, covariance ``(10,10)``, frame counts."""

    betas: torch.Tensor
    covariance: torch.Tensor
    frames: int
    rejected: int
    converged: bool

    @property
    def std(self) -> torch.Tensor:
        """(10,) posterior standard deviation per beta."""
        return torch.diagonal(self.covariance).clamp(min=0).sqrt()


@dataclass
class ShapeTrack:
    """Running information-form estimate of one person's betas.

    Attributes:
        prior_std: prior standard deviation of each beta (mean 0); must match the per-frame
            estimator's prior when updates pass ``includes_prior=True``.
        window: effective number of frames remembered (``None``: remember all, pure mean).
        gate: reject a frame whose squared Mahalanobis distance to the estimate exceeds this
            (after ``warmup`` accepted frames); ``None`` disables gating.
        warmup: frames accepted unconditionally before gating starts.
        converged_std: the estimate counts as converged when every beta's posterior standard
            deviation is below this.
    """

    prior_std: float = 1.0
    window: float | None = 300.0
    gate: float | None = CHI2_10DOF_999
    warmup: int = 5
    converged_std: float = 0.1
    dtype: torch.dtype = torch.float64
    frames: int = 0
    rejected: int = 0
    _info: torch.Tensor = field(init=False, repr=False)
    _vec: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.prior_std > 0:
            raise ValueError(f"prior_std must be > 0, got {self.prior_std}")
        if self.window is not None and not self.window >= 1:
            raise ValueError(f"window must be >= 1 frame or None, got {self.window}")
        self._info = torch.zeros(NUM_BETAS, NUM_BETAS, dtype=self.dtype)
        self._vec = torch.zeros(NUM_BETAS, dtype=self.dtype)

    # -- state --------------------------------------------------------------------------------
    @property
    def prior_precision(self) -> torch.Tensor:
        return torch.eye(NUM_BETAS, dtype=self.dtype) / self.prior_std**2

    @property
    def covariance(self) -> torch.Tensor:
        """(10,10) posterior covariance of the track's betas."""
        return torch.linalg.inv(self._info + self.prior_precision)

    @property
    def betas(self) -> torch.Tensor:
        """(10,) posterior mean betas (the prior mean, 0, before any frame)."""
        return self.covariance @ self._vec

    @property
    def converged(self) -> bool:
        return bool(torch.diagonal(self.covariance).max().sqrt() < self.converged_std)

    def snapshot(self) -> TrackShape:
        return TrackShape(self.betas, self.covariance, self.frames, self.rejected, self.converged)

    def reset(self) -> None:
        self._info.zero_()
        self._vec.zero_()
        self.frames = self.rejected = 0

    # -- update -------------------------------------------------------------------------------
    def update(
        self, betas: torch.Tensor, covariance: torch.Tensor, includes_prior: bool = True
    ) -> bool:
        """Fuse one frame's estimate: betas ``(10,)``, covariance ``(10,10)`` (or ``(10,)``
        variances). Returns False (and counts it) when the frame is rejected by the gate or
        carries no finite estimate."""
        betas = torch.as_tensor(betas).to(self.dtype).reshape(-1)
        cov = torch.as_tensor(covariance).to(self.dtype)
        if cov.ndim == 1:
            cov = torch.diag(cov)
        if betas.shape != (NUM_BETAS,) or cov.shape != (NUM_BETAS, NUM_BETAS):
            raise ValueError(
                f"expected betas (10,) and covariance (10,10) or (10,), got "
                f"{tuple(betas.shape)} and {tuple(cov.shape)}"
            )
        if not (torch.isfinite(betas).all() and torch.isfinite(cov).all()):
            self.rejected += 1
            return False
        info = torch.linalg.inv(0.5 * (cov + cov.T))
        vec = info @ betas
        if includes_prior:
            # The frame's posterior = prior x likelihood: keep the likelihood only (the prior
            # mean is 0, so only the precision changes); clip round-off below zero.
            evals, evecs = torch.linalg.eigh(info - self.prior_precision)
            info = (evecs * evals.clamp(min=0.0)) @ evecs.T
        if self.gate is not None and self.frames >= self.warmup:
            diff = betas - self.betas
            d2 = diff @ torch.linalg.solve(self.covariance + cov, diff)
            if float(d2) > self.gate:
                self.rejected += 1
                return False
        if self.window is not None:
            keep = 1.0 - 1.0 / self.window
            self._info.mul_(keep)
            self._vec.mul_(keep)
        self._info.add_(info)
        self._vec.add_(vec)
        self.frames += 1
        return True


class ShapeTracks:
    """A :class:`ShapeTrack` per track id, created on first sight (same settings for all).

    ``update(ids, betas (B,10), covariance (B,10,10))`` then ``get(ids)`` -> ``(betas (B,10),
    std (B,10))``, the values a pipeline publishes with each body.
    """

    def __init__(self, **settings) -> None:
        ShapeTrack(**settings)  # validate once, here, not at the first new track
        self.settings = settings
        self.tracks: dict[Hashable, ShapeTrack] = {}

    def track(self, track_id: Hashable) -> ShapeTrack:
        if track_id not in self.tracks:
            self.tracks[track_id] = ShapeTrack(**self.settings)
        return self.tracks[track_id]

    def update(
        self,
        ids: Iterable[Hashable],
        betas: torch.Tensor,
        covariance: torch.Tensor,
        includes_prior: bool = True,
    ) -> list[bool]:
        ids = list(ids)
        if betas.shape[0] != len(ids) or covariance.shape[0] != len(ids):
            raise ValueError(f"{len(ids)} ids for {betas.shape[0]} estimates")
        return [
            self.track(i).update(b, c, includes_prior)
            for i, b, c in zip(ids, betas, covariance, strict=True)
        ]

    def get(self, ids: Iterable[Hashable]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,10) betas and (B,10) standard deviations for ``ids`` (prior for unseen ids)."""
        snaps = [self.track(i).snapshot() for i in ids]
        if not snaps:
            empty = torch.zeros(0, NUM_BETAS, dtype=torch.float64)
            return empty, empty.clone()
        return torch.stack([s.betas for s in snaps]), torch.stack([s.std for s in snaps])

    def prune(self, alive: Iterable[Hashable]) -> None:
        """Forget the tracks not in ``alive``."""
        keep = set(alive)
        for key in [k for k in self.tracks if k not in keep]:
            del self.tracks[key]
