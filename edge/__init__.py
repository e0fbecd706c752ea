"""ShelfID's Python package for the device and the identification shared with the catalog server.

Wings, lowest first (each imports only those before it; tests/test_layers.py enforces it):
    core/       identification: config, images, catalog format and build, index, verifiers, decision, identify
    reporting/  events, the SQLite outbox, sinks, the MQTT reporter and announcements, `shelfid events`
    web/        the installer's page: server, live view, /api/status, /metrics, static pages
    daemon/     `shelfid run`: camera, grabber, tracker, worker, catalog hot-swap, sd_notify, the frame loop
    bench/      `shelfid bench`: index and pipeline benchmarks
On top: cli.py (the `shelfid` command) with its command groups in commands/, doctor.py (`shelfid doctor`),
logs.py (logging set-up): the only modules here that may import sync_agent.
"""

__version__ = "0.1.0"
