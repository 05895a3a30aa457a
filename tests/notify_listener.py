"""A real NOTIFY_SOCKET for tests: receives sd_notify datagrams and names each sender's pid.

SO_PASSCRED makes the kernel attach the sender's credentials (SCM_CREDENTIALS) to every
datagram, so a test can tell which process said READY=1 without trusting the message itself.
Waits are bounded selects on the socket, never sleeps.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from dataclasses import dataclass, field

_UCRED = struct.Struct("3i")        # struct ucred: pid, uid, gid
_BUFSIZE = 65536


@dataclass
class Message:
    pid: int | None
    uid: int | None
    gid: int | None
    fields: dict[str, str] = field(default_factory=dict)
    raw: str = ""


def parse_fields(raw: str) -> dict[str, str]:
    """`KEY=value` lines as a dict (a repeated key keeps its last value)."""
    fields = {}
    for line in raw.split("\n"):
        key, sep, value = line.partition("=")
        if sep:
            fields[key] = value
    return fields


def _credentials(ancdata) -> tuple[int | None, int | None, int | None]:
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            return _UCRED.unpack(data[:_UCRED.size])
    return None, None, None


class NotifyListener:
    """Bind `path` (a filesystem path, or @name for an abstract socket) and collect messages."""

    def __init__(self, path):
        self.path = str(path)
        self.messages: list[Message] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            self.sock.bind(self._address())
        except OSError:
            self.sock.close()
            raise

    def _address(self) -> str:
        return "\0" + self.path[1:] if self.path.startswith("@") else self.path

    def env(self) -> dict[str, str]:
        return {"NOTIFY_SOCKET": self.path}

    # ---- receiving

    def poll(self, timeout: float = 0.0) -> int:
        """Wait up to `timeout` for the socket to be readable, then take every queued message."""
        if self.sock.fileno() < 0:
            return 0
        readable, _, _ = select.select([self.sock], [], [], max(timeout, 0.0))
        return self._drain() if readable else 0

    def _drain(self) -> int:
        count = 0
        while True:
            try:
                data, ancdata, _, _ = self.sock.recvmsg(_BUFSIZE, socket.CMSG_SPACE(_UCRED.size))
            except BlockingIOError:
                return count
            raw = data.decode(errors="replace")
            self.messages.append(Message(*_credentials(ancdata), parse_fields(raw), raw))
            count += 1

    def mark(self) -> int:
        """An index for `since=`: only messages received after this call will match."""
        self.poll()
        return len(self.messages)

    def wait_for(self, predicate, timeout: float = 10.0, what: str = "a notification",
                 since: int = 0) -> Message:
        """The first message from index `since` on for which `predicate(message)` is truthy."""
        deadline = time.monotonic() + timeout
        checked = since
        while True:
            self.poll()
            for message in self.messages[checked:]:
                if predicate(message):
                    return message
            checked = max(checked, len(self.messages))
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; "
                                     f"received: {[m.raw for m in self.messages]}")
            self.poll(left)

    def wait_for_field(self, key: str, value: str | None = None, timeout: float = 10.0,
                       since: int = 0) -> Message:
        """The first message carrying `key` (with exactly `value`, when given)."""
        def matches(message):
            return key in message.fields and (value is None or message.fields[key] == value)
        what = f"{key}={value}" if value is not None else key
        return self.wait_for(matches, timeout, what, since)

    def values(self, key: str) -> list[str]:
        """Every value `key` was given, oldest first."""
        self.poll()
        return [m.fields[key] for m in self.messages if key in m.fields]

    def statuses(self) -> list[str]:
        return self.values("STATUS")

    # ---- cleanup

    def close(self) -> None:
        """Close the socket and remove its file; senders then get ENOENT."""
        if self.sock.fileno() >= 0:
            self.sock.close()
            if not self.path.startswith("@"):
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass

    def __enter__(self) -> NotifyListener:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
