"""The mocap clip catalogue: which Bandai-Namco and CMU BVH clips exist, their splits, licences.

:func:`list_clips` finds the clips under the shared data folder and assigns each to
``train``/``val``/``test`` (Bandai, by a hash of the clip's content+style group, so that takes
of the same motion never straddle two splits) or ``test-cmu`` (every CMU clip);
:func:`iter_motions` loads them (one streaming pass per Bandai archive). Fitting the clips to a
body is :mod:`s2m_model.data.mocap_fit`, caching the fits :mod:`s2m_model.data.fit_cache`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from s2m_model.data.bvh import Motion, iter_bandai_clips, load_bvh
from s2m_model.util.files import cache_dir

SPLITS: tuple[str, ...] = ("train", "val", "test", "test-cmu")
SPLIT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}
BANDAI_ARCHIVES = {"bandai-1": "dataset-1.tar.xz", "bandai-2": "dataset-2.tar.xz"}
KNOWN_DATASETS = ("bandai-1", "bandai-2", "cmu")
CMU_FILES = ("131_01.bvh.xz", "131_02.bvh.xz", "131_03.bvh.xz")  # the scaled_* are duplicates
LICENCES = {
    "bandai": "CC BY-NC 4.0",
    "cmu": "CMU mocap terms (free for research and commercial use; acknowledge "
    "mocap.cs.cmu.edu, NSF EIA-0196217)",
}


@dataclass(frozen=True)
class ClipRef:
    """One mocap clip in the shared data folder.

    Attributes:
        name: stable id used in manifests, e.g. ``"dataset-1/walk_normal_001"``, ``"cmu/131_01"``.
        dataset: ``"bandai-1"``, ``"bandai-2"`` or ``"cmu"``.
        source: the archive (Bandai ``tar.xz``) or ``.bvh.xz`` file holding the clip.
        member: the clip's stem inside a Bandai archive (``dataset-1_walk_normal_001``), else "".
        split: ``"train"``, ``"val"``, ``"test"`` or ``"test-cmu"``.
    """

    name: str
    dataset: str
    source: str
    member: str
    split: str

    @property
    def licence(self) -> str:
        """Licence of the source data (``LICENCES`` entry of the dataset family)."""
        return LICENCES["cmu" if self.dataset == "cmu" else "bandai"]


def bandai_group(name: str) -> str:
    """Split group of a Bandai clip: its name without the take number (content + style)."""
    return re.sub(r"_\d+$", "", name)


def split_of(name: str) -> str:
    """Deterministic split of a clip name (see :func:`list_clips`)."""
    if name.startswith("cmu/"):
        return "test-cmu"
    digest = hashlib.sha256(bandai_group(name).encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < SPLIT_FRACTIONS["train"]:
        return "train"
    return "val" if u < SPLIT_FRACTIONS["train"] + SPLIT_FRACTIONS["val"] else "test"


def _clip_name(dataset: str, stem: str) -> str:
    prefix = "dataset-1" if dataset == "bandai-1" else "dataset-2"
    return f"{prefix}/{stem.removeprefix(prefix + '_')}"


def _archive_stems(archive: Path) -> list[str]:
    """Clip stems of a Bandai archive; the listing (a full decompression) is cached."""
    st = archive.stat()
    index = cache_dir() / "mocap-fits" / f"index-{archive.name}-{st.st_size}.json"
    if index.is_file():
        try:
            stems = json.loads(index.read_text())
            if isinstance(stems, list) and all(isinstance(s, str) for s in stems):
                return stems
        except ValueError:
            pass  # a damaged index is rebuilt below
    import tarfile

    stems = set()
    try:
        with tarfile.open(archive, mode="r|xz") as tar:
            for member in tar:
                path = member.name
                if member.isfile() and path.endswith(".bvh") and "/data/" in f"/{path}":
                    stems.add(Path(path).stem)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ValueError(f"{archive}: unreadable tar.xz archive ({exc})") from None
    out = sorted(stems)
    index.parent.mkdir(parents=True, exist_ok=True)
    tmp = index.with_name(index.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(out))
    os.replace(tmp, index)
    return out


def list_clips(
    shared_data_dir: str | os.PathLike[str],
    datasets: Sequence[str] = ("bandai-1", "bandai-2", "cmu"),
) -> list[ClipRef]:
    """All mocap clips under ``shared_data_dir`` (``../shared/data``), sorted by name.

    Bandai clips go to ``train``/``val``/``test`` (~80/10/10 by a SHA-256 hash of the
    content+style group, e.g. ``dataset-2/walk_active``: all takes of a group share a split);
    CMU clips form the extra ``test-cmu`` split. Missing datasets are skipped; none at all is a
    FileNotFoundError.
    """
    root = Path(shared_data_dir)
    unknown = set(datasets) - {*BANDAI_ARCHIVES, "cmu"}
    if unknown:
        raise ValueError(f"unknown mocap datasets {sorted(unknown)}; known: {KNOWN_DATASETS}")
    refs: list[ClipRef] = []
    for ds, file in BANDAI_ARCHIVES.items():
        archive = root / "bandai-motion" / file
        if ds in datasets and archive.is_file():
            for stem in _archive_stems(archive):
                name = _clip_name(ds, stem)
                refs.append(ClipRef(name, ds, str(archive), stem, split_of(name)))
    if "cmu" in datasets:
        for file in CMU_FILES:
            path = root / "cmu-mocap" / file
            if path.is_file():
                name = "cmu/" + file.removesuffix(".bvh.xz")
                refs.append(ClipRef(name, "cmu", str(path), "", "test-cmu"))
    if not refs:
        raise FileNotFoundError(
            f"no mocap clips under {root} (expected bandai-motion/dataset-*.tar.xz or "
            "cmu-mocap/131_0*.bvh.xz; see ../shared/data/README.md)"
        )
    return sorted(refs, key=lambda r: r.name)


def iter_motions(refs: Iterable[ClipRef]) -> Iterator[tuple[ClipRef, Motion]]:
    """Load the clips ``refs`` (one streaming pass per Bandai archive), in archive order."""
    by_source: dict[str, dict[str, ClipRef]] = {}
    for ref in refs:
        by_source.setdefault(ref.source, {})[ref.member or ref.name] = ref
    for source, wanted in by_source.items():
        first = next(iter(wanted.values()))
        if first.dataset == "cmu":
            for ref in wanted.values():
                yield ref, load_bvh(ref.source)
            continue
        pending = dict(wanted)
        for stem, motion, _ in iter_bandai_clips(source):
            ref = pending.pop(stem, None)
            if ref is not None:
                yield ref, motion
            if not pending:
                break
        if pending:
            raise ValueError(f"{source}: clips not found: {sorted(pending)[:5]}")
