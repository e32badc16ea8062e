"""The ``s2m`` command line: one entry point, one subcommand per concept.

Each subcommand lives next to the code it drives (``s2m_model/<concept>/cli.py``) and exposes
``register(subparsers)``; heavy imports happen inside the handlers so ``s2m --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# subcommand -> module with a ``register(subparsers)`` function
COMMANDS: dict[str, str] = {
    "body": "s2m_model.body.cli",
    "data": "s2m_model.data.cli",
    "detect": "s2m_model.detect.cli",
    "eval": "s2m_model.eval.cli",
    "demo": "s2m_model.demo",
    "export": "s2m_model.export.cli",
    "run": "s2m_model.run_cli",
    "train": "s2m_model.lifter.cli",
    "ros": "s2m_ros.cli",  # live, eval-bag, record (rclpy imported by the handlers only)
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s2m",
        description="s2m — Skeleton2Mesh for robots: camera stream -> SMPL-layout body meshes.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `s2m COMMAND --help` for the options of one command.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMANDS.values():
        importlib.import_module(module_name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        # User-facing errors: one clear line, no traceback (use -v for details).
        if args.verbose:
            raise
        print(f"s2m {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
