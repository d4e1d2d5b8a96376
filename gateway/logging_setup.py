"""structlog configuration: JSON lines on stderr at the configured level."""

from __future__ import annotations

import logging

import structlog


def configure_logging(level: str) -> None:
    numeric = logging.getLevelNamesMapping()[level.upper()]
    logging.basicConfig(level=numeric, format="%(message)s")
    logging.getLogger("httpx").setLevel(max(numeric, logging.WARNING))  # control-plane polls are noise
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=True,
    )
