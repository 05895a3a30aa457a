"""File watching through inotify, shared by `touch`, pidfiles and (later) the Emperor.

uWSGI compares mtimes once a second with 1 s resolution, so it notices late and misses two
changes within a second. Here the kernel tells us at once. Identical events are merged by the
kernel, so an event only means "look at this name again": the callback re-stats the file and
compares nanosecond mtimes (and inode, for atomic renames) with what it saw last.
We watch directories, not files, so creation, deletion and rename-over are all seen.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

from nsuwsgi.linux import syscalls

# inotify(7) event bits.
IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ISDIR = 0x40000000

DIR_MASK = (IN_CLOSE_WRITE | IN_ATTRIB | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |
            IN_MODIFY | IN_DELETE_SELF | IN_MOVE_SELF)


class Event:
    """One inotify event; `name` is empty for events about the watched directory itself."""

    __slots__ = ("wd", "mask", "cookie", "name")

    def __init__(self, wd: int, mask: int, cookie: int, name: str):
        self.wd, self.mask, self.cookie, self.name = wd, mask, cookie, name


EVENT_HEADER = struct.Struct("iIII")     # struct inotify_event: wd, mask, cookie, len, name[len]


class Inotify:
    """An inotify instance. Our own few lines over libc: the inotify_simple package found
    libc through ctypes.util, which imports subprocess and so threading, and threading's
    after-fork hook alone made every process the fork-server forks ~0.4 MB bigger (measured
    with smaps_rollup; docs/architecture.md)."""

    def __init__(self):
        self.fd = syscalls.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
        self.closed = False

    def fileno(self) -> int:
        return self.fd

    def add_watch(self, path: str, mask: int) -> int:
        return syscalls.inotify_add_watch(self.fd, path, mask)

    def rm_watch(self, wd: int) -> None:
        syscalls.inotify_rm_watch(self.fd, wd)

    def read(self) -> list[Event]:
        """The events queued now, up to one read's worth (never blocks). The fd stays
        readable while more are queued, so a busy directory cannot hold the loop here."""
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return []
        events = []
        offset = 0
        while offset + EVENT_HEADER.size <= len(data):
            wd, mask, cookie, length = EVENT_HEADER.unpack_from(data, offset)
            offset += EVENT_HEADER.size
            name = data[offset:offset + length].split(b"\0", 1)[0]
            offset += length
            events.append(Event(wd, mask, cookie, os.fsdecode(name)))
        return events

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)


class Watcher:
    """Calls `callback()` when something happens to a watched name in its directory."""

    def __init__(self):
        self.inotify = Inotify()
        self._dirs: dict[str, int] = {}            # directory -> watch descriptor
        self._names: dict[int, dict[str, list[Callable[[], None]]]] = {}

    def fileno(self) -> int:
        return self.inotify.fileno()

    def watch(self, path: str, callback: Callable[[], None]) -> bool:
        """Watch `path` (which may not exist yet). False if its directory cannot be watched."""
        directory, name = os.path.split(os.path.abspath(path))
        wd = self._dirs.get(directory)
        if wd is None:
            try:
                wd = self.inotify.add_watch(directory, DIR_MASK)
            except OSError:
                return False
            self._dirs[directory] = wd
            self._names.setdefault(wd, {})
        self._names[wd].setdefault(name, []).append(callback)
        return True

    def unwatch(self, path: str, callback: Callable[[], None]) -> None:
        directory, name = os.path.split(os.path.abspath(path))
        wd = self._dirs.get(directory)
        if wd is None:
            return
        callbacks = self._names[wd].get(name, [])
        if callback in callbacks:
            callbacks.remove(callback)
        if not callbacks:
            self._names[wd].pop(name, None)
        if not self._names[wd]:
            del self._names[wd], self._dirs[directory]
            try:
                self.inotify.rm_watch(wd)
            except OSError:
                pass

    def dispatch(self) -> None:
        """Read pending events; call each interested callback once."""
        due: list[Callable[[], None]] = []
        for event in self.inotify.read():
            if event.mask & IN_Q_OVERFLOW:  # events were lost: every name is looked at again
                targets = [cbs for names in self._names.values() for cbs in names.values()]
            else:
                names = self._names.get(event.wd, {})
                targets = names.values() if not event.name else [names.get(event.name, [])]
            for callbacks in targets:
                for cb in callbacks:
                    if cb not in due:
                        due.append(cb)
        for cb in due:
            cb()

    def close(self) -> None:
        self.inotify.close()
