"""Live s2m: a camera (or a video/bag file) -> s2m_node -> bodies, meshes, TF (+ RViz).

    ros2 launch s2m_ros live.launch.py                          # USB camera via usb_cam
    ros2 launch s2m_ros live.launch.py camera:=v4l2_camera video_device:=/dev/video2
    ros2 launch s2m_ros live.launch.py camera:=usb_cam pixel_format:=mjpeg2rgb
    ros2 launch s2m_ros live.launch.py camera:=file file:=/data/walk.mp4 rviz:=true
    ros2 launch s2m_ros live.launch.py camera:=none image_topic:=/zed/left/image_rect_color
    ros2 launch s2m_ros live.launch.py input_mode:=skeleton     # Skeleton3D in, no camera
    ros2 launch s2m_ros live.launch.py retarget:=true            # + s2m_retarget (Unitree G1)
    ros2 launch s2m_ros live.launch.py retarget:=true robot:=s2m_humanoid

Outputs (namespace ``s2m`` by default, as ``s2m live`` and config/s2m.rviz): /s2m/bodies
(s2m_ros/BodyArray), /s2m/mesh (s2m_ros/BodyMesh) with /s2m/mesh_faces (latched),
/s2m/markers, /tf frames ``s2m/<track_id>/<joint>``. Parameters: config/live.yaml
(``params_file:=`` to replace it; its ``/**/<node>`` keys match any namespace); the launch
arguments ``image_topic``, ``camera_info_topic`` and ``input_mode`` override it.
``camera_info_topic`` defaults to the ``camera_info`` next to ``image_topic`` (the driver
convention), so the node uses the camera's calibration instead of the ``fov_deg`` pinhole.
``pixel_format`` goes to the camera driver ('' = yuyv2rgb for usb_cam, the driver's default
for v4l2_camera). ``input_mode:=skeleton`` starts no camera or file player.
``retarget:=true`` also starts ``s2m_retarget`` in the same namespace (bodies in, /s2m/joint_states,
/s2m/robot_markers and the robot's base TF out) with config/retarget.yaml
(``retarget_params_file:=`` to replace it; ``robot:=`` overrides its ``robot``); see
docs/retarget.md.
FastDDS gets config/fastdds_large_data.xml (``fastdds_profile:=`` to change it) so best-effort
640x480 images are not lost in its default 512 kB shared-memory segment.
Needs a ROS 2 distro (launch, launch_ros); camera drivers and rviz2 only when selected.
"""

from __future__ import annotations

import os

from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

CAMERAS = ("usb_cam", "v4l2_camera", "file", "none")
# usb_cam's pixel_format when the launch argument is empty (raw YUYV converted to rgb8).
USB_CAM_PIXEL_FORMAT = "yuyv2rgb"


