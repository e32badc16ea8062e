"""Conversions between ROS 2 messages and numpy / s2m records (no cv_bridge, no rclpy node).

Every reader accepts rclpy messages and the dataclasses ``rosbags`` deserialises from bags
(same field names), so the same code serves live topics and recorded bags.

Frames used here:

* camera optical frame (``header.frame_id`` of images and of our outputs for image input):
  x right, y down, z forward, metres;
* SMPL body model frame: Y up, the body faces +Z, its left is +X;
* the per-person TF base frame of :func:`body_to_tf` (REP-103): x forward (the way the person
  faces), y to the person's left, z up along the spine, origin at the pelvis joint.

Quaternions are (x, y, z, w) as in geometry_msgs.
"""

from __future__ import annotations

import array
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from s2m_model.results import PersonResult
from s2m_model.smpl_layout import JOINT_NAMES, NUM_BETAS, NUM_JOINTS, PARENTS, world_from_local

# Encodings accepted by image_to_numpy: name -> (channels, channel order of R, G, B).
IMAGE_ENCODINGS: dict[str, tuple[int, tuple[int, int, int]]] = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, (0, 0, 0)),
}
_DEPTH_ENCODINGS = {"16UC1", "32FC1", "mono16", "16SC1", "32SC1", "64FC1"}

# Base frame (REP-103: x forward, y left, z up) axes written in SMPL model axes (Y up, facing
# +Z, left +X): the columns are x_base = +Z, y_base = +X, z_base = +Y.
BASE_IN_SMPL = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])

Msg = Any  # an rclpy message or a rosbags dataclass with the same fields


# --------------------------------------------------------------------------- helpers


def _u8_buffer(data: Any) -> np.ndarray:
    """``uint8[]`` field data (bytes, array.array, memoryview, numpy, list) as flat uint8."""
    if isinstance(data, (list, tuple)):
        return np.asarray(data, dtype=np.uint8)
    return np.frombuffer(data, dtype=np.uint8)


def _float_array(values: np.ndarray) -> array.array:
    """float32 ``array.array`` for a ``float32[]`` field (rclpy checks lists item by item)."""
    out = array.array("f")
    out.frombytes(np.ascontiguousarray(values, dtype=np.float32).tobytes())
    return out


def _uint_array(values: np.ndarray) -> array.array:
    """uint32 ``array.array`` for an unbounded ``uint32[]`` field."""
    out = array.array("I")
    if out.itemsize != 4:  # pragma: no cover - 'I' is 4 bytes on every supported platform
        raise RuntimeError("array.array('I') is not 32-bit on this platform")
    out.frombytes(np.ascontiguousarray(values, dtype=np.uint32).tobytes())
    return out


