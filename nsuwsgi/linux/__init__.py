"""The thin Linux layer: one small function per kernel facility, no policy, no logging.

Everything that talks to the kernel beyond what `os` offers portably lives here, so the rest of
nsuwsgi reads as policy and can be unit-tested with a fake. This is the only module that
imports ctypes and python-prctl. Python 3.11 lacks os.unshare/os.setns, hence ctypes.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import socket
import struct
import time

import _prctl
import prctl

# By soname: find_library() runs ldconfig (or, in a rootfs without it, gcc) to find it.
_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def libc() -> ctypes.CDLL:
    """The C library handle, for other libraries that would look it up again themselves."""
    return _libc


def _check(result: int) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


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
    prctl.set_pdeathsig(sig)


def set_child_subreaper(on: bool = True) -> None:
    prctl.set_child_subreaper(1 if on else 0)


def set_no_new_privs() -> None:
    prctl.set_no_new_privs(1)


def set_dumpable(on: bool) -> None:
    prctl.set_dumpable(1 if on else 0)


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


# ---- namespaces and mounts (ctypes: Python 3.11 has no os.unshare/os.setns)

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

_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


def _b(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags))


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.syscall(SYS_SETNS, fd, nstype))


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)))


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), flags))


def pivot_root(new_root: str, put_old: str) -> None:
    _check(_libc.syscall(SYS_PIVOT_ROOT, _b(new_root), _b(put_old)))


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)))


# ---- credentials and capabilities

PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]


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
            prctl.capbset_drop(cap)


def clear_ambient() -> None:
    _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0))


def set_keepcaps(on: bool) -> None:
    prctl.set_keepcaps(on)


PR_CAP_AMBIENT_RAISE = 2
EVERY_CAP = tuple(range(LAST_CAP + 1))


def set_capabilities(keep: frozenset[int], ambient: bool = False) -> None:
    """Effective, permitted and inheritable = `keep` in one capset(); with `ambient`, ambient too.

    After setuid the kernel clears the effective set even with KEEPCAPS, so the kept ones are
    raised again from the permitted set. A non-root process loses its capabilities on exec
    unless they are ambient, hence `ambient` for a payload that drops to a uid and execs.
    """
    kept = sorted(keep)
    dropped = [cap for cap in EVERY_CAP if cap not in keep]
    _prctl.set_caps(kept, kept, kept, dropped, dropped, dropped)
    if ambient:
        for cap in keep:
            _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0))


def capability_number(name: str) -> int | None:
    """`net_bind_service`, `CAP_NET_BIND_SERVICE` or `10` -> 10; None if unknown."""
    word = name.strip()
    if word.isdigit():
        return int(word)
    attr = word.upper()
    if not attr.startswith("CAP_"):
        attr = "CAP_" + attr
    value = getattr(prctl, attr, None)
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


# ---- seccomp: refuse a few system calls with EPERM

PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003
AUDIT_ARCH_AARCH64 = 0xC00000B7
X32_SYSCALL_BIT = 0x40000000

# add_key, request_key, keyctl for each ABI a process on this machine can call through.
KEYRING_SYSCALLS = {
    AUDIT_ARCH_X86_64: (248, 249, 250),
    AUDIT_ARCH_I386: (286, 287, 288),
    AUDIT_ARCH_AARCH64: (217, 218, 219),
}

BPF_LD_W_ABS = 0x20
BPF_JEQ_K = 0x15
BPF_ALU_AND_K = 0x54
BPF_RET_K = 0x06


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def keyring_filter(syscalls: dict[int, tuple[int, ...]]) -> list[tuple[int, int, int, int]]:
    """A classic-BPF program: EPERM for the listed syscalls of each architecture."""
    deny = ("ret", SECCOMP_RET_ERRNO | 1)           # EPERM
    program: list = []
    for arch, numbers in syscalls.items():
        body = [(BPF_LD_W_ABS, 0, 0, 0)]            # seccomp_data.nr
        if arch == AUDIT_ARCH_X86_64:
            body.append((BPF_ALU_AND_K, 0, 0, 0xFFFFFFFF & ~X32_SYSCALL_BIT))
        for i, number in enumerate(numbers):
            remaining = len(numbers) - i - 1
            body.append((BPF_JEQ_K, remaining + 1, 0, number))     # to the EPERM below
        body.append((BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW))
        body.append((BPF_RET_K, 0, 0, deny[1]))
        program.append((BPF_LD_W_ABS, 0, 0, 4))     # seccomp_data.arch
        program.append((BPF_JEQ_K, 0, len(body), arch))
        program.extend(body)
    program.append((BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW))
    return program


def _compile(program) -> _SockFprog:
    array = (_SockFilter * len(program))(*[_SockFilter(*ins) for ins in program])
    return _SockFprog(len(program), array)


# Built once at import: the forked child only makes the system call.
_KEYRING_FPROG = _compile(keyring_filter(KEYRING_SYSCALLS))
_prctl_pointer = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p,
                                  ctypes.c_ulong, ctypes.c_ulong, use_errno=True)(
                                      ("prctl", _libc))


def deny_keyring_syscalls() -> None:
    """Kernel keyrings are not namespaced: keep jailed processes away from root's (needs nnp)."""
    _check(_prctl_pointer(PR_SET_SECCOMP, SECCOMP_MODE_FILTER,
                          ctypes.addressof(_KEYRING_FPROG), 0, 0))
