"""Human joints -> robot IK targets: scaling by bone lengths, ground, planted feet.

For each mapped SMPL joint ``k`` (a row of the robot's mapping table) the target is a point
and a frame in the robot world (z up, metres):

* **Scaling.** The mapped joints form a tree (each row's parent is its nearest mapped SMPL
  ancestor). The root (pelvis) target is the human pelvis scaled by ``root_scale`` = robot leg
  length / human leg length (hip -> knee -> ankle, so steps and pelvis height fit the robot's
  legs); every other target is its parent's target plus the human bone ``p_k - p_parent``
  scaled by that segment's robot/human length ratio. Directions are the human's, lengths the
  robot's, so the targets are reachable and the robot's proportions do not bend its limbs.
  Human lengths are medians over frames (pose-independent, robust to outliers).
* **Height.** Vertical positions are measured from the human's planted-ankle height (a low
  percentile of the ankle heights) and put at the robot's ankle height above its soles, so a
  standing person gives a standing robot with its soles on the plane z = 0.
* **Orientation.** Target frame = the human joint frame times a fixed offset: the robot
  body's rotation in its T-pose written in SMPL body axes (``BODY_AXES_IN_WORLD.T @ R_tpose``),
  i.e. the robot body turns by the human joint's rotation away from SMPL's T-pose.
* **Feet.** Contacts come from :class:`~s2m_model.retarget.contact.ContactDetector`
  (filtered ankles, heights above the lowest foot of the last second, world- or
  pelvis-relative speed, hysteresis: ``contact_height`` / ``contact_speed`` to plant,
  ``contact_release_height`` / ``contact_release_speed`` to release). A *planted* foot's
  target is put on the ground, held at the point where the contact began (no sliding), flat
  (yaw only), with a higher weight. Swing feet are kept above the ground.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from s2m_model.retarget.contact import ContactConfig, ContactDetector
from s2m_model.retarget.human import BODY_AXES_IN_WORLD, yaw_matrix
from s2m_model.retarget.robot import Robot
from s2m_model.smpl_layout import JOINT_INDEX, PARENTS

#: Percentile of the ankle heights taken as the planted-ankle height.
FLOOR_PERCENTILE = 5.0


@dataclass(frozen=True)
class RobotReference:
    """The robot's mapped frames in its T-pose, base at the origin (K = mapped joints).

    Attributes:
        humans: the mapped SMPL joint names, table order.
        joint_index: ``(K,)`` their SMPL indices.
        parents: ``(K,)`` index of each row's parent row (-1 for the pelvis).
        positions / rotations: ``(K, 3)`` / ``(K, 3, 3)`` frame poses in the T-pose.
        offsets: ``(K, 3, 3)`` ``BODY_AXES_IN_WORLD.T @ rotations``.
        feet: ``{"left"/"right": row index of the tracked ankle}``.
        ankle_height: height (m) of the tracked ankle frames above the soles.
    """

    humans: tuple[str, ...]
    joint_index: np.ndarray
    parents: np.ndarray
    positions: np.ndarray
    rotations: np.ndarray
    offsets: np.ndarray
    feet: dict[str, int]
    ankle_height: float


def robot_reference(robot: Robot) -> RobotReference:
    """Measure the robot's mapped frames in its T-pose (see :class:`RobotReference`)."""
    humans = tuple(r.human for r in robot.table.frames)
    index = np.array([JOINT_INDEX[h] for h in humans])
    row_of = {j: k for k, j in enumerate(index)}
    parents = []
    for j in index:
        p = PARENTS[j]
        while p >= 0 and p not in row_of:
            p = PARENTS[p]
        parents.append(row_of[p] if p >= 0 else -1)
    if parents.count(-1) != 1:
        raise ValueError(f"{robot.name}: the mapped joints must form one tree under the pelvis")
    qpos = robot.qpos(robot.tpose)
    pos, rot = robot.frame_poses(qpos, humans)
    feet = {side: humans.index(frame) for side, (frame, _) in robot.table.feet.items()}
    soles = [robot.site_position(qpos, sole)[2] for _, sole in robot.table.feet.values() if sole]
    if not soles:
        soles = [pos[k, 2] for k in feet.values()] or [pos[:, 2].min()]
    ground = min(soles)
    pos = pos - np.array([0.0, 0.0, ground])
    ankle = float(np.mean([pos[k, 2] for k in feet.values()])) if feet else 0.0
    return RobotReference(
        humans=humans, joint_index=index, parents=np.array(parents), positions=pos,
        rotations=rot, offsets=BODY_AXES_IN_WORLD.T @ rot, feet=feet, ankle_height=ankle,
    )  # fmt: skip


