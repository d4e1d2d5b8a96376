"""Where a benchmark's files go: every run's raw files into `benchmarks/runs/` (ignored by git), and the
few that a document cites into `benchmarks/results/` (committed).

A suite writes its JSON (and profiles) to the runs folder; when it rewrites its section of RESULTS.md it
`publish`es the files that section cites, then `retire_uncited` moves back to the runs folder whatever in
`benchmarks/results/` no document names any more (README.md, docs/*.md, the benchmarks' own markdown).
So `benchmarks/results/` holds exactly what the documents cite.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1]
REPO = BENCHMARKS.parent
RESULTS_DIR = BENCHMARKS / "results"
RUNS_DIR = BENCHMARKS / "runs"
RESULTS_MD = BENCHMARKS / "RESULTS.md"
NEVER_PUBLISHED = (".folded", ".log")
"""Raw profiles (megabytes of folded stacks) and logs stay in the runs folder."""


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def stamp(started: datetime) -> str:
    """`20261122T064210Z`: the UTC time in a run's file names."""
    return started.strftime("%Y%m%dT%H%M%SZ")


def repo_path(path: Path) -> str:
    """`path` relative to the repository (as documents name files), or as it is when outside it."""
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def write_json(kind: str, started: datetime, data: object, directory: Path = RUNS_DIR) -> Path:
    """`<directory>/<kind>-<UTC time>.json` (the runs folder unless told otherwise)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{kind}-{stamp(started)}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def publish(path: Path) -> Path:
    """A copy of `path` (a file of the runs folder) in `benchmarks/results/`, for a document to cite."""
    if path.suffix in NEVER_PUBLISHED:
        raise ValueError(f"{path.name}: {path.suffix} files are not committed")
    if path.parent == RESULTS_DIR:
        return path
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    copy = RESULTS_DIR / path.name
    shutil.copyfile(path, copy)
    return copy


def citing_documents() -> list[Path]:
    """The documents whose mentions keep a result committed: README.md, docs/*.md and the benchmarks'
    markdown (RESULTS.md, the suites' READMEs), not the results' own files."""
    own = [p for p in BENCHMARKS.rglob("*.md") if not p.is_relative_to(RESULTS_DIR) and not p.is_relative_to(RUNS_DIR)]
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted(own)]


def cited_results(documents: Iterable[Path] | None = None) -> set[str]:
    """Names of the files in `benchmarks/results/` that a document names, or that a cited result's own
    markdown names (a profile's summary links its flame graph)."""
    found = RESULTS_DIR.iterdir() if RESULTS_DIR.exists() else iter(())
    names = {path.name for path in found if path.is_file() and path.suffix not in NEVER_PUBLISHED}
    texts = [path.read_text(errors="replace") for path in (documents or citing_documents()) if path.exists()]
    cited = {name for name in names if any(name in text for text in texts)}
    for name in [n for n in cited if n.endswith(".md")]:
        text = (RESULTS_DIR / name).read_text(errors="replace")
        cited |= {other for other in names if other in text}
    return cited


def retire_uncited(say: Callable[[str], None]) -> list[Path]:
    """Move the results no document cites any more into the runs folder; the paths they moved to."""
    cited = cited_results()
    moved = []
    for path in sorted(RESULTS_DIR.iterdir()) if RESULTS_DIR.exists() else []:
        if path.is_file() and path.name not in cited:
            RUNS_DIR.mkdir(parents=True, exist_ok=True)
            moved.append(Path(shutil.move(path, RUNS_DIR / path.name)))
    if moved:
        say(f"moved {len(moved)} results no document cites any more to {repo_path(RUNS_DIR)}/")
    return moved
