"""``s2m_node``'s parameters: one declarative table, its checks, and params-file loading.

Every parameter is a :class:`ParamSpec` in :data:`PARAMS` (type = the default's type, range,
choices, a named check, read-only flag, description). The node declares them from the table
(descriptors for ``ros2 param describe``), ``s2m live --set`` and ``s2m eval-bag --params``
check values with the same :func:`check_param`.

Parameters that configure the s2m pipeline carry the *same names* as the fields of
:class:`s2m_model.pipeline.PipelineConfig` (``body``, ``detector``, ``lifter``, ``lifter_model``,
``device``, ``temporal``, ``fov_deg``, ``min_keypoint_confidence``, ``max_persons``,
``refine_shape``, ``refine_endpoints``, ``refine_fit``, ``refine_mask``, ``fit_iterations``):
no renaming between layers. Their defaults and domains come from ``PipelineConfig`` and its
:data:`~s2m_model.pipeline.FIELD_RULES`, and :func:`pipeline_fields` hands them to
``PipelineConfig``, whose own validator has the last word.

Nothing here imports rclpy at import time; :func:`load_params_file` uses rcl's own params-file
parser through rclpy when rclpy is present (so wildcard keys such as ``/**/s2m_node`` resolve
exactly as for the node itself), else a small YAML reader with the same node-key matching.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s2m_model.pipeline import FIELD_RULES, PipelineConfig

NODE_NAME = "s2m_node"
#: Namespace of s2m_node in the launch file, ``s2m live`` and the docs (one story: /s2m/...).
DEFAULT_NAMESPACE = "/s2m"

ParamValue = bool | int | float | str


# --------------------------------------------------------------------------- named checks


def _skeleton_format(value: str) -> str | None:
    from s2m_model.skeletons import list_formats

    known = list_formats()
    if value not in known:
        return f"skeleton_format {value!r} is not registered (known: {', '.join(known)})"
    return None


def _detector(value: str) -> str | None:
    from s2m_model.detect import DETECTORS

    if value.strip().lower() not in DETECTORS:
        return f"detector {value!r} is not one of {', '.join(DETECTORS)}"
    return None


_DEVICE_RE = re.compile(r"cpu|cuda(:\d+)?|mps")
_FRAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_/.\-]*")


def _device(value: str) -> str | None:
    if not _DEVICE_RE.fullmatch(value):
        return f"device must be cpu, cuda or cuda:N, got {value!r}"
    return None


def _frame_id(name: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        if value and not _FRAME_RE.fullmatch(value):
            return f"{name} {value!r} must be a tf2 frame id without a leading '/' or spaces"
        return None

    return check


def _non_empty(name: str, hint: str = "") -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return f"{name} must not be empty{hint}" if not value else None

    return check


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of ``s2m_node``.

    Attributes:
        name: parameter name (as in config/live.yaml); a ``PipelineConfig`` field name when
            ``pipeline`` is true.
        default: default value; its Python type is the ROS parameter type.
        description: shown by ``ros2 param describe``.
        read_only: fixed after start-up (topics, models, queue sizes).
        min_value, max_value: inclusive range for numbers (None: unbounded).
        choices: allowed values for strings (None: any).
        check: extra check of a well-typed value, returning the reason it is invalid or None.
        rule: the ``FIELD_RULES`` row of a pipeline setting (its range/choices, instead of
            ``min_value``/``max_value``/``choices``); such a parameter is passed to
            :class:`s2m_model.pipeline.PipelineConfig` under the same name.
    """

    name: str
    default: ParamValue
    description: str
    read_only: bool = True
    min_value: float | None = None
    max_value: float | None = None
    choices: tuple[str, ...] | None = None
    check: Callable[[Any], str | None] | None = None
    rule: Any = None

    @property
    def pipeline(self) -> bool:
        """True for a :class:`~s2m_model.pipeline.PipelineConfig` field."""
        return self.rule is not None


def _topic(name: str, default: str, description: str) -> ParamSpec:
    return ParamSpec(name, default, description, check=_non_empty(name))


_PIPELINE_DEFAULTS = PipelineConfig()


def _pipeline(name: str, description: str, read_only: bool = True, check: Any = None) -> ParamSpec:
    """The parameter of ``PipelineConfig`` field ``name``: its default and rule, same name."""
    default = getattr(_PIPELINE_DEFAULTS, name)
    if FIELD_RULES[name].kind is float:
        default = float(default)  # the ROS parameter type follows the default's type
    return ParamSpec(name, default, description, read_only=read_only, check=check,
                     rule=FIELD_RULES[name])


