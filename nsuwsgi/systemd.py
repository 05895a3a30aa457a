"""sd_notify without libsystemd.

Under Type=notify, systemd (or an Emperor supervising us the same way) only learns that we are
ready, reloading or stopping, and that we are still alive, from datagrams we send to
NOTIFY_SOCKET. The protocol is one sendto, so linking libsystemd is not worth it; and since this
runs on every cold start it imports nothing beyond os, socket and time. A supervisor that has
gone away must never take us down with it, so sending never raises: failures are counted and
kept for the caller to log.
"""

from __future__ import annotations

import os
import socket
import struct
import time

NOTIFY_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
_MAX_PATH = 107     # sun_path is 108 bytes, one of them the terminating NUL


def parse_address(value: str | None) -> tuple[str | None, str | None]:
    """NOTIFY_SOCKET as a sendto address, or (None, why it cannot be used)."""
    if not value:
        return None, "NOTIFY_SOCKET is not set"
    if value.startswith("@") and len(value) > 1:
        address = "\0" + value[1:]
    elif value.startswith("/"):
        address = value
    else:
        return None, f"NOTIFY_SOCKET={value!r} is not a unix socket path or @abstract name"
    if len(os.fsencode(address)) > _MAX_PATH:
        return None, f"NOTIFY_SOCKET={value!r} is too long for a unix socket address"
    return address, None


def parse_watchdog(usec: str | None, pid: str | None) -> float | None:
    """Seconds between watchdog pings (half the timeout), or None if not ours to ping."""
    if pid and pid != str(os.getpid()):
        return None
    try:
        timeout = int(usec or "")
    except ValueError:
        return None
    return timeout / 2_000_000 if timeout > 0 else None


class Notifier:
    """One NOTIFY_SOCKET client; a silent no-op when there is no socket."""

    send_timeout = 0.5              # seconds a full receiver queue may hold a send

    def __init__(self, address: str | None, reason: str | None = None,
                 watchdog_usec: str | None = None, watchdog_pid: str | None = None):
        self.address = address
        self.reason = reason
        self.watchdog_usec = watchdog_usec
        self.watchdog_pid = watchdog_pid
        self.sent = 0
        self.errors = 0
        self.last_error: OSError | None = None
        self._sock: socket.socket | None = None

    @classmethod
    def from_environ(cls, environ=os.environ, unset: bool = False) -> Notifier:
        """Read NOTIFY_SOCKET and WATCHDOG_*; `unset` hides them from our children."""
        address, reason = parse_address(environ.get("NOTIFY_SOCKET"))
        notifier = cls(address, reason, environ.get("WATCHDOG_USEC"), environ.get("WATCHDOG_PID"))
        if unset:
            for name in NOTIFY_VARS:
                os.environ.pop(name, None)
        return notifier

    @property
    def enabled(self) -> bool:
        return self.address is not None

    # ---- sending

    def send(self, text: str) -> bool:
        """Send one raw notification datagram; True if the kernel accepted it."""
        if self.address is None:
            return False
        try:
            self._socket().sendto(text.encode(), self.address)
        except OSError as exc:
            self.errors += 1
            self.last_error = exc
            return False
        self.sent += 1
        return True

    def notify(self, **fields) -> bool:
        """Send KEY=value lines in one datagram (newlines in values become spaces)."""
        lines = (f"{key}={str(value).replace(chr(10), ' ')}" for key, value in fields.items())
        return self.send("\n".join(lines) + "\n")

    def ready(self, status: str | None = None) -> bool:
        if status is None:
            return self.notify(READY=1)
        return self.notify(READY=1, STATUS=status)

    def status(self, text: str) -> bool:
        return self.notify(STATUS=text)

    def reloading(self) -> bool:
        """RELOADING=1 with the CLOCK_MONOTONIC timestamp Type=notify-reload expects."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify(RELOADING=1, MONOTONIC_USEC=usec)

    def stopping(self) -> bool:
        return self.notify(STOPPING=1)

    def watchdog(self) -> bool:
        return self.notify(WATCHDOG=1)

    def watchdog_interval(self) -> float | None:
        return parse_watchdog(self.watchdog_usec, self.watchdog_pid)

    # ---- the socket

    def _socket(self) -> socket.socket:
        """Blocking, with a kernel send timeout (SO_SNDTIMEO, so a full queue is EAGAIN).

        The receiver's queue holds only net.unix.max_dgram_qlen (often 10) datagrams: when 200
        vassals report READY at once, a non-blocking send loses most of them. Waiting a little
        lets the Emperor or systemd drain it; a stuck one costs us at most SEND_TIMEOUT.
        """
        if self._sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            seconds = int(self.send_timeout)
            micros = int((self.send_timeout - seconds) * 1_000_000)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO,
                            struct.pack("ll", seconds, micros))
            self._sock = sock
        return self._sock

    def fileno(self) -> int:
        """The sending socket's fd, or -1 before the first send and after close()."""
        return -1 if self._sock is None else self._sock.fileno()

    def close(self) -> None:
        """Release the socket; a later send opens a new one."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


LISTEN_VARS = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")
LISTEN_FDS_START = 3


def listen_fds(environ=os.environ, unset: bool = True) -> list[tuple[int, str]]:
    """The fds passed by socket activation, as (fd, name), like sd_listen_fds_with_names().

    They are ours only if LISTEN_PID is our pid (otherwise the variables were inherited from
    an ancestor and the fds, if any, are not for us). They start at fd 3; LISTEN_FDNAMES
    names them, colon-separated ("" when it is missing or does not match the count). Each fd
    is made close-on-exec. `unset` removes the variables, so that our children never see them.
    """
    pid, count, names = (environ.get(name) for name in LISTEN_VARS)
    if unset:
        for name in LISTEN_VARS:
            environ.pop(name, None)
    if pid != str(os.getpid()):
        return []
    try:
        n = int(count or "0")
    except ValueError:
        return []
    labels = names.split(":") if names is not None else []
    if len(labels) != n:
        labels = [""] * n
    found = []
    for i in range(max(n, 0)):
        fd = LISTEN_FDS_START + i
        try:
            os.set_inheritable(fd, False)
        except OSError:             # not open after all
            continue
        found.append((fd, labels[i]))
    return found


def feed_watchdog(notifier: Notifier, loop, stopped=lambda: False) -> None:
    """Ping WATCHDOG=1 at half the supervisor's timeout, from the loop, until `stopped()`.

    Pinging from the event loop (not a thread) is the point: a loop that hangs stops pinging,
    and systemd or the Emperor kills and restarts us.
    """
    interval = notifier.watchdog_interval()
    if interval is None:
        return

    def ping():
        if not stopped():
            notifier.watchdog()
            loop.call_later(interval, ping)
    ping()
