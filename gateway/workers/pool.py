"""The workers of the current catalog, their live state, and the choice of one for a request.

State per worker: the gateway's own in-flight count, the load scraped from it in the background,
active health and passive outlier ejection; and, for workers that publish KV events, the blocks they
hold (`kv_index`, fed by `gateway.workers.kv_feeds`). The choice itself is a pure policy from `routing`,
fed a snapshot of that state; nothing here does I/O (but for reading the tokenizer files a catalog's
`kv_events` name, when it is loaded).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from gateway.upstream.client import WorkerTarget
from gateway.workers.hf_tokens import PromptTokenizers
from routing.active_health import ActiveHealth
from routing.catalog import Catalog, CatalogError, WorkerSpec
from routing.kv_index import KvBlockIndex
from routing.outlier import OutlierConfig, OutlierDetector
from routing.policies import (
    Explanation,
    PrecisePrefixAffinity,
    PrefixAffinity,
    SessionAffinity,
    WorkerPolicy,
    make_policy,
)
from routing.prompt_tokens import PromptTokenizer
from routing.snapshot import RequestKey, WorkerLoad


@dataclass(slots=True)
class ScrapedLoad:
    """What the background scrape last read from a worker (None: unknown)."""

    waiting: int | None = None
    running: int | None = None
    kv_usage: float | None = None
    num_gpu_blocks: int | None = None
    resident_models: frozenset[str] | None = None
    present_models: frozenset[str] | None = None
    """Ollama: the models on disk (`/api/tags`)."""
    read_at: float | None = None
    """When it was read (the event loop's clock, as `pick`'s `now`); set by `WorkerPool.record_load`."""
    own_in_flight: int = 0
    """The gateway's own requests to the worker when it was read: the part of `waiting + running` that
    is ours (the rest is other gateways'); set by `WorkerPool.record_load`."""
    own_prefilling: int = 0
    """Of those, the ones that had not had their first token: the part of `waiting` that may be ours."""


@dataclass(slots=True)
class WorkerState:
    spec: WorkerSpec
    target: WorkerTarget
    in_flight: int = 0
    prefilling: int = 0
    """Of `in_flight`, the requests sent that have not had their first token yet (`WorkerLoad.prefilling`)."""
    load: ScrapedLoad = field(default_factory=ScrapedLoad)

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True, slots=True)
class Placement:
    """One worker able to serve one catalog model, under the worker's own model id."""

    state: WorkerState
    upstream_model: str
    num_ctx: int | None = None

    @property
    def name(self) -> str:
        return self.state.spec.name

    @property
    def target(self) -> WorkerTarget:
        return self.state.target