def _finite(name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``value`` as float64 of ``shape``; ValueError on another shape or NaN/inf."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return arr


def stamp_to_ns(stamp: Msg) -> int:
    """builtin_interfaces/Time -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def make_header(stamp: Msg | int | None = None, frame_id: str = "") -> Msg:
    """std_msgs/Header from a builtin_interfaces/Time, integer nanoseconds or None (time 0)."""
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    if stamp is None:
        stamp = Time()
    elif isinstance(stamp, (int, np.integer)):
        if stamp < 0:
            raise ValueError(f"stamp must be >= 0 ns, got {stamp}")
        stamp = Time(sec=int(stamp) // 1_000_000_000, nanosec=int(stamp) % 1_000_000_000)
    elif hasattr(stamp, "to_msg"):  # rclpy.time.Time
        stamp = stamp.to_msg()
    return Header(stamp=stamp, frame_id=str(frame_id))


# --------------------------------------------------------------------------- images


def image_to_numpy(msg: Msg, copy: bool = False) -> np.ndarray:
    """sensor_msgs/Image -> ``(H, W, 3)`` uint8 RGB.

    Supports ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8`` (alpha dropped) and ``mono8`` (grey copied
    into the three channels). Rows may be padded (``step > width * channels``).

    Args:
        msg: the image message (rclpy or rosbags).
        copy: always return a fresh array; otherwise an ``rgb8`` image without row padding
            is returned as a view of ``msg.data`` (no copy; read-only when the data is).

    Raises:
        ValueError: unsupported encoding (depth/16-bit images included), zero width or height,
            a step shorter than a row, or a data length other than ``step * height``.
    """
    encoding = str(msg.encoding)
    if encoding not in IMAGE_ENCODINGS:
        if encoding in _DEPTH_ENCODINGS:
            raise ValueError(
                f"image encoding {encoding!r} is a depth/16-bit image; s2m needs a colour or "
                "mono8 image (subscribe to the camera's colour topic)"
            )
        raise ValueError(
            f"unsupported image encoding {encoding!r}; supported: {', '.join(IMAGE_ENCODINGS)} "
            "(convert others e.g. with image_proc)"
        )
    channels, order = IMAGE_ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ValueError(f"empty image: {width}x{height} pixels")
    if step < width * channels:
        raise ValueError(
            f"image step {step} is shorter than a row of {width} {encoding} pixels "
            f"({width * channels} bytes)"
        )
    data = _u8_buffer(msg.data)
    if data.size != step * height:
        kind = "truncated" if data.size < step * height else "oversized"
        raise ValueError(
            f"{kind} image data: {data.size} bytes, expected step * height = {step} * {height} "
            f"= {step * height}"
        )
    pixels = data.reshape(height, step)[:, : width * channels].reshape(height, width, channels)
    if encoding == "rgb8":
        rgb = pixels
    elif channels == 1:
        rgb = np.repeat(pixels, 3, axis=2)
    else:
        rgb = pixels[:, :, list(order)]  # fancy indexing copies: contiguous RGB
    if copy or not rgb.flags.c_contiguous:
        rgb = np.array(rgb, dtype=np.uint8, order="C", copy=True)
    return rgb


def compressed_image_to_numpy(msg: Msg) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg or png) -> ``(H, W, 3)`` uint8 RGB.

    Raises:
        ValueError: empty data, a ``compressedDepth`` image, or bytes that do not decode.
    """
    import cv2

    fmt = str(msg.format)
    if "compresseddepth" in fmt.lower():
        raise ValueError(f"compressed depth images are not supported (format {fmt!r})")
    data = _u8_buffer(msg.data)
    if data.size == 0:
        raise ValueError("empty compressed image data")
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None or bgr.size == 0:
        raise ValueError(f"could not decode the compressed image (format {fmt!r})")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def numpy_to_image(
    arr: np.ndarray, encoding: str = "rgb8", stamp: Msg | int | None = None, frame_id: str = ""
) -> Msg:
    """uint8 pixels -> sensor_msgs/Image in ``encoding`` (no row padding).

    Args:
        arr: ``(H, W, 3)`` RGB for ``rgb8``/``bgr8``; ``(H, W, 4)`` RGBA or ``(H, W, 3)`` RGB
            (alpha 255) for ``rgba8``/``bgra8``; ``(H, W)`` or ``(H, W, 1)`` for ``mono8``.
        encoding: output encoding, one of :data:`IMAGE_ENCODINGS`.
        stamp: builtin_interfaces/Time, integer nanoseconds, or None (time 0).
        frame_id: camera optical frame of the image.

    Raises:
        ValueError: unknown encoding, non-uint8 data, or a shape that does not fit the encoding.
    """
    from sensor_msgs.msg import Image

    if encoding not in IMAGE_ENCODINGS:
        raise ValueError(f"unsupported encoding {encoding!r}; supported: {list(IMAGE_ENCODINGS)}")
    arr = np.asarray(arr)
    if arr.dtype != np.uint8:
        raise ValueError(f"image data must be uint8, got {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"expected a non-empty (H, W[, C]) image, got shape {arr.shape}")
    channels, order = IMAGE_ENCODINGS[encoding]
    c = arr.shape[2]
    if channels == 1:
        if c != 1:
            raise ValueError(f"mono8 needs (H, W) or (H, W, 1) data, got shape {arr.shape}")
        out = arr
    elif channels == 3:
        if c != 3:
            raise ValueError(f"{encoding} needs (H, W, 3) RGB data, got shape {arr.shape}")
        out = arr[:, :, list(order)] if encoding != "rgb8" else arr
    else:
        if c == 3:
            arr = np.concatenate([arr, np.full(arr.shape[:2] + (1,), 255, np.uint8)], axis=2)
        elif c != 4:
            raise ValueError(f"{encoding} needs (H, W, 4) RGBA or (H, W, 3) data, got {arr.shape}")
        out = arr[:, :, [*order, 3]]
    height, width = arr.shape[:2]
    data = array.array("B")
    data.frombytes(np.ascontiguousarray(out).tobytes())
    return Image(
        header=make_header(stamp, frame_id),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=width * channels,
        data=data,
    )


# --------------------------------------------------------------------------- bodies


def person_to_body_msg(result: PersonResult, header: Msg, model: str = "") -> Msg:
    """:class:`PersonResult` -> s2m_ros/Body (see msg/Body.msg for frames and units).

    ``confidence`` None becomes all 1, ``solved`` None all true, ``bbox`` None all 0,
    ``joint_status`` None SOLVED/DEFAULT from ``solved``, ``betas_std`` None all 1 (the prior).

    Raises:
        ValueError: wrong array shapes, NaN/inf values, or a track id outside uint32.
    """
    from geometry_msgs.msg import Point, Quaternion, Vector3

    from s2m_ros.msg import Body

    betas = _finite("betas", result.betas, (NUM_BETAS,))
    _finite("global_orient", result.global_orient, (3,))
    _finite("body_pose", result.body_pose, (NUM_JOINTS - 1, 3))
    transl = _finite("transl", result.transl, (3,))
    joints = _finite("joints", result.joints, (NUM_JOINTS, 3))
    conf = np.ones(NUM_JOINTS) if result.confidence is None else result.confidence
    conf = _finite("confidence", conf, (NUM_JOINTS,))
    solved = np.ones(NUM_JOINTS, bool) if result.solved is None else np.asarray(result.solved)
    if solved.shape != (NUM_JOINTS,):
        raise ValueError(f"solved: expected shape ({NUM_JOINTS},), got {solved.shape}")
    bbox = np.zeros(4) if result.bbox is None else _finite("bbox", result.bbox, (4,))
    status = getattr(result, "joint_status", None)
    status = solved.astype(np.uint8) if status is None else np.asarray(status)
    if status.shape != (NUM_JOINTS,) or not np.isin(status, (0, 1, 2)).all():
        raise ValueError(f"joint_status: expected ({NUM_JOINTS},) values in 0/1/2, got {status}")
    std = getattr(result, "betas_std", None)
    std = _finite("betas_std", np.ones(NUM_BETAS) if std is None else std, (NUM_BETAS,))
    track_id = int(result.track_id)
    if not 0 <= track_id < 2**32:
        raise ValueError(f"track_id {track_id} does not fit uint32")
    quats = np.asarray(result.quaternions, dtype=np.float64)  # (24, 4) xyzw, via roma

    def quat(q: np.ndarray) -> Quaternion:
        return Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3]))

    return Body(
        header=header,
        track_id=track_id,
        model=str(model),
        betas=betas.astype(np.float32),
        global_orient=quat(quats[0]),
        body_pose=[quat(q) for q in quats[1:]],
        transl=Vector3(x=float(transl[0]), y=float(transl[1]), z=float(transl[2])),
        joints=[Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in joints],
        confidence=np.clip(conf, 0.0, 1.0).astype(np.float32),
        solved=[bool(s) for s in solved],
        joint_status=status.astype(np.uint8),
        betas_std=std.astype(np.float32),
        joint_names=list(JOINT_NAMES),
        bbox=bbox.astype(np.float32),
    )


