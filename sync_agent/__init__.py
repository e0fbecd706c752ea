"""Catalog sync: the signed bundle format, the device's agent (`shelfid sync`) and, in sync_agent/server/, the central
catalog server (`shelfid catalog serve`) and publisher. Builds on edge.core and edge.reporting; nothing in edge/ below the
CLI and the doctor imports it, and no device module here imports sync_agent.server (tests/test_layers.py checks both).
"""
