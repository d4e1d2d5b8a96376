"""Metrics (a registry of our own), metrics read from live state at scrape time, the per-request record,
and the structlog setup with its one JSON line per request."""
