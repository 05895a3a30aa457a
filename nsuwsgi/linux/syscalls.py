"""The ctypes half of the Linux layer: libc calls Python 3.11's `os` does not offer.

Only jails, hooks and the file watcher need these, so a plain instance never imports this
module (ctypes and libc cost ~3 ms of a cold start; see nsuwsgi/linux/__init__.py). Whoever
uses it imports it at module level, and those modules are imported before any jail is entered
(master.import_what_config_needs, spawn._load_jail_code): inside a jail the package may be
out of reach.
"""

from __future__ import annotations

import ctypes
import os

import _prctl

from nsuwsgi.linux import LAST_CAP, SYS_PIVOT_ROOT, SYS_SETNS

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


# ---- namespaces and mounts

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


# ---- inotify (file watching: nsuwsgi.watch)

_libc.inotify_init1.argtypes = [ctypes.c_int]
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
_libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]


def inotify_init1(flags: int) -> int:
    return _check(_libc.inotify_init1(flags))


def inotify_add_watch(fd: int, path: str, mask: int) -> int:
    return _check(_libc.inotify_add_watch(fd, os.fsencode(path), mask))


def inotify_rm_watch(fd: int, wd: int) -> None:
    _check(_libc.inotify_rm_watch(fd, wd))


# ---- ambient capabilities (the rest of the capability calls are in nsuwsgi.linux)

PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]


def clear_ambient() -> None:
    _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0))


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
