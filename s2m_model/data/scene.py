"""Procedural scenes for detector-in-the-loop renders: backgrounds, body appearance, lighting,
occluders and camera-like degradations.

Pure computation (numpy; Pillow only draws shapes, blurs and JPEG-encodes in memory). Every
random choice comes from the ``numpy.random.Generator`` passed in, so a scene is reproducible
from its seed. Images are float32 ``(H, W, 3)`` RGB in [0, 1] until :func:`finish_image`
turns them into the ``uint8`` frame a detector sees. Nothing is downloaded: backgrounds and
textures are generated (gradients, fractal noise, stripes, checks, random shapes, a
perspective floor seen by the sample's own camera).

Camera frame: x right, y down, z forward (metres); world frame of the mocap: Y up, floor at
y = 0. Shading is Lambert (ambient + one directional light) with the normals of the z-buffer's
surface (:func:`s2m_model.data.raster.rasterize`, one pass, body-part labels): depth is planar
within a triangle, so these are the faces' own normals (flat, per-face shading) except on the
one-pixel seams between faces. This costs a few array operations instead of a second raster
pass (the rasteriser keeps only 6 label bits, too few for a face index).
"""

from __future__ import annotations

import colorsys
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from s2m_model.camera import Camera
from s2m_model.data.raster import rasterize
from s2m_model.smpl_layout import JOINT_INDEX, NUM_JOINTS

BACKGROUNDS: tuple[str, ...] = ("gradient", "noise", "stripes", "checker", "shapes", "floor")
"""Background kinds, in the order their ids are stored (``scene_background``)."""

REGIONS: tuple[str, ...] = (
    "skin", "hair", "top", "upper_arm", "forearm", "hips", "thigh", "shin", "shoes",
)  # fmt: skip
"""Colour regions of the body surface (each sample gives each region a colour)."""

HAIR_LABEL = NUM_JOINTS
"""Raster label of hair faces (24); every other face carries its SMPL part (0-23)."""

SKIN_TONES = np.array([
    (255, 224, 196), (241, 194, 160), (224, 172, 130), (198, 134, 94), (160, 102, 66),
    (110, 70, 45), (75, 50, 35),
], dtype=np.float32) / 255.0  # fmt: skip
HAIR_COLOURS = np.array([
    (25, 20, 18), (60, 40, 25), (110, 75, 40), (200, 165, 100), (150, 60, 30), (170, 170, 165),
], dtype=np.float32) / 255.0  # fmt: skip

_PART_REGION = {
    "pelvis": "hips", "left_hip": "thigh", "right_hip": "thigh", "spine1": "top",
    "left_knee": "shin", "right_knee": "shin", "spine2": "top", "left_ankle": "shoes",
    "right_ankle": "shoes", "spine3": "top", "left_foot": "shoes", "right_foot": "shoes",
    "neck": "skin", "left_collar": "top", "right_collar": "top", "head": "skin",
    "left_shoulder": "upper_arm", "right_shoulder": "upper_arm", "left_elbow": "forearm",
    "right_elbow": "forearm", "left_wrist": "skin", "right_wrist": "skin", "left_hand": "skin",
    "right_hand": "skin",
}  # fmt: skip
LABEL_REGION = np.array(
    [REGIONS.index(_PART_REGION[name]) for name in sorted(JOINT_INDEX, key=JOINT_INDEX.get)]
    + [REGIONS.index("hair")],
    dtype=np.int64,
)
"""(25,) region of each raster label (24 SMPL parts, then :data:`HAIR_LABEL`)."""


