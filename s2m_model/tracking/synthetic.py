"""Synthetic crowds with ground truth: rendered bodies composited into images and clips.

Used to measure multi-person detection recall and tracking (``bench/multiperson.py``, tests).
Each identity is the project's body (``s2m-free`` or any SMPL-layout model) with its own shape
(betas) and colour, rendered by :func:`s2m_model.body.render.render_mesh` in a few phases of a
walking cycle (a *sprite bank*: rendering is the slow part, ~0.15 s per image, so each sprite is
rendered once and then scaled and pasted). A clip moves people across the frame at fixed
heights (depths), walking left or right, crossing each other, entering and leaving at the
borders; nearer (taller) people are drawn over farther ones.

Ground truth per person and frame (:class:`GtPerson`): track id, the full (amodal) box of the
silhouette, COCO-17 keypoints (regressed from the mesh, projected) with COCO visibility flags
(2 visible, 1 occluded by a nearer person or outside the image), and the visible fraction of the
silhouette. Pixels: x right, y down. Everything is seeded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from s2m_model.smpl_layout import JOINT_INDEX, NUM_BETAS, NUM_BODY_JOINTS

PALETTE: tuple[tuple[int, int, int], ...] = (
    (120, 170, 230), (230, 140, 110), (130, 200, 120), (210, 190, 100), (180, 130, 210),
    (110, 200, 200), (220, 120, 170), (160, 160, 160),
)
"""Body colours (RGB); every channel >= 100 so the shading never reaches the black key."""
HORIZON = 0.3
"""Horizon height as a fraction of the image height (from the top)."""


def walking_pose(phase: float) -> np.ndarray:
    """A simple walking-cycle pose at ``phase`` in [0, 1): ``(23, 3)`` SMPL body-pose
    axis-angles (radians) — arms down, legs and arms swinging in opposition."""
    from scipy.spatial.transform import Rotation

    s = np.sin(2 * np.pi * phase)
    pose = np.zeros((NUM_BODY_JOINTS, 3))

    def put(name: str, rot: Rotation) -> None:
        pose[JOINT_INDEX[name] - 1] = rot.as_rotvec()

    # SMPL frame: x = the body's left, y up, z forward; a leg swings forward about -x.
    put("left_hip", Rotation.from_rotvec([-0.45 * s, 0.0, 0.0]))
    put("right_hip", Rotation.from_rotvec([0.45 * s, 0.0, 0.0]))
    put("left_knee", Rotation.from_rotvec([0.25 + 0.3 * max(s, 0.0), 0.0, 0.0]))
    put("right_knee", Rotation.from_rotvec([0.25 + 0.3 * max(-s, 0.0), 0.0, 0.0]))
    # T-pose arms lowered by ~75 degrees about z, then swung about x opposite to the legs.
    for side, sign in (("left", -1.0), ("right", 1.0)):
        swing = 0.35 * s * (1.0 if side == "left" else -1.0)
        put(f"{side}_shoulder", Rotation.from_rotvec([swing, 0, 0])
            * Rotation.from_rotvec([0, 0, sign * np.radians(75)]))
        put(f"{side}_elbow", Rotation.from_rotvec([0.0, -sign * 0.3, 0.0]))
    return pose


@dataclass
class Sprite:
    """One rendered person: colour image, alpha mask and COCO-17 keypoints, tightly cropped.

    Attributes:
        rgb: ``(h, w, 3)`` uint8.
        alpha: ``(h, w)`` bool silhouette.
        keypoints: ``(17, 2)`` float64 pixel positions in the sprite.
    """

    rgb: np.ndarray
    alpha: np.ndarray
    keypoints: np.ndarray


class SpriteBank:
    """Sprites for ``identities`` people x ``phases`` walking phases x 2 directions.

    Args:
        body: an SMPL-layout body model (``load_body_model(...)``).
        identities: number of distinct people (shape + colour).
        phases: walking-cycle phases rendered per identity.
        height: rendered sprite height in pixels (targets up to this size stay sharp).
        yaw_deg: how far each person turns towards its walking direction (0 = facing the
            camera, 90 = profile).
        seed: shapes are ``N(0, 0.8)`` betas from this seed.
    """

    def __init__(self, body, *, identities: int = 6, phases: int = 6, height: int = 320,
                 yaw_deg: float = 45.0, seed: int = 0) -> None:
        if identities < 1 or phases < 1 or height < 32:
            raise ValueError(f"need identities, phases >= 1 and height >= 32, got "
                             f"{identities}, {phases}, {height}")
        import torch

        from s2m_model.body.render import look_at_body, render_mesh
        from s2m_model.camera import Camera

        rng = np.random.default_rng(seed)
        self.identities, self.phases = int(identities), int(phases)
        self._sprites: dict[tuple[int, int, int], Sprite] = {}
        cam = Camera.from_fov(int(height * 0.75), int(height), fov_deg=30.0)
        faces = np.asarray(body.faces)
        dtype = getattr(body, "dtype", torch.float32)
        poses = torch.as_tensor(np.stack([walking_pose(k / phases) for k in range(phases)]),
                                dtype=dtype)
        for ident in range(identities):
            betas = torch.as_tensor(rng.normal(0.0, 0.8, (1, NUM_BETAS)), dtype=dtype)
            out = body(betas=betas.expand(phases, -1), global_orient=torch.zeros(phases, 3,
                       dtype=dtype), body_pose=poses, transl=torch.zeros(phases, 3, dtype=dtype))
            joints = body.regress(out.vertices, "coco17").detach().cpu().numpy()
            verts = out.vertices.detach().cpu().numpy()
            colour = PALETTE[ident % len(PALETTE)]
            for k in range(phases):
                for direction in (-1, 1):  # walking towards image left / right
                    yaw = direction * yaw_deg
                    both = look_at_body(np.concatenate([verts[k], joints[k]]), cam, yaw)
                    v_cam, j_cam = both[: len(verts[k])], both[len(verts[k]):]
                    rgb = render_mesh(v_cam, faces, cam, color=colour, background=(0, 0, 0))
                    alpha = rgb.max(-1) > 0
                    ys, xs = np.nonzero(alpha)
                    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
                    kp = cam.project(j_cam) - np.array([x0, y0])
                    self._sprites[(ident, k, direction)] = Sprite(
                        rgb[y0:y1, x0:x1].copy(), alpha[y0:y1, x0:x1].copy(), kp)

    def get(self, identity: int, phase: float, direction: int) -> Sprite:
        """The sprite nearest to ``phase`` (cycles) walking in ``direction`` (-1 left, +1 right)."""
        k = int(round(phase * self.phases)) % self.phases
        return self._sprites[(identity % self.identities, k, 1 if direction >= 0 else -1)]


@dataclass
class GtPerson:
    """Ground truth of one person in one image (pixels).

    Attributes:
        track_id: identity, stable over a clip.
        box: ``(4,)`` full silhouette box ``x0, y0, x1, y1`` (may extend beyond the image).
        keypoints: ``(17, 3)`` COCO-17 x, y, visibility (2 visible, 1 occluded or outside).
        height: box height in pixels.
        visible_fraction: fraction of the silhouette inside the image and not covered by a
            nearer person.
        area: visible silhouette area in pixels (the OKS scale).
    """

    track_id: int
    box: np.ndarray
    keypoints: np.ndarray
    height: float
    visible_fraction: float
    area: float


@dataclass
class CrowdFrame:
    """One composited image and its people."""

    image: np.ndarray
    people: list[GtPerson] = field(default_factory=list)


def background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A plain outdoor-ish backdrop: sky above a ground plane, with smooth grey noise,
    ``(H, W, 3)`` uint8."""
    import cv2

    rows = np.arange(height)[:, None, None]
    sky, ground = rng.uniform(150, 230, 3), rng.uniform(70, 150, 3)
    base = np.where(rows < HORIZON * height, sky, ground) * np.ones((1, width, 1))
    noise = cv2.resize(rng.normal(0, 12, (height // 24 + 1, width // 24 + 1)),
                       (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(base + noise[..., None], 0, 255).astype(np.uint8)


def composite(
    canvas: np.ndarray,
    placements: list[tuple[int, Sprite, float, float, float]],
) -> list[GtPerson]:
    """Paste sprites into ``canvas`` (in place), far (short) to near (tall).

    Args:
        canvas: ``(H, W, 3)`` uint8 image, modified.
        placements: ``(track_id, sprite, x_centre, y_feet, height_px)`` per person.

    Returns:
        The people's ground truth, in the order of ``placements``.
    """
    import cv2

    height, width = canvas.shape[:2]
    order = sorted(range(len(placements)), key=lambda i: placements[i][4])
    owner = np.full((height, width), -1, dtype=np.int32)
    full: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, float]] = {}
    for i in order:
        _, sprite, xc, y_feet, h = placements[i]
        k = h / sprite.alpha.shape[0]
        w_px = max(int(round(sprite.alpha.shape[1] * k)), 1)
        h_px = max(int(round(h)), 1)
        x0, y0 = int(round(xc - w_px / 2)), int(round(y_feet - h_px))
        rgb = cv2.resize(sprite.rgb, (w_px, h_px), interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(sprite.alpha.astype(np.uint8), (w_px, h_px),
                           interpolation=cv2.INTER_NEAREST).astype(bool)
        scale = np.array([w_px / sprite.alpha.shape[1], h_px / sprite.alpha.shape[0]])
        kp = sprite.keypoints * scale + np.array([x0, y0])
        cx0, cy0 = max(x0, 0), max(y0, 0)
        cx1, cy1 = min(x0 + w_px, width), min(y0 + h_px, height)
        if cx1 > cx0 and cy1 > cy0:
            sub = alpha[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
            canvas[cy0:cy1, cx0:cx1][sub] = rgb[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0][sub]
            owner[cy0:cy1, cx0:cx1][sub] = i
        box = np.array([x0, y0, x0 + w_px, y0 + h_px], dtype=np.float64)
        full[i] = (box, kp, alpha, float(alpha.sum()))
    out = []
    for i, (track_id, _, _, _, _) in enumerate(placements):
        box, kp, _, total = full[i]
        visible = float((owner == i).sum())
        kx, ky = np.round(kp[:, 0]).astype(int), np.round(kp[:, 1]).astype(int)
        inside = (kx >= 0) & (kx < width) & (ky >= 0) & (ky < height)
        seen = np.zeros(17, dtype=bool)
        # A keypoint is visible if it is in the image and no nearer person covers it.
        seen[inside] = np.isin(owner[ky[inside], kx[inside]], [i, -1])
        keypoints = np.column_stack([kp, np.where(seen, 2.0, 1.0)])
        out.append(GtPerson(int(track_id), box, keypoints, float(box[3] - box[1]),
                            visible / max(total, 1.0), visible))
    return out


@dataclass
class Walker:
    """One person's straight walk in a clip (pixels per frame)."""

    track_id: int
    identity: int
    height: float
    y_feet: float
    x_start: float
    speed: float
    start_frame: int = 0
    phase0: float = 0.0


def plan_walkers(n_people: int, width: int, height: int, n_frames: int,
                 heights: tuple[float, float], rng: np.random.Generator) -> list[Walker]:
    """Random straight walks: half go right, half left (so they cross), entering and leaving
    at the borders or starting inside; heights uniform in ``heights`` (pixels)."""
    walkers = []
    for i in range(n_people):
        h = float(rng.uniform(*heights))
        # Taller people stand nearer the camera, so their feet are lower in the image; a
        # camera at 0.6 body heights puts the horizon at 60 % of everyone's height.
        y_feet = HORIZON * height + 0.6 * h
        direction = 1 if i % 2 == 0 else -1
        speed = direction * float(rng.uniform(0.004, 0.012)) * h
        # Mid-clip positions spread over the frame: opposite walkers cross each other.
        x_mid = float(rng.uniform(0.15, 0.85)) * width
        x_start = x_mid - speed * n_frames / 2
        walkers.append(Walker(i, i, h, y_feet, x_start, speed, 0, float(rng.uniform())))
    return walkers


def side_by_side_walkers(n: int, width: int = 640, height: int = 480,
                         height_px: float = 180.0) -> list[Walker]:
    """``n`` people ``height_px`` tall side by side across a ``width`` x ``height`` frame,
    walking slowly, neighbours in opposite directions (all detectable; the speed scene of
    ``bench/multiperson.py`` and ``bench/pipeline.py --people``)."""
    return [
        Walker(i, i, height_px, HORIZON * height + 0.6 * height_px, (i + 0.5) * width / n,
               0.4 * (1 - 2 * (i % 2)), 0, 0.17 * i)
        for i in range(n)
    ]  # fmt: skip


def make_clip(
    bank: SpriteBank,
    *,
    n_frames: int = 60,
    n_people: int = 4,
    width: int = 640,
    height: int = 480,
    heights: tuple[float, float] = (80.0, 300.0),
    seed: int = 0,
    walkers: list[Walker] | None = None,
) -> list[CrowdFrame]:
    """A clip of people walking across a static backdrop.

    Args:
        bank: the sprites (identities beyond ``bank.identities`` reuse its people).
        walkers: explicit walks (default :func:`plan_walkers` with ``seed``).

    Returns:
        ``n_frames`` :class:`CrowdFrame`; only people with some silhouette in the image are
        listed in a frame.
    """
    if n_frames < 1 or n_people < 0:
        raise ValueError(f"need n_frames >= 1 and n_people >= 0, got {n_frames}, {n_people}")
    rng = np.random.default_rng(seed)
    back = background(width, height, rng)
    walkers = walkers if walkers is not None else plan_walkers(
        n_people, width, height, n_frames, heights, rng)
    frames = []
    for t in range(n_frames):
        canvas = back.copy()
        placements, ids = [], []
        for w in walkers:
            if t < w.start_frame:
                continue
            x = w.x_start + w.speed * (t - w.start_frame)
            half_w = 0.3 * w.height
            if x + half_w < 0 or x - half_w > width:
                continue
            # One walking cycle per ~0.9 body heights walked.
            phase = w.phase0 + abs(w.speed) * (t - w.start_frame) / (0.9 * w.height)
            sprite = bank.get(w.identity, phase, 1 if w.speed >= 0 else -1)
            placements.append((w.track_id, sprite, x, w.y_feet, w.height))
            ids.append(w.track_id)
        people = composite(canvas, placements)
        frames.append(CrowdFrame(canvas, [p for p in people if p.visible_fraction > 0]))
    return frames
