"""Catalog sync: bundle format, the central catalog server and the device agent (not built yet)."""
