"""rosbag2 bags (MCAP or SQLite3) with the s2m messages, via ``rosbags`` (no ROS install needed).

* :func:`s2m_typestore` — a rosbags typestore with the standard ROS 2 types plus ours, built from
  the ``.msg`` texts (their RIHS01 hashes equal the rosidl-built ones);
* :class:`BagWriter` — writes rclpy messages, rosbags messages or raw CDR bytes;
* :func:`read_bag` — iterates over a bag's messages, deserialised as rosbags dataclasses;
* :class:`BagRecorder` — records live topics of a running rclpy node (raw subscriptions, no
  deserialisation), like ``ros2 bag record`` on a machine without ``ros2cli``.

Timestamps are integer nanoseconds (the log time of each message: receive time when recording).
"""

from __future__ import annotations

import sqlite3
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability
from rosbags.interfaces import QosTime as _QosTime
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

PACKAGE = "s2m_ros"
STORAGES: dict[str, StoragePlugin] = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
# The real tf2_msgs/TFMessage definition (ros2/geometry2), for stores that lack it.
TF_MESSAGE_MSG = "geometry_msgs/TransformStamped[] transforms\n"
# /tf_static and the mesh faces are latched: replaying needs TRANSIENT_LOCAL in the metadata.
LATCHED_TOPICS: tuple[str, ...] = ("/tf_static",)


def msg_dir() -> Path:
    """Folder with our ``.msg`` files: the source tree's ``msg/``, else the installed share."""
    source = Path(__file__).resolve().parents[1] / "msg"
    candidates = [source, Path(sys.prefix) / "share" / PACKAGE / "msg"]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory(PACKAGE)) / "msg")
    except Exception:  # ament index absent or the package not installed there
        pass
    for path in candidates:
        if (path / "Body.msg").is_file():
            return path
    raise FileNotFoundError(f"no {PACKAGE} .msg files in {[str(c) for c in candidates]}")


def message_definitions() -> dict[str, str]:
    """``{"s2m_ros/msg/Body": <.msg text>, ...}`` for every message of the package."""
    return {f"{PACKAGE}/msg/{p.stem}": p.read_text() for p in sorted(msg_dir().glob("*.msg"))}


def s2m_typestore(store: Stores = Stores.ROS2_KILTED) -> Typestore:
    """A rosbags typestore: the standard types of ``store`` plus s2m_ros and tf2_msgs types."""
    typestore = get_typestore(store)
    types: dict[str, Any] = {}
    for name, text in message_definitions().items():
        types.update(get_types_from_msg(text, name))
    if "tf2_msgs/msg/TFMessage" not in typestore.fielddefs:
        types.update(get_types_from_msg(TF_MESSAGE_MSG, "tf2_msgs/msg/TFMessage"))
    typestore.register(types)
    return typestore


def ros_type_name(msg_or_class: Any) -> str:
    """``"pkg/msg/Name"`` of an rclpy message (class or instance) or a rosbags message."""
    name = getattr(msg_or_class, "__msgtype__", None)
    if name:
        return str(name)
    cls = msg_or_class if isinstance(msg_or_class, type) else type(msg_or_class)
    parts = cls.__module__.split(".")
    if len(parts) < 2 or parts[1] not in ("msg", "srv", "action"):
        raise ValueError(f"{cls!r} is not a ROS message type")
    return f"{parts[0]}/{parts[1]}/{cls.__name__}"


def message_class(type_name: str) -> type:
    """rclpy message class of ``"pkg/msg/Name"``."""
    import importlib

    parts = type_name.split("/")
    if len(parts) != 3:
        raise ValueError(f"expected a type like 'sensor_msgs/msg/Image', got {type_name!r}")
    try:
        return getattr(importlib.import_module(f"{parts[0]}.{parts[1]}"), parts[2])
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"message type {type_name!r} is not importable: {exc}") from exc


def _qos(latched: bool, depth: int) -> Qos:
    zero = _QosTime(sec=0, nsec=0)
    return Qos(
        history=QosHistory.KEEP_LAST,
        depth=depth,
        reliability=QosReliability.RELIABLE,
        durability=QosDurability.TRANSIENT_LOCAL if latched else QosDurability.VOLATILE,
        deadline=zero,
        lifespan=zero,
        liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=zero,
        avoid_ros_namespace_conventions=False,
    )


