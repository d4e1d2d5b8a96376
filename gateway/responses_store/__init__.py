"""Stored responses of the OpenAI Responses API (`store`, `previous_response_id`): what a kept response
holds, behind one Protocol with two stores (in memory, one process; Redis, shared by every replica)."""

from gateway.responses_store.stores import (
    MemoryResponseStore,
    RedisResponseStore,
    ResponseStore,
    StoredResponse,
)

__all__ = ["MemoryResponseStore", "RedisResponseStore", "ResponseStore", "StoredResponse"]
