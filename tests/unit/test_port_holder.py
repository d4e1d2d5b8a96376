"""Who holds a port: real listening sockets of this process, found through /proc."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.workers.port_holder import holder_of, port_in_use
from testkit.loopback import free_port

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@pytest.fixture
def listener() -> Iterator[int]:
    """A plain socket listening on 127.0.0.1 in this process; its port."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield held.getsockname()[1]


def test_a_free_port_is_free() -> None:
    assert port_in_use("127.0.0.1", free_port()) is None


def test_a_busy_port_names_this_process(listener: int) -> None:
    message = port_in_use("127.0.0.1", listener)
    assert message is not None
    assert message.startswith(f"port {listener} on 127.0.0.1 is already in use by pid {os.getpid()} (")
    assert "\n" not in message
    holder = holder_of("127.0.0.1", listener)
    assert holder is not None and holder.pid == os.getpid()
    program = Path("/proc/self/cmdline").read_bytes().split(b"\0")[0].decode()
    assert holder.command.split(" ")[0] == os.path.basename(program)  # without its directory


def test_a_wildcard_server_counts_only_where_it_listens(listener: int) -> None:
    assert port_in_use("0.0.0.0", listener) is not None  # binding every address needs 127.0.0.1 too
    assert holder_of("0.0.0.0", listener) is not None


def test_an_ipv6_wildcard_listener_holds_the_ipv4_loopback_port() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    with socket.socket(socket.AF_INET6) as held:
        held.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        held.bind(("::", 0))
        held.listen()
        port = held.getsockname()[1]
        holder = holder_of("127.0.0.1", port)
        assert holder is not None and holder.pid == os.getpid()
        assert f"by pid {os.getpid()} (" in (port_in_use("127.0.0.1", port) or "")
