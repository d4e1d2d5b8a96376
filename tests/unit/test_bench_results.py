"""Where the benchmarks' figures go: each suite rewrites only its own section of RESULTS.md; only what a
document cites is committed in benchmarks/results/ (no raw profiles); every link and every benchmark
path or module the documents name exists."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from benchmarks.harness import files, results_md

REPO = Path(__file__).resolve().parents[2]
HEAD = "# Overhead\n\nfigures\n"
SOAK = "<!-- soak:start -->\nsoak\n<!-- soak:end -->\n"
TEXT = f"{HEAD}\n<!-- routing:start -->\nold routing\n<!-- routing:end -->\n\n{SOAK}"


def test_a_section_is_replaced_in_place_or_appended() -> None:
    replaced = results_md.replace_section(TEXT, "routing", "## Routing\n\nnew\n")
    assert "old routing" not in replaced
    assert "<!-- routing:start -->\n## Routing\n\nnew\n<!-- routing:end -->" in replaced
    assert replaced.startswith(HEAD) and replaced.endswith(SOAK)
    appended = results_md.replace_section(TEXT, "plots", "## Plots")
    assert appended.startswith(TEXT.rstrip("\n"))
    assert appended.endswith("<!-- plots:start -->\n## Plots\n<!-- plots:end -->\n")
    assert results_md.section(replaced, "routing") == "## Routing\n\nnew\n"
    assert results_md.section(replaced, "peers") is None


def test_the_head_is_replaced_and_every_section_kept() -> None:
    text = results_md.replace_head(TEXT, "# Overhead\n\nnew figures; the markers `<!-- x:start -->` mid-line\n")
    assert text.startswith("# Overhead\n\nnew figures") and "\nfigures\n" not in text
    assert text.count("<!-- routing:start -->") == 1 and text.count("<!-- soak:end -->") == 1


def test_the_two_parts_of_a_section_are_rewritten_each_on_its_own() -> None:
    divider = "<!-- soak-leak -->"
    first = results_md.replace_part(TEXT, "soak", divider, False, "soak figures", "none yet")
    assert results_md.section(first, "soak") == f"soak figures\n\n{divider}\n\nnone yet\n"
    both = results_md.replace_part(first, "soak", divider, True, "leak figures", "none yet")
    assert results_md.section(both, "soak") == f"soak figures\n\n{divider}\n\nleak figures\n"
    again = results_md.replace_part(both, "soak", divider, False, "new soak", "none yet")
    assert results_md.section(again, "soak") == f"new soak\n\n{divider}\n\nleak figures\n"


def test_raw_profiles_are_never_published() -> None:
    with pytest.raises(ValueError, match="not committed"):
        files.publish(files.RUNS_DIR / "profile-20260101T000000Z-all.folded")


def test_only_cited_results_are_kept() -> None:
    kept = {path.name for path in files.RESULTS_DIR.iterdir()}
    assert kept, "benchmarks/results/ holds what RESULTS.md and the docs cite"
    assert not [name for name in kept if name.endswith(".folded")]
    assert kept - files.cited_results() == set()
    assert "benchmarks/runs/" in (REPO / ".gitignore").read_text().splitlines()


DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")),
             *sorted(p for p in (REPO / "benchmarks").rglob("*.md") if "runs" not in p.parts)]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
BENCHMARK_PATH = re.compile(r"`((?:benchmarks|testkit)/[\w./-]+)`")
"""A file or folder of the benchmarks named in backquotes (the ignored runs folder aside: it may not exist)."""
MODULE = re.compile(r"python -m (benchmarks(?:\.\w+)+)")


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_link_path_and_module_a_document_names_exists(document: Path) -> None:
    text = document.read_text()
    links = [m.group(1).split("#")[0] for m in LINK.finditer(text)]
    missing = [link for link in links if link and "://" not in link and not (document.parent / link).exists()]
    named = [path for path in BENCHMARK_PATH.findall(text) if not path.startswith("benchmarks/runs/")]
    missing += [path for path in named if not (REPO / path).exists()]
    missing += [name for name in MODULE.findall(text) if importlib.util.find_spec(name) is None]
    assert not missing, f"{document.relative_to(REPO)} names what does not exist: {missing}"
