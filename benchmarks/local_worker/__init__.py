"""The local-worker suite: tokens/s and time to first token of 1, 4 and 8 concurrent streams through the
gateway, on the embedded worker's old server (llama-cpp-python) and its new one (llama.cpp's llama-server)
(`python -m benchmarks.local_worker`; the method: README.md)."""

from benchmarks.local_worker.cli import main, parse_args

__all__ = ["main", "parse_args"]
