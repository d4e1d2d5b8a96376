"""The step model of a simulated vLLM worker: vLLM V1's scheduler with chunked prefill, on a clock.

Enabled by `SimulatorConfig.max_num_batched_tokens`. The worker runs one forward pass (a step) at a
time. Each step has a budget of `max_num_batched_tokens` tokens, spent as vLLM's scheduler spends it:
first on the running requests in order (one token for each decoding request, the next chunk of the
prompt for one still in prefill), then on waiting requests, first come first served, while fewer than
`max_running` (max_num_seqs) run and their KV blocks fit (`simulator.kv_pool.BlockPool`); the head of
the queue blocks those behind it. A waiting request's cached leading blocks are looked up when it is
admitted, and each prompt block is published for reuse as soon as the step that computes it is
scheduled (as vLLM V1 does, so requests in the same step share it).

A step lasts `(step_overhead_s + step_s_per_token * tokens in the step) * time_scale`: a memory-bound
part (reading the weights) plus a compute-bound part that grows with the tokens. So a prefill chunk
slows down every decode sharing its step, and queued requests wait behind it, as on a GPU. When a
step ends, each request whose prompt is complete emits a token (its first, out of the prefill, or the
next one), and a request that emitted its whole completion leaves, releasing its blocks.

Steps follow a clock of their own: a step starts when the previous one was due to end, not when the
event loop got round to it, so the simulated GPU keeps its pace on a busy machine (the clock may
fall behind real time by at most `MAX_LAG_STEPS` steps' overhead before it gives up catching up).

With a publisher (`publish_events_to`), every step's KV-cache events (blocks stored, blocks evicted) go
out as one batch when the step ends, as vLLM publishes them (`simulator.kv_events`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from simulator.config import SimulatorConfig
from simulator.kv_events import KvEventLog, KvEventPublisher
from simulator.kv_pool import BlockPool
from simulator.latency import chained_block_hashes
from simulator.text import CHARS_PER_TOKEN, token_ids

if TYPE_CHECKING:
    from simulator.engine import GenerationObserver

MAX_LAG_STEPS = 5


@dataclass(eq=False)
class StepRequest:
    """One request inside the step scheduler."""

    prompt_tokens: int
    completion_tokens: int
    hashes: list[bytes]
    """Chained hashes of the prompt's full blocks."""
    arrived: float
    """`time.monotonic()` when it reached the worker."""
    computed: int = 0
    """Prompt tokens whose KV exists (cached or computed)."""
    cached_tokens: int = 0
    """Prompt tokens found in the cache when it was admitted."""
    emitted: int = 0
    """Completion tokens out so far."""
    done: bool = False
    held: list[bytes] = field(default_factory=list)
    """Published blocks it holds, in prompt order."""
    anonymous: int = 0
    """Fresh blocks it holds that are not published."""
    published: int = 0
    """Its leading blocks already cached or published."""
    progress: asyncio.Event = field(default_factory=asyncio.Event)
    """Set whenever it emits a token or ends."""
    token_ids: list[int] = field(default_factory=list)
    """The prompt's token ids, when KV events are published (they carry each stored block's tokens)."""

    @property
    def prefilled(self) -> bool:
        return self.computed >= self.prompt_tokens


@dataclass(frozen=True)
class Step:
    """One forward pass: the requests in it, each with the tokens it computes, and how long it lasts."""

    batch: tuple[tuple[StepRequest, int], ...]
    seconds: float

    @property
    def tokens(self) -> int:
        return sum(tokens for _, tokens in self.batch)


