"""The jail plan as data: this config gives these ops, in this order. No root needed."""

from __future__ import annotations

import os

import pytest

from nsuwsgi import linux
from nsuwsgi.errors import Origin
from nsuwsgi.jail import plan as p
from nsuwsgi.jail.hooks import parse_hook
from nsuwsgi.options import Entry, build_config, jail_spec
from nsuwsgi.spec import JailSpec, KeepMount

NS = linux.CLONE_NEWPID | linux.CLONE_NEWNS | linux.CLONE_NEWUTS | linux.CLONE_NEWIPC


def steps(jail_plan):
    return [(type(op).__name__, op.detail) for op in jail_plan.init_ops], \
           [(type(op).__name__, op.detail) for op in jail_plan.payload_ops]


def test_the_seed_dropbear_jail():
    spec = JailSpec(namespaces=NS, rootfs="/ns/001/", hostname="testns",
                    keep_mounts=(KeepMount("/dev/pts", "/dev/pts"),),
                    hooks=(parse_hook("exec:chown -R www-data /etc/dropbear", "as-root"),))
    result = p.plan(spec)
    assert result.new_pid_namespace
    init, payload = steps(result)
    assert init == [
        ("Unshare", "mount,uts,ipc"),
        ("MakeRootPrivate", "/"),
        ("BindMount", "/ns/001->/ns/001"),
        ("BindMount", "/dev/pts->/ns/001/dev/pts"),
        ("PivotInto", "/ns/001"),
        ("MountProc", "/proc"),
        *[("ReadOnlyRebind", path) for path in p.PROC_READ_ONLY],
        *[("MaskPath", path) for path in p.PROC_MASKED],
        ("SetHostname", "testns"),
    ]
    assert [name for name, _ in payload] == ["RunHooks", "DropBoundingSet", "SetCapabilities",
                                            "NoNewPrivs", "DenyKeyrings"]
    assert result.payload_ops[1].keep == p.ROOT_DEFAULT_CAPS
    assert result.init_caps == frozenset({p.CAP_KILL})


def test_uid_drop_with_kept_caps_orders_bounding_before_setuid():
    spec = JailSpec(namespaces=NS, rootfs="/r", uid=65534, gid=65534, groups=(65534,),
                    caps=frozenset({10}))
    _, payload = steps(p.plan(spec))
    assert [name for name, _ in payload] == ["DropBoundingSet", "SwitchUser", "SetCapabilities",
                                            "NoNewPrivs", "DenyKeyrings"]
    switch = p.plan(spec).payload_ops[1]
    assert (switch.uid, switch.gid, switch.groups, switch.keep_caps) == \
        (65534, 65534, (65534,), True)
    caps = p.plan(spec).payload_ops[2]
    assert caps.keep == {10} and caps.ambient, "a uid payload keeps caps across exec: ambient"


def test_a_uid_payload_without_cap_keeps_nothing():
    result = p.plan(JailSpec(namespaces=NS, rootfs="/r", uid=1000, gid=1000))
    assert result.payload_ops[0].keep == frozenset()
    switch = result.payload_ops[1]
    assert switch.keep_caps is False


def test_network_namespace_brings_lo_up_and_hooks_run_last_in_init():
    spec = JailSpec(namespaces=NS | linux.CLONE_NEWNET, rootfs="/r",
                    hooks=(parse_hook("mkdir:/tmp/x", "in-jail"),
                           parse_hook("print:hello", "as-user")))
    init, payload = steps(p.plan(spec))
    assert init[0] == ("Unshare", "mount,uts,ipc,net")
    assert [n for n, _ in init[-2:]] == ["LoopbackUp", "RunHooks"]
    assert payload[-1][0] == "RunHooks"
    assert p.plan(spec).payload_ops[-1].phase == "as-user"


def test_read_only_keep_mount_and_rootfs_slash():
    spec = JailSpec(namespaces=NS, rootfs="/",
                    keep_mounts=(KeepMount("/usr", "/usr", readonly=True),))
    init, _ = steps(p.plan(spec))
    assert ("BindMount", "/usr->/usr:ro") in init
    assert not any(name in ("PivotInto",) for name, _ in init), "rootfs / needs no pivot"


def test_unshare_chroot_and_pivot_root_without_a_pid_namespace():
    spec = JailSpec(namespaces=linux.CLONE_NEWNS | linux.CLONE_NEWUTS, chroot="/srv/c",
                    unshare_after=linux.CLONE_NEWIPC)
    result = p.plan(spec)
    assert not result.new_pid_namespace
    init, _ = steps(result)
    assert init == [("Unshare", "mount,uts"), ("MakeRootPrivate", "/"), ("Chroot", "/srv/c"),
                    ("Unshare", "ipc")]
    explicit = p.plan(JailSpec(namespaces=linux.CLONE_NEWNS, pivot_root=("/ns", "/ns/.old")))
    assert steps(explicit)[0][-1] == ("PivotRootKeepOld", "/ns /ns/.old")


def test_every_op_has_an_applier():
    from nsuwsgi.jail.apply import APPLY
    ops = [c for c in vars(p).values() if isinstance(c, type) and issubclass(c, p.Op)
           and c is not p.Op]
    assert set(ops) == set(APPLY)


def at(line):
    return Origin("app.ini", line)


@pytest.mark.skipif(os.geteuid() != 0, reason="building a jail spec validates as root")
def test_config_to_spec(tmp_path):
    root = tmp_path / "root"
    for sub in ("proc", "dev", "dev/pts", "usr"):
        (root / sub).mkdir(parents=True)
    entries = [Entry(k, v, at(i + 1)) for i, (k, v) in enumerate([
        ("namespace", f"{root}:tenant"),
        ("namespace-keep-mount", "/dev/pts"),
        ("namespace-keep-mount", "/usr:/usr:ro"),
        ("namespace-net", "1"),
        ("uid", "nobody"),
        ("cap", "net_bind_service"),
        ("hook-in-jail", "mkdir:/tmp/x"),
        ("hook-pre-jail", "print:outside"),
    ])]
    spec = jail_spec(build_config(entries))
    assert spec.rootfs == str(root) and spec.hostname == "tenant"
    assert spec.namespaces == NS | linux.CLONE_NEWNET
    assert spec.keep_mounts == (KeepMount("/dev/pts", "/dev/pts"),
                                KeepMount("/usr", "/usr", readonly=True))
    assert spec.uid == 65534 and spec.caps == {10}
    assert [h.phase for h in spec.hooks] == ["in-jail"], "pre-jail hooks run in the keeper"


def test_no_isolation_option_means_no_jail():
    assert jail_spec(build_config([Entry("attach-daemon", "sleep 1", at(1))])) is None


def test_plan_describe_lists_every_op():
    lines = p.plan(JailSpec(namespaces=NS, rootfs="/r", hostname="h")).describe()
    assert lines[0] == "init: unshare mount,uts,ipc"
    assert "init: sethostname h" in lines
    assert lines[-1] == "payload: seccomp"
