"""Generic helpers shared by every layer: caches and atomic files, timing summaries, plotting,
quieting native (C++) log banners on stderr (``quiet_stderr``).

Nothing here knows about bodies, skeletons or ROS.
"""
