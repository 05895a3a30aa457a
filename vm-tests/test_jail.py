"""The instance inside a jail (`namespace = ROOTFS:HOSTNAME`), for real, as root.

The process the test starts is the *keeper*; it stays on the host and spawns the jail's init
(PID 1 inside), which forks the master (PID 2 inside), which starts the daemons. Pids in the
stats are the jail's own; the tests find the host pids by walking the keeper's descendants
(/proc/PID/task/*/children) and reading each one's NSpid line.

Every jail gets a fresh rootfs from `build_rootfs(usr_from_host=True)` in its own directory
under /tmp, with the host's /usr bound read-only, so host programs (python3, memcached) run
inside. Helper scripts are copied into the rootfs and report what they see as JSON files in
the rootfs's /tmp, which the test reads from the host at ROOT/tmp.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import textwrap
from pathlib import Path

import pytest

from nsuwsgi import linux
from nsuwsgi.rootfs import build_rootfs
from support import (PYTHON, ROOT, SIGDAEMON, alive, mounts_under, read_events, run_cli,
                     wait_for)

JAIL_PYTHON = "/usr/bin/python3"        # the host's, seen through the /usr keep-mount
NOBODY = 65534
CAP_NET_BIND_SERVICE = 10


# --------------------------------------------------------------------------- helpers

def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children first, then theirs), from the host's /proc."""
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in linux.proc_children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def nspid(pid: int) -> list[int]:
    """The pid of `pid` in each PID namespace it belongs to, outermost first."""
    return [int(p) for p in status(pid)["NSpid"].split()]


def jail_tree(keeper: int) -> dict[int, int]:
    """{pid inside the jail: pid on the host} for every process below the keeper."""
    tree = {}
    for pid in descendants(keeper):
        try:
            tree[nspid(pid)[-1]] = pid
        except (FileNotFoundError, ProcessLookupError, KeyError):
            continue
    return tree


def caps(pid: int, which: str) -> set[int]:
    mask = int(status(pid)[which], 16)
    return {bit for bit in range(64) if mask >> bit & 1}


def gone(pids) -> bool:
    return not [p for p in pids if alive(p)]


