"""The scoreboard: one shared-memory slot per worker, written by it, read by the master.

Stats (requests, app exceptions, bytes sent, average and total response time, busy or idle)
and harakiri (how long the current request has run) need facts from inside the workers. A
pipe message per request would cost two system calls on the hottest path; an anonymous shared
mapping costs a couple of stores: `begin` writes one double, `end` one packed record. An app
exception is rare and written when it happens. The master only reads it when asked for stats,
or on the harakiri timer when one is set.
"""

from __future__ import annotations

import mmap
import struct
import time

# requests served, start of the current request (0.0 when idle), total seconds spent serving,
# app exceptions, bytes sent (response heads and bodies)
SLOT = struct.Struct("<QddQQ")
STARTED = struct.Struct("<d")           # the second field alone, at offset 8
EXCEPTIONS = struct.Struct("<Q")        # the fourth field alone, at offset 24
STARTED_AT, EXCEPTIONS_AT = 8, 24


class Scoreboard:
    def __init__(self, slots: int):
        self.slots = slots
        self.memory = mmap.mmap(-1, max(1, slots) * SLOT.size)   # MAP_SHARED | MAP_ANONYMOUS

    def read(self, index: int) -> tuple[int, float, float, int, int]:
        """(requests, busy since or 0.0, seconds serving, exceptions, bytes sent)."""
        return SLOT.unpack_from(self.memory, index * SLOT.size)

    def reset(self, index: int) -> None:
        SLOT.pack_into(self.memory, index * SLOT.size, 0, 0.0, 0.0, 0, 0)

    def writer(self, index: int) -> "SlotWriter":
        return SlotWriter(self.memory, index * SLOT.size)

    def close(self) -> None:
        self.memory.close()


class SlotWriter:
    """The worker's side: mark a request's start and end, count an app's exceptions."""

    __slots__ = ("memory", "offset", "requests", "total", "started", "exceptions", "tx")

    def __init__(self, memory, offset: int):
        self.memory, self.offset = memory, offset
        self.requests, self.total, self.started = 0, 0.0, 0.0
        self.exceptions = self.tx = 0

    def begin(self) -> float:
        """The request starts; returns its monotonic start (the worker's log reuses it)."""
        self.started = started = time.monotonic()
        STARTED.pack_into(self.memory, self.offset + STARTED_AT, started)
        return started

    def end(self, sent: int) -> None:
        """The request is over; `sent`: the bytes its response put on the wire."""
        self.requests += 1
        self.total += time.monotonic() - self.started
        self.tx += sent
        SLOT.pack_into(self.memory, self.offset, self.requests, 0.0, self.total,
                       self.exceptions, self.tx)

    def exception(self) -> None:
        """The app raised (wsgi.call_app's error paths call this)."""
        self.exceptions += 1
        EXCEPTIONS.pack_into(self.memory, self.offset + EXCEPTIONS_AT, self.exceptions)
