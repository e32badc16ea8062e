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
* ``world/targets`` — the IK targets (scaled human joints) on the robot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from s2m_model.smpl_layout import PARENTS

#: Where the human is drawn relative to the robot (metres, world frame): to the robot's left.
HUMAN_OFFSET = np.array([0.0, 1.2, 0.0])
ROBOT_COLOUR = (150, 170, 200)
HUMAN_COLOUR = (230, 150, 110)


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
    name: str = "viewer.rrd",
    max_frames: int = 600,
) -> Path:
    """Write ``out_dir/name``, a Rerun recording of a retargeted clip (see module docstring).

    Args:
        robot: the :class:`~s2m_model.retarget.robot.Robot`.
        result: its :class:`~s2m_model.retarget.sequence.RetargetResult`.
        motion: the :class:`~s2m_model.retarget.human.HumanMotion` that was retargeted.
        body: optional SMPL-layout body model: the human mesh is drawn too
            (:func:`human_vertices`).
        max_frames: frames logged at most (evenly spaced), to bound the file size.

    Raises:
        ModuleNotFoundError: rerun-sdk is not installed (pip install rerun-sdk==0.22.1).
    """
    import rerun as rr

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    rec = rr.new_recording("s2m_retarget")
    rr.save(str(path), recording=rec)

    def log(entity: str, value: Any, static: bool = False) -> None:
        rr.log(entity, value, static=static, recording=rec)

    log("world", rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)
    ground = np.array([[-2.0, -2.0, 0.0], [2.0, -2.0, 0.0], [2.0, 3.0, 0.0], [-2.0, 3.0, 0.0]])
    log("world/ground", rr.LineStrips3D([np.vstack([ground, ground[:1]])],
                                        colors=[(90, 90, 90)]), static=True)  # fmt: skip
    meshes = robot_meshes(robot)
    for b, (verts, tri) in meshes.items():
        log(f"{_body_path(robot, b)}/mesh",
            rr.Mesh3D(vertex_positions=verts.astype(np.float32), triangle_indices=tri,
                      albedo_factor=ROBOT_COLOUR), static=True)  # fmt: skip
    T = len(result.t)
    frames = np.unique(np.linspace(0, T - 1, min(T, max_frames)).round().astype(int))
    vertices, faces = None, None
    if body is not None:
        vertices = dict(zip(frames.tolist(), human_vertices(motion, body, frames), strict=True))
        faces = np.asarray(body.faces, dtype=np.int64)
    bones = [(j, p) for j, p in enumerate(PARENTS) if p >= 0]
    for i in frames.tolist():
        rr.set_time_seconds("time", float(result.t[i]), recording=rec)
        data = robot.forward(robot.qpos(result.q[i], result.root_pos[i], result.root_quat[i]))
        for b in meshes:
            log(_body_path(robot, b),
                rr.Transform3D(translation=data.xpos[b], mat3x3=data.xmat[b].reshape(3, 3)))
        joints = motion.joints[i] + HUMAN_OFFSET
        ok = np.isfinite(joints).all(-1)
        log("world/human/skeleton/joints", rr.Points3D(joints[ok], radii=0.02,
                                                       colors=[HUMAN_COLOUR]))  # fmt: skip
        segs = [joints[[p, j]] for j, p in bones if ok[j] and ok[p]]
        log("world/human/skeleton/bones", rr.LineStrips3D(segs, colors=[HUMAN_COLOUR]))
        tgt = result.targets[i]
        log("world/targets", rr.Points3D(tgt[np.isfinite(tgt).all(-1)], radii=0.015,
                                         colors=[(60, 200, 90)]))  # fmt: skip
        if vertices is not None and np.isfinite(vertices[i]).all():
            verts = (vertices[i] + HUMAN_OFFSET).astype(np.float32)
            log("world/human/mesh", rr.Mesh3D(vertex_positions=verts, triangle_indices=faces,
                                              albedo_factor=HUMAN_COLOUR))  # fmt: skip
    rr.disconnect(recording=rec)
    return path


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
