"""The response cache: which requests may be answered from it, how answers are stored and replayed,
and where they live (Redis, or memory when embedded)."""

from gateway.cache.answers import CachedAnswer
from gateway.cache.plan import CachePlan, plan_for
from gateway.cache.response_cache import ResponseCache
from gateway.cache.stores import CacheStore, MemoryCacheStore, RedisCacheStore

__all__ = ["CachePlan", "CacheStore", "CachedAnswer", "MemoryCacheStore", "RedisCacheStore", "ResponseCache",
           "plan_for"]
