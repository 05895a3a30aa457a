"""The thin Linux layer: one small function per kernel facility, no policy, no logging.

Everything that talks to the kernel beyond what `os` offers portably lives here, so the rest of
nsuwsgi reads as policy and can be unit-tested with a fake. This is the only module that
imports ctypes and python-prctl. Python 3.11 lacks os.unshare/os.setns, hence ctypes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import time

import prctl

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check(result: int) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


# ---- process handles

def pidfd_open(pid: int) -> int:
    """A close-on-exec fd that becomes readable when `pid` exits (child or not)."""
    return os.pidfd_open(pid)


def pidfd_send_signal(pidfd: int, sig: int) -> None:
    """Signal through a pidfd: immune to pid reuse."""
    signal.pidfd_send_signal(pidfd, sig)


def reap_pidfd(pidfd: int) -> int | None:
    """Reap a child through its pidfd. Returns a wait status, or None if not ours/not dead."""
    try:
        result = os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)
    except ChildProcessError:
        return None
    if result is None:
        return None
    if result.si_code == os.CLD_EXITED:
        return result.si_status << 8
    return result.si_status & 0x7F


# ---- prctl

def set_pdeathsig(sig: int) -> None:
    prctl.set_pdeathsig(sig)


def set_child_subreaper(on: bool = True) -> None:
    prctl.set_child_subreaper(1 if on else 0)


def set_no_new_privs() -> None:
    prctl.set_no_new_privs(1)


# ---- /proc facts about other processes

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def boottime() -> float:
    """Seconds since boot: the clock /proc uses for process start times."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def wall_to_boottime(wall: float) -> float:
    """Convert a unix timestamp (a file's mtime) to seconds since boot."""
    return wall - (time.time() - boottime())


def proc_stat(pid: int) -> tuple[str, float] | None:
    """(state letter, start time in seconds since boot) of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name may contain spaces and parentheses: split after the last ')'.
    rest = data[data.rfind(b")") + 2:].split()
    state = rest[0].decode()
    start_ticks = int(rest[19])
    return state, start_ticks / CLOCK_TICKS


def proc_cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def proc_children(pid: int) -> list[int]:
    """Direct children of a process (from /proc/PID/task/*/children)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found.extend(int(p) for p in f.read().split())
        except FileNotFoundError:
            continue
    return found


def group_alive(pgid: int) -> bool:
    """True while a process group has a member that is not a zombie.

    kill(-pgid, 0) also succeeds for zombies, which a slow PID 1 may leave for seconds.
    """
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rfind(b")") + 2:].split()
        if int(rest[2]) == pgid and rest[0] not in (b"Z", b"X"):
            return True
    return False
