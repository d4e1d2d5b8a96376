"""Fine-tuning sets from the capture store, and the counts that describe them (the training stats).

- `chat-jsonl`: one example per captured chat completion, in OpenAI's fine-tuning format:
  `{"messages": [...the request's messages..., {"role": "assistant", "content": answer}]}` (with the
  request's `tools` and the answer's `tool_calls` when there are some).
- `preference-jsonl`: `{"prompt": messages, "chosen": [answer], "rejected": [answer]}` (TRL's
  conversational preference format) from answers to the same prompt (same messages and tools) rated
  differently: the best-rated answer is paired with every answer rated lower.

Only chat completions that ended well are used: no error, some content or tool calls, and (unless
asked) not cut by `max_tokens`. Feedback is joined by (tenant, request id); when an interaction was
rated more than once, the latest rating counts.

The store is read twice, as a stream: the feedback first (small), then the interactions, so memory
holds the feedback and, for preference sets, the rated answers only, whatever the store's size.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from gateway.capture.store import ReadStats, capture_files, read_records

_canonical = msgspec.json.Encoder(order="sorted").encode
_encode = msgspec.json.Encoder().encode
_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_FEEDBACK_MARK = b'"type":"feedback"'


def parse_since(text: str, now: float) -> float:
    """`7d`, `12h`, `30m`, `90s`, `2w` ago, or an ISO date or time (UTC unless it says otherwise), as
    Unix time. ValueError if it is neither."""
    text = text.strip()
    relative = _RELATIVE.fullmatch(text.lower())
    if relative:
        return now - float(relative.group(1)) * _UNIT_S[relative.group(2)]
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise ValueError(f"{text!r}: expected a duration ago (7d, 12h, 30m) or an ISO date or time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


@dataclass(frozen=True, slots=True)
class Rated:
    rating: int
    label: str | None


@dataclass
class Dataset:
    """A window of the store: its feedback (latest per interaction), and its interactions on demand."""

    directory: Path
    since: float | None = None
    feedback: dict[tuple[str, str], Rated] = field(default_factory=dict)
    files: int = 0
    read: ReadStats = field(default_factory=ReadStats)

    def rating_of(self, interaction: dict[str, Any]) -> Rated | None:
        return self.feedback.get((str(interaction.get("tenant")), str(interaction.get("request_id"))))

    def interactions(self) -> Iterator[dict[str, Any]]:
        """The interactions since `since`, in the order written (oldest file first)."""
        for record in read_records(self.directory, self.read):
            if record.get("type") != "interaction":
                continue
            ts = record.get("ts")
            if self.since is None or (isinstance(ts, int | float) and ts >= self.since):
                yield record


def load(directory: str | Path, since: float | None = None) -> Dataset:
    """The store at `directory`, with its feedback read (interactions are read when iterated)."""
    data = Dataset(Path(directory), since, files=len(capture_files(directory)))
    latest: dict[tuple[str, str], tuple[float, Rated]] = {}
    for record in read_records(directory, ReadStats(), containing=_FEEDBACK_MARK):
        rating = record.get("rating")
        if record.get("type") != "feedback" or not isinstance(rating, int):
            continue
        key = (str(record.get("tenant")), str(record.get("request_id")))
        ts = record.get("ts")
        when = float(ts) if isinstance(ts, int | float) else 0.0
        label = record.get("label")
        previous = latest.get(key)
        if previous is None or when >= previous[0]:
            latest[key] = (when, Rated(rating, label if isinstance(label, str) else None))
    data.feedback = {key: rated for key, (_, rated) in latest.items()}
    return data


@dataclass
class Selection:
    """What to export."""

    min_rating: int | None = None
    labels: frozenset[str] = frozenset()
    include_truncated: bool = False


@dataclass
class ExportStats:
    interactions: int = 0
    by_endpoint: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    rated: int = 0
    by_rating: Counter[int] = field(default_factory=Counter)
    by_label: Counter[str] = field(default_factory=Counter)
    examples: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def observe(self, interaction: dict[str, Any], rated: Rated | None) -> None:
        self.interactions += 1
        self.by_endpoint[str(interaction.get("endpoint"))] += 1
        if interaction.get("error"):
            self.errors += 1
        if rated is not None:
            self.rated += 1
            self.by_rating[rated.rating] += 1
            self.by_label[rated.label or "(none)"] += 1

    def lines(self, *, exported: bool = True) -> list[str]:
        endpoints = ", ".join(f"{name} {n}" for name, n in sorted(self.by_endpoint.items()))
        out = [f"interactions: {self.interactions}" + (f" ({endpoints})" if endpoints else "")
               + f", errors {self.errors}, rated {self.rated}"]
        ratings = ", ".join(f"{rating}: {n}" for rating, n in sorted(self.by_rating.items(), reverse=True))
        out.append(f"by rating: {ratings or '-'}")
        labels = ", ".join(f"{label}: {n}" for label, n in sorted(self.by_label.items(), key=lambda i: (-i[1], i[0])))
        out.append(f"by label: {labels or '-'}")
        if exported:
            out.append(f"examples: {self.examples}")
        if self.skipped:
            out.append("skipped: " + ", ".join(f"{why} {n}" for why, n in sorted(self.skipped.items())))
        return out


def describe(data: Dataset) -> ExportStats:
    """The training stats of a window: interactions per endpoint, errors, ratings and labels."""
    stats = ExportStats()
    for interaction in data.interactions():
        stats.observe(interaction, data.rating_of(interaction))
    return stats


def _answer(interaction: dict[str, Any]) -> dict[str, Any] | None:
    """The assistant message of a chat interaction's first choice, as fine-tuning wants it."""
    response = interaction.get("response")
    choices = response.get("choices") if isinstance(response, dict) else None
    first = choices[0] if isinstance(choices, list) and choices else None
    message = first.get("message") if isinstance(first, dict) else None
    if not isinstance(message, dict):
        return None
    answer: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
    if message.get("tool_calls"):
        answer["tool_calls"] = [{k: v for k, v in call.items() if k in ("id", "type", "function")}
                                for call in message["tool_calls"] if isinstance(call, dict)]
    if not answer["content"] and not answer.get("tool_calls"):
        return None
    return answer


