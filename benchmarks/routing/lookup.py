"""Finding runs in a routing report: by workload, policy and gateway replicas."""

from __future__ import annotations

from typing import Any


def find_run(report: dict[str, Any], kind: str, policy: str, replicas: int = 1) -> dict[str, Any] | None:
    """The run of `policy` on `kind` behind `replicas` gateways, if the report has it."""
    return next((r for r in report["runs"] if r["workload"] == kind and r["policy"] == policy
                 and r.get("replicas", 1) == replicas), None)


def layouts(report: dict[str, Any]) -> list[tuple[str, int]]:
    """Every (workload, replicas) the report ran, in the order first run."""
    return list(dict.fromkeys((r["workload"], r.get("replicas", 1)) for r in report["runs"]))


def policies(report: dict[str, Any], kind: str, replicas: int) -> list[dict[str, Any]]:
    """The runs of every policy on `kind` behind `replicas` gateways, in the order run."""
    return [r for r in report["runs"] if r["workload"] == kind and r.get("replicas", 1) == replicas]
