"""Regressed points of a posed body as sums of rigid parts, with analytic Jacobians.

A regressed point (joint, keypoint) is ``R v`` over skinned vertices, and skinning is linear in
the bone transforms, so (rows of ``R`` summing to 1)::

    p_k = sum_j  m_kj p_j + G_j L_kj(beta)

with ``G_j`` / ``p_j`` the world rotation / position of SMPL joint ``j``, ``m_kj`` the skinning
weight mass of point ``k`` on joint ``j`` and ``L_kj`` its rest offset (linear in beta). A small
world-frame turn ``dw`` of joint ``i`` moves every point by ``dw x Q_ki``, ``Q_ki`` the point's
part below ``i`` measured from ``p_i``: the Jacobian needs no autodiff and no mesh. The same
holds for the shape (``p`` is linear in beta at fixed rotations) and the translation.

This is the factored model of :class:`s2m_model.ik_baselines.JointModel`, rearranged per
joint so that Jacobians come out in closed form (``JointModel`` differentiates with
``torch.func``). Pose-corrective blend shapes (real SMPL files) are left out: they move
joints by millimetres. Units: metres; rotations are matrices; frames are the caller's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from s2m_model.smpl_layout import NUM_BETAS, NUM_JOINTS, PARENTS, world_from_local

__all__ = ["PointModel", "PosedPoints", "skew"]


def skew(v: torch.Tensor) -> torch.Tensor:
    """(...,3,3) cross-product matrices of (...,3) vectors."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(*v.shape, 3)


@dataclass
class PosedPoints:
    """Output of :meth:`PointModel.evaluate` for B bodies and K points.

    Attributes:
        points: (B,K,3) regressed points.
        world: (B,24,3,3) world rotations; joints: (B,24,3) joint positions.
        d_rot: (B,K,3,24,3) d points / d (world-frame turn of each joint's subtree).
        d_beta: (B,K,3,10) d points / d betas. (d points / d transl is the identity.)
    """

    points: torch.Tensor
    world: torch.Tensor
    joints: torch.Tensor
    d_rot: torch.Tensor | None = None
    d_beta: torch.Tensor | None = None


class PointModel:
    """Points ``regressor @ vertices`` of a posed body, without the mesh.

    Args:
        body: a :class:`~s2m_model.body.BodyModel`.
        regressor: (K,V) vertex weights (e.g. ``body.regressor("coco17")``, or an adaptive
            regressor's ``dense()``), rows summing to 1.
        dtype: computation dtype.
    """

    def __init__(self, body, regressor: torch.Tensor, dtype: torch.dtype = torch.float32):
        reg = regressor.detach().to(body.dtype)
        if reg.ndim != 2 or reg.shape[1] != body.num_vertices:
            raise ValueError(
                f"regressor must be (K,{body.num_vertices}), got {tuple(regressor.shape)}"
            )
        cols = torch.nonzero(reg.abs().sum(0) > 0)[:, 0]
        r = reg[:, cols]
        lbs = body.lbs_weights[cols]  # (s,24)
        rw = r[:, :, None] * lbs[None]  # (K,s,24)
        self.m = rw.sum(1).to(dtype)  # (K,24)
        p0 = torch.einsum("ksj,sc->kjc", rw, body.v_template[cols])
        ps = torch.einsum("ksj,scl->kjcl", rw, body.shapedirs[cols])
        j0, dj = body.rest_basis("smpl24")
        m = rw.sum(1)
        self.l0 = (p0 - m[..., None] * j0[None]).to(dtype)  # (K,24,3)
        self.dl = (ps - m[..., None, None] * dj[None]).to(dtype)  # (K,24,3,10)
        self.j0, self.dj = j0.to(dtype), dj.to(dtype)
        sub = torch.zeros(NUM_JOINTS, NUM_JOINTS, dtype=dtype)
        for j in range(NUM_JOINTS):
            k = j
            while k >= 0:
                sub[k, j] = 1.0  # j lies in the subtree of k
                k = PARENTS[k]
        self.subtree = sub
        self._parent_idx = torch.tensor([max(p, 0) for p in PARENTS])
        self.num_points = reg.shape[0]
        self.dtype = dtype

    def to(self, device) -> PointModel:
        for name in ("m", "l0", "dl", "j0", "dj", "subtree", "_parent_idx"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    def evaluate(
        self, local: torch.Tensor, betas: torch.Tensor, transl: torch.Tensor, jacobian: bool = True
    ) -> PosedPoints:
        """Points for local rotations (B,24,3,3), betas (B,10), transl (B,3) (SMPL: the root
        joint sits at ``rest_root(betas) + transl``)."""
        return self.evaluate_world(world_from_local(local), betas, transl, jacobian)

    def evaluate_world(
        self, world: torch.Tensor, betas: torch.Tensor, transl: torch.Tensor, jacobian: bool = True
    ) -> PosedPoints:
        """As :meth:`evaluate`, from world rotations (B,24,3,3): no loop over the tree (a joint
        is the root plus its ancestors' rotated bones, one matrix product)."""
        # Plain matmuls throughout: at batch 1, einsum's path search costs more than the maths.
        batch, k = world.shape[0], self.num_points
        rest = self.j0 + (betas @ self.dj.reshape(-1, NUM_BETAS).T).reshape(batch, NUM_JOINTS, 3)
        # Rest joints with their shape directions as extra columns: (B,24,3,11).
        aug = torch.cat([rest[..., None], self.dj.expand(batch, -1, -1, -1)], -1)
        bones = world[:, self._parent_idx] @ (aug - aug[:, self._parent_idx])  # (B,24,3,11)
        bones[:, 0] = aug[:, 0]
        bones[:, 0, :, 0] += transl
        pos = (self.subtree.T @ bones.reshape(batch, NUM_JOINTS, -1)).reshape(bones.shape)
        joints, d_joints = pos[..., 0], pos[..., 1:]  # (B,24,3), (B,24,3,10)
        offset = self.l0 + (betas @ self.dl.reshape(-1, NUM_BETAS).T).reshape(
            batch, k, NUM_JOINTS, 3
        )
        turned = (world[:, None] @ offset[..., None])[..., 0]  # G_j L_kj
        parts = self.m[None, ..., None] * joints[:, None] + turned  # c_kj (B,K,24,3)
        points = parts.sum(2)
        if not jacobian:
            return PosedPoints(points, world, joints)
        d_beta = (self.m @ d_joints.reshape(batch, NUM_JOINTS, -1)).reshape(batch, k, 3, -1)
        d_beta = d_beta + (world[:, None] @ self.dl[None]).sum(2)
        below = self.subtree @ parts  # (B,K,24,3): sum over each joint's subtree
        mass = self.m @ self.subtree.T  # (K,24)
        q = below - mass[None, ..., None] * joints[:, None]  # (B,K,24,3)
        d_rot = -skew(q).permute(0, 1, 3, 2, 4)  # (B,K,3,24,3): d p / d w = -[q]x
        return PosedPoints(points, world, joints, d_rot, d_beta)
