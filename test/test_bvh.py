"""BVH loader: hand-computed forward kinematics, compression/file objects, errors, real data."""

from __future__ import annotations

import gzip
import io
import json
import lzma
import tarfile

import numpy as np
import pytest

from s2m_model.data import iter_bandai_clips, load_bvh
from s2m_model.data.bvh import BANDAI_HEAD_TOP_M, CMU_UNIT_M
from s2m_model.skeletons import get_format

# Centimetres. Channel orders differ per joint on purpose (ZXY, XYZ, a single X).
TINY_HEADER = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Chest
  {
    OFFSET 0 10 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    JOINT Head
    {
      OFFSET 0 20 0
      CHANNELS 1 Xrotation
      End Site
      {
        OFFSET 0 5 0
      }
    }
  }
  JOINT Leg
  {
    OFFSET 3 0 0
    CHANNELS 6 Xposition Yposition Zposition Xrotation Yrotation Zrotation
    End Site
    {
      OFFSET 0 -40 0
    }
  }
}
MOTION
Frames: 3
Frame Time: 0.05
"""
TINY_FRAMES = [
    "100 90 0 0 0 0 0 0 0 0 3 0 0 0 0 0",
    "100 90 0 90 0 0 0 0 0 0 3 0 0 0 0 0",  # root yaw... about Z by 90 deg
    "100 90 0 0 0 0 90 90 0 90 5 -1 2 90 0 0",  # chest Z then X, head X, leg translated
]
TINY = TINY_HEADER + "\n".join(TINY_FRAMES) + "\n"
FIRST_FRAME_LINE = TINY.splitlines().index(TINY_FRAMES[0]) + 1

# Worked out by hand: Rz(90) maps (x, y, z) -> (-y, x, z); Rx(90) maps (x, y, z) -> (x, -z, y);
# intrinsic ZXY on the chest means R = Rz(90) @ Rx(90). Joints: Hips, Chest, Head, Leg, head_top.
EXPECTED_M = np.array(
    [
        [[1.0, 0.9, 0.0], [1.0, 1.0, 0.0], [1.0, 1.2, 0.0], [1.03, 0.9, 0.0], [1.0, 1.25, 0.0]],
        [[1.0, 0.9, 0.0], [0.9, 0.9, 0.0], [0.7, 0.9, 0.0], [1.0, 0.93, 0.0], [0.65, 0.9, 0.0]],
        [[1.0, 0.9, 0.0], [1.0, 1.0, 0.0], [1.0, 1.0, 0.2], [1.05, 0.89, 0.02], [1.05, 1.0, 0.2]],
    ]
)


@pytest.fixture()
def tiny_path(tmp_path):
    path = tmp_path / "tiny.bvh"
    path.write_text(TINY)
    return path


def test_forward_kinematics_matches_hand_computation(tiny_path):
    m = load_bvh(tiny_path, scale=0.01)
    assert m.joint_names == ("Hips", "Chest", "Head", "Leg", "head_top")
    assert m.parents == (-1, 0, 1, 0, 2)
    assert m.format is None and m.synthetic == () and m.fps == 20.0 and m.num_frames == 3
    np.testing.assert_allclose(m.positions, EXPECTED_M, atol=1e-12)
    np.testing.assert_allclose(m.root_translation, EXPECTED_M[:, 0], atol=1e-12)
    np.testing.assert_allclose(m.offsets[[1, 3, 4]], [[0, 0.1, 0], [0.03, 0, 0], [0, 0.05, 0]])
    rz_rx = np.array([[0.0, 0, 1], [1, 0, 0], [0, 1, 0]])
    np.testing.assert_allclose(m.rotations[2, 1], rz_rx, atol=1e-12)
    np.testing.assert_allclose(m.rotations[0], np.broadcast_to(np.eye(3), (5, 3, 3)), atol=1e-12)
    # Global orientations compose the local ones down the chain.
    g = m.global_rotations()
    np.testing.assert_allclose(g[2, 2], rz_rx @ m.rotations[2, 2], atol=1e-12)


def test_auto_scale_and_explicit_scale(tiny_path):
    auto = load_bvh(tiny_path)  # longest chain 43 units: centimetres is the plausible reading
    assert auto.scale == 0.01
    metres = load_bvh(tiny_path, scale=1.0)
    np.testing.assert_allclose(metres.positions, EXPECTED_M * 100, atol=1e-9)
    with pytest.raises(ValueError, match="scale must be a positive number"):
        load_bvh(tiny_path, scale=-1.0)


def test_compressed_files_and_file_objects_agree(tmp_path, tiny_path):
    ref = load_bvh(tiny_path, scale=0.01).positions
    xz = tmp_path / "tiny.bvh.xz"
    xz.write_bytes(lzma.compress(TINY.encode()))
    gz = tmp_path / "tiny.bvh.gz"
    gz.write_bytes(gzip.compress(TINY.encode()))
    sources = [xz, gz, io.BytesIO(lzma.compress(TINY.encode())), io.StringIO(TINY)]
    for src in sources:
        np.testing.assert_allclose(load_bvh(src, scale=0.01).positions, ref, atol=1e-12)
    crlf = io.BytesIO(TINY.replace("\n", "\r\n").encode())
    np.testing.assert_allclose(load_bvh(crlf, scale=0.01).positions, ref, atol=1e-12)


def test_head_top_option_and_synthetic_head_top(tmp_path, tiny_path):
    assert "head_top" not in load_bvh(tiny_path, head_top=False).joint_names
    path = tmp_path / "zero_end.bvh"
    path.write_text(TINY.replace("OFFSET 0 5 0", "OFFSET 0 0 0"))
    m = load_bvh(path, scale=0.01)
    assert m.synthetic == ("head_top",)
    top = m.positions[:, m.joint_names.index("head_top")]
    # Along the head bone (+Y in the Head frame), BANDAI_HEAD_TOP_M beyond the Head joint.
    np.testing.assert_allclose(top[0], [1.0, 1.2 + BANDAI_HEAD_TOP_M, 0.0], atol=1e-12)
    np.testing.assert_allclose(top[2], [1.0 + BANDAI_HEAD_TOP_M, 1.0, 0.2], atol=1e-12)


def _corrupt(text: str, tmp_path, name: str = "bad.bvh"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda t: t.rsplit("\n", 2)[0] + "\n", r"header says 3 frames but 2 frame lines"),
        (lambda t: t.replace(TINY_FRAMES[1], TINY_FRAMES[1][:-6]), rf":{FIRST_FRAME_LINE + 1}: "),
        (lambda t: t.replace(TINY_FRAMES[2], TINY_FRAMES[2] + " x"), "frame 2 needs 16 numbers"),
        (lambda t: t.replace(TINY_FRAMES[0], TINY_FRAMES[0][:-1] + "abc"), "non-numeric"),
        (lambda t: t.replace(TINY_FRAMES[1], TINY_FRAMES[1][:-1] + "nan"), "not finite"),
        (lambda t: t.replace("CHANNELS 1 Xrotation", "CHANNELS 2 Xrotation"), ":13: bad CHANNELS"),
        (lambda t: t.replace("OFFSET 0 20 0", "OFFSET 0 20"), ":12: OFFSET needs 3 numbers"),
        (lambda t: t.replace("Frame Time: 0.05", "Frame Time: 0"), "frame time must be > 0"),
        (lambda t: t.replace("Frames: 3", "Frames: many"), "bad Frames value"),
        (lambda t: t.split("MOTION")[0], "no MOTION section"),
        (lambda t: t.replace("}\nMOTION", "MOTION"), "MOTION before the hierarchy is complete"),
        (lambda t: t.replace("HIERARCHY", "HIERARCHX"), ":1: expected 'HIERARCHY'"),
        (lambda t: "", "expected 'HIERARCHY'|no MOTION"),
    ],
)
def test_corrupt_files_raise_value_error_with_file_and_line(tmp_path, mutate, match):
    path = _corrupt(mutate(TINY), tmp_path)
    with pytest.raises(ValueError, match=match) as info:
        load_bvh(path)
    assert "bad.bvh" in str(info.value)


def test_corrupt_compressed_stream(tmp_path):
    path = tmp_path / "bad.bvh.xz"
    path.write_bytes(lzma.compress(TINY.encode())[:-20])
    with pytest.raises(ValueError, match="bad.bvh.xz: corrupt compressed stream"):
        load_bvh(path)
    with pytest.raises(FileNotFoundError):
        load_bvh(tmp_path / "missing.bvh")


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def test_iter_bandai_clips_pairs_labels_in_any_order(tmp_path):
    archive = tmp_path / "dataset-9.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        _add(tar, "ds/README.md", b"# not a clip")
        _add(tar, "ds/data/clip_b.json", b'{"content": 2, "style": 5}')  # JSON first
        _add(tar, "ds/data/clip_a.bvh", TINY.encode())  # BVH first
        _add(tar, "ds/data/clip_b.bvh", TINY.encode())
        _add(tar, "ds/data/clip_c.bvh", TINY.encode())  # no JSON at all
        _add(tar, "ds/data/clip_a.json", b'{"content": 1, "style": 0}')
    clips = {name: (m, lab) for name, m, lab in iter_bandai_clips(archive)}
    assert set(clips) == {"clip_a", "clip_b", "clip_c"}
    assert clips["clip_a"][1] == {"content": 1, "style": 0}
    assert clips["clip_b"][1] == {"content": 2, "style": 5}
    assert clips["clip_c"][1] is None
    assert clips["clip_a"][0].source.endswith("dataset-9.tar.xz:ds/data/clip_a.bvh")
    assert [n for n, _, _ in iter_bandai_clips(archive, pattern="*_b")] == ["clip_b"]


def test_iter_bandai_clips_errors(tmp_path):
    broken = tmp_path / "broken.tar.xz"
    broken.write_bytes(b"not an archive at all")
    with pytest.raises(ValueError, match="broken.tar.xz: unreadable"):
        list(iter_bandai_clips(broken))
    archive = tmp_path / "bad_member.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        _add(tar, "ds/data/clip.json", json.dumps({"content": 0, "style": 0}).encode())
        _add(tar, "ds/data/clip.bvh", TINY.replace("OFFSET 0 10 0", "OFFSET 0 x 0").encode())
    with pytest.raises(ValueError, match=r"bad_member.tar.xz:ds/data/clip.bvh:8: OFFSET"):
        list(iter_bandai_clips(archive))


# ----------------------------------------------------------------------------- real data


def _check_adult_body(m, min_height: float) -> None:
    """Bone lengths, height and H36M correspondence on the clip's most upright frame."""
    h36m = get_format("h36m17")
    j = m.positions_as("h36m17")
    idx = h36m.index
    for a, b in (("L_Hip", "L_Knee"), ("R_Hip", "R_Knee"), ("L_Knee", "L_Ankle"),
                 ("R_Knee", "R_Ankle")):  # fmt: skip
        length = np.linalg.norm(j[:, idx(a)] - j[:, idx(b)], axis=-1)
        assert 0.35 < length.mean() < 0.5 and length.std() < 1e-3, (a, b, length.mean())
    legs = sum(np.linalg.norm(j[:, idx(f"{s}_Hip")] - j[:, idx(f"{s}_Ankle")], axis=-1)
               for s in "LR")  # fmt: skip
    f0 = j[int(np.argmax(legs))]  # straightest legs: standing (clips may start crouched)
    height = f0[idx("Head"), 1] - m.positions[..., 1].min()
    assert min_height < height < 2.0, height
    hip_y = (f0[idx("L_Hip"), 1] + f0[idx("R_Hip"), 1]) / 2
    shoulder_y = (f0[idx("L_Shoulder"), 1] + f0[idx("R_Shoulder"), 1]) / 2
    spine_frac = (f0[idx("Spine"), 1] - hip_y) / (shoulder_y - hip_y)
    assert 0.35 < spine_frac < 0.65, spine_frac  # mid torso, like H36M's ~0.48
    assert abs(f0[idx("Thorax"), 1] - shoulder_y) < 0.08  # neck base at shoulder height
    assert 0.04 < f0[idx("Nose"), 1] - f0[idx("Thorax"), 1] < 0.15
    assert 0.08 < f0[idx("Head"), 1] - f0[idx("Nose"), 1] < 0.25
    assert 0.0 <= f0[idx("Pelvis"), 1] - hip_y < 0.12
    # Labels are anatomical: with Y up, forward = (left hip - right hip) x up must be where the
    # toes point (a mirrored skeleton would fail this).
    fmt = get_format(m.format)
    by_smpl = {v: fmt.index(k) for k, v in fmt.smpl_map.items()}
    lr = j[:, idx("L_Hip")] - j[:, idx("R_Hip")]
    forward = np.cross(lr, [0.0, 1.0, 0.0])
    forward /= np.linalg.norm(forward, axis=-1, keepdims=True)
    for side in ("left", "right"):
        foot = m.positions[:, by_smpl[f"{side}_foot"]] - m.positions[:, by_smpl[f"{side}_ankle"]]
        foot[:, 1] = 0.0
        foot /= np.linalg.norm(foot, axis=-1, keepdims=True)
        assert np.median((foot * forward).sum(-1)) > 0.3


