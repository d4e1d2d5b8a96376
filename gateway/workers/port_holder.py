"""Who holds a TCP port: so that a port already in use is an error naming the port and the process listening
on it, rather than a local worker that fails to bind while another server answers its health check.

On Linux the LISTEN sockets of /proc/net/tcp and /proc/net/tcp6 give each listener's address, port and
socket inode, and /proc/<pid>/fd holds a link `socket:[inode]` in the process that owns it. Where /proc
is missing or another user's processes are unreadable, the holder is "another process".
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")
_LISTEN = "0A"
_COMMAND_CHARS = 120

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class PortHolder:
    pid: int
    command: str
    """Its command line on one line, without the program's directory (`python3 -m http.server 8081`)."""


def port_in_use(host: str, port: int) -> str | None:
    """None when a server could listen on `host:port` now; else why not, naming the holder:
    "port 8081 on 127.0.0.1 is already in use by pid 1234 (python3 -m http.server 8081)"."""
    if _can_bind(host, port):
        return None
    holder = holder_of(host, port)
    by = f"pid {holder.pid} ({holder.command})" if holder else "another process"
    return f"port {port} on {host} is already in use by {by}"


def _can_bind(host: str, port: int) -> bool:
    """A bind as a server makes it, with SO_REUSEADDR (so a previous run's connections in TIME_WAIT do not
    count as the port being taken); a host that does not resolve is left for the server to report."""
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                                 flags=socket.AI_PASSIVE)[0]
    except OSError:
        return True
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError:
            return False
    return True


def holder_of(host: str, port: int) -> PortHolder | None:
    """The process listening on `port` where a server on `host` would (None when unknown)."""
    wanted = _address_of(host)
    inodes = [inode for address, inode in _listeners(port) if wanted is None or _overlaps(address, wanted)]
    for inode in inodes:
        pid = _pid_holding(inode)
        if pid is not None:
            return PortHolder(pid, _command_of(pid))
    return None


def _address_of(host: str) -> IPAddress | None:
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host)
    try:
        return ipaddress.ip_address(socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][4][0])
    except (OSError, ValueError):
        return None  # then any listener on the port is a candidate


def _overlaps(listener: IPAddress, wanted: IPAddress) -> bool:
    """Whether a listener on `listener` keeps a server from binding `wanted` on the same port: the same
    address (an IPv4-mapped IPv6 one counts as IPv4), or either is the wildcard address."""
    listener = _unmapped(listener)
    wanted = _unmapped(wanted)
    return listener == wanted or listener.is_unspecified or wanted.is_unspecified


def _unmapped(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _listeners(port: int) -> list[tuple[IPAddress, int]]:
    """(address, socket inode) of every TCP socket listening on `port`, IPv4 and IPv6."""
    found: list[tuple[IPAddress, int]] = []
    for table in ("tcp", "tcp6"):
        try:
            rows = (_PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) < 10 or fields[3] != _LISTEN:
                continue
            address_hex, port_hex = fields[1].split(":")
            if int(port_hex, 16) == port:
                found.append((_decode_address(address_hex), int(fields[9])))
    return found


def _decode_address(hex_text: str) -> IPAddress:
    """/proc/net/tcp writes an address as 32-bit words, each in the machine's own byte order."""
    raw = bytes.fromhex(hex_text)
    if sys.byteorder == "little":
        raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(raw)


def _pid_holding(inode: int) -> int | None:
    link = f"socket:[{inode}]"
    for process in _PROC.glob("[0-9]*"):
        with contextlib.suppress(OSError):
            for fd in (process / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) == link:
                        return int(process.name)
    return None


def _command_of(pid: int) -> str:
    try:
        argv = (_PROC / str(pid) / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    except OSError:
        return "?"
    words = [os.path.basename(argv[0].decode(errors="replace"))] + [a.decode(errors="replace") for a in argv[1:]]
    command = " ".join(" ".join(words).split())  # on one line
    return command if len(command) <= _COMMAND_CHARS else command[:_COMMAND_CHARS - 1] + "…"
