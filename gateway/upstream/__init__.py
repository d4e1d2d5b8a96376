"""Clients for the workers that run inference, one per protocol; their errors become ours here."""

from gateway.upstream.openai_compatible import OpenAICompatibleClient, Target

__all__ = ["OpenAICompatibleClient", "Target"]
