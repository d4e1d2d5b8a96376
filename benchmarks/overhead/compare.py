"""An older commit measured side by side with the working tree, in one run (`--compare-to REV`).

The commit is checked out into a temporary `git worktree`; each gateway runs from its own tree
(`python -m gateway serve` with `PYTHONPATH` set to the tree; same virtualenv), in front of the same
nginx. The run goes in rounds: in each, nginx alone at concurrency 1, then per configuration the old and
the new gateway back to back, the order swapped every round, so that drift on a shared box hits both
alike. Per round and side: the best requests/s over the concurrency points and the p50 at concurrency
1 over nginx's of the same round; compare_report.py takes the medians and renders the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import subprocess
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx

from benchmarks.harness import files, gateway, nginx
from benchmarks.harness.cli import say
from benchmarks.overhead.compare_report import Side
from benchmarks.overhead.points import PointOptions, measure
from benchmarks.overhead.results import TargetResult, summarize
from benchmarks.overhead.targets import Bench, measure_gateway, new_target
from testkit.loopback import LOOPBACK, free_port

STARTUP_S = 4.0
"""About how long a gateway (and its Redis) takes to start and be checked: for the estimate only."""


@dataclass(frozen=True, slots=True)
class CompareOptions:
    """What a comparison measures: the command line's choices (`benchmarks.overhead` parses them)."""

    rev: str
    configs: list[str]
    rounds: int
    points: PointOptions
    concurrency: list[int]
    """Connections for `bare` (as the suite's `--concurrency`)."""
    config_concurrency: list[int]
    """Connections for the other configurations (as the suite's `--config-concurrency`)."""
    quick: bool
    """No files written."""

    def concurrency_for(self, config: str) -> list[int]:
        return self.concurrency if config == "bare" else self.config_concurrency

    def estimate_s(self) -> float:
        """About how long the run takes on a quiet machine."""
        points = 1 + 2 * sum(len(self.concurrency_for(config)) for config in self.configs)
        starts = 1 + 2 * len(self.configs)
        per_round = points * self.points.duration_s + starts * (self.points.warmup_s + STARTUP_S)
        return self.rounds * per_round

    def as_dict(self) -> dict[str, object]:
        data = dataclasses.asdict(self)
        data.update(data.pop("points"))
        return data


def _git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(files.REPO), *args], capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def describe_trees(rev: str) -> dict[str, dict[str, object]]:
    """The old commit (the revision asked, its full id and subject) and the working tree (its HEAD and
    whether it has uncommitted changes)."""
    commit = _git("rev-parse", "--verify", f"{rev}^{{commit}}")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    return {
        "old": {"rev": rev, "commit": commit, "subject": _git("log", "-1", "--format=%s", commit)},
        "new": {"commit": _git("rev-parse", "HEAD"), "dirty": dirty},
    }


@contextlib.asynccontextmanager
async def checked_out(commit: str, where: Path) -> AsyncIterator[gateway.Source]:
    """`commit` in a temporary worktree at `where` (detached), removed on the way out."""
    await asyncio.to_thread(_git, "worktree", "add", "--detach", str(where), commit)
    try:
        yield gateway.Source(where, f"old {commit[:7]}")
    finally:
        await asyncio.to_thread(_git, "worktree", "remove", "--force", str(where))


async def check_source(source: gateway.Source) -> None:
    """The gateway's imports resolve inside the tree it is said to run from (not the virtualenv's copy)."""
    found = await asyncio.to_thread(gateway.imported_from, source)
    if not found.is_relative_to(source.tree.resolve()):
        raise RuntimeError(f"{source.label}: `import gateway` gives {found}, outside {source.tree}")
    say(f"{source.label}: gateway from {found.parent}")


def _side(number: int, config: str, tree: str, direct: TargetResult, target: TargetResult) -> Side:
    summary = summarize(direct, target)
    clean = not target.problems and summary.errors == 0 and bool(target.runs)
    return Side(
        round=number, config=config, tree=tree, clean=clean,
        max_requests_per_s=summary.max_requests_per_s if target.runs else None,
        overhead_c1_p50_ms=summary.overhead_c1_p50_ms, errors=summary.errors, problems=target.problems,
        runs=[dataclasses.asdict(run) for run in target.runs],
    )  # fmt: skip


async def _round(
    bench: Bench, number: int, options: CompareOptions, sources: list[tuple[str, gateway.Source]]
) -> list[Side]:
    """nginx alone at c=1, then per configuration both trees back to back (the order swapped on even rounds)."""
    direct = TargetResult(key="direct", name="direct to nginx", url=bench.direct.url)
    await measure(direct, options.points, [1], {"upstream": bench.nginx.pid})
    order = sources if number % 2 else sources[::-1]
    say(f"round {number} of {options.rounds}: {' then '.join(tree for tree, _ in order)} in each configuration")
    sides = []
    for config in options.configs:
        for tree, source in order:
            target = new_target("serve", config, 1, source)
            try:
                await measure_gateway(bench, target, options.concurrency_for(config), source)
            except (RuntimeError, OSError, httpx.HTTPError) as exc:
                target.problems.append(f"failed: {exc}")
                say(f"  {target.name} failed: {exc}")
            sides.append(_side(number, config, tree, direct, target))
    return sides


async def run_comparison(options: CompareOptions, old_commit: str, started: datetime) -> list[Side]:
    """Every round, one target at a time; the figures of each side of each round."""
    minutes = max(1, round(options.estimate_s() / 60))
    say(f"comparing {old_commit[:7]} with the working tree: about {minutes} minutes on a quiet machine")
    with tempfile.TemporaryDirectory(prefix="llm-gateway-compare-") as tmp:
        workdir = Path(tmp)
        async with checked_out(old_commit, workdir / "old-tree") as old:
            new = gateway.WORKING_TREE
            for source in (old, new):
                await check_source(source)
            nginx_port = free_port()
            say(f"starting nginx on port {nginx_port}")
            nginx_child = await nginx.start_nginx(workdir / "nginx", nginx_port)
            try:
                direct = TargetResult(key="direct", name="direct to nginx",
                                      url=f"http://{LOOPBACK}:{nginx_port}{nginx.CHAT_PATH}")  # fmt: skip
                catalog = gateway.write_catalog(workdir, nginx_port)
                bench = Bench(workdir, catalog, nginx_child, direct, options.points, started, quick=options.quick)
                sides: list[Side] = []
                for number in range(1, options.rounds + 1):
                    sides += await _round(bench, number, options, [("old", old), ("new", new)])
            finally:
                await nginx_child.stop()
    return sides
