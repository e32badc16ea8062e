"""Foot contact of the human, frame by frame (causal: the same code offline and live).

Monocular video gives ankle heights and positions that are far noisier than mocap: the whole
body bobs with the depth estimate (both ankles move together, several m/s from frame to frame
along the viewing ray), and a few bad frames (a person half in view) pull a clip-wide
percentile of the ankle heights far below the real ground. A fixed "lower than 6 cm above the
clip's planted height and slower than 0.35 m/s" test then never fires. So, per foot:

* **Filtered signals.** Ankle and pelvis positions can go through a first-order low-pass
  (time constant ``smoothing_s``, dt-aware). Off by default: measured on the benchmark clips,
  0.05 s of smoothing (and a release speed above the plant speed) doubled the mocap foot
  sliding p95 through the lag at lift-off, and the local ground and the speed test below
  find the demo clip's contacts without it.
* **Local ground.** Heights are measured from the lowest filtered ankle (either foot) over
  the last ``window_s`` seconds, not from one clip-wide value: it follows slow drift of the
  estimated height and ignores outlier frames outside the window. A standing or walking
  person has a foot on the ground within any second; a jump lands within it.
* **Speed.** The horizontal speed of the filtered ankle in the world, or relative to the
  filtered pelvis, whichever is smaller: a depth error moves the whole body, so a planted
  foot is still relative to the pelvis; a walking person's planted foot is still in the
  world. A swinging foot moves in both.
* **Hysteresis.** A foot becomes planted below ``on_height`` and ``on_speed``, and is
  released only above ``off_height`` (larger) or ``off_speed``: height noise near the
  threshold does not make contacts flicker (``off_speed`` = ``on_speed`` by default, so a
  foot that starts to move is released at once).

Units: metres, seconds, m/s, in the robot world (z up) of the human motion (before scaling).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ContactConfig:
    """Thresholds of :class:`ContactDetector` (metres, seconds, m/s)."""

    on_height: float = 0.06
    off_height: float = 0.09
    on_speed: float = 0.35
    off_speed: float = 0.35
    smoothing_s: float = 0.0
    window_s: float = 1.0

    def __post_init__(self) -> None:
        if not (0 < self.on_height <= self.off_height and 0 < self.on_speed <= self.off_speed):
            raise ValueError(f"contact thresholds need 0 < on <= off: {self}")
        if self.smoothing_s < 0 or self.window_s <= 0:
            raise ValueError(f"contact smoothing_s must be >= 0 and window_s > 0: {self}")


class ContactDetector:
    """Streaming foot-contact test for named feet (see the module docstring).

    Call once per frame with each foot's ankle position (NaN = not seen) and the pelvis; a
    frame with a non-finite ankle releases that foot. :meth:`reset` forgets the history (a
    new person, a jump in time).
    """

    def __init__(self, feet: tuple[str, ...] = ("left", "right"),
                 config: ContactConfig | None = None) -> None:  # fmt: skip
        self.feet = tuple(feet)
        self.config = config or ContactConfig()
        self.reset()

    def reset(self) -> None:
        self._ankle: dict[str, np.ndarray | None] = {f: None for f in self.feet}
        self._rel: dict[str, np.ndarray | None] = {f: None for f in self.feet}
        self._planted = {f: False for f in self.feet}
        self._pelvis: np.ndarray | None = None
        self._lows: deque[tuple[float, float]] = deque()
        self._t: float | None = None

    def _smooth(self, prev: np.ndarray | None, x: np.ndarray, dt: float | None) -> np.ndarray:
        if prev is None or dt is None or dt <= 0 or not np.isfinite(prev).all():
            return x.copy()
        tau = self.config.smoothing_s
        alpha = 1.0 if tau <= 0 else 1.0 - float(np.exp(-dt / tau))
        return prev + alpha * (x - prev)

    def __call__(self, ankles: dict[str, np.ndarray], pelvis: np.ndarray,
                 t: float) -> dict[str, bool]:  # fmt: skip
        """``ankles`` ``{foot: (3,)}``, ``pelvis`` (3,), time ``t`` (s) -> ``{foot: planted}``.

        Also sets :attr:`heights` / :attr:`speeds` (the tested values, for diagnostics).
        """
        cfg = self.config
        dt = None if self._t is None or t <= self._t else t - self._t
        if self._t is not None and t - self._t > cfg.window_s:
            self.reset()  # a gap longer than the window: the history says nothing any more
            dt = None
        pelvis = np.asarray(pelvis, np.float64)
        prev_pelvis = self._pelvis
        pelvis_ok = np.isfinite(pelvis).all()
        if pelvis_ok:
            self._pelvis = self._smooth(prev_pelvis, pelvis, dt)
        filtered: dict[str, np.ndarray] = {}
        speeds: dict[str, float] = {}
        for foot in self.feet:
            x = np.asarray(ankles.get(foot, np.full(3, np.nan)), np.float64)
            if not np.isfinite(x).all():
                self._ankle[foot] = self._rel[foot] = None
                continue
            prev = self._ankle[foot]
            cur = self._smooth(prev, x, dt)
            speed = 0.0
            if prev is not None and dt:
                speed = float(np.linalg.norm(cur[:2] - prev[:2]) / dt)
                if pelvis_ok and self._rel[foot] is not None:
                    rel = cur - self._pelvis
                    body = float(np.linalg.norm(rel[:2] - self._rel[foot][:2]) / dt)
                    speed = min(speed, body)
            self._ankle[foot] = cur
            self._rel[foot] = cur - self._pelvis if pelvis_ok else None
            filtered[foot], speeds[foot] = cur, speed
        self._t = t
        if filtered:
            self._lows.append((t, min(float(v[2]) for v in filtered.values())))
        while self._lows and self._lows[0][0] < t - cfg.window_s:
            self._lows.popleft()
        ground = min(z for _, z in self._lows) if self._lows else np.nan
        self.heights = {f: float(v[2] - ground) for f, v in filtered.items()}
        self.speeds = speeds
        for foot in self.feet:
            if foot not in filtered:
                self._planted[foot] = False
                continue
            h, v = self.heights[foot], speeds[foot]
            if self._planted[foot]:
                self._planted[foot] = h < cfg.off_height and v < cfg.off_speed
            else:
                self._planted[foot] = h < cfg.on_height and v < cfg.on_speed
        return dict(self._planted)
