"""DIK — analytic, differentiable inverse kinematics: 3D skeleton -> SMPL-layout rotations.

The paper's DIK (Skeleton2Mesh, Sec. 3.2) builds, per joint, an orthonormal frame from bone
vectors of the target skeleton and the same frame from the body's rest skeleton; the world
rotation is ``F_target @ F_rest^T`` and the local rotation is relative to the parent (Eqs. 1-3).
s2m extends it:

- **Any registered format.** The rest skeleton is the body's T-pose regressed into the input's
  format (``BodyModel.regress``), so target and rest frames use the same points.
- **Hinge prior** for elbows and knees: both limb frames share the limb-plane normal, so the
  limb plane fixes the upper limb's twist and the elbow/knee bends about its own axis. Near a
  straight limb the normal is blended continuously with a fallback axis (the previous frame's,
  or the rest axis carried by the parent's minimal-twist swing): no NaN, no flipped twist.
- **Root and spine analytically** (the paper regressed the root): the root frame comes from
  the hip line and the pelvis->thorax direction, the upper-torso frame from the shoulder line;
  the remaining rotation is spread evenly over spine1/2/3. Formats with all spine joints
  (``smpl24``) are solved bone by bone instead.
- Neck/head from thorax, head top, nose, ears; wrists/ankles from hand and foot points when the
  format has them (BlazePose); collars from the shoulder positions.
- No SVD, no data-dependent control flow: exports to ONNX (opset >= 17). Frames are built with
  Gram-Schmidt and rotation matrices -> axis-angle via ``roma`` (stable near 0 and pi); the
  geometry helpers are in :mod:`s2m_model.ik_geometry`.

Lengths are metres; rotations are axis-angle in radians. The input skeleton's frame is the
output frame: ``global_orient`` and ``transl`` place the body in it (e.g. the camera frame).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import roma
import torch

from s2m_model.ik_geometry import (
    HINGE_BLEND,
    blend_axis,
    bmv,
    frame,
    hinge_estimate,
    norm,
    perp,
    rotmat_to_rotvec,
    swing,
    twist_angle,
    unit,
)
from s2m_model.smpl_layout import (
    JOINT_INDEX,
    JOINT_NAMES,
    NUM_BETAS,
    NUM_JOINTS,
    PARENTS,
    world_from_local,
)

J = JOINT_INDEX
#: Smallest sine between the two directions of an orientation frame (nose/ears, head top) for
#: it to count as determined; below it the joint is unsolved (degenerate).
MIN_FRAME_SPREAD = 1e-2
# Rest hinge axes in the SMPL T-pose (Y up, facing +Z, left = +X): elbows flex the forearm
# forward about the vertical, knees flex the shin backwards about +X.
REST_HINGE_AXES = {
    "left_elbow": (0.0, -1.0, 0.0), "right_elbow": (0.0, 1.0, 0.0),
    "left_knee": (1.0, 0.0, 0.0), "right_knee": (1.0, 0.0, 0.0),
}  # fmt: skip


@dataclass
class DIKResult:
    """Output of :func:`solve`. B = batch size.

    Attributes:
        global_orient: (B,3) root axis-angle (radians) in the input skeleton's frame.
        body_pose: (B,23,3) local axis-angle of SMPL joints 1..23 (radians).
        solved: (B,24) bool, rotations the skeleton determined (the rest are identity, left to
            pose refinement).
        transl: (B,3) body translation (metres) so the body's pelvis lands on the input's.
        quality: per-joint (B,24) bool flags: ``degenerate`` (zero-length bone or straight limb:
            a fallback axis was used), ``missing`` (needed input joints NaN/low confidence).
        rotmats: (B,24,3,3) local rotation matrices (root first), same content as above.
    """

    global_orient: torch.Tensor
    body_pose: torch.Tensor
    solved: torch.Tensor
    transl: torch.Tensor
    quality: dict[str, torch.Tensor] = field(default_factory=dict)
    rotmats: torch.Tensor | None = None


# --------------------------------------------------------------------------------------------
# Roles: named points of a format (SMPL joint names + a few landmarks) as averages of joints.
# --------------------------------------------------------------------------------------------
def format_roles(fmt) -> dict[str, tuple[int, ...]]:
    """Role name -> indices (averaged) of the format's joints: the named points DIK reads.

    The table is data on the format (:class:`~s2m_model.skeletons.SkeletonFormat`): every
    ``smpl_map`` joint under its SMPL name, then ``fmt.roles`` (which override those, or
    remove them with an empty tuple). ``thorax`` defaults to the ``neck`` role. A fresh dict
    each call (the solver adds derived roles to it).
    """
    roles: dict[str, tuple[int, ...]] = {}
    for joint, smpl in fmt.smpl_map.items():
        if smpl not in fmt.roles:
            roles[smpl] = (fmt.index(joint),)
    for role, joints in fmt.roles.items():
        if joints:
            roles[role] = tuple(fmt.index(j) for j in joints)
    if "neck" in roles and "thorax" not in roles:
        roles["thorax"] = roles["neck"]
    return roles


def rest_points(body, fmt, betas: torch.Tensor | None = None) -> torch.Tensor:
    """(B,J,3) the body's T-pose skeleton in format ``fmt`` (metres, body frame): what DIK
    takes as zero rotation for that format.

    Formats with a vertex regressor (``smpl24``, ``h36m17``, ``coco17``, ...) are regressed from
    the T-pose mesh; mocap formats take the SMPL joint their ``smpl_map`` names, and unmapped
    joints that name a surface landmark (``head_top``) take the landmark.

    Args:
        body: a :class:`~s2m_model.body.BodyModel`.
        fmt: registered format name or :class:`~s2m_model.skeletons.SkeletonFormat`.
        betas: (B,10) shape in the body's dtype; default one zero shape.
    """
    from s2m_model.body.regressors import RECIPES
    from s2m_model.skeletons import get_format

    fmt = get_format(fmt) if isinstance(fmt, str) else fmt
    if betas is None:
        betas = torch.zeros(1, NUM_BETAS, dtype=body.dtype, device=body.device)
    if fmt.name == "smpl24" or fmt.name in RECIPES:
        return body.rest_points(betas, fmt.name)
    rest = body.rest_joints(betas)
    out = rest.new_zeros(rest.shape[0], fmt.num_joints, 3)
    for joint, smpl in fmt.smpl_map.items():
        out[:, fmt.index(joint)] = rest[:, J[smpl]]
    # Unmapped joints that name a surface landmark (e.g. mocap 'head_top') take it.
    landmarks = [j for j in fmt.joint_names if j not in fmt.smpl_map and j in body.landmark_names]
    if landmarks:
        verts = body.shaped_vertices(betas)
        for joint in landmarks:
            out[:, fmt.index(joint)] = body.landmark(joint) @ verts
    return out


def _hinge_axis(upper: torch.Tensor, lower: torch.Tensor, joint: str) -> torch.Tensor:
    """Rest hinge axis of an elbow/knee: the rest limb's own bend plane when it is bent (the
    free body's knees are, slightly), else the nominal axis."""
    nominal = upper.new_tensor(REST_HINGE_AXES[joint]).expand_as(upper)
    return blend_axis(torch.cross(unit(upper), unit(lower), dim=-1), nominal)


