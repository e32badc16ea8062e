"""3D recordings of retargeted motion for Rerun's viewer (``.rrd``): robot, human skeleton and
human mesh side by side.

Rerun (``rerun-sdk`` on PyPI, MIT/Apache-2.0) ships its viewer in the wheel, native and web
(WebAssembly), so a recording is viewed offline: ``rerun viewer.rrd`` (native window) or
:func:`s2m_model.viewer.serve.serve_web` (a local web page, any browser).

Scene (world frame of the robot, z up, metres; one time line ``time`` in seconds):

* ``world/robot`` — the robot's geoms (STL meshes from the MJCF, or its primitive shapes as
  meshes) logged once per body in the body frame, and each body's pose per frame;
* ``world/human/skeleton`` — the human joints and bones (the robot-world motion, shifted by
  ``human_offset`` so the two stand side by side);
* ``world/human/mesh`` — the body mesh, when a body model is given;
* ``world/targets`` — the IK targets (scaled human joints) on the robot;
* ``camera/image`` — the camera frame (downscaled JPEG) with its 2D keypoints and bones, in
  a 2D view beside the 3D one, when camera frames are given
  (:class:`~s2m_model.viewer.camera_frames.CameraFrames`).

Without a robot (``s2m run --view``) the scene holds the people only (``world/human/<track>``
when there are several), in the camera's position turned into the z-up world.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from s2m_model.smpl_layout import PARENTS
from s2m_model.viewer.camera_frames import CameraFrames

#: Where the human is drawn relative to the robot (metres, world frame): to the robot's left.
HUMAN_OFFSET = np.array([0.0, 1.2, 0.0])
ROBOT_COLOUR = (150, 170, 200)
HUMAN_COLOUR = (230, 150, 110)
KEYPOINT_COLOUR = (255, 220, 40)
#: Keypoints at or below this detector confidence are not drawn.
KEYPOINT_MIN_CONFIDENCE = 0.3


def _geom_mesh(model: Any, g: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``(vertices (N,3) in the body frame, faces (F,3))`` of geom ``g`` (None: not drawn)."""
    import mujoco
    import trimesh

    kind = int(model.geom_type[g])
    size = model.geom_size[g]
    if kind == mujoco.mjtGeom.mjGEOM_MESH:
        m = int(model.geom_dataid[g])
        v0, nv = int(model.mesh_vertadr[m]), int(model.mesh_vertnum[m])
        f0, nf = int(model.mesh_faceadr[m]), int(model.mesh_facenum[m])
        verts = model.mesh_vert[v0:v0 + nv].astype(np.float64)
        faces = model.mesh_face[f0:f0 + nf].astype(np.int64)
    elif kind == mujoco.mjtGeom.mjGEOM_BOX:
        t = trimesh.creation.box(extents=2 * size)
        verts, faces = t.vertices, t.faces
    elif kind == mujoco.mjtGeom.mjGEOM_SPHERE:
        t = trimesh.creation.icosphere(subdivisions=2, radius=size[0])
        verts, faces = t.vertices, t.faces
    elif kind == mujoco.mjtGeom.mjGEOM_CAPSULE:
        t = trimesh.creation.capsule(height=2 * size[1], radius=size[0], count=[12, 12])
        verts, faces = t.vertices, t.faces
    elif kind == mujoco.mjtGeom.mjGEOM_CYLINDER:
        t = trimesh.creation.cylinder(radius=size[0], height=2 * size[1], sections=16)
        verts, faces = t.vertices, t.faces
    else:
        return None  # planes, heightfields, ellipsoids: not part of the robots shipped here
    rot = np.empty(9)
    mujoco.mju_quat2Mat(rot, model.geom_quat[g])
    return verts @ rot.reshape(3, 3).T + model.geom_pos[g], faces


