"""The simulated inference engine shared by the vLLM and Ollama front ends.

It admits requests through a bounded queue (`AdmissionQueue`), plans each generation (prompt tokens,
KV-cache hits, the reply cut at max_tokens) and paces its tokens, reporting timings to an optional
observer (vLLM's Prometheus metrics). The pace comes from the per-request latency model
(`simulator.latency`) or, for a vLLM worker with `max_num_batched_tokens`, from the step model
(`simulator.scheduler`), where the KV-cache lookup happens when the scheduler admits the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Literal, Protocol

from simulator.config import SimulatorConfig
from simulator.latency import LatencyModel, PrefixCache
from simulator.scheduler import StepRequest, StepScheduler
from simulator.text import ReplyWriter, count_tokens

FinishReason = Literal["stop", "length"]


class QueueFullError(Exception):
    """The worker already holds as many running and waiting requests as it accepts."""


class AdmissionQueue:
    """At most `max_running` requests generate at once; at most `max_waiting` wait (None: any)."""

    def __init__(self, max_running: int, max_waiting: int | None) -> None:
        self.max_running = max_running
        self.max_waiting = max_waiting
        self.running = 0
        self.waiting = 0
        self._slots = asyncio.Semaphore(max_running)

    def enter(self) -> QueueTicket:
        """Join the queue (QueueFullError when it is full); use as `async with queue.enter() as ticket`."""
        if self.max_waiting is not None and self.running + self.waiting >= self.max_running + self.max_waiting:
            raise QueueFullError(f"{self.running} requests running and {self.waiting} waiting")
        self.waiting += 1
        return QueueTicket(self)


class QueueTicket:
    """One request's place in an `AdmissionQueue`: waiting, then running once `start` returns."""

    def __init__(self, queue: AdmissionQueue) -> None:
        self.queue = queue
        self._state: Literal["waiting", "running", "done"] = "waiting"

    async def __aenter__(self) -> QueueTicket:
        return self

    async def start(self) -> None:
        """Wait for a running slot."""
        await self.queue._slots.acquire()
        self.queue.waiting -= 1
        self.queue.running += 1
        self._state = "running"

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._state == "waiting":
            self.queue.waiting -= 1
        elif self._state == "running":
            self.queue.running -= 1
            self.queue._slots.release()
        self._state = "done"


class GenerationObserver(Protocol):
    """Receives an engine's timings (vLLM's metrics implement it)."""

    def on_prefix_lookup(self, queried_tokens: int, hit_tokens: int) -> None: ...
    def on_scheduled(self, queue_seconds: float) -> None: ...
    def on_first_token(self, seconds: float) -> None: ...
    def on_inter_token(self, seconds: float) -> None: ...
    def on_finished(self, e2e_seconds: float) -> None: ...


@dataclass(frozen=True)
class GenerationPlan:
    """What one request will produce, decided when it is admitted."""

    model: str
    prompt_tokens: int
    cached_prompt_tokens: int
    pieces: tuple[str, ...]
    """The completion, one token a piece."""
    finish_reason: FinishReason
    prompt_text: str = ""

    @property
    def completion_tokens(self) -> int:
        return len(self.pieces)

    @property
    def text(self) -> str:
        return "".join(self.pieces)