class BagWriter:
    """Write a rosbag2 (metadata version 9). Use as a context manager.

    Args:
        path: bag folder to create (must not exist).
        storage: ``"mcap"`` (default) or ``"sqlite3"``.
        typestore: defaults to :func:`s2m_typestore`.
    """

    def __init__(
        self, path: str | Path, storage: str = "mcap", typestore: Typestore | None = None
    ) -> None:
        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {list(STORAGES)}, got {storage!r}")
        self.path = Path(path)
        self.typestore = typestore or s2m_typestore()
        self._writer = Writer(self.path, version=9, storage_plugin=STORAGES[storage])
        self._writer.open()
        self._connections: dict[str, Any] = {}
        self._lock = threading.Lock()

    def add_topic(self, topic: str, msgtype: str, latched: bool | None = None) -> None:
        """Declare ``topic`` of type ``"pkg/msg/Name"`` (latched: TRANSIENT_LOCAL on replay)."""
        if topic in self._connections:
            if self._connections[topic].msgtype != msgtype:
                raise ValueError(f"{topic} was added as {self._connections[topic].msgtype}")
            return
        if msgtype not in self.typestore.fielddefs:
            raise ValueError(f"unknown message type {msgtype!r} (not in the typestore)")
        latched = topic in LATCHED_TOPICS if latched is None else latched
        self._connections[topic] = self._writer.add_connection(
            topic,
            msgtype,
            typestore=self.typestore,
            offered_qos_profiles=[_qos(latched, 1 if latched else 10)],
        )

    def write(self, topic: str, timestamp_ns: int, msg: Any) -> None:
        """Write one message: raw CDR bytes, an rclpy message or a rosbags message.

        Messages of an undeclared topic declare it (type taken from the message).
        """
        if isinstance(msg, (bytes, bytearray, memoryview)):
            if topic not in self._connections:
                raise ValueError(f"raw bytes for undeclared topic {topic}: call add_topic first")
            data = bytes(msg)
        elif hasattr(msg, "__msgtype__"):  # rosbags dataclass
            self.add_topic(topic, msg.__msgtype__)
            data = bytes(self.typestore.serialize_cdr(msg, msg.__msgtype__))
        else:  # rclpy message
            from rclpy.serialization import serialize_message

            self.add_topic(topic, ros_type_name(msg))
            data = serialize_message(msg)
        with self._lock:
            self._writer.write(self._connections[topic], int(timestamp_ns), data)

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class BagMessage:
    """One message read from a bag; ``msg``: a rosbags dataclass (same fields as rclpy) or bytes."""

    topic: str
    msgtype: str
    timestamp_ns: int
    msg: Any


class BagError(ValueError):
    """A bag that cannot be read: truncated or empty storage file, broken ``metadata.yaml``.

    A ValueError (bad input), with a one-line message naming the bag.
    """


# What rosbags (and the storage libraries below it) raise on a damaged bag.
_BAG_ERRORS: tuple[type[BaseException], ...] = (sqlite3.DatabaseError, EOFError, KeyError)


def _bag_errors() -> tuple[type[BaseException], ...]:
    from rosbags.highlevel import AnyReaderError
    from rosbags.rosbag2 import ReaderError

    return (AnyReaderError, ReaderError, *_BAG_ERRORS)


def _bag_error(path: Path, exc: BaseException) -> BagError:
    # YAML parser messages span several lines; the CLI prints one line per error.
    detail = " ".join(str(exc).split()) or type(exc).__name__
    return BagError(f"cannot read bag {path}: {detail}")


@contextmanager
def open_bag(path: str | Path, typestore: Typestore | None = None) -> Iterator[Any]:
    """An open rosbags ``AnyReader`` of the rosbag2 folder ``path``.

    Raises:
        FileNotFoundError: no such folder or no ``metadata.yaml`` in it.
        BagError: the bag is damaged (truncated/empty storage file, broken metadata), also
        when found while reading its messages.
    """
    from rosbags.highlevel import AnyReader

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no bag at {path}")
    errors = _bag_errors()
    try:
        reader = AnyReader([path], default_typestore=typestore or s2m_typestore())
        reader.open()
    except errors as exc:
        raise _bag_error(path, exc) from exc
    try:
        yield reader
    except errors as exc:
        raise _bag_error(path, exc) from exc
    finally:
        try:
            reader.close()
        except errors:  # closing a damaged bag must not hide the first error
            pass


