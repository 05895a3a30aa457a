"""mount, umount and hostname hook actions, for real, without touching the host.

Each test runs its hooks in a child started with `unshare -m --propagation private` (plus `-u`
for hostname), so every mount and the hostname live in a namespace that dies with the child.
The child reports what it saw as JSON on stdout; the test asserts on that and then checks that
the host's mount table is exactly what it was before.
"""

from __future__ import annotations

import json
import socket
import subprocess
import textwrap

import pytest

from support import PYTHON, ROOT

PRELUDE = """
import json, os, sys
from nsuwsgi.jail.hooks import HookError, parse_hook, run_hook

def hook(text):
    run_hook(parse_hook(text, "as-root"), print)

def mounts():
    with open("/proc/self/mounts") as f:
        return [line.split()[:4] for line in f]

def mounted(path):
    return [m for m in mounts() if m[1] == path]

def under(path):
    return [m[1] for m in mounts() if m[1] == path or m[1].startswith(path + "/")]

def writable(path):
    try:
        with open(os.path.join(path, "probe"), "w") as f:
            f.write("x")
        return True
    except OSError as exc:
        return exc.strerror

report = {}
"""


def host_mounts() -> str:
    """The host's mount table, minus /run/netns entries that parallel tests add and remove."""
    with open("/proc/self/mounts") as f:
        return "".join(line for line in f if " /run/netns" not in line)


@pytest.fixture
def host_unchanged():
    """The host's mount table after the test is the one before it."""
    before = host_mounts()
    yield
    assert host_mounts() == before, "a hook changed the host's mount table"


def in_namespace(code: str, *unshare: str) -> dict:
    """Run PRELUDE + code as root in a private mount namespace; return its `report`."""
    script = PRELUDE + textwrap.dedent(code) + "\nprint(json.dumps(report))\n"
    done = subprocess.run(["unshare", "-m", "--propagation", "private", *unshare,
                           PYTHON, "-c", script], capture_output=True, text=True, cwd=ROOT,
                          timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"child failed:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_mount_tmpfs_and_umount(tmp_path, host_unchanged):
    target = tmp_path / "t"
    target.mkdir()
    report = in_namespace(f"""
        hook("mount:tmpfs nsuwsgi-hook {target} nosuid,nodev size=1m,mode=0700")
        report["mounted"] = mounted("{target}")
        hook("write:{target}/inside x")
        hook("umount:{target}")
        report["after"] = mounted("{target}")
        report["file_gone"] = not os.path.exists("{target}/inside")
    """)
    [(source, point, fstype, options)] = report["mounted"]
    assert (source, point, fstype) == ("nsuwsgi-hook", str(target), "tmpfs")
    assert {"nosuid", "nodev", "size=1024k", "mode=700"} <= set(options.split(","))
    assert report["after"] == [] and report["file_gone"]
    assert list(target.iterdir()) == []


def test_a_read_only_bind_needs_bind_then_remount(tmp_path, host_unchanged):
    """The kernel ignores `ro` on the first bind; `remount,bind,ro` makes it read-only."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    report = in_namespace(f"""
        hook("mount:none {src} {dst} bind,ro")
        report["first"] = writable("{dst}")
        hook("mount:none none {dst} remount,bind,ro")
        report["options"] = mounted("{dst}")[-1][3].split(",")
        report["second"] = writable("{dst}")
        report["source"] = writable("{src}")
    """)
    assert report["first"] is True
    assert "ro" in report["options"]
    assert report["second"] == "Read-only file system"
    assert report["source"] is True
    assert (src / "probe").read_text() == "x"
    assert list(dst.iterdir()) == []      # the bind is gone with the namespace


@pytest.mark.parametrize("flags", ["rec", "rec,detach", "recursive,force"])
def test_umount_rec_unmounts_everything_below_first(tmp_path, host_unchanged, flags):
    top = tmp_path / "top"
    report = in_namespace(f"""
        os.makedirs("{top}")
        hook("mount:tmpfs none {top}")
        hook("mkdir:{top}/a")
        hook("mkdir:{top}/b")
        hook("mount:tmpfs none {top}/a")
        hook("mount:tmpfs none {top}/b")
        hook("mkdir:{top}/a/deep")
        hook("mount:tmpfs none {top}/a/deep")
        hook("mount:tmpfs none {top}/a/deep")        # stacked on the same point
        report["before"] = under("{top}")
        hook("umount:{top} {flags}")
        report["after"] = under("{top}")
    """)
    assert sorted(set(report["before"])) == [str(top), f"{top}/a", f"{top}/a/deep", f"{top}/b"]
    assert len(report["before"]) == 5
    assert report["after"] == []


def test_umount_rec_handles_covered_mounts_and_escaped_names(tmp_path, host_unchanged):
    """A mount hiding older ones below it, and a name /proc/self/mounts escapes (\\040)."""
    top = tmp_path / "top"
    report = in_namespace(f"""
        os.makedirs("{top}")
        hook("mount:tmpfs none {top}")
        os.makedirs("{top}/a/with space")
        hook("mount:tmpfs none {top}/a")
        os.makedirs("{top}/a/with space")
        from nsuwsgi.linux import syscalls           # hook syntax cannot name a space
        syscalls.mount("none", "{top}/a/with space", "tmpfs")
        hook("mount:tmpfs none {top}/a")           # covers the one with a child
        report["before"] = len(under("{top}"))
        hook("umount:{top} rec")
        report["after"] = under("{top}")
    """)
    assert report["before"] == 4
    assert report["after"] == []


def test_umount_without_rec_fails_on_a_busy_tree(tmp_path, host_unchanged):
    top = tmp_path / "top"
    report = in_namespace(f"""
        os.makedirs("{top}")
        hook("mount:tmpfs none {top}")
        hook("mkdir:{top}/a")
        hook("mount:tmpfs none {top}/a")
        try:
            hook("umount:{top}")
        except HookError as exc:
            report["error"] = str(exc)
        report["after"] = under("{top}")
    """)
    assert report["error"].startswith(f'hook-as-root "umount:{top}" failed: ')
    assert "EBUSY" in report["error"]
    assert report["after"] == [str(top), f"{top}/a"]


def test_propagation_flags(tmp_path, host_unchanged):
    target = tmp_path / "t"
    target.mkdir()
    report = in_namespace(f"""
        hook("mount:tmpfs none {target}")
        def optional_fields():
            with open("/proc/self/mountinfo") as f:
                for line in f:
                    fields = line.split()
                    if fields[4] == "{target}":
                        return fields[6:fields.index("-")]
        hook("mount:none none {target} shared")
        report["shared"] = optional_fields()
        hook("mount:none none {target} private")
        report["private"] = optional_fields()
    """)
    assert [f for f in report["shared"] if f.startswith("shared:")]
    assert report["private"] == []


def test_mount_errors_name_the_hook_and_the_os_error(tmp_path, host_unchanged):
    report = in_namespace(f"""
        try:
            hook("mount:tmpfs none {tmp_path}/missing")
        except HookError as exc:
            report["error"] = str(exc)
    """)
    assert report["error"] == (f'hook-as-root "mount:tmpfs none {tmp_path}/missing" failed: '
                               "No such file or directory (ENOENT)")


def test_hostname_in_a_uts_namespace(host_unchanged):
    host_name = socket.gethostname()
    report = in_namespace("""
        import socket
        hook("hostname:tenant-1")
        report["name"] = socket.gethostname()
    """, "-u")
    assert report["name"] == "tenant-1"
    assert socket.gethostname() == host_name
