"""The small geometry of the analytic IK (:mod:`s2m_model.dik`): orthonormal frames, minimal
swings, twist angles and the hinge-axis blend.

Everything is ONNX-friendly: no SVD and no data-dependent control flow (masks via
``torch.where``), so DIK exports to ONNX (opset >= 17) and TensorRT. Vectors are ``(..., 3)``,
rotations ``(..., 3, 3)`` matrices; angles in radians.
"""

from __future__ import annotations

import roma
import torch

#: Smoothing of :func:`norm` (finite gradients and no division by zero at zero length).
EPS = 1e-8
#: Blend level of fallback axes: a limb-plane normal is used as is once the bend exceeds
#: ~6 deg (sin 6 deg, below the free body's 8.6 deg rest knee bend); below that the fallback
#: takes over continuously.
HINGE_BLEND = 0.1


def norm(v: torch.Tensor) -> torch.Tensor:
    """(...,1) Euclidean norm, smoothed by ``EPS`` (finite gradient at zero)."""
    return torch.sqrt((v * v).sum(-1, keepdim=True) + EPS * EPS)


def unit(v: torch.Tensor) -> torch.Tensor:
    """``v`` scaled to unit length (zero stays ~zero, no NaN)."""
    return v / norm(v)


def frame(primary: torch.Tensor, secondary: torch.Tensor) -> torch.Tensor:
    """(...,3,3) orthonormal frame, columns [p, s_perp, p x s_perp] (Gram-Schmidt)."""
    e1 = unit(primary)
    e2 = unit(secondary - (secondary * e1).sum(-1, keepdim=True) * e1)
    e3 = torch.cross(e1, e2, dim=-1)
    return torch.stack([e1, e2, e3], dim=-1)


def perp(v: torch.Tensor, unit_axis: torch.Tensor) -> torch.Tensor:
    """Component of v perpendicular to a unit axis."""
    return v - (v * unit_axis).sum(-1, keepdim=True) * unit_axis


def swing(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(...,3,3) minimal rotation taking direction a onto b; a 180 deg turn about an axis
    perpendicular to a when they are opposite (continuous quaternion form, no trig)."""
    a, b = unit(a), unit(b)
    w = 1.0 + (a * b).sum(-1, keepdim=True)
    xyz = torch.cross(a, b, dim=-1)
    # Perpendicular to a for the opposite case: a x (the axis least aligned with a).
    helper = torch.where(
        a[..., :1].abs() < 0.9, a.new_tensor([1.0, 0.0, 0.0]), a.new_tensor([0.0, 1.0, 0.0])
    )
    side = unit(torch.cross(a, helper.expand_as(a), dim=-1))
    opposite = w < 1e-6
    q = torch.where(opposite, torch.cat([side, torch.zeros_like(w)], -1), torch.cat([xyz, w], -1))
    return roma.unitquat_to_rotmat(q / norm(q))


def twist_angle(u: torch.Tensor, v: torch.Tensor, axis: torch.Tensor) -> torch.Tensor:
    """(...,1) signed angle about the unit ``axis`` turning u's projection onto v's."""
    u, v = perp(u, axis), perp(v, axis)
    sin = (axis * torch.cross(u, v, dim=-1)).sum(-1, keepdim=True)
    return torch.atan2(sin, (u * v).sum(-1, keepdim=True))


def blend_axis(normal: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
    """Unit hinge axis from a limb-plane normal (|normal| = sin of the bend).

    The fallback is added only as far as the normal's component along it falls short of
    ``HINGE_BLEND``: exact for a clearly bent limb, never zero (a hyperextended limb keeps the
    fallback axis instead of flipping its twist by 180 deg), continuous everywhere.
    """
    fallback = unit(fallback)
    short = (HINGE_BLEND - (normal * fallback).sum(-1, keepdim=True)).clamp(min=0.0)
    return unit(normal + short * fallback)


def hinge_estimate(
    upper: torch.Tensor,
    lower: torch.Tensor,
    along_upper: torch.Tensor,
    along_lower: torch.Tensor,
    dead: torch.Tensor | float = 0.0,
) -> torch.Tensor:
    """(...,3) hinge axis of a bent limb, seen from its two bones, scaled by how well it is seen.

    A hinge turns the lower bone about an axis fixed to the upper one, so the axis keeps its
    cosines to both bone directions: ``along_upper`` = axis . upper and ``along_lower`` =
    axis . lower (...,1), measured on the rest limb. Those two cosines and the side of the
    bend plane the axis lies on (flexion, not hyperextension) fix it. Unlike the bare
    bend-plane normal this stays exact when the rest limb is bent out of its flexion plane
    (a carrying angle: surface keypoints of elbows and knees). The result, the unit axis
    times the flexion measure s = (axis . normal) with
    normal = upper x lower (unit bones; s = sin(flexion) for a straight rest limb), goes to
    zero continuously for a straight limb or one straighter than the rest: feed it to
    :func:`blend_axis` like a normal. A rest limb gives a vector along its own axis (the full
    axis, not only its part perpendicular to ``upper``: the lower bone's frame needs it).

    ``dead`` (...,1) >= 0: flexion measure below which nothing is seen (the result is scaled
    by ``s - dead``, clamped at 0). A rest limb bent slightly backwards of its axis (s < 0 on
    the rest) passes ``-s_rest``: its flexion sign is ambiguous up to there, and the rest
    limb itself then gives zero, i.e. the fallback axis.
    """
    u, f = unit(upper), unit(lower)
    p = (u * f).sum(-1, keepdim=True)
    f_perp = f - p * u
    q2 = (f_perp * f_perp).sum(-1, keepdim=True) + EPS * EPS  # sin^2 of the bend
    normal = torch.cross(u, f, dim=-1)
    # In the basis (u, f_perp/q, normal/q) the axis is (c, (b - p c)/q, s/q).
    off_plane = along_lower - p * along_upper
    s2 = q2 * (1.0 - along_upper * along_upper) - off_plane * off_plane
    s = torch.sqrt(s2.clamp(min=0.0) + EPS * EPS) - EPS
    axis = along_upper * u + (off_plane * f_perp + s * normal) / q2
    return (s - dead).clamp(min=0.0) * axis


def bmv(m: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Batched matrix-vector product: (...,3,3) @ (...,3) -> (...,3)."""
    return (m @ v[..., None])[..., 0]


def rotmat_to_rotvec(r: torch.Tensor) -> torch.Tensor:
    """(...,3,3) rotation matrices -> (...,3) axis-angle (radians), via unit quaternions
    (stable near 0 and pi, exportable)."""
    return roma.unitquat_to_rotvec(roma.rotmat_to_unitquat(r))
