"""launch/live.launch.py without ROS `launch` (not installable here): parsed with ast, its
s2m_ros executables must be installed by both setup.py and CMakeLists.txt, its params and RViz
files must exist, and config/live.yaml must be a valid ROS params file for those nodes."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch" / "live.launch.py"


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name
    ]


def _kwargs(call: ast.Call) -> dict[str, object]:
    """Keyword arguments of a call that are literals."""
    out = {}
    for kw in call.keywords:
        if kw.arg is not None and isinstance(kw.value, ast.Constant):
            out[kw.arg] = kw.value.value
    return out


@pytest.fixture(scope="module")
def launch_tree() -> ast.Module:
    return ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))


def _our_nodes(tree: ast.Module) -> dict[str, dict[str, object]]:
    """executable -> literal kwargs of every Node(package="s2m_ros", ...)."""
    nodes = {}
    for call in _calls(tree, "Node"):
        kw = _kwargs(call)
        if kw.get("package") == "s2m_ros":
            nodes[str(kw["executable"])] = kw
    return nodes


def _setup_console_scripts() -> dict[str, str]:
    tree = ast.parse((REPO / "setup.py").read_text())
    (setup_call,) = _calls(tree, "setup")
    entry = next(kw.value for kw in setup_call.keywords if kw.arg == "entry_points")
    scripts = ast.literal_eval(entry)["console_scripts"]
    return dict(re.fullmatch(r"\s*(\S+)\s*=\s*(\S+)\s*", s).groups() for s in scripts)


def _cmake_executables() -> dict[str, str]:
    text = (REPO / "CMakeLists.txt").read_text()
    block = re.search(r"set\(S2M_EXECUTABLES(.*?)\)", text, re.S)
    assert block, "CMakeLists.txt has no S2M_EXECUTABLES list"
    return dict(re.findall(r'"([^"=]+)=([^"]+)"', block.group(1)))


def test_launch_file_structure(launch_tree):
    functions = {n.name for n in launch_tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in functions
    assert set(_our_nodes(launch_tree)) == {"s2m_node", "s2m_file_source"}
    # the camera drivers it can start are real ROS 2 packages' executables
    drivers = {
        (kw.get("package"), kw.get("executable"))
        for kw in map(_kwargs, _calls(launch_tree, "Node"))
        if kw.get("package") != "s2m_ros"
    }
    assert drivers == {
        ("usb_cam", "usb_cam_node_exe"),
        ("v4l2_camera", "v4l2_camera_node"),
        ("rviz2", "rviz2"),
    }


def test_launch_executables_are_installed(launch_tree):
    scripts, cmake = _setup_console_scripts(), _cmake_executables()
    for exe in _our_nodes(launch_tree):
        assert exe in scripts, f"{exe} missing from setup.py console_scripts"
        assert exe in cmake, f"{exe} missing from CMakeLists.txt S2M_EXECUTABLES"
        assert scripts[exe] == cmake[exe], f"{exe}: setup.py and CMake disagree"
        module, func = scripts[exe].split(":")
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin, f"{exe}: module {module} not found"
        assert re.search(rf"^def {func}\(", Path(spec.origin).read_text(), re.M), (
            f"{exe}: {module} has no function {func}"
        )


def test_launch_config_files_exist_and_are_installed(launch_tree):
    referenced = {
        n.value
        for n in ast.walk(launch_tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
        if n.value.endswith((".yaml", ".rviz"))
    }
    assert referenced == {"live.yaml", "s2m.rviz"}
    for name in referenced:
        assert (REPO / "config" / name).is_file(), name
    # colcon installs config/ and launch/ to share/s2m_ros; setup.py does the same for pip
    cmake = (REPO / "CMakeLists.txt").read_text()
    assert re.search(r"install\(DIRECTORY launch config DESTINATION", cmake)
    yaml.safe_load((REPO / "config" / "s2m.rviz").read_text())


def _ros_param_ok(value: object) -> bool:
    """ROS 2 parameter types: bool, int, float, str, or a non-empty list of one of them."""
    if isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, list) and value:
        kinds = {type(v) for v in value}
        return len(kinds) == 1 and kinds <= {bool, int, float, str}
    return False


def test_params_file_matches_launched_nodes(launch_tree):
    params = yaml.safe_load((REPO / "config" / "live.yaml").read_text())
    names = {kw["name"] for kw in _our_nodes(launch_tree).values()}
    assert names <= set(params), "every s2m node launched needs its section in live.yaml"
    for node, section in params.items():
        assert set(section) == {"ros__parameters"}, node
        for key, value in section["ros__parameters"].items():
            assert _ros_param_ok(value), f"{node}.{key} = {value!r} is not a ROS parameter value"
    s2m = params["s2m_node"]["ros__parameters"]
    assert s2m["input_mode"] in ("image", "skeleton")
    assert s2m["tf_prefix"].endswith("/") and not s2m["tf_prefix"].startswith("/")


def test_file_source_declares_the_params_of_live_yaml():
    """Every s2m_file_source parameter in live.yaml is declared by the node (else ROS ignores
    it silently); s2m_node is checked the same way once it exists."""
    params = yaml.safe_load((REPO / "config" / "live.yaml").read_text())
    source = (REPO / "s2m_ros" / "source_node.py").read_text()
    declared = set(re.findall(r'declare_parameter\("(\w+)"', source))
    assert set(params["s2m_file_source"]["ros__parameters"]) == declared
