"""The negative battery: what a process inside an nsuwsgi jail can NOT do.

Every test builds its own busybox rootfs under tmp_path (with the host's /usr bound read-only
over its empty usr/, so /usr/bin/python3 is there), starts a real nsuwsgi instance jailed in it
(keeper on the host -> init, PID 1 -> master, PID 2 -> the probe as an attach-daemon), and lets
a small Python probe (`/usr/bin/python3 -I /probe.py`) try things from inside. The probe writes
what it saw as JSON to /tmp/result.json inside the rootfs (atomically: write, then rename) and
then execs `sleep`, so the jail stays as it was while the test looks at it from the host too.

A probe that crashes or never ran must not pass by accident. So every report carries positive
controls, checked by `Jail.result()` for every test: a random token the test put in the rootfs
(read back from /neg-token: the probe ran in *this* jail), the jail's hostname, the probe's
own pid, `done` (the whole probe body ran) and no `crash` (a traceback otherwise). Each test
adds its own: something it is allowed to do, done successfully, next to what it may not do.

Waits are bounded polls; every instance is stopped at the end and the `hygiene` fixture then
checks that nothing (no process, no fd) was left behind. Paths are per test, so the file runs
under pytest-xdist.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import json
import os
import pwd
import secrets
import shutil
import socket
import stat
import struct
import subprocess
import tempfile
import textwrap
from pathlib import Path

import pytest

from nsuwsgi import linux
from nsuwsgi.jail.plan import PROC_MASKED, PROC_READ_ONLY, ROOT_DEFAULT_CAPS
from nsuwsgi.rootfs import build_rootfs
from support import wait_for

NOBODY = pwd.getpwnam("nobody").pw_uid
CAP_NET_BIND_SERVICE = 10
# Mount points a jail built by `namespace = ROOT` + `/usr:/usr:ro` may have, and no other.
JAIL_MOUNTS = {"/", "/usr", "/proc", *PROC_READ_ONLY, *PROC_MASKED}
PYTHON_IN_JAIL = "/usr/bin/python3"

# ---------------------------------------------------------------------------- the probe

PRELUDE = r'''
import ctypes, errno, json, os, socket, stat, subprocess, sys, time, traceback

ARGS = sys.argv[1:]
RESULT = "/tmp/result.json"
report = {}


def ename(exc):
    return errno.errorcode.get(exc.errno, str(exc.errno))


def attempt(func, *args, **kwargs):
    """{"ok": True, "value": ...} or {"ok": False, "errno": "EPERM"}."""
    try:
        return {"ok": True, "value": func(*args, **kwargs)}
    except OSError as exc:
        return {"ok": False, "errno": ename(exc)}


def write_file(path, data):
    with open(path, "w") as f:
        f.write(data)
    return True


def read_file(path):
    with open(path) as f:
        return f.read()


def status(pid="self"):
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def caps(pid="self"):
    st = status(pid)
    return {name: int(st[name], 16) for name in ("CapInh", "CapPrm", "CapEff", "CapBnd",
                                                  "CapAmb")}


_LIBC = []


def libc_call(name, *args):
    """Call a libc function; {"ok": True} or {"ok": False, "errno": NAME}."""
    if not _LIBC:
        _LIBC.append(ctypes.CDLL(None, use_errno=True))
    func = getattr(_LIBC[0], name)
    ctypes.set_errno(0)
    if func(*args) == 0:
        return {"ok": True}
    err = ctypes.get_errno()
    return {"ok": False, "errno": errno.errorcode.get(err, str(err))}


def fds(pid="self"):
    """{fd: readlink target} of a process (without the fd used to list them)."""
    lister = os.open(f"/proc/{pid}/fd", os.O_RDONLY | os.O_DIRECTORY)
    try:
        names = os.listdir(lister)
    finally:
        os.close(lister)
    out = {}
    for name in names:
        if pid == "self" and int(name) == lister:
            continue
        try:
            out[name] = os.readlink(f"/proc/{pid}/fd/{name}")
        except FileNotFoundError:
            if pid != "self":       # our own: listdir's internal dup of `lister`, closed
                out[name] = "?ENOENT"
        except OSError as exc:
            out[name] = "?" + ename(exc)
    return out


def readlink(path):
    try:
        return os.readlink(path)
    except OSError as exc:
        return "?" + ename(exc)


def wait_file(path, timeout=8.0):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear")
        time.sleep(0.01)
    return read_file(path)


def sh(command):
    """Run a busybox shell command; (exit code, stdout, stderr)."""
    done = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True,
                          timeout=5, stdin=subprocess.DEVNULL)
    return [done.returncode, done.stdout, done.stderr]
'''

EPILOGUE = r'''

report["pid"] = os.getpid()
report["hostname"] = socket.gethostname()
report["ids"] = [os.getuid(), os.geteuid(), os.getgid(), os.getegid()]
try:
    report["token"] = read_file("/neg-token")
    main()
    report["done"] = True
except BaseException:
    report["crash"] = traceback.format_exc()
with open(RESULT + ".part", "w") as f:
    json.dump(report, f)
os.rename(RESULT + ".part", RESULT)
os.execv("/bin/sleep", ["sleep", "60"])      # stay: the host looks at the jail as it is now
'''


class Jail:
    """One rootfs and the instance jailed in it; `run(body)` starts the probe."""

    def __init__(self, tmp_path: Path, start):
        self.tmp_path = tmp_path
        self.start = start
        self.root = tmp_path / "root"
        build_rootfs(str(self.root), usr_from_host=True)
        self.hostname = "neg-" + secrets.token_hex(4)
        self.token = secrets.token_hex(8)
        (self.root / "neg-token").write_text(self.token)
        self.result_path = self.root / "tmp" / "result.json"
        self.inst = None

    def run(self, body: str, args=(), options=(), daemon_uid: int | None = None):
        script = (PRELUDE + "\n\ndef main():\n" + textwrap.indent(textwrap.dedent(body), "    ")
                  + EPILOGUE)
        (self.root / "probe.py").write_text(script)
        command = " ".join([PYTHON_IN_JAIL, "-I", "/probe.py", *map(str, args)])
        if daemon_uid is None:
            daemon = ["--attach-daemon", command]
        else:
            daemon = ["--attach-daemon2", f"cmd={command},uid={daemon_uid},gid={daemon_uid}"]
        self.inst = self.start("--namespace", f"{self.root}:{self.hostname}",
                               "--namespace-keep-mount", "/usr:/usr:ro", *options, *daemon)
        return self.inst

    def inside(self, path: str) -> Path:
        """The host path of `path` as the jail sees it (a file in the rootfs)."""
        return self.root / path.lstrip("/")

    def result(self, timeout: float = 8.0) -> dict:
        inst = self.inst

        def check():
            if inst.proc.poll() is not None:
                raise AssertionError(f"nsuwsgi exited {inst.proc.returncode}:\n{inst.log()}")
            try:
                return json.loads(self.result_path.read_text())
            except FileNotFoundError:
                return None

        report = wait_for(check, timeout, f"the probe's {self.result_path}:\n{inst.log()}")
        assert "crash" not in report, f"the probe crashed:\n{report['crash']}\n{inst.log()}"
        # Positive controls: the probe ran, to the end, in this jail.
        assert report["token"] == self.token
        assert report["hostname"] == self.hostname
        assert report["done"] is True
        assert 2 < report["pid"] < 100
        return report

    def init_host_pid(self) -> int:
        children = wait_for(lambda: linux.proc_children(self.inst.pid), 5,
                            "the jail's init under the keeper")
        assert len(children) == 1, children
        return children[0]

    def stop(self) -> None:
        code = self.inst.stop()
        assert code == 0, f"nsuwsgi exited {code}:\n{self.inst.log()}"


@pytest.fixture
def jail(tmp_path, nsuwsgi):
    return Jail(tmp_path, nsuwsgi)


def host_status(pid: int) -> dict:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def bits(mask: int) -> set[int]:
    return {n for n in range(64) if mask >> n & 1}


def host_mount_table(path="/proc/self/mounts") -> list[list[str]]:
    with open(path) as f:
        return [line.split() for line in f]


# ---------------------------------------------------------------------------- 1. PIDs

def test_jail_sees_only_its_own_pids(jail):
    """/proc inside lists exactly the jail's processes (init 1, master 2, probe) by their
    in-jail pids; host pids (the test's, the keeper's, init's host pid) are neither listed
    nor signalable."""
    inst = jail.run("""
        host = json.loads(wait_file("/tmp/hostpids.json"))
        report["pids"] = sorted(int(n) for n in os.listdir("/proc") if n.isdigit())
        report["nspid"] = status()["NSpid"].split()
        report["ppid"] = os.getppid()
        report["init_nspid"] = status(1)["NSpid"].split()
        report["master_ppid"] = status(2)["PPid"]
        report["host_listed"] = {str(p): os.path.lexists(f"/proc/{p}") for p in host}
        report["host_kill"] = {str(p): attempt(os.kill, p, 0) for p in host}
        report["self_kill"] = attempt(os.kill, os.getpid(), 0)
    """)
    inst.ready()
    init_pid = jail.init_host_pid()
    host_pids = [os.getpid(), inst.pid, init_pid]
    assert min(host_pids) > 100, "host pids this small would collide with the jail's own"
    tmp = jail.inside("/tmp/hostpids.json.part")
    tmp.write_text(json.dumps(host_pids))
    tmp.rename(jail.inside("/tmp/hostpids.json"))
    report = jail.result()

    # What the host sees of the jail: init's subtree, each process with its in-jail pid.
    inner = {}
    todo = [init_pid]
    while todo:
        pid = todo.pop()
        todo += linux.proc_children(pid)
        nspid = host_status(pid)["NSpid"].split()
        assert len(nspid) == 2, nspid
        inner[int(nspid[1])] = pid
    assert report["pids"] == sorted(inner), (report["pids"], inner)
    assert {1, 2, report["pid"]} <= set(report["pids"])
    assert max(report["pids"]) < 100
    assert report["nspid"] == [str(report["pid"])], "only one PID namespace level is visible"
    assert report["init_nspid"] == ["1"]
    assert report["ppid"] == 2 and report["master_ppid"] == "1"
    assert report["self_kill"] == {"ok": True, "value": None}       # kill() itself works
    for pid in host_pids:
        assert report["host_listed"][str(pid)] is False, pid
        assert report["host_kill"][str(pid)] == {"ok": False, "errno": "ESRCH"}, pid
    jail.stop()


# ---------------------------------------------------------------------------- 2. mounts

def test_jail_sees_only_its_own_mounts_and_no_host_file(jail, tmp_path):
    """/proc/self/mounts lists only the jail's mounts; a host file outside the rootfs is not
    reachable by its host path, any `..` walk, /proc/PID/root or cwd, or a search of /."""
    marker = tmp_path / f"host-marker-{secrets.token_hex(4)}"
    marker.write_text("host secret")
    (jail.root / "inside-file").write_text("visible")
    jail.run("""
        marker = ARGS[0]
        report["inside_file"] = read_file("/inside-file")
        report["mounts"] = [line.split()[:4] for line in open("/proc/self/mounts")]
        tries = {"direct": marker}
        for depth in range(1, 16):
            tries[f"abs{depth}"] = "/" + "../" * depth + marker.lstrip("/")
            tries[f"rel{depth}"] = "../" * depth + marker.lstrip("/")
        for pid in ("1", "2", "self"):
            tries[f"root{pid}"] = f"/proc/{pid}/root{marker}"
            tries[f"cwd{pid}"] = f"/proc/{pid}/cwd/../../../..{marker}"
        os.chdir("/tmp")
        report["reachable"] = {k: os.path.lexists(p) for k, p in tries.items()}
        report["opened"] = {k: attempt(read_file, p)["ok"] for k, p in tries.items()}
        found = []
        for top, dirs, files in os.walk("/"):
            if top == "/":
                dirs[:] = [d for d in dirs if d not in ("proc", "usr", "sys")]
            found += [os.path.join(top, f) for f in files if f == os.path.basename(marker)]
        report["found"] = found
        report["usr_write"] = attempt(write_file, "/usr/neg-probe", "x")
        report["usr_remount_rw"] = libc_call("mount", None, b"/usr", None, 32 | 4096, None)
    """, args=[marker])
    jail.inst.ready()
    report = jail.result()

    assert report["inside_file"] == "visible"
    points = {m[1] for m in report["mounts"]}
    assert {"/", "/usr", "/proc", "/proc/sys"} <= points, report["mounts"]
    assert points <= JAIL_MOUNTS, f"unexpected mounts in the jail: {points - JAIL_MOUNTS}"
    host_only = {m[1] for m in host_mount_table()} - JAIL_MOUNTS
    assert not points & host_only
    for point in points:
        assert not point.startswith(str(tmp_path)) and not point.startswith("/work")
    [usr] = [m for m in report["mounts"] if m[1] == "/usr"]
    assert "ro" in usr[3].split(",")
    assert report["usr_write"] == {"ok": False, "errno": "EROFS"}
    assert report["usr_remount_rw"] == {"ok": False, "errno": "EPERM"}     # MS_REMOUNT|BIND
    assert not any(report["reachable"].values()), report["reachable"]
    assert not any(report["opened"].values()), report["opened"]
    assert report["found"] == []
    assert marker.read_text() == "host secret"
    jail.stop()


# ---------------------------------------------------------------------------- 3. old root

def test_old_root_is_gone(jail):
    """No old root mount point (uWSGI's /.uwsgi_ns_tmp_mountpoint, /oldroot...), `cd /..`
    stays in /, and / is the rootfs directory itself (same device and inode)."""
    jail.run("""
        report["names"] = {p: os.path.lexists(p) for p in (
            "/.uwsgi_ns_tmp_mountpoint", "/oldroot", "/old_root", "/.old_root", "/.oldroot",
            "/.pivot_root", "/mnt/oldroot")}
        st = os.stat("/")
        report["root"] = [st.st_dev, st.st_ino]
        up = os.stat("/..")
        report["root_parent"] = [up.st_dev, up.st_ino]
        report["listing"] = sorted(os.listdir("/"))
        os.chdir("/")
        for _ in range(20):
            os.chdir("..")
        st = os.stat(".")
        report["after_cd_up"] = [os.getcwd(), st.st_dev, st.st_ino, sorted(os.listdir("."))]
        report["sh_cd_up"] = sh("cd /.. && cd ../../.. && pwd && ls -a")
        report["links"] = {f"{pid}/{what}": readlink(f"/proc/{pid}/{what}")
                           for pid in ("1", "2", "self") for what in ("root", "cwd")}
        report["mountinfo_roots"] = [line.split()[3:5] for line in open("/proc/self/mountinfo")]
    """)
    jail.inst.ready()
    report = jail.result()

    host = os.stat(jail.root)
    assert report["root"] == [host.st_dev, host.st_ino]
    assert report["root_parent"] == report["root"]
    assert report["listing"] == sorted(os.listdir(jail.root))
    assert report["after_cd_up"] == ["/", host.st_dev, host.st_ino, report["listing"]]
    code, out, err = report["sh_cd_up"]
    assert code == 0, err
    lines = out.split()
    assert lines[0] == "/"
    assert sorted(set(lines[1:]) - {".", ".."}) == report["listing"]
    assert not any(report["names"].values()), report["names"]
    links = report["links"]
    assert {links["self/root"], links["self/cwd"], links["2/root"], links["2/cwd"]} == {"/"}
    # init (PID 1) is not dumpable: its links are refused; if readable, they must be "/"
    assert {links["1/root"], links["1/cwd"]} <= {"/", "?EACCES"}, links
    assert [p for _, p in report["mountinfo_roots"]].count("/") == 1
    jail.stop()


# ---------------------------------------------------------------------------- 4. /proc

def test_proc_sys_and_sysrq_are_not_writable_even_as_root(jail):
    """As uid 0 in the jail (default caps): /proc/sys/kernel/hostname and /proc/sysrq-trigger
    refuse writes (EROFS/EACCES, recorded), /proc/sys cannot be remounted or unmounted."""
    jail.run("""
        report["read_hostname"] = read_file("/proc/sys/kernel/hostname").strip()
        report["proc_sys_mount"] = [m.split()[3] for m in open("/proc/self/mounts")
                                    if m.split()[1] == "/proc/sys"]
        swappiness = read_file("/proc/sys/vm/swappiness")
        report["writes"] = {
            "/proc/sys/kernel/hostname": attempt(write_file, "/proc/sys/kernel/hostname",
                                                 "pwned"),
            "/proc/sysrq-trigger": attempt(write_file, "/proc/sysrq-trigger", "h"),
            # the current value again: harmless even if the write went through
            "/proc/sys/vm/swappiness": attempt(write_file, "/proc/sys/vm/swappiness",
                                               swappiness),
        }
        report["hostname_after"] = socket.gethostname()
        MS_REMOUNT, MS_BIND = 32, 4096
        report["remount_rw"] = libc_call("mount", None, b"/proc/sys", None,
                                         MS_REMOUNT | MS_BIND, None)
        report["umount"] = libc_call("umount2", b"/proc/sys", 2)
        report["tmp_write"] = attempt(write_file, "/tmp/allowed", "x")
    """)
    jail.inst.ready()
    host_hostname = socket.gethostname()
    report = jail.result()

    assert report["ids"][:2] == [0, 0]
    assert report["read_hostname"] == jail.hostname        # /proc/sys is readable
    assert report["tmp_write"] == {"ok": True, "value": True}
    assert "ro" in report["proc_sys_mount"][-1].split(",")
    writes = report["writes"]
    assert writes["/proc/sys/kernel/hostname"] == {"ok": False, "errno": "EROFS"}
    assert writes["/proc/sys/vm/swappiness"] == {"ok": False, "errno": "EROFS"}
    allowed = {"EROFS", "EACCES"}
    if not os.path.exists("/proc/sysrq-trigger"):
        allowed.add("ENOENT")           # a kernel without CONFIG_MAGIC_SYSRQ
    sysrq = writes["/proc/sysrq-trigger"]
    assert sysrq["ok"] is False and sysrq["errno"] in allowed, sysrq
    assert report["hostname_after"] == jail.hostname
    assert report["remount_rw"] == {"ok": False, "errno": "EPERM"}
    assert report["umount"] == {"ok": False, "errno": "EPERM"}
    assert socket.gethostname() == host_hostname
    jail.stop()


# ---------------------------------------------------------------------------- 5. capabilities

CAPS_PROBE = """
    report["caps"] = caps()
    report["master_caps"] = caps(2)
    report["init_caps"] = caps(1)
    MKNOD_BLOCK = stat.S_IFBLK | 0o600
    report["mknod"] = attempt(os.mknod, "/tmp/disk", MKNOD_BLOCK, os.makedev(8, 0))
    report["raw_socket"] = attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW,
                                                         socket.IPPROTO_ICMP).close())
    write_file("/tmp/chown-me", "x")
    other = 0 if os.geteuid() else 65534           # giving a file away needs CAP_CHOWN
    report["chown"] = attempt(os.chown, "/tmp/chown-me", other, other)
