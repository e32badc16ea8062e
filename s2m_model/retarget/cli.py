"""``s2m retarget INPUT --robot g1|PATH --out DIR`` — human motion -> robot joint trajectory.

INPUT is a BVH clip (``.bvh``/``.bvh.xz``, or a Bandai ``dataset-N.tar.xz`` with ``--clip``),
an ``s2m run`` results folder, or a video / image folder (the pipeline runs first). Writes
``joints.npz``, ``joints.csv`` and ``summary.json`` (see :mod:`s2m_model.retarget.outputs`).

Plug-in: :func:`register` adds the sub-command (entry-point group ``s2m.commands``); until it is
wired into ``s2m``, run ``python -m s2m_model.retarget.cli INPUT --out DIR``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``retarget`` sub-parser (sets ``func``)."""
    parser = subparsers.add_parser(
        "retarget",
        help="retarget human motion (BVH / s2m run results / video) onto a humanoid robot",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="BVH clip, `s2m run` output folder, video or image folder")
    parser.add_argument("--robot", default="g1",
                        help="g1 (default, from the mjlab wheel), s2m_humanoid, or a path to an "
                             "MJCF .xml / URDF .urdf file")
    parser.add_argument("--mapping", default=None,
                        help="mapping table YAML (default: the shipped one for the robot)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--clip", default=None, help="clip name/glob inside a Bandai .tar.xz")
    parser.add_argument("--track", type=int, default=None,
                        help="track id to follow (default: the one seen in most frames)")
    parser.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    parser.add_argument("--rate", type=float, default=30.0,
                        help="frame rate (Hz) of the fitted BVH frames (default 30)")
    parser.add_argument("--filter", choices=("auto", "on", "off"), default="auto",
                        help="One-Euro filter on the output (auto: on for camera inputs, off "
                             "for mocap, which is already smooth)")
    parser.add_argument("--iterations", type=int, default=2, help="IK steps per frame")
    parser.add_argument("--velocity-scale", type=float, default=1.0,
                        help="fraction (0..1] of the robot's joint velocity limits to allow")
    parser.add_argument("--no-collision", action="store_true",
                        help="no self-collision avoidance")
    parser.add_argument("--view", action="store_true",
                        help="also write viewer.rrd (robot, human skeleton and mesh, camera image "
                             "of video inputs) into --out; "
                             "view it with python -m s2m_model.viewer.serve (browser)")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from s2m_model.retarget.metrics import summarize_result
    from s2m_model.retarget.outputs import write_outputs
    from s2m_model.retarget.robot import load_robot
    from s2m_model.retarget.sequence import retarget_motion
    from s2m_model.retarget.solver import SolverConfig
    from s2m_model.retarget.sources import load_input

    if args.max_frames is not None and args.max_frames < 1:
        raise ValueError(f"--max-frames must be >= 1, got {args.max_frames}")
    if not args.rate > 0:
        raise ValueError(f"--rate must be > 0, got {args.rate}")
    robot = load_robot(args.robot, args.mapping)
    solver = SolverConfig(iterations=args.iterations, velocity_scale=args.velocity_scale,
                          collision=not args.no_collision)  # fmt: skip
    camera = None
    if args.view:
        from s2m_model.viewer.camera_frames import CameraFrames

        camera = CameraFrames()  # filled only by video / image inputs
    start = time.perf_counter()
    motion, info = load_input(args.input, clip=args.clip, track=args.track,
                              max_frames=args.max_frames, rate_hz=args.rate,
                              on_frame=None if camera is None else camera.add_people)  # fmt: skip
    load_s = time.perf_counter() - start
    use_filter = args.filter == "on" or (args.filter == "auto" and info.get("kind") != "bvh")
    result = retarget_motion(robot, motion, solver=solver, temporal_filter=use_filter)
    summary = {
        "input": str(args.input), **{f"input_{k}": v for k, v in info.items()},
        **summarize_result(robot, result),
        "robot_model": str(robot.model_file), "robot_licence": robot.table.licence,
        "load_s": round(load_s, 2),
    }
    files = write_outputs(args.out, result, summary)
    if args.view:
        from s2m_model.body import load_body_model
        from s2m_model.viewer import write_recording

        body = load_body_model("s2m-free")
        files["viewer"] = str(write_recording(args.out, robot, result, motion, body=body,
                                              camera=camera if camera else None))  # fmt: skip
    console = Console()
    ee = summary["end_effector_err_mm"]
    console.print(
        f"s2m retarget: {summary['frames']} frames -> {robot.name} ({robot.dof} DoF); "
        f"limit violations {summary['joint_limit_violations']} (position), "
        f"{summary['velocity_limit_violations']} (velocity); retarget "
        f"{summary['retarget_ms']['median']:.2f} ms/frame median; end-effector error median "
        + ", ".join(f"{g} {v.get('median', float('nan')):.0f} mm" for g, v in ee.items())
    )
    console.print("outputs: " + ", ".join(files.values()))
    if "viewer" in files:
        console.print(f"3D view: python -m s2m_model.viewer.serve {files['viewer']} (browser) "
                      f"or rerun {files['viewer']} (native)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m s2m_model.retarget.cli`` (same options as ``s2m retarget``)."""
    parser = argparse.ArgumentParser(prog="s2m retarget", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(args)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"s2m retarget: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
