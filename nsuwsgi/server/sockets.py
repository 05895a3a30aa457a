"""Listening sockets: parsed from uWSGI's names, bound before any jail, inherited by workers.

A tenant with no network of its own (namespace-net) still serves, because its sockets are
bound outside the jail, by the keeper or the master, and handed down. Sockets passed by
systemd (LISTEN_FDS/LISTEN_PID) are adopted on the first start; they speak the uwsgi protocol
unless `protocol = http`, as in uWSGI.
"""

from __future__ import annotations

import grp
import os
import pwd
import socket
import stat
import sys
from nsuwsgi.errors import ValueProblem
from nsuwsgi.records import Frozen, set_field
from nsuwsgi.systemd import listen_fds

HTTP = "http"
UWSGI = "uwsgi"


class SocketSpec(Frozen):
    """One `socket`/`http-socket` entry: where to listen and which protocol to speak."""

    __slots__ = ("address", "protocol")

    def __init__(self, address: str, protocol: str = UWSGI):
        set_field(self, "address", address)
        set_field(self, "protocol", protocol)


def parse_socket(text: str) -> SocketSpec:
    return SocketSpec(_check_address(text), UWSGI)


def parse_http_socket(text: str) -> SocketSpec:
    return SocketSpec(_check_address(text), HTTP)


def parse_protocol(text: str) -> str:
    word = text.strip().lower()
    if word in ("http", "http11"):
        return HTTP
    if word == "uwsgi":
        return UWSGI
    raise ValueProblem(f"protocol '{text}' is not supported", "use http or uwsgi")


def parse_shared_socket(text: str) -> str:
    """`shared-socket = ADDRESS`: bound first, as root; `socket = =N` refers to the N-th."""
    address = _check_address(text)
    if shared_index(address) is not None:
        raise ValueProblem(f"'{address}' refers to a shared socket; a shared socket needs "
                           "an address", "write shared-socket = 127.0.0.1:80")
    return address


def shared_index(address: str) -> int | None:
    """N for an `=N` address (the N-th shared-socket, from 0); None for a real address."""
    return int(address[1:]) if address.startswith("=") else None


def _check_address(text: str) -> str:
    address = text.strip()
    if not address:
        raise ValueProblem("needs an address", "write :8080, 127.0.0.1:8080, /run/app.sock "
                                                "or @abstract")
    if address.startswith("="):
        if not (address[1:].isascii() and address[1:].isdigit()):
            raise ValueProblem(f"'{address}' is not =N", "write =0 for the first shared-socket")
        return f"={int(address[1:])}"
    if address.startswith(("/", "@", ".")) or ":" not in address:
        return address
    host, _, port = address.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueProblem(f"'{port}' is not a port", "write HOST:PORT, e.g. 127.0.0.1:8080")
    return address


def is_unix(address: str) -> bool:
    return address.startswith(("/", "@", ".")) or ":" not in address


def bind(spec: SocketSpec, backlog: int, chmod: int | None = None,
         chown: tuple[int, int] | None = None) -> socket.socket:
    """A non-blocking listening socket for `spec` (the caller owns and closes it)."""
    if is_unix(spec.address):
        sock = _bind_unix(spec.address, chmod, chown)
    else:
        sock = _bind_inet(spec.address)
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


def _bind_unix(address: str, chmod: int | None, chown) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if address.startswith("@"):
        sock.bind("\0" + address[1:])
        return sock
    try:
        if stat.S_ISSOCK(os.lstat(address).st_mode):
            os.unlink(address)          # a stale socket from an earlier run
    except FileNotFoundError:
        pass
    sock.bind(address)
    if chmod is not None:
        os.chmod(address, chmod)
    if chown is not None:
        os.chown(address, *chown)
    return sock


def _bind_inet(address: str) -> socket.socket:
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if not host:
        host = "0.0.0.0"
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, int(port)))
    return sock


def name_of(sock: socket.socket) -> str:
    """uWSGI's naming: `ip:port`, `:port` for 0.0.0.0, the unix path, or @abstract."""
    name = sock.getsockname()
    if isinstance(name, tuple):
        host = name[0]
        if host in ("0.0.0.0", "::"):
            return f":{name[1]}"
        return f"[{host}]:{name[1]}" if ":" in host else f"{host}:{name[1]}"
    if isinstance(name, bytes):
        return "@" + name[1:].decode(errors="replace")
    if name.startswith("\0"):
        return "@" + name[1:]
    return name


def listen_queue(sock: socket.socket) -> tuple[int, int]:
    """(connections waiting to be accepted, the backlog) of a listening TCP socket.

    Linux reports them in TCP_INFO's tcpi_unacked and tcpi_sacked for a listener (uWSGI's
    `listen_queue` reads the same). (0, 0) for unix sockets and when the kernel says nothing.
    """
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return 0, 0
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 32)
    except OSError:
        return 0, 0
    if len(info) < 32:
        return 0, 0
    # 8 one-byte fields, then u32 rto, ato, snd_mss, rcv_mss, unacked, sacked
    return (int.from_bytes(info[24:28], sys.byteorder),
            int.from_bytes(info[28:32], sys.byteorder))


def systemd_sockets(environ, protocol: str | None) -> list[tuple[socket.socket, str]]:
    """Sockets passed by systemd socket activation (systemd.listen_fds: LISTEN_PID checked,
    close-on-exec); clears LISTEN_* as uWSGI does."""
    found = []
    for fd, _ in listen_fds(environ):
        sock = socket.socket(fileno=fd)
        sock.setblocking(False)
        found.append((sock, protocol or UWSGI))
    return found


def parse_chown(text: str) -> tuple[int, int]:
    """`user[:group]` (names or numbers) for chown-socket."""
    user, _, group = text.strip().partition(":")
    try:
        uid = int(user) if user.isdigit() else pwd.getpwnam(user).pw_uid
        if group:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
        else:
            gid = pwd.getpwuid(uid).pw_gid
    except KeyError:
        raise ValueProblem(f"'{text}' names an unknown user or group",
                           "write chown-socket = www-data or www-data:www-data") from None
    return uid, gid


def parse_chmod(text: str) -> int:
    """uWSGI: a bare `chmod-socket` means 666; otherwise octal digits."""
    word = text.strip()
    if word in ("", "1", "true"):
        return 0o666
    try:
        return int(word, 8)
    except ValueError:
        raise ValueProblem(f"'{text}' is not an octal mode", "write chmod-socket = 660") \
            from None


def stdin_listener() -> socket.socket | None:
    """A listening socket on fd 0: how the Emperor hands an on-demand socket to its vassal.

    uWSGI adopts such a socket too (`uwsgi socket 0 inherited`), so inetd-style launchers work.
    """
    try:
        if not stat.S_ISSOCK(os.fstat(0).st_mode):
            return None
        sock = socket.socket(fileno=os.dup(0))
    except OSError:
        return None
    try:
        listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    except OSError:
        listening = 0
    if not listening or sock.type != socket.SOCK_STREAM:
        sock.close()
        return None
    sock.set_inheritable(False)
    sock.setblocking(False)
    devnull = os.open(os.devnull, os.O_RDONLY)      # fd 0 is stdin again for the children
    os.dup2(devnull, 0)
    os.close(devnull)
    return sock


def same_address(sock: socket.socket, address: str) -> bool:
    """Whether a bound socket listens on a configured `socket`/`http-socket` address."""
    name = name_of(sock)
    if name == address:
        return True
    if is_unix(address):
        return os.path.abspath(address) == name
    host, _, port = address.rpartition(":")
    return name.rpartition(":")[2] == port and host in ("", "0.0.0.0", "::", "*")
