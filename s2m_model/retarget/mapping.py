"""Human -> robot mapping tables: which robot body follows which SMPL joint, and how hard.

A table is data (YAML, one per robot; the shipped ones are in ``s2m_model/assets/robots``):
the robot model file, the robot's T-pose (the pose matching SMPL's zero pose), a neutral pose,
velocity limits, one row per tracked SMPL joint (robot body, optional point offset in that
body's frame, position / orientation costs), the feet (tracked ankle row + sole site), the
end-effector groups that are scored, and optional self-collision geom pairs. See ``g1.yaml``
for a commented example. Loading checks the table itself (types, SMPL joint names, duplicate
rows); :mod:`s2m_model.retarget.robot` checks it against the robot model (body, joint, site
and geom names).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from s2m_model.smpl_layout import JOINT_INDEX

#: Folder of the shipped robot tables and the s2m_humanoid URDF.
ROBOTS_DIR = Path(__file__).resolve().parents[1] / "assets" / "robots"
#: Names accepted by ``--robot`` / :func:`builtin_table`.
BUILTIN_ROBOTS: tuple[str, ...] = ("g1", "s2m_humanoid")
END_EFFECTOR_GROUPS: tuple[str, ...] = ("hands", "feet", "head")


@dataclass(frozen=True)
class FrameRow:
    """One tracked human joint.

    Attributes:
        human: SMPL joint name (``smpl_layout.JOINT_NAMES``).
        robot: robot body name.
        offset: point in the robot body's frame (metres) that follows the joint, or ``None``
            for the body origin (then the body frame itself is the target frame).
        position: position cost (weight per metre of error).
        orientation: orientation cost (weight per radian of error); 0 = position only.
    """

    human: str
    robot: str
    offset: tuple[float, float, float] | None
    position: float
    orientation: float

    @property
    def site(self) -> str | None:
        """Name of the site added to the model for an ``offset`` row (``None`` otherwise)."""
        return None if self.offset is None else f"s2m_{self.human}"


@dataclass(frozen=True)
class MappingTable:
    """A robot's retargeting table (see the module docstring and ``assets/robots/g1.yaml``).

    Attributes:
        name: robot name.
        model_file: the MJCF (``.xml``) or URDF (``.urdf``) file; ``None`` until resolved.
        model_package: ``(package, path inside it)`` when the model ships in a Python package.
        licence: licence of the robot model files.
        root_body: the floating-base body.
        tpose / neutral: joint name -> angle (radians); joints not listed are 0 (clipped into
            their limits).
        velocity_limits: regex on joint names -> rad/s (first match wins).
        frames: tracked joints, in table order.
        sites: extra sites ``name -> (body, offset)`` added to the model.
        feet: ``"left"/"right" -> (human joint of the tracked ankle row, sole site name)``.
        end_effectors: group (``hands``, ``feet``, ``head``) -> human joint names scored.
        collision_pairs: ``[(geoms_a, geoms_b), ...]`` for self-collision avoidance.
        source: the YAML file it came from.
    """

    name: str
    model_file: Path | None
    model_package: tuple[str, str] | None
    licence: str
    root_body: str
    tpose: dict[str, float]
    neutral: dict[str, float]
    velocity_limits: dict[str, float]
    frames: tuple[FrameRow, ...]
    sites: dict[str, tuple[str, tuple[float, float, float]]] = field(default_factory=dict)
    feet: dict[str, tuple[str, str]] = field(default_factory=dict)
    end_effectors: dict[str, tuple[str, ...]] = field(default_factory=dict)
    collision_pairs: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = ()
    description: str = ""
    source: str = ""

    def row(self, human: str) -> FrameRow:
        """The row tracking SMPL joint ``human`` (KeyError if none)."""
        for r in self.frames:
            if r.human == human:
                return r
        raise KeyError(f"{self.name}: no mapping row for human joint {human!r}")

    def velocity_limit(self, joint: str) -> float | None:
        """rad/s for ``joint`` from the regex table, ``None`` if no pattern matches."""
        for pattern, value in self.velocity_limits.items():
            if re.fullmatch(pattern, joint):
                return value
        return None


def _err(source: str, msg: str) -> ValueError:
    return ValueError(f"{source}: {msg}")


def _vec3(value: Any, source: str, what: str) -> tuple[float, float, float]:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise _err(source, f"{what} must be a list of 3 numbers, got {value!r}") from None
    if len(out) != 3:
        raise _err(source, f"{what} must be a list of 3 numbers, got {value!r}")
    return out  # type: ignore[return-value]


def _angles(value: Any, source: str, what: str) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _err(source, f"{what} must map joint names to angles, got {type(value).__name__}")
    try:
        return {str(k): float(v) for k, v in value.items()}
    except (TypeError, ValueError):
        raise _err(source, f"{what}: angles must be numbers (radians)") from None


def _cost(value: Any, source: str, what: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise _err(source, f"{what} must be a number, got {value!r}") from None
    if not out >= 0.0:
        raise _err(source, f"{what} must be >= 0, got {value!r}")
    return out


def parse_table(data: Any, source: str = "<table>", base_dir: Path | None = None) -> MappingTable:
    """Build a :class:`MappingTable` from parsed YAML (a dict).

    Args:
        data: the parsed table.
        source: name used in error messages.
        base_dir: folder that a relative ``model.file`` is resolved against.

    Raises:
        ValueError: a missing/ill-typed field, an unknown SMPL joint, duplicate rows.
    """
    if not isinstance(data, dict):
        raise _err(source, f"a mapping table must be a YAML mapping, got {type(data).__name__}")
    for key in ("name", "model", "frames"):
        if key not in data:
            raise _err(source, f"missing required key {key!r}")
    model = data["model"]
    model_file: Path | None = None
    package: tuple[str, str] | None = None
    if isinstance(model, str):
        model = {"file": model}
    keys = model.keys() if isinstance(model, dict) else set()
    if not ({"file"} <= keys or {"package", "path"} <= keys):
        raise _err(source, "model must be {file: PATH} or {package: NAME, path: PATH}")
    if "file" in model:
        model_file = Path(os.path.expanduser(str(model["file"])))
        if not model_file.is_absolute() and base_dir is not None:
            model_file = base_dir / model_file
    else:
        package = (str(model["package"]), str(model["path"]))

    rows: list[FrameRow] = []
    seen: set[str] = set()
    if not isinstance(data["frames"], list) or not data["frames"]:
        raise _err(source, "frames must be a non-empty list of rows")
    for i, row in enumerate(data["frames"]):
        what = f"frames[{i}]"
        if not isinstance(row, dict) or "human" not in row or "robot" not in row:
            raise _err(source, f"{what} must have 'human' and 'robot' keys, got {row!r}")
        human = str(row["human"])
        if human not in JOINT_INDEX:
            raise _err(source, f"{what}: unknown SMPL joint {human!r} (known: "
                               f"{', '.join(JOINT_INDEX)})")  # fmt: skip
        if human in seen:
            raise _err(source, f"{what}: SMPL joint {human!r} is mapped twice")
        seen.add(human)
        offset = row.get("offset")
        rows.append(FrameRow(
            human=human, robot=str(row["robot"]),
            offset=None if offset is None else _vec3(offset, source, f"{what}.offset"),
            position=_cost(row.get("position", 1.0), source, f"{what}.position"),
            orientation=_cost(row.get("orientation", 0.0), source, f"{what}.orientation"),
        ))  # fmt: skip
    if "pelvis" not in seen:
        raise _err(source, "the table must map the SMPL 'pelvis' (the root of the scaling tree)")

    sites: dict[str, tuple[str, tuple[float, float, float]]] = {}
    for name, spec in (data.get("sites") or {}).items():
        if not isinstance(spec, dict) or "body" not in spec:
            raise _err(source, f"sites.{name} must be {{body: NAME, offset: [x, y, z]}}")
        sites[str(name)] = (str(spec["body"]), _vec3(spec.get("offset", (0, 0, 0)), source,
                                                     f"sites.{name}.offset"))
    feet: dict[str, tuple[str, str]] = {}
    for side, spec in (data.get("feet") or {}).items():
        if side not in ("left", "right") or not isinstance(spec, dict):
            raise _err(source, f"feet must have 'left'/'right' entries, got {side!r}")
        if spec.get("frame") not in seen:
            raise _err(source, f"feet.{side}.frame must name a mapped human joint, "
                               f"got {spec.get('frame')!r}")  # fmt: skip
        feet[side] = (str(spec["frame"]), str(spec.get("sole", "")))
    effectors: dict[str, tuple[str, ...]] = {}
    for group, joints in (data.get("end_effectors") or {}).items():
        if group not in END_EFFECTOR_GROUPS:
            raise _err(source, f"end_effectors: unknown group {group!r} "
                               f"(known: {', '.join(END_EFFECTOR_GROUPS)})")  # fmt: skip
        missing = [j for j in joints if j not in seen]
        if missing:
            raise _err(source, f"end_effectors.{group}: {missing} are not mapped joints")
        effectors[group] = tuple(str(j) for j in joints)
    pairs = []
    for i, pair in enumerate(data.get("collision_pairs") or []):
        if not (isinstance(pair, list) and len(pair) == 2):
            raise _err(source, f"collision_pairs[{i}] must be [[geoms...], [geoms...]]")
        pairs.append((tuple(str(g) for g in pair[0]), tuple(str(g) for g in pair[1])))
    vel = data.get("velocity_limits") or {}
    if not isinstance(vel, dict):
        raise _err(source, "velocity_limits must map joint-name patterns to rad/s")
    velocity: dict[str, float] = {}
    for pattern, value in vel.items():
        try:
            re.compile(str(pattern))
        except re.error as exc:
            raise _err(source, f"velocity_limits: bad pattern {pattern!r} ({exc})") from None
        v = _cost(value, source, f"velocity_limits[{pattern!r}]")
        if v <= 0:
            raise _err(source, f"velocity_limits[{pattern!r}] must be > 0")
        velocity[str(pattern)] = v
    return MappingTable(
        name=str(data["name"]), model_file=model_file, model_package=package,
        licence=str(data.get("licence", "unknown")), root_body=str(data.get("root_body", "")),
        tpose=_angles(data.get("tpose"), source, "tpose"),
        neutral=_angles(data.get("neutral"), source, "neutral"),
        velocity_limits=velocity, frames=tuple(rows), sites=sites, feet=feet,
        end_effectors=effectors, collision_pairs=tuple(pairs),
        description=str(data.get("description", "")), source=source,
    )  # fmt: skip


def load_table(path: str | os.PathLike[str]) -> MappingTable:
    """Read a mapping table YAML file (see :func:`parse_table`)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"mapping table not found: {p}")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{p}: not valid YAML ({exc})") from None
    return parse_table(data, str(p), p.parent)


def builtin_table(name: str) -> MappingTable:
    """The shipped table of robot ``name`` (one of :data:`BUILTIN_ROBOTS`)."""
    if name not in BUILTIN_ROBOTS:
        raise ValueError(f"unknown robot {name!r}: use one of {', '.join(BUILTIN_ROBOTS)} or a "
                         "path to an MJCF (.xml) / URDF (.urdf) file")  # fmt: skip
    return load_table(ROBOTS_DIR / f"{name}.yaml")
