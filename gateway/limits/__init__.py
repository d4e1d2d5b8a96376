"""Rate limits and token budgets: the model and its semantics (`gateway.limits.decisions`), and the
in-memory, Redis and fallback stores."""

from gateway.limits.decisions import Admission, LimitStore, Reason, Reservation, budget_period
from gateway.limits.fallback import FallbackLimitStore
from gateway.limits.memory_store import MemoryLimitStore
from gateway.limits.redis_store import RedisLimitStore

__all__ = ["Admission", "FallbackLimitStore", "LimitStore", "MemoryLimitStore", "Reason", "RedisLimitStore",
           "Reservation", "budget_period"]
