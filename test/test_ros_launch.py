"""launch/live.launch.py without ROS `launch` (not installable here): parsed with ast, its
s2m_ros executables must be installed by both setup.py and CMakeLists.txt, its params and RViz
files must exist, and config/live.yaml must be a valid ROS params file for those nodes under any
namespace. Its node selection runs against minimal stand-ins of `launch`/`launch_ros`: which
nodes start, with which parameters, for the launch arguments a robot user passes."""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
import types
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
    assert set(_our_nodes(launch_tree)) == {"s2m_node", "s2m_file_source", "s2m_retarget"}
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
    assert referenced == {"live.yaml", "retarget.yaml", "s2m.rviz"}
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
    own_file = {"s2m_retarget"}  # config/retarget.yaml (test_retarget_is_a_launch_option)
    names = {kw["name"] for kw in _our_nodes(launch_tree).values()} - own_file
    # "/**/<node>" matches the node under any namespace (the launch file uses namespace s2m)
    assert {f"/**/{n}" for n in names} <= set(params), "every s2m node needs a /**/ section"
    for node, section in params.items():
        assert node.startswith("/**/"), f"{node}: a key ROS would skip under a namespace"
        assert set(section) == {"ros__parameters"}, node
        for key, value in section["ros__parameters"].items():
            assert _ros_param_ok(value), f"{node}.{key} = {value!r} is not a ROS parameter value"
    s2m = params["/**/s2m_node"]["ros__parameters"]
    assert s2m["input_mode"] in ("image", "skeleton")
    assert s2m["tf_prefix"].endswith("/") and not s2m["tf_prefix"].startswith("/")


