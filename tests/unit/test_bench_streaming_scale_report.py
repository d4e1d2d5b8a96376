"""The streaming-at-scale suite's figures: gap percentiles from the clients' histograms, capacity at the
goal's latency, and a table whose every row has the header's columns (measured, failed, not started)."""

from __future__ import annotations

from benchmarks.streaming_scale import report
from benchmarks.streaming_scale.point import Point, hist_percentile
from benchmarks.streaming_scale.run import Target, compare


def _point(streams: int, ttft_p99: float, gap_p99: float = 21.0, errors: int = 0, completed: int = 10) -> Point:
    return Point(
        streams, completed=completed, errors=errors, ttft_p50_ms=ttft_p99, ttft_p99_ms=ttft_p99, gap_p99_ms=gap_p99
    )


def test_gap_percentiles_come_from_the_buckets_added_up() -> None:
    hist = {200: 98, 201: 1, 900: 1}  # 0.1 ms buckets: 20.0 ms, 20.1 ms, 90.0 ms
    assert hist_percentile(hist, 0.5) == 20.0
    assert hist_percentile(hist, 0.99) == 20.1
    assert hist_percentile(hist, 1.0) == 90.0
    assert hist_percentile({}, 0.99) == 0.0


def test_capacity_is_the_most_streams_within_the_goal_and_direct_is_the_reference() -> None:
    direct = Target("direct", "direct", points=[_point(50, 22), _point(200, 23), _point(500, 25)])
    gateway = Target("gateway", "this gateway", points=[_point(50, 24), _point(200, 27.5), _point(500, 60)])
    peer = Target("litellm", "LiteLLM", points=[_point(50, 900)])
    failed = Target("portkey", "Portkey", status="every stream failed", points=[_point(50, 0, errors=9, completed=0)])
    compare([direct, gateway, peer, failed], 0.02)
    assert gateway.points[1].ttft_p99_over_direct_ms == 4.5 and direct.points[0].ttft_p99_over_direct_ms is None
    assert report.capacity(gateway) == 200 and report.capacity(peer) == 0 and report.capacity(failed) == 0
    assert "this gateway: 200" in report.capacity_text([direct, gateway, peer])
    assert "LiteLLM: < 50" in report.capacity_text([direct, gateway, peer])
    lines = report.table([direct, gateway, peer, failed, Target("x", "not started", status="did not start")])
    assert len({line.count("|") for line in lines.splitlines()}) == 1
