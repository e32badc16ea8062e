"""The ``s2m`` command line: one entry point, sub-commands contributed by plug-ins.

Sub-commands are registered through the setuptools entry-point group :data:`ENTRY_POINT_GROUP`
(``s2m.commands``). Each entry point names a function ``register(subparsers)`` that adds its
sub-parser(s) and sets ``func=<callable(args) -> int exit code>`` with ``set_defaults``; one
entry point may add several sub-commands (the ROS layer adds ``live``, ``eval-bag`` and
``record``). The library's own commands live next to the code they drive
(``s2m_model/<concept>/cli.py``); another package (the ROS layer, a robot integration) adds
commands by declaring entry points in its own ``setup.py``, so this module never names it::

    entry_points={"s2m.commands": ["retarget = my_pkg.cli:register"]}

Heavy imports happen inside the handlers, so ``s2m --help`` stays fast. A plug-in that fails
to import or to register is skipped with a one-line warning on stderr; its command is then
missing from ``s2m --help``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, entry_points

ENTRY_POINT_GROUP = "s2m.commands"


def command_entry_points() -> list[EntryPoint]:
    """The installed ``s2m.commands`` entry points, sorted by name (one per distribution)."""
    seen: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        seen.setdefault(ep.name, ep)  # an editable + a regular install may list one twice
    return [seen[name] for name in sorted(seen)]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def register_plugins(
    subparsers: argparse._SubParsersAction,
    plugins: Iterable[EntryPoint],
    warn: Callable[[str], None],
) -> list[str]:
    """Load each plug-in and let it register; returns the names of those that loaded.

    A plug-in that raises while importing or registering is reported through ``warn`` (one
    line: the entry point, the exception type and message) and skipped.
    """
    loaded = []
    for ep in plugins:
        try:
            register = ep.load()
            if not callable(register):
                raise TypeError(f"{ep.value} is not a register(subparsers) function")
            register(subparsers)
        except Exception as exc:  # noqa: BLE001 - any broken plug-in must not break `s2m`
            warn(f"s2m: warning: command plug-in {ep.name!r} ({ep.value}) was skipped: "
                 f"{_one_line(exc)}")  # fmt: skip
            continue
        loaded.append(ep.name)
    return loaded


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def build_parser(
    plugins: Iterable[EntryPoint] | None = None,
    warn: Callable[[str], None] = _stderr,
) -> argparse.ArgumentParser:
    """The ``s2m`` parser with every plug-in's sub-commands (default: the installed ones).

    Raises:
        RuntimeError: no plug-in is installed at all (the package's entry points are missing).
    """
    parser = argparse.ArgumentParser(
        prog="s2m",
        description="s2m — Skeleton2Mesh for robots: camera stream -> SMPL-layout body meshes.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `s2m COMMAND --help` for the options of one command.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    plugins = command_entry_points() if plugins is None else list(plugins)
    if not plugins:
        raise RuntimeError(
            f"no s2m commands are registered (entry-point group {ENTRY_POINT_GROUP!r} is "
            "empty): install the package, e.g. `pip install -e .` in the repository"
        )
    register_plugins(sub, plugins, warn)
    return parser


def check_device(device) -> None:
    """Raise ValueError (one line) when this torch cannot use ``device`` (e.g. ``cuda`` on a
    CPU-only build, ``cuda:3`` with one GPU, a misspelt name); torch is only imported for a
    device other than the CPU, so commands without ``--device`` stay fast."""
    if device is None or str(device) == "cpu":
        return
    import torch

    try:
        dev = torch.device(str(device))
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ValueError(f"--device {device!r} is not a torch device ({_one_line(exc)})") from None
    if dev.type != "cuda":
        return
    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else "a CUDA build, no GPU visible"
        raise ValueError(f"--device {device}: CUDA is not available (torch {torch.__version__}, "
                         f"{build}); use --device cpu")  # fmt: skip
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s)")


def describe_os_error(exc: OSError) -> str:
    """One line for a file-system error, naming the path and what was expected of it."""
    import os
    from pathlib import Path

    if not exc.filename:
        return _one_line(exc)
    path = Path(os.fsdecode(exc.filename))
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        # mkdir on (or below) an existing file: typically --out naming a file, not a folder.
        blocker = next((p for p in (path, *path.parents) if p.is_file()), None)
        if blocker is not None:
            return f"{blocker} is a file, but a folder is needed there (check --out)"
    if isinstance(exc, IsADirectoryError):
        return f"{path} is a folder, but a file is needed there"
    return f"{exc.strerror or type(exc).__name__}: {path}"


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
    except RuntimeError as exc:
        _stderr(f"s2m: error: {exc}")
        return 2
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        check_device(getattr(args, "device", None))
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        # User-facing errors: one clear line, no traceback (use -v for details).
        if args.verbose:
            raise
        print(f"s2m {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # --out at a file, unwritable folders, a full disk, ...
        if args.verbose:
            raise
        print(f"s2m {args.command}: error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except AssertionError as exc:
        # torch asserts "Torch not compiled with CUDA enabled" for a cuda tensor on a CPU build
        # (e.g. a cuda device from a config file); other assertions are bugs: traceback.
        if args.verbose or "CUDA" not in str(exc):
            raise
        print(f"s2m {args.command}: error: {_one_line(exc)}; use --device cpu", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
