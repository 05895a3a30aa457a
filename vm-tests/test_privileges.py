"""uid/gid for daemons and for the instance, checked on real processes as root."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile

import pytest

from support import PYTHON, SIGDAEMON, read_events, wait_for

NOBODY = pwd.getpwnam("nobody")


@pytest.fixture
def shared_dir():
    """A directory nobody can write to, outside root's 0700 pytest tmp tree."""
    path = tempfile.mkdtemp(prefix="nsuvm", dir="/tmp")
    os.chmod(path, 0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def proc_ids(pid: int) -> dict:
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    return {key: status[key].split() for key in ("Uid", "Gid", "Groups")}


def started(log):
    return wait_for(lambda: [e for e in read_events(log) if e["event"] == "start"], 10,
                    f"a start record in {log}")[0]


def test_daemon_uid_and_gid_by_name_drop_supplementary_groups(nsuwsgi, shared_dir):
    log = os.path.join(shared_dir, "d.log")
    inst = nsuwsgi("--attach-daemon2",
                   f"cmd={PYTHON} {SIGDAEMON} {log},uid=nobody,gid=nogroup")
    inst.ready()
    pid = inst.wait_running(0)
    record = started(log)
    assert (record["uid"], record["gid"]) == (NOBODY.pw_uid, NOBODY.pw_gid)
    assert 0 not in record["groups"], "root's supplementary groups are not inherited"
    ids = proc_ids(pid)
    assert set(ids["Uid"]) == {str(NOBODY.pw_uid)}, "real, effective, saved and fs uid"
    assert set(ids["Gid"]) == {str(NOBODY.pw_gid)}
    assert inst.proc.poll() is None
    assert proc_ids(inst.pid)["Uid"][0] == "0", "the master keeps root to manage daemons"


def test_daemon_numeric_uid_gid_like_uwsgi(nsuwsgi, shared_dir):
    log = os.path.join(shared_dir, "d.log")
    inst = nsuwsgi("--attach-daemon2", f"cmd={PYTHON} {SIGDAEMON} {log},uid=33,gid=33")
    inst.ready()
    record = started(log)
    assert (record["uid"], record["gid"]) == (33, 33)


def test_instance_uid_gid_drop_applies_to_master_and_daemons(nsuwsgi, shared_dir):
    log = os.path.join(shared_dir, "d.log")
    inst = nsuwsgi("--uid", "nobody", "--gid", "nogroup",
                   "--attach-daemon", f"{PYTHON} {SIGDAEMON} {log}")
    inst.ready()
    record = started(log)
    assert record["uid"] == NOBODY.pw_uid
    assert set(proc_ids(inst.pid)["Uid"]) == {str(NOBODY.pw_uid)}
    assert set(proc_ids(inst.pid)["Gid"]) == {str(NOBODY.pw_gid)}
    assert "setuid() to" in inst.log()
    assert inst.stop() == 0


def test_daemon_uid_under_a_non_root_master_is_a_clear_spawn_error(nsuwsgi, shared_dir):
    log = os.path.join(shared_dir, "d.log")
    inst = nsuwsgi("--uid", "nobody",
                   "--attach-daemon2", f"cmd={PYTHON} {SIGDAEMON} {log},uid=33")
    inst.ready()
    inst.wait_log("cannot start")
    text = inst.log()
    assert "setgroups failed" in text or "setuid failed" in text or "setgid failed" in text
    assert "need a master running as root" in text
