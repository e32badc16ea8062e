"""Pose and shape refinement after DIK (paper Secs. 3.3-3.5), plus a fit to image evidence.

- :mod:`.shape_from_bones` — SR: bone lengths -> betas, closed form per frame.
- :mod:`.shape_track` — one converging shape per tracked person, with its uncertainty.
"""
