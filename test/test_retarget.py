"""Retargeting library: robot loading (MJCF G1 from mjlab, the s2m URDF), mapping tables,
frames, scaling, IK limits, NaN handling, filter."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

pytest.importorskip("mink", reason="mink is not installed")
pytest.importorskip("mujoco", reason="mujoco is not installed")

from s2m_model.retarget import (  # noqa: E402
    SolverConfig,
    from_smpl,
    load_robot,
    retarget_motion,
    synthetic,  # noqa: E402
)
from s2m_model.retarget import robot as robot_module  # noqa: E402
from s2m_model.retarget.human import BODY_AXES_IN_WORLD, CAMERA_TO_WORLD  # noqa: E402
from s2m_model.retarget.mapping import ROBOTS_DIR, parse_table  # noqa: E402
from s2m_model.retarget.metrics import (  # noqa: E402
    jitter,
    joint_limit_violations,
    summarize_result,
    velocity_limit_violations,
)
from s2m_model.retarget.targets import fit_scale, robot_reference  # noqa: E402
from s2m_model.smpl_layout import JOINT_INDEX  # noqa: E402

HAS_MJLAB = importlib.util.find_spec("mjlab") is not None
needs_mjlab = pytest.mark.skipif(not HAS_MJLAB, reason="mjlab (G1 model) is not installed")


@pytest.fixture(scope="module")
def g1():
    if not HAS_MJLAB:
        pytest.skip("mjlab (G1 model) is not installed")
    return load_robot("g1")


@pytest.fixture(scope="module")
def humanoid():
    return load_robot("s2m_humanoid")


def _motion(kind="wave", frames=45, **kw):
    m = synthetic.motion(kind, frames)
    return from_smpl(m["local"], m["joints"], m["t"], **kw)


# ------------------------------------------------------------------------ robots and tables


@needs_mjlab
def test_g1_from_mjlab(g1):
    assert g1.dof == 29 and len(g1.joint_names) == 29
    assert np.isfinite(g1.lower).all() and np.isfinite(g1.upper).all()
    assert (g1.velocity_limit >= 20).all() and (g1.velocity_limit <= 37).all()
    assert "mjlab" in str(g1.model_file) and g1.model_file.name == "g1.xml"
    ref = robot_reference(g1)
    k = {h: i for i, h in enumerate(ref.humans)}
    # T-pose: wrists out to the side at shoulder height, soles on z = 0, pelvis ~0.79 m.
    assert ref.positions[k["left_wrist"], 1] > 0.45 > -0.45 > ref.positions[k["right_wrist"], 1]
    assert abs(ref.positions[k["left_wrist"], 2] - ref.positions[k["left_shoulder"], 2]) < 0.02
    assert 0.75 < ref.positions[k["pelvis"], 2] < 0.82
    assert 0.0 < ref.ankle_height < 0.06


def test_urdf_humanoid(humanoid):
    assert humanoid.dof == 25
    assert humanoid.model_file.suffix == ".urdf"
    # Velocity limits come from the URDF <limit velocity=...> (MuJoCo's import drops them).
    i = humanoid.joint_names.index("left_knee_joint")
    assert humanoid.velocity_limit[i] == pytest.approx(14.0)
    ref = robot_reference(humanoid)
    assert ref.positions[ref.humans.index("pelvis"), 2] == pytest.approx(0.94, abs=1e-6)


def test_robot_by_path_picks_the_shipped_table():
    robot = load_robot(ROBOTS_DIR / "s2m_humanoid.urdf")
    assert robot.name == "s2m_humanoid" and robot.dof == 25


def test_g1_without_mjlab_is_a_clear_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(robot_module.importlib.util, "find_spec",
                        lambda name, *a: None if name == "mjlab" else real(name, *a))
    with pytest.raises(FileNotFoundError, match="mjlab"):
        load_robot("g1")


def test_missing_and_corrupt_robot_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_robot(tmp_path / "nope.urdf")
    bad = tmp_path / "bad.urdf"
    bad.write_text("<robot name='x'><link name='a'>")  # truncated
    with pytest.raises(ValueError, match="cannot load robot model"):
        load_robot(bad)
    with pytest.raises(ValueError, match="unknown robot"):
        load_robot("banana")


def test_unknown_link_in_mapping(tmp_path):
    text = (ROBOTS_DIR / "s2m_humanoid.yaml").read_text()
    table = tmp_path / "t.yaml"
    table.write_text(text.replace("robot: left_forearm_link", "robot: left_tentacle_link")
                     .replace("file: s2m_humanoid.urdf", f"file: {ROBOTS_DIR}/s2m_humanoid.urdf"))
    with pytest.raises(ValueError, match="left_tentacle_link"):
        load_robot(ROBOTS_DIR / "s2m_humanoid.urdf", mapping=table)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"frames": [{"human": "pelvis", "robot": "pelvis"}, {"human": "elbow", "robot": "x"}]},
         "unknown SMPL joint"),
        ({"frames": [{"human": "pelvis", "robot": "a"}, {"human": "pelvis", "robot": "b"}]},
         "mapped twice"),
        ({"frames": [{"human": "head", "robot": "a"}]}, "pelvis"),
        ({"frames": [{"human": "pelvis", "robot": "a", "position": -1}]}, ">= 0"),
        ({"model": 3}, "model must be"),
        ({"velocity_limits": {"(": 1.0}}, "bad pattern"),
    ],
)
def test_table_validation(change, message):
    data = {"name": "x", "model": {"file": "x.urdf"},
            "frames": [{"human": "pelvis", "robot": "pelvis"}], **change}
    with pytest.raises(ValueError, match=message):
        parse_table(data)


# ------------------------------------------------------------------------------ frames


def test_frames_smpl_and_camera_agree():
    m = synthetic.motion("tpose", 3)
    a = from_smpl(m["local"], m["joints"], m["t"], frame="smpl", align_heading=False)
    # The same body seen by a camera it faces: up = -y_cam, it faces -z_cam (towards the
    # camera), its left is the camera's right (+x_cam): a turn by pi about x.
    smpl_to_cam = np.diag([1.0, -1.0, -1.0])
    local = m["local"].copy()
    local[:, 0] = smpl_to_cam @ local[:, 0]
    b = from_smpl(local, m["joints"] @ smpl_to_cam.T, m["t"], frame="camera",
                  align_heading=False)
    np.testing.assert_allclose(b.joints, a.joints, atol=1e-9)
    np.testing.assert_allclose(b.rotations, a.rotations, atol=1e-9)
    # Zero pose facing +x, z up: joint frames are the SMPL body axes in the world.
    np.testing.assert_allclose(a.rotations[0, 0], BODY_AXES_IN_WORLD, atol=1e-9)
    assert a.joints[0, JOINT_INDEX["head"], 2] > a.joints[0, JOINT_INDEX["pelvis"], 2] + 0.4
    assert np.allclose(CAMERA_TO_WORLD @ CAMERA_TO_WORLD.T, np.eye(3))


def test_align_heading_turns_the_person_to_face_x():
    m = synthetic.motion("tpose", 2)
    turn = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])  # 90 deg about y
    local = m["local"].copy()
    local[:, 0] = turn @ local[:, 0]
    joints = m["joints"] @ turn.T + np.array([2.0, 0.0, 3.0])
    h = from_smpl(local, joints, m["t"])
    np.testing.assert_allclose(h.rotations[0, 0], BODY_AXES_IN_WORLD, atol=1e-9)
    np.testing.assert_allclose(h.joints[0, 0, :2], 0.0, atol=1e-9)


def test_bad_inputs_are_value_errors():
    m = synthetic.motion("tpose", 3)
    with pytest.raises(ValueError, match="joints must be"):
        from_smpl(m["local"], m["joints"][:, :10], m["t"])
    with pytest.raises(ValueError, match="increasing"):
        from_smpl(m["local"], m["joints"], np.zeros(3))
    with pytest.raises(ValueError, match="unknown frame"):
        from_smpl(m["local"], m["joints"], m["t"], frame="optical")
    with pytest.raises(ValueError, match="finite pelvis"):
        from_smpl(m["local"], np.full_like(m["joints"], np.nan), m["t"])


# --------------------------------------------------------------------------- retargeting


@pytest.mark.parametrize("name", ["g1", "s2m_humanoid"])
def test_retarget_within_limits_and_close(name, request):
    robot = request.getfixturevalue("g1" if name == "g1" else "humanoid")
    for kind in ("wave", "squat"):
        result = retarget_motion(robot, _motion(kind, 45))
        s = summarize_result(robot, result)
        assert s["joint_limit_violations"] == 0 and s["velocity_limit_violations"] == 0
        assert s["ik_failures"] == 0 and s["frames_followed"] == 45
        assert s["end_effector_err_mm"]["hands"]["median"] < 60.0, s
        assert s["end_effector_err_mm"]["feet"]["median"] < 30.0, s
        assert s["planted_fraction"]["left"] > 0.9  # standing: feet held on the ground
        # continuity: no flips between frames of a smooth motion
        assert np.abs(np.diff(result.q, axis=0)).max() < 0.35


def test_scaling_follows_bone_lengths(humanoid):
    ref = robot_reference(humanoid)
    m = synthetic.motion("tpose", 2)
    small = from_smpl(m["local"], m["joints"], m["t"])
    big = from_smpl(m["local"], m["joints"] * 1.5, m["t"])
    s1, s2 = fit_scale(ref, small.joints), fit_scale(ref, big.joints)
    assert s2.root_scale == pytest.approx(s1.root_scale / 1.5, rel=1e-6)
    np.testing.assert_allclose(s2.ratios[1:], s1.ratios[1:] / 1.5, rtol=1e-6)


def test_nan_frames_hold_the_pose(humanoid):
    m = synthetic.motion("wave", 30)
    joints = m["joints"].copy()
    joints[12] = np.nan  # a frame with no body at all
    joints[20, JOINT_INDEX["right_wrist"]] = np.nan  # one missing joint
    local = m["local"].copy()
    local[21, JOINT_INDEX["right_elbow"]] = np.nan  # an unsolved rotation
    result = retarget_motion(humanoid, from_smpl(local, joints, m["t"]), temporal_filter=False)
    assert np.isfinite(result.q).all()
    assert not result.followed[12] and result.followed[11] and result.followed[13]
    np.testing.assert_array_equal(result.q[12], result.q[11])
    assert joint_limit_violations(humanoid, result.q) == 0
    assert velocity_limit_violations(humanoid, result.q, result.t) == 0


def test_velocity_limit_holds_on_a_jump(humanoid):
    m = synthetic.motion("wave", 20)
    local = m["local"].copy()
    local[10:, JOINT_INDEX["right_shoulder"]] = local[0, JOINT_INDEX["left_shoulder"]].T
    h = from_smpl(local, m["joints"], m["t"])
    result = retarget_motion(humanoid, h, solver=SolverConfig(velocity_scale=0.2),
                             temporal_filter=False)
    step = np.abs(np.diff(result.q, axis=0))
    assert (step <= 0.2 * humanoid.velocity_limit / 30.0 + 1e-9).all()
    assert step.max() > 0.05  # it did move towards the new pose


def test_filter_reduces_jitter(humanoid):
    rng = np.random.default_rng(0)
    m = synthetic.motion("wave", 60)
    joints = m["joints"] + rng.normal(0, 0.01, m["joints"].shape)
    result = retarget_motion(humanoid, from_smpl(m["local"], joints, m["t"]))
    assert jitter(result.q, result.t) < 0.8 * jitter(result.q_raw, result.t)
    assert joint_limit_violations(humanoid, result.q) == 0


def test_person_appearing_late_does_not_jump(humanoid):
    m = synthetic.motion("wave", 20)
    joints = m["joints"].copy()
    joints[:5] = np.nan  # nobody in the first frames (as in a video)
    result = retarget_motion(humanoid, from_smpl(m["local"], joints, m["t"]),
                             temporal_filter=False)
    assert not result.followed[:5].any() and result.followed[5:].all()
    np.testing.assert_array_equal(result.q[:5], np.repeat(result.q[5:6], 5, axis=0))
    assert velocity_limit_violations(humanoid, result.q, result.t) == 0