@dataclass(frozen=True)
class SceneConfig:
    """Probabilities and ranges of the scene draws (intensities are fractions of white)."""

    backgrounds: tuple[str, ...] = BACKGROUNDS
    background_mix_prob: float = 0.4  # a second background blended over the first
    background_blur_prob: float = 0.3  # out-of-focus background
    occluder_prob: float = 0.35  # samples with 1-2 objects in front of the person
    occluder_size: tuple[float, float] = (0.15, 0.6)  # fraction of the person's box
    long_sleeve_prob: float = 0.55
    long_trousers_prob: float = 0.7
    bald_prob: float = 0.1
    pattern_prob: float = 0.4  # stripes / checks / noise on the clothes
    ambient: tuple[float, float] = (0.2, 0.6)
    exposure: tuple[float, float] = (0.75, 1.2)
    gamma: tuple[float, float] = (0.8, 1.25)
    noise_std: tuple[float, float] = (0.0, 0.025)
    blur_prob: float = 0.35
    blur_radius: tuple[float, float] = (0.3, 1.2)  # pixels
    jpeg_prob: float = 0.35
    jpeg_quality: tuple[int, int] = (35, 90)

    def __post_init__(self) -> None:
        unknown = set(self.backgrounds) - set(BACKGROUNDS)
        if not self.backgrounds or unknown:
            raise ValueError(f"backgrounds must be a non-empty subset of {BACKGROUNDS}, "
                             f"got {self.backgrounds}")  # fmt: skip
        for name in ("background_mix_prob", "background_blur_prob", "occluder_prob",
                     "long_sleeve_prob", "long_trousers_prob", "bald_prob", "pattern_prob",
                     "blur_prob", "jpeg_prob"):  # fmt: skip
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1]")
        for name in ("occluder_size", "ambient", "exposure", "gamma", "noise_std", "blur_radius",
                     "jpeg_quality"):  # fmt: skip
            lo, hi = getattr(self, name)
            if not (np.isfinite(lo) and np.isfinite(hi) and 0 <= lo <= hi):
                raise ValueError(f"{name} must be a (low, high) range >= 0, got {(lo, hi)}")
        if self.ambient[1] > 1.0 or not 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 95:
            raise ValueError("ambient must lie in [0, 1] and jpeg_quality in [1, 95]")


@dataclass(frozen=True)
class Appearance:
    """Colours of one person: ``region_rgb`` (R,3) in [0, 1] in :data:`REGIONS` order (sleeves
    and trouser legs already resolved to cloth or skin), and an optional cloth pattern on the
    top (``top_pattern``) and trousers (``bottom_pattern``): ``None`` or (kind, period px,
    angle rad, contrast)."""

    region_rgb: np.ndarray
    top_pattern: tuple[str, float, float, float] | None
    bottom_pattern: tuple[str, float, float, float] | None


@dataclass(frozen=True)
class Light:
    """Per-face Lambert: ``shade = ambient + (1 - ambient) max(0, n . direction)``.

    ``direction`` (3,) unit vector from the surface towards the light, camera frame;
    ``colour`` (3,) RGB gain; ``exposure`` an overall gain.
    """

    direction: np.ndarray
    ambient: float
    colour: np.ndarray
    exposure: float


@dataclass
class BodyRender:
    """One composited body render. H, W = the camera's image size.

    Attributes:
        image: (H,W,3) float32 RGB in [0, 1] (background + body).
        depth: (H,W) float32 metres to the nearest body surface, inf where empty.
        part: (H,W) int16 SMPL part (0-23) of the visible surface, -1 where empty (hair faces
            count as the head).
        covered: (H,W) bool, the body's silhouette.
    """

    image: np.ndarray
    depth: np.ndarray
    part: np.ndarray
    covered: np.ndarray


# ------------------------------------------------------------------------------ body surface


def face_labels(body, parts: np.ndarray) -> np.ndarray:
    """(F,) raster labels: each face's SMPL part, or :data:`HAIR_LABEL` for the scalp.

    The scalp is the head part's faces above the forehead or on the back of the skull, found
    on the zero-shape rest body (T-pose, Y up, facing +Z). ``parts`` (F,) from
    :func:`s2m_model.data.visibility.face_parts`.
    """
    import torch

    with torch.no_grad():
        out = body()
    verts = out.vertices[0].double().cpu().numpy()
    head = out.joints[0, JOINT_INDEX["head"]].double().cpu().numpy()
    centre = verts[body.faces].mean(1)
    rel = centre - head
    scalp = (rel[:, 1] > 0.085) | ((rel[:, 2] < -0.02) & (rel[:, 1] > -0.02))
    labels = np.asarray(parts, dtype=np.int64).copy()
    labels[(labels == JOINT_INDEX["head"]) & scalp] = HAIR_LABEL
    return labels


