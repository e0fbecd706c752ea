"""The identification core: what the device and the central catalog server both run.

Config schema and file loading, image reading, the catalog format (read, build), the search index, the
verifiers, the decision and `identify` (detector → embedder → search → verify → decide). It imports models/
and nothing else of ours: no daemon, reporting, web or sync_agent module (tests/test_layers.py checks it).
"""
