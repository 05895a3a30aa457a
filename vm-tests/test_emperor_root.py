"""The Emperor as root: tyrant mode, clone() namespaces and jailed vassals, on real processes.

Everything a vassal running as nobody must read lives under a 0755 directory in /tmp (root's
pytest tmp tree is 0700); its sockets go into a 0777 one. The app answers with what the worker
sees: "UID HOSTNAME PID GREETING".
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

from nsuwsgi import linux
from nsuwsgi.rootfs import build_rootfs
from emperor_support import Emperor, descendants
from support import alive, mounts_under, unix_http_get, wait_for

NOBODY = pwd.getpwnam("nobody").pw_uid
NOGROUP = grp.getgrnam("nogroup").gr_gid

APP = '''
import os
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("%d %s %d %s" % (os.getuid(), os.uname().nodename, os.getpid(),
                              os.environ.get("GREETING", "-"))).encode()]
'''


# --------------------------------------------------------------------------- helpers

@pytest.fixture
def public():
    """(base, sockets): base is 0755 (vassal files, app), sockets is 0777 (nobody binds there)."""
    base = Path(tempfile.mkdtemp(prefix="nsuemp", dir="/tmp"))
    os.chmod(base, 0o755)
    sockets = base / "s"
    sockets.mkdir()
    os.chmod(sockets, 0o777)
    (base / "vassals").mkdir()
    (base / "app.py").write_text(APP)
    yield base
    leftover = mounts_under(base)
    assert not leftover, f"mounts left on the host: {leftover}"
    shutil.rmtree(base, ignore_errors=True)


def vassal_ini(base: Path, name: str, *lines, app="") -> Path:
    path = base / "vassals" / name
    tmp = base / "vassals" / f".{name}.tmp"
    tmp.write_text("\n".join(["[uwsgi]", f"http-socket = {base / 's' / (name + '.sock')}",
                              f"wsgi-file = {app or base / 'app.py'}", "processes = 1",
                              *lines]) + "\n")
    os.replace(tmp, path)
    return path


def sock_of(base: Path, name: str) -> str:
    return str(base / "s" / (name + ".sock"))


def answer(sock: str) -> tuple[int, str, int, str] | None:
    try:
        data = unix_http_get(sock)
    except OSError:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        return None
    uid, host, pid, greeting = body.decode().split()
    return int(uid), host, int(pid), greeting


def wait_answer(sock: str, emp, timeout=20.0, greeting=None):
    def check():
        found = answer(sock)
        return found if found and greeting in (None, found[3]) else None
    return wait_for(check, timeout, f"an answer {greeting or ''} on {sock}:\n"
                    f"{emp.log()[-3000:]}")


def status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def start_emperor(nsuwsgi, base: Path, *extra) -> Emperor:
    return Emperor(nsuwsgi, base / "s", base / "vassals", "--emperor-throttle", "100", *extra)


# --------------------------------------------------------------------------- tyrant

def test_tyrant_runs_each_vassal_as_its_file_owner_and_refuses_root_files(nsuwsgi, public):
    base = public
    tenant = vassal_ini(base, "tenant.ini")
    os.chown(tenant, NOBODY, NOGROUP)
    vassal_ini(base, "rooted.ini")                       # owned by root

    emp = start_emperor(nsuwsgi, base, "--emperor-tyrant")
    uid, _, worker, _ = wait_answer(sock_of(base, "tenant.ini"), emp)
    assert uid == NOBODY
    master = emp.wait_vassal("tenant.ini", lambda v: v["pid"] > 0,
                             what="tenant running")["pid"]
    ids = status(master)
    assert set(ids["Uid"].split()) == {str(NOBODY)}, "real, effective, saved and fs uid"
    assert set(ids["Gid"].split()) == {str(NOGROUP)}
    assert ids["Groups"].split() == [], "no supplementary group of root's"
    v = emp.vassal("tenant.ini")
    assert (v["uid"], v["gid"]) == (NOBODY, NOGROUP)
    assert emp.stats()["emperor_tyrant"] is True

    text = wait_for(lambda: "vassal rooted.ini refused" in emp.log() and emp.log(), 10,
                    "the refusal of the root-owned file")
    assert f"{base / 'vassals' / 'rooted.ini'} is owned by root (uid 0, gid 0)" in text
    assert emp.vassal("rooted.ini") is None
    assert answer(sock_of(base, "rooted.ini")) is None
    tenants = [p for p in descendants(emp.pid) if p not in emp.helpers()]
    assert sorted(tenants) == sorted([master, worker]), "the root-owned vassal has no process"
    assert all(status(p)["Uid"].split()[0] == str(NOBODY) for p in tenants)

    os.chown(tenant, 0, 0)                     # given to root while running: stopped
    wait_for(lambda: emp.vassal("tenant.ini") is None and not alive(master), 10,
             f"the re-owned vassal to stop:\n{emp.log()[-2000:]}")
    assert emp.stop() == 0

    emp = start_emperor(nsuwsgi, base, "--emperor-tyrant", "--emperor-tyrant-allow-root")
    for name in ("tenant.ini", "rooted.ini"):
        uid = wait_answer(sock_of(base, name), emp)[0]
        assert uid == 0, "allowed: root-owned files run as root"
    assert emp.stop() == 0


# --------------------------------------------------------------------------- clone

def test_use_clone_spawns_each_vassal_in_new_namespaces(nsuwsgi, public):
    vassal_ini(public, "cloned.ini")
    emp = start_emperor(nsuwsgi, public, "--emperor-use-clone", "pid,mount,uts,ipc")
    _, _, inner, _ = wait_answer(sock_of(public, "cloned.ini"), emp)
    top = emp.wait_vassal("cloned.ini", lambda v: v["pid"] > 0, what="cloned running")["pid"]
    assert status(top)["NSpid"].split()[1:] == ["1"], "the vassal's first process is PID 1"
    below = {int(status(p)["NSpid"].split()[-1]): p for p in descendants(top)}
    worker = below[inner]                # the worker that answered, by its pid inside
    assert status(worker)["NSpid"].split() == [str(worker), str(inner)]
    for ns in ("pid", "mnt", "uts", "ipc"):
        assert os.readlink(f"/proc/{worker}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns
    assert os.readlink(f"/proc/{worker}/ns/net") == os.readlink("/proc/self/ns/net")
    v = emp.wait_vassal("cloned.ini", lambda v: v["ready"] and v["last_heartbeat"] > 0,
                        what="the cloned vassal's READY=1, heard from its master (PID 2 inside)")
    assert v["status"].startswith("nsuwsgi is ready")
    master = linux.proc_children(top)[0]

    vassal_ini(public, "cloned.ini", "env = GREETING=reloaded")   # a graceful reload
    wait_answer(sock_of(public, "cloned.ini"), emp, greeting="reloaded")
    v = emp.wait_vassal("cloned.ini", lambda v: v["ready"], what="ready again after the reload")
    assert v["pid"] == top and v["respawns"] == 0 and linux.proc_children(top) == [master]
    assert emp.stop() == 0
    assert not alive(top) and not alive(master) and not alive(worker)


# --------------------------------------------------------------------------- jail

def test_a_jailed_vassal_serves_and_dies_with_a_sigkilled_emperor(nsuwsgi, public):
    root = public / "root"
    build_rootfs(str(root), usr_from_host=True, warn=lambda message: None)
    (root / "app.py").write_text(APP)
    vassal_ini(public, "jailed.ini", f"namespace = {root}:vhost",
               "namespace-keep-mount = /usr:/usr:ro", app="/app.py")
    vassal_ini(public, "plain.ini")
    emp = start_emperor(nsuwsgi, public)
    uid, host, pid, _ = wait_answer(sock_of(public, "jailed.ini"), emp)
    assert (uid, host) == (0, "vhost") and pid < 100, "served from inside the jail"
    assert wait_answer(sock_of(public, "plain.ini"), emp)[1] != "vhost"
    v = emp.wait_vassal("jailed.ini", lambda v: v["ready"], what="the jailed vassal's READY=1")
    assert v["state"] == "running"

    def whole_tree():
        found = descendants(emp.pid)
        hosts = set()
        for p in found:
            try:
                hosts.add(os.readlink(f"/proc/{p}/ns/uts"))
            except OSError:
                pass
        return found if len(hosts) == 2 and len(found) >= 6 else None
    tree = wait_for(whole_tree, 10, "the jail's processes and the plain vassal's")
    emp.inst.signal(signal.SIGKILL)
    assert emp.inst.wait_exit(5) == -signal.SIGKILL
    wait_for(lambda: not [p for p in tree if alive(p)], 10,
             f"every vassal process gone: {[(p, linux.proc_cmdline(p)) for p in tree if alive(p)]}")
    assert answer(sock_of(public, "jailed.ini")) is None
    wait_for(lambda: not mounts_under(root), 5, "the jail's mounts gone with it")