def depth_normals(depth: np.ndarray, camera: Camera) -> np.ndarray:
    """(H,W,3) unit surface normals of a z-buffer, camera frame, facing the camera.

    ``depth`` (H,W) metres, inf where empty; ``camera`` its intrinsics. Each pixel's tangents
    are one-sided differences to the neighbour whose depth is closer (so a silhouette or a
    fold does not bend the normal); pixels with no usable neighbour face the camera.
    """
    h, w = depth.shape
    z = np.where(np.isfinite(depth), depth, np.nan).astype(np.float32)
    x, y = _grid(w, h)
    pts = np.stack([(x - camera.cx) / camera.fx * z, (y - camera.cy) / camera.fy * z, z], -1)

    def tangent(axis: int) -> np.ndarray:
        fwd = np.full_like(pts, np.nan)
        bwd = np.full_like(pts, np.nan)
        if axis == 1:
            fwd[:, :-1] = pts[:, 1:] - pts[:, :-1]
            bwd[:, 1:] = pts[:, 1:] - pts[:, :-1]
        else:
            fwd[:-1] = pts[1:] - pts[:-1]
            bwd[1:] = pts[1:] - pts[:-1]
        df, db = np.abs(fwd[..., 2]), np.abs(bwd[..., 2])
        use_b = np.isnan(df) | (db < df)
        return np.where(use_b[..., None], bwd, fwd)

    with np.errstate(invalid="ignore"):
        n = np.cross(tangent(1), tangent(0))
        norm = np.linalg.norm(n, axis=-1, keepdims=True)
        n = n / norm
        bad = ~np.isfinite(n).all(-1) | (norm[..., 0] < 1e-12)
        n[bad] = (0.0, 0.0, -1.0)
        flip = (n * np.nan_to_num(pts, nan=0.0)).sum(-1) > 0  # face the camera
    n[flip] *= -1.0
    return n


# ------------------------------------------------------------------------------ random draws


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32)


def _random_colour(rng: np.random.Generator, vmin: float = 0.1, vmax: float = 0.95) -> np.ndarray:
    return _hsv(rng.uniform(), rng.beta(1.2, 1.5), rng.uniform(vmin, vmax))


def _pattern(rng: np.random.Generator, cfg: SceneConfig):
    if rng.uniform() >= cfg.pattern_prob:
        return None
    kind = ("stripes", "checks", "noise")[rng.integers(3)]
    return (kind, float(rng.uniform(4.0, 24.0)), float(rng.uniform(0, np.pi)),
            float(rng.uniform(0.15, 0.45)))  # fmt: skip


def sample_appearance(rng: np.random.Generator, cfg: SceneConfig | None = None) -> Appearance:
    """Skin tone, hair, clothes (colours, sleeve and trouser lengths, patterns) of one person."""
    cfg = cfg or SceneConfig()
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.9, 1.08, 3)
    hair = skin if rng.uniform() < cfg.bald_prob else HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))]
    top, bottom = _random_colour(rng), _random_colour(rng, 0.08, 0.8)
    shoes = _random_colour(rng, 0.05, 0.6)
    long_sleeves = rng.uniform() < cfg.long_sleeve_prob
    sleeveless = not long_sleeves and rng.uniform() < 0.25
    long_trousers = rng.uniform() < cfg.long_trousers_prob
    colours = {
        "skin": skin, "hair": hair, "top": top,
        "upper_arm": skin if sleeveless else top,
        "forearm": top if long_sleeves else skin,
        "hips": bottom, "thigh": bottom,
        "shin": bottom if long_trousers else skin,
        "shoes": shoes,
    }  # fmt: skip
    rgb = np.clip(np.stack([colours[r] for r in REGIONS]), 0.0, 1.0).astype(np.float32)
    return Appearance(rgb, _pattern(rng, cfg), _pattern(rng, cfg))


def sample_light(rng: np.random.Generator, cfg: SceneConfig | None = None) -> Light:
    """A key light mostly from above and from the camera's side, plus ambient."""
    cfg = cfg or SceneConfig()
    # camera frame: -y is up, -z points back towards the camera
    d = np.array([rng.uniform(-1.0, 1.0), rng.uniform(-1.2, 0.3), rng.uniform(-1.2, 0.1)])
    d /= np.linalg.norm(d) + 1e-12
    warm = rng.uniform(-0.12, 0.12)
    colour = np.array([1.0 + warm, 1.0, 1.0 - warm], dtype=np.float32)
    return Light(d, float(rng.uniform(*cfg.ambient)), colour, float(rng.uniform(*cfg.exposure)))