def write_ini(path: Path, text: str) -> Path:
    """Write a config atomically (the keeper may read it at any time on SIGHUP)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(textwrap.dedent(text).lstrip())
    os.replace(tmp, path)
    return path


def read_json(path) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):
        return None


def line_of(path: Path, needle: str) -> int:
    """The 1-based line number of the first line of `path` containing `needle`."""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


# A daemon that records, from inside the jail, what it sees, then waits to be stopped.
FACTS = r'''
import json, os, socket, sys

out = sys.argv[1]
def status():
    with open("/proc/self/status") as f:
        return dict(l.rstrip("\n").split(":\t", 1) for l in f if ":\t" in l)
facts = {
    "hostname": socket.gethostname(),
    "pid": os.getpid(),
    "ppid": os.getppid(),
    "uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
    "root": sorted(os.listdir("/")),
    "cwd": os.getcwd(),
    "proc_pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
    "init_cmdline": open("/proc/1/cmdline", "rb").read().decode(errors="replace"),
    "status": {k: v for k, v in status().items()
               if k.startswith(("Cap", "Uid", "Gid", "NoNewPrivs"))},
    "mounts": [l.split()[1] for l in open("/proc/self/mounts")],
}
if len(sys.argv) > 2:
    port = int(sys.argv[2])
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(1)
        facts["bind"] = "ok"
    except OSError as exc:
        facts["bind"] = f"{exc.strerror} ({exc.errno})"
with open(out + ".tmp", "w") as f:
    json.dump(facts, f)
os.rename(out + ".tmp", out)
import signal
signal.pause()
'''


@pytest.fixture
def rootfs():
    """A fresh rootfs (busybox, /usr from the host) under a 0755 directory in /tmp."""
    base = tempfile.mkdtemp(prefix="nsujail", dir="/tmp")
    os.chmod(base, 0o755)
    root = Path(base) / "root"
    build_rootfs(str(root), usr_from_host=True, warn=lambda message: None)
    (root / "facts.py").write_text(FACTS)
    (root / "sigdaemon.py").write_text(Path(SIGDAEMON).read_text())
    yield root
    leftover = mounts_under(base)
    assert not leftover, f"mounts left on the host under the rootfs: {leftover}"
    shutil.rmtree(base, ignore_errors=True)     # never reached through a leaked bind mount


def jail_ini(root: Path, hostname: str = "testns", extra: str = "") -> str:
    return (f"[uwsgi]\nnamespace = {root}:{hostname}\n"
            f"namespace-keep-mount = /usr:/usr:ro\n" + textwrap.dedent(extra).lstrip())


def find_init_and_master(inst) -> tuple[int, int]:
    """Host pids of the jail's init (PID 1 inside; the keeper's only child) and master (init's
    only child: PID 2 inside, unless in-jail exec hooks used pids first)."""
    def look():
        init = linux.proc_children(inst.pid)
        if len(init) != 1 or nspid(init[0])[-1] != 1:
            return None
        master = linux.proc_children(init[0])
        return len(master) == 1 and (init[0], master[0])
    return wait_for(look, 10, f"the jail's init and master on the host: {jail_tree(inst.pid)}")


# --------------------------------------------------------------------------- 1. the jail

def test_instance_in_a_namespace_and_stop_from_outside(nsuwsgi, rootfs, tmp_path):
    (rootfs / "jail-marker").write_text("inside\n")
    facts = rootfs / "tmp" / "facts.json"
    ini = write_ini(tmp_path / "jail.ini", jail_ini(rootfs, extra=f"""
        attach-daemon = {JAIL_PYTHON} /facts.py /tmp/facts.json
    """))
    inst = nsuwsgi("--ini", str(ini))
    stats = inst.ready()
    assert stats["pid"] == 2, "the master is PID 2 of the jail (init is PID 1)"
    daemon_pid = inst.wait_running(0)
    seen = wait_for(lambda: read_json(facts), 10, f"facts from the jailed daemon: {inst.log()}")

    assert seen["hostname"] == "testns"
    assert seen["pid"] == daemon_pid, "stats pids are the jail's own"
    assert "jail-marker" in seen["root"], "the daemon's / is the rootfs"
    assert "work" not in seen["root"] and "facts.py" in seen["root"]
    assert seen["cwd"] == "/"
    # A fresh /proc: only the jail's few processes, numbered from 1; init is nsuwsgi.
    assert {1, 2, daemon_pid} <= set(seen["proc_pids"])
    assert max(seen["proc_pids"]) < 100 and len(seen["proc_pids"]) < 15, seen["proc_pids"]
    assert "nsuwsgi" in seen["init_cmdline"]
    assert "/proc" in seen["mounts"] and "/usr" in seen["mounts"]

    init, master = find_init_and_master(inst)
    tree = jail_tree(inst.pid)
    host_daemon = tree[daemon_pid]
    assert nspid(init)[-1] == 1 and nspid(master)[-1] == 2
    assert os.readlink(f"/proc/{host_daemon}/ns/pid") != os.readlink("/proc/self/ns/pid")
    assert os.readlink(f"/proc/{host_daemon}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    assert os.readlink(f"/proc/{host_daemon}/ns/uts") != os.readlink("/proc/self/ns/uts")
    root_seen = os.stat(f"/proc/{host_daemon}/root/")
    assert (root_seen.st_dev, root_seen.st_ino) == (rootfs.stat().st_dev, rootfs.stat().st_ino)
    assert socket.gethostname() != "testns", "the host's hostname is untouched"
    assert not mounts_under(rootfs), "the jail's mounts are not visible on the host"

    jailed = descendants(inst.pid)
    assert inst.stop() == 0
    wait_for(lambda: gone(jailed), 5, f"every jailed process gone: {jailed}")
    assert "jail ended (exit code 0)" in inst.log()
    assert not mounts_under(rootfs)


# --------------------------------------------------------------------------- 2. memcached

def test_memcached_inside_a_jail(nsuwsgi, rootfs, tmp_path):
    ini = write_ini(tmp_path / "mc.ini", jail_ini(rootfs, "mcjail", """
        attach-daemon = /usr/bin/memcached -s /tmp/mc.sock -p 0 -U 0 -u nobody
    """))
    inst = nsuwsgi("--ini", str(ini))
    inst.ready()
    pid = inst.wait_running(0)
    sock_path = rootfs / "tmp" / "mc.sock"

    def version():
        if not sock_path.exists():
            return None
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            try:
                s.connect(str(sock_path))
            except OSError:
                return None
            s.sendall(b"version\r\n")
            return s.recv(100)

    reply = wait_for(version, 10, f"memcached answering on {sock_path}:\n{inst.log()}")
    assert reply.startswith(b"VERSION "), reply
    host_pid = jail_tree(inst.pid)[pid]
    assert set(status(host_pid)["Uid"].split()) == {str(NOBODY)}, "memcached -u nobody"
    assert os.readlink(f"/proc/{host_pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    assert inst.stop() == 0
    assert "jail ended (exit code 0)" in inst.log()


# --------------------------------------------------------------------------- 3. uid, gid, cap

CAP_INI = """
    uid = nobody
    gid = nogroup
    cap = net_bind_service
    namespace-net = true
    attach-daemon = {python} /facts.py /tmp/facts.json {port}
