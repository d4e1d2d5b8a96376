"""`llm-gateway dataset export|stats`: fine-tuning sets and training stats from the capture store
(`GATEWAY_CAPTURE_DIR`), read straight from its files (no gateway needed)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TextIO

from gateway.capture.config import DEFAULT_DIR
from gateway.capture.dataset import ExportStats, Selection, describe, export, formats, load, parse_since


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="dataset_command", required=True, metavar="ACTION")
    exporting = actions.add_parser(
        "export", help="write a fine-tuning set (chat or preference JSONL) and print its stats",
        description="Write captured chat completions as a fine-tuning set: `chat-jsonl` (OpenAI's chat "
        "format, one example per interaction) or `preference-jsonl` (prompt, chosen, rejected: answers "
        "to the same prompt rated differently). Prints counts per rating and label.")
    exporting.add_argument("--format", choices=formats(), default="chat-jsonl", help="default: chat-jsonl")
    exporting.add_argument("--out", help="the file to write (default: standard output)")
    exporting.add_argument("--min-rating", type=int,
                           help="only rated interactions with at least this rating (preference: the chosen answer)")
    exporting.add_argument("--label", action="append", default=[],
                           help="only interactions rated with this label (repeatable)")
    exporting.add_argument("--include-truncated", action="store_true",
                           help="also answers cut by max_tokens (finish_reason: length)")
    stats = actions.add_parser("stats", help="print the training stats: interactions, ratings, labels")
    for action in (exporting, stats):
        action.add_argument("--since", help="only interactions since: a duration ago (7d, 12h, 30m) or an "
                            "ISO date or time (UTC)")
        action.add_argument("--dir", default=None,
                            help=f"the capture directory (default: $GATEWAY_CAPTURE_DIR or {DEFAULT_DIR})")


def run(args: argparse.Namespace) -> int:
    directory = Path(args.dir or os.environ.get("GATEWAY_CAPTURE_DIR", "").strip() or DEFAULT_DIR)
    if not directory.is_dir():
        print(f"llm-gateway dataset: no capture directory {directory}", file=sys.stderr)
        return 2
    try:
        since = parse_since(args.since, time.time()) if args.since else None
    except ValueError as exc:
        print(f"llm-gateway dataset: --since {exc}", file=sys.stderr)
        return 2
    data = load(directory, since)
    if args.dataset_command == "stats":
        _print_stats(describe(data), directory, data.files, data.read.malformed, sys.stdout, exported=False)
        return 0
    selection = Selection(min_rating=args.min_rating, labels=frozenset(args.label),
                          include_truncated=args.include_truncated)
    if args.out:
        with open(args.out, "wb") as handle:
            stats = export(data, args.format, selection, handle.write)
        report = sys.stdout
    else:
        stats = export(data, args.format, selection, sys.stdout.buffer.write)
        sys.stdout.flush()
        report = sys.stderr
    _print_stats(stats, directory, data.files, data.read.malformed, report)
    print(f"wrote {stats.examples} {args.format} example(s) to {args.out or 'standard output'}", file=report)
    return 0


def _print_stats(stats: ExportStats, directory: Path, files: int, malformed: int, out: TextIO, *,
                 exported: bool = True) -> None:
    print(f"captures: {directory} ({files} file(s)" + (f", {malformed} malformed line(s)" if malformed else "")
          + ")", file=out)
    for line in stats.lines(exported=exported):
        print(line, file=out)
