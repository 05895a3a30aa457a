"""File watching through inotify, shared by `touch`, pidfiles and (later) the Emperor.

uWSGI compares mtimes once a second with 1 s resolution, so it notices late and misses two
changes within a second. Here the kernel tells us at once. Identical events are merged by the
kernel, so an event only means "look at this name again": the callback re-stats the file and
compares nanosecond mtimes (and inode, for atomic renames) with what it saw last.
We watch directories, not files, so creation, deletion and rename-over are all seen.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import inotify_simple
from inotify_simple import INotify, flags

from nsuwsgi.linux import syscalls

# inotify_simple finds libc with find_library(), which inside a jail's rootfs (no ldconfig)
# falls back to running gcc: about 30 ms of a jailed start. Hand it ours.
inotify_simple._libc = syscalls.libc()

DIR_MASK = (flags.CLOSE_WRITE | flags.ATTRIB | flags.MOVED_TO | flags.MOVED_FROM |
            flags.CREATE | flags.DELETE | flags.MODIFY | flags.DELETE_SELF | flags.MOVE_SELF)


class Watcher:
    """Calls `callback()` when something happens to a watched name in its directory."""

    def __init__(self):
        self.inotify = INotify()
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
        for event in self.inotify.read(timeout=0):
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
