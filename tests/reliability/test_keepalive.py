"""Idle client connections: a real `llm-gateway serve` keeps one open for `GATEWAY_KEEPALIVE_SECONDS`
(75 by default), longer than a client pool's own idle timeout, so a pooled request never lands on a
connection the gateway is closing. uvicorn's own default (5 s) made the routing benchmark's burst clients
fail with "server disconnected"."""

from __future__ import annotations

import http.client
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import catalog_yaml
from tests.servers import gateway_processes


def _connection(url: str) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=5)


def _status(conn: http.client.HTTPConnection) -> int:
    conn.request("GET", "/livez")
    response = conn.getresponse()
    response.read()
    return response.status


def _wait(seconds: float) -> None:
    threading.Event().wait(seconds)


def test_an_idle_connection_outlives_uvicorns_default(tmp_path: Path) -> None:
    catalog = tmp_path / "models.yaml"
    catalog.write_text(catalog_yaml([("w1", "http://127.0.0.1:9")]))
    with gateway_processes(catalog, {}) as [(url, _process)]:
        conn = _connection(url)
        assert _status(conn) == 200
        first = conn.sock
        _wait(6.5)  # past uvicorn's 5 s default
        assert _status(conn) == 200
        assert conn.sock is first  # the same connection, not a new one
        conn.close()


def test_the_idle_timeout_is_configurable(tmp_path: Path) -> None:
    catalog = tmp_path / "models.yaml"
    catalog.write_text(catalog_yaml([("w1", "http://127.0.0.1:9")]))
    with gateway_processes(catalog, {"GATEWAY_KEEPALIVE_SECONDS": "1"}) as [(url, _process)]:
        conn = _connection(url)
        assert _status(conn) == 200
        _wait(3.0)
        with pytest.raises(http.client.RemoteDisconnected):  # closed by the gateway meanwhile
            _status(conn)
        conn.close()
