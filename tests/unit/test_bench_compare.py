"""The overhead suite's side-by-side comparison with an older commit (`--compare-to`): its command line
(defaults short enough for a run of minutes, options that do not go with it refused, a full run's
options unchanged) and its table (medians over the clean rounds, new/old ratios, the 5 % verdicts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks import overhead
from benchmarks.harness import configs


def _compare(*args: str) -> overhead.CompareOptions:
    options = overhead.parse_args(["--compare-to", "8a53c72", *args])
    assert isinstance(options, overhead.CompareOptions)
    return options


def test_a_comparison_defaults_to_bare_and_all_in_short_alternating_rounds() -> None:
    options = _compare()
    assert options.rev == "8a53c72" and options.configs == ["bare", "all"] and options.rounds == 5
    assert (options.points.duration_s, options.points.warmup_s) == (5, 1)
    assert (options.points.retries, options.points.quiet_wait_s) == (0, 0.0)
    assert options.concurrency_for("bare") == [1, 8, 32] and options.concurrency_for("all") == [1, 8]
    assert options.estimate_s() < 10 * 60
    assert not options.quick


def test_a_comparison_takes_the_duration_and_point_options() -> None:
    options = _compare("--configs", "all,bare,limits", "--rounds", "3", "--duration", "10", "--warmup", "2",
                       "--retries", "1", "--quiet-wait", "7", "--concurrency", "1,8", "--config-concurrency", "1")
    assert options.configs == ["bare", "limits", "all"] and options.rounds == 3
    assert (options.points.duration_s, options.points.warmup_s) == (10, 2)
    assert (options.points.retries, options.points.quiet_wait_s) == (1, 7.0)
    assert options.concurrency_for("bare") == [1, 8] and options.concurrency_for("limits") == [1]
    quick = _compare("--quick")
    assert quick.quick and quick.rounds == 1 and quick.points.duration_s == 2


@pytest.mark.parametrize(
    "args",
    [
        ["--servers"],
        ["--servers", "uvicorn"],
        ["--direct-only"],
        ["--workers", "1"],
        ["--rates", "100"],
        ["--profile", "all"],
        ["--open-loop-configs", "bare"],
        ["--rounds", "0"],
        ["--configs", "bare,nonsense"],
    ],
)
def test_what_a_comparison_does_not_measure_is_refused(args: list[str]) -> None:
    with pytest.raises(SystemExit) as refused:
        overhead.parse_args(["--compare-to", "HEAD~1", *args])
    assert refused.value.code == 2


def test_rounds_need_a_comparison_and_a_full_run_keeps_its_defaults() -> None:
    with pytest.raises(SystemExit):
        overhead.parse_args(["--rounds", "3"])
    full = overhead.parse_args([])
    assert isinstance(full, overhead.Options)
    assert (full.points.duration_s, full.points.warmup_s, full.points.retries, full.points.quiet_wait_s) == (
        8, 2, 2, 20.0)
    assert full.configs == list(configs.DEFAULT_CONFIGS) and full.servers == ["serve"]
    assert full.profile == ["missed"] and full.scaling_configs == ["bare", "all"]
    servers = overhead.parse_args(["--servers", "--duration", "3"])
    assert isinstance(servers, overhead.Options)
    assert servers.servers == ["serve", "uvicorn", "granian"] and servers.points.duration_s == 3
    quick = overhead.parse_args(["--quick", "--warmup", "0"])
    assert isinstance(quick, overhead.Options)
    assert (quick.points.duration_s, quick.points.warmup_s, quick.profile) == (2, 0, [])
    published = overhead.parse_args(["--publish-comparison", "benchmarks/runs/compare-x.json"])
    assert published == overhead.PublishComparison(Path("benchmarks/runs/compare-x.json"))


def _side(round_: int, config: str, tree: str, rps: float | None, overhead_ms: float | None,
          clean: bool = True) -> dict[str, Any]:
    return {"round": round_, "config": config, "tree": tree, "clean": clean, "max_requests_per_s": rps,
            "overhead_c1_p50_ms": overhead_ms}


SIDES = [
    _side(1, "bare", "old", 3000.0, 0.30), _side(1, "bare", "new", 2900.0, 0.33),
    _side(2, "bare", "new", 3100.0, 0.31), _side(2, "bare", "old", 3050.0, 0.32),
    _side(3, "bare", "old", 2950.0, 0.34), _side(3, "bare", "new", 1000.0, 0.90, clean=False),
    _side(1, "all", "old", 1500.0, 1.00), _side(1, "all", "new", 1400.0, 1.10),
]  # fmt: skip


def test_each_side_is_the_median_of_its_clean_rounds() -> None:
    bare, everything = overhead.summarize_comparison(SIDES, ["bare", "all"])
    assert (bare.old_requests_per_s, bare.new_requests_per_s) == (3000.0, 3000.0)  # the unclean round left out
    assert (bare.old_overhead_ms, bare.new_overhead_ms) == (0.32, 0.32)
    assert (bare.rounds_old, bare.rounds_new) == (3, 2) and bare.requests_ratio == 1.0
    assert everything.requests_ratio == pytest.approx(1400 / 1500)
    assert everything.overhead_ratio == pytest.approx(1.1)
    [missing] = overhead.summarize_comparison(SIDES, ["limits"])
    assert missing.old_requests_per_s is None and missing.requests_ratio is None


def test_the_table_shows_each_configuration_with_ratios_and_the_five_percent_verdicts() -> None:
    rows = overhead.comparison_table(overhead.summarize_comparison(SIDES, ["bare", "all", "limits"])).splitlines()
    assert rows[0].startswith("| configuration | old req/s | new req/s | new/old | within 5 % |")
    assert rows[2] == "| `bare` | 3,000 | 3,000 | 1.000 | yes | +0.320 | +0.320 | 1.000 | yes | 3/2 |"
    assert rows[3] == "| `all` | 1,500 | 1,400 | 0.933 | **no** | +1.000 | +1.100 | 1.100 | **no** | 1/1 |"
    assert rows[4] == "| `limits` | - | - | - | - | - | - | - | - | 0/0 |"
    within = [overhead.ConfigComparison("bare", 1000.0, 950.0, 0.5, 0.525, 1, 1)]
    assert overhead.comparison_table(within).splitlines()[2].count("yes") == 2


def test_the_markdown_names_both_trees_the_method_and_the_raw_figures() -> None:
    data = {
        "command": "python -m benchmarks.overhead --compare-to 8a53c72", "date": "2026-12-01T10:00:00Z",
        "old": {"rev": "8a53c72", "commit": "8a53c7242a678b0e", "subject": "Fuzz tests count answers"},
        "new": {"commit": "0772d2bffff", "dirty": True},
        "options": {"configs": ["bare"], "rounds": 1, "duration_s": 5, "concurrency": [1, 8, 32],
                    "config_concurrency": [1, 8]},
        "machine": {"nproc": 2, "load_average_at_start": [0.5, 0.4, 0.3]},
        "sides": SIDES,
    }  # fmt: skip
    text = overhead.render_comparison(data, "benchmarks/results/compare-20261201T100000Z.json")
    assert text.startswith("## Before and after, side by side: 8a53c72 vs the working tree\n")
    assert "Old: `8a53c72` (Fuzz tests count answers); new: the working tree at `0772d2b` with uncommitted" in text
    assert "1 round of 5 s points (c=1,8,32 for `bare`, c=1,8 for the others)" in text
    assert "Raw figures: `benchmarks/results/compare-20261201T100000Z.json`." in text
    assert "| `bare` | 3,000 | 3,000 |" in text and "| `all` |" not in text