PARAMS: tuple[ParamSpec, ...] = (
    # ---- input
    ParamSpec("input_mode", "image", "image: camera images -> 2D keypoints -> lifter; "
              "skeleton: s2m_ros/Skeleton3D input", choices=("image", "skeleton")),
    _topic("image_topic", "/camera/image_raw", "sensor_msgs/Image topic (image mode)"),
    ParamSpec("compressed", False, "subscribe to <image_topic>/compressed (CompressedImage)"),
    ParamSpec("camera_info_topic", "/camera/camera_info",
              "sensor_msgs/CameraInfo for the intrinsics ('' = pinhole camera of fov_deg)"),
    _pipeline("fov_deg", "horizontal field of view (degrees) used without CameraInfo",
              read_only=False),
    ParamSpec("camera_frame", "", "frame_id of the outputs ('' = the input header's frame_id)",
              read_only=False, check=_frame_id("camera_frame")),
    _topic("skeleton_topic", "skeleton", "s2m_ros/Skeleton3D topic (skeleton mode)"),
    ParamSpec("skeleton_format", "h36m17",
              "joint layout of incoming skeletons whose message leaves `format` empty",
              read_only=False, check=_skeleton_format),
    # ---- models (PipelineConfig fields)
    _pipeline("body", "body model: s2m-free or a path to an SMPL .pkl/.npz file"),
    _pipeline("detector", "2D keypoint backend (image mode)", check=_detector),
    _pipeline("lifter", "front end (image mode): mediapipe-world (the detector's metric world "
              "landmarks), s2m (the 2D -> 3D lifter) or fused (2D + world landmarks)"),
    _pipeline("lifter_model",
              "weights of the s2m lifter: default, detector-loop or a checkpoint path"),
    _pipeline("device", "torch device: cpu, cuda or cuda:N", check=_device),
    _pipeline("max_persons", "most people estimated per frame (best detector score first)"),
    _pipeline("min_keypoint_confidence", "keypoints/joints below this confidence are unobserved"),
    _pipeline("temporal", "track people across frames (ids, temporal filtering)"),
    _pipeline("track_appearance", "also match people to tracks by clothing colours; a person "
              "missed for a few frames (jumping, crouching) keeps their id"),
    _pipeline("refine_shape", "shape refinement: betas from the skeleton's bone lengths, one "
              "running shape per tracked person (false: the mean shape)"),
    _pipeline("refine_endpoints", "pose refinement of ankles, wrists and head from the "
              "BlazePose 3D points, where the detector gives them"),
    _pipeline("refine_fit", "fit the posed mesh to the 2D keypoints (image mode; a few "
              "Levenberg-Marquardt iterations)"),
    _pipeline("refine_mask", "add the person-mask silhouette term to the fit (slow: ~250 ms "
              "per person)"),
    _pipeline("fit_iterations", "iteration cap of the image fit"),
    # ---- rate and queues
    ParamSpec("max_rate_hz", 15.0, "process at most this many frames per second (0 = all)",
              read_only=False, min_value=0.0, max_value=1000.0),
    ParamSpec("input_queue_size", 1, "frames kept waiting for the worker (1 = newest only; "
              "older frames are dropped)", min_value=1, max_value=100),
    ParamSpec("pipelined", False, "image input: detect the next frame while the bodies of the "
              "current one are estimated (two worker threads, frames in order): a higher frame "
              "rate; on 2 cores also a longer latency (docs/benchmarks.md, Soak)"),
    ParamSpec("output_queue_size", 10, "depth of the output publishers",
              min_value=1, max_value=1000),
    # ---- outputs
    _topic("bodies_topic", "bodies", "s2m_ros/BodyArray output topic"),
    ParamSpec("publish_mesh", True, "publish s2m_ros/BodyMesh", read_only=False),
    _topic("mesh_topic", "mesh", "s2m_ros/BodyMesh output topic"),
    _topic("faces_topic", "mesh_faces", "s2m_ros/MeshFaces topic (latched)"),
    ParamSpec("publish_markers", True, "publish visualization_msgs/MarkerArray meshes",
              read_only=False),
    _topic("markers_topic", "markers", "visualization_msgs/MarkerArray output topic"),
    ParamSpec("marker_rate_hz", 5.0, "most marker arrays per second (0 = every frame)",
              read_only=False, min_value=0.0, max_value=1000.0),
    ParamSpec("publish_tf", True, "publish per-joint TF on /tf", read_only=False),
    ParamSpec("tf_prefix", "s2m/", "TF frames <tf_prefix><track_id>/<joint>", read_only=False,
              check=_frame_id("tf_prefix")),
    ParamSpec("publish_diagnostics", True, "publish diagnostic_msgs on /diagnostics at 1 Hz",
              read_only=False),
    ParamSpec("hri", False, "publish ROS4HRI (REP-155) bodies: /humans/bodies/tracked, "
              "/humans/bodies/<id>/roi|skeleton2d|joint_states, TF body_<id> (needs hri_msgs)"),
)  # fmt: skip
PARAM_SPECS: dict[str, ParamSpec] = {p.name: p for p in PARAMS}
DEFAULTS: dict[str, Any] = {p.name: p.default for p in PARAMS}
PIPELINE_PARAMS: tuple[str, ...] = tuple(p.name for p in PARAMS if p.pipeline)
# Parameters every rclpy node declares itself; a params file may set them, they are not ours.
ROS_NODE_PARAMS = frozenset({"use_sim_time", "start_type_description_service"})


