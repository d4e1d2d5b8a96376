"""Settings from the environment, worker error normalization, and the direction of imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from gateway.errors import worker_error
from gateway.settings import SettingsError, load_settings


def test_defaults_follow_the_seed() -> None:
    settings = load_settings({})
    assert settings.port == 3100 and settings.host == "127.0.0.1"
    assert settings.cors_origins == () and settings.max_body_bytes == 4 * 1024 * 1024
    assert settings.config_path == "config/models.yaml"
    assert settings.usage_flush_s == 5.0 and load_settings({"GATEWAY_USAGE_FLUSH_SECONDS": "0.5"}).usage_flush_s == 0.5


def test_environment_overrides() -> None:
    settings = load_settings({"GATEWAY_PORT": "8080", "LOG_LEVEL": "WARN", "GATEWAY_CONFIG": "/etc/gw.yaml",
                              "CORS_ORIGINS": "https://app.upcoach.com, https://x.example"})
    assert settings.port == 8080 and settings.log_level == "warning"
    assert settings.config_path == "/etc/gw.yaml"
    assert settings.cors_origins == ("https://app.upcoach.com", "https://x.example")


@pytest.mark.parametrize("env", [{"GATEWAY_PORT": "abc"}, {"LOG_LEVEL": "loud"}, {"GATEWAY_MAX_BODY_BYTES": "0"},
                                 {"GATEWAY_START_LOCAL_WORKERS": "maybe"}, {"GATEWAY_USAGE_FLUSH_SECONDS": "0"},
                                 {"GATEWAY_USAGE_FLUSH_SECONDS": "-1"}])
def test_bad_values_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match=next(iter(env))):
        load_settings(env)


def test_vllm_error_with_integer_code() -> None:
    error = worker_error(400, b'{"error": {"message": "bad", "type": "BadRequestError", "param": null, "code": 400}}')
    assert error.status_code() == 400
    assert error.body() == {"error": {"message": "bad", "type": "invalid_request_error", "param": None,
                                      "code": "upstream_error"}}


def test_ollama_and_unauthorized_errors() -> None:
    ollama = worker_error(404, b'{"error": "model \\"x\\" not found, try pulling it first"}').body()["error"]
    assert ollama["type"] == "not_found_error" and ollama["message"].startswith("model")
    unauthorized = worker_error(401, b'{"error":"Unauthorized"}').body()["error"]
    assert unauthorized["type"] == "authentication_error" and unauthorized["message"] == "Unauthorized"
    plain = worker_error(502, b"Bad Gateway").body()["error"]
    assert plain["message"] == "Bad Gateway" and plain["type"] == "server_error"


def test_openai_errors_keep_their_type_and_code() -> None:
    body = b'{"error": {"message": "slow down", "type": "rate_limit_exceeded", "param": null, "code": "rl"}}'
    assert worker_error(429, body).body()["error"]["code"] == "rl"


def test_routing_never_imports_gateway() -> None:
    for path in (Path(__file__).parents[2] / "routing").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n == "gateway" or n.startswith("gateway.") for n in names), path
