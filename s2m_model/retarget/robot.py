"""Robot models for retargeting: an MJCF or URDF file loaded through MuJoCo, checked against
its mapping table.

Both formats go through ``mujoco.MjSpec`` (MuJoCo's own URDF import), so the IK
(:mod:`s2m_model.retarget.solver`, mink on MuJoCo) sees one kind of model. A URDF gets a free
joint on its root link (URDF has no floating base); MJCF models are expected to have one (it
is added when missing). Offset rows and ``sites`` of the table become MuJoCo sites named
``s2m_<joint>`` / ``<site>``.

Frames: MuJoCo world, z up, x forward, y left (REP-103), metres; joint angles in radians.
``q`` everywhere in this package is the ``(dof,)`` vector of the robot's 1-DoF joints (hinge /
slide) in model order, without the floating base; the base pose is ``root_pos (3,)`` +
``root_quat (4,)`` (w, x, y, z, MuJoCo's order).

The default robot, the Unitree G1, is read from the installed ``mjlab`` wheel (found with
``importlib.util.find_spec``, which does not import mjlab and its heavy dependencies).
"""

from __future__ import annotations

import importlib.util
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from pathlib import Path

import mujoco
import numpy as np

from s2m_model.retarget.mapping import (
    BUILTIN_ROBOTS,
    MappingTable,
    builtin_table,
    load_table,
)

_HINGE = int(mujoco.mjtJoint.mjJNT_HINGE)
_SLIDE = int(mujoco.mjtJoint.mjJNT_SLIDE)
_FREE = int(mujoco.mjtJoint.mjJNT_FREE)


def package_file(package: str, path: str) -> Path:
    """``path`` inside the installed Python package ``package`` (the package is not imported).

    Raises:
        FileNotFoundError: the package is not installed or lacks the file.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        hint = " (pip install --no-deps mjlab==1.6.0)" if package == "mjlab" else ""
        raise FileNotFoundError(f"the robot model ships in the Python package {package!r}, "
                                f"which is not installed{hint}")  # fmt: skip
    for root in spec.submodule_search_locations:
        candidate = Path(root) / path
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"package {package!r} is installed but has no {path}")


def model_file_of(table: MappingTable) -> Path:
    """The robot model file a table names (resolving ``model.package``)."""
    if table.model_package is not None:
        return package_file(*table.model_package)
    assert table.model_file is not None
    if not table.model_file.is_file():
        raise FileNotFoundError(f"{table.source}: robot model file not found: {table.model_file}")
    return table.model_file


def _urdf_velocity_limits(path: Path) -> dict[str, float]:
    """``joint -> <limit velocity>`` (rad/s or m/s) from a URDF; MuJoCo's import drops them."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ValueError(f"cannot load robot model {path}: not valid XML ({exc})") from None
    out: dict[str, float] = {}
    for joint in root.iter("joint"):
        limit = joint.find("limit")
        if limit is not None and limit.get("velocity") not in (None, ""):
            value = float(limit.get("velocity", "0"))
            if value > 0:
                out[str(joint.get("name"))] = value
    return out


def _names(kind: str, names: list[str], wanted: list[str], source: str) -> None:
    missing = sorted({w for w in wanted if w not in names})
    if missing:
        known = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
        raise ValueError(f"{source}: unknown {kind} name(s) {missing} in the mapping table "
                         f"(the model has: {known})")  # fmt: skip


