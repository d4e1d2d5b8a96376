"""Routing patterns cannot hang the gateway: RE2 matches in linear time, whatever the pattern."""

from __future__ import annotations

import pytest

from routing.catalog import parse_catalog
from routing.model_choice import ModelChooser
from routing.safe_regex import check_pattern, compile_safe

UPCOACH = ["quick|reminder|tip", "goal|habit|motivation|wellness", "embed|search|similar"]
COMMON = [r"\b(remind|reminder)s?\b", r"^summari[sz]e", r"[a-z]+ing", r"remind.*tomorrow", r"\w+@\w+\.com",
          r"\d{1,3}\.\d{1,3}", r".*foo.*", ""]
# Catastrophic for a backtracking engine; linear on RE2.
CATASTROPHIC = [r"(a+)+$", r"(a*)*b", r"(a|aa)*$", r"(\w+\s?)+$", r".*a.*b", r"[a-z]+ing"]


@pytest.mark.parametrize("pattern", UPCOACH + COMMON + CATASTROPHIC)
def test_patterns_compile(pattern: str) -> None:
    assert check_pattern(pattern) is None


def test_matching_is_case_insensitive() -> None:
    assert compile_safe("quick|reminder|tip").search("A QUICK Tip") is not None
    assert compile_safe("goal").search("no match here") is None


def test_catastrophic_backtracking_input_returns_at_once() -> None:
    # With Python's `re`, (a+)+$ against "a"*40 + "!" runs for hours; the pytest run would never end.
    hostile = "a" * 40 + "!"
    assert compile_safe(r"(a+)+$").search(hostile) is None
    # Through the model chooser too, with a prompt far longer than any rule should see.
    catalog = parse_catalog("models: [{name: m}, {name: d}]\nrouting:\n  default_model: d\n"
                            "  routes: [{pattern: '(a+)+$', model: m}, {pattern: '[a-z]+ing', model: m}]\n")
    assert ModelChooser(catalog).choose(None, "a" * 100_000 + "!").model == "d"


@pytest.mark.parametrize("pattern", [r"(\w)\1", r"foo(?!\s+bar)", r"(?<=a)b", "(unclosed"])
def test_what_re2_cannot_run_is_refused_with_a_reason(pattern: str) -> None:
    reason = check_pattern(pattern)
    assert reason is not None and "RE2" in reason
    with pytest.raises(ValueError, match="RE2"):
        compile_safe(pattern)
