"""The thin Linux layer: one small function per kernel facility, no policy, no logging.

Everything that talks to the kernel beyond what `os` offers portably lives in this package, so
the rest of nsuwsgi reads as policy and can be unit-tested with a fake. It is the only place
that imports ctypes and python-prctl, and it is split in two by cost:

  nsuwsgi.linux           (this module) what every instance needs: pidfds, /proc, the prctl
                          calls through python-prctl's C module `_prctl` (~0.3 ms), constants;
  nsuwsgi.linux.syscalls  what only jails, hooks and the file watcher need: ctypes calls into
                          libc (unshare, setns, mount, pivot_root, ambient capabilities,
                          seccomp). Importing ctypes and loading libc costs ~3 ms of every
                          cold start, so a plain instance never imports it; the modules that
                          use it import it at their top, and master.import_what_config_needs
                          imports those before any jail is entered (rule 7).

Python 3.11 lacks os.unshare/os.setns, hence ctypes.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import struct
import time

import _prctl


def file_state(path: str) -> tuple[int, int, int] | None:
    """(inode, mtime_ns, size) of a path, following symlinks; None if missing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def unlink_quietly(path: str) -> None:
    """Remove a file we created (pidfile, socket) if it is still there."""
    try:
        os.unlink(path)
    except OSError:
        pass


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
    _prctl.prctl(_prctl.PR_SET_PDEATHSIG, sig)


def set_process_title(title: str) -> None:
    """What ps and systemctl status show as this process's command line (within the space of
    the original one). A process forked without exec, such as a vassal from the fork-server,
    would otherwise show the command line of the process it was forked from."""
    _prctl.set_proctitle(title)


def set_child_subreaper(on: bool = True) -> None:
    _prctl.prctl(_prctl.PR_SET_CHILD_SUBREAPER, 1 if on else 0)


def set_no_new_privs() -> None:
    _prctl.prctl(_prctl.PR_SET_NO_NEW_PRIVS, 1)


def set_dumpable(on: bool) -> None:
    _prctl.prctl(_prctl.PR_SET_DUMPABLE, 1 if on else 0)


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


# ---- namespaces and mounts: the constants (the calls are in linux.syscalls)

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080
CLONE_FILES = 0x00000400
CLONE_FS = 0x00000200
CLONE_SYSVSEM = 0x00040000

# The names uWSGI's `unshare` option accepts (and their aliases).
UNSHARE_NAMES = {
    "ipc": CLONE_NEWIPC, "net": CLONE_NEWNET, "pid": CLONE_NEWPID,
    "ns": CLONE_NEWNS, "fs": CLONE_NEWNS, "mount": CLONE_NEWNS,
    "mnt": CLONE_NEWNS, "uts": CLONE_NEWUTS, "user": CLONE_NEWUSER,
    "cgroup": CLONE_NEWCGROUP, "sysvsem": CLONE_SYSVSEM,
    "files": CLONE_FILES,
}

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOATIME = 1024
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20

MNT_FORCE = 1
MNT_DETACH = 2

SYS_PIVOT_ROOT = 155        # x86_64
SYS_SETNS = 308

# ---- credentials and capabilities

def _read_last_cap() -> int:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())


LAST_CAP = _read_last_cap()     # read now: inside a chroot there may be no /proc


def last_cap() -> int:
    return LAST_CAP


def drop_bounding_set(keep: frozenset[int]) -> None:
    """Remove every capability not in `keep` from the bounding set (needs CAP_SETPCAP)."""
    for cap in range(last_cap() + 1):
        if cap not in keep:
            _prctl.prctl(_prctl.PR_CAPBSET_DROP, cap)


def set_keepcaps(on: bool) -> None:
    _prctl.prctl(_prctl.PR_SET_KEEPCAPS, 1 if on else 0)


def capability_number(name: str) -> int | None:
    """`net_bind_service`, `CAP_NET_BIND_SERVICE` or `10` -> 10; None if unknown."""
    word = name.strip()
    if word.isdigit():
        return int(word)
    attr = word.upper()
    if not attr.startswith("CAP_"):
        attr = "CAP_" + attr
    value = getattr(_prctl, attr, None)
    return value if isinstance(value, int) else None


# ---- network interfaces (ioctl: cheap enough to run inside a fresh network namespace)

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def interface_up(name: str) -> None:
    """Set an interface up (`lo` in a new network namespace) without pyroute2's import cost."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", name.encode(), 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14x", name.encode(), flags | IFF_UP))

