"""LiveRetargeter (no ROS): interpolation at the control rate, limits, NaN bodies,
timeout -> hold -> neutral, resume without a jump."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mink", reason="mink is not installed")

from s2m_model.retarget import load_robot, synthetic  # noqa: E402
from s2m_model.retarget.live import LiveConfig, LiveRetargeter  # noqa: E402

TO_CAM = np.diag([1.0, -1.0, -1.0])  # SMPL frame -> camera frame of a person facing it


@pytest.fixture(scope="module")
def robot():
    return load_robot("s2m_humanoid")


def _bodies(frames=30):
    m = synthetic.motion("wave", frames)
    local = m["local"].copy()
    local[:, 0] = TO_CAM @ local[:, 0]
    return local, m["joints"] @ TO_CAM.T + np.array([0.0, 0.8, 3.0]), m["t"]


def _within(robot, q):
    return bool(((q >= robot.lower - 1e-9) & (q <= robot.upper + 1e-9)).all())


def test_tracking_interpolates_and_respects_limits(robot):
    live = LiveRetargeter(robot, LiveConfig(control_rate_hz=50.0))
    local, joints, t = _bodies(30)
    now, commands, prev = 0.0, [], None
    for i in range(30):  # bodies at 30 Hz, commands at 50 Hz
        assert live.update(joints[i], local[i], None, stamp=t[i], received=t[i])
        while now < t[i] + 1 / 30:
            q = live.command(now)
            assert np.isfinite(q).all() and _within(robot, q)
            if prev is not None:
                assert (np.abs(q - prev) <= robot.velocity_limit * 0.02 + 1e-9).all()
            commands.append(q)
            prev, now = q, now + 0.02
    assert live.state == "tracking" and live.counters["solved"] == 30
    assert len(commands) == 50  # one second at 50 Hz
    # the right arm rises in the wave: the command follows the bodies
    assert np.abs(commands[-1] - robot.neutral).max() > 0.5


def test_nan_body_keeps_the_last_command(robot):
    live = LiveRetargeter(robot)
    local, joints, t = _bodies(5)
    for i in range(3):
        live.update(joints[i], local[i], None, t[i], t[i])
        live.command(t[i])
    before = live.q.copy()
    bad = joints[3].copy()
    bad[:] = np.nan
    assert not live.update(bad, local[3], None, t[3], t[3])
    assert live.counters["rejected"] == 1
    q = live.command(t[3])
    assert np.isfinite(q).all() and _within(robot, q)
    assert np.abs(q - before).max() < 0.2  # still following the last solution, no jump
    nan_rot = local[4].copy()
    nan_rot[18] = np.nan  # an unsolved elbow rotation: position targets still apply
    assert live.update(joints[4], nan_rot, None, t[4], t[4])
    assert np.isfinite(live.command(t[4] + 0.02)).all()


def test_timeout_hold_then_neutral_then_resume(robot):
    cfg = LiveConfig(control_rate_hz=50.0, timeout_s=0.2, hold_s=0.3, ease_speed=2.0)
    live = LiveRetargeter(robot, cfg)
    local, joints, t = _bodies(30)
    for i in range(30):
        live.update(joints[i], local[i], None, t[i], t[i])
        live.command(t[i])
    last_body = t[-1]
    held = live.command(last_body + 0.25)
    assert live.state == "hold"
    np.testing.assert_array_equal(live.command(last_body + 0.4), held)
    now = last_body + 0.55
    live.command(now)
    assert live.state == "neutral"
    for _ in range(200):
        now += 0.02
        q = live.command(now)
        assert _within(robot, q)
    np.testing.assert_allclose(q, robot.neutral, atol=1e-9)
    # a body again: tracking resumes from the neutral command, no jump
    assert live.update(joints[-1], local[-1], None, now + 0.1, now + 0.1)
    assert live.state == "tracking"
    q2 = live.command(now + 0.12)
    assert (np.abs(q2 - q) <= robot.velocity_limit * 0.12 + 1e-9).all()


def test_bad_config():
    with pytest.raises(ValueError, match="control_rate_hz"):
        LiveConfig(control_rate_hz=0)
    with pytest.raises(ValueError, match="hold_s"):
        LiveConfig(hold_s=-1)
