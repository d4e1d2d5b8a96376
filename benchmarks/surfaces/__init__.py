"""The surfaces suite: the gateway's CPU per request of a Responses and a Messages call translated to chat
completions, beside a chat completion's, plain and streamed; and whether the translated streams keep the
worker's pace (`python -m benchmarks.surfaces`; the method: README.md)."""

from benchmarks.surfaces.cli import main, parse_args

__all__ = ["main", "parse_args"]
