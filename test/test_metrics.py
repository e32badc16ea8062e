"""Metrics, protocols and reports against hand-computed values on tiny cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import roma
import torch

from s2m_model.eval import (
    PCK_THRESHOLDS_MM,
    acceleration_error,
    auc,
    joint_angle_error,
    mpjpe,
    pa_mpjpe,
    pa_pve,
    pck,
    procrustes_align,
    pve,
    silhouette_iou,
)
from s2m_model.eval.protocols import evaluate_joints, per_joint_mpjpe
from s2m_model.eval.report import write_report

# Three joints; the prediction is shifted by (0.5, 0.5, 0.5) m and joint 2 is off by a 3-4-5 cm
# triangle, i.e. 50 mm.
GT3 = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
PRED3 = GT3 + 0.5 + np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.03, 0.04]])

# A square in the xy plane and the same square stretched x3 along y: the best similarity has
# R = I, t = 0 and s = tr(M) / sum|p|^2 = (2 + 6) / 20 = 0.4, leaving errors 0.6, 0.6, 0.2, 0.2 m.
SQUARE = np.array([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, -1.0, 0.0]])
STRETCHED = SQUARE * np.array([1.0, 3.0, 1.0])


def _rot(rotvec) -> np.ndarray:
    return roma.rotvec_to_rotmat(torch.tensor(rotvec, dtype=torch.float64)).numpy()


# ----------------------------------------------------------------------------- MPJPE
def test_mpjpe_hand_computed_roots():
    assert float(mpjpe(PRED3, GT3)) == pytest.approx(50.0 / 3, abs=1e-9)
    # Root = mean of joints 1, 2: every joint then errs by half the 50 mm offset.
    assert float(mpjpe(PRED3, GT3, root=[1, 2])) == pytest.approx(25.0, abs=1e-9)
    # No alignment: |(0.5,0.5,0.5)| twice and |(0.5,0.53,0.54)| once.
    expected = (2 * math.sqrt(0.75) + math.sqrt(0.25 + 0.53**2 + 0.54**2)) / 3 * 1000
    assert float(mpjpe(PRED3, GT3, root=None)) == pytest.approx(expected, abs=1e-9)
    # Joint subset after aligning on the full skeleton.
    assert float(mpjpe(PRED3, GT3, joints=[2])) == pytest.approx(50.0, abs=1e-9)
    assert float(mpjpe(PRED3, GT3, joints=[-1])) == pytest.approx(50.0, abs=1e-9)


def test_mpjpe_batch_dims_reductions_and_types():
    pred = np.broadcast_to(PRED3, (2, 3, 3, 3)).copy()
    gt = np.broadcast_to(GT3, (2, 3, 3, 3)).copy()
    pred[1, 2, 2] += np.array([0.0, 0.0, 0.05])  # that sample's joint 2: (0, 0.03, 0.09) -> 94.87
    per_sample = mpjpe(pred, gt, reduction="sample")
    per_joint = mpjpe(pred, gt, reduction="none")
    assert per_sample.shape == (2, 3) and per_joint.shape == (2, 3, 3)
    assert float(per_joint[1, 2, 2]) == pytest.approx(math.hypot(30.0, 90.0), abs=1e-9)
    assert float(per_sample[0, 0]) == pytest.approx(50.0 / 3, abs=1e-9)
    assert float(mpjpe(pred, gt)) == pytest.approx(float(per_joint.mean()), abs=1e-12)
    # torch float32 in, float32 out; same value as numpy.
    t32 = mpjpe(torch.tensor(PRED3, dtype=torch.float32), torch.tensor(GT3, dtype=torch.float32))
    assert t32.dtype == torch.float32
    assert float(t32) == pytest.approx(50.0 / 3, abs=1e-3)


def test_mpjpe_nan_needs_valid_mask():
    pred = PRED3.copy()
    pred[1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        mpjpe(pred, GT3)
    # Excluding the NaN joint: joints 0 and 2 remain, errors 0 and 50 mm.
    assert float(mpjpe(pred, GT3, valid=[True, False, True])) == pytest.approx(25.0, abs=1e-9)
    assert torch.isnan(mpjpe(pred, GT3, valid=[True, False, True], reduction="none")[1])


def test_mpjpe_invalid_root_excludes_the_sample():
    pred = np.stack([PRED3, PRED3 + np.array([0.0, 0.0, 0.1])])
    gt = np.stack([GT3, GT3])
    valid = np.array([[True, True, True], [False, True, True]])
    # Sample 1 cannot be root-aligned: only sample 0 counts.
    assert float(mpjpe(pred, gt, valid=valid)) == pytest.approx(50.0 / 3, abs=1e-9)
    per_sample = mpjpe(pred, gt, valid=valid, reduction="sample")
    assert torch.isnan(per_sample[1]) and not torch.isnan(per_sample[0])
    with pytest.raises(ValueError, match="nothing to score"):
        mpjpe(pred, gt, valid=np.zeros((2, 3), dtype=bool))


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="same shape"):
        mpjpe(PRED3, GT3[:2])
    with pytest.raises(ValueError, match="reduction"):
        mpjpe(PRED3, GT3, reduction="sum")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="out of range"):
        mpjpe(PRED3, GT3, root=5)
    with pytest.raises(ValueError, match="broadcast"):
        mpjpe(PRED3, GT3, valid=[True, False])


# ----------------------------------------------------------------------------- Procrustes
def test_pa_mpjpe_hand_computed_and_invariant():
    assert float(pa_mpjpe(STRETCHED, SQUARE)) == pytest.approx(400.0, abs=1e-6)
    moved = 2.5 * STRETCHED @ _rot([0.3, -1.0, 2.0]).T + np.array([5.0, -2.0, 1.0])
    assert float(pa_mpjpe(moved, SQUARE)) == pytest.approx(400.0, abs=1e-6)
    # MPJPE is not invariant to that: a sanity check that the alignment did the work.
    assert float(mpjpe(moved, SQUARE)) > 1000.0


def test_procrustes_recovers_known_similarity():
    gt = np.array([[0.0, 0.0, 0.0], [0.3, 0.1, 0.0], [0.0, 0.4, 0.1], [0.1, 0.0, 0.5]])
    R = _rot([0.0, 0.0, math.pi / 2])
    pred = 2.0 * gt @ R.T + np.array([1.0, 2.0, 3.0])
    aligned, (s, R_fit, t) = procrustes_align(pred, gt, return_transform=True)
    np.testing.assert_allclose(aligned.numpy(), gt, atol=1e-12)
    assert float(s) == pytest.approx(0.5, abs=1e-12)
    np.testing.assert_allclose(R_fit.numpy(), R.T, atol=1e-12)
    assert float(pa_mpjpe(pred, gt)) == pytest.approx(0.0, abs=1e-9)


def test_procrustes_excludes_reflections():
    chiral = np.array([[0.0, 0.0, 0.0], [0.3, 0.0, 0.0], [0.0, 0.2, 0.0], [0.0, 0.0, 0.1]])
    mirrored = chiral * np.array([-1.0, 1.0, 1.0])
    _, (_, R, _) = procrustes_align(mirrored, chiral, return_transform=True)
    assert float(torch.linalg.det(R)) == pytest.approx(1.0, abs=1e-12)
    # A reflection would fit exactly; a rotation cannot.
    assert float(pa_mpjpe(mirrored, chiral)) > 10.0


def test_procrustes_degenerate_cases():
    # A prediction collapsed to a point: s = 0, everything lands on the gt centroid (0, 0, 0),
    # so each square corner errs by 1 m.
    assert float(pa_mpjpe(np.zeros((4, 3)), SQUARE)) == pytest.approx(1000.0, abs=1e-9)
    with pytest.raises(ValueError, match="at least 3"):
        procrustes_align(SQUARE, SQUARE, valid=[True, True, False, False])
    # pa_mpjpe treats such a sample as having nothing to score.
    batch_valid = np.array([[True, True, True, True], [True, True, False, False]])
    per_sample = pa_mpjpe(
        np.stack([STRETCHED, STRETCHED]), np.stack([SQUARE, SQUARE]), valid=batch_valid,
        reduction="sample",
    )  # fmt: skip
    assert float(per_sample[0]) == pytest.approx(400.0, abs=1e-6)
    assert torch.isnan(per_sample[1])


def test_pve_and_pa_pve():
    verts = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    offset = np.array([0.003, 0.004, 0.0])  # 5 mm
    assert float(pve(verts + offset, verts)) == pytest.approx(5.0, abs=1e-9)
    zero = np.zeros(3)
    assert float(pve(verts + offset, verts, pred_root=offset, gt_root=zero)) == pytest.approx(
        0.0, abs=1e-9
    )
    assert float(pa_pve(STRETCHED, SQUARE)) == pytest.approx(400.0, abs=1e-6)
    with pytest.raises(ValueError, match="both"):
        pve(verts, verts, pred_root=zero)


# ----------------------------------------------------------------------------- PCK / AUC
def _pck_case() -> tuple[np.ndarray, np.ndarray]:
    # Root at the origin (error 0, not scored below) and four joints off by 12, 102, 147, 153 mm.
    gt = np.zeros((5, 3))
    pred = np.zeros((5, 3))
    pred[1:, 0] = np.array([12.0, 102.0, 147.0, 153.0]) / 1000.0
    return pred, gt


def test_pck_and_auc_hand_computed():
    pred, gt = _pck_case()
    scored = [1, 2, 3, 4]
    assert float(pck(pred, gt, joints=scored)) == pytest.approx(75.0)
    assert float(pck(pred, gt, 100.0, joints=scored)) == pytest.approx(25.0)
    # PCK at 0,5,10 -> 0 joints; 15..100 (18 thresholds) -> 1; 105..145 (9) -> 2; 150 -> 3.
    expected_auc = (18 * 1 + 9 * 2 + 1 * 3) / (4 * 31) * 100
    assert float(auc(pred, gt, joints=scored)) == pytest.approx(expected_auc)
    assert len(PCK_THRESHOLDS_MM) == 31 and PCK_THRESHOLDS_MM[-1] == 150.0
    # Strict "<": zero error is not within the 0 mm threshold (30 of 31 thresholds hit).
    assert float(auc(gt, gt)) == pytest.approx(30 / 31 * 100)


def test_pck_alignment_modes():
    gt = np.array([[0.0, 0.0, 0.0], [0.3, 0.1, 0.0], [0.0, 0.4, 0.1], [0.1, 0.0, 0.5]])
    pred = 1.5 * gt @ _rot([0.0, 0.4, 0.0]).T + np.array([1.0, 0.0, 0.0])
    assert float(pck(pred, gt, align="procrustes")) == pytest.approx(100.0)
    assert float(pck(pred, gt, align="root")) < 100.0
    assert float(pck(pred, gt, align="none")) == pytest.approx(0.0)
    per_sample = auc(np.stack([gt, pred]), np.stack([gt, gt]), reduction="sample")
    assert per_sample.shape == (2,) and float(per_sample[0]) > float(per_sample[1])


# ----------------------------------------------------------------------------- angles
def test_joint_angle_error_known_angles():
    pred = np.stack([np.eye(3), _rot([0.0, 0.0, 0.3]), _rot([1.2, 0.0, 0.0])])
    gt = np.stack([np.eye(3), np.eye(3), np.eye(3)])
    per_joint = joint_angle_error(pred, gt, reduction="none")
    np.testing.assert_allclose(per_joint.numpy(), [0.0, 0.3, 1.2], atol=1e-12)
    assert float(joint_angle_error(pred, gt, joints=[1, 2])) == pytest.approx(0.75, abs=1e-12)
    # The relative rotation matters, not the absolute ones.
    base = _rot([0.4, -0.2, 0.9])
    assert float(joint_angle_error(base @ _rot([0, 0.5, 0])[None], base[None])) == pytest.approx(
        0.5, abs=1e-12
    )


@pytest.mark.parametrize("angle", [1e-9, 1e-5, math.pi - 1e-6, math.pi])
def test_joint_angle_error_stable_near_0_and_pi(angle):
    axis = np.array([0.2, 0.5, -0.7]) / np.linalg.norm([0.2, 0.5, -0.7])
    err = joint_angle_error(_rot(axis * angle)[None], np.eye(3)[None])
    assert float(err) == pytest.approx(angle, abs=1e-9)


def test_joint_angle_error_batch_and_nan():
    pred = np.broadcast_to(_rot([0.0, 0.2, 0.0]), (4, 2, 3, 3)).copy()
    gt = np.broadcast_to(np.eye(3), (4, 2, 3, 3)).copy()
    assert joint_angle_error(pred, gt, reduction="sample").shape == (4,)
    pred[0, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        joint_angle_error(pred, gt)
    valid = np.ones((4, 2), dtype=bool)
    valid[0, 1] = False
    assert float(joint_angle_error(pred, gt, valid=valid)) == pytest.approx(0.2, abs=1e-12)


# ----------------------------------------------------------------------------- silhouettes
def test_silhouette_iou_hand_computed():
    a = np.zeros((2, 4, 4), dtype=bool)
    b = np.zeros((2, 4, 4), dtype=bool)
    a[0, :2, :2] = True  # 4 pixels
    b[0, :2, :3] = True  # 6 pixels, 4 shared
    iou = silhouette_iou(a, b, reduction="sample")
    assert float(iou[0]) == pytest.approx(4 / 6)
    assert float(iou[1]) == 1.0  # empty vs empty, by definition
    assert float(silhouette_iou(a[:1], np.zeros((1, 4, 4), bool))) == 0.0
    soft = b.astype(np.float32) * 0.8
    assert float(silhouette_iou(a[:1], soft[:1])) == pytest.approx(4 / 6)
    assert float(silhouette_iou(a[:1], soft[:1], threshold=0.9)) == 0.0
    with pytest.raises(ValueError, match="NaN"):
        silhouette_iou(a.astype(float) * np.nan, b)


# ----------------------------------------------------------------------------- acceleration
def _accel_case() -> tuple[np.ndarray, np.ndarray]:
    # Joint 0 static at the origin (the root); joint 1 of the prediction jumps 1 cm at frame 2.
    gt = np.zeros((5, 2, 3))
    gt[:, 1] = [0.0, 1.0, 0.0]
    pred = gt.copy()
    pred[2, 1, 0] += 0.01
    return pred, gt


def test_acceleration_error_hand_computed():
    pred, gt = _accel_case()
    # Second differences of joint 1 at frames 1..3: +10, -20, +10 mm/frame^2; joint 0: 0.
    none = acceleration_error(pred, gt, reduction="none")
    np.testing.assert_allclose(none.numpy(), [[0, 10], [0, 20], [0, 10]], atol=1e-9)
    assert float(acceleration_error(pred, gt)) == pytest.approx(40 / 6, abs=1e-9)
    # Frame 4 invalid -> the acceleration at frame 3 is not scored.
    frame_valid = np.array([True, True, True, True, False])
    assert float(acceleration_error(pred, gt, valid=frame_valid)) == pytest.approx(7.5, abs=1e-9)
    batch = acceleration_error(np.stack([pred, gt]), np.stack([gt, gt]), reduction="sample")
    assert batch.shape == (2, 3) and float(batch[1].abs().sum()) == 0.0
    with pytest.raises(ValueError, match="T>=3"):
        acceleration_error(pred[:2], gt[:2])


# ----------------------------------------------------------------------------- protocols
def test_h36m_protocols_score_14_joints():
    rng = np.random.default_rng(0)
    gt = rng.normal(scale=0.3, size=(2, 17, 3))
    pred = gt.copy()
    pred[:, 9] += 1.0  # nose: not among the 14 scored joints
    pred[:, 10, 2] += 0.014  # head: 14 mm on one of 14 joints -> 1 mm
    res = evaluate_joints(pred, gt, "h36m-p1")
    assert res["mpjpe"] == pytest.approx(1.0, abs=1e-9)
    assert res["num_samples"] == 2
    assert set(evaluate_joints(pred, gt, "h36m-p2")) == {"mpjpe", "pa_mpjpe", "num_samples"}
    with pytest.raises(ValueError, match="expects"):
        evaluate_joints(pred[:, :14], gt[:, :14], "h36m-p1")
    with pytest.raises(ValueError, match="unknown protocol"):
        evaluate_joints(pred, gt, "h36m-p3")


def test_3dhp_and_surreal_protocols():
    rng = np.random.default_rng(1)
    gt = rng.normal(scale=0.3, size=(3, 17, 3))
    res = evaluate_joints(gt, gt, "3dhp")
    assert res["pck"] == pytest.approx(100.0) and res["pa_pck"] == pytest.approx(100.0)
    assert res["auc"] == pytest.approx(30 / 31 * 100) and res["pa_mpjpe"] == pytest.approx(0.0)
    gt24 = rng.normal(scale=0.3, size=(3, 24, 3))
    verts = rng.normal(scale=0.3, size=(3, 40, 3))
    shift = np.array([0.0, 0.006, 0.008])  # 10 mm, the same for joints and vertices
    res = evaluate_joints(
        gt24 + shift, gt24, "surreal", pred_vertices=verts + shift, gt_vertices=verts
    )
    assert res["mpjpe"] == pytest.approx(0.0, abs=1e-9)
    assert res["pve"] == pytest.approx(0.0, abs=1e-9)  # pelvis-aligned
    assert res["pa_pve"] == pytest.approx(0.0, abs=1e-6)
    no_root = evaluate_joints(gt24, gt24, "surreal", pred_vertices=verts + shift, gt_vertices=verts)
    assert no_root["pve"] == pytest.approx(10.0, abs=1e-9)
    with pytest.raises(ValueError, match="surreal"):
        evaluate_joints(gt, gt, "3dhp", pred_vertices=verts, gt_vertices=verts)


def test_per_joint_mpjpe():
    names = ["root", "a", "b"]
    per = per_joint_mpjpe(PRED3, GT3, names)
    assert per == pytest.approx({"root": 0.0, "a": 0.0, "b": 50.0}, abs=1e-9)
    never = per_joint_mpjpe(PRED3, GT3, names, valid=[True, False, True])
    assert set(never) == {"root", "b"}


# ----------------------------------------------------------------------------- report
def test_write_report_round_trip(tmp_path):
    metrics = {"mpjpe": 87.1, "pa_mpjpe": 55.4, "pck": float("nan")}
    per_joint = {"right_knee": 80.0, "left_wrist": 120.5}
    errors = np.array([50.0, 80.0, np.nan, 120.0])
    paths = write_report(metrics, per_joint, errors, tmp_path / "rep")
    for key in ("json", "markdown", "per_joint_png", "cdf_png"):
        assert paths[key].is_file() and paths[key].stat().st_size > 0
    assert paths["per_joint_png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loaded = json.loads(paths["json"].read_text())
    assert loaded["metrics"] == {"mpjpe": 87.1, "pa_mpjpe": 55.4, "pck": None}
    assert loaded["per_joint_mm"] == per_joint
    assert loaded["errors_summary"]["count"] == 3
    assert loaded["errors_summary"]["median"] == pytest.approx(80.0)
    md = paths["markdown"].read_text()
    assert "| mpjpe | 87.10 |" in md and "| pck | n/a |" in md and "left_wrist" in md


def test_write_report_without_plots(tmp_path):
    paths = write_report({"mpjpe": 1.0}, None, None, tmp_path)
    assert set(paths) == {"json", "markdown"}
    assert json.loads(paths["json"].read_text())["errors_summary"] == {"count": 0}
