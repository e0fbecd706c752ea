"""The installer's page in the daemon: the HTTP server, the live view and recent identifications it shows,
health (/api/status), Prometheus /metrics and the static pages. Imports edge.core and edge.reporting only.
"""