def results_to_body_array(results: Sequence[PersonResult], header: Msg, model: str = "") -> Msg:
    """People of one frame -> s2m_ros/BodyArray (bodies sorted by track id, untracked last)."""
    from s2m_ros.msg import BodyArray

    ordered = sorted(results, key=lambda r: (r.track_id == 0, r.track_id))
    return BodyArray(header=header, bodies=[person_to_body_msg(r, header, model) for r in ordered])


def body_msg_to_arrays(msg: Msg) -> dict[str, Any]:
    """s2m_ros/Body (rclpy or rosbags) -> numpy arrays.

    Returns:
        dict with ``track_id`` (int), ``model`` (str), ``stamp_ns`` (int), ``frame_id`` (str),
        ``betas`` (10,) float32, ``quaternions`` (24, 4) float64 (x, y, z, w; global orient
        then the 23 local rotations), ``transl`` (3,) float64 metres, ``joints`` (24, 3) float64
        metres, ``confidence`` (24,) float32, ``solved`` (24,) bool, ``joint_status`` (24,)
        int8 (0 default, 1 solved, 2 refined), ``betas_std`` (10,) float32, ``joint_names``
        list[str], ``bbox`` (4,) float32 pixels.
    """
    quats = [msg.global_orient, *msg.body_pose]
    return {
        "track_id": int(msg.track_id),
        "model": str(msg.model),
        "stamp_ns": stamp_to_ns(msg.header.stamp),
        "frame_id": str(msg.header.frame_id),
        "betas": np.asarray(msg.betas, dtype=np.float32),
        "quaternions": np.array([[q.x, q.y, q.z, q.w] for q in quats], dtype=np.float64),
        "transl": np.array([msg.transl.x, msg.transl.y, msg.transl.z], dtype=np.float64),
        "joints": np.array([[p.x, p.y, p.z] for p in msg.joints], dtype=np.float64),
        "confidence": np.asarray(msg.confidence, dtype=np.float32),
        "solved": np.asarray(msg.solved, dtype=bool),
        "joint_status": np.asarray(msg.joint_status, dtype=np.int8),
        "betas_std": np.asarray(msg.betas_std, dtype=np.float32),
        "joint_names": [str(n) for n in msg.joint_names],
        "bbox": np.asarray(msg.bbox, dtype=np.float32),
    }


