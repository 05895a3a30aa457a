"""JailSpec -> JailPlan: the jail as an ordered list of operations, pure data.

Modelled on bubblewrap's setup_newroot: instead of code that mounts things as it goes, the
plan lists every step (unshare, make / private, bind the rootfs, keep-mounts, pivot, /proc,
hostname, hooks, privilege drop...). The plan is computed before fork, can be printed, and is
unit-tested without root: "this config gives these ops, in this order". apply.py then runs it
in the child with one small loop, and a failure names the op (`pivot_root:EINVAL:/srv/jail`).

Two lists, because a PID namespace needs a real PID 1:
  init_ops     run in the jail's first process (PID 1 when there is a PID namespace): new
               namespaces, mounts, hostname, network, in-jail hooks. It then forks the payload
               and stays behind as init (jail/init.py), reaping orphans and relaying signals.
  payload_ops  run in the process that becomes the payload: as-root hooks, the bounding set,
               uid/gid/groups, capabilities, no_new_privs, as-user hooks.
Without a PID namespace both lists run in the same child, one after the other.

Secure defaults, all unconditional: the new mount tree is private (nothing propagates to the
host; uWSGI instead remounts the *host's* / private), /proc/sys and friends are read-only,
no_new_privs is set, the bounding set and ambient set are cut to the kept capabilities.
"""

from __future__ import annotations

import os

from nsuwsgi import linux
from nsuwsgi.records import Frozen, set_field
from nsuwsgi.spec import JailSpec

# Capabilities a payload that stays uid 0 keeps unless `cap` says otherwise: enough to run
# daemons that switch users (dropbear, memcached -u) and bind low ports; none of the ones that
# reach past the jail (SYS_ADMIN, NET_ADMIN, SYS_PTRACE, SYS_MODULE, MKNOD, NET_RAW ...).
ROOT_DEFAULT_CAPS = frozenset({
    0,   # CAP_CHOWN
    1,   # CAP_DAC_OVERRIDE
    3,   # CAP_FOWNER
    4,   # CAP_FSETID
    5,   # CAP_KILL
    6,   # CAP_SETGID
    7,   # CAP_SETUID
    8,   # CAP_SETPCAP
    10,  # CAP_NET_BIND_SERVICE
    18,  # CAP_SYS_CHROOT
})
CAP_KILL = 5

# Parts of /proc that reach the whole machine: read-only inside, as bubblewrap does.
PROC_READ_ONLY = ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus")
# Parts that leak the host's state (key descriptions, kernel memory, timers): hidden behind
# /dev/null or an empty read-only tmpfs, as Docker's masked paths do.
PROC_MASKED = ("/proc/keys", "/proc/kcore", "/proc/timer_list", "/proc/sched_debug",
               "/proc/latency_stats", "/proc/acpi", "/proc/scsi", "/proc/asound")


class Op(Frozen):
    """One step. `stage` names it in error reports; `detail` is the path or value."""

    __slots__ = ()

    @property
    def stage(self) -> str:
        return type(self).__name__

    @property
    def detail(self) -> str:
        return ""


class Unshare(Op):
    __slots__ = ("flags",)

    def __init__(self, flags: int):
        set_field(self, "flags", flags)

    @property
    def stage(self):
        return "unshare"

    @property
    def detail(self):
        return unshare_names(self.flags)


class MakeRootPrivate(Op):
    __slots__ = ()

    @property
    def stage(self):
        return "make_private"

    @property
    def detail(self):
        return "/"


class BindMount(Op):
    __slots__ = ("source", "target", "readonly")

    def __init__(self, source: str, target: str, readonly: bool = False):
        set_field(self, "source", source)
        set_field(self, "target", target)
        set_field(self, "readonly", readonly)

    @property
    def stage(self):
        return "bind_mount"

    @property
    def detail(self):
        return f"{self.source}->{self.target}{':ro' if self.readonly else ''}"


class PivotInto(Op):
    """Make `root` the new /, detaching the old root entirely (pivot_root(".", ".") trick)."""

    __slots__ = ("root",)

    def __init__(self, root: str):
        set_field(self, "root", root)

    @property
    def stage(self):
        return "pivot_root"

    @property
    def detail(self):
        return self.root


