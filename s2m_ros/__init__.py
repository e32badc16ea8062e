"""s2m_ros: the thin ROS 2 layer of s2m (messages, conversions, bags, nodes).

The generated message package ``s2m_ros.msg`` may live in another folder than these sources,
so this package's ``__path__`` is extended to reach it:

* after ``colcon build`` both are installed into one folder; when the source tree is also on
  ``sys.path`` (e.g. pytest run from the repository), ``extend_path`` adds the installed
  ``s2m_ros`` folder;
* in the PyPI venv, pip installs these sources (editable) and tools/build_msgs.sh installs the
  generated package into ``<venv>/lib/s2m_ros_msgs/s2m_ros``, off ``sys.path`` on purpose: a
  second ``s2m_ros`` folder on ``sys.path`` would win over setuptools' editable finder.
"""

import os
import sys
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

_VENV_MSGS = os.path.join(sys.prefix, "lib", "s2m_ros_msgs", "s2m_ros")
if os.path.isdir(_VENV_MSGS) and _VENV_MSGS not in __path__:
    __path__.append(_VENV_MSGS)
