"""API keys: the model, secret hashing, and the in-memory and Redis stores."""

from gateway.keys.memory_store import MemoryKeyStore
from gateway.keys.model import (
    ApiKey,
    KeyLimits,
    KeyStore,
    hash_secret,
    new_key,
    new_secret,
    secrets_match,
)
from gateway.keys.redis_store import RedisKeyStore

__all__ = ["ApiKey", "KeyLimits", "KeyStore", "MemoryKeyStore", "RedisKeyStore", "hash_secret", "new_key",
           "new_secret", "secrets_match"]
