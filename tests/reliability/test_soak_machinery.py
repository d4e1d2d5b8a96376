"""The soak (`python -m benchmarks.soak`, figure 15) runs end to end for a few seconds, so its machinery
does not rot between the hour-long runs: real Redis, simulators and gateway, faults, samples, the JSON
and the figure records (to a temporary directory; RESULTS.md is left alone)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIGURE_FIELDS = {
    "memory_drift_pct_per_h", "rss_warm_mb", "rss_after_idle_mb", "rss_after_idle_vs_warm_pct", "fd_min", "fd_max",
    "fd_stable", "p99_first_ms", "p99_last_ms", "p99_drift_pct", "redis_keys_without_ttl_max",
    "redis_exempt_keys_max", "client_by_class", "metrics_by_class", "metrics_mismatch",
    "responses_without_request_id", "outcomes_by_kind",
}


def test_a_short_soak_writes_its_figures(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if name not in ("REDIS_URL", "RELIABILITY_FIGURES")}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.soak", "--duration", "5", "--rate", "20", "--fault-share", "0.1",
         "--long-stream-share", "0.05", "--long-stream-seconds", "2",
         "--workers", "1", "--warmup", "1", "--sample-interval", "1", "--idle", "1", "--out", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]

    [path] = tmp_path.glob("soak-*.json")
    data = json.loads(path.read_text())
    figures = data["figures"]
    assert figures.keys() >= FIGURE_FIELDS
    assert figures["requests_sent"] > 0
    assert sum(figures["client_by_class"].values()) == figures["requests_sent"]
    assert any(s["phase"] == "load" for s in data["samples"])
    assert data["samples"][-1]["phase"] == "idle"
    # What must hold however busy the machine is: outcomes, not timings.
    assert figures["responses_without_request_id"] == 0
    assert figures["redis_keys_without_ttl_max"] == 0
    # Every request reached the gateway's counters once (by class they may differ on a busy box, where the
    # gateway can miss a client that left before the first byte: the soak reports that as a figure).
    assert sum(figures["metrics_by_class"].values()) == figures["requests_sent"], figures["metrics_by_class"]
    assert figures["silent_truncations"] == 0
    assert figures["malformed_errors"] == 0
    assert figures["long_streams_completed"] > 0
    # The gateway's allocators answered each sample (allocator stats are on by default).
    assert all(s["pymalloc_arenas_mb"] and s["malloc_in_use_mb"] for s in data["samples"] if s["phase"] == "load")

    records = [json.loads(line) for line in (tmp_path / "reliability-soak.jsonl").read_text().splitlines()]
    assert len(records) == len(data["verdicts"]) == 6
    assert {r["figure"] for r in records} == {15}
