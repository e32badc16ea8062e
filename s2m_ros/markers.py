"""Body meshes as RViz markers: visualization_msgs/MarkerArray of TRIANGLE_LIST markers.

Two builders of the same message:

* :func:`mesh_markers` — the plain rclpy message. Each triangle corner is a
  geometry_msgs/Point object (rclpy has no array path for sequences of messages), so one SMPL
  body (~13k vertices, ~27k faces, ~80k points) costs 0.3-0.6 s to build and serialise.
* :func:`serialized_mesh_markers` — the same message as CDR bytes for ``Publisher.publish``
  (rclpy publishes ``bytes`` as a serialised message), in milliseconds: rclpy serialises the
  array with a one-triangle placeholder per body, and numpy writes the real points into the
  placeholder's sequence. The sequence is located by serialising twice with different
  placeholder values and comparing the bytes, so no Marker layout is assumed.

Frames: vertices in the header's frame (camera optical frame: x right, y down, z forward),
metres.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from s2m_ros.convert import Msg, check_faces

# A Point is 3 float64 (24 bytes, a multiple of CDR's 8-byte alignment), so resizing a points
# sequence keeps every later field's alignment; alignment counts from the end of the 4-byte
# encapsulation header. A placeholder triangle is 3 points = 9 doubles.
_CDR_HEADER = 4
_DOUBLES_PER_PLACEHOLDER = 9


def mesh_markers(
    vertices: np.ndarray,
    faces: np.ndarray,
    header: Msg,
    track_ids: Sequence[int] | None = None,
    ns: str = "s2m_mesh",
    alpha: float = 0.8,
    lifetime_s: float = 0.5,
) -> Msg:
    """Meshes -> visualization_msgs/MarkerArray for RViz: one TRIANGLE_LIST marker per person.

    The first marker is a DELETEALL for ``ns``, so people who left the view disappear; markers
    also expire after ``lifetime_s`` when the node stops publishing. Colours follow the track id
    (matplotlib's tab10). Bodies with non-finite vertices are skipped. Slow for whole bodies
    (see the module docstring): the node publishes :func:`serialized_mesh_markers`.

    Args:
        vertices: ``(N, V, 3)`` or ``(V, 3)`` metres, header frame.
        faces: ``(F, 3)`` vertex indices.
        header: frame and stamp of the vertices.
        track_ids: N ids used as marker ids and for colours (default 0..N-1).

    Raises:
        ValueError: wrong shapes, bad face indices, or ``len(track_ids) != N``.
    """
    from builtin_interfaces.msg import Duration
    from geometry_msgs.msg import Point
    from matplotlib import colormaps
    from std_msgs.msg import ColorRGBA
    from visualization_msgs.msg import Marker, MarkerArray

    v, f, ids = _check(vertices, faces, track_ids)
    palette = colormaps["tab10"]
    lifetime = Duration(sec=int(lifetime_s), nanosec=int(round((lifetime_s % 1) * 1e9)))
    markers = [Marker(header=header, ns=ns, action=Marker.DELETEALL)]
    for tid, verts in zip(ids, v, strict=True):
        if not np.isfinite(verts).all():
            continue  # a broken mesh is skipped rather than sent to RViz as NaN
        r, g, b, _ = palette(tid % 10)
        m = Marker(header=header, ns=ns, id=tid, type=Marker.TRIANGLE_LIST, action=Marker.ADD)
        m.pose.orientation.w = 1.0
        m.scale.x = m.scale.y = m.scale.z = 1.0
        m.color = ColorRGBA(r=float(r), g=float(g), b=float(b), a=float(alpha))
        m.lifetime = lifetime
        m.points = [Point(x=x, y=y, z=z) for x, y, z in verts[f.reshape(-1)].tolist()]
        markers.append(m)
    return MarkerArray(markers=markers)


def serialized_mesh_markers(
    vertices: np.ndarray,
    faces: np.ndarray,
    header: Msg,
    track_ids: Sequence[int] | None = None,
    **kwargs: Any,
) -> bytes:
    """:func:`mesh_markers` as serialised CDR bytes, built in milliseconds.

    Args:
        vertices: ``(N, V, 3)`` or ``(V, 3)`` metres, header frame. faces: ``(F, 3)`` indices.
        header: frame and stamp. track_ids: N marker ids (default 0..N-1).
        kwargs: ``ns``, ``alpha``, ``lifetime_s`` of :func:`mesh_markers`.

    Returns:
        The bytes ``serialize_message(mesh_markers(...))`` would give, for
        ``Publisher.publish``.

    Raises:
        ValueError: as :func:`mesh_markers`.
    """
    from rclpy.serialization import serialize_message

    v, f, ids = _check(vertices, faces, track_ids)
    keep = [k for k in range(len(v)) if np.isfinite(v[k]).all()]
    ids = [ids[k] for k in keep]
    placeholder = np.zeros((len(keep), 1, 3))
    one_face = np.zeros((1, 3), np.int64)
    zeros = serialize_message(mesh_markers(placeholder, one_face, header, ids, **kwargs))
    ones = serialize_message(mesh_markers(placeholder + 1.0, one_face, header, ids, **kwargs))
    points = [v[k][f.reshape(-1)] for k in keep]
    return _splice(zeros, ones, points)


def _splice(zeros: bytes, ones: bytes, points: Sequence[np.ndarray]) -> bytes:
    """Put ``points[k]`` (``(P_k, 3)``) into the k-th placeholder points sequence of two
    serialisations that differ only in their placeholder values (0.0 vs 1.0).

    CDR padding bytes are not initialised by rclpy, so the two byte strings may also differ
    there: placeholders are found as whole 8-byte-aligned doubles that are exactly 0.0 in one
    and 1.0 in the other (runs of 9 per placeholder triangle), and a sequence length as the
    uint32 3 in both.
    """
    if len(zeros) != len(ones):  # pragma: no cover - only the point values differ
        raise RuntimeError("placeholder MarkerArrays serialised to different lengths")
    n = (len(zeros) - _CDR_HEADER) // 8
    a = np.frombuffer(zeros, "<f8", count=n, offset=_CDR_HEADER)
    b = np.frombuffer(ones, "<f8", count=n, offset=_CDR_HEADER)
    slots = np.flatnonzero((a == 0.0) & (b == 1.0))
    runs = np.split(slots, np.flatnonzero(np.diff(slots) != 1) + 1) if len(slots) else []
    if [len(r) for r in runs] != [_DOUBLES_PER_PLACEHOLDER] * len(points):  # pragma: no cover
        raise RuntimeError(f"placeholder points not found ({[len(r) for r in runs]} doubles)")
    three = struct.pack("<I", 3)
    pieces, pos = [], 0
    for run, pts in zip(runs, points, strict=True):
        start = _CDR_HEADER + 8 * int(run[0])
        # the uint32 length precedes the points, directly or after 4 bytes of padding
        direct = zeros[start - 4 : start] == ones[start - 4 : start] == three
        count_at = start - 4 if direct else start - 8
        if not zeros[count_at : count_at + 4] == ones[count_at : count_at + 4] == three:
            raise RuntimeError("points sequence length not found")  # pragma: no cover
        pieces += [zeros[pos:count_at], struct.pack("<I", len(pts)), zeros[count_at + 4 : start]]
        pieces.append(np.ascontiguousarray(pts, dtype="<f8").tobytes())
        pos = start + _DOUBLES_PER_PLACEHOLDER * 8
    pieces.append(zeros[pos:])
    return b"".join(pieces)


def _check(
    vertices: np.ndarray, faces: np.ndarray, track_ids: Sequence[int] | None
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim == 2:
        v = v[None]
    if v.ndim != 3 or v.shape[2] != 3:
        raise ValueError(f"vertices: expected (N, V, 3) or (V, 3), got {v.shape}")
    f = check_faces(faces, v.shape[1]).astype(np.int64)
    ids = list(range(len(v))) if track_ids is None else [int(t) for t in track_ids]
    if len(ids) != len(v):
        raise ValueError(f"{len(ids)} track_ids for {len(v)} bodies")
    return v, f, ids
