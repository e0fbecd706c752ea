"""The device daemon (`shelfid run`): camera sources, the latest-frame grabber, the tracker, the identification
worker, catalog hot-swap, systemd's notify protocol, and the frame loop that ties them together (run.py).

Builds on edge.core, reports through edge.reporting, shows itself on edge.web; never imports sync_agent
(it reads the agent's status through edge.core.datadir).
"""
