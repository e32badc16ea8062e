"""BVH motion capture loading: ``.bvh``, ``.bvh.xz`` / ``.bvh.gz`` and Bandai-Namco ``tar.xz``.

Hand-written because the PyPI parsers are too slow or too narrow for our data: ``bvhio`` 1.5.4
needs ~1.6 s per 1901-frame Bandai clip (per-frame Python loop), ``pybvh`` 0.9.0 rejects
position channels on non-root joints (every Bandai joint has them). Here the frame block is
parsed by numpy in one call, Euler angles go through scipy, and forward kinematics is
vectorised over frames (~0.1 s for that clip, positions equal to bvhio to 1e-6 m).

Conventions:

- Positions are in **metres** in the BVH world frame. Both supported datasets are Y-up with
  the actor's left on +X when facing +Z (SMPL's body frame); other files keep their own axes.
- Rotation channels are intrinsic Euler angles in degrees in the order the ``CHANNELS`` line
  lists them (``Zrotation Xrotation Yrotation`` -> ``R = Rz @ Rx @ Ry``), mapping child-local
  vectors into the parent frame.
- Position channels *replace* the matching ``OFFSET`` components (the usual reading; in Bandai
  files the non-root position channels repeat the offsets, so adding them would double bones).
"""

from __future__ import annotations

import fnmatch
import gzip
import io
import json
import lzma
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

import numpy as np
from scipy.spatial.transform import Rotation

from s2m_model.skeletons import get_format
from s2m_model.skeletons.formats import BANDAI_BVH_PARENTS, CMU_BVH_PARENTS

BANDAI_HEAD_TOP_M = 0.18
"""Length (m) of the synthetic Bandai ``head_top`` beyond the ``Head`` joint.

Bandai's Head joint sits 6.5 cm above the neck base and its End Site has zero offset. Adult
vertex height above the neck base is ~0.25 m, so the head bone is extended by 0.18 m along its
own axis (the Neck->Head direction expressed in the Head frame, so it follows nods and tilts).
Then Neck -> head_top is 0.245 m, like Human3.6M's Thorax -> Head (~0.24 m), and the Bandai
actors stand ~1.56 m tall (head top above the floor).
"""

CMU_UNIT_M = (1.0 / 0.45) * 2.54 / 100.0
"""One CMU ASF/BVH length unit in metres (``(1/0.45)`` inches, mocap.cs.cmu.edu FAQ)."""

_XZ_MAGIC = b"\xfd7zXZ\x00"
_GZ_MAGIC = b"\x1f\x8b"
_POS = {"Xposition": 0, "Yposition": 1, "Zposition": 2}
_ROT = {"Xrotation": "X", "Yrotation": "Y", "Zrotation": "Z"}


@dataclass
class Motion:
    """One BVH clip after forward kinematics.

    Attributes:
        joint_names: ``J`` joint names in file order (depth first), plus ``head_top`` where
            the loader adds it (see :func:`load_bvh`).
        parents: ``J`` parent indices, ``-1`` for the root.
        offsets: ``(J, 3)`` rest offsets from the parent, metres, in the parent's frame.
        fps: frames per second, ``1 / Frame Time`` (snapped to an integer within 0.01).
        positions: ``(T, J, 3)`` joint positions, metres, BVH world frame.
        rotations: ``(T, J, 3, 3)`` local rotations (child frame -> parent frame).
        root_translation: ``(T, 3)`` world position of the pelvis (the joint a recognised
            format maps to SMPL ``pelvis``; the BVH root otherwise), metres.
        format: ``"bandai27"`` / ``"cmu31"`` when the hierarchy is recognised, else ``None``.
        scale: the factor that converted file units to metres.
        source: where the clip came from (path or ``archive:member``), for messages.
        synthetic: names of joints not measured but extrapolated (Bandai ``head_top``).
    """

    joint_names: tuple[str, ...]
    parents: tuple[int, ...]
    offsets: np.ndarray
    fps: float
    positions: np.ndarray
    rotations: np.ndarray
    root_translation: np.ndarray
    format: str | None
    scale: float
    source: str = ""
    synthetic: tuple[str, ...] = field(default=())

    @property
    def num_frames(self) -> int:
        """Number of frames ``T``."""
        return int(self.positions.shape[0])

    def global_rotations(self) -> np.ndarray:
        """``(T, J, 3, 3)`` joint orientations in the world frame (joint frame -> world)."""
        out = np.empty_like(self.rotations)
        for j, p in enumerate(self.parents):
            out[:, j] = self.rotations[:, j] if p < 0 else out[:, p] @ self.rotations[:, j]
        return out

    def positions_as(self, target: str) -> np.ndarray:
        """``(T, J_target, 3)`` positions in another skeleton format, e.g. ``"h36m17"``.

        Raises ValueError if the clip's format is unknown or has no map to ``target``.
        """
        if self.format is None:
            raise ValueError(f"{self.source}: unrecognised skeleton, cannot convert to {target}")
        return get_format(self.format).convert(self.positions, target)


