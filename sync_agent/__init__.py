"""Catalog sync: the signed bundle format, the central catalog server (`shelfid catalog serve`) and the device's
agent (`shelfid sync`). Builds on edge.core and edge.reporting; nothing in edge/ below the CLI and the doctor imports it.
"""