# ------------------------------------------------------------------------------ backgrounds


def _grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(np.arange(width, dtype=np.float32) + 0.5,
                       np.arange(height, dtype=np.float32) + 0.5)  # fmt: skip


def _lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    return a + (b - a) * t[..., None]


def value_noise(rng: np.random.Generator, width: int, height: int, octaves: int = 4,
                base_cells: float = 4.0) -> np.ndarray:  # fmt: skip
    """(H,W) float32 fractal value noise in [0, 1] (bicubic-upsampled random grids)."""
    out = np.zeros((height, width), np.float32)
    total = 0.0
    for o in range(octaves):
        cells = base_cells * 2**o
        gw = max(2, int(np.ceil(cells * width / max(width, height))) + 1)
        gh = max(2, int(np.ceil(cells * height / max(width, height))) + 1)
        grid = Image.fromarray(rng.uniform(0, 1, (gh, gw)).astype(np.float32), mode="F")
        layer = np.asarray(grid.resize((width, height), Image.BICUBIC), dtype=np.float32)
        amp = 0.5**o
        out += amp * layer
        total += amp
    out /= total
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / max(hi - lo, 1e-6)


def _bg_gradient(rng, width, height, **_):
    x, y = _grid(width, height)
    a, b = _random_colour(rng), _random_colour(rng)
    if rng.uniform() < 0.3:  # radial
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        t = np.hypot(x - cx, y - cy) / np.hypot(width, height)
    else:
        ang = rng.uniform(0, 2 * np.pi)
        t = x * np.cos(ang) + y * np.sin(ang)
        t = t - t.min()
    return _lerp(a, b, np.clip(t / max(float(t.max()), 1e-6), 0, 1))


def _bg_noise(rng, width, height, **_):
    n = value_noise(rng, width, height, octaves=int(rng.integers(2, 6)),
                    base_cells=float(rng.uniform(2, 10)))  # fmt: skip
    a, b, c = _random_colour(rng), _random_colour(rng), _random_colour(rng)
    return np.where((n < 0.5)[..., None], _lerp(a, b, n * 2), _lerp(b, c, n * 2 - 1))


def _bg_stripes(rng, width, height, **_):
    x, y = _grid(width, height)
    ang, period = rng.uniform(0, np.pi), rng.uniform(6, 80)
    s = np.sin(2 * np.pi * (x * np.cos(ang) + y * np.sin(ang)) / period + rng.uniform(0, 6.3))
    t = (s > 0).astype(np.float32) if rng.uniform() < 0.5 else 0.5 + 0.5 * s
    return _lerp(_random_colour(rng), _random_colour(rng), t)


def _bg_checker(rng, width, height, **_):
    x, y = _grid(width, height)
    ang, size = rng.uniform(0, np.pi / 2), rng.uniform(8, 90)
    u = x * np.cos(ang) + y * np.sin(ang)
    v = -x * np.sin(ang) + y * np.cos(ang)
    t = ((np.floor(u / size) + np.floor(v / size)) % 2).astype(np.float32)
    return _lerp(_random_colour(rng), _random_colour(rng), t)