"""


def start_capped_jail(nsuwsgi, rootfs, tmp_path, port=80):
    ini = write_ini(tmp_path / "cap.ini", jail_ini(rootfs, "capjail",
                                                   CAP_INI.format(python=JAIL_PYTHON, port=port)))
    inst = nsuwsgi("--ini", str(ini))
    stats = inst.ready()
    daemon_pid = inst.wait_running(0)
    facts = wait_for(lambda: read_json(rootfs / "tmp" / "facts.json"), 10,
                     f"facts from the jailed daemon:\n{inst.log()}")
    return inst, stats, daemon_pid, facts


def test_jail_uid_gid_drop(nsuwsgi, rootfs, tmp_path):
    inst, stats, daemon_pid, facts = start_capped_jail(nsuwsgi, rootfs, tmp_path)
    assert (stats["uid"], stats["gid"]) == (NOBODY, NOBODY), "the master inside runs as nobody"
    init, master = find_init_and_master(inst)
    master_status = status(master)
    assert set(master_status["Uid"].split()) == {str(NOBODY)}, "real, effective, saved, fs"
    assert set(master_status["Gid"].split()) == {str(NOBODY)}
    assert master_status["Groups"].split() == [str(NOBODY)], "no supplementary groups of root"
    assert status(init)["Uid"].split()[0] == "0", "init stays root, with CAP_KILL only"
    assert caps(init, "CapEff") == {5}
    assert (facts["uid"], facts["gid"]) == (NOBODY, NOBODY)
    assert facts["groups"] == [NOBODY]
    assert facts["status"]["NoNewPrivs"].strip() == "1"
    assert facts["pid"] == daemon_pid
    assert inst.stop() == 0


def test_jail_cap_kept_by_the_master(nsuwsgi, rootfs, tmp_path):
    """`cap = net_bind_service` with `uid = nobody`: the master keeps exactly that capability.

    uWSGI (reference 2.1 step n) sets effective = permitted = inheritable = the cap list after
    setuid.
    """
    inst, stats, daemon_pid, facts = start_capped_jail(nsuwsgi, rootfs, tmp_path)
    init, master = find_init_and_master(inst)
    assert caps(master, "CapBnd") == {CAP_NET_BIND_SERVICE}
    assert caps(master, "CapPrm") == {CAP_NET_BIND_SERVICE}
    assert caps(master, "CapEff") == {CAP_NET_BIND_SERVICE}, \
        f"the master's effective set is {status(master)['CapEff']} after the uid drop"
    assert inst.stop() == 0


def test_jail_cap_reaches_a_daemon_that_binds_a_low_port(nsuwsgi, rootfs, tmp_path):
    """A daemon started by the nobody master keeps net_bind_service and binds port 80.

    namespace-net makes the port private to the jail's own loopback.
    """
    inst, stats, daemon_pid, facts = start_capped_jail(nsuwsgi, rootfs, tmp_path, port=80)
    assert facts["uid"] == NOBODY
    got = {key: {b for b in range(64) if int(facts["status"][key], 16) >> b & 1}
           for key in ("CapEff", "CapPrm", "CapBnd")}
    assert got["CapBnd"] == {CAP_NET_BIND_SERVICE}
    assert facts["bind"] == "ok", f"binding 127.0.0.1:80 as nobody: {facts['bind']}"
    assert got == {key: {CAP_NET_BIND_SERVICE} for key in got}, facts["status"]
    assert inst.stop() == 0


# --------------------------------------------------------------------------- 4. hook phases

PHASE_ORDER = ("asap", "pre-jail", "in-jail", "post-jail", "as-root", "as-user", "master-start")


def test_every_hook_phase_runs_once_in_order(nsuwsgi, rootfs, tmp_path):
    """hook-<phase> (appendn) and exec-<phase> (a shell) for every phase, each exactly once.

    uWSGI ran post-jail, as-root and as-user 4 times when the master stays root (reference
    2.1, "repeated uwsgi_as_root"); nsuwsgi must run every phase once.

    asap, pre-jail and post-jail run in the keeper on the host; the others inside the jail,
    where the same directory is keep-mounted at /mnt/shared, so all lines go to one file.
    """
    shared = Path(tempfile.mkdtemp(prefix="nsuhooks", dir="/tmp"))
    try:
        (rootfs / "mnt" / "shared").mkdir(parents=True)
        order = shared / "order"
        lines = ""
        for phase in ("asap", "pre-jail", "post-jail", "in-jail", "as-root", "as-user",
                      "master-start"):
            where = str(order) if phase in ("asap", "pre-jail", "post-jail") \
                else "/mnt/shared/order"
            lines += f"hook-{phase} = appendn:{where} {phase}\n"
            if phase == "post-jail":
                lines += (f"exec-{phase} = echo exec-{phase} >> {where} && "
                          f"echo $UWSGI_JAIL_PID > {shared}/jail_pid\n")
            elif phase != "master-start":       # uWSGI has no exec-master-start either
                lines += f"exec-{phase} = echo exec-{phase} >> {where}\n"
        ini = write_ini(tmp_path / "hooks.ini", jail_ini(rootfs, "hooks", f"""
            namespace-keep-mount = {shared}:/mnt/shared
        """) + lines)
        inst = nsuwsgi("--ini", str(ini))
        inst.ready()
        wait_for(lambda: order.exists() and len(order.read_text().split()) >= 13, 10,
                 f"13 hook lines in {order}:\n{inst.log()}")
        init, master = find_init_and_master(inst)
        assert (shared / "jail_pid").read_text().strip() == str(init), \
            "post-jail sees UWSGI_JAIL_PID = the jail's init on the host"
        assert inst.stop() == 0
        seen = order.read_text().split()
        assert len(seen) == 13 and len(set(seen)) == 13, f"each hook exactly once: {seen}"
        for phase in PHASE_ORDER[:-1]:
            assert seen.index(phase) + 1 == seen.index(f"exec-{phase}"), \
                f"hook-{phase} before exec-{phase}, nothing in between: {seen}"
        assert [line for line in seen if not line.startswith("exec-")] == list(PHASE_ORDER), \
            f"phases out of order: {seen}"
        # The keeper runs post-jail while the jail waits: after init built the namespaces and
        # ran in-jail, before the payload's as-root (uWSGI's --unshare order, reference 2.1).
        # uWSGI's --namespace ran it right after clone(), racing the jail's in-jail hooks.
        assert inst.log().count('(in-jail)...') == 2, "each logged once"
    finally:
        shutil.rmtree(shared, ignore_errors=True)


# --------------------------------------------------------------------------- 5. ns_pid

@pytest.mark.parametrize("stopsignal", [signal.SIGTERM, signal.SIGINT])
def test_ns_pid_daemon_in_its_own_pid_namespace(nsuwsgi, tmp_path, stopsignal):
    """attach-daemon2 ns_pid=1 in a plain instance: init is PID 1, the daemon PID 2."""
    log = tmp_path / "events.log"
    inst = nsuwsgi("--attach-daemon2",
                   f"cmd={PYTHON} {SIGDAEMON} {log},ns_pid=1,stopsignal={int(stopsignal)}")
    inst.ready()
    assert inst.stats()["pid"] == inst.pid, "no jail: the master is the process we started"
    tracked = inst.wait_running(0)
    start = wait_for(lambda: [e for e in read_events(log) if e["event"] == "start"], 10,
                     f"the daemon's start record:\n{inst.log()}")[0]
    assert (start["pid"], start["ppid"]) == (2, 1), "nsuwsgi's init is PID 1, the daemon PID 2"

    assert tracked in linux.proc_children(inst.pid)
    assert nspid(tracked)[-1] == 1, "the pid in the stats is the namespace's init"
    daemon = linux.proc_children(tracked)
    assert len(daemon) == 1, daemon
    assert nspid(daemon[0]) == [daemon[0], 2]
    own_ns = os.readlink("/proc/self/ns/pid")
    assert os.readlink(f"/proc/{daemon[0]}/ns/pid") != own_ns
    assert os.readlink(f"/proc/{daemon[0]}/ns/pid") == os.readlink(f"/proc/{tracked}/ns/pid")
    # No new mount namespace: the daemon shares the host's (and its /proc), as in uWSGI.
    assert os.readlink(f"/proc/{daemon[0]}/ns/mnt") == os.readlink("/proc/self/ns/mnt")

    assert inst.stop() == 0
    events = read_events(log)
    signals = [e["sig"] for e in events if e["event"] == "signal"]
    assert signals == [int(stopsignal)], f"the stop signal arrives exactly once: {events}"
    assert [e for e in events if e["event"] == "exit"], "the daemon exited by itself"
    assert gone([tracked, daemon[0]])


def test_ns_pid_daemon_behind_a_shell_gets_the_stop_signal(nsuwsgi, tmp_path):
    """A command that needs /bin/sh (here `||`): the shell is PID 2, the daemon its child.

    Without ns_pid the master signals the daemon's process group, so the real daemon gets
    SIGTERM. With ns_pid it must too, instead of dying by SIGKILL when the namespace ends.
    """
    log = tmp_path / "events.log"
    inst = nsuwsgi("--attach-daemon2",
                   f"cmd={PYTHON} {SIGDAEMON} {log} || echo failed,ns_pid=1")
    inst.ready()
    inst.wait_running(0)
    start = wait_for(lambda: [e for e in read_events(log) if e["event"] == "start"], 10,
                     f"the daemon's start record:\n{inst.log()}")[0]
    assert start["ppid"] == 2, "the shell is PID 2, the daemon its child"
    assert inst.stop() == 0
    events = read_events(log)
    signals = [e["name"] for e in events if e["event"] == "signal"]
    assert signals == ["SIGTERM"], \
        f"the daemon behind the shell got {signals} (SIGKILLed with its namespace?): {events}"


# --------------------------------------------------------------------------- 6. reload

def test_sighup_reload_inside_the_jail(nsuwsgi, rootfs, tmp_path):
    ini_path = tmp_path / "reload.ini"
    first = f"attach-daemon = {JAIL_PYTHON} /facts.py /tmp/a.json\n"
    write_ini(ini_path, jail_ini(rootfs, "reloadns") + first)
    inst = nsuwsgi("--ini", str(ini_path))
    inst.ready()
    a_pid = inst.wait_running(0)
    wait_for(lambda: read_json(rootfs / "tmp" / "a.json"), 10, "daemon a's facts")
    init, master = find_init_and_master(inst)

    second = first + f"attach-daemon = {JAIL_PYTHON} /facts.py /tmp/b.json\n"
    write_ini(ini_path, jail_ini(rootfs, "reloadns") + second)
    inst.signal(signal.SIGHUP)
    b = wait_for(lambda: read_json(rootfs / "tmp" / "b.json"), 10,
                 f"the new daemon's facts:\n{inst.log()}")
    assert b["hostname"] == "reloadns" and "facts.py" in b["root"], "started inside the jail"
    b_pid = inst.wait_running(1)
    assert b["pid"] == b_pid
    stats = inst.stats()
    assert stats["pid"] == 2 and len(stats["daemons"]) == 2
    # A dumb daemon without reloadsignal is restarted by a reload (uWSGI's rule), in the jail.
    a_pid = inst.wait_running(0)
    assert a_pid in jail_tree(inst.pid)
    assert find_init_and_master(inst) == (init, master), "same init and master"
    assert inst.proc.poll() is None

    # A broken file is refused with file:line, and the running configuration stays.
    write_ini(ini_path, jail_ini(rootfs, "reloadns") + second + "atach-daemon = sleep 1\n")
    bad_line = line_of(ini_path, "atach-daemon")
    inst.signal(signal.SIGHUP)
    log = inst.wait_log("keeping the running configuration")
    refused = [line for line in log.splitlines() if "reload refused" in line]
    assert refused and f"{ini_path}:{bad_line}" in refused[0], refused
    assert "atach-daemon" in refused[0] and "hint:" in refused[0]
    assert "Traceback" not in log
    assert [d["pid"] for d in inst.stats()["daemons"]] == [a_pid, b_pid]
    assert find_init_and_master(inst) == (init, master)
    assert inst.stop() == 0


def test_reload_in_a_jail_keeps_user_and_group_names_the_jail_does_not_know(nsuwsgi, rootfs,
                                                                            tmp_path):
    """uid, gid and chown-socket by name are resolved on the host, where the file was read;
    the jail's own /etc/passwd has no www-data, and a reload must not look there."""
    assert "www-data" not in (rootfs / "etc" / "passwd").read_text()
    www = (pwd.getpwnam("www-data").pw_uid, grp.getgrnam("www-data").gr_gid)
    ini_path = tmp_path / "names.ini"
    first = (f"uid = www-data\ngid = www-data\n"
             f"attach-daemon = {JAIL_PYTHON} /facts.py /tmp/a.json\n")
    write_ini(ini_path, jail_ini(rootfs, "namesns") + first)
    inst = nsuwsgi("--ini", str(ini_path))
    inst.ready()
    a = wait_for(lambda: read_json(rootfs / "tmp" / "a.json"), 10, "daemon a's facts")
    assert (a["uid"], a["gid"]) == www

    write_ini(ini_path, jail_ini(rootfs, "namesns") + first +
              f"attach-daemon = {JAIL_PYTHON} /facts.py /tmp/b.json\n")
    inst.signal(signal.SIGHUP)
    b = wait_for(lambda: read_json(rootfs / "tmp" / "b.json"), 10,
                 f"the new daemon's facts:\n{inst.log()}")
    assert (b["uid"], b["gid"]) == www
    assert "reload refused" not in inst.log()
    assert inst.stop() == 0


