"""Image input: validation, loading, and frame iteration over images, folders and videos.

Every image that enters s2m goes through :func:`validate_image`, which returns a C-contiguous
``(H, W, 3)`` ``uint8`` RGB array or raises a :class:`ValueError` that says what is wrong.
Pixel coordinates elsewhere in s2m follow the usual image convention: x to the right, y down,
origin at the top-left pixel.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MAX_IMAGE_SIDE = 8192
"""Default limit on the longer image side in pixels; larger inputs are refused (memory)."""

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg"})
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif"}
)
DEFAULT_FOLDER_FPS = 30.0
"""Frame rate assumed for a folder of images when none is given (timestamps = index / fps)."""


def validate_image(
    image: object, *, max_side: int = MAX_IMAGE_SIDE, name: str = "image"
) -> np.ndarray:
    """Check an image array and convert it to ``(H, W, 3)`` ``uint8`` RGB.

    Accepted: ``(H, W)`` or ``(H, W, 1)`` grey, ``(H, W, 3)`` RGB, ``(H, W, 4)`` RGBA (alpha is
    dropped, not composited); dtype ``uint8``, ``bool``, or float in ``[0, 1]`` (scaled by 255
    and rounded). Anything with ``__array__`` (e.g. a PIL image) is accepted too.

    Args:
        image: the image.
        max_side: the largest allowed height or width in pixels.
        name: how error messages refer to the input (e.g. a file name).

    Returns:
        ``(H, W, 3)`` C-contiguous ``uint8`` array (a copy only when a conversion was needed).

    Raises:
        ValueError: empty or zero-size, wrong number of dimensions or channels, unsupported
            dtype, non-finite or out-of-range float values, a side longer than ``max_side``.
    """
    if image is None:
        raise ValueError(f"{name}: got None instead of an image array")
    try:
        arr = np.asarray(image)
    except Exception as exc:
        raise ValueError(f"{name}: cannot be converted to an array ({exc})") from exc
    if arr.dtype == object:
        raise ValueError(f"{name}: object arrays are not images")
    if arr.ndim not in (2, 3):
        raise ValueError(f"{name}: expected (H, W), (H, W, 3) or (H, W, 4), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name}: empty image of shape {arr.shape}")
    if arr.ndim == 3 and arr.shape[2] not in (1, 3, 4):
        raise ValueError(
            f"{name}: expected 1, 3 or 4 channels in the last axis, got shape {arr.shape}"
        )
    height, width = arr.shape[:2]
    if max(height, width) > max_side:
        raise ValueError(
            f"{name}: {width}x{height} px exceeds the limit of {max_side} px per side "
            "(resize it, or raise max_side)"
        )

    if arr.dtype == np.uint8:
        pass
    elif arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ValueError(f"{name}: contains NaN or infinite values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"{name}: float images must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}] "
                "(for 0..255 data convert to uint8 first)"
            )
        arr = np.rint(arr.astype(np.float32) * 255.0).astype(np.uint8)
    else:
        raise ValueError(
            f"{name}: unsupported dtype {arr.dtype}; use uint8 (0..255) or float in [0, 1]"
        )

    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        arr = arr[:, :, :3]
    return np.ascontiguousarray(arr)


def load_image(path: str | Path, *, max_side: int = MAX_IMAGE_SIDE) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` ``uint8`` RGB, applying its EXIF orientation.

    The size is checked from the header before decoding, so a huge file is refused without
    being decompressed.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a readable image (corrupt, truncated, unknown format) or is
            too large; the message names the file.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as img:
            width, height = img.size
            if max(width, height) > max_side:
                raise ValueError(
                    f"{path}: {width}x{height} px exceeds the limit of {max_side} px per side"
                )
            img.load()  # decode now so truncation errors surface here
            img = ImageOps.exif_transpose(img)
            arr = _pil_to_array(img)
    except ValueError as exc:
        if str(path) in str(exc):
            raise
        raise ValueError(f"{path}: cannot read image ({exc})") from exc
    except Image.DecompressionBombError as exc:  # raised by Image.open from the header alone
        raise ValueError(
            f"{path}: the header's size exceeds the limit of {max_side} px per side ({exc})"
        ) from exc
    except (OSError, SyntaxError, UnidentifiedImageError) as exc:
        raise ValueError(f"{path}: corrupt, truncated or unsupported image ({exc})") from exc
    return validate_image(arr, max_side=max_side, name=str(path))


def _pil_to_array(img) -> np.ndarray:
    """PIL image -> uint8 array; 16/32-bit grey images are rescaled rather than clipped."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        data = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or data.max() > 255 else 255.0
        return np.clip(np.rint(data / peak * 255.0), 0, 255).astype(np.uint8)
    if img.mode == "F":
        return np.asarray(img, dtype=np.float32)
    if img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    return np.asarray(img)