def _bg_shapes(rng, width, height, **_):
    canvas = Image.fromarray((_bg_gradient(rng, width, height) * 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    scale = max(width, height)
    for _ in range(int(rng.integers(8, 50))):
        colour = tuple(int(c) for c in _random_colour(rng) * 255)
        x0, y0 = rng.uniform(-0.1, 1.0, 2) * (width, height)
        w, h = rng.uniform(0.02, 0.35, 2) * scale
        kind = rng.integers(4)
        if kind == 0:
            draw.rectangle([x0, y0, x0 + w, y0 + h], fill=colour)
        elif kind == 1:
            draw.ellipse([x0, y0, x0 + w, y0 + h], fill=colour)
        elif kind == 2:
            corners = int(rng.integers(3, 7))
            pts = [(x0 + rng.uniform(0, w), y0 + rng.uniform(0, h)) for _ in range(corners)]
            draw.polygon(pts, fill=colour)
        else:
            draw.line([x0, y0, x0 + w, y0 + h], fill=colour, width=int(rng.integers(2, 12)))
    return np.asarray(canvas, dtype=np.float32) / 255.0


def _bg_floor(rng, width, height, camera=None, rot_cw=None, eye=None, **_):
    """A textured ground plane (y = 0) seen by the sample's camera, with a wall/sky beyond."""
    far = _BG[("gradient", "noise", "shapes", "stripes")[rng.integers(4)]](rng, width, height)
    if camera is None or rot_cw is None or eye is None or eye[1] <= 0.05:
        return far
    x, y = _grid(width, height)
    rays = np.stack([(x - camera.cx) / camera.fx, (y - camera.cy) / camera.fy,
                     np.ones_like(x)], -1) @ np.asarray(rot_cw, np.float32)  # fmt: skip
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -float(eye[1]) / rays[..., 1]
    reach = rng.uniform(6.0, 30.0)
    ground = (rays[..., 1] < -1e-4) & (t < reach)
    px = eye[0] + t * rays[..., 0]
    pz = eye[2] + t * rays[..., 2]
    tile = rng.uniform(0.25, 1.5)
    a, b = _random_colour(rng, 0.15, 0.85), _random_colour(rng, 0.15, 0.85)
    if rng.uniform() < 0.5:  # tiles
        pat = ((np.floor(px / tile) + np.floor(pz / tile)) % 2).astype(np.float32)
    else:  # planks / grain
        pat = 0.5 + 0.5 * np.sin(2 * np.pi * px / tile * rng.uniform(1, 4))
    floor = _lerp(a, b, np.where(ground, pat, 0).astype(np.float32))
    fog = np.exp(-np.where(ground, t, reach) / reach * rng.uniform(0.5, 2.0))[..., None]
    floor = floor * fog + far * (1 - fog)
    return np.where(ground[..., None], floor, far).astype(np.float32)


_BG = {"gradient": _bg_gradient, "noise": _bg_noise, "stripes": _bg_stripes,
       "checker": _bg_checker, "shapes": _bg_shapes, "floor": _bg_floor}  # fmt: skip


def make_background(
    rng: np.random.Generator,
    width: int,
    height: int,
    cfg: SceneConfig | None = None,
    *,
    camera: Camera | None = None,
    rot_cw: np.ndarray | None = None,
    eye: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """A procedural background: ``((H,W,3) float32 RGB in [0, 1], kind id in BACKGROUNDS)``.

    ``camera`` (intrinsics), ``rot_cw`` (3,3) world -> camera rotation and ``eye`` (3,) camera
    centre in the Y-up world let the ``"floor"`` kind draw the ground plane in perspective
    (without them it falls back to a flat background).
    """
    cfg = cfg or SceneConfig()
    kind = cfg.backgrounds[rng.integers(len(cfg.backgrounds))]
    # Drawn at half resolution and upsampled: 4x cheaper, and backgrounds may be soft.
    w, h = max(1, width // 2), max(1, height // 2)
    small = camera.scaled(w, h) if camera is not None else None
    img = _BG[kind](rng, w, h, camera=small, rot_cw=rot_cw, eye=eye)
    if rng.uniform() < cfg.background_mix_prob:
        other = _BG[("gradient", "noise", "stripes", "checker", "shapes")[rng.integers(5)]]
        img = img + (other(rng, w, h) - img) * np.float32(rng.uniform(0.15, 0.5))
    pil = Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))
    if rng.uniform() < cfg.background_blur_prob:
        pil = pil.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0)))
    pil = pil.resize((width, height), Image.BILINEAR)
    return np.asarray(pil, dtype=np.float32) / np.float32(255.0), BACKGROUNDS.index(kind)


# ------------------------------------------------------------------------------ composition


def _cloth(pattern, x: np.ndarray, y: np.ndarray, rng_phase: float) -> np.ndarray:
    """Multiplicative cloth texture (values in [1 - contrast, 1]) at pixels x, y."""
    kind, period, ang, contrast = pattern
    u = x * np.cos(ang) + y * np.sin(ang)
    if kind == "stripes":
        t = (np.sin(2 * np.pi * u / period + rng_phase) > 0).astype(np.float32)
    elif kind == "checks":
        v = -x * np.sin(ang) + y * np.cos(ang)
        t = ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
    else:
        t = 0.5 + 0.5 * np.sin(u / period * 2.1 + rng_phase) * np.sin(y / period * 1.3)
    return 1.0 - contrast * t