# --------------------------------------------------------------------------- 7. keeper killed

def test_keeper_sigkilled_takes_the_whole_jail_down(nsuwsgi, rootfs, tmp_path):
    ini = write_ini(tmp_path / "kill.ini", jail_ini(rootfs, "killns", """
        attach-daemon = /bin/sh -c "sleep 1000 & sleep 1001"
        attach-daemon2 = cmd=/bin/sleep 1002
    """))
    inst = nsuwsgi("--ini", str(ini))
    inst.ready()
    inst.wait_running(0)
    inst.wait_running(1)
    # init, master, lifeline, the shell and its two sleeps, the second sleep
    def both_sleeps():
        found = descendants(inst.pid)
        cmdlines = [" ".join(linux.proc_cmdline(p)) for p in found]
        wanted = all(any(name in c for c in cmdlines) for name in ("sleep 1000", "sleep 1002"))
        return found if wanted and len(found) >= 6 else None
    jailed = wait_for(both_sleeps, 10, "the jail's processes")
    os.kill(inst.pid, signal.SIGKILL)
    assert inst.wait_exit(5) == -signal.SIGKILL
    wait_for(lambda: gone(jailed), 5,
             f"every jailed process gone after the keeper's death: "
             f"{[(p, linux.proc_cmdline(p)) for p in jailed if alive(p)]}")
    assert not mounts_under(rootfs)


