"""``s2m_node``: camera images or 3D skeletons in, SMPL-layout bodies out (see config/live.yaml).

Placeholder that reserves the executable name (setup.py console_scripts, CMakeLists.txt
S2M_EXECUTABLES, launch/live.launch.py); the node is written once the pipeline exists.
"""

from __future__ import annotations

import sys


def main(args: list[str] | None = None) -> int:
    """Entry point of ``s2m_node``."""
    print("s2m_node: not implemented yet (placeholder reserving the name)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
