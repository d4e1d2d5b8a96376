"""The fault proxy against a real echo server: it forwards faithfully, and each fault does what it says."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from testkit.loopback import free_port
from tests.fault_proxy import FaultProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):  # the proxy's reset and kill faults
            while data := self.request.recv(65536):
                self.request.sendall(data)


@pytest.fixture(scope="module")
def echo_port() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(echo_port: int) -> Iterator[FaultProxy]:
    with FaultProxy(echo_port) as started:
        yield started


def connect(proxy: FaultProxy, timeout: float = 10.0) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def receive(conn: socket.socket, size: int) -> bytes:
    """Up to `size` bytes, fewer if the peer closes first."""
    data = b""
    while len(data) < size and (piece := conn.recv(size - len(data))):
        data += piece
    return data


def wait_until(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        threading.Event().wait(0.01)


def test_forwards_both_ways_and_passes_a_half_close_on(proxy: FaultProxy) -> None:
    payload = bytes(range(256)) * 1000
    with connect(proxy) as conn:
        conn.sendall(payload)
        conn.shutdown(socket.SHUT_WR)
        assert receive(conn, len(payload) + 1) == payload  # then EOF: the echo server saw ours and closed
    assert proxy.connections_total == 1
    assert proxy.bytes_to_target == proxy.bytes_to_client == len(payload)
    wait_until(lambda: proxy.open_connections == 0)


def test_stall_holds_data_with_the_socket_open_until_resumed(proxy: FaultProxy) -> None:
    with connect(proxy) as conn:
        conn.sendall(b"before")
        assert receive(conn, 6) == b"before"
        proxy.stall()
        conn.sendall(b"held")
        conn.settimeout(0.3)
        with pytest.raises(TimeoutError):
            conn.recv(16)
        assert proxy.open_connections == 1
        proxy.resume()
        conn.settimeout(10)
        assert receive(conn, 4) == b"held"


def test_reset_sends_an_rst_to_the_client(proxy: FaultProxy) -> None:
    with connect(proxy) as conn:
        conn.sendall(b"x")
        assert receive(conn, 1) == b"x"
        assert proxy.reset() == 1
        with pytest.raises(ConnectionResetError):
            conn.recv(16)
    wait_until(lambda: proxy.open_connections == 0)
    with connect(proxy) as again:  # still listening
        again.sendall(b"y")
        assert receive(again, 1) == b"y"


def test_truncate_ends_the_answer_cleanly_after_n_bytes(proxy: FaultProxy) -> None:
    proxy.truncate_after(10)
    with connect(proxy) as conn:
        conn.sendall(b"0123456789abcdefghij")
        assert receive(conn, 100) == b"0123456789"  # then a FIN, not an error
    proxy.truncate_after(None)
    with connect(proxy) as conn:
        conn.sendall(b"0123456789abcdefghij")
        assert receive(conn, 20) == b"0123456789abcdefghij"


def test_kill_refuses_new_connections_and_revive_listens_on_the_same_port(proxy: FaultProxy) -> None:
    port = proxy.port
    with connect(proxy) as conn:
        conn.sendall(b"x")
        assert receive(conn, 1) == b"x"
        assert proxy.kill() == 1
        with pytest.raises(ConnectionResetError):
            conn.recv(16)
    with pytest.raises(ConnectionRefusedError):
        connect(proxy)
    proxy.revive()
    assert proxy.port == port
    with connect(proxy) as conn:
        conn.sendall(b"back")
        assert receive(conn, 4) == b"back"


def test_latency_delays_each_chunk(proxy: FaultProxy) -> None:
    proxy.set_latency(0.2)
    with connect(proxy) as conn:
        began = time.monotonic()
        conn.sendall(b"ping")
        assert receive(conn, 4) == b"ping"
        assert time.monotonic() - began >= 0.4 * 0.95  # a lower bound: held once each way
    proxy.clear()
    with connect(proxy) as conn:
        conn.sendall(b"pong")
        assert receive(conn, 4) == b"pong"


def test_bandwidth_limit_spreads_the_bytes_over_time(proxy: FaultProxy) -> None:
    proxy.limit_bandwidth(50_000)
    payload = b"z" * 20_000
    with connect(proxy) as conn:
        began = time.monotonic()
        conn.sendall(payload)
        assert receive(conn, len(payload)) == payload
        # A lower bound: 20 kB at 50 kB/s, less the first 50 ms' worth that goes out at once.
        assert time.monotonic() - began >= (20_000 - 2_500) / 50_000 * 0.95
    with pytest.raises(ValueError, match="positive"):
        proxy.limit_bandwidth(0)


def test_a_dead_target_closes_the_client_connection() -> None:
    with FaultProxy(free_port()) as proxy:
        with contextlib.suppress(ConnectionResetError), connect(proxy) as conn:  # an RST (even at connect), or a FIN
            assert conn.recv(16) == b""
        assert proxy.connections_total == 0
