"""Reporting: the event format, the durable SQLite outbox, event sinks, the MQTT reporter and its topics,
announcements of new catalog versions, and `shelfid events` (follow). Imports edge.core only.
"""
