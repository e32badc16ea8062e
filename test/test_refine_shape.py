"""Shape refinement: bone lengths -> betas (closed form) and the per-track shape estimate."""

from __future__ import annotations

import pytest
import torch

from s2m_model import dik
from s2m_model.eval import metrics
from s2m_model.refine.shape_from_bones import BoneShapeSolver, bone_set, shape_from_bones
from s2m_model.refine.synthetic import sample_bodies
from s2m_model.skeletons import get_format
from s2m_model.smpl_layout import JOINT_INDEX


@pytest.fixture(scope="module")
def posed(body):
    return sample_bodies(body, 48, seed=3)


def test_bones_recover_long_bones_and_pve(body, posed):
    skel = body.regress(posed.vertices, "h36m17")
    solver = BoneShapeSolver(body, "h36m17")
    est = solver(skel)
    long = solver.bones.long_bone_indices()
    assert len(long) == 8
    err_mm = (est.fitted - solver.rest_lengths(posed.betas))[:, long].abs() * 1000
    assert float(err_mm.mean()) <= 5.0 and float(err_mm.max()) <= 15.0, err_mm.max()
    # Zero betas get the long bones wrong by centimetres on these shapes (the test can fail).
    zero_mm = solver.rest_lengths(torch.zeros_like(posed.betas)) - solver.rest_lengths(posed.betas)
    assert float(zero_mm[:, long].abs().mean()) * 1000 > 3 * float(err_mm.mean())

    def pve(betas):
        r = dik.solve(skel, "h36m17", body, betas=betas)
        out = body(betas=betas, global_orient=r.global_orient, body_pose=r.body_pose,
                   transl=r.transl)  # fmt: skip
        return float(metrics.pve(out.vertices, posed.vertices))

    sr, zero = pve(est.betas), pve(torch.zeros_like(posed.betas))
    assert sr <= 25.0 and sr < 0.7 * zero, (sr, zero)


def test_uncertainty_and_used_bones(body, posed):
    skel = body.regress(posed.vertices[:4], "h36m17")
    est = shape_from_bones(skel, "h36m17", body)
    assert est.betas.shape == (4, 10) and est.covariance.shape == (4, 10, 10)
    var = torch.diagonal(est.covariance, dim1=-2, dim2=-1)
    # Stature (beta 0) is seen by every bone: far below the prior variance 1.
    assert float(var[:, 0].max()) < 0.05 and float(var.max()) <= 1.0 + 1e-9
    assert bool((est.used == len(bone_set("h36m17").pairs)).all())
    assert float(est.residual.max()) < 0.01


def test_missing_and_low_confidence_joints(body, posed):
    skel = body.regress(posed.vertices[:3], "h36m17").clone()
    fmt = get_format("h36m17")
    skel[0, fmt.index("L_Wrist")] = float("nan")
    conf = torch.ones(3, 17, dtype=skel.dtype)
    conf[1, fmt.index("R_Knee")] = 0.1
    est = shape_from_bones(skel, "h36m17", body, confidence=conf)
    full = len(bone_set("h36m17").pairs)
    assert est.used.tolist() == [full - 1, full - 2, full]
    assert bool(torch.isfinite(est.betas).all())
    # Nothing valid: the prior mean, no NaN.
    none = shape_from_bones(torch.full((1, 17, 3), float("nan"), dtype=skel.dtype), "h36m17", body)
    assert int(none.used[0]) == 0 and float(none.betas.abs().max()) == 0.0


def test_mocap_format_uses_mapped_smpl_joints(body, posed):
    fmt = get_format("bandai27")
    skel = torch.full((posed.joints.shape[0], fmt.num_joints, 3), float("nan"), dtype=body.dtype)
    for name, smpl in fmt.smpl_map.items():
        skel[:, fmt.index(name)] = posed.joints[:, JOINT_INDEX[smpl]]
    solver = BoneShapeSolver(body, fmt)
    est = solver(skel)
    long = solver.bones.long_bone_indices()
    err_mm = (est.fitted - solver.rest_lengths(posed.betas))[:, long].abs() * 1000
    assert len(long) == 8 and float(err_mm.mean()) < 5.0


