"""s2m: Skeleton2Mesh for robots — the `s2m_model` library, the `s2m_ros` nodes, the `s2m` CLI."""

from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "s2m_ros"
here = Path(__file__).parent


def _data(folder: str, pattern: str) -> list[str]:
    return sorted(str(p) for p in (here / folder).glob(pattern))


setup(
    name="s2m",
    version="0.1.0",
    description="Skeleton2Mesh: camera stream -> SMPL-layout human body meshes for robots",
    long_description=(here / "README.md").read_text() if (here / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["s2m_model", "s2m_model.*", "s2m_ros", "s2m_ros.*"]),
    package_data={"s2m_model": ["assets/*", "assets/robots/*"]},
    # ament index + launch/config files so `ros2 launch s2m_ros live.launch.py` finds them
    # after a colcon build on a robot.
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        ("share/" + PACKAGE + "/launch", _data("launch", "*.launch.py")),
        (
            "share/" + PACKAGE + "/config",
            _data("config", "*.yaml") + _data("config", "*.rviz") + _data("config", "*.xml"),
        ),
    ],
    entry_points={
        "console_scripts": [
            "s2m = s2m_model.cli:main",
            # ROS 2 nodes; CMakeLists.txt (S2M_EXECUTABLES) installs the same for colcon builds
            "s2m_node = s2m_ros.node:main",
            "s2m_file_source = s2m_ros.source_node:main",
            "s2m_retarget = s2m_ros.retarget_node:main",
        ],
        # `s2m` sub-commands (s2m_model/cli.py): each names register(subparsers). Other
        # packages add commands by declaring entry points in this group.
        "s2m.commands": [
            "body = s2m_model.body.cli:register",
            "data = s2m_model.data.cli:register",
            "demo = s2m_model.demo:register",
            "detect = s2m_model.detect.cli:register",
            "eval = s2m_model.eval.cli:register",
            "export = s2m_model.export.cli:register",
            "retarget = s2m_model.retarget.cli:register",
            "run = s2m_model.run_cli:register",
            "train = s2m_model.lifter.cli:register",
            "train_refine = s2m_model.refine.train_cli:register",  # adds `train refine`
            "ros = s2m_ros.cli:register",  # live, eval-bag, record
        ],
    },
)
