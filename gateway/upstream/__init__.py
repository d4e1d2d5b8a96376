"""Clients for the workers that run inference, one per protocol; their errors become ours here."""

from gateway.upstream.client import WorkerClient, WorkerTarget

__all__ = ["WorkerClient", "WorkerTarget"]
