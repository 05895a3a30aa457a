"""The Emperor as tests drive it: one real process, its stats, its log (tests/ and vm-tests/)."""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path

import pytest

from nsuwsgi import linux
from nsuwsgi.stats import read_stats
from support import unix_http_get, wait_for


@pytest.fixture
def vassals(tmp_path) -> Path:
    path = tmp_path / "vassals"
    path.mkdir()
    return path


# The vassal app: "GREETING MASTER WORKER LISTEN_FDS LISTEN_PID": the env var GREETING (set with
# `env =` in the vassal file), the vassal master's pid (the worker's parent), the worker's pid,
# and what the worker sees of socket activation ("-" where unset).
APP = '''
import os
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    body = "%s %d %d %s %s" % (os.environ.get("GREETING", "-"), os.getppid(), os.getpid(),
                               os.environ.get("LISTEN_FDS", "-"),
                               os.environ.get("LISTEN_PID", "-"))
    return [body.encode()]
'''


@pytest.fixture
def app(tmp_path) -> Path:
    path = tmp_path / "app.py"
    path.write_text(APP)
    return path


def ini(sock, app, *lines) -> str:
    """A one-process vassal file serving `app` over HTTP on the unix socket `sock`."""
    return "\n".join(["[uwsgi]", f"http-socket = {sock}", f"wsgi-file = {app}",
                      "processes = 1", *lines]) + "\n"


def write_atomic(path: Path, text: str) -> Path:
    """Write beside `path` under a hidden name (not a vassal name), then rename over it."""
    tmp = path.parent / f".{path.name}.tmp"
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def get(sock, timeout: float = 10.0) -> bytes:
    """One HTTP/1.0 GET over a unix socket: the body of a 200 answer."""
    data = unix_http_get(sock, timeout)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), data
    return body


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        for child in linux.proc_children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


class Emperor:
    """One real Emperor process, started through the `nsuwsgi` fixture (cleanup by pid)."""

    def __init__(self, nsuwsgi, sockdir: Path, vassals: Path, *extra, listener=None,
                 prefix=()):
        """`prefix`: a launcher that execs the Emperor (systemd-socket-activate ...)."""
        self.stats_path = str(Path(sockdir) / f"emperor-{uuid.uuid4().hex[:8]}.stats")
        env = listener.env() if listener is not None else None
        self.inst = nsuwsgi("--emperor", str(vassals), "--emperor-stats", self.stats_path,
                            *extra, env=env, stats=False, prefix=prefix)
        self.pid = self.inst.pid

    def stats(self) -> dict | None:
        if self.inst.proc.poll() is not None:
            raise AssertionError(f"the Emperor exited {self.inst.proc.returncode}:\n"
                                 f"{self.log()[-3000:]}")
        try:
            return read_stats(self.stats_path)
        except (OSError, ValueError):
            return None

    def vassal(self, name: str) -> dict | None:
        stats = self.stats()
        return next((v for v in stats["vassals"] if v["id"] == name), None) if stats else None

    def wait_vassal(self, name: str, predicate, timeout=15.0, what="") -> dict:
        def check():
            v = self.vassal(name)
            return v if v is not None and predicate(v) else None
        return wait_for(check, timeout, f"{what or 'vassal ' + name}; stats: "
                        f"{self._stats_text()}\nlog:\n{self.log()[-3000:]}")

    def wait_ready(self, name: str, timeout=15.0) -> dict:
        return self.wait_vassal(name, lambda v: v["ready"] and v["pid"] > 0, timeout,
                                f"vassal {name} ready")

    def wait_gone(self, name: str, timeout=15.0) -> None:
        wait_for(lambda: (s := self.stats()) is not None and
                 name not in [v["id"] for v in s["vassals"]], timeout,
                 f"vassal {name} forgotten; stats: {self._stats_text()}")

    def _stats_text(self) -> str:
        try:
            return json.dumps(self.stats())
        except AssertionError as exc:
            return str(exc)

    def log(self) -> str:
        return self.inst.log()

    def helpers(self) -> set[int]:
        """The Emperor's own helper processes (its fork-server, if it runs one)."""
        return {int(p) for p in re.findall(r"fork-server started \(pid: (\d+)\)", self.log())}

    def vassal_processes(self) -> list[int]:
        """Every process below the Emperor but its helpers: vassal masters and workers."""
        return [p for p in descendants(self.pid) if p not in self.helpers()]

    def wait_log(self, text: str, timeout=15.0) -> str:
        return self.inst.wait_log(text, timeout)

    def signal(self, sig) -> None:
        self.inst.signal(sig)

    def stop(self) -> int:
        """SIGTERM to the Emperor's pid, then wait for it to exit."""
        return self.inst.stop()