@dataclass(frozen=True)
class Scale:
    """Robot/human length ratios per mapped segment (``ratios[k]`` for row ``k``'s bone)."""

    ratios: np.ndarray
    root_scale: float
    human_lengths: np.ndarray
    robot_lengths: np.ndarray

    def as_dict(self, humans: tuple[str, ...]) -> dict[str, float]:
        pairs = zip(humans, self.ratios.tolist(), strict=True)
        return {"root": round(self.root_scale, 4), **{h: round(r, 4) for h, r in pairs if r > 0}}


def _lengths(points: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """``(..., K)`` distance of each row's point to its parent row's point (0 for the root)."""
    par = np.where(parents < 0, np.arange(len(parents)), parents)
    return np.linalg.norm(points - points[..., par, :], axis=-1)


def _leg(ref: RobotReference, lengths: np.ndarray) -> float:
    """Summed lengths of the chains from the tracked ankles up to the pelvis."""
    total, count = 0.0, 0
    for k in ref.feet.values():
        while ref.parents[k] >= 0:
            total += float(lengths[k])
            k = int(ref.parents[k])
        count += 1
    return total / max(count, 1)


def fit_scale(ref: RobotReference, joints: np.ndarray) -> Scale:
    """Per-segment ratios from human joints ``(T, 24, 3)`` (medians over the finite frames).

    Raises:
        ValueError: no frame where all mapped joints are finite.
    """
    pts = np.asarray(joints, dtype=np.float64)[:, ref.joint_index]
    ok = np.isfinite(pts).all((-1, -2))
    if not ok.any():
        raise ValueError("no frame with all mapped joints finite: cannot measure the person")
    human = np.median(_lengths(pts[ok], ref.parents), axis=0)
    robot = _lengths(ref.positions, ref.parents)
    # A zero-length human bone (joints placed together) gets ratio 1 instead of inf.
    ratios = np.where(human > 1e-3, robot / np.maximum(human, 1e-3), 1.0)
    ratios = np.clip(ratios, 0.2, 5.0)
    leg_h, leg_r = _leg(ref, human), _leg(ref, robot)
    root = leg_r / leg_h if leg_h > 1e-3 and leg_r > 0 else float(np.median(ratios))
    return Scale(ratios=ratios, root_scale=float(root), human_lengths=human, robot_lengths=robot)


def floor_height(joints: np.ndarray, ref: RobotReference) -> float:
    """Planted-ankle height of the person: a low percentile of the tracked ankles' heights."""
    idx = [ref.joint_index[k] for k in ref.feet.values()] or [JOINT_INDEX["pelvis"]]
    z = np.asarray(joints)[:, idx, 2]
    z = z[np.isfinite(z)]
    if z.size == 0:
        raise ValueError("no finite ankle joint: cannot find the ground")
    return float(np.percentile(z, FLOOR_PERCENTILE))


@dataclass(frozen=True)
class TargetConfig:
    """Feet handling (metres, m/s, seconds; contact fields: :class:`ContactConfig`)."""

    contact_height: float = 0.06
    contact_speed: float = 0.35
    contact_release_height: float = 0.09
    contact_release_speed: float = 0.35
    contact_smoothing_s: float = 0.0
    contact_window_s: float = 1.0
    relock_distance: float = 0.12
    planted_weight: float = 10.0
    planted_orientation: float = 1.0
    feet: bool = True

    def contact(self) -> ContactConfig:
        """The :class:`ContactConfig` of these settings."""
        return ContactConfig(on_height=self.contact_height,
                             off_height=max(self.contact_release_height, self.contact_height),
                             on_speed=self.contact_speed,
                             off_speed=max(self.contact_release_speed, self.contact_speed),
                             smoothing_s=self.contact_smoothing_s,
                             window_s=self.contact_window_s)  # fmt: skip


@dataclass
class FrameTargets:
    """IK targets of one frame (K = mapped rows). Rows with zero costs are not used.

    Attributes:
        positions: ``(K, 3)`` robot-world target points.
        rotations: ``(K, 3, 3)`` target frames.
        position_cost / orientation_cost: ``(K,)`` weights (0 = no target).
        planted: ``{"left"/"right": bool}`` foot contacts.
    """

    positions: np.ndarray
    rotations: np.ndarray
    position_cost: np.ndarray
    orientation_cost: np.ndarray
    planted: dict[str, bool]


class TargetBuilder:
    """Builds :class:`FrameTargets` frame by frame (stateful: contacts, foot locks, ground).

    ``scale`` and ``floor`` may be given (offline: measured on the whole clip); otherwise they
    are measured on the frames seen so far (live), refreshed at a few frame counts and frozen
    after :attr:`FREEZE_AFTER` frames so the targets do not drift.
    """

    FREEZE_AFTER = 300
    _REFRESH = (1, 5, 15, 30, 60, 120, 300)

    def __init__(self, robot: Robot, reference: RobotReference | None = None,
                 scale: Scale | None = None, floor: float | None = None,
                 config: TargetConfig | None = None) -> None:  # fmt: skip
        self.robot = robot
        self.ref = reference or robot_reference(robot)
        self.config = config or TargetConfig()
        self.scale, self.floor = scale, floor
        self._fixed_scale, self._fixed_floor = scale is not None, floor is not None
        self._history: deque[np.ndarray] = deque(maxlen=self.FREEZE_AFTER)
        self._seen = 0
        costs = [(r.position, r.orientation) for r in robot.table.frames]
        self._pcost = np.array([c[0] for c in costs])
        self._ocost = np.array([c[1] for c in costs])
        self._contact = ContactDetector(tuple(self.ref.feet), self.config.contact())
        self.reset()

    def reset(self) -> None:
        """Forget contacts, locks and the previous frame (keep scale and floor)."""
        self._locks: dict[str, np.ndarray | None] = {side: None for side in self.ref.feet}
        self._contact.reset()

    def _observe(self, joints: np.ndarray) -> None:
        if self._fixed_scale and self._fixed_floor:
            return
        self._seen += 1
        self._history.append(joints)
        if self._seen in self._REFRESH or self.scale is None or self.floor is None:
            hist = np.stack(self._history)
            try:
                if not self._fixed_scale:
                    self.scale = fit_scale(self.ref, hist)
                if not self._fixed_floor:
                    self.floor = floor_height(hist, self.ref)
            except ValueError:
                pass  # not enough finite joints yet: keep the previous estimate

    def __call__(self, joints: np.ndarray, rotations: np.ndarray, solved: np.ndarray,
                 t: float) -> FrameTargets | None:  # fmt: skip
        """Targets for one frame: ``joints (24,3)``, ``rotations (24,3,3)``, ``solved (24,)``
        in the robot world (see :class:`~s2m_model.retarget.human.HumanMotion`), time ``t`` s.

        Returns ``None`` when the frame cannot be followed (non-finite pelvis, or no scale /
        ground estimate yet): the caller holds its pose.
        """
        ref, cfg = self.ref, self.config
        pts = joints[ref.joint_index]
        finite = np.isfinite(pts).all(-1)
        if not finite[ref.parents < 0].all():
            return None
        self._observe(joints)
        if self.scale is None or self.floor is None:
            return None
        K = len(ref.humans)
        out = np.zeros((K, 3))
        ok = np.zeros(K, bool)
        for k in range(K):  # parents come before children (SMPL order is topological)
            p = ref.parents[k]
            if p < 0:
                out[k] = self.scale.root_scale * pts[k]
                out[k, 2] = ref.ankle_height + self.scale.root_scale * (pts[k, 2] - self.floor)
                ok[k] = True
            elif finite[k] and ok[p]:
                out[k] = out[p] + self.scale.ratios[k] * (pts[k] - pts[p])
                ok[k] = True
        rot = rotations[ref.joint_index] @ ref.offsets
        pcost = np.where(ok, self._pcost, 0.0)
        ocost = np.where(ok & solved[ref.joint_index], self._ocost, 0.0)
        ankles = {side: pts[k] if ok[k] else np.full(3, np.nan) for side, k in ref.feet.items()}
        planted = self._contact(ankles, pts[ref.parents < 0][0], t)
        for side, k in ref.feet.items():
            if not ok[k]:
                self._locks[side] = None
                continue
            if not cfg.feet:  # contacts are always reported; `feet` switches their handling
                continue
            if planted[side]:
                lock = self._locks[side]
                if lock is None or np.linalg.norm(out[k, :2] - lock) > cfg.relock_distance:
                    lock = out[k, :2].copy()
                self._locks[side] = lock
                out[k] = (lock[0], lock[1], ref.ankle_height)
                # Flat: keep only the heading of the foot's turn away from its T-pose.
                turn = rot[k] @ ref.rotations[k].T
                yaw = float(np.arctan2(turn[1, 0], turn[0, 0]))
                rot[k] = yaw_matrix(yaw) @ ref.rotations[k]
                pcost[k] *= cfg.planted_weight
                ocost[k] = max(ocost[k], cfg.planted_orientation)
            else:
                self._locks[side] = None
                out[k, 2] = max(out[k, 2], ref.ankle_height)
        return FrameTargets(out, rot, pcost, ocost, planted)
