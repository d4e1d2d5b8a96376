"""The benchmarks' pure parts: configurations, goal verdicts, profile summaries, flame graphs, the
overhead suite's tables in RESULTS.md, and the peers' goals."""

from __future__ import annotations

import xml.dom.minidom

from benchmarks import overhead
from benchmarks.harness import config_checks, configs, flamegraph, profiling
from benchmarks.load import workloads
from benchmarks.load.wrk import WrkResult
from benchmarks.peers import peer_goals

FOLDED = "\n".join(
    [
        'process 1:"llm-gateway serve";<module> (llm-gateway:8);run (uvloop/__init__.py:92);uv_run (core.c:452);'
        "forward (gateway/inference/pipeline.py:67);_writelines (aiohttp/http_writer.py:116);write (libc.so.6) 60",
        'process 1:"llm-gateway serve";<module> (llm-gateway:8);run (uvloop/__init__.py:92);'
        "send (uvicorn/protocols/http/httptools_impl.py:524) 30",
        'process 1:"llm-gateway serve";<module> (llm-gateway:8);run (uvloop/__init__.py:92);'
        "forward (gateway/inference/pipeline.py:70) 10",
        'process 1:"llm-gateway serve";<module> (llm-gateway:8);run (uvloop/__init__.py:92);uv_run (core.c:464);'
        "epoll_pwait (libc.so.6) 50",
    ]
)


def _run(concurrency: int, rps: float, p50: float, p99: float, errors: int = 0) -> WrkResult:
    return WrkResult(
        concurrency=concurrency, duration_s=8.0, requests=int(rps * 8), requests_per_s=rps, mean_ms=p50, p50_ms=p50,
        p90_ms=p99, p99_ms=p99, max_ms=p99, errors={"non_2xx": errors},
    )  # fmt: skip


def _target(key: str, config: str, runs: list[WrkResult], workers: int = 1) -> overhead.TargetResult:
    return overhead.TargetResult(key=key, name=key, url="", config=config, server="serve", workers=workers, runs=runs)


def test_profile_summary_leaves_idle_samples_out_and_attributes_native_time_to_python_callers() -> None:
    summary = profiling.summarize(FOLDED)
    assert summary.samples == 100 and summary.idle_samples == 50
    assert dict(summary.package_self_pct) == {"aiohttp": 60.0, "uvicorn": 30.0, "gateway": 10.0}
    assert summary.self_pct[0] == ("_writelines (aiohttp/http_writer.py)", 60.0)
    assert dict(summary.total_pct)["forward (gateway/inference/pipeline.py)"] == 70.0
    assert "run (uvloop/__init__.py)" not in dict(summary.total_pct)  # in every sample: no information
    assert dict(summary.native_leaf_pct) == {"write (libc.so.6)": 60.0}
    text = profiling.markdown(summary, "bare", "p.svg", "p.folded")
    assert "| 60.0 | `aiohttp` |" in text and "50 samples of the event loop waiting" in text


def test_frames_are_told_apart_python_from_native() -> None:
    assert profiling.is_python("forward (gateway/inference/pipeline.py:67)")
    assert profiling.is_python("<module> (llm-gateway:8)")
    assert not profiling.is_python("write (libc.so.6)")
    assert not profiling.is_python("uv_run (core.c:452)")
    assert profiling.package("Loop.run (/x/lib/python3.11/site-packages/litestar/app.py:3)") == "litestar"
    assert profiling.package("write (libc.so.6)") == "libc.so.6"


def test_flame_graph_is_an_svg_with_a_box_per_frame_and_its_share() -> None:
    svg = flamegraph.render(FOLDED, "bare & co")
    document = xml.dom.minidom.parseString(svg)  # noqa: S318  (our own SVG)
    titles = [node.firstChild.data for node in document.getElementsByTagName("title")]  # type: ignore[union-attr]
    assert "all (150 samples, 100.0%)" in titles
    assert "write (libc.so.6) (60 samples, 40.0%)" in titles
    assert flamegraph.render("", "empty") == ""


def test_every_configuration_is_bare_plus_what_it_names() -> None:
    known = configs.CONFIGS
    assert known["bare"].environment() == {
        "GATEWAY_CACHE": "false", "LOG_LEVEL": "warning", "GATEWAY_WORKERS": "1", "GATEWAY_DRAIN_SECONDS": "0",
    }  # fmt: skip
    everything = known["all"]
    assert everything.keys and everything.limits and everything.cache and everything.cache_in_redis
    assert everything.log_requests and everything.workload == "cache-miss" and everything.redis
    assert everything.environment(2)["GATEWAY_WORKERS"] == "2"
    assert known["logs"].environment()["LOG_LEVEL"] == "info"
    assert not known["cache-hit"].redis and known["cache-hit"].script.name == "chat-cache-hit.lua"
    assert set(configs.DEFAULT_CONFIGS) <= set(known)
    assert config_checks.expected_cache_headers(known["bare"]) == [None, None]
    assert config_checks.expected_cache_headers(known["cache-miss"]) == ["miss", "miss"]


