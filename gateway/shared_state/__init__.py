"""State shared by replicas: Redis connections (redis-py for the control plane, `redis_wire` for the hot
path) and the store factory that picks Redis or memory from the settings."""
