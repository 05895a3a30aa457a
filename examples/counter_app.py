"""Tenant 1's app in the Emperor demo: counts its hits in the tenant's own memcached.

MEMCACHED_SOCKET (set by the vassal's `env` option) names memcached's unix socket. In the jail
it is /tmp/memcached.sock, which only this tenant can reach.
"""

import os
import socket


def ask(sock: socket.socket, command: bytes) -> bytes:
    sock.sendall(command)
    reply = b""
    while not reply.endswith(b"\r\n"):
        chunk = sock.recv(256)
        if not chunk:
            break
        reply += chunk
    return reply.strip()


def count_hit(path: str) -> str:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            sock.connect(path)
            reply = ask(sock, b"incr hits 1\r\n")
            if reply == b"NOT_FOUND" and ask(sock, b"add hits 0 0 1\r\n1\r\n") == b"STORED":
                return "1"
            if reply == b"NOT_FOUND":           # another worker added it first
                reply = ask(sock, b"incr hits 1\r\n")
            return reply.decode(errors="replace")
    except OSError as err:
        return f"unknown (memcached: {err.strerror or err})"


def application(environ, start_response):
    path = os.environ.get("MEMCACHED_SOCKET", "/tmp/memcached.sock")
    body = (f"Hello from {os.uname().nodename}: worker pid {os.getpid()}, uid {os.getuid()}, "
            f"hit number {count_hit(path)} (memcached at {path})\n")
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [body.encode()]