def test_bad_input_raises(body):
    with pytest.raises(ValueError, match="h36m17"):
        shape_from_bones(torch.zeros(2, 16, 3), "h36m17", body)
    with pytest.raises(ValueError, match="torch tensor"):
        shape_from_bones([[0.0, 0.0, 0.0]] * 17, "h36m17", body)
    with pytest.raises(ValueError, match="length_sigma"):
        BoneShapeSolver(body, "h36m17", length_sigma=0.0)
    with pytest.raises(ValueError, match="betas_init"):
        shape_from_bones(torch.zeros(1, 17, 3), "h36m17", body, betas_init=torch.zeros(2, 10))


# ------------------------------------------------------------------------------ shape track
def _noisy_frames(body, frames=40, noise=0.015, seed=5):
    """One person (fixed betas) in many poses, h36m17 joints with Gaussian noise (metres)."""
    out = sample_bodies(body, frames, seed=seed)
    betas = out.betas[:1].expand(frames, -1)
    out = body(betas=betas, global_orient=out.global_orient, body_pose=out.body_pose)
    skel = body.regress(out.vertices, "h36m17")
    g = torch.Generator().manual_seed(seed)
    skel = skel + noise * torch.randn(skel.shape, generator=g, dtype=skel.dtype)
    # length_sigma matches the noise of a bone length (sqrt(2) x the per-joint noise).
    return out.betas[0], BoneShapeSolver(body, "h36m17", length_sigma=1.5 * noise)(skel)


def test_track_converges_to_the_person(body):
    from s2m_model.refine.shape_track import ShapeTrack

    truth, est = _noisy_frames(body)
    track = ShapeTrack(window=None)
    stds, errs = [], []
    for b, c in zip(est.betas, est.covariance, strict=True):
        assert track.update(b, c)
        stds.append(float(track.snapshot().std[0]))
        errs.append(float((track.betas - truth)[:3].abs().mean()))
    per_frame = float((est.betas - truth)[:, :3].abs().mean())
    assert errs[-1] < 0.5 * per_frame, (errs[-1], per_frame)
    assert all(a >= b - 1e-12 for a, b in zip(stds, stds[1:], strict=False))
    assert stds[-1] < stds[0] / 4 and track.frames == len(stds)
    # The prior counts once: one frame gives back that frame's own estimate.
    one = ShapeTrack()
    one.update(est.betas[0], est.covariance[0])
    assert torch.allclose(one.betas, est.betas[0], atol=1e-9)
    assert torch.allclose(one.covariance, est.covariance[0], atol=1e-9)


def test_track_rejects_outliers_and_forgets(body):
    from s2m_model.refine.shape_track import ShapeTrack, ShapeTracks

    _, est = _noisy_frames(body, frames=12)
    track = ShapeTrack(window=50)
    for b, c in zip(est.betas, est.covariance, strict=True):
        track.update(b, c)
    before = track.betas.clone()
    other = est.betas[0] + 3.0  # a different person, confidently measured
    assert not track.update(other, est.covariance[0])
    assert not track.update(torch.full((10,), float("nan")), est.covariance[0])
    assert track.rejected == 2 and torch.equal(track.betas, before)
    with pytest.raises(ValueError, match="covariance"):
        track.update(est.betas[0], torch.eye(3))
    with pytest.raises(ValueError, match="window"):
        ShapeTracks(window=0.5)
    tracks = ShapeTracks(window=50)
    ok = tracks.update(["a", "b"], est.betas[:2], est.covariance[:2])
    betas, std = tracks.get(["a", "b", "new"])
    assert ok == [True, True] and betas.shape == (3, 10) and float(std[2].min()) == 1.0
    tracks.prune(["b"])
    assert list(tracks.tracks) == ["b"]