class StepScheduler:
    """One worker's forward passes: admission, chunked prefill, decode, KV blocks (see module docstring)."""

    def __init__(self, config: SimulatorConfig, observer: GenerationObserver | None = None, *,
                 drive: bool = True) -> None:
        """`drive` False: no loop of its own, the caller runs `next_step` and `finish_step` (tests)."""
        assert config.max_num_batched_tokens is not None
        self.drive = drive
        self.config = config
        self.budget = config.max_num_batched_tokens
        self.observer = observer
        self.pool = BlockPool(config.kv_blocks, config.block_tokens)
        self.waiting: deque[StepRequest] = deque()
        self.running: list[StepRequest] = []
        self.steps = 0
        """Forward passes so far."""
        self._work = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._clock = 0.0
        self._publisher: KvEventPublisher | None = None

    def publish_events_to(self, publisher: KvEventPublisher) -> None:
        """Publish the KV-cache events of every step from now on."""
        self._publisher = publisher
        self.pool.events = KvEventLog(self.config.block_tokens)

    def flush_events(self) -> None:
        """Publish the events logged since the last flush (the end of a step does it)."""
        if self._publisher is not None and self.pool.events is not None:
            self._publisher.publish(self.pool.events.take())

    def submit(self, model: str, prompt_text: str, prompt_tokens: int, completion_tokens: int) -> StepRequest:
        """Queue a request; wait on its `progress` for its tokens, and `abort` it if it is abandoned."""
        hashes = chained_block_hashes(model, prompt_text, self.config.block_tokens * CHARS_PER_TOKEN)
        request = StepRequest(prompt_tokens, completion_tokens, hashes[: prompt_tokens // self.config.block_tokens],
                              time.monotonic())  # fmt: skip
        if self.pool.events is not None:
            request.token_ids = token_ids(prompt_text)
        self.waiting.append(request)
        self._work.set()
        if self.drive and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._run())
        return request

    def abort(self, request: StepRequest) -> None:
        """Drop a request wherever it is (the client left); a no-op once it is done."""
        if request.done:
            return
        if request in self.running:
            self._finish(request)
        else:
            with contextlib.suppress(ValueError):
                self.waiting.remove(request)
            request.done = True
            request.progress.set()

    async def close(self) -> None:
        """Stop the step loop (the server is stopping)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def step_seconds(self, tokens: int) -> float:
        """How long a step computing `tokens` tokens lasts."""
        return (self.config.step_overhead_s + self.config.step_s_per_token * tokens) * self.config.time_scale

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.waiting and not self.running:
                self.flush_events()
                self._work.clear()
                await self._work.wait()
                continue
            step = self.next_step()
            now = loop.time()
            start = max(self._clock, now - MAX_LAG_STEPS * self.step_seconds(0))
            self._clock = start + step.seconds
            await asyncio.sleep(max(self._clock - now, 0.0))
            self.finish_step(step)
            self.flush_events()

    def next_step(self) -> Step:
        """Schedule the next step: the running requests in order (a decode token each, or their prompt's
        next chunk), then waiting requests admitted first come first served, within the token budget."""
        budget = self.budget
        batch: list[tuple[StepRequest, int]] = []
        for request in self.running:
            if budget <= 0:
                break
            tokens = min(request.prompt_tokens - request.computed, budget) if not request.prefilled else 1
            batch.append((request, tokens))
            budget -= tokens
            self._publish(request, request.computed + tokens)
        while self.waiting and budget > 0 and len(self.running) < self.config.max_running:
            request = self.waiting[0]
            if not self._admit(request):
                break  # first come, first served: the head of the queue waits for blocks, and so do the others
            self.waiting.popleft()
            self.running.append(request)
            tokens = min(request.prompt_tokens - request.computed, budget)
            batch.append((request, tokens))
            budget -= tokens
            self._publish(request, request.computed + tokens)
        return Step(tuple(batch), self.step_seconds(sum(tokens for _, tokens in batch)))

    def finish_step(self, step: Step) -> None:
        """A step ended: advance prefills, emit tokens, let finished requests go."""
        self.steps += 1
        for request, tokens in step.batch:
            if request.done:  # aborted during the step
                continue
            if not request.prefilled:
                request.computed += tokens
                if not request.prefilled:
                    continue
            if request.emitted < request.completion_tokens:
                request.emitted += 1
                request.progress.set()
            if request.emitted >= request.completion_tokens:
                self._finish(request)

    def _admit(self, request: StepRequest) -> bool:
        """Look the prompt up in the cache and hold its blocks; False when they do not fit yet."""
        block = self.config.block_tokens
        # vLLM always computes the last prompt token, so a whole cached prompt still leaves one block to do.
        reusable = min(len(request.hashes), max(request.prompt_tokens - 1, 0) // block)
        hits = self.pool.cached_prefix(request.hashes[:reusable])
        fresh = math.ceil((request.prompt_tokens + request.completion_tokens) / block) - hits
        cached = request.hashes[:hits]
        if not self.pool.allocate(cached, fresh, force=not self.running):
            return False
        request.held = list(cached)
        request.anonymous = fresh
        request.published = hits
        request.computed = request.cached_tokens = hits * block
        if self.observer is not None:
            self.observer.on_prefix_lookup(request.prompt_tokens, request.cached_tokens)
            self.observer.on_scheduled(time.monotonic() - request.arrived)
        return True

    def _publish(self, request: StepRequest, computed: int) -> None:
        """Publish the request's prompt blocks that `computed` tokens fill."""
        full = min(computed // self.config.block_tokens, len(request.hashes))
        run_start: int | None = None  # the first block of the run of blocks stored just now
        for index in range(request.published, full):
            block_hash = request.hashes[index]
            if self.pool.publish(block_hash):
                request.held.append(block_hash)
                request.anonymous -= 1
                run_start = index if run_start is None else run_start
            elif run_start is not None:
                self._log_stored(request, run_start, index)
                run_start = None
        if run_start is not None:
            self._log_stored(request, run_start, full)
        request.published = max(request.published, full)

    def _log_stored(self, request: StepRequest, start: int, end: int) -> None:
        """Log blocks `start` to `end` (excluded) of the request's prompt as stored."""
        if self.pool.events is None:
            return
        block = self.config.block_tokens
        parent = request.hashes[start - 1] if start else None
        self.pool.events.stored(request.hashes[start:end], parent, request.token_ids[start * block : end * block])

    def _finish(self, request: StepRequest) -> None:
        self.running.remove(request)
        self.pool.release(request.held, request.anonymous)
        request.done = True
        request.progress.set()
