"""Precise prefix affinity (`prefix_affinity_precise`): prefix affinity scored from what each worker
says it holds, not from what this gateway sent it.

The approximate index (`prefix_affinity`) remembers the prompts this gateway process sent each
worker. With several gateway replicas each sees only its own traffic, and none knows what the worker
evicted. Workers that publish their KV-cache events (vLLM's `--kv-events-config`, the simulator's
`--kv-events-endpoint`) end both guesses: the gateway subscribes (`gateway.workers.kv_feeds`) and keeps
a `KvBlockIndex` of every worker's blocks, whichever replica sent the prompts. This policy tokenizes
the request as the worker will (`routing.prompt_tokens`: the worker's tokenizer and chat template),
cuts the tokens into the worker's blocks, keys them like the index (`routing.kv_index.block_keys`),
and scores each worker by its longest held prefix over the prompt's blocks (llm-d's precise scorer).

The decision itself is `PrefixAffinity`'s (SGLang's rule with the load guard), with these scores in
place of the approximate ones; the options are the same. A worker that has published no event yet,
or whose tokenizer cannot tokenize the request, is scored by the approximate index, which this
policy keeps up as `prefix_affinity` does: a fleet without events routes exactly as `prefix_affinity`.

How: `PrefixAffinity` computes a request's block hashes (`_hashes`) right before scoring them
(`_scores`); this subclass computes the precise keys in `_hashes` and reads them in `_scores`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from routing.kv_index import KvBlockIndex, block_keys
from routing.policies.prefix_affinity import PrefixAffinity
from routing.prompt_tokens import PromptTokenizer
from routing.snapshot import RequestKey, WorkerLoad

WorkerTokens = Callable[[str], tuple[PromptTokenizer, int] | None]
"""A worker's name -> the tokenizer for its prompts and its configured block size; None when the worker
publishes no events."""

_NO_REQUEST = RequestKey(model="")


class PrecisePrefixAffinity(PrefixAffinity):
    """Prefix affinity on the workers' own KV events (see the module docstring)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._kv = KvBlockIndex()
        self._tokens_of: WorkerTokens = lambda _name: None
        self._request = _NO_REQUEST
        self._tokens: dict[int, list[int] | None] = {}
        """The current request's token ids, per tokenizer (by id)."""
        self._keys: dict[tuple[int, int], list[int]] = {}
        """The current request's block keys, per tokenizer and block size."""

    def attach(self, index: KvBlockIndex, tokens_of: WorkerTokens) -> None:
        """Read blocks from `index` (fed by the gateway's subscribers) and tokenize per `tokens_of`."""
        self._kv = index
        self._tokens_of = tokens_of

    def choose(self, request: RequestKey, candidates: Sequence[WorkerLoad], now: float) -> WorkerLoad | None:
        chosen = super().choose(request, candidates, now)
        self._request, self._tokens, self._keys = _NO_REQUEST, {}, {}  # keep no body alive
        return chosen

    def precise_scores(self, request: RequestKey, candidates: Sequence[WorkerLoad]) -> dict[str, float]:
        """Each candidate that reports events, with its held share of the prompt's blocks (tests, admin)."""
        self._hashes(request)
        shares = {c.name: self._held_share(c.name) for c in candidates}
        return {name: share for name, share in shares.items() if share is not None}

    def _hashes(self, request: RequestKey) -> list[int]:
        self._request, self._tokens, self._keys = request, {}, {}
        return super()._hashes(request)

    def _scores(self, blocks: list[int], candidates: Sequence[WorkerLoad]) -> dict[str, float]:
        scores = super()._scores(blocks, candidates)
        for candidate in candidates:
            share = self._held_share(candidate.name)
            if share is not None:
                scores[candidate.name] = share
        return scores

    def _held_share(self, name: str) -> float | None:
        """The share of the current request's blocks the worker holds; None when it cannot be told (no
        events from the worker, no tokenizer for it, or a request its tokenizer cannot read)."""
        keys = self._keys_for(name)
        if keys is None:
            return None
        return self._kv.matched(name, keys) / len(keys) if keys else 0.0

    def _keys_for(self, name: str) -> list[int] | None:
        found = self._tokens_of(name) if self._kv.reports(name) else None
        if found is None:
            return None
        tokenizer, configured = found
        if id(tokenizer) not in self._tokens:
            self._tokens[id(tokenizer)] = tokenizer.token_ids(self._request)
        ids = self._tokens[id(tokenizer)]
        if ids is None:
            return None
        size = self._kv.block_size(name) or configured
        keys = self._keys.get((id(tokenizer), size))
        if keys is None:
            keys = self._keys[(id(tokenizer), size)] = block_keys(ids, size, max_blocks=self.max_blocks)
        return keys