def render_body(
    vertices: np.ndarray,
    faces: np.ndarray,
    labels: np.ndarray,
    camera: Camera,
    appearance: Appearance,
    light: Light,
    background: np.ndarray,
) -> BodyRender:
    """Composite one shaded body over ``background``.

    Args:
        vertices: (V,3) camera-frame vertices, metres.
        faces: (F,3) triangles; labels: (F,) from :func:`face_labels`.
        camera: intrinsics and image size of the render.
        appearance, light: see :func:`sample_appearance`, :func:`sample_light`.
        background: (H,W,3) float32 RGB in [0, 1], H, W = the camera's image size.

    Raises:
        ValueError: a background of another size.
    """
    h, w = camera.height, camera.width
    if background.shape != (h, w, 3):
        raise ValueError(f"background must be ({h},{w},3) for this camera, got {background.shape}")
    depth, label = rasterize(vertices, faces, camera, labels)
    covered = label >= 0
    image = background.copy()
    if covered.any():
        jj, ii = np.nonzero(covered)
        # normals on the body's box only (a few % of the image)
        j0, j1, i0, i1 = jj.min(), jj.max() + 1, ii.min(), ii.max() + 1
        crop = Camera(camera.fx, camera.fy, camera.cx - i0, camera.cy - j0, int(i1 - i0),
                      int(j1 - j0))  # fmt: skip
        normals = depth_normals(depth[j0:j1, i0:i1], crop)[jj - j0, ii - i0]
        lambert = np.clip(normals @ light.direction.astype(np.float32), 0.0, 1.0)
        s = light.ambient + (1.0 - light.ambient) * lambert
        region = LABEL_REGION[label[jj, ii]]
        rgb = appearance.region_rgb[region].copy()
        x, y = ii.astype(np.float32), jj.astype(np.float32)
        cloth = (
            (appearance.top_pattern, ("top", "upper_arm", "forearm"), 0.7),
            (appearance.bottom_pattern, ("hips", "thigh", "shin"), 2.1),
        )
        for pattern, names, phase in cloth:
            if pattern is None:
                continue
            sel = np.isin(region, [REGIONS.index(n) for n in names])
            # sleeves/trouser legs that are skin keep the skin colour
            sel &= (rgb != appearance.region_rgb[REGIONS.index("skin")]).any(1)
            rgb[sel] *= _cloth(pattern, x[sel], y[sel], phase)[:, None]
        image[jj, ii] = rgb * s[:, None] * light.colour * light.exposure
    part = np.where(label == HAIR_LABEL, JOINT_INDEX["head"], label).astype(np.int16)
    return BodyRender(np.clip(image, 0, 1), depth, part, covered)