class WorkerPool:
    def __init__(self, catalog: Catalog, env: Mapping[str, str], previous: WorkerPool | None = None) -> None:
        self._catalog = catalog
        self._env = env
        o = catalog.outlier
        self.outlier: OutlierDetector = previous.outlier if previous else OutlierDetector(OutlierConfig(
            consecutive_failures=o.consecutive_failures, base_ejection_s=o.base_ejection,
            max_ejection_s=o.max_ejection, max_ejection_percent=o.max_ejection_percent,
            panic_threshold_percent=o.panic_threshold_percent))
        h = catalog.health
        self.health: ActiveHealth = previous.health if previous else ActiveHealth(
            unhealthy_threshold=h.unhealthy_threshold, healthy_threshold=h.healthy_threshold)
        # A model whose policy did not change keeps its policy's state (turns, session rings, prefix index).
        self._policies: dict[str, WorkerPolicy] = {}
        for model in catalog.models:
            old = previous._catalog.model(model.name) if previous else None
            same = old is not None and (old.policy, old.policy_options) == (model.policy, model.policy_options)
            self._policies[model.name] = previous._policies[model.name] if previous and same \
                else make_policy(model.policy, **model.policy_options)
        self.kv_index: KvBlockIndex = previous.kv_index if previous else KvBlockIndex()
        """The blocks each worker that publishes KV events holds (kept across reloads)."""
        self._tokenizers: PromptTokenizers = previous._tokenizers if previous else PromptTokenizers()
        self._prompt_tokens = self._load_tokenizers(catalog)
        for policy in self._policies.values():
            if isinstance(policy, PrecisePrefixAffinity):
                policy.attach(self.kv_index, self._tokens_of)
        self._kept = previous.workers if previous else {}
        self._session_affinity: SessionAffinity | None = previous._session_affinity if previous else SessionAffinity()
        self.workers: dict[str, WorkerState] = {}
        self._by_model: dict[str, list[Placement]] = {}
        # Discovered members of `dns` workers, by the catalog worker's name.
        self._members: dict[str, list[WorkerSpec]] = {w.name: [w] for w in catalog.workers}
        if previous:
            for name, members in previous._members.items():
                spec = next((w for w in catalog.workers if w.name == name), None)
                if spec is not None and spec.discovery == "dns" and members and members[0].kind == spec.kind:
                    self._members[name] = members
        self._rebuild()

    def _load_tokenizers(self, catalog: Catalog) -> dict[str, tuple[PromptTokenizer, int]]:
        """Each catalog worker with `kv_events`: its prompt tokenizer and block size (CatalogError when a
        tokenizer's files cannot be used)."""
        found: dict[str, tuple[PromptTokenizer, int]] = {}
        for i, spec in enumerate(catalog.workers):
            if spec.kv_events is not None:
                try:
                    found[spec.name] = (self._tokenizers.get(spec.kv_events), spec.kv_events.block_size)
                except (OSError, ValueError) as exc:
                    raise CatalogError("<catalog>", [f"$.workers[{i}].kv_events.tokenizer: {exc}"]) from None
        return found

    def _tokens_of(self, worker: str) -> tuple[PromptTokenizer, int] | None:
        """A worker's prompt tokenizer and block size; DNS members share their catalog worker's."""
        return self._prompt_tokens.get(worker.split("@", 1)[0])

    def _rebuild(self) -> None:
        workers: dict[str, WorkerState] = {}
        by_model: dict[str, list[Placement]] = {}
        for members in self._members.values():
            for spec in members:
                kept = self.workers.get(spec.name) or self._kept.get(spec.name)
                state = kept if kept is not None and kept.spec == spec else \
                    WorkerState(spec=spec, target=WorkerTarget.for_worker(spec, self._env))
                workers[spec.name] = state
                for served in spec.served():
                    by_model.setdefault(served.name, []).append(
                        Placement(state, served.worker_model_id, served.num_ctx))
        for gone in set(self.workers) - set(workers):
            self.outlier.forget(gone)
            self.health.forget(gone)
            for policy in self._policies.values():
                policy.forget(gone)
        self.workers, self._by_model = workers, by_model

    def set_members(self, catalog_worker: str, members: Iterable[WorkerSpec]) -> bool:
        """Replace the discovered members of a `dns` worker; True if anything changed."""
        new = list(members)
        if [m.name for m in new] == [m.name for m in self._members.get(catalog_worker, [])]:
            return False
        self._members[catalog_worker] = new
        self._rebuild()
        return True

    def record_load(self, state: WorkerState, load: ScrapedLoad, read_at: float, in_flight_before: int) -> None:
        """Store what the background scrape read at `read_at`, with our own in-flight count then: the larger of
        the count when the scrape was sent (`in_flight_before`) and now, so our requests that ended while it
        was on its way are not taken for other gateways'. Tell prefix indexes how many blocks the worker holds."""
        load.read_at, load.own_in_flight = read_at, max(in_flight_before, state.in_flight)
        load.own_prefilling = state.prefilling
        state.load = load
        if load.num_gpu_blocks:
            for served in state.spec.served():
                policy = self._policies.get(served.name)
                if isinstance(policy, PrefixAffinity):
                    policy.capacity(state.name, load.num_gpu_blocks)

    def catalog_workers(self) -> list[WorkerSpec]:
        return list(self._catalog.workers)

    def served_models(self) -> set[str]:
        return set(self._by_model)

    def placements(self, model: str) -> list[Placement]:
        return list(self._by_model.get(model, ()))

    def pick(self, model: str, key: RequestKey, now: float, exclude: Iterable[str] = (), *,
             sticky: bool = False) -> Placement | None:
        """Choose a worker for `model` by its policy among the eligible ones not in `exclude`; `sticky`
        (a conversation the gateway keeps): by session affinity, whatever the model's policy."""
        placements = self._by_model.get(model)
        if not placements:
            return None
        if len(placements) == 1:  # a lone worker is never ejected (nor left out in panic mode)
            only = placements[0]
            return None if only.name in exclude or only.state.spec.weight == 0 else only
        eligible, _panic = self.outlier.eligible([p.name for p in placements], now, down=self.health.down())
        allowed = set(eligible).difference(exclude)
        candidates = [p for p in placements if p.name in allowed]
        if not candidates:
            return None
        loads = [_load_of(p, model) for p in candidates]
        chosen = self._policy(model, key, sticky).choose(key, loads, now)
        if chosen is None:
            return None
        return next(p for p in candidates if p.name == chosen.name)

    def _policy(self, model: str, key: RequestKey, sticky: bool) -> WorkerPolicy:
        policy = self._policies[model]
        if sticky and key.session is not None and self._session_affinity is not None \
                and not isinstance(policy, SessionAffinity):
            return self._session_affinity  # kept conversations stay on one worker whatever the policy
        return policy

    def explain(self, model: str, key: RequestKey, eligible: Iterable[str], now: float, *,
                sticky: bool = False) -> Explanation:
        """What `pick` would decide among the `eligible` workers of `model` and why, changing nothing."""
        allowed = set(eligible)
        loads = [_load_of(p, model) for p in self._by_model.get(model, ()) if p.name in allowed]
        return self._policy(model, key, sticky).explain(key, loads, now)

    def status(self, now: float) -> list[dict[str, object]]:
        ejections = self.outlier.snapshot(now)
        down = self.health.down()
        return [{"name": w.name, "kind": w.spec.kind, "url": w.spec.url, "in_flight": w.in_flight,
                 "healthy": w.name not in down, "outlier": ejections.get(w.name, {}),
                 "models": [s.name for s in w.spec.served()],
                 "kv_blocks": self.kv_index.held(w.name) if self.kv_index.reports(w.name) else None}
                for w in self.workers.values()]


def _load_of(placement: Placement, model: str) -> WorkerLoad:
    state = placement.state
    resident = state.load.resident_models
    load = state.load
    return WorkerLoad(name=state.name, weight=state.spec.weight, in_flight=state.in_flight,
                      waiting=load.waiting, running=load.running, kv_usage=load.kv_usage,
                      resident=None if resident is None else placement.upstream_model in resident,
                      own_at_scrape=load.own_in_flight, scraped_at=load.read_at,
                      prefilling=state.prefilling, own_prefilling_at_scrape=load.own_prefilling)
