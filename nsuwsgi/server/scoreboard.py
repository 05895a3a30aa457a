"""The scoreboard: one shared-memory slot per worker, written by it, read by the master.

Stats (requests, average response time, busy or idle) and harakiri (how long the current
request has run) need facts from inside the workers. A pipe message per request would cost
two system calls on the hottest path; an anonymous shared mapping costs a couple of stores.
The master only reads it when asked for stats, or on the harakiri timer when one is set.
"""

from __future__ import annotations

import mmap
import struct
import time

# requests served, start of the current request (0.0 when idle), total seconds spent serving
SLOT = struct.Struct("<Qdd")


class Scoreboard:
    def __init__(self, slots: int):
        self.slots = slots
        self.memory = mmap.mmap(-1, max(1, slots) * SLOT.size)   # MAP_SHARED | MAP_ANONYMOUS

    def read(self, index: int) -> tuple[int, float, float]:
        return SLOT.unpack_from(self.memory, index * SLOT.size)

    def reset(self, index: int) -> None:
        SLOT.pack_into(self.memory, index * SLOT.size, 0, 0.0, 0.0)

    def writer(self, index: int) -> "SlotWriter":
        return SlotWriter(self.memory, index * SLOT.size)

    def close(self) -> None:
        self.memory.close()


class SlotWriter:
    """The worker's side: mark a request's start and end."""

    __slots__ = ("memory", "offset", "requests", "total", "started")

    def __init__(self, memory, offset: int):
        self.memory, self.offset = memory, offset
        self.requests, self.total, self.started = 0, 0.0, 0.0

    def begin(self) -> None:
        self.started = time.monotonic()
        SLOT.pack_into(self.memory, self.offset, self.requests, self.started, self.total)

    def end(self) -> None:
        self.requests += 1
        self.total += time.monotonic() - self.started
        SLOT.pack_into(self.memory, self.offset, self.requests, 0.0, self.total)