def test_file_source_declares_the_params_of_live_yaml():
    """Every s2m_file_source parameter in live.yaml is declared by the player (else ROS ignores
    it silently), and the player declares exactly the table PLAYER_PARAMS."""
    params = yaml.safe_load((REPO / "config" / "live.yaml").read_text())
    player = (REPO / "s2m_ros" / "player.py").read_text()
    assert re.search(r"declare_parameter\(k, v\)\.value for k, v in PLAYER_PARAMS", player)
    spec = importlib.util.spec_from_file_location("_player", REPO / "s2m_ros" / "player.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # no rclpy at import time
    section = params["/**/s2m_file_source"]["ros__parameters"]
    assert set(section) == set(module.PLAYER_PARAMS)
    for key, value in section.items():
        assert type(value) is type(module.PLAYER_PARAMS[key]), key


def test_rviz_shows_what_live_and_launch_publish():
    """One namespace story: launch (namespace s2m), `s2m live` (--namespace /s2m) and RViz."""
    rviz = yaml.safe_load((REPO / "config" / "s2m.rviz").read_text())
    topics = set(re.findall(r"Value: (/\S+)", (REPO / "config" / "s2m.rviz").read_text()))
    assert "/s2m/markers" in topics and "/camera/image_raw" in topics
    assert rviz["Visualization Manager"]["Global Options"]["Fixed Frame"]
    cli = (REPO / "s2m_ros" / "cli.py").read_text()
    assert re.search(r'^DEFAULT_NAMESPACE = "/s2m"$', cli, re.M)
    args = _launch_defaults(_load_launch())
    assert args["namespace"] == "s2m"
    markers = yaml.safe_load((REPO / "config" / "live.yaml").read_text())
    assert markers["/**/s2m_node"]["ros__parameters"]["markers_topic"] == "markers"


# ---------------------------------------------------------------- launch logic, stand-ins


class _Sub:
    """LaunchConfiguration / PathJoinSubstitution / FindPackageShare stand-in."""

    def __init__(self, kind: str, value):
        self.kind, self.value = kind, value

    def perform(self, context) -> str:
        if self.kind == "config":
            return context.launch_configurations[self.value]
        if self.kind == "share":
            return f"/share/{self.value}"
        return "/".join(v.perform(context) if isinstance(v, _Sub) else v for v in self.value)


class _Action:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class _Context:
    def __init__(self, configurations: dict[str, str]):
        self.launch_configurations = configurations


def _stub_modules() -> dict[str, types.ModuleType]:
    def module(name: str, **attrs) -> types.ModuleType:
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        return m

    class DeclareLaunchArgument(_Action):
        pass

    class OpaqueFunction(_Action):
        pass

    return {
        "launch": module("launch", LaunchDescription=lambda entities: list(entities)),
        "launch.actions": module(
            "launch.actions", DeclareLaunchArgument=DeclareLaunchArgument,
            OpaqueFunction=OpaqueFunction, SetEnvironmentVariable=_Action,
        ),  # fmt: skip
        "launch.conditions": module("launch.conditions", IfCondition=_Action),
        "launch.substitutions": module(
            "launch.substitutions",
            LaunchConfiguration=lambda name: _Sub("config", name),
            PathJoinSubstitution=lambda parts: _Sub("join", parts),
        ),
        "launch_ros": module("launch_ros"),
        "launch_ros.actions": module("launch_ros.actions", Node=_Action),
        "launch_ros.substitutions": module(
            "launch_ros.substitutions", FindPackageShare=lambda pkg: _Sub("share", pkg)
        ),
    }


def _load_launch():
    saved = {name: sys.modules.get(name) for name in _stub_modules()}
    sys.modules.update(_stub_modules())
    try:
        spec = importlib.util.spec_from_file_location("_live_launch", LAUNCH)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.generate_launch_description()
    finally:
        for name, mod in saved.items():
            if mod is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = mod


def _launch_defaults(description) -> dict[str, str]:
    context = _Context({})
    out = {}
    for entity in description:
        if type(entity).__name__ == "DeclareLaunchArgument":
            default = entity.kwargs.get("default_value", "")
            out[entity.args[0]] = default.perform(context) if isinstance(default, _Sub) else default
    return out


def _launched(**arguments: str) -> dict[str, dict]:
    """``{executable: Node kwargs}`` started for these launch arguments (as ``ros2 launch``
    would with ``name:=value``); parameters merged in order (later dicts win)."""
    description = _load_launch()
    values = _launch_defaults(description)
    unknown = set(arguments) - set(values)
    assert not unknown, f"not launch arguments: {unknown}"
    context = _Context({**values, **arguments})
    nodes = {}
    for entity in description:
        if type(entity).__name__ == "OpaqueFunction":
            for node in entity.kwargs["function"](context):
                if type(node).__name__ == "_Action" and "executable" in node.kwargs:
                    kw = dict(node.kwargs)
                    merged: dict = {}
                    for p in kw.get("parameters", []):
                        merged.update(p if isinstance(p, dict) else {"__file__": p})
                    kw["params"] = merged
                    nodes[kw["executable"]] = kw
    return nodes


def test_launch_passes_camera_info_topic():
    nodes = _launched()
    assert set(nodes) == {"usb_cam_node_exe", "s2m_node"}
    s2m = nodes["s2m_node"]
    assert s2m["namespace"] == "s2m" and s2m["params"]["__file__"].endswith("config/live.yaml")
    assert s2m["params"]["image_topic"] == "/camera/image_raw"
    assert s2m["params"]["camera_info_topic"] == "/camera/camera_info"
    assert ("camera_info", "/camera/camera_info") in nodes["usb_cam_node_exe"]["remappings"]
    # another camera: its camera_info, not the default's
    other = _launched(camera="none", image_topic="/zed/left/image_rect_color")
    assert set(other) == {"s2m_node"}
    assert other["s2m_node"]["params"]["camera_info_topic"] == "/zed/left/camera_info"
    explicit = _launched(camera="none", camera_info_topic="/zed/info")
    assert explicit["s2m_node"]["params"]["camera_info_topic"] == "/zed/info"


def test_skeleton_mode_starts_no_camera():
    for camera in ("usb_cam", "v4l2_camera", "file"):
        nodes = _launched(input_mode="skeleton", camera=camera, file="/data/walk.mp4")
        assert set(nodes) == {"s2m_node"}, camera
        assert nodes["s2m_node"]["params"]["input_mode"] == "skeleton"
    assert "s2m_file_source" in _launched(camera="file", file="/data/walk.mp4")


def test_pixel_format_is_a_launch_argument():
    assert _launched()["usb_cam_node_exe"]["params"]["pixel_format"] == "yuyv2rgb"
    usb = _launched(pixel_format="mjpeg2rgb")["usb_cam_node_exe"]["params"]
    assert usb["pixel_format"] == "mjpeg2rgb"
    v4l2 = _launched(camera="v4l2_camera")["v4l2_camera_node"]["params"]
    assert "pixel_format" not in v4l2  # the driver's default
    v4l2 = _launched(camera="v4l2_camera", pixel_format="MJPG")["v4l2_camera_node"]["params"]
    assert v4l2["pixel_format"] == "MJPG"
    source = LAUNCH.read_text()
    assert '"yuyv2rgb"' in source and source.count("yuyv2rgb") <= 4  # the default only


def test_file_camera_plays_with_the_params_file():
    nodes = _launched(camera="file", file="/data/walk.mp4", rate="0.5")
    player = nodes["s2m_file_source"]["params"]
    assert player["__file__"].endswith("config/live.yaml")
    assert player["path"] == "/data/walk.mp4" and player["rate"] == 0.5
    assert player["topic"] == nodes["s2m_node"]["params"]["image_topic"]


def test_retarget_is_a_launch_option():
    """retarget:=true adds s2m_retarget in s2m_node's namespace with config/retarget.yaml; off
    by default; robot:= overrides the params file's robot."""
    assert "s2m_retarget" not in _launched()
    assert _launch_defaults(_load_launch())["retarget"] == "false"
    nodes = _launched(retarget="true")
    assert set(nodes) == {"usb_cam_node_exe", "s2m_node", "s2m_retarget"}
    node = nodes["s2m_retarget"]
    assert node["package"] == "s2m_ros" and node["name"] == "s2m_retarget"
    assert node["namespace"] == nodes["s2m_node"]["namespace"] == "s2m"
    assert node["params"] == {"__file__": "/share/s2m_ros/config/retarget.yaml"}
    other = _launched(retarget="true", robot="s2m_humanoid", namespace="r1", camera="none",
                      retarget_params_file="/my/retarget.yaml")["s2m_retarget"]  # fmt: skip
    assert other["params"] == {"__file__": "/my/retarget.yaml", "robot": "s2m_humanoid"}
    assert other["namespace"] == "r1"
    # the params file is a valid ROS params file whose bodies topic is s2m_node's output
    params = yaml.safe_load((REPO / "config" / "retarget.yaml").read_text())
    assert set(params) == {"/**/s2m_retarget"}
    section = params["/**/s2m_retarget"]["ros__parameters"]
    for key, value in section.items():
        assert _ros_param_ok(value), f"s2m_retarget.{key} = {value!r} is not a ROS parameter"
    live = yaml.safe_load((REPO / "config" / "live.yaml").read_text())
    bodies = live["/**/s2m_node"]["ros__parameters"].get("bodies_topic", "bodies")
    assert section["bodies_topic"] == bodies and not bodies.startswith("/")
    # skeleton mode: still retargets (no camera)
    assert set(_launched(retarget="true", input_mode="skeleton")) == {"s2m_node", "s2m_retarget"}