def body_msg_to_person(msg: Msg) -> PersonResult:
    """s2m_ros/Body -> :class:`PersonResult` (axis-angle from the quaternions, via roma)."""
    import roma
    import torch

    a = body_msg_to_arrays(msg)
    rotvec = roma.unitquat_to_rotvec(torch.as_tensor(a["quaternions"])).numpy()
    bbox = a["bbox"] if np.any(a["bbox"]) else None
    return PersonResult(
        betas=a["betas"],
        global_orient=rotvec[0].astype(np.float32),
        body_pose=rotvec[1:].astype(np.float32),
        transl=a["transl"].astype(np.float32),
        joints=a["joints"].astype(np.float32),
        solved=a["solved"],
        joint_status=a["joint_status"],
        betas_std=a["betas_std"],
        confidence=a["confidence"],
        bbox=bbox,
        track_id=a["track_id"],
    )


# --------------------------------------------------------------------------- skeletons


@dataclass(frozen=True)
class SkeletonInput:
    """A decoded s2m_ros/Skeleton3D.

    Attributes:
        format: joint layout name (e.g. ``"h36m17"``).
        positions: ``(J, 3)`` float32 metres in ``frame_id``; missing joints are 0.
        confidences: ``(J,)`` float32 in [0, 1]; 0 for missing (non-finite) joints.
        joint_names: J names, or empty when the message left them to the format.
        track_id: tracker id (0 = untracked).
        stamp_ns: observation time, nanoseconds.
        frame_id: frame of ``positions``.
    """

    format: str
    positions: np.ndarray
    confidences: np.ndarray
    joint_names: tuple[str, ...]
    track_id: int
    stamp_ns: int
    frame_id: str