# ------------------------------------------------------------------------------ parsing


@dataclass
class _Node:
    name: str
    parent: int
    offset: np.ndarray
    channels: list[str]
    end_site: np.ndarray | None = None


def _err(source: str, lineno: int, msg: str) -> ValueError:
    return ValueError(f"{source}:{lineno}: {msg}")


def _floats(tokens: list[str], n: int, source: str, lineno: int, what: str) -> np.ndarray:
    if len(tokens) != n:
        raise _err(source, lineno, f"{what} needs {n} numbers, got {len(tokens)}")
    try:
        vals = np.array([float(t) for t in tokens])
    except ValueError:
        raise _err(source, lineno, f"{what} has a non-numeric value: {' '.join(tokens)}") from None
    if not np.isfinite(vals).all():
        raise _err(source, lineno, f"{what} is not finite: {' '.join(tokens)}")
    return vals


def _parse_hierarchy(lines: list[str], source: str) -> tuple[list[_Node], int]:
    """Joints of the HIERARCHY block and the index of the ``MOTION`` line."""
    nodes: list[_Node] = []
    stack: list[int | str] = []  # joint indices, or "end" for an End Site block
    pending: int | str | None = None  # node declared, waiting for its "{"
    started = False
    for i, raw in enumerate(lines):
        tok = raw.split()
        if not tok:
            continue
        key, lineno = tok[0], i + 1
        if not started:
            if key != "HIERARCHY":
                raise _err(source, lineno, f"expected 'HIERARCHY', got {raw.strip()[:40]!r}")
            started = True
        elif key in ("ROOT", "JOINT"):
            if len(tok) < 2:
                raise _err(source, lineno, f"{key} without a name")
            if (key == "ROOT") != (not stack):
                raise _err(source, lineno, f"{key} in the wrong place (one ROOT, then JOINTs)")
            if stack and stack[-1] == "end":
                raise _err(source, lineno, "JOINT inside an End Site")
            parent = stack[-1] if stack else -1
            assert isinstance(parent, int)
            nodes.append(_Node(" ".join(tok[1:]), parent, np.zeros(3), []))
            pending = len(nodes) - 1
        elif key == "End":
            if not stack or stack[-1] == "end":
                raise _err(source, lineno, "End Site outside a joint")
            pending = "end"
        elif key == "{":
            if pending is None:
                raise _err(source, lineno, "'{' without a ROOT/JOINT/End Site")
            stack.append(pending)
            pending = None
        elif key == "}":
            if not stack:
                raise _err(source, lineno, "unbalanced '}'")
            stack.pop()
        elif key == "OFFSET":
            if not stack:
                raise _err(source, lineno, "OFFSET outside a joint")
            off = _floats(tok[1:], 3, source, lineno, "OFFSET")
            top = stack[-1]
            if top == "end":
                parent_joint = stack[-2]
                assert isinstance(parent_joint, int)
                nodes[parent_joint].end_site = off
            else:
                assert isinstance(top, int)
                nodes[top].offset = off
        elif key == "CHANNELS":
            if not stack or stack[-1] == "end":
                raise _err(source, lineno, "CHANNELS outside a joint")
            try:
                n = int(tok[1])
            except (IndexError, ValueError):
                raise _err(source, lineno, "CHANNELS needs a count") from None
            chans = tok[2:]
            if len(chans) != n or any(c not in _POS and c not in _ROT for c in chans):
                raise _err(source, lineno, f"bad CHANNELS line: {raw.strip()}")
            top = stack[-1]
            assert isinstance(top, int)
            nodes[top].channels = chans
        elif key == "MOTION":
            if stack or pending is not None or not nodes:
                raise _err(source, lineno, "MOTION before the hierarchy is complete")
            return nodes, i
        else:
            raise _err(source, lineno, f"unexpected {key!r} in HIERARCHY")
    raise ValueError(f"{source}: no MOTION section (file truncated?)")