# --------------------------------------------------------------------------- 8. errors

@pytest.fixture
def public_dir():
    """A directory every user can read (root's pytest tmp tree is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="nsuerr", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def one_error_line(result, ini: Path, option: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"exactly one line: {result.stderr!r}"
    line = lines[0]
    prefix = rf"nsuwsgi: error: {re.escape(str(ini))}:\d+: {re.escape(option)}: "
    assert re.match(prefix, line), line
    assert "(hint: " in line and line.endswith(")"), line
    return line


def test_rootfs_without_proc_is_refused(public_dir):
    root = public_dir / "root"
    build_rootfs(str(root), usr_from_host=True, warn=lambda message: None)
    (root / "proc").rmdir()
    ini = write_ini(public_dir / "e.ini", f"""
        [uwsgi]
        namespace = {root}:t
        attach-daemon = sleep 100
    """)
    line = one_error_line(run_cli("--ini", str(ini)), ini, "namespace")
    assert f"{ini}:2:" in line and "/proc" in line


def test_missing_keep_mount_source_is_refused(public_dir):
    root = public_dir / "root"
    build_rootfs(str(root), usr_from_host=True, warn=lambda message: None)
    ini = write_ini(public_dir / "e.ini", f"""
        [uwsgi]
        namespace = {root}:t
        namespace-keep-mount = /usr:/usr:ro
        namespace-keep-mount = /no/such/source:/usr
        attach-daemon = sleep 100
    """)
    line = one_error_line(run_cli("--ini", str(ini)), ini, "namespace-keep-mount")
    assert f"{ini}:4:" in line and "/no/such/source" in line


def test_unknown_unshare_flag_is_refused(public_dir):
    ini = write_ini(public_dir / "e.ini", """
        [uwsgi]
        unshare = uts,netz
        attach-daemon = sleep 100
    """)
    line = one_error_line(run_cli("--ini", str(ini)), ini, "unshare")
    assert f"{ini}:2:" in line and "'netz'" in line and "'net'" in line


def test_namespace_as_a_non_root_user_is_refused(public_dir):
    root = public_dir / "root"
    build_rootfs(str(root), usr_from_host=True, warn=lambda message: None)
    ini = write_ini(public_dir / "e.ini", f"""
        [uwsgi]
        namespace = {root}:t
        namespace-keep-mount = /usr:/usr:ro
        attach-daemon = sleep 100
    """)
    os.chmod(ini, 0o644)
    result = subprocess.run(["setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY),
                             "--clear-groups", PYTHON, "-m", "nsuwsgi", "--ini", str(ini)],
                            capture_output=True, text=True, cwd=ROOT, timeout=30,
                            stdin=subprocess.DEVNULL)
    line = one_error_line(result, ini, "namespace")
    assert f"{ini}:2:" in line and "root" in line