def hinge_axis(body, joint: str, betas: torch.Tensor | None = None) -> torch.Tensor:
    """(B,3) the hinge axis DIK assumes for ``joint`` ('left_knee', 'right_elbow', ...), in the
    joint's local (= T-pose world) frame; a pure rotation about it is a pure flexion."""
    if joint not in REST_HINGE_AXES:
        raise ValueError(f"no hinge axis for joint {joint!r}; hinges: {', '.join(REST_HINGE_AXES)}")
    rest = body.rest_joints(betas)
    mid = J[joint]
    parent = PARENTS[mid]
    child = J[joint.replace("knee", "ankle").replace("elbow", "wrist")]
    return _hinge_axis(rest[:, mid] - rest[:, parent], rest[:, child] - rest[:, mid], joint)


# --------------------------------------------------------------------------------------------
class _Solver:
    """One call of :func:`solve`: keeps target/rest roles, validity and world rotations."""

    def __init__(self, joints, rest, roles, valid_joint, prev_world, rest_joints, hinge=True):
        self.joints, self.rest, self.roles = joints, rest, roles
        self.hinge = hinge
        self.rest_joints = rest_joints  # (B,24,3) the body's T-pose SMPL joints
        self.root_pos = torch.zeros_like(rest_joints[:, 0])
        self.valid_joint = valid_joint
        self.prev_world = prev_world
        batch = joints.shape[0]
        eye = torch.eye(3, dtype=joints.dtype, device=joints.device).expand(batch, 3, 3)
        self.eye = eye
        self.world: list[torch.Tensor] = [eye] * NUM_JOINTS
        self.local: list[torch.Tensor] = [eye] * NUM_JOINTS
        false = torch.zeros(batch, dtype=torch.bool, device=joints.device)
        self.solved = [false] * NUM_JOINTS
        self.degenerate = [false] * NUM_JOINTS
        self.missing = [false] * NUM_JOINTS

    def has(self, *names: str) -> bool:
        return all(n in self.roles for n in names)

    def pt(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        idx = list(self.roles[name])
        return self.joints[:, idx].mean(1), self.rest[:, idx].mean(1)

    def ok(self, *names: str) -> torch.Tensor:
        mask = torch.ones_like(self.solved[0])
        for n in names:
            mask = mask & self.valid_joint[:, list(self.roles[n])].all(1)
        return mask

    def vec(self, a: str, b: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Target and rest vectors a->b and whether the target bone is long enough."""
        (ta, ra), (tb, rb) = self.pt(a), self.pt(b)
        t, r = tb - ta, rb - ra
        long_enough = norm(t)[..., 0] > 1e-4
        return t, r, long_enough

    def pos(self, j: int) -> torch.Tensor:
        """(B,3) posed position of SMPL joint j by forward kinematics of the solved rotations."""
        if j == 0:
            return self.root_pos
        p = PARENTS[j]
        offset = self.rest_joints[:, j] - self.rest_joints[:, p]
        return self.pos(p) + bmv(self.world[p], offset)

    def parent_world(self, j: int) -> torch.Tensor:
        return self.world[PARENTS[j]] if PARENTS[j] >= 0 else self.eye

    def set_world(self, j: int, world: torch.Tensor, use: torch.Tensor, degenerate=None) -> None:
        """Accept ``world`` where ``use``; elsewhere the joint keeps its parent's rotation."""
        parent = self.parent_world(j)
        world = torch.where(use[:, None, None], world, parent)
        self.world[j] = world
        self.local[j] = parent.transpose(-1, -2) @ world
        self.solved[j] = use
        if degenerate is not None:
            self.degenerate[j] = degenerate

    def set_local(self, j: int, local: torch.Tensor, use: torch.Tensor) -> None:
        local = torch.where(use[:, None, None], local, self.eye)
        self.local[j] = local
        self.world[j] = self.parent_world(j) @ local
        self.solved[j] = use

    # -- joint kinds --------------------------------------------------------------------------
    def frame_joint(self, j: int, primary: tuple[str, str], secondary: tuple[str, str]) -> None:
        """World rotation from two target vectors vs the same two rest vectors."""
        if not self.has(*primary, *secondary):
            return
        p_t, p_r, ok_p = self.vec(*primary)
        s_t, s_r, ok_s = self.vec(*secondary)
        # Secondary nearly parallel to primary: blend in the parent's prediction, with a
        # weight that is zero once the secondary is usable (exact) and grows continuously.
        parent = self.parent_world(j)
        e1 = unit(p_t)
        s_perp = perp(unit(s_t), e1)
        pred = unit(perp(bmv(parent, s_r), e1))
        strength = norm(s_perp)
        weight = (1.0 - strength / HINGE_BLEND).clamp(min=0.0)
        weak = strength[..., 0] < HINGE_BLEND
        world = frame(p_t, s_perp + weight * HINGE_BLEND * pred) @ frame(p_r, s_r).transpose(
            -1, -2
        )
        use = ok_p & ok_s & self.ok(*primary, *secondary)
        self.missing[j] = ~self.ok(*primary, *secondary)
        self.set_world(j, world, use, degenerate=weak | ~(ok_p & ok_s))

    def swing_joint(self, j: int, bone: tuple[str, str]) -> None:
        """Minimal rotation (no twist w.r.t. the parent) aligning one bone."""
        if not self.has(*bone):
            return
        t, r, long_enough = self.vec(*bone)
        parent = self.parent_world(j)
        world = swing(bmv(parent, r), t) @ parent
        use = long_enough & self.ok(*bone)
        self.missing[j] = ~self.ok(*bone)
        self.set_world(j, world, use, degenerate=~long_enough)

    def hinge_limb(self, root: int, mid: int, a: str, b: str, c: str, centred=False) -> None:
        """Upper limb (root joint) + hinge (mid joint) from points a-b-c (e.g. hip-knee-ankle)."""
        if not self.has(a, b):
            return
        u_t, u_r, ok_u = self.vec(a, b)
        if not self.has(c) or not self.hinge:
            # No distal point, or the swing-only baseline: two independent minimal swings.
            self.swing_joint(root, (a, b))
            if self.has(c):
                self.swing_joint(mid, (b, c))
            return
        f_t, f_r, ok_f = self.vec(b, c)
        # Rest hinge axis: the body's own (its SMPL joints), whatever points the format has;
        # surface keypoints' rest limbs are bent a few degrees out of the flexion plane.
        jr = self.rest_joints
        end = J[JOINT_NAMES[mid].replace("knee", "ankle").replace("elbow", "wrist")]
        axis_r = _hinge_axis(jr[:, mid] - jr[:, root], jr[:, end] - jr[:, mid], JOINT_NAMES[mid])
        parent = self.parent_world(root)
        # ``centred``: the upper bone from the joint centre carried by the parent. Shoulder
        # keypoints on the surface (COCO, BlazePose) sit ~3 cm above the joint and move with
        # the torso, so the bare point-to-point vector tilts against the bone by a pose-
        # dependent amount (6 deg in the T-pose, ~0 arms down). Hip keypoints follow the thigh
        # better than a root solved from surface points does: not for legs (measured).
        if centred:
            offset = self.pt(a)[1] - jr[:, root]
            u_t, u_r = u_t + bmv(parent, offset), u_r + offset
        # Reference frame for the fallback: the previous frame's limb rotation, else the
        # parent's rotation carried by the minimal swing of the upper bone. The target axis
        # is estimated from the axis' cosines to the rest bones and blended with the rest axis
        # in that frame, so the rest limb gives the rest axis itself (zero rotation), any
        # hinge flexion gives the carried axis exactly, and a straight limb the fallback.
        swing_world = swing(bmv(parent, u_r), u_t) @ parent
        ref = swing_world if self.prev_world is None else self.prev_world[:, root]
        # A rest limb bent slightly backwards of its axis: no flexion seen until past that.
        rest_flexion = (axis_r * torch.cross(unit(u_r), unit(f_r), dim=-1)).sum(-1, keepdim=True)
        seen = hinge_estimate(
            u_t, f_t, (axis_r * unit(u_r)).sum(-1, keepdim=True),
            (axis_r * unit(f_r)).sum(-1, keepdim=True), dead=(-rest_flexion).clamp(min=0.0),
        )  # fmt: skip
        seen_ref = bmv(ref.transpose(-1, -2), seen)
        straight = (seen_ref * axis_r).sum(-1) < HINGE_BLEND
        axis = bmv(ref, blend_axis(seen_ref, axis_r))
        upper = frame(u_t, axis) @ frame(u_r, axis_r).transpose(-1, -2)
        lower = frame(f_t, axis) @ frame(f_r, axis_r).transpose(-1, -2)
        ok_ab = ok_u & self.ok(a, b)
        ok_all = ok_ab & ok_f & self.ok(c)
        # Without a valid distal point the upper limb falls back to a swing.
        upper = torch.where(ok_all[:, None, None], upper, swing_world)
        self.missing[root] = ~self.ok(a, b)
        self.set_world(root, upper, ok_ab, degenerate=(straight & ok_all) | ~ok_u)
        self.missing[mid] = ~self.ok(c)
        self.set_world(mid, lower, ok_all, degenerate=straight | ~ok_f)

    def aim_joint(self, j: int, target: str) -> None:
        """Swing joint j (from its posed position) so the rest point ``target`` (attached to it)
        lands on the target point: exact positions when the body's proportions match."""
        if not self.has(target):
            return
        tgt, rest_point = self.pt(target)
        t = tgt - self.pos(j)
        r = rest_point - self.rest_joints[:, j]
        parent = self.parent_world(j)
        world = swing(bmv(parent, r), t) @ parent
        long_enough = norm(t)[..., 0] > 1e-4
        self.missing[j] = ~self.ok(target)
        self.set_world(j, world, long_enough & self.ok(target), degenerate=~long_enough)

    def spine_chain(self) -> None:
        """spine1/2/3 from the thorax point and the shoulder line (formats without spine joints).

        The bend from the root's up direction to the thorax is spread in equal increments,
        scaled so the chain's end reaches the thorax; a residual swing at spine1 makes it
        exact. The twist that the shoulder line shows is then spread over the three joints,
        each about the axis through the thorax (so the thorax stays put), with the last share
        taking the residual.
        """
        if not self.has("thorax", "left_shoulder", "right_shoulder"):
            return
        use = self.ok("thorax", "left_shoulder", "right_shoulder") & self.solved[0]
        chain = (J["spine1"], J["spine2"], J["spine3"])
        jr = self.rest_joints
        thorax_t, thorax_r = self.pt("thorax")
        segs = [jr[:, J["spine2"]] - jr[:, J["spine1"]], jr[:, J["spine3"]] - jr[:, J["spine2"]],
                thorax_r - jr[:, J["spine3"]]]  # fmt: skip
        g0 = self.world[0]
        c_t = bmv(g0.transpose(-1, -2), thorax_t - self.pos(J["spine1"]))
        c_r = segs[0] + segs[1] + segs[2]
        axis = torch.cross(unit(c_r), unit(c_t), dim=-1)
        angle = torch.atan2(norm(axis), (unit(c_r) * unit(c_t)).sum(-1, keepdim=True))
        lengths = torch.cat([norm(d) for d in segs], -1)
        # An arc of equal increments points, on average, (sum i*l_i / sum l_i) increments away.
        reach = (lengths * lengths.new_tensor([1.0, 2.0, 3.0])).sum(-1, keepdim=True)
        inc = roma.rotvec_to_rotmat(unit(axis) * angle * lengths.sum(-1, keepdim=True) / reach)
        end = bmv(inc, segs[0]) + bmv(inc @ inc, segs[1]) + bmv(inc @ inc @ inc, segs[2])
        locals_ = [swing(end, c_t) @ inc, inc, inc]
        for j, local in zip(chain, locals_, strict=True):
            self.set_local(j, local, use)
        # Twist from the shoulder line, about axes through the (posed) thorax point.
        (ls_t, ls_r), (rs_t, rs_r) = self.pt("left_shoulder"), self.pt("right_shoulder")
        line_t, line_r = ls_t - rs_t, ls_r - rs_r
        total = None
        for k, j in enumerate(chain):
            thorax_now = self.pos(J["spine3"]) + bmv(self.world[J["spine3"]], segs[2])
            twist_axis = unit(thorax_now - self.pos(j))
            needed = twist_angle(bmv(self.world[J["spine3"]], line_r), line_t, twist_axis)
            if total is None:
                total = needed
            share = needed if k == len(chain) - 1 else total / len(chain)
            turn = roma.rotvec_to_rotmat(twist_axis * share)
            world = turn @ self.world[j]
            self.set_local(j, self.parent_world(j).transpose(-1, -2) @ world, use)
            for child in chain[k + 1 :]:
                self.world[child] = self.parent_world(child) @ self.local[child]
        self.degenerate[J["spine1"]] = (norm(c_t)[..., 0] < 1e-4) & use

    def spread(self, joints: tuple[int, ...], total_world: torch.Tensor, use: torch.Tensor):
        """Spread the rotation from the first joint's parent to ``total_world`` evenly."""
        parent = self.parent_world(joints[0])
        rotvec = rotmat_to_rotvec(parent.transpose(-1, -2) @ total_world) / len(joints)
        share = roma.rotvec_to_rotmat(rotvec)
        for j in joints:
            self.set_local(j, share, use)


def validate_inputs(joints, fmt, betas=None, confidence=None, min_confidence: float = 0.3):
    """Check and normalise IK inputs: returns (format, joints (B,J,3), betas (B,10), valid (B,J)).

    ``valid`` is False for NaN joints and joints below ``min_confidence``. Raises ValueError with
    what is wrong (type, shape, dtype).
    """
    from s2m_model.skeletons import SkeletonFormat, get_format

    if not isinstance(fmt, (str, SkeletonFormat)):
        raise TypeError(
            f"fmt must be a skeleton format name ('h36m17', 'coco17', ...) or a SkeletonFormat, "
            f"got {type(fmt).__name__}"
        )
    fmt = get_format(fmt) if isinstance(fmt, str) else fmt
    if not isinstance(joints, torch.Tensor):
        raise ValueError(f"joints must be a torch tensor, got {type(joints).__name__}")
    if joints.ndim == 2:
        joints = joints[None]
    if joints.ndim != 3 or joints.shape[1:] != (fmt.num_joints, 3):
        raise ValueError(
            f"joints must be (B,{fmt.num_joints},3) for format '{fmt.name}', "
            f"got {tuple(joints.shape)}"
        )
    if not joints.is_floating_point():
        raise ValueError(f"joints must be floating point, got {joints.dtype}")
    if joints.dtype not in (torch.float32, torch.float64):
        # float16/bfloat16 lack the precision for Gram-Schmidt frames (NaN, det up to 2.27):
        # solve in float32, and the result comes back in float32.
        joints = joints.float()
    batch = joints.shape[0]
    if betas is None:
        betas = torch.zeros(batch, NUM_BETAS, dtype=joints.dtype, device=joints.device)
    elif not isinstance(betas, torch.Tensor) or betas.shape != (batch, NUM_BETAS):
        shape = tuple(betas.shape) if isinstance(betas, torch.Tensor) else type(betas).__name__
        raise ValueError(f"betas must be ({batch},{NUM_BETAS}), got {shape}")
    betas = betas.to(joints.dtype) if betas.dtype in (torch.float16, torch.bfloat16) else betas
    valid = torch.isfinite(joints).all(-1)
    if confidence is not None:
        if not isinstance(confidence, torch.Tensor):
            try:
                confidence = torch.as_tensor(confidence, dtype=joints.dtype, device=joints.device)
            except (TypeError, ValueError, RuntimeError) as exc:
                raise TypeError(
                    f"confidence must be a (B,J) tensor or array of numbers, got "
                    f"{type(confidence).__name__} ({exc})"
                ) from None
        if confidence.ndim == 1 and joints.shape[0] == 1:
            confidence = confidence[None]
        if confidence.shape != joints.shape[:2]:
            raise ValueError(
                f"confidence must be {tuple(joints.shape[:2])}, got {tuple(confidence.shape)}"
            )
        valid = valid & (confidence >= min_confidence)
    return fmt, joints, betas, valid


def _check_body_and_prev(body, prev) -> None:
    """TypeError naming the argument, instead of an AttributeError deep in the solver."""
    # Duck-typed (wrappers of a BodyModel are fine): DIK reads the rest skeleton and dtype.
    if not all(hasattr(body, a) for a in ("rest_joints", "rest_points", "dtype", "device")):
        raise TypeError(
            f"body must be a BodyModel (e.g. load_body_model('s2m-free')), got "
            f"{type(body).__name__}"
        )
    if prev is not None and not isinstance(prev, DIKResult):
        raise TypeError(f"prev must be the previous frame's DIKResult or None, got "
                        f"{type(prev).__name__}")  # fmt: skip


def solve(
    joints: torch.Tensor,
    fmt,
    body,
    betas: torch.Tensor | None = None,
    confidence: torch.Tensor | None = None,
    prev: DIKResult | None = None,
    min_confidence: float = 0.3,
    hinge_prior: bool = True,
) -> DIKResult:
    """Solve SMPL-layout rotations for a 3D skeleton.

    Args:
        joints: (B,J,3) or (J,3) joint positions in metres, in format ``fmt``, any right-handed
            frame (e.g. the camera frame: x right, y down, z forward). NaN marks a missing joint.
        fmt: a registered format name (``"h36m17"``, ``"smpl24"``, ``"coco17"``, ...) or object.
        body: the :class:`~s2m_model.body.BodyModel` whose rest skeleton defines zero rotation.
        betas: (B,10) body shape; zeros by default.
        confidence: (B,J) in [0,1]; joints below ``min_confidence`` count as missing.
        prev: the previous frame's result (temporal fallback for straight limbs).
        hinge_prior: False gives the swing-only baseline (limbs as two independent minimal
            swings; the limb twist is inherited from the parent instead of the limb plane).

    Returns:
        :class:`DIKResult`. Rotations the skeleton cannot determine (feet, hands, and the
        joints whose inputs are missing) are identity with ``solved`` False.
    """
    _check_body_and_prev(body, prev)
    fmt, joints, betas, valid = validate_inputs(joints, fmt, betas, confidence, min_confidence)
    roles = format_roles(fmt)
    needed = ("pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_shoulder",
              "right_shoulder", "left_elbow", "right_elbow")  # fmt: skip
    lacking = [n for n in needed if n not in roles]
    if lacking:
        raise ValueError(f"format '{fmt.name}' lacks joints DIK needs: {lacking}")
    batch = joints.shape[0]
    dtype = joints.dtype
    body_betas = betas.to(body.dtype)
    rest = rest_points(body, fmt, body_betas).to(dtype)
    clean = torch.where(valid[..., None], joints, torch.zeros_like(joints))
    prev_world = None
    if prev is not None and prev.rotmats is not None and prev.rotmats.shape[0] == batch:
        prev_world = world_from_local(prev.rotmats.to(dtype))
    rest_joints = body.rest_joints(body_betas).to(dtype)
    s = _Solver(clean, rest, roles, valid, prev_world, rest_joints, hinge=hinge_prior)

    # Root: hip line + the direction to the next spine point.
    up = "spine1" if s.has("spine1", "spine2", "spine3") else "thorax"
    s.frame_joint(0, ("right_hip", "left_hip"), ("pelvis", up))
    pelvis_t, pelvis_r = s.pt("pelvis")
    j0 = rest_joints[:, 0]
    s.root_pos = pelvis_t - bmv(s.world[0], pelvis_r - j0)
    for side in ("left", "right"):
        s.hinge_limb(
            J[f"{side}_hip"], J[f"{side}_knee"], f"{side}_hip", f"{side}_knee", f"{side}_ankle"
        )
    # Spine.
    if s.has("spine1", "spine2", "spine3", "neck", "left_collar", "right_collar"):
        s.swing_joint(J["spine1"], ("spine1", "spine2"))
        s.swing_joint(J["spine2"], ("spine2", "spine3"))
        s.frame_joint(J["spine3"], ("spine3", "neck"), ("right_collar", "left_collar"))
    else:
        s.spine_chain()
    # Ankles from foot points.
    for side in ("left", "right"):
        ankle = J[f"{side}_ankle"]
        if s.has(f"{side}_heel", f"{side}_toe", f"{side}_knee"):
            s.frame_joint(ankle, (f"{side}_heel", f"{side}_toe"), (f"{side}_ankle", f"{side}_knee"))
        elif s.has(f"{side}_foot"):
            s.swing_joint(ankle, (f"{side}_ankle", f"{side}_foot"))
    # Neck and head.
    _solve_head(s)
    # Collars, arms, wrists.
    for side in ("left", "right"):
        s.aim_joint(J[f"{side}_collar"], f"{side}_shoulder")
        s.hinge_limb(
            J[f"{side}_shoulder"],
            J[f"{side}_elbow"],
            f"{side}_shoulder",
            f"{side}_elbow",
            f"{side}_wrist",
            centred=True,
        )
        wrist = J[f"{side}_wrist"]
        if s.has(f"{side}_index", f"{side}_pinky", f"{side}_wrist"):
            s.frame_joint(
                wrist, (f"{side}_wrist", f"{side}_hand"), (f"{side}_pinky", f"{side}_index")
            )
        elif s.has(f"{side}_hand"):
            s.swing_joint(wrist, (f"{side}_wrist", f"{side}_hand"))

    local, proper = proper_or_identity(torch.stack(s.local, 1))
    rotvec = rotmat_to_rotvec(local)
    transl = s.root_pos - rest_joints[:, 0]
    return DIKResult(
        global_orient=rotvec[:, 0],
        body_pose=rotvec[:, 1:],
        solved=torch.stack(s.solved, 1) & proper,
        transl=transl,
        quality={"degenerate": torch.stack(s.degenerate, 1) | ~proper,
                 "missing": torch.stack(s.missing, 1)},  # fmt: skip
        rotmats=local,
    )


def proper_or_identity(rot: torch.Tensor, tol: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """Safety net for degenerate input: ``(rot', proper)`` where ``proper`` (...,) is True for
    matrices that are rotations (orthonormal within ``tol``, det +1, finite) and ``rot'`` is
    ``rot`` there and identity elsewhere. So no non-rotation is ever returned as solved.
    No data-dependent control flow (exportable)."""
    eye = torch.eye(3, dtype=rot.dtype, device=rot.device)
    ortho = (rot.transpose(-1, -2) @ rot - eye).abs().amax((-2, -1))
    det = (torch.cross(rot[..., 0], rot[..., 1], dim=-1) * rot[..., 2]).sum(-1)
    proper = (ortho < tol) & ((det - 1.0).abs() < tol)  # NaN compares False: not proper
    return torch.where(proper[..., None, None], rot, eye), proper


def _solve_head(s: _Solver) -> None:
    """Neck and head. The head's orientation comes from points on the head (ears + nose, or
    nose + head top); the neck/head split is invisible, so the neck is swung until the head's
    top point lands on the target while the head keeps that orientation."""
    neck, head = J["neck"], J["head"]
    if s.has("left_ear", "right_ear", "nose"):
        s.roles["ears_mid"] = s.roles["left_ear"] + s.roles["right_ear"]
        top, primary, secondary = "ears_mid", ("right_ear", "left_ear"), ("ears_mid", "nose")
    elif s.has("head_top", "nose"):
        top, primary, secondary = "head_top", ("nose", "head_top"), ("thorax", "nose")
    elif s.has("head", "head_top", "thorax"):
        # Direction-based (not aimed from the posed neck): mocap skeletons place their neck
        # a few cm below SMPL's, and aiming at their head point would bend the neck backwards.
        s.swing_joint(neck, ("thorax", "head"))
        s.swing_joint(head, ("head", "head_top"))
        return
    elif s.has("neck", "head"):
        s.swing_joint(neck, ("neck", "head"))  # smpl24, mocap: the neck bone only
        return
    else:
        return
    if not s.has("thorax", *primary, *secondary):
        return
    p_t, p_r, ok_p = s.vec(*primary)
    f_t, f_r, ok_f = s.vec(*secondary)
    world = frame(p_t, f_t) @ frame(p_r, f_r).transpose(-1, -2)
    # Head points on one line (or coincident) fix no orientation: Gram-Schmidt would give a
    # singular "rotation" (det 0), so such heads stay unsolved and flagged degenerate.
    spread_ok = norm(perp(unit(f_t), unit(p_t)))[..., 0] > MIN_FRAME_SPREAD
    well_posed = ok_p & ok_f & spread_ok
    use = s.ok(top, *primary, *secondary) & s.solved[J["spine3"]] & well_posed
    s.degenerate[neck] = s.degenerate[head] = ~well_posed
    s.spread((neck, head), world, use)
    top_t, top_r = s.pt(top)
    jr = s.rest_joints
    reach = top_t - s.pos(neck) - bmv(world, top_r - jr[:, head])
    w_neck = s.world[neck]
    w_neck = swing(bmv(w_neck, jr[:, head] - jr[:, neck]), reach) @ w_neck
    s.set_world(neck, w_neck, use)
    s.set_world(head, world, use)


# Old private names, kept for callers outside this module that have not switched yet; use
# ``rest_points`` and ``s2m_model.smpl_layout.world_from_local``.
_rest_points = rest_points
_world_from_local = world_from_local


class DIKModule(torch.nn.Module):
    """:func:`solve` as a module for ONNX/TensorRT export: fixed format and body.

    ``forward(joints (B,J,3), betas (B,10))`` -> ``(global_orient (B,3), body_pose (B,23,3),
    transl (B,3), solved (B,24) float)``; with ``with_body=True`` also ``vertices (B,V,3)`` and
    ``body_joints (B,24,3)`` so skeleton -> mesh is one engine.
    """

    def __init__(self, body, fmt: str = "h36m17", with_body: bool = False) -> None:
        super().__init__()
        self.body = body
        self.fmt = fmt
        self.with_body = with_body

    def forward(self, joints: torch.Tensor, betas: torch.Tensor):
        r = solve(joints, self.fmt, self.body, betas=betas)
        outputs = (r.global_orient, r.body_pose, r.transl, r.solved.to(joints.dtype))
        if not self.with_body:
            return outputs
        out = self.body(
            betas=betas, global_orient=r.global_orient, body_pose=r.body_pose, transl=r.transl
        )
        return outputs + (out.vertices, out.joints)