def _natural_key(path: Path) -> list:
    """Sort key so that frame_2.png comes before frame_10.png."""
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", path.name)]


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder`` (by suffix), in natural sort order."""
    folder = Path(folder)
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=_natural_key)


# ffmpeg's version/build banner, printed before every error; says nothing about the file.
_FFMPEG_BANNER = ("ffmpeg version", "built with", "configuration:", "lib")
# "[in#0 @ 0x5585...] moov atom not found" -> "moov atom not found"
_FFMPEG_CONTEXT = re.compile(r"^\[[^\]]*@ 0x[0-9a-f]+\]\s*")


def ffmpeg_error(exc: BaseException) -> str:
    """One line from an imageio-ffmpeg error: ffmpeg's own diagnostics, without its banner.

    imageio puts ffmpeg's whole stderr (~50 lines, mostly the build configuration) into the
    exception; the lines that matter are the few after the banner.
    """
    text = str(exc)
    head, _, stderr = text.partition("=== stderr ===")
    reasons: list[str] = []
    for line in stderr.splitlines():
        line = _FFMPEG_CONTEXT.sub("", line.strip())
        if line and not line.startswith(_FFMPEG_BANNER) and line not in reasons:
            reasons.append(line)
    summary = "; ".join(reasons[:3]) if reasons else " ".join(head.split())
    return summary or type(exc).__name__


def probe_video(path: str | Path) -> dict:
    """Metadata of a video file: ``fps``, ``width``, ``height``, ``duration_s``, ``codec``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file cannot be opened as a video.
    """
    import imageio.v3 as iio

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video file not found: {path}")
    try:
        meta = iio.immeta(path, plugin="FFMPEG")
    except Exception as exc:  # ffmpeg reports many error types
        raise ValueError(f"{path}: cannot open as a video ({ffmpeg_error(exc)})") from exc
    width, height = meta.get("size", (0, 0))
    return {
        "fps": float(meta.get("fps") or 0.0),
        "width": int(width),
        "height": int(height),
        "duration_s": float(meta.get("duration") or 0.0),
        "codec": meta.get("codec"),
    }


def iter_frames(
    path: str | Path,
    *,
    fps: float | None = None,
    stride: int = 1,
    max_frames: int | None = None,
    max_side: int = MAX_IMAGE_SIDE,
    skip_bad: bool = True,
) -> Iterator[tuple[int, float, np.ndarray]]:
    """Yield ``(index, timestamp_s, frame)`` from an image, a folder of images, or a video.

    ``frame`` is ``(H, W, 3)`` ``uint8`` RGB. ``index`` counts source frames from 0 (so it
    keeps its meaning with ``stride`` > 1 or skipped bad files); ``timestamp_s`` is
    ``index / fps`` in seconds, with ``fps`` from the video header, or the ``fps`` argument
    (default :data:`DEFAULT_FOLDER_FPS`) for folders. A single image yields one frame at 0 s.

    Args:
        path: image file, folder of images (non-recursive, natural sort order), or video file.
        fps: frame rate override (for videos too, e.g. when the header is wrong).
        stride: yield every ``stride``-th frame.
        max_frames: stop after yielding this many frames.
        max_side: size limit passed to :func:`validate_image`.
        skip_bad: for folders, log and skip unreadable images instead of raising.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: unknown file type, empty folder, unreadable video, bad arguments.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if max_frames is not None and max_frames < 0:
        raise ValueError(f"max_frames must be >= 0, got {max_frames}")
    if fps is not None and not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")

    if path.is_dir():
        source = _iter_folder(path, fps or DEFAULT_FOLDER_FPS, max_side, skip_bad)
    elif path.suffix.lower() in VIDEO_SUFFIXES:
        source = _iter_video(path, fps, max_side)
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        source = iter([(0, 0.0, load_image(path, max_side=max_side))])
    else:
        raise ValueError(
            f"{path}: unknown input type '{path.suffix}'; expected an image "
            f"({', '.join(sorted(IMAGE_SUFFIXES))}), a video ({', '.join(sorted(VIDEO_SUFFIXES))}) "
            "or a folder of images"
        )

    yielded = 0
    for index, stamp, frame in source:
        if max_frames is not None and yielded >= max_frames:
            break
        if index % stride:
            continue
        yield index, stamp, frame
        yielded += 1


def _iter_folder(
    folder: Path, fps: float, max_side: int, skip_bad: bool
) -> Iterator[tuple[int, float, np.ndarray]]:
    files = list_images(folder)
    if not files:
        raise ValueError(f"{folder}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    for index, file in enumerate(files):
        try:
            frame = load_image(file, max_side=max_side)
        except ValueError as exc:
            if not skip_bad:
                raise
            log.warning("skipping unreadable frame %s: %s", file, exc)
            continue
        yield index, index / fps, frame


def _iter_video(
    path: Path, fps: float | None, max_side: int
) -> Iterator[tuple[int, float, np.ndarray]]:
    import imageio.v3 as iio

    meta = probe_video(path)
    if fps is None:
        fps = meta["fps"]
        if not fps > 0:
            raise ValueError(f"{path}: the video header has no frame rate; pass fps=")
    # frames the header promises (duration x header rate); 0 when the header has no duration
    expected = int(round(meta["duration_s"] * meta["fps"]))
    read = 0
    try:
        frames = iio.imiter(path, plugin="FFMPEG")
        for index, frame in enumerate(frames):
            read = index + 1
            yield index, index / fps, validate_image(frame, max_side=max_side, name=str(path))
    except Exception as exc:  # ffmpeg reports many error types
        if isinstance(exc, ValueError) and str(path) in str(exc):
            raise
        raise ValueError(f"{path}: cannot decode video ({ffmpeg_error(exc)})") from exc
    # Reached only when the whole video was read (a consumer that stops early closes us).
    # Headers round the duration: a frame or two short is normal, more is a damaged file.
    if expected and read < expected - max(2, expected // 50):
        log.warning(
            "%s: the video ended early: %d of %d frames read (truncated or damaged file?)",
            path,
            read,
            expected,
        )