"""


@pytest.mark.parametrize("options, kept, ambient, as_root", [
    pytest.param((), ROOT_DEFAULT_CAPS, False, True, id="root-default"),
    pytest.param(("--cap", "net_bind_service"), {CAP_NET_BIND_SERVICE}, False, True,
                 id="root-cap-net_bind_service"),
    pytest.param(("--uid", "nobody"), set(), False, False, id="uid-nobody"),
    # A payload that leaves uid 0 keeps `cap` across exec through the ambient set (and only
    # then): the daemons it execs hold exactly the kept set, nothing more.
    pytest.param(("--uid", "nobody", "--cap", "net_bind_service"), {CAP_NET_BIND_SERVICE},
                 True, False, id="uid-nobody-cap-net_bind_service"),
])
def test_no_capability_beyond_the_kept_ones(jail, options, kept, ambient, as_root):
    """CapEff, CapPrm and CapBnd of the probe and the master equal the kept set; CapAmb is 0
    (the kept set only for a non-root payload with `cap`); CapInh holds nothing else; init
    keeps at most CAP_KILL. Raw sockets and device nodes are refused."""
    jail.run(CAPS_PROBE, options=options)
    jail.inst.ready()
    report = jail.result()

    assert report["ids"][1] == (0 if as_root else NOBODY)
    kept = set(kept)
    for who, caps in (("probe", report["caps"]), ("master", report["master_caps"])):
        assert bits(caps["CapEff"]) == kept, (who, caps)
        assert bits(caps["CapPrm"]) == kept, (who, caps)
        assert bits(caps["CapBnd"]) == kept, (who, caps)
        assert bits(caps["CapAmb"]) == (kept if ambient else set()), (who, caps)
        assert bits(caps["CapInh"]) <= kept, (who, caps)
    init = report["init_caps"]
    for name in ("CapEff", "CapPrm", "CapBnd", "CapInh"):
        assert bits(init[name]) <= {5}, init
    assert init["CapAmb"] == 0, init
    assert report["mknod"] == {"ok": False, "errno": "EPERM"}
    assert report["raw_socket"] == {"ok": False, "errno": "EPERM"}
    # Positive control: a kept capability does work (CAP_CHOWN for the default root set).
    if 0 in kept:
        assert report["chown"] == {"ok": True, "value": None}
    else:
        assert report["chown"] == {"ok": False, "errno": "EPERM"}
    jail.stop()


# ---------------------------------------------------------------------------- 6. setuid

@pytest.fixture
def suid_python_control():
    """A setuid-root copy of python3 where nobody can reach it: proof it *would* elevate."""
    where = tempfile.mkdtemp(prefix="nsuneg", dir="/tmp")
    os.chmod(where, 0o755)
    binary = os.path.join(where, "python3")
    shutil.copy2(os.path.realpath("/usr/bin/python3"), binary)
    os.chmod(binary, 0o4755)
    yield binary
    shutil.rmtree(where, ignore_errors=True)


@pytest.mark.parametrize("how", ["instance-uid", "daemon-uid"])
def test_setuid_binary_does_not_give_root_back(jail, how, suid_python_control):
    """NoNewPrivs is 1 in the probe, the master and init; a setuid-root busybox and a
    setuid-root python3 in the rootfs, run as nobody, stay uid 65534 (the python copy does
    become euid 0 on the host, outside the jail)."""
    suid = jail.root / "suid"
    suid.mkdir()
    # busybox must be called `busybox` to take the applet from argv[1]
    shutil.copy2(jail.root / "bin" / "busybox", suid / "busybox")
    shutil.copy2(os.path.realpath("/usr/bin/python3"), suid / "python3")
    for name in ("busybox", "python3"):
        os.chown(suid / name, 0, 0)
        os.chmod(suid / name, 0o4755)
    control = subprocess.run([suid_python_control, "-I", "-c",
                              "import os; print(list(os.getresuid()))"],
                             user=NOBODY, group=NOBODY, extra_groups=[], capture_output=True,
                             text=True, timeout=10, stdin=subprocess.DEVNULL)
    assert json.loads(control.stdout) == [NOBODY, 0, 0], "the host control must elevate"

    options = ("--uid", "nobody") if how == "instance-uid" else ()
    daemon_uid = NOBODY if how == "daemon-uid" else None
    jail.run("""
        report["nnp"] = status()["NoNewPrivs"]
        report["master_nnp"] = status(2)["NoNewPrivs"]
        report["master_uid"] = status(2)["Uid"].split()
        report["suid_mode"] = oct(os.stat("/suid/python3").st_mode)
        bb = subprocess.run(["/suid/busybox", "id", "-u"], capture_output=True, text=True,
                            timeout=5)
        report["busybox_id"] = [bb.returncode, bb.stdout.strip(), bb.stderr]
        py = subprocess.run(["/suid/python3", "-I", "-c",
                             "import os, json; print(json.dumps(os.getresuid()))"],
                            capture_output=True, text=True, timeout=5)
        report["python_resuid"] = [py.returncode, py.stdout.strip(), py.stderr]
        report["setuid0"] = attempt(os.setuid, 0)
    """, options=options, daemon_uid=daemon_uid)
    jail.inst.ready()
    report = jail.result()

    assert report["ids"] == [NOBODY, NOBODY, NOBODY, NOBODY]
    assert report["suid_mode"] == oct(stat.S_IFREG | 0o4755)
    assert report["nnp"] == "1"
    assert report["master_nnp"] == "1"
    expected_master = NOBODY if how == "instance-uid" else 0
    assert set(report["master_uid"]) == {str(expected_master)}
    assert report["busybox_id"][:2] == [0, str(NOBODY)], report["busybox_id"]
    code, out, err = report["python_resuid"]
    assert code == 0, err
    assert json.loads(out) == [NOBODY, NOBODY, NOBODY], "setuid bit honoured inside the jail"
    assert report["setuid0"] == {"ok": False, "errno": "EPERM"}
    jail.stop()


# ---------------------------------------------------------------------------- 7. network

SIOCGIFFLAGS, SIOCGIFADDR = 0x8913, 0x8915


def host_ipv4_addresses() -> list[str]:
    found = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            try:
                data = fcntl.ioctl(s.fileno(), SIOCGIFADDR,
                                   struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue
            address = socket.inet_ntoa(data[20:24])
            if not address.startswith("127."):
                found.append(address)
    return found


def test_network_namespace_has_only_lo_and_no_way_to_the_host(jail):
    """Under namespace-net: /proc/net/dev and if_nameindex list only lo, lo is UP (and works:
    the probe talks to itself over it), while connecting to the test's listener on the host's
    127.0.0.1 is refused and the host's other addresses are unreachable; the listeners accept
    nothing."""
    local = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    anywhere = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        local.bind(("127.0.0.1", 0))
        local.listen(8)
        local.setblocking(False)
        anywhere.bind(("0.0.0.0", 0))
        anywhere.listen(8)
        anywhere.setblocking(False)
        targets = [f"127.0.0.1:{local.getsockname()[1]}"]
        targets += [f"{a}:{anywhere.getsockname()[1]}" for a in host_ipv4_addresses()]
        jail.run("""
            import fcntl, struct
            report["proc_net_dev"] = [line.split(":")[0].strip()
                                      for line in open("/proc/net/dev").readlines()[2:]]
            report["if_nameindex"] = [name for _, name in socket.if_nameindex()]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                data = fcntl.ioctl(s.fileno(), 0x8913, struct.pack("16sH14x", b"lo", 0))
            report["lo_flags"] = struct.unpack("16sH14x", data)[1]
            link = subprocess.run(["/usr/bin/ip", "-o", "link"], capture_output=True,
                                  text=True, timeout=5)
            report["ip_link"] = [link.returncode, link.stdout, link.stderr]
            report["connect"] = {}
            for target in ARGS:
                host, port = target.rsplit(":", 1)
                with socket.socket() as c:
                    c.settimeout(3)
                    code = c.connect_ex((host, int(port)))
                report["connect"][target] = errno.errorcode.get(code, code)
            # positive control: lo carries traffic inside the jail
            with socket.socket() as srv:
                srv.bind(("127.0.0.1", 0))
                srv.listen(1)
                with socket.create_connection(srv.getsockname(), timeout=3) as c:
                    peer, _ = srv.accept()
                    c.sendall(b"ok")
                    report["loopback_echo"] = peer.recv(2).decode()
                    peer.close()
        """, args=targets, options=("--namespace-net", "1"))
        jail.inst.ready()
        report = jail.result()

        assert report["proc_net_dev"] == ["lo"]
        assert report["if_nameindex"] == ["lo"]
        assert report["lo_flags"] & 0x1, "lo is UP"             # IFF_UP
        code, out, err = report["ip_link"]
        assert code == 0, err
        lines = out.strip().splitlines()
        assert len(lines) == 1 and ": lo:" in lines[0] and "UP" in lines[0], out
        assert report["loopback_echo"] == "ok"
        connect = report["connect"]
        assert connect.pop(targets[0]) == "ECONNREFUSED"
        for target, result in connect.items():
            assert result in ("ENETUNREACH", "EHOSTUNREACH"), (target, result)
        for listener in (local, anywhere):
            with pytest.raises(BlockingIOError):
                listener.accept()
        # host-side positive control: the listener did work
        with socket.create_connection(local.getsockname(), timeout=3):
            peer, _ = wait_for(lambda: _try_accept(local), 3, "the host connection")
            peer.close()
        jail.stop()
    finally:
        local.close()
        anywhere.close()


def _try_accept(listener):
    try:
        return listener.accept()
    except BlockingIOError:
        return None


# ---------------------------------------------------------------------------- 8. fds

FDS_PROBE = """
    report["self"] = fds()
    report["master"] = fds(2)
    report["init"] = fds(1)
    leaked = {}
    for pid in ("1", "2"):
        for fd, target in report["init" if pid == "1" else "master"].items():
            if os.path.basename(target).startswith("leaked-"):
                path = f"/proc/{pid}/fd/{fd}"
                got = attempt(os.listdir, path) if os.path.isdir(path) else \
                    attempt(read_file, path)
                leaked[path] = got
    report["through_proc"] = leaked
