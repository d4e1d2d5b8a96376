"""The one client for workers' control planes; never on the request path (that is aiohttp, in
`gateway.upstream`).

Health checks, load scrapes (vLLM `/metrics`, Ollama `/api/ps` and `/api/tags`), model inventory
(`/v1/models`), Ollama pulls and deletes, LoRA adapters on vLLM, the readiness of local workers: every
call goes to the worker with the worker's own key (`api_key_env`) and no other, over one httpx
connection pool, directly (no proxy from the environment, as on the data plane), never following a
redirect. Ollama's API is spoken through the official `ollama` client, on the same pool.

Library errors (httpx's, `ollama.ResponseError`, undecodable answers) are translated here, where the
libraries are called, so callers see only the gateway's own:

    GatewayError              the worker did not answer (refused, reset, timed out)
    └── UpstreamError         what it answered is not what its API promises (`invalid_upstream_answer`)
        └── WorkerRejected    it answered an error status (Ollama's `{"error": "..."}` included) or,
                              mid-pull, an error line; normalized by `gateway.errors.worker_error`
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Generator, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeGuard

import httpx
import msgspec

if TYPE_CHECKING:
    import ollama

from gateway.errors import GatewayError, UpstreamError, WorkerRejected, worker_error
from routing.catalog import WorkerSpec

PullProgress = Callable[[str, int | None, int | None], None]
"""(status, completed bytes, total bytes) of a pull, as Ollama reports them."""

_PULL_TIMEOUT = httpx.Timeout(30.0, read=600.0)  # a big layer may go minutes without a progress line


def _root_url(worker: WorkerSpec) -> str:
    """Where the worker's own (non-OpenAI) endpoints are: its base URL without `/v1`."""
    return worker.url.removesuffix("/v1")


def _health_url(worker: WorkerSpec) -> str:
    """vLLM's and llama.cpp's `GET /health` (llama-server: 503 while the model loads), Ollama `GET /`, other
    OpenAI-compatible servers `GET /v1/models`."""
    if worker.kind in ("vllm", "llamacpp", "local"):
        return _root_url(worker) + "/health"
    if worker.kind == "ollama":
        return _root_url(worker) + "/"
    return worker.url + "/models"


class _WorkerKey(httpx.Auth):
    """The worker's own key on every request, and no other: the ollama client would otherwise add
    `$OLLAMA_API_KEY` (meant for ollama.com) to calls to a worker that has no key."""

    def __init__(self, header: str | None) -> None:
        self._header = header

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._header:
            request.headers["Authorization"] = self._header
        else:
            request.headers.pop("Authorization", None)
        yield request


