"""Run a jail plan's ops in the child: one small loop, one function per op type.

Any failure raises JailError carrying `stage:errno:detail`, which the spawn primitive sends to
the parent through its error pipe, so the user reads `pivot_root:EINVAL:/srv/jail` instead of
a child that silently exited 1.
"""

from __future__ import annotations

import errno
import os

from nsuwsgi import linux
from nsuwsgi.linux import syscalls
from nsuwsgi.errors import JailError
from nsuwsgi.jail import hooks
from nsuwsgi.jail import plan as p


def run_ops(ops, log=None) -> None:
    for op in ops:
        try:
            APPLY[type(op)](op, log)
        except JailError:
            raise
        except OSError as exc:
            raise JailError(op.stage, exc.errno or 0, op.detail) from None


def _unshare(op: p.Unshare, log) -> None:
    syscalls.unshare(op.flags)


def _make_private(op, log) -> None:
    syscalls.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)


def _bind(op: p.BindMount, log) -> None:
    if not os.path.exists(op.target):
        raise JailError("bind_mount", errno.ENOENT, f"{op.target} (missing in the rootfs)")
    syscalls.mount(op.source, op.target, None, linux.MS_BIND | linux.MS_REC)
    if op.readonly:
        syscalls.mount(None, op.target, None,
                    linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY | linux.MS_NOSUID)


def _pivot_into(op: p.PivotInto, log) -> None:
    os.chdir(op.root)
    syscalls.pivot_root(".", ".")
    syscalls.umount2(".", linux.MNT_DETACH)
    os.chdir("/")


def _pivot_keep_old(op: p.PivotRootKeepOld, log) -> None:
    syscalls.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    # pivot_root needs NEW_ROOT to be a mount point; uWSGI leaves that to a hook that would
    # run on the host. Bind it onto itself here, inside the jail's own mount namespace.
    syscalls.mount(op.new_root, op.new_root, None, linux.MS_BIND | linux.MS_REC)
    os.chdir(op.new_root)
    relative = os.path.relpath(op.put_old, op.new_root)
    syscalls.pivot_root(".", relative)
    os.chdir("/")


def _chroot(op: p.Chroot, log) -> None:
    os.chroot(op.path)
    os.chdir("/")            # uWSGI leaves the cwd outside the chroot; we do not


def _mount_proc(op, log) -> None:
    syscalls.mount("proc", "/proc", "proc", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)


def _read_only(op: p.ReadOnlyRebind, log) -> None:
    if not os.path.exists(op.path):
        return
    syscalls.mount(op.path, op.path, None, linux.MS_BIND | linux.MS_REC)
    syscalls.mount(None, op.path, None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY |
                linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)


def _mask(op: p.MaskPath, log) -> None:
    if not os.path.exists(op.path):
        return
    if os.path.isdir(op.path):
        syscalls.mount("tmpfs", op.path, "tmpfs", linux.MS_RDONLY | linux.MS_NOSUID |
                    linux.MS_NODEV | linux.MS_NOEXEC, "size=0")
        return
    if not os.path.exists("/dev/null"):
        raise JailError("mask", errno.ENOENT, f"{op.path} (the rootfs has no /dev/null)")
    syscalls.mount("/dev/null", op.path, None, linux.MS_BIND)


def _hostname(op: p.SetHostname, log) -> None:
    syscalls.sethostname(op.name)


def _loopback_up(op, log) -> None:
    linux.interface_up("lo")


def _run_hooks(op: p.RunHooks, log) -> None:
    try:
        hooks.run_phase(list(op.hooks), op.phase, log or _stderr)
    except hooks.HookError as exc:
        raise JailError(op.stage, getattr(exc, "errno", 0) or 0, str(exc)) from None


def _drop_bounding(op: p.DropBoundingSet, log) -> None:
    if os.geteuid() != 0:
        return              # an unprivileged process cannot gain them back anyway (nnp)
    linux.drop_bounding_set(op.keep)
    syscalls.clear_ambient()


def _switch_user(op: p.SwitchUser, log) -> None:
    if op.keep_caps:
        linux.set_keepcaps(True)
    if op.groups is not None:
        os.setgroups(list(op.groups))
    elif op.gid is not None:
        os.setgroups([op.gid])
    if op.gid is not None:
        os.setgid(op.gid)
    if op.uid is not None:
        os.setuid(op.uid)
    if op.keep_caps:
        linux.set_keepcaps(False)


def _set_caps(op: p.SetCapabilities, log) -> None:
    syscalls.set_capabilities(op.keep, op.ambient)


def _no_new_privs(op, log) -> None:
    linux.set_no_new_privs()


def _deny_keyrings(op, log) -> None:
    syscalls.deny_keyring_syscalls()


def _stderr(message: str) -> None:
    os.write(2, (message + "\n").encode(errors="replace"))


APPLY = {
    p.Unshare: _unshare,
    p.MakeRootPrivate: _make_private,
    p.BindMount: _bind,
    p.PivotInto: _pivot_into,
    p.PivotRootKeepOld: _pivot_keep_old,
    p.Chroot: _chroot,
    p.MountProc: _mount_proc,
    p.ReadOnlyRebind: _read_only,
    p.MaskPath: _mask,
    p.SetHostname: _hostname,
    p.LoopbackUp: _loopback_up,
    p.RunHooks: _run_hooks,
    p.DropBoundingSet: _drop_bounding,
    p.SwitchUser: _switch_user,
    p.SetCapabilities: _set_caps,
    p.NoNewPrivs: _no_new_privs,
    p.DenyKeyrings: _deny_keyrings,
}