class Engine:
    """One worker's engine: admission, KV cache, reply text and token pacing."""

    def __init__(self, config: SimulatorConfig, observer: GenerationObserver | None = None) -> None:
        self.config = config
        self.observer = observer
        self.kv_cache = PrefixCache(config.kv_blocks, config.block_tokens)
        self.latency = LatencyModel(config)
        self.replies = ReplyWriter(config.seed, config.reply_tokens, config.response_text)
        self._queues: dict[str, AdmissionQueue] = {}
        self._blocks_in_use = 0
        self.scheduler = StepScheduler(config, observer) if config.max_num_batched_tokens is not None else None
        """The step model, when `max_num_batched_tokens` is set (vLLM only); None: the per-request model."""

    def queue_for(self, model: str) -> AdmissionQueue:
        """vLLM: one queue for the whole engine; Ollama: one per model (num_parallel each)."""
        key = model if self.config.kind == "ollama" else ""
        queue = self._queues.get(key)
        if queue is None:
            if self.config.kind == "ollama":
                queue = AdmissionQueue(self.config.num_parallel, self.config.max_queue)
            else:
                queue = AdmissionQueue(self.config.max_running, self.config.max_queued)
            self._queues[key] = queue
        return queue

    @property
    def running(self) -> int:
        if self.scheduler is not None:
            return len(self.scheduler.running)
        return sum(queue.running for queue in self._queues.values())

    @property
    def waiting(self) -> int:
        queued = sum(queue.waiting for queue in self._queues.values())
        return queued + len(self.scheduler.waiting) if self.scheduler is not None else queued

    @property
    def kv_cache_usage(self) -> float:
        """Fraction of KV blocks held by running requests (vLLM's kv_cache_usage_perc)."""
        if self.scheduler is not None:
            return self.scheduler.pool.usage
        return min(self._blocks_in_use / self.config.kv_blocks, 1.0)

    def plan(
        self,
        model: str,
        prompt_text: str,
        max_tokens: int | None,
        prompt_tokens: int | None = None,
        reply: Sequence[str] | None = None,
    ) -> GenerationPlan:
        """Count the prompt, look its prefix up in the KV cache, and write the reply.

        `max_tokens` None means `default_max_tokens`; a negative one means no limit. `reply`: the
        tokens to generate instead of the written reply (a tool call's arguments).
        """
        if prompt_tokens is None:
            prompt_tokens = count_tokens(prompt_text)
        cached_tokens = 0
        if self.scheduler is None:  # the step model looks the prompt up when it admits the request
            cached_tokens = self.kv_cache.lookup_and_insert(model, prompt_text, prompt_tokens)
            if self.observer is not None:
                self.observer.on_prefix_lookup(prompt_tokens, cached_tokens)
        pieces = list(reply) if reply is not None else self.replies.pieces(model, prompt_text)
        if max_tokens is None:
            limit = self.config.default_max_tokens
        elif max_tokens < 0:  # Ollama's num_predict -1 (no limit) or -2 (fill the context)
            limit = len(pieces)
        else:
            limit = max_tokens
        finish_reason: FinishReason = "stop"
        if len(pieces) > limit:
            pieces = pieces[:limit]
            finish_reason = "length"
        return GenerationPlan(model, prompt_tokens, cached_tokens, tuple(pieces), finish_reason, prompt_text)

    @contextlib.asynccontextmanager
    async def occupy(self, plan: GenerationPlan, arrived: float) -> AsyncIterator[Generation]:
        """Run the plan: hold its KV blocks (per-request model) or hand it to the step scheduler (and take
        it back if it is abandoned); observe its end-to-end latency if it completes."""
        stepped = None
        if self.scheduler is not None:
            stepped = self.scheduler.submit(plan.model, plan.prompt_text, plan.prompt_tokens, plan.completion_tokens)
        blocks = 0 if stepped else math.ceil((plan.prompt_tokens + plan.completion_tokens) / self.config.block_tokens)
        self._blocks_in_use += blocks
        try:
            yield Generation(self, plan, arrived, stepped)
            if self.observer is not None:
                self.observer.on_finished(time.monotonic() - arrived)
        finally:
            self._blocks_in_use -= blocks
            if stepped is not None and self.scheduler is not None:
                self.scheduler.abort(stepped)

    async def prefill(self, plan: GenerationPlan, queue: AdmissionQueue, arrived: float) -> None:
        """Per-request model: wait out the time to first token (the first token comes out of the prefill)."""
        if self.observer is not None:
            self.observer.on_scheduled(time.monotonic() - arrived)
        uncached = plan.prompt_tokens - plan.cached_prompt_tokens
        await _pause(self.latency.time_to_first_token(uncached, queue.running))
        if self.observer is not None:
            self.observer.on_first_token(time.monotonic() - arrived)

    async def decode(self, plan: GenerationPlan, queue: AdmissionQueue, slow: bool = False) -> AsyncIterator[str]:
        """Per-request model: yield the plan's tokens, the first at once (after `prefill`), the others
        an inter-token latency apart."""
        previous = time.monotonic()
        for index, piece in enumerate(plan.pieces):
            if index > 0:
                await _pause(self.latency.inter_token(queue.running, slow))
                now = time.monotonic()
                if self.observer is not None:
                    self.observer.on_inter_token(now - previous)
                previous = now
            yield piece

    async def aclose(self) -> None:
        """Stop the step scheduler's loop, if any (the server is stopping)."""
        if self.scheduler is not None:
            await self.scheduler.close()

    def reset(self) -> None:
        """Forget the KV cache's contents."""
        self.kv_cache.clear()
        if self.scheduler is not None:
            self.scheduler.pool.clear()
            self.scheduler.flush_events()


class Generation:
    """One request running through an `Engine` (yielded by `Engine.occupy`): its first token, then
    its tokens, paced by the per-request model or by the step scheduler."""

    def __init__(self, engine: Engine, plan: GenerationPlan, arrived: float, stepped: StepRequest | None) -> None:
        self.engine = engine
        self.plan = plan
        self.arrived = arrived
        self._stepped = stepped

    async def first_token(self, queue: AdmissionQueue) -> GenerationPlan:
        """Wait for the first token; the plan, with the prompt tokens the step model found cached."""
        stepped = self._stepped
        if stepped is None:
            await self.engine.prefill(self.plan, queue, self.arrived)
            return self.plan
        await _progress(stepped, 1)
        observer = self.engine.observer
        if observer is not None:
            observer.on_first_token(time.monotonic() - self.arrived)
        self.plan = replace(self.plan, cached_prompt_tokens=stepped.cached_tokens)
        return self.plan

    async def tokens(self, queue: AdmissionQueue, slow: bool = False) -> AsyncIterator[str]:
        """The completion, one token a piece, the first at once (after `first_token`); under the step
        model each later one when a step emits it (plus `slow_itl_s` under the `slow` fault)."""
        stepped = self._stepped
        if stepped is None:
            async for piece in self.engine.decode(self.plan, queue, slow):
                yield piece
            return
        observer = self.engine.observer
        previous = time.monotonic()
        for index, piece in enumerate(self.plan.pieces):
            if index > 0:
                await _progress(stepped, index + 1)
                if slow:
                    await _pause(self.engine.config.slow_itl_s * self.engine.config.time_scale)
                now = time.monotonic()
                if observer is not None:
                    observer.on_inter_token(now - previous)
                previous = now
            yield piece


async def _progress(stepped: StepRequest, emitted: int) -> None:
    """Wait until the step scheduler has emitted `emitted` tokens of the request, or let it go."""
    while stepped.emitted < emitted and not stepped.done:
        stepped.progress.clear()
        await stepped.progress.wait()


async def _pause(seconds: float) -> None:
    await asyncio.sleep(seconds if seconds > 0 else 0)
