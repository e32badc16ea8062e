"""Browser / native 3D viewer of retargeted motion (Rerun recordings): robot, human skeleton
and mesh side by side. See :mod:`s2m_model.viewer.recording` and :mod:`s2m_model.viewer.serve`.
"""

from s2m_model.viewer.recording import human_vertices, robot_meshes, write_recording

__all__ = ["human_vertices", "robot_meshes", "write_recording"]