def _header_value(line: str, key: str, source: str, lineno: int) -> float:
    head, _, value = line.partition(":")
    if head.strip().lower() != key.lower() or not value.strip():
        raise _err(source, lineno, f"expected '{key}: <number>', got {line.strip()[:40]!r}")
    try:
        return float(value)
    except ValueError:
        raise _err(source, lineno, f"bad {key} value {value.strip()!r}") from None


def _parse_frames(
    lines: list[str], start: int, n_frames: int, n_chan: int, source: str
) -> np.ndarray:
    """``(T, C)`` channel values of the frame lines ``lines[start:]``."""
    body = lines[start:]
    while body and not body[-1].strip():
        body.pop()
    if len(body) != n_frames:
        last = start + len(body)
        raise _err(
            source, last, f"header says {n_frames} frames but {len(body)} frame lines follow"
            + (" (file truncated?)" if len(body) < n_frames else "")
        )
    if n_chan == 0:
        return np.zeros((n_frames, 0))
    try:
        # One C-level parse of the whole block; the slow per-line scan only runs on errors.
        data = np.loadtxt(io.StringIO("\n".join(body)), dtype=np.float64, ndmin=2)
        ok = data.shape == (n_frames, n_chan) and bool(np.isfinite(data).all())
    except ValueError:
        ok = False
    if ok:
        return data
    for k, line in enumerate(body):
        tok = line.split()
        _floats(tok, n_chan, source, start + k + 1, f"frame {k}")
    raise _err(source, start + 1, "malformed frame block")


def _detect(nodes: list[_Node]) -> str | None:
    names = [n.name for n in nodes]
    for fmt, table in (("bandai27", BANDAI_BVH_PARENTS), ("cmu31", CMU_BVH_PARENTS)):
        if names == list(table) and all(
            (n.parent == -1 and table[n.name] is None)
            or (n.parent >= 0 and table[n.name] == names[n.parent])
            for n in nodes
        ):
            return fmt
    return None


def _auto_scale(fmt: str | None, nodes: list[_Node]) -> float:
    """File units -> metres for a recognised format; a size-based guess otherwise."""
    names = [n.name for n in nodes]
    if fmt == "bandai27":
        return 0.01  # dataset README: centimetres
    if fmt == "cmu31":
        # Raw cgspeed files are in CMU units (shin ~7 units), the ``scaled_`` ones in metres.
        shin = np.linalg.norm(nodes[names.index("LeftAnkle")].offset)
        return CMU_UNIT_M if shin > 2.0 else 1.0
    # Unknown skeleton: pick m / cm / mm so that the longest root-to-leaf chain is closest to
    # ~0.9 m (pelvis to toe or to head top on an adult).
    length = np.zeros(len(nodes))
    for j, n in enumerate(nodes):
        extra = np.linalg.norm(n.end_site) if n.end_site is not None else 0.0
        length[j] = (length[n.parent] if n.parent >= 0 else 0.0) + np.linalg.norm(n.offset)
        length[j] = max(length[j], length[j] + extra)
    longest = float(length.max()) if len(nodes) else 0.0
    if longest <= 0:
        return 1.0
    candidates = (1.0, 0.01, 0.001)
    return min(candidates, key=lambda s: abs(np.log(longest * s / 0.9)))


def _euler_matrices(angles: np.ndarray, order: str) -> np.ndarray:
    """``(..., k)`` intrinsic Euler angles in degrees, axes ``order`` -> ``(..., 3, 3)``."""
    flat = angles.reshape(-1, len(order))
    mats = Rotation.from_euler(order, flat, degrees=True).as_matrix()
    return mats.reshape(*angles.shape[:-1], 3, 3)