class PivotRootKeepOld(Op):
    """uWSGI's explicit `pivot_root = NEW OLD`: the old root stays mounted at OLD."""

    __slots__ = ("new_root", "put_old")

    def __init__(self, new_root: str, put_old: str):
        set_field(self, "new_root", new_root)
        set_field(self, "put_old", put_old)

    @property
    def stage(self):
        return "pivot_root"

    @property
    def detail(self):
        return f"{self.new_root} {self.put_old}"


class Chroot(Op):
    __slots__ = ("path",)

    def __init__(self, path: str):
        set_field(self, "path", path)

    @property
    def stage(self):
        return "chroot"

    @property
    def detail(self):
        return self.path


class MountProc(Op):
    __slots__ = ()

    @property
    def stage(self):
        return "mount_proc"

    @property
    def detail(self):
        return "/proc"


class ReadOnlyRebind(Op):
    """Bind a path over itself read-only (skipped if it does not exist)."""

    __slots__ = ("path",)

    def __init__(self, path: str):
        set_field(self, "path", path)

    @property
    def stage(self):
        return "remount_ro"

    @property
    def detail(self):
        return self.path


class MaskPath(Op):
    """Hide a path: /dev/null over a file, an empty read-only tmpfs over a directory."""

    __slots__ = ("path",)

    def __init__(self, path: str):
        set_field(self, "path", path)

    @property
    def stage(self):
        return "mask"

    @property
    def detail(self):
        return self.path


class SetHostname(Op):
    __slots__ = ("name",)

    def __init__(self, name: str):
        set_field(self, "name", name)

    @property
    def stage(self):
        return "sethostname"

    @property
    def detail(self):
        return self.name


class LoopbackUp(Op):
    __slots__ = ()

    @property
    def stage(self):
        return "loopback_up"

    @property
    def detail(self):
        return "lo"


class RunHooks(Op):
    __slots__ = ("phase", "hooks")

    def __init__(self, phase: str, hooks: tuple):
        set_field(self, "phase", phase)
        set_field(self, "hooks", hooks)

    @property
    def stage(self):
        return f"hook-{self.phase}"


class DropBoundingSet(Op):
    __slots__ = ("keep",)

    def __init__(self, keep: frozenset):
        set_field(self, "keep", keep)

    @property
    def stage(self):
        return "capbset_drop"


class SwitchUser(Op):
    """setgroups, setgid, setuid; keeps the permitted set across setuid when caps are kept."""

    __slots__ = ("uid", "gid", "groups", "keep_caps")

    def __init__(self, uid: int | None, gid: int | None, groups: tuple[int, ...] | None,
                 keep_caps: bool):
        set_field(self, "uid", uid)
        set_field(self, "gid", gid)
        set_field(self, "groups", groups)
        set_field(self, "keep_caps", keep_caps)

    @property
    def stage(self):
        return "setuid" if self.uid is not None else "setgid"

    @property
    def detail(self):
        return f"uid={self.uid} gid={self.gid}"


class SetCapabilities(Op):
    __slots__ = ("keep", "ambient")

    def __init__(self, keep: frozenset, ambient: bool = False):
        set_field(self, "keep", keep)
        # a payload that left uid 0 keeps them across exec only so
        set_field(self, "ambient", ambient)

    @property
    def stage(self):
        return "capset"

    @property
    def detail(self):
        return ",".join(str(c) for c in sorted(self.keep)) or "none"


class NoNewPrivs(Op):
    __slots__ = ()

    @property
    def stage(self):
        return "no_new_privs"


class DenyKeyrings(Op):
    """Kernel keyrings are per uid, not per namespace: without this, root in the jail could
    read and write the host root's keys. A seccomp filter makes add_key/keyctl/request_key
    fail with EPERM, for every ABI (Docker's default profile does the same)."""

    __slots__ = ()

    @property
    def stage(self):
        return "seccomp"


