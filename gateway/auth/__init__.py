"""API keys: the model, secret hashing, and the in-memory and Redis stores of keys and of their usage per day."""

from gateway.auth.api_keys import (
    ApiKey,
    KeyLimits,
    KeyStore,
    hash_secret,
    new_key,
    new_secret,
    secrets_match,
)
from gateway.auth.key_usage import DayUsage, ModelUsage, UsageStore
from gateway.auth.memory_key_store import MemoryKeyStore
from gateway.auth.memory_usage_store import MemoryUsageStore
from gateway.auth.redis_key_store import RedisKeyStore
from gateway.auth.redis_usage_store import RedisUsageStore

__all__ = ["ApiKey", "DayUsage", "KeyLimits", "KeyStore", "MemoryKeyStore", "MemoryUsageStore", "ModelUsage",
           "RedisKeyStore", "RedisUsageStore", "UsageStore", "hash_secret", "new_key", "new_secret", "secrets_match"]