def skeleton_msg_to_numpy(msg: Msg) -> SkeletonInput:
    """s2m_ros/Skeleton3D -> :class:`SkeletonInput`.

    Non-finite positions are treated as missing joints (position 0, confidence 0), so no NaN
    reaches the solver; confidences are clipped to [0, 1]. ``joint_names`` of a registered
    format are honoured: positions sent in another order, or only some of the joints, are put
    in the format's order (absent joints missing), and ``joint_names`` of the result is then
    the format's.

    Raises:
        ValueError: empty format or skeleton, joint_names/confidences of the wrong length, or
            joint_names that are not the format's (unknown or repeated names).
    """
    fmt = str(msg.format)
    if not fmt:
        raise ValueError("Skeleton3D.format is empty (expected e.g. 'h36m17')")
    positions = np.array([[p.x, p.y, p.z] for p in msg.positions], dtype=np.float64)
    n = len(positions)
    if n == 0:
        raise ValueError("Skeleton3D has no positions")
    names = tuple(str(s) for s in msg.joint_names)
    if names and len(names) != n:
        raise ValueError(f"Skeleton3D has {len(names)} joint_names for {n} positions")
    conf = np.asarray(msg.confidences, dtype=np.float64)
    if conf.size == 0:
        conf = np.ones(n)
    elif conf.shape != (n,):
        raise ValueError(f"Skeleton3D has {conf.size} confidences for {n} positions")
    # beyond float32's range is not finite either once stored as float32 (found by hypothesis)
    in_range = np.abs(positions) <= np.finfo(np.float32).max
    missing = ~in_range.all(axis=1) | ~np.isfinite(conf)
    positions[missing] = 0.0
    conf = np.where(missing, 0.0, np.clip(conf, 0.0, 1.0))
    if names:
        positions, conf, names = _to_format_order(fmt, names, positions, conf)
    return SkeletonInput(
        format=fmt,
        positions=positions.astype(np.float32),
        confidences=conf.astype(np.float32),
        joint_names=names,
        track_id=int(msg.track_id),
        stamp_ns=stamp_to_ns(msg.header.stamp),
        frame_id=str(msg.header.frame_id),
    )