def draw_occluders(
    rng: np.random.Generator,
    image: np.ndarray,
    box: np.ndarray,
    cfg: SceneConfig | None = None,
) -> np.ndarray:
    """Paint 0-2 objects (boxes, poles, balls, blobs) over ``image`` in place, overlapping the
    person's box ``(x0, y0, x1, y1)`` (pixels); returns the (H,W) bool occluder mask.

    Occluders stand in front of the person (they hide whatever is under them)."""
    cfg = cfg or SceneConfig()
    h, w = image.shape[:2]
    mask = np.zeros((h, w), bool)
    if rng.uniform() >= cfg.occluder_prob:
        return mask
    x0, y0, x1, y1 = (float(v) for v in box)
    bw, bh = max(x1 - x0, 8.0), max(y1 - y0, 8.0)
    for _ in range(int(rng.integers(1, 3))):
        layer = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(layer)
        cx, cy = rng.uniform(x0, x0 + bw), rng.uniform(y0, y0 + bh)
        sw, sh = rng.uniform(*cfg.occluder_size, 2) * (bw, bh)
        kind = rng.integers(4)
        if kind == 0:  # a box / table edge: wide, from the bottom of the frame or floating
            sw = rng.uniform(0.5, 1.5) * bw
            bottom = h + 10 if rng.uniform() < 0.5 else cy + sh / 2
            draw.rectangle([cx - sw / 2, cy - sh / 2, cx + sw / 2, bottom], fill=255)
        elif kind == 1:  # a pole, possibly slanted
            tilt = rng.uniform(-0.3, 0.3) * h
            width_px = max(3.0, 0.08 * bw * rng.uniform(0.5, 2.0))
            draw.line([cx - tilt, -10, cx + tilt, h + 10], fill=255, width=int(width_px))
        elif kind == 2:
            draw.ellipse([cx - sw / 2, cy - sh / 2, cx + sw / 2, cy + sh / 2], fill=255)
        else:
            n = int(rng.integers(4, 9))
            ang = np.sort(rng.uniform(0, 2 * np.pi, n))
            rad = rng.uniform(0.5, 1.0, n)
            draw.polygon([(cx + sw / 2 * r * np.cos(a), cy + sh / 2 * r * np.sin(a))
                          for a, r in zip(ang, rad, strict=True)], fill=255)  # fmt: skip
        sel = np.asarray(layer) > 0
        texture_kind = ("gradient", "noise", "stripes", "checker")[rng.integers(4)]
        small = _BG[texture_kind](rng, max(1, w // 2), max(1, h // 2))
        texture = np.asarray(Image.fromarray((small * 255 + 0.5).astype(np.uint8)).resize(
            (w, h), Image.BILINEAR), dtype=np.float32) / np.float32(255.0)  # fmt: skip
        image[sel] = texture[sel] * rng.uniform(0.6, 1.0)
        mask |= sel
    return mask


_NOISE_TILE = 256
_noise_cache: dict[tuple[int, int], np.ndarray] = {}


def _sensor_noise(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(H,W,3) float32 unit-variance noise, scaled to 8-bit levels: a random window of a
    fixed, tiled noise texture (drawing ~1M normals per frame costs more than the detector's
    person finder; a 256-pixel repeat with a random offset is invisible to it)."""
    key = (height, width)
    big = _noise_cache.get(key)
    if big is None:
        tile = np.random.default_rng(0).standard_normal((_NOISE_TILE, _NOISE_TILE, 3), np.float32)
        reps = (-(-height // _NOISE_TILE) + 1, -(-width // _NOISE_TILE) + 1, 1)
        big = _noise_cache[key] = np.tile(tile * np.float32(255.0), reps)
    oy, ox = rng.integers(0, _NOISE_TILE, 2)
    return big[oy:oy + height, ox:ox + width]


def finish_image(rng: np.random.Generator, image: np.ndarray,
                 cfg: SceneConfig | None = None) -> np.ndarray:  # fmt: skip
    """Camera-like degradations: gamma, sensor noise, blur, JPEG; returns (H,W,3) uint8 RGB."""
    cfg = cfg or SceneConfig()
    gamma = rng.uniform(*cfg.gamma)
    sigma = rng.uniform(*cfg.noise_std)
    # gamma through a 256-entry table on the quantised image (a float power is ~10x slower)
    lut = np.round((np.arange(256) / 255.0) ** gamma * 255).astype(np.uint8)
    img = lut[(np.clip(image, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)]
    if sigma > 0:
        img = np.clip(img + _sensor_noise(rng, img.shape[0], img.shape[1]) * np.float32(sigma),
                      0, 255).astype(np.uint8)  # fmt: skip
    out = Image.fromarray(img)
    if rng.uniform() < cfg.blur_prob:
        out = out.filter(ImageFilter.GaussianBlur(rng.uniform(*cfg.blur_radius)))
    if rng.uniform() < cfg.jpeg_prob:
        buf = io.BytesIO()
        quality = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
        out.save(buf, format="JPEG", quality=quality)
        out = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return np.ascontiguousarray(np.asarray(out, dtype=np.uint8))


__all__ = [
    "BACKGROUNDS", "HAIR_LABEL", "LABEL_REGION", "REGIONS", "Appearance", "BodyRender", "Light",
    "SceneConfig", "draw_occluders", "depth_normals", "face_labels", "finish_image",
    "make_background", "render_body", "sample_appearance", "sample_light", "value_noise",
]  # fmt: skip