# --------------------------------------------------------------------------- checks


def check_param(name: str, value: Any) -> str | None:
    """Why ``value`` is not valid for parameter ``name``, or None when it is."""
    spec = PARAM_SPECS.get(name)
    if spec is None:
        return f"unknown parameter {name!r} (known: {', '.join(PARAM_SPECS)})"
    kind = type(spec.default)
    ok_type = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        ok_type = True  # YAML and `--set` write 5 for 5.0
    if not ok_type:
        return f"{name} must be a {kind.__name__}, got {value!r}"
    if spec.min_value is not None and value < spec.min_value:
        return f"{name} must be >= {spec.min_value}, got {value!r}"
    if spec.max_value is not None and value > spec.max_value:
        return f"{name} must be <= {spec.max_value}, got {value!r}"
    if spec.choices is not None and value not in spec.choices:
        return f"{name} must be one of {', '.join(spec.choices)}, got {value!r}"
    if spec.rule is not None and not spec.rule.accepts(value):
        return f"{name} must be {spec.rule.describe()}, got {value!r}"  # as PipelineConfig says
    return spec.check(value) if spec.check is not None else None


def _typed(name: str, value: Any) -> Any:
    return float(value) if isinstance(PARAM_SPECS[name].default, float) else value


def check_params(values: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults updated with ``values``, every value checked, the pipeline fields checked by
    ``PipelineConfig`` itself.

    Raises:
        ValueError: the first invalid or unknown parameter, with the reason.
    """
    merged = dict(DEFAULTS)
    for name, value in values.items():
        problem = check_param(name, value)
        if problem:
            raise ValueError(problem)
        merged[name] = _typed(name, value)
    PipelineConfig(**pipeline_fields(merged))  # its validator raises ValueError with the field
    return merged


def pipeline_fields(params: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`s2m_model.pipeline.PipelineConfig` keyword arguments of node parameters."""
    return {name: params[name] for name in PIPELINE_PARAMS}


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["max_rate_hz=5", "publish_tf=false"]`` -> checked s2m_node parameter values.

    Values are YAML scalars; integers are accepted for float parameters; a string parameter
    keeps the text as written (e.g. a frame id ``123``).

    Raises:
        ValueError: no ``=``, an unknown parameter, or an invalid value.
    """
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects NAME=VALUE, got {item!r}")
        value = yaml.safe_load(text) if text else ""
        spec = PARAM_SPECS.get(name)
        if spec is not None and isinstance(spec.default, str) and not isinstance(value, str):
            value = text
        problem = check_param(name, value)
        if problem:
            raise ValueError(problem)
        out[name] = _typed(name, value)
    return out


# --------------------------------------------------------------------------- params files


def node_fqn(node_name: str = NODE_NAME, namespace: str = DEFAULT_NAMESPACE) -> str:
    """Fully qualified node name, e.g. ``/s2m/s2m_node`` (``namespace`` '' or '/' = root)."""
    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    return f"{ns}/{node_name}"


def _key_regex(key: str) -> re.Pattern[str]:
    """rcl's node-name matching of a params-file key: ``/**`` = any namespaces (also none),
    ``*`` = any characters of one name token; a key without a leading '/' is absolute."""
    parts = [p for p in key.strip("/").split("/") if p]
    pattern = "".join(
        "(?:/[^/]+)*" if p == "**" else "/" + re.escape(p).replace(r"\*", "[^/]*") for p in parts
    )
    return re.compile(pattern or "/")


def _sections(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Mapping[str, Any]]]:
    """``(node key, ros__parameters)`` of a params-file mapping, nested namespaces flattened."""
    out = []
    for key, value in data.items():
        if not isinstance(value, Mapping):
            continue
        full = f"{prefix}/{str(key).strip('/')}"
        if "ros__parameters" in value:
            out.append((full, value["ros__parameters"] or {}))
        else:
            out.extend(_sections(value, full))
    return out


def matching_sections(path: str | Path, fqn: str) -> list[str]:
    """The node keys of params file ``path`` that address node ``fqn`` (rcl's matching).

    Raises:
        FileNotFoundError: no such file. ValueError: not a YAML mapping.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no params file at {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: a ROS 2 params file is a mapping '<node>: ros__parameters:'")
    return [key for key, _ in _sections(data) if _key_regex(key).fullmatch(fqn)]


def _yaml_values(path: Path, fqn: str) -> dict[str, Any]:
    import yaml

    values: dict[str, Any] = {}
    for key, section in _sections(yaml.safe_load(path.read_text()) or {}):
        if _key_regex(key).fullmatch(fqn):
            values.update(section)
    return values


def _rcl_values(path: Path, node_name: str, namespace: str) -> dict[str, Any]:
    """The overrides rcl gives node ``namespace/node_name`` from ``--params-file path``."""
    import rclpy
    from rclpy.exceptions import ROSInterruptException

    context = rclpy.Context()
    try:
        rclpy.init(args=["s2m", "--ros-args", "--params-file", str(path)], context=context)
    except (RuntimeError, ROSInterruptException) as exc:  # rcl's RCLError: unparsable file
        raise ValueError(f"{path}: not a valid ROS 2 params file: {exc}") from exc
    try:
        node = rclpy.create_node(
            node_name,
            namespace=namespace or "/",
            context=context,
            start_parameter_services=False,
            enable_rosout=False,
            automatically_declare_parameters_from_overrides=True,
        )
        try:
            params = node.get_parameters_by_prefix("")
            return {k: p.value for k, p in params.items() if k not in ROS_NODE_PARAMS}
        finally:
            node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)


def load_params_file(
    path: str | Path, node_name: str = NODE_NAME, namespace: str = DEFAULT_NAMESPACE
) -> dict[str, Any]:
    """The parameters a ROS 2 params file gives node ``namespace/node_name``, checked.

    Keys are matched as rcl matches them: ``s2m_node:`` addresses ``/s2m_node`` only,
    ``/s2m/s2m_node:`` that namespace, ``/**/s2m_node:`` any namespace, ``/**:`` every node.
    With rclpy the values are read by rcl itself (exactly what the node will see).

    Raises:
        FileNotFoundError: no such file. ValueError: no section addresses the node (rcl would
        silently ignore the file), invalid YAML, an unknown parameter or a bad value.
    """
    path = Path(path)
    fqn = node_fqn(node_name, namespace)
    if not matching_sections(path, fqn):
        raise ValueError(
            f"{path}: no section for node {fqn} (write '/**/{node_name}:' to match it under "
            "any namespace); ROS would ignore this file"
        )
    try:
        import rclpy  # noqa: F401
    except ImportError:
        values = _yaml_values(path, fqn)
    else:
        values = _rcl_values(path, node_name, namespace)
    try:
        return check_params(values)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def descriptor(spec: ParamSpec) -> Any:
    """rcl_interfaces/ParameterDescriptor of ``spec`` (description, read-only, range)."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    out = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
    if spec.choices:
        out.additional_constraints = "one of: " + ", ".join(spec.choices)
    rule = spec.rule
    if rule is not None and (rule.kind in (int, float) or rule.choices):
        # rcl ranges are inclusive and need both ends: the rule's text says the rest
        out.additional_constraints = rule.describe()
        closed = rule.low is not None and rule.high is not None
        if closed and not (rule.low_open or rule.high_open):
            spec = dataclasses.replace(spec, min_value=rule.low, max_value=rule.high)
    if spec.min_value is not None and isinstance(spec.default, float):
        out.floating_point_range = [
            FloatingPointRange(from_value=spec.min_value, to_value=spec.max_value)
        ]
    elif spec.min_value is not None and isinstance(spec.default, int):
        out.integer_range = [
            IntegerRange(from_value=int(spec.min_value), to_value=int(spec.max_value), step=1)
        ]
    return out

