"""The stats server: one JSON document per connection, as uWSGI's `stats` option serves it.

A client connects, reads until EOF, and gets the master's pid and every supervised process;
the connection is closed right after. The document is sent whole from the master loop, with
a short timeout (serve_one): a client that does not read stalls the loop for SEND_TIMEOUT at
most.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable


def is_unix(address: str) -> bool:
    """A `stats` address names a unix socket path, not `HOST:PORT` (vacuum removes it)."""
    return "/" in address or ":" not in address


def bind_stats(address: str) -> socket.socket:
    """A listening socket for `HOST:PORT`, `:PORT` or a unix socket path."""
    if is_unix(address):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            os.unlink(address)
        except FileNotFoundError:
            pass
        sock.bind(address)
    else:
        host, port = address.rsplit(":", 1)
        host = host.strip("[]") or "127.0.0.1"
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
    sock.listen(16)
    sock.setblocking(False)
    return sock


def socket_name(sock: socket.socket) -> str:
    """`host:port` or the unix path a listening socket is bound to (port 0 resolved)."""
    name = sock.getsockname()
    if isinstance(name, tuple):
        host = f"[{name[0]}]" if ":" in name[0] else name[0]
        return f"{host}:{name[1]}"
    return name


SEND_TIMEOUT = 1.0     # seconds


def serve_one(listener: socket.socket, snapshot: Callable[[], dict]) -> None:
    try:
        conn, _ = listener.accept()
    except (BlockingIOError, InterruptedError, ConnectionAbortedError):
        return
    with conn:
        data = json.dumps(snapshot(), indent=1).encode()
        # All of it, or nothing: one non-blocking send() wrote only what fitted in the socket
        # buffer (an Emperor's 1000 vassals are ~0.5 MB). A client that does not read stalls
        # the loop for at most SEND_TIMEOUT; the stats socket is the operator's, not a tenant's.
        conn.settimeout(SEND_TIMEOUT)
        try:
            conn.sendall(data)
        except OSError:
            pass


def read_stats(address: str, timeout: float = 5.0) -> dict:
    """Client side, used by tests and tools: connect, read to EOF, decode."""
    if is_unix(address):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target: object = address
    else:
        host, port = address.rsplit(":", 1)
        host = host.strip("[]") or "127.0.0.1"
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        target = (host, int(port))
    with sock:
        sock.settimeout(timeout)
        sock.connect(target)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return json.loads(b"".join(chunks))


def main(argv: list[str] | None = None) -> int:
    """`python -m nsuwsgi.stats ADDRESS`: print an instance's stats (like uwsgitop's source)."""
    import sys
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m nsuwsgi.stats HOST:PORT|/path/to/stats.sock", file=sys.stderr)
        return 2
    try:
        print(json.dumps(read_stats(args[0]), indent=2))
    except (OSError, ValueError) as err:
        print(f"nsuwsgi.stats: cannot read stats from {args[0]}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
