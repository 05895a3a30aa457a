"""The real uwsgitop (PyPI, installed by the `test` extras) reads our stats.

uwsgitop is a curses program: it runs here in a pseudo-terminal of a fixed size with
TERM=xterm, and a small terminal emulator (below) turns what it draws into rows of text, so the
test reads the screen a user would see: the worker table with the real worker pids, or an
Emperor's vassals. uwsgitop silently skips a worker row whose fields it cannot format, so the
rows themselves are the proof that every field it needs is there. 'q' ends it.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from emperor_support import Emperor
from emperor_support import vassals  # noqa: F401 - a pytest fixture
from support import OWNED, wait_for
from test_server import app_file, http, start_server

UWSGITOP = Path(sys.executable).parent / "uwsgitop"
ROWS, COLUMNS = 40, 200
BOOM = '''
def application(environ, start_response):
    if environ["PATH_INFO"] == "/boom":
        raise RuntimeError("boom")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello World"]
'''

pytestmark = pytest.mark.skipif(not UWSGITOP.exists(),
                                reason="uwsgitop is not installed (pip install -e '.[test]')")


class Screen:
    """Just enough of an xterm for what ncurses sends to draw uwsgitop's screen."""

    CSI = re.compile(rb"\x1b\[([?>=]?)([0-9;]*)([ -/]*)([@-~])")

    def __init__(self, rows: int, columns: int):
        self.rows, self.columns = rows, columns
        self.grid = [[" "] * columns for _ in range(rows)]
        self.row = self.col = 0
        self.last = " "
        self.pending = b""

    def feed(self, data: bytes) -> None:
        data = self.pending + data
        self.pending = b""
        i = 0
        while i < len(data):
            byte = data[i]
            if byte == 0x1b:
                consumed = self._escape(data, i)
                if consumed is None:            # an escape split across two reads
                    self.pending = data[i:]
                    return
                i += consumed
                continue
            i += 1
            if byte == 0x0d:
                self.col = 0
            elif byte == 0x0a:
                self.row = min(self.row + 1, self.rows - 1)
            elif byte == 0x08:
                self.col = max(self.col - 1, 0)
            elif byte == 0x09:
                self.col = min((self.col // 8 + 1) * 8, self.columns - 1)
            elif byte >= 0x20:
                self._put(chr(byte))

    def _put(self, char: str) -> None:
        if self.col < self.columns:
            self.grid[self.row][self.col] = char
        self.col += 1
        self.last = char

    def _escape(self, data: bytes, i: int) -> int | None:
        if i + 1 >= len(data):
            return None
        kind = data[i + 1:i + 2]
        if kind == b"[":
            match = self.CSI.match(data, i)
            if match is None:
                return None if len(data) - i < 32 else 2
            self._csi(match.group(1), match.group(2), match.group(4))
            return match.end() - i
        if kind in (b"(", b")", b"*", b"+"):
            return 3 if i + 2 < len(data) else None
        return 2                                # ESC 7, ESC 8, ESC =, ESC >, ...

    def _csi(self, private: bytes, params: bytes, final: bytes) -> None:
        if private:
            return                              # modes: cursor visibility, alternate screen
        args = [int(p) if p else 0 for p in params.split(b";")] if params else []
        n = args[0] if args and args[0] else 1
        if final in (b"H", b"f"):
            self.row = min(max((args[0] if args else 1) or 1, 1), self.rows) - 1
            self.col = min(max((args[1] if len(args) > 1 else 1) or 1, 1), self.columns) - 1
        elif final == b"A":
            self.row = max(self.row - n, 0)
        elif final == b"B":
            self.row = min(self.row + n, self.rows - 1)
        elif final == b"C":
            self.col = min(self.col + n, self.columns - 1)
        elif final == b"D":
            self.col = max(self.col - n, 0)
        elif final == b"G":
            self.col = min(n, self.columns) - 1
        elif final == b"d":
            self.row = min(n, self.rows) - 1
        elif final == b"J":
            mode = args[0] if args else 0
            first = 0 if mode in (1, 2, 3) else self.row + 1
            last = self.row - 1 if mode == 1 else self.rows - 1
            for r in range(first, last + 1):
                self.grid[r] = [" "] * self.columns
            if mode == 0:
                self._erase(self.col, self.columns)
        elif final == b"K":
            mode = args[0] if args else 0
            self._erase(*((self.col, self.columns), (0, self.col + 1), (0, self.columns))[mode])
        elif final == b"X":
            self._erase(self.col, self.col + n)
        elif final == b"b":                     # repeat the last character
            for _ in range(n):
                self._put(self.last)
        elif final == b"P":
            line = self.grid[self.row]
            del line[self.col:self.col + n]
            line += [" "] * (self.columns - len(line))
        elif final == b"@":
            line = self.grid[self.row]
            line[self.col:self.col] = [" "] * n
            del line[self.columns:]

    def _erase(self, start: int, end: int) -> None:
        for c in range(start, min(end, self.columns)):
            self.grid[self.row][c] = " "

    def lines(self) -> list[str]:
        return ["".join(row).rstrip() for row in self.grid]


class Top:
    """uwsgitop on a pty; everything it printed is kept, for the failure messages."""

    def __init__(self, address: str):
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        env = {k: v for k, v in os.environ.items() if k not in ("LINES", "COLUMNS")}
        env["TERM"] = "xterm"
        self.proc = subprocess.Popen([str(UWSGITOP), address], stdin=slave, stdout=slave,
                                     stderr=slave, env=env, start_new_session=True)
        OWNED.add(self.proc.pid)
        os.close(slave)
        self.screen = Screen(ROWS, COLUMNS)
        self.raw = b""

    def pump(self, timeout: float) -> bool:
        """Read what uwsgitop drew within `timeout`; False once the pty is closed."""
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.master, 65536)
        except OSError:                         # EIO: uwsgitop exited, the pty is gone
            return False
        if not data:
            return False
        self.raw += data
        self.screen.feed(data)
        return True

    def wait_screen(self, predicate, timeout: float, what: str):
        def check():
            self.pump(0.05)
            assert b"Traceback" not in self.raw, self.text()
            assert self.proc.poll() is None, f"uwsgitop exited:\n{self.text()}"
            return predicate(self.screen.lines())
        return wait_for(check, timeout, f"{what} on uwsgitop's screen:\n{self.text()}")

    def quit(self, timeout: float = 10.0) -> int:
        os.write(self.master, b"q")
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            if not self.pump(0.05):
                break
        code = self.proc.wait(max(deadline - time.monotonic(), 0.1))
        while self.pump(0):
            pass
        return code

    def text(self) -> str:
        return "\n".join(self.screen.lines()).rstrip() + \
            f"\n--- raw tail: {self.raw[-600:]!r}"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        OWNED.discard(self.proc.pid)
        os.close(self.master)


def worker_rows(lines: list[str]) -> dict[int, list[str]]:
    """Rows of uwsgitop's worker table, by PID (the third column)."""
    try:
        start = next(i for i, line in enumerate(lines) if line.split()[:3] == ["WID", "%", "PID"])
    except StopIteration:
        return {}
    rows = {}
    for line in lines[start + 1:]:
        fields = line.split()
        if len(fields) >= 16 and fields[2].isdigit():
            rows[int(fields[2])] = fields
    return rows


def test_uwsgitop_shows_the_workers_of_an_instance(nsuwsgi, tmp_path):
    inst, path = start_server(nsuwsgi, tmp_path, "--processes", "2", app=BOOM)
    for _ in range(4):
        assert http(path, b"GET / HTTP/1.0\r\n\r\n")[2] == b"Hello World"
    assert http(path, b"GET /boom HTTP/1.0\r\n\r\n")[0].startswith(b"HTTP/1.1 500")
    # The exception is counted when the app raises, a request once its answer is sent: a
    # worker that is "idle" again has counted everything it served.
    workers = wait_for(lambda: (w := inst.stats()["workers"]) and
                       sum(x["exceptions"] for x in w) == 1 and
                       all(x["status"] == "idle" for x in w) and w, 10,
                       "the exception counted and both workers idle")
    pids = {w["pid"] for w in workers}
    assert len(pids) == 2 and all(w["vsz"] >= w["rss"] > 0 for w in workers)
    assert sum(w["tx"] for w in workers) > 5 * len(b"Hello World")
    assert all(w["last_spawn"] >= inst.stats()["started"] - 1 for w in workers)
    top = Top(inst.stats_path)
    try:
        rows = top.wait_screen(lambda lines: (r := worker_rows(lines)) and set(r) == pids and r,
                               20, f"worker rows for pids {sorted(pids)}")
        for w in workers:
            row = rows[w["pid"]]
            # WID % PID REQ RPS EXC SIG STATUS AVG RSS VSZ TX ReSpwn HC RunT LastSpwn
            assert row[0] == str(w["id"]) and row[3] == str(w["requests"]), row
            assert row[5] == str(w["exceptions"]) and row[7] == "idle", row
            assert row[12] == str(w["respawn_count"]) and row[13] == "0", row
            assert re.fullmatch(r"\d\d:\d\d:\d\d", row[15]), row
        assert sorted(r[5] for r in rows.values()) == ["0", "1"], "EXC = 1 for one worker"
        assert any(line.startswith("uwsgi-") and f"req: {sum(w['requests'] for w in workers)}"
                   in line for line in top.screen.lines()), top.text()
        assert top.quit() == 0
        assert b"Traceback" not in top.raw, top.text()
    finally:
        top.close()


def test_uwsgitop_shows_the_vassals_of_an_emperor(nsuwsgi, sockdir, vassals, tmp_path):
    app = app_file(tmp_path)
    for name in ("alpha", "bravo"):
        (vassals / f"{name}.ini").write_text(
            f"[uwsgi]\nhttp-socket = {sockdir / name}.sock\nwsgi-file = {app}\n")
    emperor = Emperor(nsuwsgi, sockdir, vassals)
    pids = {name: emperor.wait_ready(f"{name}.ini")["pid"] for name in ("alpha", "bravo")}
    assert emperor.stats()["workers"] == []
    top = Top(emperor.stats_path)
    try:
        def shown(lines):
            table = [line.split() for line in lines]
            return all([f"{name}.ini", str(pid)] in table for name, pid in pids.items())
        top.wait_screen(shown, 20, f"the vassals {pids}")
        assert any("emperor:" in line and "tyrant: 0" in line
                   for line in top.screen.lines()), top.text()
        assert top.quit() == 0
        assert b"Traceback" not in top.raw, top.text()
    finally:
        top.close()
    assert emperor.stop() == 0