"""

EXPECTED_ANON = ("socket:[", "pipe:[", "anon_inode:[eventpoll]", "anon_inode:inotify",
                 "anon_inode:[pidfd]")


@pytest.fixture
def leaked_fds(tmp_path):
    """A non-CLOEXEC file fd and a directory fd, both outside the rootfs, handed to the
    keeper as any careless parent (a shell, a process manager) would hand them."""
    leaked_file = tmp_path / "leaked-file"
    leaked_file.write_text("host secret")
    leaked_dir = tmp_path / "leaked-dir"
    leaked_dir.mkdir()
    (leaked_dir / "host-only").write_text("host secret")
    fds = [os.open(leaked_file, os.O_RDONLY), os.open(leaked_dir, os.O_RDONLY | os.O_DIRECTORY)]
    for fd in fds:
        os.set_inheritable(fd, True)
    yield {fds[0]: str(leaked_file), fds[1]: str(leaked_dir)}
    for fd in fds:
        os.close(fd)


def _start_with_fds(jail, monkeypatch, fds, body):
    """jail.run(body), with `fds` inherited by the keeper (the harness closes fds by default)."""
    with monkeypatch.context() as patch:
        patch.setattr(subprocess, "Popen",
                      functools.partial(subprocess.Popen, pass_fds=tuple(fds)))
        inst = jail.run(body)
    for fd, path in fds.items():
        assert os.readlink(f"/proc/{inst.pid}/fd/{fd}") == path, "the keeper got the fd"
    return inst


def _host_path_fds(table: dict, allowed: set[str]) -> dict:
    return {fd: t for fd, t in table.items()
            if not t.startswith(EXPECTED_ANON) and t not in allowed}


def test_probe_and_master_hold_no_fd_they_were_not_given(jail, monkeypatch, leaked_fds):
    """The probe holds only 0, 1, 2; the master (PID 2) holds stdio, its log, sockets
    (stats, control, loop wakeup), epoll, inotify, pidfds and the lifeline pipe: none of the
    fds the keeper inherited, and no other host path."""
    inst = _start_with_fds(jail, monkeypatch, leaked_fds, FDS_PROBE)
    inst.ready()
    report = jail.result()

    log = str(inst.logfile)
    assert set(report["self"]) == {"0", "1", "2"}, report["self"]
    assert report["self"]["0"] == "/dev/null"
    assert report["self"]["1"] == report["self"]["2"] == log
    master = report["master"]
    assert master["0"] == "/dev/null" and master["1"] == master["2"] == log
    assert _host_path_fds(master, {"/dev/null", log}) == {}, master
    assert not set(leaked_fds.values()) & set(master.values())
    kinds = [t.split(":")[0] for t in master.values()]
    assert kinds.count("socket") == 4, master     # stats listener, control, wakeup pair
    assert "anon_inode:[eventpoll]" in master.values()
    assert not [p for p in report["through_proc"] if p.startswith("/proc/2/")]
    jail.stop()


def host_fds(pid: int) -> dict:
    out = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[name] = os.readlink(f"/proc/{pid}/fd/{name}")
        except FileNotFoundError:
            pass
    return out


def test_init_holds_no_fd_the_keeper_inherited(jail, monkeypatch, leaked_fds):
    """The jail's init (PID 1) must not carry the keeper's fds into the jail: through
    /proc/1/fd/N (or pidfd_getfd) a root payload would reopen them, and a directory fd is a
    way out of the jail (host files read by their path under the directory). Checked from
    the host (init's real fd table) and from the probe (nothing readable through /proc/1)."""
    inst = _start_with_fds(jail, monkeypatch, leaked_fds, FDS_PROBE)
    inst.ready()
    report = jail.result()

    log = str(inst.logfile)
    on_host = host_fds(jail.init_host_pid())
    assert "0" in on_host                                        # positive control
    assert report["init"], "the probe could list /proc/1/fd"    # positive control
    assert report["through_proc"] == {}, (
        f"host files outside the rootfs were read from inside the jail: "
        f"{report['through_proc']}")
    assert not set(leaked_fds.values()) & set(on_host.values()), (
        f"the jail's init holds the keeper's inherited fds: {on_host}")
    assert _host_path_fds(on_host, {"/dev/null", log}) == {}, on_host
    # Seen from inside, init's fds are either unreadable (init is not dumpable) or harmless.
    assert _host_path_fds(report["init"], {"/dev/null", log, "?EACCES"}) == {}, report["init"]
    jail.stop()


# ---------------------------------------------------------------------------- 9. hostname

@pytest.mark.parametrize("options, inside_ok", [
    pytest.param((), False, id="default-caps"),
    pytest.param(("--cap", "sys_admin"), True, id="cap-sys_admin"),
])
def test_hostname_change_stays_in_the_jail(jail, options, inside_ok):
    """`hostname pwned` as root in the jail: without CAP_SYS_ADMIN it fails (EPERM, also
    through sethostname(2)); with it, only the jail's UTS namespace changes. The host's
    hostname never does."""
    host_before = socket.gethostname()
    jail.run("""
        report["before"] = socket.gethostname()
        report["busybox"] = sh("hostname pwned")
        report["after_busybox"] = socket.gethostname()
        report["syscall"] = attempt(socket.sethostname, "pwned2")
        report["after"] = socket.gethostname()
    """, options=options)
    jail.inst.ready()
    report = jail.result()

    assert report["before"] == jail.hostname
    assert report["ids"][:2] == [0, 0]
    code, out, err = report["busybox"]
    if inside_ok:
        assert code == 0, err
        assert report["after_busybox"] == "pwned"
        assert report["syscall"] == {"ok": True, "value": None}
        assert report["after"] == "pwned2"
    else:
        assert code != 0 and report["after_busybox"] == jail.hostname, report["busybox"]
        assert report["syscall"] == {"ok": False, "errno": "EPERM"}
        assert report["after"] == jail.hostname
    assert socket.gethostname() == host_before
    with open("/proc/sys/kernel/hostname") as f:
        assert f.read().strip() == host_before
    fresh = subprocess.run(["hostname"], capture_output=True, text=True, timeout=5)
    assert fresh.stdout.strip() == host_before
    jail.stop()


# ---------------------------------------------------------------------------- 10. mounts

@pytest.mark.parametrize("options, inside_ok", [
    pytest.param(("--cap", "sys_admin"), True, id="cap-sys_admin"),
    pytest.param((), False, id="default-caps"),
])
def test_mount_in_the_jail_never_shows_on_the_host(jail, options, inside_ok):
    """With CAP_SYS_ADMIN kept, the probe's tmpfs on /tmp/m mounts inside only: the host's
    mount tables (this process, a fresh process, the keeper) never list it and the rootfs'
    tmp/m stays an empty directory on the host. Without it, mount(2) fails with EPERM."""
    source = "nsuneg-" + secrets.token_hex(4)
    jail.run("""
        os.mkdir("/tmp/m")
        report["mount"] = libc_call("mount", ARGS[0].encode(), b"/tmp/m", b"tmpfs", 0, None)
        report["listed"] = [m.split()[:3] for m in open("/proc/self/mounts")
                            if m.split()[1] == "/tmp/m"]
        if report["mount"]["ok"]:
            write_file("/tmp/m/inside", "x")
            report["busybox_mount"] = sh("mount | grep /tmp/m")
        else:
            report["busybox_mount"] = sh("mount -t tmpfs none /tmp/m")
    """, args=[source], options=options)
    jail.inst.ready()
    report = jail.result()

    if inside_ok:
        assert report["mount"] == {"ok": True}
        assert report["listed"] == [[source, "/tmp/m", "tmpfs"]]
        assert report["busybox_mount"][0] == 0
    else:
        assert report["mount"] == {"ok": False, "errno": "EPERM"}
        assert report["listed"] == []
        assert report["busybox_mount"][0] != 0, report["busybox_mount"]
    tables = {"this process": open("/proc/self/mounts").read(),
              "the keeper": open(f"/proc/{jail.inst.pid}/mounts").read(),
              "a fresh process": subprocess.run(["cat", "/proc/self/mounts"],
                                                capture_output=True, text=True,
                                                timeout=5).stdout}
    for who, table in tables.items():
        assert table.strip(), who
        assert source not in table, f"{who} sees the jail's mount"
        assert str(jail.root) not in table, f"{who} sees a mount under the rootfs"
    mount_point = jail.inside("/tmp/m")
    assert mount_point.is_dir() and not os.path.ismount(mount_point)
    assert list(mount_point.iterdir()) == []
    jail.stop()


# ---------------------------------------------------------------------------- 11. keyrings

KEY_SYSCALLS = {"x86_64": (248, 250), "aarch64": (217, 219)}   # add_key, keyctl
KEY_SPEC_SESSION_KEYRING, KEY_SPEC_USER_KEYRING = -3, -4
KEYCTL_GET_KEYRING_ID, KEYCTL_SEARCH, KEYCTL_READ, KEYCTL_INVALIDATE = 0, 10, 11, 21


class HostKeys:
    """add_key/keyctl for the test process (root on the host), through libc's syscall()."""

    def __init__(self):
        import ctypes
        self.ctypes = ctypes
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.add_key_nr, self.keyctl_nr = KEY_SYSCALLS[os.uname().machine]

    def _check(self, result: int) -> int:
        if result < 0:
            err = self.ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return result

    def keyctl(self, *args) -> int:
        c_args = [self.ctypes.c_long(a) if isinstance(a, int) else a for a in args]
        return self._check(self.libc.syscall(self.keyctl_nr, *c_args))

    def add(self, description: str, data: bytes, keyring=KEY_SPEC_USER_KEYRING) -> int:
        return self._check(self.libc.syscall(self.add_key_nr, b"user", description.encode(),
                                             data, len(data), self.ctypes.c_long(keyring)))

    def search(self, description: str, keyring=KEY_SPEC_USER_KEYRING) -> int | None:
        try:
            return self.keyctl(KEYCTL_SEARCH, keyring, b"user", description.encode(), 0)
        except OSError as exc:
            if exc.errno in (errno.ENOKEY, errno.EKEYREVOKED, errno.EKEYEXPIRED):
                return None
            raise

    def invalidate(self, key: int) -> None:
        try:
            self.keyctl(KEYCTL_INVALIDATE, key)
        except OSError:
            pass


@pytest.mark.skipif(os.uname().machine not in KEY_SYSCALLS, reason="syscall numbers unknown")
def test_host_keyrings_are_out_of_reach(jail):
    """Root in the jail is not root's *kernel keyrings* on the host: a key the host's root
    keeps in its user keyring (@u) cannot be found or read from inside, the jail's @u and
    session keyring are not the host's, and the jail cannot plant keys in the host's @u.
    (Without a user namespace, uid 0 inside and outside share the per-uid keyrings.)"""
    keys = HostKeys()
    secret = "host secret " + secrets.token_hex(4)
    description = "nsuneg-host-" + secrets.token_hex(6)
    planted = "nsuneg-jail-" + secrets.token_hex(6)
    host_key = keys.add(description, secret.encode())
    try:
        host_user_ring = keys.keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 0)
        host_session_ring = keys.keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0)
        jail.run(f"""
            import ctypes, platform
            libc = ctypes.CDLL(None, use_errno=True)
            ADD_KEY, KEYCTL = {KEY_SYSCALLS!r}[platform.machine()]

            def call(nr, *args):
                ctypes.set_errno(0)
                args = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
                result = libc.syscall(nr, *args)
                if result < 0:
                    err = ctypes.get_errno()
                    return {{"ok": False, "errno": errno.errorcode.get(err, str(err))}}
                return {{"ok": True, "value": result}}

            wanted, planted = ARGS
            report["user_ring"] = call(KEYCTL, 0, -4, 0)
            report["session_ring"] = call(KEYCTL, 0, -3, 0)
            found = call(KEYCTL, 10, -4, b"user", wanted.encode(), 0)
            report["search"] = found
            if found["ok"]:
                buf = ctypes.create_string_buffer(256)
                got = call(KEYCTL, 11, found["value"], buf, 256)
                report["read"] = buf.raw[:got["value"]].decode() if got["ok"] else got
            report["plant"] = call(ADD_KEY, b"user", planted.encode(), b"from the jail", 13,
                                   -4)
            report["proc_keys"] = attempt(read_file, "/proc/keys")
        """, args=[description, planted])
        jail.inst.ready()
        report = jail.result()

        assert keys.search(description) == host_key             # host control: it was there
        assert "read" not in report, f"the jail read the host's key: {report['read']!r}"
        assert not report["search"]["ok"], report["search"]
        if report["proc_keys"]["ok"]:
            assert description not in report["proc_keys"]["value"]
        for name, host_ring in (("user_ring", host_user_ring),
                                ("session_ring", host_session_ring)):
            result = report[name]
            assert not result["ok"] or result["value"] != host_ring, (
                f"the jail's {name} is the host's ({host_ring})")
        assert not report["plant"]["ok"], "the jail added a key to the host's user keyring"
        assert keys.search(planted) is None
        jail.stop()
    finally:
        keys.invalidate(host_key)
        leftover = keys.search(planted)
        if leftover is not None:
            keys.invalidate(leftover)
