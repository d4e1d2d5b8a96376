"""The routing benchmark's plan and recommendation: the default plan covers every workload under every
default policy, behind one gateway and 3 replicas, within the hour and a half the box can spare (`--quick`
within 10 minutes); the recommendation picks, per kind of fleet, the policy its figures favour, and says where
the default policy did worse than round robin."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.routing.ceiling import ceiling
from benchmarks.routing.cli import parse_args
from benchmarks.routing.client import Outcome
from benchmarks.routing.fleet_settings import FleetSettings
from benchmarks.routing.plan import Pair, plan_minutes
from benchmarks.routing.recommend import best_policy, recommend
from benchmarks.routing.replay import classify_misses
from benchmarks.routing.report import summarize_run, write_reports
from benchmarks.routing.section import render_section
from benchmarks.routing.workloads import REPLICATED, WORKLOADS, WorkloadSpec, build


@pytest.mark.parametrize(("argv", "minutes"), [([], 95.0), (["--quick"], 10.0)])
def test_the_default_plan_runs_everything_within_its_budget(argv: list[str], minutes: float) -> None:
    args = parse_args(argv)
    assert {p.workload for p in args.plan} == set(WORKLOADS)
    default = {"round_robin", "least_outstanding", "prefix_affinity", "session_affinity"}
    assert {p.policy for p in args.plan} == (default if argv else default | {"prefix_affinity_precise"})
    assert {p.workload for p in args.plan if p.policy == "session_affinity"} == {"conversations"}
    precise = {(p.workload, p.replicas) for p in args.plan if p.policy == "prefix_affinity_precise"}
    repeating = ("uniform", "skewed", "conversations")
    assert precise == (set() if argv else {(kind, n) for kind in repeating for n in (1, 3)})
    replicated = {p.workload for p in args.plan if p.replicas == 3}
    assert replicated == (set(REPLICATED) if not argv else {REPLICATED[0]})
    workloads = {kind: build(kind, args.requests[kind], WorkloadSpec()) for kind in WORKLOADS}
    assert plan_minutes(args.plan, workloads, FleetSettings(), args.concurrency) < minutes


def test_chosen_workloads_policies_and_replicas_are_run_exactly() -> None:
    args = parse_args(["--workloads", "mixed,burst", "--policies", "round_robin", "--replicas", "1,3",
                       "--requests", "50"])
    assert args.plan == [Pair("mixed", 1, "round_robin"), Pair("mixed", 3, "round_robin"),
                         Pair("burst", 1, "round_robin"), Pair("burst", 3, "round_robin")]
    assert args.requests == {"mixed": 50, "burst": 50}


@pytest.mark.parametrize("argv", [["--workloads", "nope"], ["--policies", "random"], ["--replicas", "0"],
                                  ["--replicas", "x"], ["--policies", ""]])
def test_unknown_names_and_counts_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(argv)


def _run(kind: str, policy: str, tokens: float, p90: float, replicas: int = 1) -> dict[str, Any]:
    return {"workload": kind, "policy": policy, "replicas": replicas, "errors": 0, "output_tokens_per_s": tokens,
            "ttft_p90_ms": p90}


def test_the_recommendation_follows_the_figures() -> None:
    runs = [_run("uniform", "round_robin", 100, 2000), _run("uniform", "least_outstanding", 99, 3000),
            _run("uniform", "prefix_affinity", 300, 300),
            _run("mixed", "round_robin", 100, 900), _run("mixed", "least_outstanding", 102, 700),
            _run("mixed", "prefix_affinity", 98, 1200),
            _run("uniform", "round_robin", 100, 2000, 3), _run("uniform", "prefix_affinity", 150, 900, 3)]
    ideal = {"uniform": {"tokens_per_s": 400.0}, "mixed": {"tokens_per_s": 120.0}}
    text = "\n".join(recommend({"runs": runs, "ideal": ideal}))
    assert "**Requests sharing long system prompts**: behind one gateway (uniform), **prefix_affinity** (3.00x" in text
    assert "75% of the ceiling's" in text and "behind 3 replicas (uniform), **prefix_affinity** (1.50x" in text
    assert "**Unrelated prompts of mixed lengths**: behind one gateway (mixed), **least_outstanding**" in text
    assert "worse than round robin (by more than 5%) on 1 of 2 layouts: uniform x1 (0.99x tokens/s, 1.50x" in text
    assert "Multi-turn chat" not in text


def test_within_the_noise_the_lower_p90_ttft_wins() -> None:
    assert best_policy({"a": (1.00, 1.0), "b": (0.97, 0.5), "c": (0.80, 0.1)}) == "b"
    assert best_policy({}) is None


def _measured(kind: str, policy: str, replicas: int, tokens: int) -> dict[str, Any]:
    outcomes = [Outcome(index=i, group=i % 4, worker=f"sim-{i % 2}", ttft_s=0.1 + i / 100, completion_tokens=tokens,
                        prompt_tokens=400, cached_tokens=0 if i < 4 else 256, sent_at=float(i),
                        phase="burst" if kind == "burst" and i > 15 else "steady") for i in range(20)]
    load = {f"sim-{w}": {"mean": 2.0 + w, "peak": 4.0} for w in range(2)}
    counters = [{"hits": 256.0 * 8, "queries": 4000.0, "finished": 10.0}] * 2
    run = summarize_run(kind, policy, outcomes, 10.0, load, ["sim-0", "sim-1"], counters)
    cpu = {"machine_busy": 0.5, "gateway_core_share": 0.1, "simulators_core_share": 0.1, "client_core_share": 0.1}
    return {**run, "replicas": replicas, "cpu": cpu, "misses": classify_misses(outcomes)}


def test_the_section_shows_every_policy_on_every_layout_with_its_gap_to_the_ceiling() -> None:
    fleet, spec = FleetSettings(), WorkloadSpec()
    kinds = ("uniform", "burst", "long-outputs")
    built = {kind: build(kind, 60, spec) for kind in kinds}
    runs = [_measured(kind, policy, replicas, 16 if policy == "round_robin" else 20)
            for kind in kinds for replicas in (1, 3) for policy in ("round_robin", "least_outstanding")]
    ideal = {k: ceiling(w, fleet, 48) for k, w in built.items()}
    report: dict[str, Any] = {"date_utc": "2026-11-22 10:00:00", "duration_s": 60.0, "quick": True,
              "machine": {"nproc": 2, "cpu_model": "test", "kernel": "6", "python": "3.11"},
              "fleet": fleet.to_json(), "workload": {**spec.to_json(), "concurrency": 48},
              "workloads": {k: {"requests": len(w), "sessions": len(w.sessions), "burst": len(w.burst),
                                "max_tokens": w.max_tokens, "description": w.description} for k, w in built.items()},
              "prefix_affinity_options": {"balance_abs": 16}, "health_interval_s": 1.0,
              "ideal": ideal, "runs": runs}
    verdict = write_reports(report, write_files=False)
    section = render_section(report, None)
    for kind in kinds:
        assert f"### {kind}, one gateway" in section and f"### {kind}, 3 gateway replicas" in section
        assert f"| ceiling ({kind}) |" in section
    assert "decode-bound" in section and "burst p90 TTFT ms" in section
    assert f"| round_robin | 32 | {32 / ideal['uniform']['tokens_per_s']:.0%} |" in section
    assert "### Which policy for which fleet" in section and "**least_outstanding** (1.25x" in verdict