def test_cache_lookups_must_fit_the_workload() -> None:
    miss, hit = configs.CONFIGS["cache-miss"], configs.CONFIGS["cache-hit"]
    assert config_checks.verify_cache(miss, {"miss": 1000}, 1000) is None
    assert "answered from the cache" in str(config_checks.verify_cache(miss, {"miss": 990, "hit": 10}, 1000))
    assert config_checks.verify_cache(hit, {"hit": 999, "miss": 1}, 1000) is None
    assert "missed the cache" in str(config_checks.verify_cache(hit, {"hit": 500, "miss": 500}, 1000))
    assert config_checks.counts_between({"hit": 5, "miss": 2}, {"hit": 9, "miss": 2}) == {"hit": 4}


def test_workload_bodies_are_the_lua_scripts_bodies() -> None:
    plain, hit, miss = (workloads.WORKLOADS[name] for name in ("plain", "cache-hit", "cache-miss"))
    assert plain.body().decode() in plain.script.read_text()
    assert hit.body().decode() in hit.script.read_text()
    assert miss.body("n1", 1) != miss.body("n1", 2) != miss.body("n2", 2)
    assert b'"temperature":0' in miss.body("n", 1) and miss.varies and not hit.varies


def test_goals_are_judged_per_configuration_and_missed_ones_are_named() -> None:
    direct = _target("direct", "bare", [_run(1, 30000, 0.03, 0.06)])
    good = overhead.summarize(direct, _target("all", "all", [_run(1, 1600, 0.9, 2.5), _run(8, 2000, 4.0, 9.0)]))
    assert good.meets_throughput and good.meets_overhead and good.meets_overhead_p99 and not good.missed
    slow = overhead.summarize(direct, _target("all", "all", [_run(1, 600, 1.6, 4.0)]))
    assert slow.missed == ["600 req/s < 1,500", "overhead p50 1.57 ms > 1.0", "overhead p99 3.94 ms > 3.0"]
    failing = overhead.summarize(direct, _target("auth", "auth", [_run(1, 5000, 0.2, 0.5, errors=3)]))
    assert failing.meets_throughput is False  # a point with errors does not count
    assert overhead.summarize(direct, _target("logs", "logs", [_run(1, 900, 0.8, 2.0)])).goal is None
    scaled = overhead.summarize(direct, _target("all-w2", "all", [_run(8, 3000, 3.0, 8.0)], workers=2))
    assert scaled.goal is None and not scaled.missed  # goals are per process


def test_tables_show_the_headline_scaling_and_open_loop() -> None:
    direct = _target("direct", "bare", [_run(1, 30000, 0.03, 0.06)])
    direct.open_loop = [{"rate": 500.0, "achieved_rate": 500.0, "latency_ms": {"p50": 0.3, "p99": 2.0},
                         "send_lag_ms": {"p99": 1.0}, "errors": {"timeout": 0}, "kept_up": True}]  # fmt: skip
    one = _target("all", "all", [_run(1, 600, 1.6, 4.0), _run(8, 900, 8.0, 20.0)])
    one.cpu = {8: {"gateway": 90.0, "upstream": 5.0, "redis": 10.0, "load generator": 5.0}}
    one.open_loop = [{"rate": 500.0, "achieved_rate": 499.0, "latency_ms": {"p50": 1.8, "p99": 6.0},
                      "send_lag_ms": {"p99": 1.0}, "errors": {"timeout": 0}, "kept_up": True}]  # fmt: skip
    two = _target("all-w2", "all", [_run(8, 1500, 5.0, 12.0)], workers=2)
    two.cpu = {8: {"gateway": 150.0, "upstream": 6.0, "redis": 15.0, "load generator": 6.0}}
    targets = [direct, one, two]
    summaries = [overhead.summarize(direct, t) for t in targets[1:]]
    headline = overhead.headline(targets, summaries)
    assert "**900 requests/s**" in headline and "`all` (900 req/s < 1,500" in headline
    scaling = overhead.scaling_table(targets)
    assert "| `all` | 2 | 8 | 1,500 | 1.67 | 150 / 6 / 15 / 6 | 1,000 |" in scaling
    assert "**1.67**" in scaling
    assert overhead.scaling_verdicts(targets) == [
        "- `all`, 2 processes: 1.67x one process's requests/s on this box; per gateway core 1.00x one "
        "process's (near-linear, ≥ 0.9x: yes)"
    ]
    open_loop = overhead.open_loop_table(targets)
    assert "| all | 500 | 499 | 1.800 |" in open_loop and "+1.500" in open_loop and "+4.000" in open_loop


def test_all_features_against_the_peers() -> None:
    goals = {g["peer"]: g for g in peer_goals({"gateway-all": 1500.0, "portkey": 700.0, "litellm": 60})}
    assert goals["portkey"]["ratio"] == 2.14 and goals["portkey"]["met"] is True
    assert goals["litellm"]["ratio"] == 25.0 and goals["litellm"]["met"] is True
    short = {g["peer"]: g for g in peer_goals({"gateway-all": 1000.0, "portkey": 700.0})}
    assert short["portkey"]["met"] is False and short["litellm"]["met"] is None


def test_a_target_that_could_not_be_measured_is_said_so() -> None:
    broken = _target("all", "all", [])
    broken.problems.append("failed: all: x-gateway-cache was [None, None], expected ['miss', 'miss']\nlog tail")
    assert "Not measured in this run: failed: all: x-gateway-cache" in overhead.headline([broken], [])
    assert overhead.failures([broken]).startswith("### Not measured\n\n- all: failed: all: x-gateway-cache")
