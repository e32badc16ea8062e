"""Benchmark: BVH loading (parse + Euler + forward kinematics) on a Bandai-sized clip.

Prints one JSON object. The baseline, timed in the same process, is a straightforward loader
with a per-frame/per-joint Python loop (the structure of ``bvhio``) on the same text; the clip
is synthetic (22 joints x 6 channels, 1901 frames like the longest Bandai clip) so the bench
needs no data. With ``../shared`` present the real Bandai dance clip is timed as well.
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from s2m_model.data.bvh import load_bvh  # noqa: E402
from s2m_model.skeletons.formats import BANDAI_BVH_PARENTS  # noqa: E402

FRAMES = 1901
CHANNELS = "Xposition Yposition Zposition Zrotation Xrotation Yrotation"


def synthetic_bandai_text(frames: int, seed: int = 0) -> str:
    """A Bandai-shaped BVH: the 22 Bandai joints, 6 channels each, random angles."""
    names = list(BANDAI_BVH_PARENTS)
    children: dict[str | None, list[str]] = {}
    for n, p in BANDAI_BVH_PARENTS.items():
        children.setdefault(p, []).append(n)
    rng = np.random.default_rng(seed)
    offsets = {n: rng.normal(scale=10.0, size=3) for n in names}
    lines = ["HIERARCHY"]

    def emit(name: str, depth: int) -> None:
        pad = "  " * depth
        kind = "ROOT" if BANDAI_BVH_PARENTS[name] is None else "JOINT"
        lines.extend([f"{pad}{kind} {name}", f"{pad}{{"])
        lines.append(f"{pad}  OFFSET {' '.join(f'{v:.5f}' for v in offsets[name])}")
        lines.append(f"{pad}  CHANNELS 6 {CHANNELS}")
        for c in children.get(name, []):
            emit(c, depth + 1)
        if name not in children:
            lines.extend([f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET 0 0 0", f"{pad}  }}"])
        lines.append(f"{pad}}}")

    emit(names[0], 0)
    lines += ["MOTION", f"Frames: {frames}", "Frame Time: 0.0333333"]
    data = np.concatenate(
        [
            np.concatenate(
                [np.broadcast_to(offsets[n], (frames, 3)), rng.uniform(-90, 90, (frames, 3))],
                axis=1,
            )
            for n in names
        ],
        axis=1,
    )
    lines += [" ".join(f"{v:.4f}" for v in row) for row in data]
    return "\n".join(lines) + "\n"


def baseline_load(text: str, parents: tuple[int, ...], scale: float) -> np.ndarray:
    """Straightforward loader: Python float parsing, one Euler conversion and one 3x3 product
    per joint and frame (the structure of ``bvhio``). Layout: 6 channels per joint, ZXY."""
    rows = text.split("Frame Time:")[1].splitlines()[1:]
    J = len(parents)
    out = np.zeros((len(rows), J, 3))
    for t, row in enumerate(rows):
        vals = [float(v) for v in row.split()]
        glob: list[np.ndarray] = [np.eye(3)] * J
        for j, p in enumerate(parents):
            x, y, z, rz, rx, ry = vals[6 * j : 6 * j + 6]
            local = Rotation.from_euler("ZXY", [rz, rx, ry], degrees=True).as_matrix()
            trans = np.array([x, y, z]) * scale
            if p < 0:
                glob[j], out[t, j] = local, trans
            else:
                glob[j] = glob[p] @ local
                out[t, j] = out[t, p] + glob[p] @ trans
    return out


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    text = synthetic_bandai_text(FRAMES)
    ours = best_of(lambda: load_bvh(io.StringIO(text), scale=0.01))
    motion = load_bvh(io.StringIO(text), scale=0.01, head_top=False)
    base = best_of(lambda: baseline_load(text, motion.parents, 0.01), repeats=1)
    # Same numbers from both, so the ratio compares equal work.
    assert np.allclose(baseline_load(text, motion.parents, 0.01), motion.positions, atol=1e-9)
    result = {
        "bench": "bvh_load",
        "frames": FRAMES,
        "joints": len(motion.joint_names),
        "ours_s": round(ours, 4),
        "baseline_per_frame_python_s": round(base, 4),
        "speedup_vs_baseline": round(base / ours, 1),
    }
    archive = Path(__file__).resolve().parents[2] / "shared/data/bandai-motion/dataset-1.tar.xz"
    if archive.is_file():
        member = "Bandai-Namco-Research-Motiondataset-1/data/dataset-1_dance-short_normal_001.bvh"
        with tarfile.open(archive, "r|xz") as tar:
            for m in tar:
                if m.name == member:
                    raw = tar.extractfile(m).read()
                    break
        result["bandai_dance_short_1901_frames_s"] = round(
            best_of(lambda: load_bvh(io.BytesIO(raw))), 4
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