def _parse_bvh_text(text: str, source: str, scale: float | None, head_top: bool) -> Motion:
    lines = text.splitlines()
    nodes, motion_idx = _parse_hierarchy(lines, source)
    # "Frames:" and "Frame Time:" follow MOTION (blank lines tolerated).
    k = motion_idx + 1
    header: list[tuple[int, str]] = []
    while k < len(lines) and len(header) < 2:
        if lines[k].strip():
            header.append((k, lines[k]))
        k += 1
    if len(header) < 2:
        raise ValueError(f"{source}: MOTION section lacks 'Frames:' / 'Frame Time:' lines")
    frames_f = _header_value(header[0][1], "Frames", source, header[0][0] + 1)
    frame_time = _header_value(header[1][1], "Frame Time", source, header[1][0] + 1)
    if frames_f < 1 or frames_f != int(frames_f):
        raise _err(source, header[0][0] + 1, f"frame count must be a positive integer: {frames_f}")
    if not frame_time > 0 or not np.isfinite(frame_time):
        raise _err(source, header[1][0] + 1, f"frame time must be > 0, got {frame_time}")
    n_frames = int(frames_f)
    n_chan = sum(len(n.channels) for n in nodes)
    data = _parse_frames(lines, k, n_frames, n_chan, source)

    fmt = _detect(nodes)
    if scale is None:
        scale = _auto_scale(fmt, nodes)
    if not (scale > 0 and np.isfinite(scale)):
        raise ValueError(f"{source}: scale must be a positive number, got {scale}")

    J = len(nodes)
    offsets = np.stack([n.offset for n in nodes]) if J else np.zeros((0, 3))
    trans = np.broadcast_to(offsets, (n_frames, J, 3)).copy()
    rot = np.broadcast_to(np.eye(3), (n_frames, J, 3, 3)).copy()
    by_order: dict[str, list[tuple[int, list[int]]]] = {}
    col = 0
    for j, n in enumerate(nodes):
        order, cols = "", []
        for c in n.channels:
            if c in _POS:
                trans[:, j, _POS[c]] = data[:, col]
            else:
                order += _ROT[c]
                cols.append(col)
            col += 1
        if order:
            by_order.setdefault(order, []).append((j, cols))
    for order, items in by_order.items():  # one scipy call per distinct channel order
        joints = [j for j, _ in items]
        angles = data[:, [c for _, cs in items for c in cs]].reshape(n_frames, len(items), -1)
        rot[:, joints] = _euler_matrices(angles, order)

    names = [n.name for n in nodes]
    parents = [n.parent for n in nodes]
    synthetic: tuple[str, ...] = ()
    head = names.index("Head") if "Head" in names else -1
    if head_top and head >= 0 and nodes[head].end_site is not None and "head_top" not in names:
        end = nodes[head].end_site
        assert end is not None
        if np.linalg.norm(end) > 1e-6:
            top_offset = end
        else:
            # Zero-length End Site (Bandai): extend the head bone, see BANDAI_HEAD_TOP_M.
            bone = nodes[head].offset
            direction = bone / np.linalg.norm(bone) if np.linalg.norm(bone) > 1e-9 else [0, 1, 0]
            top_offset = np.asarray(direction) * (BANDAI_HEAD_TOP_M / scale)
            synthetic = ("head_top",)
        names.append("head_top")
        parents.append(head)
        offsets = np.concatenate([offsets, top_offset[None]], axis=0)
        trans = np.concatenate([trans, np.broadcast_to(top_offset, (n_frames, 1, 3))], axis=1)
        rot = np.concatenate([rot, np.broadcast_to(np.eye(3), (n_frames, 1, 3, 3))], axis=1)
    if fmt is not None and tuple(names) != get_format(fmt).joint_names:
        fmt = None  # e.g. head_top=False: the layout no longer matches the registry

    trans *= scale
    glob_r = np.empty_like(rot)
    pos = np.empty_like(trans)
    for j, p in enumerate(parents):  # depth-first file order: parents come first
        if p < 0:
            glob_r[:, j], pos[:, j] = rot[:, j], trans[:, j]
        else:
            glob_r[:, j] = glob_r[:, p] @ rot[:, j]
            pos[:, j] = pos[:, p] + np.einsum("tab,tb->ta", glob_r[:, p], trans[:, j])

    pelvis = 0
    if fmt is not None:
        inv = {v: k for k, v in get_format(fmt).smpl_map.items()}
        pelvis = names.index(inv["pelvis"])
    return Motion(
        joint_names=tuple(names),
        parents=tuple(parents),
        offsets=offsets * scale,
        fps=_fps(frame_time),
        positions=pos,
        rotations=rot,
        root_translation=pos[:, pelvis].copy(),
        format=fmt,
        scale=float(scale),
        source=source,
        synthetic=synthetic,
    )


def _fps(frame_time: float) -> float:
    # Frame Time is printed rounded (".0083333"); snap to the integer rate it stands for.
    fps = 1.0 / frame_time
    return float(round(fps)) if abs(fps - round(fps)) < 0.01 else round(fps, 3)


