"""Headless matplotlib: every report plot in s2m is drawn through :func:`pyplot`."""

from __future__ import annotations

from types import ModuleType


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (no display needed).

    Imported lazily so that library users who never plot do not pay matplotlib's import time.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
