"""ShelfID's on-device daemon: config, camera, pipeline stages, reporting, CLI."""

__version__ = "0.1.0"
