"""redis-py's asyncio clients against the gateway's own (`RedisWire`, `ClusterWire`) on the limit check."""
