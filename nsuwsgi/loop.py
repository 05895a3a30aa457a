"""A single-threaded event loop: signals, fds (pidfds, inotify, sockets) and timers.

uWSGI's master wakes once a second and polls; that is where its second of latency comes from.
This loop sleeps in one selector until something happens: a signal (through the wakeup fd that
CPython writes signal numbers to), a process exit (a pidfd turns readable), a file change
(inotify), a socket, or the nearest timer on a heap. Timers use the monotonic clock, so a
wall-clock jump never fires or delays them. There are no threads (DESIGN.md rule 3).
"""

from __future__ import annotations

import heapq
import itertools
import selectors
import signal
import socket
import time
from collections.abc import Callable

import _signal       # signal.signal converts to enums: pages every process touches

Callback = Callable[[], None]


class Timer:
    __slots__ = ("deadline", "callback", "cancelled")

    def __init__(self, deadline: float, callback: Callback):
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Loop:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.selector = selectors.DefaultSelector()
        self._timers: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._signal_handlers: dict[int, Callable[[int], None]] = {}
        self._wake_r, self._wake_w = socket.socketpair()
        for s in (self._wake_r, self._wake_w):
            s.setblocking(False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, self._read_signals)
        self.running = False

    # ---- registration

    def add_reader(self, fd, callback: Callback) -> None:
        self.selector.register(fd, selectors.EVENT_READ, callback)

    def remove_reader(self, fd) -> None:
        try:
            self.selector.unregister(fd)
        except (KeyError, ValueError):
            pass

    def call_later(self, delay: float, callback: Callback) -> Timer:
        timer = Timer(self.clock() + max(0.0, delay), callback)
        heapq.heappush(self._timers, (timer.deadline, next(self._seq), timer))
        return timer

    def on_signal(self, signum: int, handler: Callable[[int], None]) -> None:
        """Deliver `signum` to `handler` from the loop, never from inside a signal handler."""
        if not self._signal_handlers:
            signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        self._signal_handlers[signum] = handler
        _signal.signal(signum, _note_signal)

    def close(self) -> None:
        for signum in self._signal_handlers:
            _signal.signal(signum, _signal.SIG_DFL)
        if self._signal_handlers:
            signal.set_wakeup_fd(-1)
        self.selector.close()
        self._wake_r.close()
        self._wake_w.close()

    # ---- running

    def run(self, until: Callable[[], bool]) -> None:
        """Dispatch events until `until()` is true (checked after every dispatch)."""
        self.running = True
        while self.running and not until():
            self.run_once()

    def run_once(self) -> None:
        timeout = self._next_timeout()
        for key, _ in self.selector.select(timeout):
            key.data()
        self._fire_due_timers()

    def stop(self) -> None:
        self.running = False

    def _next_timeout(self) -> float | None:
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        if not self._timers:
            return None
        return max(0.0, self._timers[0][0] - self.clock())

    def _fire_due_timers(self) -> None:
        now = self.clock()
        while self._timers and self._timers[0][0] <= now:
            _, _, timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                timer.cancelled = True
                timer.callback()

    def _read_signals(self) -> None:
        try:
            data = self._wake_r.recv(4096)
        except BlockingIOError:
            return
        for signum in data:
            handler = self._signal_handlers.get(signum)
            if handler is not None:
                handler(signum)


def _note_signal(signum, frame) -> None:
    """The Python-level handler does nothing: CPython already wrote signum to the wakeup fd."""