def _fastdds_profile(context, *args, **kwargs) -> list[SetEnvironmentVariable]:
    """FastDDS large-image profile for every node launched here, unless the user set one.

    The default 512 kB shared-memory segment loses best-effort 640x480 images; the publisher's
    (camera driver's) segment is the one that counts (config/fastdds_large_data.xml).
    """
    profile = LaunchConfiguration("fastdds_profile").perform(context)
    if os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE") or not profile:
        return []
    return [SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", profile)]


def _arg(context, name: str) -> str:
    return LaunchConfiguration(name).perform(context)


def _camera_info_topic(context) -> str:
    """``camera_info_topic``, else the ``camera_info`` next to ``image_topic``."""
    explicit = _arg(context, "camera_info_topic")
    if explicit:
        return explicit
    return os.path.dirname(_arg(context, "image_topic").rstrip("/")) + "/camera_info"


def _camera_nodes(context, *args, **kwargs) -> list[Node]:
    """The image source selected by ``camera`` (drivers publish image_raw + camera_info);
    none in skeleton mode."""
    if _arg(context, "input_mode") != "image":
        return []  # Skeleton3D input: a camera would only cost CPU and bandwidth
    camera, image_topic = _arg(context, "camera"), _arg(context, "image_topic")
    frame = _arg(context, "camera_frame")
    width, height = int(_arg(context, "image_width")), int(_arg(context, "image_height"))
    pixel_format = _arg(context, "pixel_format")
    remaps = [("image_raw", image_topic), ("camera_info", _camera_info_topic(context))]
    if camera == "usb_cam":
        params = {
            "video_device": _arg(context, "video_device"),
            "image_width": width,
            "image_height": height,
            "pixel_format": pixel_format or USB_CAM_PIXEL_FORMAT,
            "framerate": float(_arg(context, "framerate")),
            "frame_id": frame,
        }
        return [
            Node(
                package="usb_cam",
                executable="usb_cam_node_exe",
                name="camera",
                parameters=[params],
                remappings=remaps,
                output="screen",
            )
        ]
    if camera == "v4l2_camera":
        params = {
            "video_device": _arg(context, "video_device"),
            "image_size": [width, height],
            "output_encoding": "rgb8",
            "camera_frame_id": frame,
        }
        if pixel_format:
            params["pixel_format"] = pixel_format
        return [
            Node(
                package="v4l2_camera",
                executable="v4l2_camera_node",
                name="camera",
                parameters=[params],
                remappings=remaps,
                output="screen",
            )
        ]
    if camera == "file":
        if not _arg(context, "file"):
            raise RuntimeError("camera:=file needs file:=<video file or bag folder>")
        params = {
            "path": _arg(context, "file"),
            "topic": image_topic,
            "frame_id": frame,
            "rate": float(_arg(context, "rate")),
        }
        return [
            Node(
                package="s2m_ros",
                executable="s2m_file_source",
                name="s2m_file_source",
                parameters=[_arg(context, "params_file"), params],
                output="screen",
            )
        ]
    if camera == "none":
        return []
    raise RuntimeError(f"camera:={camera} is not one of {', '.join(CAMERAS)}")


def _s2m_node(context, *args, **kwargs) -> list[Node]:
    overrides = {
        "input_mode": _arg(context, "input_mode"),
        "image_topic": _arg(context, "image_topic"),
        "camera_info_topic": _camera_info_topic(context),
    }
    return [
        Node(
            package="s2m_ros",
            executable="s2m_node",
            name="s2m_node",
            namespace=_arg(context, "namespace"),
            parameters=[_arg(context, "params_file"), overrides],
            output="screen",
        )
    ]


def _retarget_node(context, *args, **kwargs) -> list[Node]:
    """``s2m_retarget`` next to ``s2m_node`` (same namespace: it reads their ``bodies``)."""
    if _arg(context, "retarget") != "true":
        return []
    overrides = {"robot": _arg(context, "robot")} if _arg(context, "robot") else {}
    return [
        Node(
            package="s2m_ros",
            executable="s2m_retarget",
            name="s2m_retarget",
            namespace=_arg(context, "namespace"),
            parameters=[_arg(context, "retarget_params_file"), overrides],
            output="screen",
        )
    ]


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("s2m_ros")
    arguments = [
        DeclareLaunchArgument("camera", default_value="usb_cam", choices=list(CAMERAS)),
        DeclareLaunchArgument("video_device", default_value="/dev/video0"),
        DeclareLaunchArgument("image_width", default_value="640"),
        DeclareLaunchArgument("image_height", default_value="480"),
        DeclareLaunchArgument("framerate", default_value="30.0"),
        DeclareLaunchArgument(
            "pixel_format",
            default_value="",
            description="camera driver pixel format (usb_cam: yuyv2rgb, mjpeg2rgb, ...; "
            "v4l2_camera: YUYV, MJPG, ...); '' = yuyv2rgb for usb_cam, the v4l2_camera default",
        ),
        DeclareLaunchArgument("file", default_value="", description="video file or bag folder"),
        DeclareLaunchArgument("rate", default_value="1.0", description="file playback speed"),
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw"),
        DeclareLaunchArgument(
            "camera_info_topic",
            default_value="",
            description="CameraInfo topic of the camera ('' = camera_info next to image_topic)",
        ),
        DeclareLaunchArgument("camera_frame", default_value="camera_optical_frame"),
        DeclareLaunchArgument(
            "input_mode",
            default_value="image",
            choices=["image", "skeleton"],
            description="skeleton: s2m_ros/Skeleton3D input, no camera is started",
        ),
        DeclareLaunchArgument("namespace", default_value="s2m"),
        DeclareLaunchArgument(
            "params_file", default_value=PathJoinSubstitution([share, "config", "live.yaml"])
        ),
        DeclareLaunchArgument(
            "fastdds_profile",
            default_value=PathJoinSubstitution([share, "config", "fastdds_large_data.xml"]),
            description="FastDDS profile for large images ('' = none; an exported "
            "FASTDDS_DEFAULT_PROFILES_FILE wins)",
        ),
        DeclareLaunchArgument(
            "retarget",
            default_value="false",
            choices=["true", "false"],
            description="also start s2m_retarget (humanoid robot joint targets from the bodies)",
        ),
        DeclareLaunchArgument(
            "retarget_params_file",
            default_value=PathJoinSubstitution([share, "config", "retarget.yaml"]),
        ),
        DeclareLaunchArgument(
            "robot",
            default_value="",
            description="s2m_retarget robot: g1, s2m_humanoid or a .xml/.urdf path "
            "('' = the params file's)",
        ),
        DeclareLaunchArgument("rviz", default_value="false", choices=["true", "false"]),
        DeclareLaunchArgument(
            "rviz_config", default_value=PathJoinSubstitution([share, "config", "s2m.rviz"])
        ),
    ]
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz",
        arguments=["-d", LaunchConfiguration("rviz_config")],
        condition=IfCondition(LaunchConfiguration("rviz")),
        output="screen",
    )
    return LaunchDescription(
        [
            *arguments,
            OpaqueFunction(function=_fastdds_profile),
            OpaqueFunction(function=_camera_nodes),
            OpaqueFunction(function=_s2m_node),
            OpaqueFunction(function=_retarget_node),
            rviz,
        ]
    )
