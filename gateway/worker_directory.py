"""Which workers serve which catalog model, and picking one for a request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.errors import NoWorkerAvailable
from gateway.upstream.openai_compatible import Target
from routing.catalog import Catalog
from routing.worker_choice import WeightedRoundRobin


@dataclass(frozen=True, slots=True)
class Placement:
    """One worker able to serve one catalog model, under the worker's own model id."""

    target: Target
    upstream_model: str

    @property
    def name(self) -> str:
        return self.target.worker.name

    @property
    def weight(self) -> int:
        return self.target.worker.weight


class WorkerDirectory:
    def __init__(self, catalog: Catalog, env: Mapping[str, str]) -> None:
        self._placements: dict[str, list[Placement]] = {}
        for worker in catalog.workers:
            target = Target.for_worker(worker, env)
            for served in worker.served():
                self._placements.setdefault(served.name, []).append(
                    Placement(target=target, upstream_model=served.worker_model_id))
        self._policy = WeightedRoundRobin()

    def served_models(self) -> set[str]:
        return set(self._placements)

    def owners(self, model: str) -> list[str]:
        return [p.target.worker.kind for p in self._placements.get(model, ())]

    def choose(self, model: str) -> Placement:
        placement = self._policy.choose(model, self._placements.get(model, ()))
        if placement is None:
            raise NoWorkerAvailable(f"No worker is serving the model {model!r} right now.")
        return placement
