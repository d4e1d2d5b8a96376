"""The soak's memory figures: RSS steps with what the gateway carried then, the drift fit, and the allocation
sites that grew between two tracemalloc snapshots (benchmarks/soak/figures.py, allocations.py)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from benchmarks.soak.allocations import growth
from benchmarks.soak.figures import Sample, drift_pct_per_h, rss_steps


def _sample(t_s: float, rss_mb: float, fds: int, phase: str = "load") -> Sample:
    return Sample(t_s=t_s, phase=phase, rss_mb=rss_mb, fds=fds, requests_done=0, window_requests=0, p50_ms=None,
                  p99_ms=None, client_in_flight=0, long_streams_open=0, redis_keys=0, redis_keys_without_ttl=0,
                  redis_exempt_keys=0, redis_used_mb=0.0, gateway_redis_connections=0, other_cpu_pct=0.0)


def test_rss_steps_after_warm_up_say_whether_the_fds_were_at_a_new_peak() -> None:
    samples = [_sample(0, 100.0, 50, "warm-up"), _sample(10, 104.0, 300, "warm-up"), _sample(20, 104.1, 200),
               _sample(30, 108.0, 900), _sample(40, 108.2, 400), _sample(50, 109.0, 300)]
    steps = rss_steps(samples)
    assert [(s["t_s"], s["new_fd_peak"]) for s in steps] == [(30, True), (50, False)]  # not the warm-up's


def test_drift_is_the_fitted_slope_over_the_value_at_the_end_of_warm_up() -> None:
    assert drift_pct_per_h([(0.0, 100.0), (3600.0, 110.0)], 0.0) == 10.0
    assert drift_pct_per_h([(0.0, 100.0)], 0.0) is None


def _keep(store: list[bytes], count: int) -> None:
    store.extend(bytes(1000) for _ in range(count))


def test_growth_ranks_the_site_that_kept_memory_first(tmp_path: Path) -> None:
    kept: list[bytes] = []
    tracemalloc.start(5)
    try:
        tracemalloc.take_snapshot().dump(str(tmp_path / "before"))
        _keep(kept, 2000)
        tracemalloc.take_snapshot().dump(str(tmp_path / "after"))
    finally:
        tracemalloc.stop()
    [top, *_] = growth(str(tmp_path / "before"), str(tmp_path / "after"))
    assert "test_soak_memory_figures.py" in top.allocated_at
    assert top.count_diff >= 2000 and top.size_diff_kb >= 2000
    assert top.our_frame == "-"  # nothing of gateway/ or routing/ on its traceback
