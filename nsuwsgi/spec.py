"""Frozen records that carry decisions from the configuration to the code that acts on them.

The option table turns text into these once; nothing downstream re-parses a string. They are
plain data so that the state machine, the jail planner and the spawn primitive can be tested
without a config file, and so that a reload can compare old and new by equality. They are
`records.Frozen` classes, not dataclasses: every instance imports this module at start, and
dataclasses cost milliseconds there (see records.py).
"""

from __future__ import annotations

import signal
from collections.abc import Callable

from nsuwsgi.errors import COMMAND_LINE, Origin
from nsuwsgi.linux import CLONE_NEWPID
from nsuwsgi.records import Frozen, set_field

DUMB = "dumb"        # stays in the foreground; our child; stops with the master
SMART = "smart"      # daemonizes itself and writes a pidfile; survives the master
SMART2 = "smart2"    # nsuwsgi daemonizes it and writes the pidfile; survives the master


class DaemonDecl(Frozen):
    """One attach-daemon* option, as the user wrote it, typed."""

    __slots__ = ("command", "mode", "pidfile", "freq", "control", "stdin", "touch",
                 "stop_signal", "reload_signal", "uid", "gid", "ns_pid", "chdir",
                 "max_throttle", "notify_pid", "option", "origin")
    _not_compared = ("origin",)

    def __init__(self, command: str, mode: str = DUMB, pidfile: str | None = None,
                 freq: int = 10, control: bool = False, stdin: bool = False,
                 touch: tuple[str, ...] = (), stop_signal: int = int(signal.SIGTERM),
                 reload_signal: int = 0, uid: int | None = None, gid: int | None = None,
                 ns_pid: bool = False, chdir: str | None = None, max_throttle: int = 0,
                 notify_pid: bool = False, option: str = "attach-daemon",
                 origin: Origin = COMMAND_LINE):
        set_field(self, "command", command)
        set_field(self, "mode", mode)
        set_field(self, "pidfile", pidfile)
        set_field(self, "freq", freq)     # seconds for a pidfile to name a live process
        set_field(self, "control", control)       # the instance ends when this daemon ends
        set_field(self, "stdin", stdin)           # keep the master's fd 0 instead of /dev/null
        set_field(self, "touch", touch)           # files whose change restarts the daemon
        set_field(self, "stop_signal", stop_signal)
        set_field(self, "reload_signal", reload_signal)   # 0: a reload stops and respawns it
        set_field(self, "uid", uid)
        set_field(self, "gid", gid)
        set_field(self, "ns_pid", ns_pid)         # own PID namespace (the isolation layer)
        set_field(self, "chdir", chdir)
        set_field(self, "max_throttle", max_throttle)     # backoff cap in seconds, 0 = default
        set_field(self, "notify_pid", notify_pid)  # smart daemons get the stop/reload signal too
        set_field(self, "option", option)
        set_field(self, "origin", origin)

    @property
    def survives_master(self) -> bool:
        return self.mode != DUMB


class ProcessSpec(Frozen):
    """Everything the spawn primitive needs, computed before fork (DESIGN.md rule 2)."""

    __slots__ = ("argv", "executable", "env", "cwd", "uid", "gid", "groups", "stdin_devnull",
                 "stdin_fd", "stdout_fd", "stderr_fd", "pass_fds", "new_session", "pdeathsig",
                 "daemonize_pidfile", "umask", "jail", "run", "host_setup")
    _not_compared = ("run", "host_setup")

    def __init__(self, argv: tuple[str, ...], executable: str, env: tuple[str, ...],
                 cwd: str | None = None, uid: int | None = None, gid: int | None = None,
                 groups: tuple[int, ...] | None = None, stdin_devnull: bool = True,
                 stdin_fd: int | None = None, stdout_fd: int | None = None,
                 stderr_fd: int | None = None, pass_fds: tuple[int, ...] = (),
                 new_session: bool = True, pdeathsig: int = 0,
                 daemonize_pidfile: str | None = None, umask: int | None = None,
                 jail: object = None, run: Callable[[], int] | None = None,
                 host_setup: Callable[[int], None] | None = None):
        set_field(self, "argv", argv)
        set_field(self, "executable", executable)   # absolute path, resolved in the parent
        set_field(self, "env", env)                 # "KEY=value" strings
        set_field(self, "cwd", cwd)
        set_field(self, "uid", uid)
        set_field(self, "gid", gid)
        set_field(self, "groups", groups)       # None: leave supplementary groups alone
        set_field(self, "stdin_devnull", stdin_devnull)
        set_field(self, "stdin_fd", stdin_fd)   # this fd becomes fd 0 (wins over stdin_devnull)
        set_field(self, "stdout_fd", stdout_fd)     # None: inherit fd 1
        set_field(self, "stderr_fd", stderr_fd)     # None: inherit fd 2
        set_field(self, "pass_fds", pass_fds)
        set_field(self, "new_session", new_session)  # setsid(): its own group, killable as one
        set_field(self, "pdeathsig", pdeathsig)     # signal the child gets when the master dies
        set_field(self, "daemonize_pidfile", daemonize_pidfile)  # double-fork, pid here (smart2)
        set_field(self, "umask", umask)
        set_field(self, "jail", jail)   # a jail.plan.JailPlan, applied between fork and exec
        # `run` replaces exec: the jailed child calls it and exits with its result. Used for
        # the master itself when the whole instance lives in a jail (already-imported code).
        set_field(self, "run", run)
        # Called in the parent with the child's pid once the jail's namespaces exist, before
        # its payload starts (post-jail hooks, veth setup). The child waits for it.
        set_field(self, "host_setup", host_setup)