def robot_meshes(robot: Any) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per body id: one merged ``(vertices, faces)`` in the body frame.

    Uses the visual geoms when the model has meshes (the G1's STL files), else every geom.
    """
    model = robot.model
    has_mesh = bool(model.nmesh)
    out: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for g in range(model.ngeom):
        if has_mesh and int(model.geom_type[g]) != 7:  # 7 = mjGEOM_MESH
            continue
        mesh = _geom_mesh(model, g)
        if mesh is not None:
            out.setdefault(int(model.geom_bodyid[g]), []).append(mesh)
    merged = {}
    for body, parts in out.items():
        verts, faces, n = [], [], 0
        for v, f in parts:
            verts.append(v)
            faces.append(f + n)
            n += len(v)
        merged[body] = (np.concatenate(verts), np.concatenate(faces))
    return merged


def _body_path(robot: Any, b: int) -> str:
    return f"world/robot/{robot.model.body(b).name or f'body{b}'}"


def write_recording(
    out_dir: str | Path,
    robot: Any,
    result: Any,
    motion: Any,
    *,
    body: Any = None,
    camera: CameraFrames | None = None,
    name: str = "viewer.rrd",
    max_frames: int = 600,
    keypoint_format: str = "coco17",
) -> Path:
    """Write ``out_dir/name``, a Rerun recording of a retargeted clip (see module docstring).

    Args:
        robot: the :class:`~s2m_model.retarget.robot.Robot`, or None (humans only, e.g.
            ``s2m run --view``: no robot, no ground, humans not shifted).
        result: its :class:`~s2m_model.retarget.sequence.RetargetResult` (None without robot).
        motion: the :class:`~s2m_model.retarget.human.HumanMotion` that was retargeted, or
            ``{track_id: HumanMotion}`` (same frames, same world) to draw several people.
        body: optional SMPL-layout body model: the human mesh is drawn too
            (:func:`human_vertices`).
        camera: optional camera frames (JPEG + 2D keypoints, indexed like ``motion``'s
            frames), drawn in a 2D view ``camera`` beside the 3D view.
        max_frames: frames logged at most (evenly spaced), to bound the file size.
        keypoint_format: skeleton format of the 2D keypoints (bones drawn between them).

    Raises:
        ModuleNotFoundError: rerun-sdk is not installed (pip install rerun-sdk==0.22.1).
        ValueError: a robot without a result, or motions of different lengths.
    """
    import rerun as rr
    import rerun.blueprint as rrb

    motions = dict(motion) if isinstance(motion, Mapping) else {0: motion}
    if robot is not None and result is None:
        raise ValueError("write_recording: a robot needs its retarget result")
    lengths = {len(m) for m in motions.values()}
    if len(lengths) > 1:
        raise ValueError(f"write_recording: motions of different lengths {sorted(lengths)}")
    if not motions and result is None:
        raise ValueError("write_recording: nothing to draw (no motion, no result)")
    t_all = np.asarray(result.t if result is not None else next(iter(motions.values())).t)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    rec = rr.new_recording("s2m_retarget" if robot is not None else "s2m_run")
    views: list[Any] = [rrb.Spatial3DView(origin="world", name="3D")]
    if camera is not None and len(camera):
        views.append(rrb.Spatial2DView(origin="camera", name="camera"))
    rr.save(str(path), default_blueprint=rrb.Horizontal(*views), recording=rec)

    def log(entity: str, value: Any, static: bool = False) -> None:
        rr.log(entity, value, static=static, recording=rec)

    log("world", rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)
    meshes: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    offset = np.zeros(3)
    if robot is not None:
        offset = HUMAN_OFFSET
        ground = np.array([[-2.0, -2.0, 0.0], [2.0, -2.0, 0.0], [2.0, 3.0, 0.0],
                           [-2.0, 3.0, 0.0]])  # fmt: skip
        log("world/ground", rr.LineStrips3D([np.vstack([ground, ground[:1]])],
                                            colors=[(90, 90, 90)]), static=True)  # fmt: skip
        meshes = robot_meshes(robot)
        for b, (verts, tri) in meshes.items():
            log(f"{_body_path(robot, b)}/mesh",
                rr.Mesh3D(vertex_positions=verts.astype(np.float32), triangle_indices=tri,
                          albedo_factor=ROBOT_COLOUR), static=True)  # fmt: skip
    T = len(t_all)
    frames = np.unique(np.linspace(0, T - 1, min(T, max_frames)).round().astype(int))
    vertices: dict[int, dict[int, np.ndarray]] = {}
    faces = None
    if body is not None:
        faces = np.asarray(body.faces, dtype=np.uint32)
        for track, m in motions.items():
            vertices[track] = dict(zip(frames.tolist(), human_vertices(m, body, frames),
                                       strict=True))  # fmt: skip
            # Faces and colour once (static); only the vertices change per frame: logging the
            # whole mesh each frame made recordings ~3x larger.
            log(f"{_human_path(track, len(motions))}/mesh",
                rr.Mesh3D.from_fields(triangle_indices=faces, albedo_factor=HUMAN_COLOUR),
                static=True)  # fmt: skip
    bones = [(j, p) for j, p in enumerate(PARENTS) if p >= 0]
    kp_bones = _keypoint_bones(keypoint_format)
    for i in frames.tolist():
        rr.set_time_seconds("time", float(t_all[i]), recording=rec)
        if robot is not None:
            data = robot.forward(robot.qpos(result.q[i], result.root_pos[i],
                                            result.root_quat[i]))  # fmt: skip
            for b in meshes:
                log(_body_path(robot, b),
                    rr.Transform3D(translation=data.xpos[b], mat3x3=data.xmat[b].reshape(3, 3)))
            tgt = result.targets[i]
            log("world/targets", rr.Points3D(tgt[np.isfinite(tgt).all(-1)], radii=0.015,
                                             colors=[(60, 200, 90)]))  # fmt: skip
        for track, m in motions.items():
            prefix = _human_path(track, len(motions))
            joints = m.joints[i] + offset
            ok = np.isfinite(joints).all(-1)
            log(f"{prefix}/skeleton/joints", rr.Points3D(joints[ok], radii=0.02,
                                                         colors=[HUMAN_COLOUR]))  # fmt: skip
            segs = [joints[[p, j]] for j, p in bones if ok[j] and ok[p]]
            log(f"{prefix}/skeleton/bones", rr.LineStrips3D(segs, colors=[HUMAN_COLOUR]))
            v = vertices.get(track, {}).get(i)
            if v is not None and np.isfinite(v).all():
                log(f"{prefix}/mesh", rr.Mesh3D.from_fields(
                    vertex_positions=(v + offset).astype(np.float32)))  # fmt: skip
            elif v is not None:  # person not seen: no mesh (an empty vertex list)
                log(f"{prefix}/mesh", rr.Mesh3D.from_fields(
                    vertex_positions=np.zeros((0, 3), np.float32)))  # fmt: skip
        if camera is not None and i in camera.jpeg:
            _log_camera(log, camera, i, kp_bones)
    rr.disconnect(recording=rec)
    return path


def _human_path(track: int, people: int) -> str:
    return "world/human" if people == 1 else f"world/human/{track}"


def _keypoint_bones(fmt: str) -> list[tuple[int, int]]:
    from s2m_model.skeletons import get_format

    return [(j, p) for j, p in enumerate(get_format(fmt).parents) if p >= 0]


def _log_camera(log: Any, camera: CameraFrames, i: int, bones: list[tuple[int, int]]) -> None:
    """The JPEG frame ``i`` and its keypoints (confidence > 0.3) under ``camera/``."""
    import rerun as rr

    log("camera/image", rr.EncodedImage(contents=camera.jpeg[i], media_type="image/jpeg"))
    points, segs = [], []
    for kp in camera.keypoints.get(i, {}).values():
        ok = np.isfinite(kp).all(-1) & (kp[:, 2] > KEYPOINT_MIN_CONFIDENCE)
        points.append(kp[ok, :2])
        segs += [kp[[p, j], :2] for j, p in bones if j < len(kp) and ok[j] and ok[p]]
    pts = np.concatenate(points) if points else np.zeros((0, 2))
    log("camera/image/keypoints", rr.Points2D(pts, radii=2.5, colors=[KEYPOINT_COLOUR]))
    log("camera/image/bones", rr.LineStrips2D(segs, colors=[KEYPOINT_COLOUR]))


def human_vertices(motion: Any, body: Any, frames: np.ndarray | None = None) -> np.ndarray:
    """Body-model vertices ``(T, V, 3)`` of a :class:`HumanMotion`, in its (robot-world) frame.

    The motion's world joint frames give the root orientation (``global_orient`` = the
    pelvis frame, which maps body-model axes to the world) and the local rotations; the mesh
    is then moved so its pelvis joint lies on the motion's pelvis. Frames without a finite
    pelvis are NaN.
    """
    import roma
    import torch

    from s2m_model.smpl_layout import local_from_world

    T = len(motion)
    idx = np.arange(T) if frames is None else np.asarray(frames)
    world = torch.as_tensor(np.nan_to_num(motion.rotations[idx]))
    local = local_from_world(world)
    rotvec = roma.rotmat_to_rotvec(local).to(torch.float32)
    betas = torch.zeros(len(idx), 10)
    if motion.betas is not None:
        betas[:] = torch.as_tensor(motion.betas, dtype=torch.float32)
    with torch.no_grad():
        out = body(betas=betas, global_orient=rotvec[:, 0], body_pose=rotvec[:, 1:],
                   transl=torch.zeros(len(idx), 3))  # fmt: skip
    verts = out.vertices.double().numpy()
    shift = motion.joints[idx, 0] - out.joints[:, 0].double().numpy()
    verts = verts + shift[:, None]
    verts[~np.isfinite(motion.joints[idx, 0]).all(-1)] = np.nan
    return verts
