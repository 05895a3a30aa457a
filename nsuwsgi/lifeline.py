"""The lifeline: kills every dumb daemon's process group if the master dies, even by SIGKILL.

PDEATHSIG only reaches the master's direct child. When a daemon needs a shell, or forks helpers
of its own, the rest of its process group would outlive a SIGKILLed master: that is how uWSGI
leaves orphans. The lifeline is a tiny process forked from the master (before it has any
tenant state) that blocks reading a pipe. The master writes `+PGID` and `-PGID` lines as dumb
daemons start and end. When the master dies, however it dies, the kernel closes the pipe; the
lifeline reads EOF, SIGKILLs every group still listed, and exits. It ignores terminal signals so
a Ctrl-C cannot end it before the master.

It is started lazily, only when a dumb daemon exists, so an instance without daemons pays
nothing. It is forked through the spawn primitive, like every other process (a `run`
payload: signals reset, fds closed but the pipe's, no PDEATHSIG: it must outlive the master),
in a session of its own, so no terminal or process-group signal reaches it.
"""

from __future__ import annotations

import os
import signal
import time

from nsuwsgi.spawn import spawn
from nsuwsgi.spec import ProcessSpec


class Lifeline:
    def __init__(self):
        self.pid: int | None = None
        self.pidfd: int | None = None
        self._write_fd: int | None = None
        self.groups: set[int] = set()

    def add(self, pgid: int) -> None:
        self.start()
        self.groups.add(pgid)
        self._send(f"+{pgid}\n")

    def remove(self, pgid: int) -> None:
        if pgid in self.groups:
            self.groups.discard(pgid)
            self._send(f"-{pgid}\n")

    def _send(self, line: str) -> None:
        if self._write_fd is not None:
            try:
                os.write(self._write_fd, line.encode())
            except OSError:
                pass

    def start(self) -> None:
        if self.pid is not None:
            return
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        spec = ProcessSpec(argv=("nsuwsgi-lifeline",), executable="", env=(),
                           stdin_devnull=True, pass_fds=(read_fd,),
                           run=lambda: _run_lifeline(read_fd))
        try:
            child = spawn(spec, time.monotonic())
        except BaseException:
            os.close(write_fd)
            raise
        finally:
            os.close(read_fd)
        self.pid, self.pidfd, self._write_fd = child.pid, child.pidfd, write_fd

    def close(self) -> None:
        """A clean master exit: the lifeline sees EOF with no groups left and exits."""
        if self._write_fd is not None:
            os.close(self._write_fd)
            self._write_fd = None
        if self.pid is not None:
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
            os.close(self.pidfd)
            self.pid = self.pidfd = None


def _run_lifeline(read_fd: int) -> int:
    """The lifeline's whole life (the spawn primitive's child ends with os._exit)."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                signal.SIGTSTP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)
    signal.set_wakeup_fd(-1)            # the master's loop's fd number is closed here
    groups: set[int] = set()
    pending = b""
    while True:
        chunk = os.read(read_fd, 4096)
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line[:1] == b"+":
                groups.add(int(line[1:]))
            elif line[:1] == b"-":
                groups.discard(int(line[1:]))
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass
    return 0