class KeepMount(Frozen):
    """A host path made visible inside the jail (`namespace-keep-mount = SRC[:DST][:ro]`)."""

    __slots__ = ("source", "target", "readonly")

    def __init__(self, source: str, target: str, readonly: bool = False):
        set_field(self, "source", source)
        set_field(self, "target", target)
        set_field(self, "readonly", readonly)


class JailSpec(Frozen):
    """What a jail should be; jail/plan.py turns it into the ordered ops that build it."""

    __slots__ = ("namespaces", "rootfs", "hostname", "keep_mounts", "chroot", "pivot_root",
                 "unshare_after", "uid", "gid", "groups", "caps", "no_new_privs", "hooks",
                 "loopback_up", "veth", "origin")
    _not_compared = ("origin",)

    def __init__(self, namespaces: int = 0, rootfs: str | None = None,
                 hostname: str | None = None, keep_mounts: tuple[KeepMount, ...] = (),
                 chroot: str | None = None, pivot_root: tuple[str, str] | None = None,
                 unshare_after: int = 0, uid: int | None = None, gid: int | None = None,
                 groups: tuple[int, ...] | None = None, caps: frozenset[int] = frozenset(),
                 no_new_privs: bool = True, hooks: tuple = (), loopback_up: bool = True,
                 veth: VethSpec | None = None, origin: Origin = COMMAND_LINE):
        set_field(self, "namespaces", namespaces)   # CLONE_NEW* flags (pid, mount, uts, ipc, net)
        set_field(self, "rootfs", rootfs)           # pivot into this directory (namespace=)
        set_field(self, "hostname", hostname)
        set_field(self, "keep_mounts", keep_mounts)
        set_field(self, "chroot", chroot)
        set_field(self, "pivot_root", pivot_root)   # uWSGI's explicit `pivot_root = NEW OLD`
        set_field(self, "unshare_after", unshare_after)     # unshare2: after chroot/pivot_root
        set_field(self, "uid", uid)
        set_field(self, "gid", gid)
        set_field(self, "groups", groups)
        set_field(self, "caps", caps)               # kept across the uid drop
        set_field(self, "no_new_privs", no_new_privs)
        set_field(self, "hooks", hooks)             # jail.hooks.Hook records, in config order
        set_field(self, "loopback_up", loopback_up)     # a new network namespace gets `lo` up
        set_field(self, "veth", veth)
        set_field(self, "origin", origin)

    @property
    def pid_namespace(self) -> bool:
        return bool(self.namespaces & CLONE_NEWPID)


class VethSpec(Frozen):
    """`namespace-net-veth`: a veth pair from a host bridge into the jail's network namespace."""

    __slots__ = ("bridge", "address", "gateway", "name")

    def __init__(self, bridge: str, address: str, gateway: str | None = None,
                 name: str = "eth0"):
        set_field(self, "bridge", bridge)
        set_field(self, "address", address)     # CIDR inside the jail, e.g. 10.200.0.2/24
        set_field(self, "gateway", gateway)
        set_field(self, "name", name)           # the interface name inside the jail