class JailPlan(Frozen):
    __slots__ = ("new_pid_namespace", "init_ops", "payload_ops", "init_caps", "relay_to_group")

    def __init__(self, new_pid_namespace: bool, init_ops: tuple[Op, ...],
                 payload_ops: tuple[Op, ...], init_caps: frozenset = frozenset({CAP_KILL}),
                 relay_to_group: bool = True):
        set_field(self, "new_pid_namespace", new_pid_namespace)
        set_field(self, "init_ops", init_ops)
        set_field(self, "payload_ops", payload_ops)
        set_field(self, "init_caps", init_caps)         # what PID 1 keeps after forking
        # Relay signals to the payload's process group (a shell and its children: ns_pid), or
        # to the payload alone (the jailed master, whose workers must not get the keeper's
        # SIGTERM).
        set_field(self, "relay_to_group", relay_to_group)

    def describe(self) -> list[str]:
        """One line per op, for --show-config and the docs."""
        lines = []
        for where, ops in (("init", self.init_ops), ("payload", self.payload_ops)):
            for op in ops:
                lines.append(f"{where}: {op.stage} {op.detail}".rstrip())
        return lines


def unshare_names(flags: int) -> str:
    names = []
    for name in ("pid", "mount", "uts", "ipc", "net", "user", "cgroup", "sysvsem", "files"):
        if flags & linux.UNSHARE_NAMES[name]:
            names.append(name)
    return ",".join(names)


def kept_caps(spec: JailSpec) -> frozenset:
    if spec.caps:
        return spec.caps
    return frozenset() if spec.uid not in (None, 0) else ROOT_DEFAULT_CAPS


def plan(spec: JailSpec) -> JailPlan:
    """The ordered ops that build `spec`'s jail."""
    return JailPlan(new_pid_namespace=spec.pid_namespace,
                    init_ops=tuple(init_ops(spec)),
                    payload_ops=tuple(payload_ops(spec)))


def init_ops(spec: JailSpec) -> list[Op]:
    ops: list[Op] = []
    flags = spec.namespaces & ~linux.CLONE_NEWPID       # the parent unshares the PID ns
    if flags:
        ops.append(Unshare(flags))
    if spec.namespaces & linux.CLONE_NEWNS:
        ops.append(MakeRootPrivate())
    if spec.rootfs:
        ops += rootfs_ops(spec)
    if spec.chroot:
        ops.append(Chroot(spec.chroot))
    if spec.pivot_root:
        ops.append(PivotRootKeepOld(*spec.pivot_root))
    if spec.unshare_after:
        ops.append(Unshare(spec.unshare_after))
    if spec.hostname:
        ops.append(SetHostname(spec.hostname))
    if spec.namespaces & linux.CLONE_NEWNET and spec.loopback_up:
        ops.append(LoopbackUp())
    hooks = phase_hooks(spec, "in-jail")
    if hooks:
        ops.append(RunHooks("in-jail", hooks))
    return ops


def rootfs_ops(spec: JailSpec) -> list[Op]:
    """bind the rootfs (pivot_root needs a mount point), keep-mounts, pivot, fresh /proc."""
    root = spec.rootfs.rstrip("/") or "/"
    ops: list[Op] = []
    if root != "/":
        ops.append(BindMount(root, root))
    for keep in spec.keep_mounts:
        ops.append(BindMount(keep.source, join_under(root, keep.target), keep.readonly))
    if root != "/":
        ops.append(PivotInto(root))
    if spec.pid_namespace:
        ops.append(MountProc())
        ops += [ReadOnlyRebind(path) for path in PROC_READ_ONLY]
        ops += [MaskPath(path) for path in PROC_MASKED]
    return ops


def payload_ops(spec: JailSpec) -> list[Op]:
    keep = kept_caps(spec)
    ops: list[Op] = []
    hooks = phase_hooks(spec, "as-root")
    if hooks:
        ops.append(RunHooks("as-root", hooks))
    ops.append(DropBoundingSet(keep))
    if spec.uid is not None or spec.gid is not None:
        ops.append(SwitchUser(spec.uid, spec.gid, spec.groups, keep_caps=bool(keep)))
    ops.append(SetCapabilities(keep, ambient=bool(keep) and spec.uid not in (None, 0)))
    if spec.no_new_privs:
        ops.append(NoNewPrivs())
        ops.append(DenyKeyrings())
    hooks = phase_hooks(spec, "as-user")
    if hooks:
        ops.append(RunHooks("as-user", hooks))
    return ops


def phase_hooks(spec: JailSpec, phase: str) -> tuple:
    return tuple(h for h in spec.hooks if h.phase == phase)


def join_under(root: str, path: str) -> str:
    """`path` (absolute, as seen inside the jail) as a host path under `root`."""
    return os.path.normpath(os.path.join(root, path.lstrip("/")))
