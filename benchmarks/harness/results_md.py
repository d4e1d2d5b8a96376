"""The sections of benchmarks/RESULTS.md: each suite rewrites only its own.

A section sits between `<!-- name:start -->` and `<!-- name:end -->`, each marker alone on its line; the
overhead suite owns the text before the first section (`replace_head`). A section may hold two parts
split by a divider line (`<!-- peers-streaming -->` between the peers' throughput and streaming figures,
`<!-- soak-leak -->` between the soak's and the leak run's), each rewritten on its own (`replace_part`).
"""

from __future__ import annotations

import re

from benchmarks.harness.files import RESULTS_MD


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


_SECTION = re.compile(r"^<!-- ([\w-]+):start -->$.*?^<!-- \1:end -->$", re.DOTALL | re.MULTILINE)


def read() -> str:
    return RESULTS_MD.read_text() if RESULTS_MD.exists() else ""


def write(text: str) -> None:
    RESULTS_MD.write_text(text)


def section(text: str, name: str) -> str | None:
    """The text between the section's markers, or None when it is absent."""
    start, end = _markers(name)
    match = re.search(rf"^{re.escape(start)}$\n?(.*?)^{re.escape(end)}$", text, re.DOTALL | re.MULTILINE)
    return None if match is None else match.group(1)


def replace_section(text: str, name: str, inner: str) -> str:
    """`text` with the section's inside replaced by `inner` (the section appended when absent)."""
    start, end = _markers(name)
    block = f"{start}\n{inner.strip(chr(10))}\n{end}"
    pattern = re.compile(rf"^{re.escape(start)}$.*?^{re.escape(end)}$", re.DOTALL | re.MULTILINE)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text, count=1)
    return (text.rstrip("\n") + "\n\n" if text.strip() else "") + block + "\n"


def replace_part(text: str, name: str, divider: str, second: bool, part: str, placeholder: str) -> str:
    """Replace the first (or `second`) part of a two-part section; an absent part reads `placeholder`."""
    old_first, _, old_second = (section(text, name) or "").partition(f"\n{divider}\n")
    first_text, second_text = (old_first, part) if second else (part, old_second)
    first_text = first_text.strip("\n") or placeholder
    second_text = second_text.strip("\n") or placeholder
    return replace_section(text, name, f"{first_text}\n\n{divider}\n\n{second_text}")


def replace_head(text: str, head: str) -> str:
    """`head` followed by every section of `text`, unchanged: the text outside sections is replaced."""
    kept = [match.group(0) for match in _SECTION.finditer(text)]
    return "\n\n".join([head.rstrip("\n"), *kept]) + "\n"