class ControlClient:
    """Control-plane calls to the workers of a catalog. `env` holds the workers' keys (`api_key_env`);
    `timeout` (seconds) applies to calls that are not given their own. Use as an async context manager
    (or call `aclose`)."""

    def __init__(self, env: Mapping[str, str], *, timeout: float = 10.0) -> None:
        self._env = env
        self._timeout = timeout
        self._transport = httpx.AsyncHTTPTransport()
        self._http = httpx.AsyncClient(transport=self._transport, timeout=timeout, trust_env=False)

    async def __aenter__(self) -> ControlClient:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()  # closes the pool the ollama clients share

    def _auth_header(self, worker: WorkerSpec) -> str | None:
        key = self._env.get(worker.api_key_env) if worker.api_key_env else None
        return f"Bearer {key}" if key else None

    async def answers_health_check(self, worker: WorkerSpec, limit_s: float) -> bool:
        """Whether the worker's health endpoint (`_health_url`) answers 200 within `limit_s` seconds."""
        try:
            response = await self._send(worker, "GET", _health_url(worker), limit_s=limit_s)
        except GatewayError:
            return False
        return response.status_code == 200

    async def prometheus_metrics(self, worker: WorkerSpec, limit_s: float) -> str:
        """The worker's Prometheus text (`GET /metrics`: vLLM's, llama-server's with `--metrics`)."""
        response = self._succeeded(await self._send(worker, "GET", _root_url(worker) + "/metrics",
                                                    limit_s=limit_s))
        return response.text

    async def llama_cpp_slots(self, worker: WorkerSpec, limit_s: float) -> list[dict[str, Any]]:
        """llama-server's slots (`GET /slots`): each one's context size and whether it is generating."""
        response = self._succeeded(await self._send(worker, "GET", _root_url(worker) + "/slots", limit_s=limit_s))
        with self._translated(worker):
            data = msgspec.json.decode(response.content)
        return [slot for slot in data if isinstance(slot, dict)] if isinstance(data, list) else []

    async def served_models(self, worker: WorkerSpec) -> set[str]:
        """The model ids an OpenAI-compatible worker lists (`GET /v1/models`)."""
        response = self._succeeded(await self._send(worker, "GET", worker.url + "/models"))
        with self._translated(worker):
            data = msgspec.json.decode(response.content)
            return {str(m.get("id")) for m in data.get("data") or () if isinstance(m, dict)}

    async def load_adapter(self, worker: WorkerSpec, name: str, path: str) -> None:
        """vLLM `POST /v1/load_lora_adapter`."""
        body = {"lora_name": name, "lora_path": path}
        self._succeeded(await self._send(worker, "POST", worker.url + "/load_lora_adapter", json=body, limit_s=30.0))

    async def unload_adapter(self, worker: WorkerSpec, name: str) -> None:
        """vLLM `POST /v1/unload_lora_adapter`."""
        body = {"lora_name": name}
        self._succeeded(await self._send(worker, "POST", worker.url + "/unload_lora_adapter", json=body,
                                         limit_s=30.0))

    async def ollama_loaded(self, worker: WorkerSpec, limit_s: float | None = None) -> list[str]:
        """The models an Ollama worker has in memory (`ps`), by their tagged names."""
        with self._translated(worker):
            listed = await self._ollama(worker, limit_s).ps()
            return [str(m.model or m.name) for m in listed.models]

    async def ollama_present(self, worker: WorkerSpec, limit_s: float | None = None) -> dict[str, int | None]:
        """The models on an Ollama worker's disk (`list`, i.e. `/api/tags`): tagged name → size in bytes."""
        with self._translated(worker):
            listed = await self._ollama(worker, limit_s).list()
            return {str(m.model): None if m.size is None else int(m.size) for m in listed.models}

    async def pull(self, worker: WorkerSpec, model: str, on_progress: PullProgress | None = None) -> None:
        """Pull `model` onto an Ollama worker, reporting each progress line; returns once Ollama says
        `success`."""
        last = ""
        with self._translated(worker):
            async for part in await self._ollama(worker, _PULL_TIMEOUT).pull(model, stream=True):
                last = part.status or ""
                if on_progress is not None:
                    on_progress(last, part.completed, part.total)
        if last != "success":
            raise UpstreamError(f"ended without success ({last or 'no status'})", code="invalid_upstream_answer")

    async def delete_model(self, worker: WorkerSpec, model: str) -> None:
        """Delete `model` from an Ollama worker's disk."""
        with self._translated(worker):
            await self._ollama(worker, 30.0).delete(model)

    def _ollama(self, worker: WorkerSpec, limit: float | httpx.Timeout | None) -> ollama.AsyncClient:
        """An ollama client for one call (cheap: it owns nothing but settings; the pool is ours). The
        library is imported on first use: with pydantic it costs ~130 ms and ~11 MB at start-up, and only
        Ollama workers need it."""
        import ollama

        return ollama.AsyncClient(host=_root_url(worker), transport=self._transport, trust_env=False,
                                  follow_redirects=False, auth=_WorkerKey(self._auth_header(worker)),
                                  timeout=self._timeout if limit is None else limit)

    async def _send(self, worker: WorkerSpec, method: str, url: str, *, json: Any = None,
                    limit_s: float | None = None) -> httpx.Response:
        with self._translated(worker):
            return await self._http.request(method, url, json=json, auth=_WorkerKey(self._auth_header(worker)),
                                            timeout=self._timeout if limit_s is None else limit_s)

    @staticmethod
    def _succeeded(response: httpx.Response) -> httpx.Response:
        if response.status_code >= 300:
            raise worker_error(response.status_code, response.content)
        return response

    @staticmethod
    @contextlib.contextmanager
    def _translated(worker: WorkerSpec) -> Iterator[None]:
        try:
            yield
        except (httpx.HTTPError, ConnectionError) as exc:  # the ollama client raises ConnectionError itself
            raise GatewayError(f"worker {worker.name!r} did not answer ({type(exc).__name__})") from None
        except (ValueError, AttributeError) as exc:  # not JSON, or not the shape promised (pydantic's
            # ValidationError is a ValueError)
            raise UpstreamError(f"worker {worker.name!r} answered something unreadable ({type(exc).__name__})",
                                code="invalid_upstream_answer") from None
        except Exception as exc:
            if not _from_ollama(exc):
                raise
            raise _rejected(exc) from None


def _from_ollama(exc: Exception) -> TypeGuard[ollama.ResponseError]:
    """Whether `exc` is `ollama.ResponseError` (no ollama call was made unless the library is loaded)."""
    loaded = sys.modules.get("ollama")
    return loaded is not None and isinstance(exc, loaded.ResponseError)


def _rejected(exc: ollama.ResponseError) -> WorkerRejected:
    """Ollama's error (its status; an error line in a 200 stream counts as a 502) in the gateway's shape."""
    status = exc.status_code if exc.status_code > 0 else 502
    return worker_error(status, msgspec.json.encode({"error": str(exc.error)[:500]}))