@dataclass
class Robot:
    """A loaded robot: the MuJoCo model plus what retargeting needs from it.

    Attributes:
        table: its mapping table.
        model: compiled ``mujoco.MjModel`` (with the table's sites added, a free root joint).
        model_file: the file it was loaded from.
        joint_names: ``dof`` names of the 1-DoF joints, model order (the order of ``q``).
        qpos_index / dof_index: where each joint lives in ``qpos`` / ``qvel``.
        lower / upper: ``(dof,)`` position limits (radians or metres; +-inf when unlimited).
        velocity_limit: ``(dof,)`` rad/s (or m/s).
        root_qpos: index of the free joint's 7 qpos entries (position, quaternion w x y z).
    """

    table: MappingTable
    model: mujoco.MjModel
    model_file: Path
    joint_names: tuple[str, ...]
    qpos_index: np.ndarray
    dof_index: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    velocity_limit: np.ndarray
    root_qpos: int
    _data: mujoco.MjData = field(repr=False, default=None)  # type: ignore[assignment]

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def dof(self) -> int:
        return len(self.joint_names)

    def pose(self, angles: dict[str, float]) -> np.ndarray:
        """``(dof,)`` q from ``joint -> angle`` (others 0), clipped into the limits."""
        q = np.zeros(self.dof)
        index = {n: i for i, n in enumerate(self.joint_names)}
        for name, value in angles.items():
            q[index[name]] = value
        return self.clip(q)

    @property
    def tpose(self) -> np.ndarray:
        """``(dof,)`` the pose matching SMPL's zero (T-)pose."""
        return self.pose(self.table.tpose)

    @property
    def neutral(self) -> np.ndarray:
        """``(dof,)`` the posture target / rest pose."""
        return self.pose(self.table.neutral)

    def clip(self, q: np.ndarray) -> np.ndarray:
        """q clipped into the position limits."""
        return np.clip(q, self.lower, self.upper)

    def qpos(self, q: np.ndarray, root_pos=(0.0, 0.0, 0.0), root_quat=(1.0, 0.0, 0.0, 0.0)):
        """Full MuJoCo ``qpos`` (nq,) from joint angles and the base pose."""
        out = self.model.qpos0.copy()
        out[self.root_qpos:self.root_qpos + 3] = root_pos
        out[self.root_qpos + 3:self.root_qpos + 7] = root_quat
        out[self.qpos_index] = q
        return out

    def frame(self, human: str) -> tuple[str, str]:
        """``(name, "body"|"site")`` of the robot frame tracking SMPL joint ``human``."""
        row = self.table.row(human)
        return (row.site, "site") if row.site else (row.robot, "body")

    def forward(self, qpos: np.ndarray) -> mujoco.MjData:
        """Run forward kinematics for ``qpos`` on the robot's scratch data and return it."""
        if self._data is None:
            self._data = mujoco.MjData(self.model)
        self._data.qpos[:] = qpos
        mujoco.mj_kinematics(self.model, self._data)
        return self._data

    def frame_poses(self, qpos: np.ndarray, humans) -> tuple[np.ndarray, np.ndarray]:
        """World ``positions (K,3)`` and ``rotations (K,3,3)`` of the frames tracking ``humans``."""
        data = self.forward(qpos)
        pos, rot = np.zeros((len(humans), 3)), np.zeros((len(humans), 3, 3))
        for k, human in enumerate(humans):
            name, kind = self.frame(human)
            if kind == "site":
                i = self.model.site(name).id
                pos[k], rot[k] = data.site_xpos[i], data.site_xmat[i].reshape(3, 3)
            else:
                i = self.model.body(name).id
                pos[k], rot[k] = data.xpos[i], data.xmat[i].reshape(3, 3)
        return pos, rot

    def site_position(self, qpos: np.ndarray, site: str) -> np.ndarray:
        data = self.forward(qpos)
        return data.site_xpos[self.model.site(site).id].copy()