@pytest.mark.parametrize("clip", ["131_01", "131_03"])
def test_cmu_units_and_scaled_copies_agree(shared_data, clip):
    raw = load_bvh(shared_data / "cmu-mocap" / f"{clip}.bvh.xz")
    scaled = load_bvh(shared_data / "cmu-mocap" / f"scaled_{clip}.bvh.xz")
    assert raw.format == scaled.format == "cmu31" and raw.fps == 120.0
    assert raw.scale == pytest.approx(CMU_UNIT_M) and scaled.scale == 1.0
    n = raw.num_frames
    np.testing.assert_allclose(raw.positions, scaled.positions[:n], atol=1e-4)
    # CMU subject 131's head-top End Site stands 1.42-1.45 m above the floor (short CMU trunk;
    # the femur/shin of 0.41/0.39 m confirm the unit), hence the lower bound.
    _check_adult_body(raw, min_height=1.35)
    assert raw.positions_as("h36m17").shape == (n, 17, 3)


def test_bandai_clip_from_archive(shared_data):
    name, m, labels = next(iter_bandai_clips(shared_data / "bandai-motion" / "dataset-2.tar.xz"))
    assert name.startswith("dataset-2_") and set(labels) == {"content", "style"}
    assert m.format == "bandai27" and m.fps == 30.0 and m.scale == 0.01
    assert m.synthetic == ("head_top",)
    assert m.joint_names == get_format("bandai27").joint_names
    # joint_Root is the floor projection; Hips carries the body translation.
    np.testing.assert_allclose(m.root_translation, m.positions[:, 1])
    _check_adult_body(m, min_height=1.5)


def test_bandai_dataset1_walk_clip(shared_data):
    archive = shared_data / "bandai-motion" / "dataset-1.tar.xz"
    name, m, labels = next(iter_bandai_clips(archive, pattern="dataset-1_walk_normal_001"))
    assert labels == {"content": 0, "style": 0} and m.num_frames > 100
    _check_adult_body(m, min_height=1.5)
    walked = m.root_translation[-1] - m.root_translation[0]
    assert walked[2] > 2.0 and abs(walked[0]) < 0.5  # walks forward, i.e. along +Z
    left = m.positions[0, m.joint_names.index("UpperLeg_L")]
    right = m.positions[0, m.joint_names.index("UpperLeg_R")]
    assert left[0] - right[0] > 0.08  # facing +Z, the left hip is at +X (SMPL's body frame)
