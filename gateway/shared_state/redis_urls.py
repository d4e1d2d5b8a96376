"""What `REDIS_URL` names: one Redis, a Redis Cluster, or a primary found through Sentinel.

    redis://[user:pass@]host:port[/db]                 one server (also rediss:// for TLS, unix:///path)
    redis+cluster://[user:pass@]host:port[,host:port…]  a cluster, from any of its nodes (seed nodes)
    redis+sentinel://[user:pass@]host:port[,host:port…]/<service>[/db]
                                                        the primary Sentinel names `service`

`rediss+cluster://` and `rediss+sentinel://` use TLS to the data nodes. The user and password are the
data nodes'; Sentinels that want their own give `?sentinel_password=…` (and `sentinel_username=…`).
Both clients (redis-py for the control plane, `redis_wire` for the hot path) read the URL through
`parse_redis_url`, so they never disagree about it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, quote, unquote

Kind = Literal["single", "cluster", "sentinel"]
Node = tuple[str, int]
DEFAULT_PORT = 6379
DEFAULT_SENTINEL_PORT = 26379
_SCHEMES: dict[str, tuple[Kind, bool]] = {
    "redis": ("single", False), "rediss": ("single", True), "unix": ("single", False),
    "redis+cluster": ("cluster", False), "rediss+cluster": ("cluster", True),
    "redis+sentinel": ("sentinel", False), "rediss+sentinel": ("sentinel", True),
}


class RedisUrlError(ValueError):
    """A `REDIS_URL` this module cannot read; the message says what is wrong (never the password)."""


@dataclass(frozen=True, slots=True)
class RedisEndpoints:
    """A parsed `REDIS_URL`. `nodes`: the server (single), seed nodes (cluster) or Sentinels."""

    kind: Kind
    url: str
    nodes: tuple[Node, ...]
    tls: bool = False
    username: str | None = None
    password: str | None = None
    db: int = 0
    service: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None

    def node_url(self, node: Node) -> str:
        """A plain `redis://` / `rediss://` URL of one data node, with this URL's credentials and db."""
        scheme = "rediss" if self.tls else "redis"
        auth = ""
        if self.password is not None:
            auth = f"{quote_part(self.username or '')}:{quote_part(self.password)}@"
        host = f"[{node[0]}]" if ":" in node[0] else node[0]
        return f"{scheme}://{auth}{host}:{node[1]}/{self.db}"


def quote_part(text: str) -> str:
    return quote(text, safe="")


def parse_redis_url(url: str) -> RedisEndpoints:
    """`url` read, or `RedisUrlError` saying what is wrong with it."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in _SCHEMES:
        raise RedisUrlError(f"REDIS_URL: unknown scheme {scheme!r}; expected one of {', '.join(_SCHEMES)}")
    kind, tls = _SCHEMES[scheme.lower()]
    if kind == "single":
        return RedisEndpoints(kind="single", url=url, nodes=(), tls=tls)
    rest, _, query_text = rest.partition("?")
    query = {name: values[0] for name, values in parse_qs(query_text).items()}
    hosts, _, path = rest.partition("/")
    userinfo, at, hosts = hosts.rpartition("@")
    username, password = _credentials(userinfo) if at else (None, None)
    default_port = DEFAULT_SENTINEL_PORT if kind == "sentinel" else DEFAULT_PORT
    nodes = tuple(_node(part, default_port) for part in hosts.split(","))
    segments = [unquote(s) for s in path.split("/") if s]
    service, db = None, 0
    if kind == "cluster":
        if segments not in ([], ["0"]):
            raise RedisUrlError("REDIS_URL: a cluster has only database 0; give no path after the nodes")
    else:
        if not segments or len(segments) > 2:
            raise RedisUrlError("REDIS_URL: a Sentinel URL ends in /<service name>[/<db>]")
        service = segments[0]
        db = _db(segments[1]) if len(segments) == 2 else 0
    return RedisEndpoints(kind=kind, url=url, nodes=nodes, tls=tls, username=username, password=password,
                          db=db, service=service, sentinel_username=query.get("sentinel_username"),
                          sentinel_password=query.get("sentinel_password"))


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    user, colon, password = userinfo.partition(":")
    if not colon:  # redis://secret@host: a password alone, as redis-py reads it
        return None, unquote(user) or None
    return unquote(user) or None, unquote(password)


def _node(text: str, default_port: int) -> Node:
    text = text.strip()
    if text.startswith("["):  # [ipv6]:port
        host, _, tail = text[1:].partition("]")
        port_text = tail.removeprefix(":")
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise RedisUrlError(f"REDIS_URL: node {text!r} has no host (expected host:port[,host:port...])")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise RedisUrlError(f"REDIS_URL: node {text!r} has no valid port")
    return host, int(port_text)


def _db(text: str) -> int:
    if not text.isdigit():
        raise RedisUrlError(f"REDIS_URL: database {text!r} is not a number")
    return int(text)