def _decode(raw: bytes, source: str) -> str:
    try:
        if raw.startswith(_XZ_MAGIC):
            raw = lzma.decompress(raw)
        elif raw.startswith(_GZ_MAGIC):
            raw = gzip.decompress(raw)
    except (lzma.LZMAError, OSError, EOFError) as exc:
        raise ValueError(f"{source}: corrupt compressed stream ({exc})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def load_bvh(
    path_or_fileobj: str | os.PathLike[str] | IO[bytes] | IO[str],
    *,
    scale: float | None = None,
    head_top: bool = True,
) -> Motion:
    """Load a BVH clip and run forward kinematics.

    Args:
        path_or_fileobj: a path (``.bvh``; xz/gzip compression is detected from the content) or
            an open binary/text file object.
        scale: file units -> metres. ``None`` (default) knows the supported datasets (Bandai:
            cm; CMU: CMU units for the raw cgspeed files, metres for ``scaled_*``) and for other
            files picks m/cm/mm from the skeleton's size.
        head_top: append a ``head_top`` joint when a joint named ``Head`` has an End Site: the
            End Site itself, or for a zero-length End Site (Bandai) a synthetic point
            ``BANDAI_HEAD_TOP_M`` beyond the Head along the head bone.

    Returns:
        :class:`Motion`; ``format`` names the registry format when the hierarchy is Bandai's or
        CMU's (then ``positions[..., i, :]`` follows ``get_format(format).joint_names``).

    Raises:
        ValueError: malformed or truncated file (message gives the file and line), bad scale.
        FileNotFoundError: missing path.
    """
    if isinstance(path_or_fileobj, (str, os.PathLike)):
        source = os.fspath(path_or_fileobj)
        raw = Path(source).read_bytes()
        return _parse_bvh_text(_decode(raw, source), source, scale, head_top)
    source = str(getattr(path_or_fileobj, "name", "<stream>"))
    data = path_or_fileobj.read()
    text = _decode(data, source) if isinstance(data, bytes) else data
    return _parse_bvh_text(text, source, scale, head_top)


def iter_bandai_clips(
    archive_path: str | os.PathLike[str], *, pattern: str | None = None
) -> Iterator[tuple[str, Motion, dict[str, Any] | None]]:
    """Stream the clips of a Bandai-Namco ``dataset-N.tar.xz`` without extracting it.

    Args:
        archive_path: ``dataset-1.tar.xz`` or ``dataset-2.tar.xz``.
        pattern: optional glob on the clip name (e.g. ``"*_walk_*"``). Only ``.bvh`` and
            ``.json`` members inside a ``data/`` folder are clips; READMEs etc. are skipped.

    Yields:
        ``(clip_name, motion, labels)`` in archive order of completion, where ``clip_name`` is
        the file stem (``dataset-1_walk_normal_001``) and ``labels`` the parsed companion
        ``.json`` (``{"content": int, "style": int}``), or ``None`` if the clip has none.
        A clip's BVH text is held in memory until its JSON has been read (archive order is
        arbitrary in dataset 1).

    Raises:
        ValueError: unreadable archive or a corrupt clip (names the member).
    """
    archive = os.fspath(archive_path)
    waiting: dict[str, tuple[str, str]] = {}  # stem -> (member name, BVH text) without labels
    labels: dict[str, dict[str, Any]] = {}
    try:
        with tarfile.open(archive, mode="r|xz") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                stem_path = PurePosixPath(member.name)
                stem, suffix = stem_path.stem, stem_path.suffix
                if suffix not in (".bvh", ".json") or "/data/" not in f"/{member.name}":
                    continue
                if pattern is not None and not fnmatch.fnmatchcase(stem, pattern):
                    continue
                fobj = tar.extractfile(member)
                if fobj is None:
                    continue
                raw = fobj.read()
                where = f"{archive}:{member.name}"
                if suffix == ".json":
                    try:
                        labels[stem] = json.loads(raw)
                    except ValueError as exc:
                        raise ValueError(f"{where}: bad label JSON ({exc})") from None
                    if stem in waiting:
                        name, text = waiting.pop(stem)
                        yield stem, _parse_bvh_text(text, name, None, True), labels[stem]
                else:
                    text = _decode(raw, where)
                    if stem in labels:
                        yield stem, _parse_bvh_text(text, where, None, True), labels[stem]
                    else:
                        waiting[stem] = (where, text)
    except (tarfile.TarError, lzma.LZMAError, EOFError) as exc:
        raise ValueError(f"{archive}: unreadable tar.xz archive ({exc})") from None
    for stem, (where, text) in waiting.items():
        yield stem, _parse_bvh_text(text, where, None, True), None