def _to_format_order(
    fmt: str, names: tuple[str, ...], positions: np.ndarray, conf: np.ndarray
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(J_msg, 3) positions and (J_msg,) confidences named ``names`` -> the order of format
    ``fmt`` (J_fmt joints; those not sent: position 0, confidence 0). Unregistered formats are
    left as sent (the solver refuses them with its own message)."""
    from s2m_model.skeletons import get_format

    try:
        expected = get_format(fmt).joint_names
    except ValueError:
        return positions, conf, names
    if names == tuple(expected):
        return positions, conf, names
    index = {name: i for i, name in enumerate(expected)}
    unknown = [name for name in names if name not in index]
    if unknown:
        raise ValueError(
            f"Skeleton3D joint_names {unknown[:5]} are not joints of format {fmt!r} "
            f"(expected names from {list(expected)})"
        )
    if len(set(names)) != len(names):
        repeated = sorted({name for name in names if names.count(name) > 1})
        raise ValueError(f"Skeleton3D joint_names repeat {repeated}")
    order = np.array([index[name] for name in names])
    out_pos = np.zeros((len(expected), 3))
    out_conf = np.zeros(len(expected))
    out_pos[order], out_conf[order] = positions, conf
    return out_pos, out_conf, tuple(expected)


def numpy_to_skeleton_msg(
    positions: np.ndarray,
    fmt: str,
    header: Msg,
    confidences: np.ndarray | None = None,
    joint_names: Sequence[str] = (),
    track_id: int = 0,
) -> Msg:
    """``(J, 3)`` positions (metres, header frame) -> s2m_ros/Skeleton3D.

    NaN positions are allowed (missing joints) and sent with confidence 0.
    """
    from geometry_msgs.msg import Point

    from s2m_ros.msg import Skeleton3D

    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3 or len(pos) == 0:
        raise ValueError(f"positions: expected (J, 3) with J > 0, got {pos.shape}")
    conf = np.ones(len(pos)) if confidences is None else np.asarray(confidences, np.float64)
    if conf.shape != (len(pos),):
        raise ValueError(f"confidences: expected ({len(pos)},), got {conf.shape}")
    if joint_names and len(joint_names) != len(pos):
        raise ValueError(f"{len(joint_names)} joint_names for {len(pos)} positions")
    missing = ~np.isfinite(pos).all(axis=1)
    conf = np.where(missing, 0.0, conf)
    return Skeleton3D(
        header=header,
        track_id=int(track_id),
        format=str(fmt),
        joint_names=[str(n) for n in joint_names],
        positions=[Point(x=float(x), y=float(y), z=float(z)) for x, y, z in pos],
        confidences=_float_array(conf),
    )


# --------------------------------------------------------------------------- meshes


def faces_id(model: str, num_vertices: int, faces: np.ndarray) -> str:
    """Stable id of a face list: ``"<model>:<V>:<F>:<crc32 of the uint32 faces>"``."""
    f = np.ascontiguousarray(faces, dtype=np.uint32)
    return f"{model}:{int(num_vertices)}:{len(f)}:{zlib.crc32(f.tobytes()):08x}"


def check_faces(faces: np.ndarray, num_vertices: int) -> np.ndarray:
    """``faces`` as an ``(F, 3)`` integer array of indices in ``[0, num_vertices)``.

    Raises:
        ValueError: another shape, no faces, non-integer or out-of-range indices.
    """
    f = np.asarray(faces)
    if f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
        raise ValueError(f"faces: expected (F, 3) with F > 0, got {f.shape}")
    if not np.issubdtype(f.dtype, np.integer):
        raise ValueError(f"faces must be integer indices, got {f.dtype}")
    if f.min() < 0 or f.max() >= num_vertices:
        raise ValueError(f"face indices must be in [0, {num_vertices}), got [{f.min()}, {f.max()}]")
    return f


def mesh_faces_msg(faces: np.ndarray, num_vertices: int, model: str, header: Msg) -> Msg:
    """``(F, 3)`` triangle indices -> s2m_ros/MeshFaces (for the latched faces topic)."""
    from s2m_ros.msg import MeshFaces

    f = check_faces(faces, num_vertices)
    return MeshFaces(
        header=header,
        faces_id=faces_id(model, num_vertices, f),
        model=str(model),
        num_vertices=int(num_vertices),
        faces=_uint_array(f.reshape(-1)),
    )


def body_mesh_msg(
    vertices: np.ndarray, track_ids: Sequence[int], header: Msg, mesh_faces_id: str
) -> Msg:
    """``(N, V, 3)`` vertices (metres, header frame) of one frame -> s2m_ros/BodyMesh.

    Raises:
        ValueError: wrong shape, ``len(track_ids) != N``, or NaN/inf vertices.
    """
    from s2m_ros.msg import BodyMesh

    v = np.asarray(vertices, dtype=np.float32)
    if v.ndim != 3 or v.shape[2] != 3:
        raise ValueError(f"vertices: expected (N, V, 3), got {v.shape}")
    if len(track_ids) != v.shape[0]:
        raise ValueError(f"{len(track_ids)} track_ids for {v.shape[0]} bodies")
    if not np.isfinite(v).all():
        raise ValueError("vertices contain NaN or infinite values")
    return BodyMesh(
        header=header,
        faces_id=str(mesh_faces_id),
        num_vertices=int(v.shape[1]),
        track_ids=_uint_array(np.asarray(track_ids, dtype=np.int64)),
        vertices=_float_array(v.reshape(-1)),
    )


def body_mesh_to_numpy(msg: Msg) -> np.ndarray:
    """s2m_ros/BodyMesh -> ``(N, V, 3)`` float32 vertices (a view of ``msg.vertices``)."""
    n, v = len(msg.track_ids), int(msg.num_vertices)
    data = np.frombuffer(msg.vertices, dtype=np.float32)
    if data.size != n * v * 3:
        raise ValueError(f"BodyMesh has {data.size} floats, expected N*V*3 = {n}*{v}*3")
    return data.reshape(n, v, 3)


def mesh_faces_to_numpy(msg: Msg) -> np.ndarray:
    """s2m_ros/MeshFaces -> ``(F, 3)`` int64 vertex indices."""
    f = np.frombuffer(msg.faces, dtype=np.uint32)
    if f.size % 3:
        raise ValueError(f"MeshFaces has {f.size} indices, not a multiple of 3")
    return check_faces(f.reshape(-1, 3).astype(np.int64), int(msg.num_vertices))


# --------------------------------------------------------------------------- TF


def body_to_tf(result: PersonResult, header: Msg, prefix: str = "s2m/") -> list[Msg]:
    """A person's skeleton as geometry_msgs/TransformStamped, for /tf.

    Frames (``P = f"{prefix}{track_id}/"``), all stamped ``header.stamp``:

    * ``header.frame_id`` (camera optical frame) -> ``P + "base"``: origin at the pelvis joint,
      REP-103 axes of the person: x forward (where they face), y to their left, z up the spine;
    * ``P + "base"`` -> ``P + "pelvis"``: no offset, a fixed rotation to SMPL axes (Y up,
      facing +Z, left +X), so the pelvis frame's orientation in the camera is ``global_orient``;
    * ``P + parent`` -> ``P + joint`` for the 23 other SMPL joints: the joint's local rotation
      and its offset from the parent in the parent's frame (the rest-pose bone), metres.

    Raises:
        ValueError: as :func:`person_to_body_msg` (shapes, NaN), an empty ``header.frame_id``
            or a prefix starting with "/".
    """
    import roma
    import torch
    from geometry_msgs.msg import TransformStamped

    if not header.frame_id:
        raise ValueError("header.frame_id is empty: TF needs the parent (camera) frame")
    if prefix.startswith("/"):
        raise ValueError(f"tf prefix {prefix!r} must not start with '/' (tf2 frame ids)")
    joints = _finite("joints", result.joints, (NUM_JOINTS, 3))
    _finite("global_orient", result.global_orient, (3,))
    _finite("body_pose", result.body_pose, (NUM_JOINTS - 1, 3))
    local = torch.as_tensor(np.asarray(result.quaternions, dtype=np.float64))  # (24, 4) xyzw
    local_rot = roma.unitquat_to_rotmat(local)  # (24, 3, 3)
    world_rot = world_from_local(local_rot[None])[0].numpy()  # joint frame -> camera frame

    frame = f"{prefix}{int(result.track_id)}/"
    base_rot = world_rot[0] @ BASE_IN_SMPL  # base frame -> camera frame
    base_quat = roma.rotmat_to_unitquat(torch.as_tensor(base_rot)).numpy()
    pelvis_in_base = roma.rotmat_to_unitquat(torch.as_tensor(BASE_IN_SMPL.T)).numpy()

    def tf(parent: str, child: str, t: np.ndarray, q: np.ndarray) -> TransformStamped:
        msg = TransformStamped()
        msg.header.stamp = header.stamp
        msg.header.frame_id = parent
        msg.child_frame_id = child
        tr, rot = msg.transform.translation, msg.transform.rotation
        tr.x, tr.y, tr.z = (float(v) for v in t)
        rot.x, rot.y, rot.z, rot.w = (float(v) for v in q)
        return msg

    out = [
        tf(header.frame_id, frame + "base", joints[0], base_quat),
        tf(frame + "base", frame + JOINT_NAMES[0], np.zeros(3), pelvis_in_base),
    ]
    local_np = local.numpy()
    for j in range(1, NUM_JOINTS):
        p = PARENTS[j]
        offset = world_rot[p].T @ (joints[j] - joints[p])
        out.append(tf(frame + JOINT_NAMES[p], frame + JOINT_NAMES[j], offset, local_np[j]))
    return out
