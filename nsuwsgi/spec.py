"""Frozen records that carry decisions from the configuration to the code that acts on them.

The option table turns text into these once; nothing downstream re-parses a string. They are
plain data so that the state machine, the jail planner and the spawn primitive can be tested
without a config file, and so that a reload can compare old and new by equality.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from collections.abc import Callable

from nsuwsgi.errors import COMMAND_LINE, Origin
from nsuwsgi.linux import CLONE_NEWPID

DUMB = "dumb"        # stays in the foreground; our child; stops with the master
SMART = "smart"      # daemonizes itself and writes a pidfile; survives the master
SMART2 = "smart2"    # nsuwsgi daemonizes it and writes the pidfile; survives the master


@dataclass(frozen=True)
class DaemonDecl:
    """One attach-daemon* option, as the user wrote it, typed."""

    command: str
    mode: str = DUMB
    pidfile: str | None = None
    freq: int = 10                      # seconds to wait for a pidfile to name a live process
    control: bool = False               # the instance ends when this daemon ends
    stdin: bool = False                 # keep the master's fd 0 instead of /dev/null
    touch: tuple[str, ...] = ()         # files whose change restarts the daemon
    stop_signal: int = int(signal.SIGTERM)
    reload_signal: int = 0              # 0: a reload stops and respawns the daemon
    uid: int | None = None
    gid: int | None = None
    ns_pid: bool = False                # own PID namespace (the isolation layer)
    chdir: str | None = None
    max_throttle: int = 0               # backoff cap in seconds, 0 = default
    notify_pid: bool = False            # smart daemons get the stop/reload signal too
    option: str = "attach-daemon"
    origin: Origin = field(default=COMMAND_LINE, compare=False)

    @property
    def survives_master(self) -> bool:
        return self.mode != DUMB


@dataclass(frozen=True)
class ProcessSpec:
    """Everything the spawn primitive needs, computed before fork (DESIGN.md rule 2)."""

    argv: tuple[str, ...]
    executable: str                     # absolute path, resolved in the parent
    env: tuple[str, ...]                # "KEY=value" strings
    cwd: str | None = None
    uid: int | None = None
    gid: int | None = None
    groups: tuple[int, ...] | None = None   # None: leave supplementary groups alone
    stdin_devnull: bool = True
    stdin_fd: int | None = None         # this fd becomes fd 0 (wins over stdin_devnull)
    stdout_fd: int | None = None        # None: inherit fd 1
    stderr_fd: int | None = None        # None: inherit fd 2
    pass_fds: tuple[int, ...] = ()
    new_session: bool = True            # setsid(): its own process group, killable as one
    pdeathsig: int = 0                  # signal the child gets when the master dies
    daemonize_pidfile: str | None = None    # double-fork, write grandchild pid here (smart2)
    umask: int | None = None
    jail: object = None                    # a jail.plan.JailPlan, applied between fork and exec
    run: Callable[[], int] | None = field(default=None, compare=False)
    # Called in the parent with the child's pid once the jail's namespaces exist, before its
    # payload starts (post-jail hooks, veth setup). The child waits for it.
    host_setup: Callable[[int], None] | None = field(default=None, compare=False)
    # `run` replaces exec: the jailed child calls it and exits with its result. Used for the
    # master itself when the whole instance lives in a jail (already-imported Python code).


@dataclass(frozen=True)
class KeepMount:
    """A host path made visible inside the jail (`namespace-keep-mount = SRC[:DST][:ro]`)."""

    source: str
    target: str
    readonly: bool = False


@dataclass(frozen=True)
class JailSpec:
    """What a jail should be; jail/plan.py turns it into the ordered ops that build it."""

    namespaces: int = 0                         # CLONE_NEW* flags (pid, mount, uts, ipc, net)
    rootfs: str | None = None                   # pivot into this directory (namespace=)
    hostname: str | None = None
    keep_mounts: tuple[KeepMount, ...] = ()
    chroot: str | None = None
    pivot_root: tuple[str, str] | None = None   # uWSGI's explicit `pivot_root = NEW OLD`
    unshare_after: int = 0                      # unshare2: after chroot/pivot_root
    uid: int | None = None
    gid: int | None = None
    groups: tuple[int, ...] | None = None
    caps: frozenset[int] = frozenset()          # kept across the uid drop
    no_new_privs: bool = True
    hooks: tuple = ()                           # jail.hooks.Hook records, in config order
    loopback_up: bool = True                    # a new network namespace gets `lo` up
    veth: "VethSpec | None" = None
    origin: Origin = field(default=COMMAND_LINE, compare=False)

    @property
    def pid_namespace(self) -> bool:
        return bool(self.namespaces & CLONE_NEWPID)


@dataclass(frozen=True)
class VethSpec:
    """`namespace-net-veth`: a veth pair from a host bridge into the jail's network namespace."""

    bridge: str
    address: str                    # CIDR inside the jail, e.g. 10.200.0.2/24
    gateway: str | None = None
    name: str = "eth0"              # the interface name inside the jail
