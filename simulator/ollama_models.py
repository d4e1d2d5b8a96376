"""The simulated Ollama worker's models: those on disk, those loaded in memory, and their JSON shapes.

Names are normalized like Ollama's: a name without a tag means `:latest`. Loading a model that is
not in memory takes `cold_load_seconds`; at most `max_loaded_models` stay loaded, the least recently
used is unloaded first (even if busy: the simulator does not wait for it to go idle), and a loaded
model expires `keep_alive` after its last use (`keep_alive` 0 unloads it right after the request,
a negative one keeps it forever).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from simulator.config import SimulatorConfig

MODEL_SIZE_BYTES = 270_000_000
"""The size every simulated model reports (on disk and in memory)."""

_DURATION = re.compile(r"(-?\d+(?:\.\d+)?)(ms|s|m|h)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def normalize_name(name: str) -> str:
    """`name` with Ollama's default tag: `llama3.2` → `llama3.2:latest`."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def timestamp(epoch_seconds: float | None = None) -> str:
    """An RFC 3339 UTC time with microseconds, as Ollama writes `created_at` and `modified_at`."""
    moment = datetime.fromtimestamp(time.time() if epoch_seconds is None else epoch_seconds, UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_keep_alive(value: Any, default_s: float) -> float:
    """Seconds from Ollama's `keep_alive` (a number of seconds or a duration like "5m"); <0 is forever."""
    if isinstance(value, bool) or value is None:
        return default_s
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = _DURATION.fullmatch(value.strip())
        if match is not None:
            return float(match.group(1)) * _UNITS[match.group(2)]
    return default_s


@dataclass(frozen=True)
class InstalledModel:
    """A model on the simulated worker's disk."""

    name: str
    modified_at: float

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.name.encode()).hexdigest()

    def details(self) -> dict[str, Any]:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": "llama",
            "families": ["llama"],
            "parameter_size": "135M",
            "quantization_level": "Q4_K_M",
        }


class ModelStore:
    """The models of one simulated Ollama worker, on disk and in memory."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.installed: dict[str, InstalledModel] = {}
        self.loaded: OrderedDict[str, float] = OrderedDict()
        """Loaded model name → when it expires (epoch seconds, inf for never), least recently used first."""
        self._load_locks: dict[str, asyncio.Lock] = {}
        self.reset()

    def reset(self) -> None:
        """Back to the configured models, loaded only if `preloaded`."""
        now = time.time()
        names = [normalize_name(name) for name in self.config.models]
        self.installed = {name: InstalledModel(name, now) for name in names}
        self.loaded.clear()
        if self.config.preloaded:
            for name in list(self.installed)[: self.config.max_loaded_models]:
                self.loaded[name] = now + self.config.keep_alive_s

    def find(self, name: str) -> InstalledModel | None:
        return self.installed.get(normalize_name(name))

    def install(self, name: str) -> InstalledModel:
        model = InstalledModel(normalize_name(name), time.time())
        self.installed[model.name] = model
        return model

    def delete(self, name: str) -> bool:
        """Remove a model from disk (and memory); False if there was none."""
        self.loaded.pop(normalize_name(name), None)
        return self.installed.pop(normalize_name(name), None) is not None

    def _expire(self) -> None:
        now = time.time()
        for name in [name for name, expires in self.loaded.items() if expires <= now]:
            del self.loaded[name]

    def is_loaded(self, name: str) -> bool:
        self._expire()
        return normalize_name(name) in self.loaded

    async def ensure_loaded(self, name: str) -> float:
        """Load the model if it is not in memory; the seconds this took (0 when it was loaded)."""
        name = normalize_name(name)
        started = time.monotonic()
        lock = self._load_locks.setdefault(name, asyncio.Lock())
        async with lock:
            if not self.is_loaded(name):
                if self.config.cold_load_seconds > 0:
                    await asyncio.sleep(self.config.cold_load_seconds)
                self.loaded[name] = time.time() + self.config.keep_alive_s
                while len(self.loaded) > self.config.max_loaded_models:
                    self.loaded.popitem(last=False)
        self.loaded.move_to_end(name)
        return time.monotonic() - started

    def keep(self, name: str, keep_alive_s: float) -> None:
        """After a request: keep the model loaded for `keep_alive_s` more (0 unloads, <0 forever)."""
        name = normalize_name(name)
        if name not in self.loaded:
            return
        if keep_alive_s == 0:
            del self.loaded[name]
        else:
            self.loaded[name] = float("inf") if keep_alive_s < 0 else time.time() + keep_alive_s

    def unload(self, name: str) -> None:
        self.loaded.pop(normalize_name(name), None)

    # --- JSON shapes --------------------------------------------------------------------------

    def tags_body(self) -> dict[str, Any]:
        """`GET /api/tags`."""
        return {
            "models": [
                {
                    "name": model.name,
                    "model": model.name,
                    "modified_at": timestamp(model.modified_at),
                    "size": MODEL_SIZE_BYTES,
                    "digest": model.digest,
                    "details": model.details(),
                }
                for model in self.installed.values()
            ]
        }

    def ps_body(self) -> dict[str, Any]:
        """`GET /api/ps`: loaded models, most recently used first."""
        self._expire()
        models = []
        for name, expires in reversed(self.loaded.items()):
            model = self.installed.get(name) or InstalledModel(name, time.time())
            expires_at = timestamp(min(expires, 253402300799.0))  # "forever" shows as year 9999
            models.append(
                {
                    "name": name,
                    "model": name,
                    "size": MODEL_SIZE_BYTES,
                    "digest": model.digest,
                    "details": model.details(),
                    "expires_at": expires_at,
                    "size_vram": 0,
                    "context_length": self.config.num_ctx,
                }
            )
        return {"models": models}

    def show_body(self, model: InstalledModel) -> dict[str, Any]:
        """`POST /api/show`."""
        return {
            "license": "Apache License 2.0 (simulated)",
            "modelfile": f'# Modelfile generated by "ollama show"\nFROM {model.name}\nTEMPLATE {{{{ .Prompt }}}}\n',
            "parameters": 'stop "<|im_end|>"',
            "template": "{{ .Prompt }}",
            "details": model.details(),
            "model_info": {
                "general.architecture": "llama",
                "general.parameter_count": 134515008,
                "llama.context_length": 8192,
                "llama.embedding_length": self.config.embedding_dim,
                "llama.block_count": 30,
            },
            "capabilities": ["completion", "embedding"],
            "modified_at": timestamp(model.modified_at),
        }