def _usable(interaction: dict[str, Any], rated: Rated | None, selection: Selection, skipped: Counter[str],
            *, preference: bool) -> dict[str, Any] | None:
    """The answer to export for this interaction, or None (and why, in `skipped`)."""
    if interaction.get("endpoint") != "chat/completions":
        skipped["not chat"] += 1
        return None
    if interaction.get("error"):
        skipped["error"] += 1
        return None
    if interaction.get("finish_reason") == "length" and not selection.include_truncated:
        skipped["truncated"] += 1
        return None
    answer = _answer(interaction)
    request = interaction.get("request")
    messages = request.get("messages") if isinstance(request, dict) else None
    if answer is None or not isinstance(messages, list) or not messages:
        skipped["empty"] += 1
        return None
    if rated is None and (preference or selection.min_rating is not None or selection.labels):
        skipped["unrated"] += 1
        return None
    if rated is not None and selection.labels and rated.label not in selection.labels:
        skipped["other label"] += 1
        return None
    if rated is not None and selection.min_rating is not None and rated.rating < selection.min_rating \
            and not preference:  # (preference: the rejected answers are rated lower on purpose)
        skipped["below min rating"] += 1
        return None
    return answer


def _chat(data: Dataset, selection: Selection, stats: ExportStats) -> Iterator[dict[str, Any]]:
    for interaction in data.interactions():
        rated = data.rating_of(interaction)
        stats.observe(interaction, rated)
        answer = _usable(interaction, rated, selection, stats.skipped, preference=False)
        if answer is None:
            continue
        request = interaction["request"]
        example: dict[str, Any] = {"messages": [*request["messages"], answer]}
        if request.get("tools"):
            example["tools"] = request["tools"]
        yield example


def _preference(data: Dataset, selection: Selection, stats: ExportStats) -> Iterator[dict[str, Any]]:
    groups: dict[bytes, tuple[list[Any], dict[bytes, tuple[int, dict[str, Any]]]]] = {}
    for interaction in data.interactions():
        rated = data.rating_of(interaction)
        stats.observe(interaction, rated)
        answer = _usable(interaction, rated, selection, stats.skipped, preference=True)
        if answer is None or rated is None:
            continue
        request = interaction["request"]
        prompt_key = _canonical([request["messages"], request.get("tools")])
        _, answers = groups.setdefault(prompt_key, (request["messages"], {}))
        answer_key = _canonical(answer)
        best = answers.get(answer_key)
        if best is None or rated.rating > best[0]:  # the same answer rated twice: its best rating
            answers[answer_key] = (rated.rating, answer)
    for messages, answers in groups.values():
        ranked = sorted(answers.values(), key=lambda item: -item[0])
        top_rating, chosen = ranked[0]
        if selection.min_rating is not None and top_rating < selection.min_rating:
            stats.skipped["below min rating"] += 1
            continue
        worse = [answer for rating, answer in ranked[1:] if rating < top_rating]
        if not worse:
            stats.skipped["no pair"] += 1
        for rejected in worse:
            yield {"prompt": messages, "chosen": [chosen], "rejected": [rejected]}


_FORMATS: dict[str, Callable[[Dataset, Selection, ExportStats], Iterator[dict[str, Any]]]] = {
    "chat-jsonl": _chat, "preference-jsonl": _preference}


def formats() -> Sequence[str]:
    return tuple(_FORMATS)


def export(data: Dataset, fmt: str, selection: Selection, write: Callable[[bytes], object]) -> ExportStats:
    """Write the set (`chat-jsonl` or `preference-jsonl`) line by line with `write`; return its stats."""
    stats = ExportStats()
    for example in _FORMATS[fmt](data, selection, stats):
        write(_encode(example) + b"\n")
        stats.examples += 1
    return stats
