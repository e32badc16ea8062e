"""hri_msgs built from cmake/hri_msgs: the structure (fields, types, constants) equals the
upstream ros4hri/hri_msgs definitions (ROS 2 branch), and the RIHS01 type hashes rosidl wrote
equal the ones rosbags computes from the upstream text (no published hash was found to pin)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

hri = pytest.importorskip("hri_msgs.msg", reason="hri_msgs not built (tools/build_msgs.sh)")

from rosbags.typesys import Stores, get_types_from_msg, get_typestore  # noqa: E402

# The upstream definitions (ros4hri/hri_msgs, ROS 2 branch, Apache-2.0), comments removed.
_SKELETON_NAMES = (
    "NOSE NECK RIGHT_SHOULDER RIGHT_ELBOW RIGHT_WRIST LEFT_SHOULDER LEFT_ELBOW LEFT_WRIST "
    "RIGHT_HIP RIGHT_KNEE RIGHT_ANKLE LEFT_HIP LEFT_KNEE LEFT_ANKLE LEFT_EYE RIGHT_EYE LEFT_EAR "
    "RIGHT_EAR"
).split()
UPSTREAM = {
    "hri_msgs/msg/IdsList": "std_msgs/Header header\nstring[] ids\n",
    "hri_msgs/msg/NormalizedPointOfInterest2D": "float32 x\nfloat32 y\nfloat32 c\n",
    "hri_msgs/msg/NormalizedRegionOfInterest2D": (
        "std_msgs/Header header\nfloat32 xmin\nfloat32 ymin\nfloat32 xmax\nfloat32 ymax\n"
        "float32 c\n"
    ),
    "hri_msgs/msg/Skeleton2D": "std_msgs/Header header\n"
    + "".join(f"uint8 {n} = {i}\n" for i, n in enumerate(_SKELETON_NAMES))
    + "NormalizedPointOfInterest2D[] skeleton\n",
}
EXPECTED_FIELDS = {
    "IdsList": {"header": "std_msgs/Header", "ids": "sequence<string>"},
    "NormalizedPointOfInterest2D": {"x": "float", "y": "float", "c": "float"},
    "NormalizedRegionOfInterest2D": {
        "header": "std_msgs/Header",
        "xmin": "float",
        "ymin": "float",
        "xmax": "float",
        "ymax": "float",
        "c": "float",
    },
    "Skeleton2D": {
        "header": "std_msgs/Header",
        "skeleton": "sequence<hri_msgs/NormalizedPointOfInterest2D>",
    },
}


def _share() -> Path:
    return Path(sys.prefix) / "share" / "hri_msgs" / "msg"


def _upstream_store():
    store = get_typestore(Stores.ROS2_KILTED)
    types: dict = {}
    for name, text in UPSTREAM.items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store


@pytest.mark.parametrize("name", sorted(EXPECTED_FIELDS))
def test_fields_equal_upstream(name):
    cls = getattr(hri, name)
    assert cls.get_fields_and_field_types() == EXPECTED_FIELDS[name]


def test_skeleton2d_constants_equal_upstream():
    got = {n: getattr(hri.Skeleton2D, n) for n in dir(hri.Skeleton2D) if n.isupper()}
    got.pop("SLOT_TYPES", None)
    assert got == {n: i for i, n in enumerate(_SKELETON_NAMES)}
    assert len(got) == 18


@pytest.mark.parametrize("type_name", sorted(UPSTREAM))
def test_type_hash_equals_upstream_definition(type_name):
    path = _share() / f"{type_name.rsplit('/', 1)[1]}.json"
    if not path.is_file():
        pytest.skip(f"{path} not installed (hri_msgs from a ROS distro?)")
    hashes = {h["type_name"]: h["hash_string"] for h in json.loads(path.read_text())["type_hashes"]}
    assert hashes[type_name].startswith("RIHS01_")
    assert hashes[type_name] == _upstream_store().hash_rihs01(type_name)


def test_hash_changes_with_structure():
    """The comparison above can fail: a fixed-size skeleton array has another hash."""
    store = _upstream_store()
    fixed = get_typestore(Stores.ROS2_KILTED)
    text = UPSTREAM["hri_msgs/msg/Skeleton2D"].replace("[] skeleton", "[18] skeleton")
    types = get_types_from_msg(
        UPSTREAM["hri_msgs/msg/NormalizedPointOfInterest2D"],
        "hri_msgs/msg/NormalizedPointOfInterest2D",
    )
    types.update(get_types_from_msg(text, "hri_msgs/msg/Skeleton2D"))
    fixed.register(types)
    name = "hri_msgs/msg/Skeleton2D"
    assert fixed.hash_rihs01(name) != store.hash_rihs01(name)
