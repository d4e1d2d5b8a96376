"""What the nginx runs send: one chat request per workload, as a wrk script (lua/) and as bodies.

- `plain`: the constant request of chat.lua (no `temperature`: never cacheable);
- `cache-miss`: `temperature: 0` (cacheable) with a user message unique to the run and the request, so a
  response cache misses every time (chat-cache-miss.lua; the run's nonce is the script's argument);
- `cache-hit`: `temperature: 0` and the same body every time, so every request after the first is a hit.

The Python bodies are the Lua scripts' (for `cache-miss`, of the same shape and size): the sanity checks
and the open-loop generator send what wrk sends.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

LUA = Path(__file__).resolve().parent / "lua"
PLAIN_BODY = b'{"model":"bench","messages":[{"role":"user","content":"Say ok"}]}'
HIT_BODY = b'{"model":"bench","temperature":0,"messages":[{"role":"user","content":"Say ok"}]}'
_MISS_TEMPLATE = '{{"model":"bench","temperature":0,"messages":[{{"role":"user","content":"Say ok {nonce}-{n}"}}]}}'


@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    script: Path
    """The wrk script that sends it."""
    varies: bool
    """Each request's body differs (it takes the run's nonce as the script's argument)."""
    description: str

    def body(self, nonce: str = "", n: int = 0) -> bytes:
        """The `n`th request body of a run with this nonce (the same for every n unless `varies`)."""
        if self.name == "cache-miss":
            return _MISS_TEMPLATE.format(nonce=nonce, n=n).encode()
        return HIT_BODY if self.name == "cache-hit" else PLAIN_BODY


WORKLOADS = {
    workload.name: workload
    for workload in (
        Workload("plain", LUA / "chat.lua", False, "chat.lua: one constant request (no temperature: not cacheable)"),
        Workload(
            "cache-miss",
            LUA / "chat-cache-miss.lua",
            True,
            "chat-cache-miss.lua: `temperature: 0`, a user message unique to the run and request",
        ),
        Workload("cache-hit", LUA / "chat-cache-hit.lua", False, "chat-cache-hit.lua: `temperature: 0`, constant"),
    )
}


def new_nonce() -> str:
    """A run's nonce: bodies of different runs (warm-up, each concurrency) never repeat."""
    return secrets.token_hex(4)
