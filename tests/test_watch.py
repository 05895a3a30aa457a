"""nsuwsgi.watch: our inotify calls and the Watcher that touch options and pidfiles use."""

from __future__ import annotations

import os
import select

from nsuwsgi.watch import (DIR_MASK, IN_CLOSE_WRITE, IN_CREATE, IN_DELETE, IN_ISDIR,
                           IN_MOVED_FROM, IN_MOVED_TO, Inotify, Watcher)


def readable(fd, timeout: float = 5.0) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


def test_inotify_reports_each_event_with_its_name_and_never_blocks(tmp_path):
    inotify = Inotify()
    try:
        wd = inotify.add_watch(str(tmp_path), DIR_MASK)
        assert inotify.read() == []                     # nothing queued: no wait
        (tmp_path / "a.ini").write_text("x")
        os.rename(tmp_path / "a.ini", tmp_path / "b-with-a-longer-name.ini")
        (tmp_path / "sub").mkdir()
        os.unlink(tmp_path / "b-with-a-longer-name.ini")
        assert readable(inotify)
        events = []
        while readable(inotify, 0.2):
            events += inotify.read()
        seen = [(e.wd, e.name, e.mask) for e in events]
        assert (wd, "a.ini", IN_CREATE) in seen
        assert (wd, "a.ini", IN_CLOSE_WRITE) in seen
        moved = [e for e in events if e.mask & (IN_MOVED_FROM | IN_MOVED_TO)]
        assert [(e.name, e.mask) for e in moved] == [("a.ini", IN_MOVED_FROM),
                                                     ("b-with-a-longer-name.ini", IN_MOVED_TO)]
        assert moved[0].cookie == moved[1].cookie != 0   # one rename, one cookie
        assert (wd, "sub", IN_CREATE | IN_ISDIR) in seen
        assert (wd, "b-with-a-longer-name.ini", IN_DELETE) in seen
        inotify.rm_watch(wd)
    finally:
        inotify.close()
    assert inotify.closed
    inotify.close()                                     # twice is harmless


def test_inotify_fd_is_close_on_exec_and_non_blocking():
    inotify = Inotify()
    try:
        assert os.readlink(f"/proc/self/fd/{inotify.fileno()}") == "anon_inode:inotify"
        assert not os.get_inheritable(inotify.fileno())
        assert not os.get_blocking(inotify.fileno())
    finally:
        inotify.close()


def test_watcher_calls_back_once_per_dispatch_for_a_watched_name(tmp_path):
    watcher = Watcher()
    calls = []
    try:
        assert watcher.watch(str(tmp_path / "touch-me"), lambda: calls.append("touched"))
        (tmp_path / "other").write_text("not watched")
        (tmp_path / "touch-me").write_text("1")
        assert readable(watcher)
        watcher.dispatch()
        assert calls == ["touched"]                     # create + modify + close: one call
    finally:
        watcher.close()


def test_watching_a_missing_directory_says_so(tmp_path):
    watcher = Watcher()
    try:
        assert watcher.watch(str(tmp_path / "no-such-dir" / "file"), lambda: None) is False
    finally:
        watcher.close()


class QueueOverflowed:
    """Stands in for the kernel queue when it overflowed: one event, wd -1, no name."""

    def read(self):
        from nsuwsgi.watch import IN_Q_OVERFLOW, Event
        return [Event(-1, IN_Q_OVERFLOW, 0, "")]


def test_after_lost_events_every_watched_name_is_looked_at_again(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    watcher = Watcher()
    calls = []
    try:
        watcher.watch(str(tmp_path / "a" / "touch"), lambda: calls.append("a"))
        watcher.watch(str(tmp_path / "b" / "pidfile"), lambda: calls.append("b"))
        real, watcher.inotify = watcher.inotify, QueueOverflowed()
        watcher.dispatch()
        assert sorted(calls) == ["a", "b"]
    finally:
        watcher.inotify = real
        watcher.close()
