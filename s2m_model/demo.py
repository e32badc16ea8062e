"""``s2m demo`` — the embedded default job behind ``make demo``.

1. Builds (once) the free body model, poses it with a few poses, and writes a rendered PNG and a
   ``.ply`` mesh per pose into ``--out/body``.
2. Runs the whole image -> mesh pipeline (MediaPipe -> lifter -> DIK -> body) on the demo clip
   that set-up fetched from PyPI (``<venv>/share/s2m/demo/demo.mp4``, BSD-3, from the
   ``sports2d`` wheel) and writes overlays, per-frame results, meshes and a latency summary into
   ``--out/video`` (see ``s2m run``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from s2m_model.pipeline.config import DEFAULT_THREADS, LIFTERS

# A few poses as {joint name: axis-angle (radians)}, SMPL body frame (Y up, facing +Z).
DEMO_POSES: dict[str, dict[str, tuple[float, float, float]]] = {
    "t_pose": {},
    "a_pose": {"left_shoulder": (0.0, 0.0, -0.8), "right_shoulder": (0.0, 0.0, 0.8)},
    "wave": {
        "left_shoulder": (0.0, 0.0, 0.4), "left_elbow": (0.0, 0.0, 1.5),
        "right_shoulder": (0.0, 0.0, 1.2),
    },
    "walk": {
        "left_hip": (-0.5, 0.0, 0.0), "left_knee": (0.3, 0.0, 0.0),
        "right_hip": (0.4, 0.0, 0.0), "right_knee": (0.6, 0.0, 0.0),
        "left_shoulder": (0.0, 0.0, -1.2), "right_shoulder": (0.0, 0.0, 1.2),
        "left_elbow": (0.0, -0.4, 0.0), "right_elbow": (0.0, 0.4, 0.0),
    },
    "squat": {
        "left_hip": (-1.6, 0.0, 0.0), "right_hip": (-1.6, 0.0, 0.0),
        "left_knee": (2.0, 0.0, 0.0), "right_knee": (2.0, 0.0, 0.0),
        "left_ankle": (-0.4, 0.0, 0.0), "right_ankle": (-0.4, 0.0, 0.0),
        "spine1": (0.4, 0.0, 0.0), "left_shoulder": (0.0, -1.2, 0.0),
        "right_shoulder": (0.0, 1.2, 0.0),
    },
}  # fmt: skip


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "demo",
        help="run the embedded default job (what `make demo` runs)",
        description="Build the free body model once, pose it with a few poses and write a "
        "rendered PNG and a .ply mesh per pose.",
    )
    parser.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    parser.add_argument("--size", type=int, default=512, help="image height in pixels")
    parser.add_argument(
        "--video",
        default=None,
        help="clip for the pipeline part (default: the demo clip fetched by set-up)",
    )
    parser.add_argument(
        "--max-frames", type=int, default=None, help="limit the frames of the pipeline part"
    )
    parser.add_argument("--skip-video", action="store_true", help="only the body previews")
    parser.add_argument("--lifter", choices=LIFTERS, default=None,
                        help="front end of the pipeline part (see `s2m run --lifter`)")
    parser.add_argument("--config", metavar="YAML", default=None,
                        help="pipeline settings for the pipeline part (see `s2m run --config`)")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS, metavar="N",
                        help=f"torch CPU threads (default {DEFAULT_THREADS})")
    parser.set_defaults(func=run)


def demo_video_path() -> Path:
    """Where `make` puts the demo clip: ``<venv>/share/s2m/demo/demo.mp4``."""
    import sys

    return Path(sys.prefix) / "share" / "s2m" / "demo" / "demo.mp4"


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from PIL import Image

    from s2m_model.body import load_body_model
    from s2m_model.body.render import look_at_body, render_mesh, save_ply
    from s2m_model.camera import Camera
    from s2m_model.pipeline import set_torch_threads

    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    set_torch_threads(args.threads)

    out_dir = Path(args.out) / "body"
    out_dir.mkdir(parents=True, exist_ok=True)
    body = load_body_model("s2m-free")
    names = list(body.joint_names)
    pose = torch.zeros(len(DEMO_POSES), 23, 3)
    for b, joints in enumerate(DEMO_POSES.values()):
        for joint, rotvec in joints.items():
            pose[b, names.index(joint) - 1] = torch.tensor(rotvec)
    out = body(body_pose=pose)
    cam = Camera.from_fov(int(args.size * 0.75), args.size, fov_deg=40.0)
    for b, name in enumerate(DEMO_POSES):
        verts = out.vertices[b].detach().numpy()
        front = render_mesh(look_at_body(verts, cam, yaw_deg=20.0), body.faces, cam)
        side = render_mesh(look_at_body(verts, cam, yaw_deg=90.0), body.faces, cam)
        png = out_dir / f"{name}.png"
        Image.fromarray(np.concatenate([front, side], axis=1)).save(png)
        ply = out_dir / f"{name}.ply"
        save_ply(ply, verts, body.faces)
        print(f"{png}\n{ply}")
    print(
        f"{len(DEMO_POSES)} poses written to {out_dir}/ (body '{body.name}', "
        f"{body.num_vertices} vertices)"
    )
    if args.skip_video:
        return 0
    video = Path(args.video) if args.video else demo_video_path()
    if not video.is_file():
        raise FileNotFoundError(
            f"demo clip not found: {video} (make demo fetches it with tools/fetch_demo_video.sh)"
        )
    from s2m_model.cli import main as s2m_main

    argv = ["run", str(video), "--out", str(Path(args.out) / "video")]
    if args.max_frames:
        argv += ["--max-frames", str(args.max_frames)]
    if args.lifter:
        argv += ["--lifter", args.lifter]
    if args.config:
        argv += ["--config", str(args.config)]
    argv += ["--threads", str(args.threads)]
    print(f"running the pipeline on {video} ...")
    return s2m_main(argv)
