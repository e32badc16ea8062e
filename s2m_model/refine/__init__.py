"""Pose and shape refinement after DIK (paper Secs. 3.3-3.5), plus a fit to image evidence.

- :mod:`.shape_from_bones` — SR: bone lengths -> betas, closed form per frame, with covariance.
- :mod:`.shape_track` — one converging shape per tracked person, with its uncertainty.
- :mod:`.endpoints` — PR: ankles, wrists, head/neck from BlazePose points; joint statuses.
- :mod:`.adaptive_regressor` — learnable vertex -> joint matrix per format (paper Sec. 3.5).
- :mod:`.silhouette` — compact differentiable silhouette renderer and soft IoU loss.
- :mod:`.points`, :mod:`.fit` — LM fit to keypoints, lifted skeleton and mask.
- :mod:`.refiner` — all of it as one call (:class:`Refiner`), each piece behind a switch.
- :mod:`.synthetic` — seeded synthetic bodies for tests and benchmarks.
- :mod:`.pose_net`, :mod:`.shape_net` — learned PR (residual endpoint rotations) and SR (betas).
- :mod:`.train`, :mod:`.train_cli`, :mod:`.nets_io` — ``s2m train refine``, safe checkpoints.
- :mod:`.detector_regressor` — adaptive regressors for a detector's 2D keypoint definition.

See ``docs/refine.md``.
"""

from .adaptive_regressor import AdaptiveRegressor, fit_regressor, train_regressor
from .endpoints import DEFAULT, REFINED, SOLVED, align_points, refine_endpoints
from .fit import FitConfig, FitResult, ImageFitter
from .refiner import RefineConfig, Refiner, RefineResult
from .shape_from_bones import BoneShapeSolver, ShapeEstimate, shape_from_bones
from .shape_track import ShapeTrack, ShapeTracks

__all__ = [
    "DEFAULT", "REFINED", "SOLVED", "AdaptiveRegressor", "BoneShapeSolver", "FitConfig",
    "FitResult", "ImageFitter", "RefineConfig", "RefineResult", "Refiner", "ShapeEstimate",
    "ShapeTrack", "ShapeTracks", "align_points", "fit_regressor", "refine_endpoints",
    "shape_from_bones", "train_regressor",
]  # fmt: skip
