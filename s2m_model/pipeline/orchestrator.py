"""The :class:`Pipeline`: frames (or 3D skeletons) -> SMPL-layout bodies, stage by stage.

The geometry lives in :mod:`~s2m_model.pipeline.placement`, the front ends in
:mod:`~s2m_model.pipeline.front_end`, DIK in :mod:`~s2m_model.pipeline.dik_runner` and the
settings in :mod:`~s2m_model.pipeline.config`; this module only sequences them, times them
(``PersonResult.timings_ms``) and counts what went wrong (:attr:`Pipeline.counters`).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import roma
import torch

from s2m_model.camera import Camera
from s2m_model.detect.base import DetectorError
from s2m_model.pipeline.confidence import smpl_confidence
from s2m_model.pipeline.config import PipelineConfig
from s2m_model.pipeline.dik_runner import DIKRunner
from s2m_model.pipeline.front_end import (
    WORLD_FORMAT,
    Skeletons,
    fused_landmarks,
    has_fused_inputs,
    has_world_landmarks,
    lift_keypoints,
    only_people,
    world_landmarks,
)
from s2m_model.pipeline.placement import COCO_HIPS, place_in_camera, skeleton_translation
from s2m_model.results import PersonResult
from s2m_model.smpl_layout import NUM_BETAS, NUM_JOINTS
from s2m_model.util.timing import stopwatch_ms

log = logging.getLogger(__name__)

__all__ = ["COUNTERS", "STAGES", "DetectedFrame", "Pipeline"]

#: What :attr:`Pipeline.counters` counts (cumulative over the pipeline's life).
COUNTERS: dict[str, str] = {
    "frames": "frames given to process()/process_skeleton()",
    "persons": "people returned",
    "detector_failures": "frames the detector failed on (DetectorError; no people)",
    "world_landmarks_missing": "lifter=mediapipe-world, but the detection had no world "
    "landmarks: the s2m lifter was used for it",
    "lifter_rejected": "people the s2m lifter could not normalise (dropped)",
    "lifter_non_finite": "frames whose s2m lifter output was not finite (people dropped)",
    "dik_non_finite": "people DIK returned a non-finite pose for (dropped)",
    "duplicate_people": "detections dropped as a second reading of a tracked person (mostly "
    "inside their box; TrackerConfig.birth_overlap)",
    "unplaced": "people that could not be placed in front of the camera (dropped)",
    "fit_failed": "people whose image fit (refine_fit) went wrong: no step lowered its cost, "
    "or its 2D keypoint error ended more than FitConfig.worse_px (1 px) above the start "
    "(the result is still used; non-finite fits are refine_non_finite). Stopping at the "
    "iteration cap (fit_iterations) while the cost still falls is normal and not counted",
    "refine_non_finite": "people whose refinement (SR betas, PR or the fit) was not finite: "
    "the unrefined value was used for them",
}

#: The stage timings (``PersonResult.timings_ms`` / ``Pipeline.last_timings`` keys, ms) in the
#: order the stages run; a stage that did not run is absent. ``"total"`` is the whole call.
STAGES: tuple[str, ...] = (
    "detect", "lift", "track", "refine", "dik", "fit", "filter", "body", "total",
)  # fmt: skip

#: The keypoint format the image fit matches (the detectors' 2D keypoints).
FIT_KEYPOINTS = "coco17"
#: Grid (rows, columns) the person mask is resampled onto for the fit's silhouette term.
MASK_GRID = (64, 48)


@dataclass
class DetectedFrame:
    """One image frame after the detector (:meth:`Pipeline.detect`), for
    :meth:`Pipeline.estimate`.

    Attributes:
        rgb: (H, W, 3) uint8 RGB image.
        camera: its intrinsics.
        stamp: capture time (seconds).
        detections: the detector's people (:class:`~s2m_model.detect.base.Detection`).
        timings: stage timings so far (``{"detect": ms}``).
        t_start: ``time.perf_counter()`` when :meth:`Pipeline.detect` started.
    """

    rgb: np.ndarray
    camera: Camera
    stamp: float
    detections: list
    timings: dict[str, float]
    t_start: float


class Pipeline:
    """Camera frames (or 3D skeletons) -> SMPL-layout bodies, frame by frame.

    Models load lazily on first use (skeleton mode never loads the detector or the lifter;
    ``lifter="mediapipe-world"`` loads the s2m lifter only for a detection without world
    landmarks). Pre-built components can be injected (``detector=``, ``lifter=``, ``body=``,
    ``dik=``), e.g. to share a body model or DIK's traces between pipelines, or to use a
    custom detector.

    The pipeline never changes process-wide settings: set torch's threads in your program
    (:func:`~s2m_model.pipeline.config.set_torch_threads`; the CLIs do it).

    Not thread-safe: use one pipeline per stream. Call :meth:`reset` between streams. The one
    exception: :meth:`detect` and :meth:`estimate` (the two halves of :meth:`process`) may run
    in two threads, one each, with frames handed over in order: the detector's next frame then
    overlaps the body estimate of the current one (``s2m_node``'s ``pipelined``).
    """

    def __init__(
        self,
        config: PipelineConfig | None = None,
        *,
        detector: Any = None,
        lifter: Any = None,
        body: Any = None,
        dik: DIKRunner | None = None,
    ) -> None:
        self.config = config if config is not None else PipelineConfig()
        if not isinstance(self.config, PipelineConfig):
            raise ValueError(f"config must be a PipelineConfig, got {type(self.config).__name__}")
        self.config.validate()
        self._detector, self._lifter, self._body = detector, lifter, body
        self._dik: DIKRunner | None = dik  # stateless between calls: shareable
        self._refiners: dict[str, Any] = {}
        from s2m_model.temporal import Tracker
        from s2m_model.tracking.tracker import MultiPersonTracker

        cfg = self.config
        self.tracker = MultiPersonTracker(cfg.tracker_config())
        """Image mode: ids from boxes, keypoints and (``track_appearance``) colour histograms."""
        self.skeleton_tracker = Tracker(
            max_age=cfg.track_max_age, min_confidence=cfg.min_keypoint_confidence
        )
        """Skeleton mode: ids from 3D joint distances."""
        self._frame = 0
        self._betas: torch.Tensor | None = None
        self._warned_world = False
        self.last_timings: dict[str, float] = {}
        """Stage timings (ms) of the last call, also when nobody was found."""
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        """Cumulative counts of frames, people and failures (see :data:`COUNTERS`)."""

    # -- components ---------------------------------------------------------------------------
    @property
    def body(self):
        """The :class:`~s2m_model.body.BodyModel` (loaded on first use, float32)."""
        if self._body is None:
            from s2m_model.body import load_body_model

            self._body = load_body_model(self.config.body, device=self.config.device)
        return self._body

    @property
    def detector(self):
        """The 2D keypoint detector (built on first use)."""
        if self._detector is None:
            from s2m_model.detect import get_detector

            options = dict(self.config.detector_options)
            if self.config.detector.strip().lower() in ("mediapipe", "blazepose-multi"):
                options.setdefault("static_image_mode", not self.config.video_mode)
            self._detector = get_detector(self.config.detector, **options)
        return self._detector

    @property
    def lifter(self):
        """The s2m 2D -> 3D lifter (``config.lifter_model``, loaded on first use)."""
        if self._lifter is None:
            from s2m_model.lifter import load_lifter

            self._lifter = load_lifter(self.config.lifter_model, device=self.config.device)
        return self._lifter

    @property
    def dik(self) -> DIKRunner:
        """The DIK runner of this pipeline (its traces are its own)."""
        if self._dik is None:
            cfg = self.config
            self._dik = DIKRunner(self.body, cfg.min_keypoint_confidence, cfg.dik_backend)
        return self._dik

    @property
    def faces(self) -> np.ndarray:
        """(F, 3) int64 triangles of the body mesh."""
        return self.body.faces

    @property
    def refining(self) -> bool:
        """Whether any refinement switch (``refine_shape``/``_endpoints``/``_fit``) is on."""
        cfg = self.config
        return cfg.refine_shape or cfg.refine_endpoints or cfg.refine_fit

    def refiner(self, fmt) -> Any:
        """The :class:`~s2m_model.refine.Refiner` for skeleton format ``fmt`` (created on first
        use, one per format: it holds the per-track shapes of the people of that format)."""
        name = fmt if isinstance(fmt, str) else fmt.name
        if name not in self._refiners:
            from s2m_model.refine import FitConfig, RefineConfig, Refiner

            cfg = self.config
            fit_cfg = FitConfig(iterations=cfg.fit_iterations,
                                min_confidence=cfg.min_keypoint_confidence)  # fmt: skip
            config = RefineConfig(shape=cfg.refine_shape, track=cfg.temporal,
                                  endpoints=cfg.refine_endpoints, fit=cfg.refine_fit,
                                  use_mask=cfg.refine_mask, fit_config=fit_cfg)  # fmt: skip
            self._refiners[name] = Refiner(self.body, name, FIT_KEYPOINTS, config)
        return self._refiners[name]

    def reset(self) -> None:
        """Start a new stream: forget tracks, filters, per-track shapes and the detector's
        tracking state."""
        self.tracker.reset()
        self.skeleton_tracker.reset()
        for refiner in self._refiners.values():
            refiner.reset()
        self._frame = 0
        reset = getattr(self._detector, "reset", None)
        if callable(reset):
            reset()

    def close(self) -> None:
        """Release the detector's native resources."""
        if self._detector is not None and callable(getattr(self._detector, "close", None)):
            self._detector.close()
        self._detector = None

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- public entry points ------------------------------------------------------------------
    def __call__(
        self, image: Any, camera: Any = None, stamp: float | None = None
    ) -> list[PersonResult]:
        """Same as :meth:`process`."""
        return self.process(image, camera=camera, stamp=stamp)

    def process(
        self, image: Any, camera: Any = None, stamp: float | None = None
    ) -> list[PersonResult]:
        """Estimate the bodies of the people in one RGB frame.

        Args:
            image: (H, W, 3) uint8 RGB (anything :func:`s2m_model.image.validate_image` takes).
            camera: intrinsics, anything :meth:`s2m_model.camera.Camera.coerce` takes (None:
                a pinhole with ``config.fov_deg`` horizontal field of view).
            stamp: capture time in seconds (for the temporal filters); None = frame counter /
                ``config.default_fps``.

        Returns:
            One :class:`PersonResult` per person (at most ``max_persons``, best first), in the
            camera frame (x right, y down, z forward, metres); ``[]`` when nobody is found.

        Raises:
            ValueError: ``image`` is not a valid image, or ``camera`` is malformed.
        """
        return self.estimate(self.detect(image, camera=camera, stamp=stamp))

    def detect(self, image: Any, camera: Any = None, stamp: float | None = None) -> DetectedFrame:
        """The first half of :meth:`process`: check the frame and run the detector on it.

        Args and Raises: as :meth:`process`. A detector failure (``DetectorError``) is counted
        in ``counters["detector_failures"]`` and gives a frame with no detections.

        Returns:
            The frame for :meth:`estimate` (frames must be estimated in the order detected).
        """
        from s2m_model.image import validate_image

        t_start = time.perf_counter()
        rgb = validate_image(image)
        height, width = rgb.shape[:2]
        cam = Camera.coerce(camera, width, height, self.config.fov_deg)
        stamp = self._stamp(stamp)
        timings: dict[str, float] = {}
        with stopwatch_ms(timings, "detect"):
            try:
                detections = list(self.detector.detect(rgb))
            except DetectorError as exc:  # the detector stays usable: count, go on
                log.warning("detector failed on this frame: %s", exc)
                self.counters["detector_failures"] += 1
                detections = []
        return DetectedFrame(rgb, cam, stamp, detections, timings, t_start)

    def estimate(self, frame: DetectedFrame) -> list[PersonResult]:
        """The second half of :meth:`process`: the bodies of a :meth:`detect`-ed frame's
        people (returns and raises as :meth:`process`). ``timings_ms["total"]`` counts from the
        start of :meth:`detect`, so it includes any wait between the two halves."""
        cfg = self.config
        rgb, cam, stamp, detections = frame.rgb, frame.camera, frame.stamp, frame.detections
        timings, t_start = dict(frame.timings), frame.t_start
        people = self._select(detections)
        if not people:
            return self._finish([], timings, t_start, "image")
        body = self.body
        keypoints = np.stack([d.keypoints for d in people]).astype(np.float32)  # (P,17,3)
        with torch.inference_mode():
            with stopwatch_ms(timings, "lift"):
                groups = self._lift(people, keypoints, cam)
            kept = sorted(i for g in groups for i in g.people)
            if not kept:
                return self._finish([], timings, t_start, "image")
            boxes = np.stack([d.bbox for d in people]).astype(np.float32)
            tracks = None
            if cfg.temporal:
                with stopwatch_ms(timings, "track"):
                    tracks = self._track([people[i] for i in kept], rgb, kept)
                if len(tracks) < len(kept):  # second readings of tracked people: dropped
                    self.counters["duplicate_people"] += len(kept) - len(tracks)
                    kept = [i for i in kept if i in tracks]
                    groups = [g for g in (only_people(g, tracks) for g in groups) if g.people]
            by_person: dict[int, PersonResult | None] = {}
            for group in groups:
                group_tracks = None if tracks is None else [tracks[i] for i in group.people]
                conf = torch.from_numpy(group.confidence).to(body.device)
                evidence = self._evidence(people, group, keypoints, boxes, body)
                solved = self._solve(group.joints, group.fmt, conf, group_tracks, stamp, timings,
                                     keypoints=keypoints[group.people], cam=cam,
                                     **evidence)  # fmt: skip
                by_person.update(zip(group.people, solved, strict=True))
                for i, result in zip(group.people, solved, strict=True):
                    if result is not None:
                        result.lifter = group.lifter
                        result.keypoints_2d = people[i].keypoints.astype(np.float32).copy()
                        result.bbox = boxes[i].copy()
            self._prune_shapes(self.tracker.track_ids)
        return self._finish([by_person[i] for i in kept], timings, t_start, "image")

    def process_skeleton(
        self,
        joints: Any,
        fmt: str = "h36m17",
        confidence: Any = None,
        stamp: float | None = None,
    ) -> list[PersonResult]:
        """Skeleton mode: fit bodies to 3D skeletons from your own estimator.

        Args:
            joints: (J, 3) or (P, J, 3) positions in metres in format ``fmt``, in any
                right-handed frame (the results are in that frame). NaN marks a missing joint.
            fmt: a registered skeleton format (``"h36m17"``, ``"coco17"``, ``"smpl24"``, ...).
            confidence: (J,) or (P, J) in [0, 1] (default: 1 for every finite joint).
            stamp: time in seconds for the temporal filters (None: frame counter / fps).

        Returns:
            One :class:`PersonResult` per skeleton with enough valid joints (both hips and
            ``min_keypoints`` joints), in input order; no ``keypoints_2d``/``bbox``.

        Raises:
            ValueError: unknown format, wrong shapes, infinite values, confidence outside [0, 1].
        """
        from s2m_model.dik import format_roles
        from s2m_model.skeletons import get_format

        cfg = self.config
        t_start = time.perf_counter()
        skel = get_format(fmt) if isinstance(fmt, str) else fmt
        arr, conf = _skeleton_arrays(joints, confidence, skel)
        stamp = self._stamp(stamp)
        roles = format_roles(skel)
        # The root needs the pelvis point and both hips.
        root_points = [i for r in ("pelvis", "left_hip", "right_hip") for i in roles.get(r, ())]
        observed = conf >= cfg.min_keypoint_confidence
        keep = (observed.sum(1) >= cfg.min_keypoints) & observed[:, root_points].all(1)
        timings: dict[str, float] = {}
        if not keep.any():
            return self._finish([], timings, t_start, "skeleton")
        arr, conf = arr[keep], conf[keep]
        body = self.body
        tracks = self.skeleton_tracker.update(arr, conf, None) if cfg.temporal else None
        with torch.inference_mode():
            joints_t = torch.from_numpy(arr).to(device=body.device, dtype=body.dtype)
            conf_t = torch.from_numpy(conf).to(device=body.device, dtype=body.dtype)
            points = None
            if cfg.refine_endpoints and skel.name == WORLD_FORMAT:
                points = (joints_t, conf_t)  # the skeleton is BlazePose's 33 points itself
            results = self._solve(joints_t, skel, conf_t, tracks, stamp, timings, points3d=points)
            self._prune_shapes(list(self.skeleton_tracker.tracks))
        return self._finish(results, timings, t_start, "skeleton")

    # -- stages -------------------------------------------------------------------------------
    def _lift(self, people: list, keypoints: np.ndarray, cam: Camera) -> list[Skeletons]:
        """The front end: 3D skeletons for the selected people, grouped by how they were made
        (``config.lifter``; people without world landmarks fall back to the s2m lifter)."""
        body = self.body
        groups: list[Skeletons] = []
        need_lifter = list(range(len(people)))
        if self.config.lifter in ("mediapipe-world", "fused"):
            fused = self.config.lifter == "fused"
            usable = has_fused_inputs if fused else has_world_landmarks
            with_world = [i for i, d in enumerate(people) if usable(d)]
            need_lifter = [i for i in need_lifter if i not in with_world]
            if with_world and fused:
                from s2m_model.lifter.fused import load_fused

                groups.append(fused_landmarks(load_fused("default", self.config.device), people,
                                              with_world, cam.intrinsics, body.device,
                                              body.dtype))  # fmt: skip
            elif with_world:
                groups.append(world_landmarks(people, with_world, body.device, body.dtype))
            if need_lifter:
                self.counters["world_landmarks_missing"] += len(need_lifter)
                log.log(logging.DEBUG if self._warned_world else logging.WARNING,
                        "lifter=mediapipe-world: %d detection(s) without world landmarks "
                        "(detector %r); the s2m lifter is used for them (counted in "
                        "counters['world_landmarks_missing'])", len(need_lifter),
                        self.config.detector)  # fmt: skip
                self._warned_world = True
        if need_lifter:
            intrinsics = cam.intrinsics.astype(np.float32)
            lifted, rejected = lift_keypoints(self.lifter, keypoints, need_lifter, intrinsics,
                                              body.device, body.dtype)  # fmt: skip
            self.counters["lifter_rejected"] += len(rejected)
            if lifted is not None and not bool(torch.isfinite(lifted.joints).all()):
                log.warning("the lifter returned non-finite joints; its people are dropped")
                self.counters["lifter_non_finite"] += 1
                lifted = None
            if lifted is not None:
                groups.append(lifted)
        return groups

    def _evidence(self, people, group: Skeletons, keypoints, boxes, body) -> dict[str, Any]:
        """What the refinement switches use beyond the skeleton, for one group of people:
        ``points3d`` = (BlazePose points (P,33,3) in the skeleton's frame, confidences (P,33))
        for PR, ``mask`` = (grids (P,h,w), boxes (P,4)) for the fit's silhouette term; None
        where a switch is off or the detections lack the data."""
        from s2m_model.refine import align_points

        cfg = self.config
        evidence: dict[str, Any] = {"points3d": None, "mask": None}
        if not self.refining:
            return evidence
        dets = [people[i] for i in group.people]
        if cfg.refine_endpoints and group.fmt.name == WORLD_FORMAT:
            conf = torch.from_numpy(group.confidence).to(device=body.device, dtype=body.dtype)
            evidence["points3d"] = (group.joints, conf)
        elif cfg.refine_endpoints:
            rows = [r for r, d in enumerate(dets) if has_world_landmarks(d)]
            if rows:
                world = world_landmarks(dets, rows, body.device, body.dtype)
                n, k = len(dets), world.joints.shape[1]
                points = group.joints.new_zeros(n, k, 3)
                conf = group.joints.new_zeros(n, k)
                wconf = torch.from_numpy(world.confidence).to(conf)
                # MediaPipe's world frame is hip-centred, not the lifter's: move the points
                # rigidly onto the lifted skeleton (hips, shoulders) before PR uses them.
                points[rows] = align_points(world.joints, group.joints[rows], group.fmt,
                                            valid=wconf >= cfg.min_keypoint_confidence)  # fmt: skip
                conf[rows] = wconf  # rows without landmarks: confidence 0 = no points
                evidence["points3d"] = (points, conf)
        if cfg.refine_fit and cfg.refine_mask and all(d.mask is not None for d in dets):
            from s2m_model.refine.silhouette import mask_to_grid

            box = boxes[group.people]
            grids = np.stack([mask_to_grid(d.mask > 0.5, b, MASK_GRID)
                              for d, b in zip(dets, box, strict=True)])  # fmt: skip
            evidence["mask"] = (torch.from_numpy(grids), torch.from_numpy(box))
        return evidence

    def _track(self, people: list, rgb: np.ndarray, kept: list[int]) -> dict:
        """Track ids for the people ``kept`` (detection index -> :class:`TrackedPerson`); a
        person the tracker took for a second reading of a tracked one has no entry."""
        features = None
        if self.config.track_appearance:
            from s2m_model.tracking.appearance import color_histogram

            features = [color_histogram(rgb, d) for d in people]
        tracked = {id(t.detection): t for t in self.tracker.update(people, features)}
        return {i: tracked[id(d)] for i, d in zip(kept, people, strict=True) if id(d) in tracked}

    def _prune_shapes(self, alive: list[int]) -> None:
        """Forget the per-track shapes of tracks the tracker dropped (``alive``: the ids kept)."""
        if self._refiners and self.config.temporal:
            for refiner in self._refiners.values():
                refiner.tracks.prune(alive)

    def _solve(
        self, joints, fmt, conf, tracks, stamp: float, timings: dict[str, float],
        keypoints: np.ndarray | None = None, cam: Camera | None = None,
        points3d: tuple[torch.Tensor, torch.Tensor] | None = None,
        mask: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> list[PersonResult | None]:  # fmt: skip
        """SR -> DIK -> PR -> fit -> filter -> body -> placement for P people of one format.
        ``joints`` (P,J,3); with ``keypoints`` (P,17,3) and ``cam`` placed in the camera frame
        (and fitted to the keypoints), else in the skeleton's frame. ``points3d`` / ``mask``:
        see :meth:`_evidence`. Stage times are added to ``timings``."""
        from s2m_model.dik import format_roles
        from s2m_model.refine.endpoints import joint_status

        cfg = self.config
        n = joints.shape[0]
        refiner = self.refiner(fmt) if self.refining else None
        betas, betas_std = self._betas_for(n), None
        if refiner is not None and cfg.refine_shape:
            with stopwatch_ms(timings, "refine"):
                betas, betas_std = self._shape(refiner, joints, conf, tracks, betas)
        with stopwatch_ms(timings, "dik"):
            raw, solved, dik_transl = self._run_dik(joints, fmt, conf, tracks, betas)
            # DIK is NaN-free by design; should a pose still be non-finite, drop that person
            # rather than let NaN reach the filters or the caller.
            finite = torch.isfinite(raw).flatten(1).all(1) & torch.isfinite(dik_transl).all(1)
            if not bool(finite.all()):
                log.warning("DIK returned a non-finite pose; person dropped")
                self.counters["dik_non_finite"] += int((~finite).sum())
                eye = torch.eye(3, dtype=raw.dtype, device=raw.device)
                raw = torch.where(finite[:, None, None, None], raw, eye)
                dik_transl = torch.where(finite[:, None], dik_transl, torch.zeros_like(dik_transl))
            finite_np = finite.cpu().numpy()
        status = joint_status(solved)
        refined = raw
        if refiner is not None and points3d is not None:
            with stopwatch_ms(timings, "refine"):
                refined, status = self._endpoints(refiner, raw, status, betas, dik_transl,
                                                  points3d)  # fmt: skip
        if refiner is not None and cfg.refine_fit and keypoints is not None:
            with stopwatch_ms(timings, "fit"):
                refined, betas, status = self._fit(refiner, refined, betas, solved, status,
                                                   joints, keypoints, cam, mask)  # fmt: skip
        with stopwatch_ms(timings, "filter"):
            rotmats = refined if tracks is None else self._filter_rotations(refined, tracks, stamp)
        with stopwatch_ms(timings, "body"):
            rotvec = roma.rotmat_to_rotvec(rotmats)  # (P,24,3)
            out = self.body(betas=betas, global_orient=rotvec[:, 0], body_pose=rotvec[:, 1:],
                            with_vertices=cfg.compute_vertices)  # fmt: skip
            if keypoints is not None:
                # (P,3) float64, NaN = unplaceable. After the fit too: the filtered pose
                # differs from the fitted one, and this is the same least-squares placement.
                transl = place_in_camera(self.body, out, keypoints, cam,
                                         cfg.min_keypoint_confidence)  # fmt: skip
            else:
                pelvis = joints[:, list(format_roles(fmt)["pelvis"])].mean(1)
                transl = skeleton_translation(pelvis, out.joints[:, 0], raw[:, 0], dik_transl,
                                              rotmats[:, 0])  # fmt: skip
            placed = np.isfinite(transl).all(1) & finite_np
            self.counters["unplaced"] += int((~np.isfinite(transl).all(1) & finite_np).sum())
            if tracks is not None and placed.any():
                idx = np.flatnonzero(placed)
                transl[idx] = self._filter_translations(transl[idx], [tracks[i] for i in idx],
                                                        stamp)  # fmt: skip
            results = self._results(out, rotvec, betas, transl, placed, solved, conf, fmt, tracks,
                                    status, betas_std)  # fmt: skip
        return results

    def _shape(self, refiner, joints, conf, tracks, zeros) -> tuple[torch.Tensor, torch.Tensor]:
        """SR: (betas (P,10), std (P,10)) from the bones, fused per track; a person whose
        estimate is not finite keeps the mean shape (counted)."""
        ids = None if tracks is None else [t.track_id for t in tracks]
        betas, std = refiner.estimate_shape(joints, conf, ids)
        betas, std = betas.to(zeros), std.to(zeros)
        ok = torch.isfinite(betas).all(1) & torch.isfinite(std).all(1)
        if not bool(ok.all()):
            self.counters["refine_non_finite"] += int((~ok).sum())
            betas = torch.where(ok[:, None], betas, zeros)
            std = torch.where(ok[:, None], std, torch.ones_like(std))
        return betas, std

    def _endpoints(self, refiner, rotmats, status, betas, dik_transl, points3d):
        """PR on the ankles, wrists, head/neck; non-finite people keep DIK's rotations."""
        points, conf = points3d
        new, new_status = refiner.endpoints(rotmats, status, betas, dik_transl, points, conf)
        ok = torch.isfinite(new).flatten(1).all(1)
        if not bool(ok.all()):
            self.counters["refine_non_finite"] += int((~ok).sum())
            new = torch.where(ok[:, None, None, None], new, rotmats)
            new_status = torch.where(ok[:, None], new_status, status)
        return new, new_status

    def _fit(self, refiner, rotmats, betas, solved, status, joints, keypoints, cam, mask):
        """The image fit, started from the body placed in the camera frame by the keypoints
        (the fit's translation and reprojection live there; DIK's translation is in the
        root-relative skeleton frame). People who cannot be placed, or whose fit is not
        finite, keep their unfitted pose (the latter counted in ``refine_non_finite``); finite
        fits that went wrong (``FitResult.failed``) are used and counted in ``fit_failed``."""
        cfg = self.config
        rotvec = roma.rotmat_to_rotvec(rotmats)
        start = self.body(betas=betas, global_orient=rotvec[:, 0], body_pose=rotvec[:, 1:],
                          with_vertices=cfg.compute_vertices)  # fmt: skip
        transl = place_in_camera(self.body, start, keypoints, cam, cfg.min_keypoint_confidence)
        rows = np.flatnonzero(np.isfinite(transl).all(1))
        if not len(rows):
            return rotmats, betas, status
        idx = torch.from_numpy(rows)
        kp = torch.from_numpy(keypoints[rows]).to(rotmats)
        grid, box = (None, None) if mask is None else (mask[0][idx], mask[1][idx])
        args = (rotmats[idx], torch.from_numpy(transl[rows]).to(rotmats), betas[idx],
                solved[idx], status[idx], kp[..., :2], cam.intrinsics)  # fmt: skip
        kwargs = {"keypoint_confidence": kp[..., 2], "skeleton": joints[idx], "mask": grid,
                  "box": box}  # fmt: skip
        if grid is not None:
            # The silhouette term differentiates through the renderer: it needs autograd,
            # which the pipeline's inference mode switches off (inference tensors: clone).
            with torch.inference_mode(False):
                args = tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)
                kwargs = {k: v.clone() for k, v in kwargs.items()}
                fit = refiner.fit(*args, **kwargs)
        else:
            fit = refiner.fit(*args, **kwargs)
        ok = torch.isfinite(fit.rotmats).flatten(1).all(1) & torch.isfinite(fit.betas).all(1)
        self.counters["fit_failed"] += int((fit.failed.to(torch.bool) & ok).sum())
        self.counters["refine_non_finite"] += int((~ok).sum())
        rotmats, betas, status = rotmats.clone(), betas.clone(), status.clone()
        keep = idx[ok]
        rotmats[keep] = fit.rotmats[ok].to(rotmats)
        betas[keep] = fit.betas[ok].to(betas)
        status[keep] = fit.status[ok].to(status)
        return rotmats, betas, status

    def _results(self, out, rotvec, betas, transl, placed, solved, conf, fmt, tracks, status,
                 betas_std=None):  # fmt: skip
        joints_np = out.joints.float().cpu().numpy()
        verts_np = None if out.vertices is None else out.vertices.float().cpu().numpy()
        rotvec_np = rotvec.float().cpu().numpy()
        betas_np = betas.float().cpu().numpy()
        std_np = (np.ones_like(betas_np) if betas_std is None
                  else betas_std.float().cpu().numpy())  # fmt: skip
        status_np = status.to(torch.int8).cpu().numpy()
        solved_np = solved.cpu().numpy()
        conf_np = conf.float().cpu().numpy()
        results: list[PersonResult | None] = []
        for i in range(len(placed)):
            if not placed[i]:
                log.debug("person %d could not be placed in the camera frame; dropped", i)
                results.append(None)
                continue
            t = transl[i].astype(np.float32)
            results.append(PersonResult(
                betas=betas_np[i].copy(),
                global_orient=rotvec_np[i, 0].copy(),
                body_pose=rotvec_np[i, 1:].copy(),
                transl=t,
                joints=joints_np[i] + t,
                vertices=None if verts_np is None else verts_np[i] + t,
                solved=solved_np[i].copy(),
                joint_status=status_np[i].copy(),
                betas_std=std_np[i].copy(),
                confidence=smpl_confidence(fmt, conf_np[i], solved_np[i]),
                track_id=0 if tracks is None else tracks[i].track_id,
            ))  # fmt: skip
        return results

    def _run_dik(self, joints, fmt, conf, tracks, betas) -> tuple[torch.Tensor, ...]:
        """DIK over all people, with the previous rotations of each track (grouped: the solver
        takes one ``prev`` per batch; each track keeps its result as the next ``prev``).
        ``betas`` (P,10) is the shape to solve with. Returns local rotmats (P,24,3,3), solved
        (P,24) and DIK's translations (P,3)."""
        n = joints.shape[0]
        prevs = [None if tracks is None else tracks[i].state.get("dik_rotmats") for i in range(n)]
        groups = [[i for i in range(n) if prevs[i] is not None],
                  [i for i in range(n) if prevs[i] is None]]  # fmt: skip
        if not groups[0] or not groups[1]:  # the usual case: one call, no scatter
            prev = torch.cat(prevs) if groups[0] else None
            rotmats, solved, transl = self.dik(joints, fmt, conf, betas, prev)
        else:
            rotmats = joints.new_empty(n, NUM_JOINTS, 3, 3)
            solved = torch.zeros(n, NUM_JOINTS, dtype=torch.bool, device=joints.device)
            transl = joints.new_zeros(n, 3)
            for idx in groups:
                prev = torch.cat([prevs[i] for i in idx]) if prevs[idx[0]] is not None else None
                rotmats[idx], solved[idx], transl[idx] = self.dik(
                    joints[idx], fmt, conf[idx], betas[idx], prev
                )
        if tracks is not None:
            ok = torch.isfinite(rotmats).flatten(1).all(1).tolist()
            for i in range(n):
                tracks[i].state["dik_rotmats"] = rotmats[i : i + 1] if ok[i] else None
        return rotmats, solved, transl

    def _filter(self, values, tracks, stamp: float, key: str, make_filter):
        """Per-track filtering of ``values[i]``; each track keeps its filter in ``state[key]``."""
        out = values.clone() if isinstance(values, torch.Tensor) else values.copy()
        for i, track in enumerate(tracks):
            filt = track.state.get(key)
            if filt is None:
                filt = track.state[key] = make_filter()
            out[i] = filt(values[i], stamp)
        return out

    def _filter_rotations(self, rotmats: torch.Tensor, tracks, stamp: float) -> torch.Tensor:
        from s2m_model.temporal import SO3OneEuroFilter

        cfg = self.config
        return self._filter(rotmats, tracks, stamp, "rot_filter", lambda: SO3OneEuroFilter(
            cfg.rot_min_cutoff, cfg.rot_beta, cfg.d_cutoff))  # fmt: skip

    def _filter_translations(self, transl: np.ndarray, tracks, stamp: float) -> np.ndarray:
        from s2m_model.temporal import OneEuroFilter

        cfg = self.config
        return self._filter(transl, tracks, stamp, "transl_filter", lambda: OneEuroFilter(
            cfg.transl_min_cutoff, cfg.transl_beta, cfg.d_cutoff))  # fmt: skip

    # -- bookkeeping --------------------------------------------------------------------------
    def _finish(
        self, results: list, timings: dict[str, float], t_start: float, mode: str
    ) -> list[PersonResult]:
        """Close a call (``mode`` ``"image"`` or ``"skeleton"``): drop unplaced people, stamp
        timings; with nobody, age that mode's tracks."""
        out = [r for r in results if r is not None]
        if not results and self.config.temporal:
            if mode == "image":
                self.tracker.update([])
            else:
                self.skeleton_tracker.update(np.zeros((0, 1, 3)))
        timings["total"] = (time.perf_counter() - t_start) * 1e3
        for r in out:
            r.timings_ms = dict(timings)
        self.last_timings = timings
        self.counters["frames"] += 1
        self.counters["persons"] += len(out)
        return out

    def _stamp(self, stamp: float | None) -> float:
        self._frame += 1
        if stamp is None:
            return self._frame / self.config.default_fps
        stamp = float(stamp)
        if not math.isfinite(stamp):
            raise ValueError(f"stamp must be a finite time in seconds, got {stamp}")
        return stamp

    def _select(self, detections: list) -> list:
        """Detections with both hips and ``min_keypoints`` observed keypoints, best first."""
        cfg = self.config
        keep = []
        for det in sorted(detections, key=lambda d: -float(d.score)):
            observed = det.keypoints[:, 2] >= cfg.min_keypoint_confidence
            if observed.sum() >= cfg.min_keypoints and observed[list(COCO_HIPS)].all():
                keep.append(det)
        return keep[: cfg.max_persons]

    def _betas_for(self, batch: int) -> torch.Tensor:
        body = self.body
        if self._betas is None or self._betas.shape[0] != batch:
            # The mean shape (refine_shape off); cached so no per-frame allocation.
            self._betas = torch.zeros(batch, NUM_BETAS, dtype=body.dtype, device=body.device)
        return self._betas


def _skeleton_arrays(joints: Any, confidence: Any, skel) -> tuple[np.ndarray, np.ndarray]:
    """Checked (P,J,3) float64 joints and (P,J) confidences (0 where a joint is NaN)."""
    arr = joints.detach().cpu().numpy() if isinstance(joints, torch.Tensor) else joints
    try:
        arr = np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"joints must be a numeric array, got {type(joints).__name__}") from exc
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1:] != (skel.num_joints, 3):
        raise ValueError(
            f"joints must be ({skel.num_joints}, 3) or (P, {skel.num_joints}, 3) for format "
            f"'{skel.name}', got {np.shape(arr)}"
        )
    if np.isinf(arr).any():
        raise ValueError("joints contain infinite values (use NaN for missing joints)")
    finite = np.isfinite(arr).all(-1)
    if confidence is None:
        return arr, finite.astype(np.float64)
    if isinstance(confidence, torch.Tensor):
        confidence = confidence.detach().cpu().numpy()
    conf = np.asarray(confidence, dtype=np.float64)
    if conf.size != finite.size:
        raise ValueError(f"confidence must be {finite.shape}, got {conf.shape}")
    conf = conf.reshape(finite.shape)
    if not (np.isfinite(conf).all() and (conf >= 0).all() and (conf <= 1).all()):
        raise ValueError("confidence must lie in [0, 1]")
    return arr, np.where(finite, conf, 0.0)
