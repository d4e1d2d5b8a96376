"""CORS is off unless CORS_ORIGINS names the origins allowed."""

from __future__ import annotations

import httpx

from simulator import SimulatorThread
from tests.conftest import catalog_yaml, start_gateway
from tests.servers import ServerThread

PREFLIGHT = {"Origin": "https://app.upcoach.com", "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "content-type,authorization"}


def test_cors_off_by_default(gateway: ServerThread) -> None:
    response = httpx.get(gateway.url + "/v1/models", headers={"Origin": "https://app.upcoach.com"})
    assert "access-control-allow-origin" not in response.headers


def test_cors_for_configured_origins(vllm_sim: SimulatorThread) -> None:
    text = catalog_yaml([("w", vllm_sim.url)])
    with start_gateway(text, CORS_ORIGINS="https://app.upcoach.com") as gw:
        allowed = httpx.options(gw.url + "/v1/chat/completions", headers=PREFLIGHT)
        assert allowed.status_code in (200, 204)
        assert allowed.headers["access-control-allow-origin"] == "https://app.upcoach.com"
        other = httpx.get(gw.url + "/v1/models", headers={"Origin": "https://evil.example"})
        assert other.headers.get("access-control-allow-origin") != "https://evil.example"