def _build(table: MappingTable, path: Path) -> Robot:
    source = str(path)
    if not path.is_file():
        raise FileNotFoundError(f"robot model file not found: {path}")
    is_urdf = path.suffix.lower() == ".urdf"
    try:
        spec = mujoco.MjSpec.from_file(str(path))
    except Exception as exc:  # mujoco raises ValueError for parse errors, others for I/O
        raise ValueError(f"cannot load robot model {path}: {exc}") from None
    if is_urdf:
        # Keep fixed links as bodies (so tables can name them) and visual geoms (viewer).
        spec.compiler.fusestatic = False
    bodies = [b.name for b in spec.bodies]
    wanted = [r.robot for r in table.frames] + [b for b, _ in table.sites.values()]
    _names("body", bodies, wanted + ([table.root_body] if table.root_body else []), source)
    root = spec.body(table.root_body) if table.root_body else spec.worldbody.first_body()
    if root is None or root.parent.name != spec.worldbody.name:
        raise ValueError(f"{source}: root body {table.root_body!r} is not a child of the world")
    if not any(int(j.type) == _FREE for j in root.joints):
        root.add_freejoint(name="floating_base_joint")
    for row in table.frames:
        if row.site:
            spec.body(row.robot).add_site(name=row.site, pos=list(row.offset), size=[0.01] * 3)
    for name, (body, offset) in table.sites.items():
        spec.body(body).add_site(name=name, pos=list(offset), size=[0.01] * 3)
    try:
        model = spec.compile()
    except Exception as exc:
        raise ValueError(f"cannot compile robot model {path}: {exc}") from None

    sites = [model.site(i).name for i in range(model.nsite)]
    _names("site", sites, [sole for _, sole in table.feet.values() if sole], source)
    geoms = [model.geom(i).name for i in range(model.ngeom)]
    _names("geom", geoms, [g for a, b in table.collision_pairs for g in (*a, *b)], source)

    free = [j for j in range(model.njnt) if model.jnt_type[j] == _FREE]
    if len(free) != 1:
        raise ValueError(f"{source}: expected one floating base, found {len(free)} free joints")
    joints = [j for j in range(model.njnt) if model.jnt_type[j] in (_HINGE, _SLIDE)]
    other = [model.joint(j).name for j in range(model.njnt)
             if model.jnt_type[j] not in (_HINGE, _SLIDE, _FREE)]  # fmt: skip
    if other:
        raise ValueError(f"{source}: ball joints are not supported for retargeting: {other}")
    names = [model.joint(j).name for j in joints]
    _names("joint", names, [*table.tpose, *table.neutral], source)
    lower = np.where(model.jnt_limited[joints] > 0, model.jnt_range[joints, 0], -np.inf)
    upper = np.where(model.jnt_limited[joints] > 0, model.jnt_range[joints, 1], np.inf)
    urdf_vel = _urdf_velocity_limits(path) if is_urdf else {}
    velocity = []
    for name in names:
        v = table.velocity_limit(name)
        v = urdf_vel.get(name) if v is None else v
        if v is None:
            raise ValueError(f"{source}: no velocity limit for joint {name!r} (add a "
                             "velocity_limits row to the mapping table)")  # fmt: skip
        velocity.append(v)
    return Robot(
        table=replace(table, model_file=path), model=model, model_file=path,
        joint_names=tuple(names), qpos_index=model.jnt_qposadr[joints].copy(),
        dof_index=model.jnt_dofadr[joints].copy(), lower=lower, upper=upper,
        velocity_limit=np.asarray(velocity, dtype=np.float64),
        root_qpos=int(model.jnt_qposadr[free[0]]),
    )  # fmt: skip


def _matching_builtin(path: Path) -> MappingTable | None:
    """A shipped table whose robot bodies all exist in the model at ``path``."""
    try:
        spec = mujoco.MjSpec.from_file(str(path))
    except Exception as exc:
        raise ValueError(f"cannot load robot model {path}: {exc}") from None
    bodies = {b.name for b in spec.bodies}
    for name in BUILTIN_ROBOTS:
        table = builtin_table(name)
        if all(r.robot in bodies for r in table.frames):
            return table
    return None


def load_robot(
    robot: str | os.PathLike[str] = "g1", mapping: str | os.PathLike[str] | None = None
) -> Robot:
    """Load a robot for retargeting.

    Args:
        robot: a shipped robot name (``"g1"``, ``"s2m_humanoid"``) or a path to an MJCF
            (``.xml``) or URDF (``.urdf``) file.
        mapping: mapping table YAML. Default: the shipped table for a name; for a path, the
            shipped table whose body names all exist in the model (e.g. another copy of the
            G1 MJCF), else a ValueError asking for one.

    Raises:
        FileNotFoundError: missing model file / package (e.g. mjlab not installed).
        ValueError: a corrupt model, unknown body/joint/site/geom names in the table, a joint
            without a velocity limit.
    """
    table = load_table(mapping) if mapping is not None else None
    if isinstance(robot, str) and robot in BUILTIN_ROBOTS:
        table = table or builtin_table(robot)
        return _build(table, model_file_of(table))
    path = Path(robot)
    if not path.is_file() and path.suffix.lower() not in (".xml", ".urdf", ".mjcf"):
        raise ValueError(f"unknown robot {str(robot)!r}: use one of {', '.join(BUILTIN_ROBOTS)} "
                         "or a path to an MJCF (.xml) / URDF (.urdf) file")  # fmt: skip
    if not path.is_file():
        raise FileNotFoundError(f"robot model file not found: {path} (or use one of: "
                                f"{', '.join(BUILTIN_ROBOTS)})")  # fmt: skip
    if table is None:
        table = _matching_builtin(path)
        if table is None:
            raise ValueError(f"{path}: no shipped mapping table fits this robot's body names; "
                             "write one (see s2m_model/assets/robots/g1.yaml) and pass it "
                             "with --mapping")  # fmt: skip
    return _build(table, path)
