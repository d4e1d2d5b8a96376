"""API keys: the model, secret hashing, and the in-memory and Redis stores."""

from gateway.auth.api_keys import (
    ApiKey,
    KeyLimits,
    KeyStore,
    hash_secret,
    new_key,
    new_secret,
    secrets_match,
)
from gateway.auth.memory_key_store import MemoryKeyStore
from gateway.auth.redis_key_store import RedisKeyStore

__all__ = ["ApiKey", "KeyLimits", "KeyStore", "MemoryKeyStore", "RedisKeyStore", "hash_secret", "new_key",
           "new_secret", "secrets_match"]
