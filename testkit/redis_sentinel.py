"""A real Sentinel set-up on loopback for tests: one primary, one replica, three Sentinels watching them
(`valkey-server <conf> --sentinel`), quorum two.

    with RedisSentinelServers() as sentinel:
        sentinel.url            # redis+sentinel://127.0.0.1:s1,127.0.0.1:s2,127.0.0.1:s3/mymaster
        sentinel.primary()      # the RedisServer the Sentinels name now
        sentinel.fail_over()    # SENTINEL FAILOVER: the replica is promoted, the old primary follows it
"""

from __future__ import annotations

from testkit.loopback import LOOPBACK
from testkit.redis_cluster import node_command, node_info, wait_until
from testkit.redis_server import RedisServer
from testkit.server_group import ServerGroup

SERVICE = "mymaster"
DOWN_AFTER_MS = 1000




def _sentinel_config(primary_port: int) -> str:
    return "\n".join([
        f"sentinel monitor {SERVICE} {LOOPBACK} {primary_port} 2",
        f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}",
        f"sentinel failover-timeout {SERVICE} 5000",
        f"sentinel parallel-syncs {SERVICE} 1", ""])


class RedisSentinelServers(ServerGroup):
    """`servers[0]` is the primary at the start, `servers[1]` its replica; `sentinels` watch them."""

    def __init__(self, sentinels: int = 3) -> None:
        primary = RedisServer()
        self.servers = [primary, RedisServer(extra_args=["--replicaof", LOOPBACK, str(primary.port)])]
        self.sentinels = [RedisServer(extra_args=["--sentinel"], config_text=_sentinel_config(primary.port))
                          for _ in range(sentinels)]

    @property
    def url(self) -> str:
        nodes = ",".join(f"{LOOPBACK}:{sentinel.port}" for sentinel in self.sentinels)
        return f"redis+sentinel://{nodes}/{SERVICE}"

    def start(self) -> None:
        for server in [*self.servers, *self.sentinels]:
            server.start()
        self.wait_ready()

    def wait_ready(self) -> None:
        """Until the replica is in sync and every Sentinel knows the replica and the other Sentinels."""
        def ready() -> bool:
            replica = self.replica()
            if node_info(replica, "replication").get("master_link_status") != "up":
                return False
            for sentinel in self.sentinels:
                replicas = node_command(sentinel.port, "SENTINEL", "REPLICAS", SERVICE)
                others = node_command(sentinel.port, "SENTINEL", "SENTINELS", SERVICE)
                if len(others) != len(self.sentinels) - 1 or not any(
                        "s_down" not in str(entry) and str(replica.port) in str(entry) for entry in replicas):
                    return False
            return True
        wait_until(ready, "sentinels see the replica and each other")

    def primary(self) -> RedisServer:
        _host, port = node_command(self.sentinels[0].port,
            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
        return next(server for server in self.servers if server.port == int(port))

    def replica(self) -> RedisServer:
        primary = self.primary()
        return next(server for server in self.servers if server is not primary)

    def fail_over(self) -> RedisServer:
        """SENTINEL FAILOVER: the replica is promoted; the new primary once every Sentinel names it (the old
        one rejoins as its replica some seconds later: `wait_ready` before failing over again)."""
        old = self.primary()
        node_command(self.sentinels[0].port, "SENTINEL", "FAILOVER", SERVICE)
        new = next(server for server in self.servers if server is not old)
        wait_until(lambda: all(
            int(node_command(s.port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)[1]) == new.port
            for s in self.sentinels) and node_info(new, "replication")["role"] == "master",
            "the new primary named by every sentinel")
        return new

    def close(self) -> None:
        for server in [*self.sentinels, *self.servers]:
            server.close()
