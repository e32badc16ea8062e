"""Generic helpers shared by every layer: caches and atomic files, timing summaries, plotting.

Nothing here knows about bodies, skeletons or ROS.
"""
