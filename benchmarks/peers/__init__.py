"""The peers suite: this gateway beside LiteLLM's proxy and Portkey's gateway on the same nginx upstream
(`python -m benchmarks.peers`; the method: README.md). The streaming suite shares its installs."""

from benchmarks.peers.cli import main, parse_args
from benchmarks.peers.gateway_rows import peer_goals

__all__ = ["main", "parse_args", "peer_goals"]
