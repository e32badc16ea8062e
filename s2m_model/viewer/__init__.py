"""Browser / native 3D viewer (Rerun recordings): robot, human skeleton and mesh side by side,
and the camera image with its 2D keypoints. See :mod:`s2m_model.viewer.recording`,
:mod:`s2m_model.viewer.run_view` (``s2m run --view``) and :mod:`s2m_model.viewer.serve`.
rerun is imported only when a recording is written.
"""

from s2m_model.viewer.camera_frames import CameraFrames
from s2m_model.viewer.recording import human_vertices, robot_meshes, write_recording
from s2m_model.viewer.run_view import write_run_recording

__all__ = ["CameraFrames", "human_vertices", "robot_meshes", "write_recording",
           "write_run_recording"]  # fmt: skip