def read_bag(
    path: str | Path,
    topics: Iterable[str] | None = None,
    typestore: Typestore | None = None,
    raw: bool = False,
) -> Iterator[BagMessage]:
    """Messages of a rosbag2 folder (MCAP or SQLite3), in log-time order.

    Types come from the definitions stored in the bag (rosbags ``AnyReader`` checks them against
    the stored RIHS01 hashes); ``typestore`` (default :func:`s2m_typestore`) is used only for
    bags without definitions. With ``raw``, ``msg`` is the CDR bytes (for
    ``rclpy.serialization.deserialize_message``).

    Raises:
        FileNotFoundError: no bag at ``path``. BagError: a damaged bag (see :func:`open_bag`).
    """
    wanted = None if topics is None else set(topics)
    with open_bag(path, typestore) as reader:
        connections = [c for c in reader.connections if wanted is None or c.topic in wanted]
        for conn, timestamp, rawdata in reader.messages(connections=connections):
            msg = bytes(rawdata) if raw else reader.deserialize(rawdata, conn.msgtype)
            yield BagMessage(conn.topic, conn.msgtype, timestamp, msg)


def bag_topics(path: str | Path) -> dict[str, str]:
    """``{topic: "pkg/msg/Name"}`` of a rosbag2 folder.

    Raises:
        FileNotFoundError: no bag at ``path``. BagError: a damaged bag.
    """
    with open_bag(path) as reader:
        return {c.topic: c.msgtype for c in reader.connections}


class BagRecorder:
    """Record live topics of a node into a bag: raw (serialised) subscriptions, no decoding.

    Subscriptions use the "best available" QoS where rclpy has it (Iron and later: matches
    reliable and best-effort publishers, latched ones included), else RELIABLE/VOLATILE;
    ``latched`` topics use RELIABLE/TRANSIENT_LOCAL so their last message is recorded even when
    it was published before the recorder started. The bag's log time is the receive time.

    Args:
        node: an rclpy node (spun by the caller).
        path: bag folder to create.
        topics: ``{topic: message class or "pkg/msg/Name"}``.
        storage: ``"mcap"`` or ``"sqlite3"``.
        latched: topics recorded as latched (default: /tf_static).
        depth: subscription queue depth.
    """

    def __init__(
        self,
        node: Any,
        path: str | Path,
        topics: Mapping[str, type | str],
        storage: str = "mcap",
        latched: Iterable[str] = LATCHED_TOPICS,
        depth: int = 100,
    ) -> None:
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        if not topics:
            raise ValueError("BagRecorder needs at least one topic")
        self.node = node
        self.bag = BagWriter(path, storage)
        self.counts: dict[str, int] = {}
        self._subscriptions = []
        latched = set(latched)
        try:
            from rclpy.qos import qos_profile_best_available as best
        except ImportError:  # Humble
            best = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)
        for topic, kind in topics.items():
            cls = message_class(kind) if isinstance(kind, str) else kind
            is_latched = topic in latched
            self.bag.add_topic(topic, ros_type_name(cls), latched=is_latched)
            if is_latched:
                qos = QoSProfile(
                    depth=1,
                    reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.TRANSIENT_LOCAL,
                )
            else:
                qos = QoSProfile(
                    depth=depth, reliability=best.reliability, durability=best.durability
                )
            self.counts[topic] = 0
            self._subscriptions.append(
                node.create_subscription(cls, topic, self._callback(topic), qos, raw=True)
            )

    def _callback(self, topic: str):
        def record(data: bytes) -> None:
            self.bag.write(topic, self.node.get_clock().now().nanoseconds, data)
            self.counts[topic] += 1

        return record

    def close(self) -> None:
        """Stop recording and finish the bag (idempotent)."""
        for sub in self._subscriptions:
            self.node.destroy_subscription(sub)
        self._subscriptions = []
        self.bag.close()

    def __enter__(self) -> BagRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
