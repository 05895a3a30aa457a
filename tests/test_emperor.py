"""The Emperor for real: vassal files in a directory, real vassal instances, real signals.

Each test starts `python -m nsuwsgi --emperor DIR --emperor-stats SOCK` (the `nsuwsgi` fixture),
changes files in DIR and watches what happens from the outside: HTTP answers over each
vassal's unix socket, the Emperor's stats, its log (the vassals share its stdout), and the
sd_notify datagrams it sends to a real NOTIFY_SOCKET (notify_listener.py). Every wait is a
bounded poll on a condition; every Emperor is stopped with SIGTERM by the test and waited for.

The app (emperor_support.APP) answers "GREETING MASTER WORKER ...": the env var GREETING (set
with `env =` in the vassal file), the vassal master's pid (the worker's parent) and the
worker's pid, so a test can tell a graceful reload (same master, new worker) from a restart
(new master).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
import uuid
from pathlib import Path

import pytest

from notify_listener import NotifyListener
from nsuwsgi import linux
from emperor_support import Emperor, descendants, get, ini, write_atomic
from emperor_support import app, vassals  # noqa: F401 - pytest fixtures
from support import alive, kill_pid, run_cli, wait_for

# --------------------------------------------------------------------------- helpers

@pytest.fixture
def listener():
    with NotifyListener(f"@nsuwsgi-emperor-test-{uuid.uuid4().hex}") as lst:
        yield lst


def try_get(sock) -> tuple[str, int, int] | None:
    """(greeting, master pid, worker pid), or None while nothing answers."""
    try:
        greeting, master, worker = get(sock).decode().split()[:3]
    except (OSError, ValueError):
        return None
    return greeting, int(master), int(worker)


def wait_answer(sock, greeting=None, timeout=15.0, what="", **where):
    """The first answer (with `greeting`, when given) whose master/worker match `where`."""
    def check():
        answer = try_get(sock)
        if answer is None or greeting is not None and answer[0] != greeting:
            return None
        if "master" in where and answer[1] != where["master"]:
            return None
        if "not_master" in where and answer[1] == where["not_master"]:
            return None
        if "not_worker" in where and answer[2] == where["not_worker"]:
            return None
        return answer
    return wait_for(check, timeout, what or f"an answer {greeting or ''} {where} on {sock}")


def refused(sock) -> bool:
    return try_get(sock) is None


# --------------------------------------------------------------------------- 1. add, remove

def test_vassals_come_and_go_with_their_files_and_systemd_hears_the_count(
        nsuwsgi, sockdir, vassals, app, listener):
    a_sock, b_sock = sockdir / "a.sock", sockdir / "b.sock"
    write_atomic(vassals / "a.ini", ini(a_sock, app, "env = GREETING=a"))
    emp = Emperor(nsuwsgi, sockdir, vassals, listener=listener)

    ready = listener.wait_for_field("READY", "1")
    assert ready.fields["STATUS"] == "The Emperor is governing 1 vassal"
    assert wait_answer(a_sock, "a")[0] == "a"

    mark = listener.mark()
    write_atomic(vassals / "b.ini", ini(b_sock, app, "env = GREETING=b"))
    listener.wait_for_field("STATUS", "The Emperor is governing 2 vassals", since=mark)
    wait_answer(b_sock, "b")

    b_master = emp.wait_ready("b.ini")["pid"]
    mark = listener.mark()
    (vassals / "b.ini").unlink()
    listener.wait_for_field("STATUS", "The Emperor is governing 1 vassal", since=mark)
    wait_for(lambda: refused(b_sock), 10, "b's socket to stop answering")
    wait_for(lambda: not alive(b_master), 10, "b's master to end")
    emp.wait_gone("b.ini")
    assert wait_answer(a_sock, "a")[0] == "a", "a was not disturbed"
    emp.wait_log("vassal b.ini removed: stopping it")

    mark = listener.mark()
    a_master = emp.vassal("a.ini")["pid"]
    assert emp.stop() == 0
    listener.wait_for_field("STOPPING", "1", since=mark)
    listener.wait_for_field("STATUS", "The Emperor is buried.", since=mark)
    assert not alive(a_master)
    assert {m.pid for m in listener.messages} == {emp.pid}, \
        "only the Emperor talks to its own NOTIFY_SOCKET; vassals talk to the Emperor"
    assert "The Emperor is buried." in emp.log()


# --------------------------------------------------------------------------- 2, 3. changes

def test_a_changed_vassal_file_is_a_graceful_reload_of_the_same_master(
        nsuwsgi, sockdir, vassals, app):
    sock = sockdir / "r.sock"
    path = vassals / "r.ini"
    write_atomic(path, ini(sock, app, "env = GREETING=one"))
    emp = Emperor(nsuwsgi, sockdir, vassals)
    _, master, worker = wait_answer(sock, "one")

    path.write_text(ini(sock, app, "env = GREETING=two"))        # edited in place
    wait_answer(sock, "two", master=master, not_worker=worker,
                what="the new greeting from a new worker of the same master")
    v = emp.wait_ready("r.ini")
    assert v["pid"] == master and v["respawns"] == 0 and v["failures"] == 0
    emp.wait_log("vassal r.ini changed: graceful reload")
    assert emp.stop() == 0


def test_two_same_size_changes_with_the_same_mtime_are_both_applied(
        nsuwsgi, sockdir, vassals, app):
    """uWSGI compares whole-second mtimes, so its second edit within a second is lost."""
    sock = sockdir / "s.sock"
    path = vassals / "s.ini"
    write_atomic(path, ini(sock, app, "env = GREETING=zero"))
    emp = Emperor(nsuwsgi, sockdir, vassals)
    _, master, _ = wait_answer(sock, "zero")
    mtime = int(time.time()) * 1_000_000_000        # one whole second for both edits
    for greeting in ("aaaa", "bbbb"):                # same size: only the content differs
        path.write_text(ini(sock, app, f"env = GREETING={greeting}"))
        os.utime(path, ns=(mtime, mtime))
        wait_answer(sock, greeting, master=master)
    assert os.stat(path).st_mtime_ns == mtime
    assert emp.vassal("s.ini")["pid"] == master
    assert emp.stop() == 0


def test_rename_into_the_directory_spawns_and_rename_out_stops(
        nsuwsgi, sockdir, vassals, app, tmp_path):
    sock = sockdir / "x.sock"
    emp = Emperor(nsuwsgi, sockdir, vassals)
    wait_for(emp.stats, 10, "the Emperor's stats")
    hidden = vassals / ".x.ini.tmp"                  # a hidden name is not a vassal
    hidden.write_text(ini(sock, app, "env = GREETING=renamed"))
    outside = tmp_path / "x.ini"
    outside.write_text(ini(sock, app, "env = GREETING=replaced"))
    os.rename(hidden, vassals / "x.ini")
    _, master, _ = wait_answer(sock, "renamed")
    assert [v["id"] for v in emp.stats()["vassals"]] == ["x.ini"]

    os.rename(outside, vassals / "x.ini")            # an atomic replace: a new inode
    wait_answer(sock, "replaced", master=master)

    os.rename(vassals / "x.ini", tmp_path / "x.ini.off")
    emp.wait_gone("x.ini")
    wait_for(lambda: refused(sock) and not alive(master), 10, "x's vassal to stop")
    assert emp.stop() == 0


def test_a_symlinked_vassal_follows_its_target_and_its_retargeting(
        nsuwsgi, sockdir, vassals, app, tmp_path):
    sock = sockdir / "l.sock"
    configs = tmp_path / "configs"
    configs.mkdir()
    first, second = configs / "first.ini", configs / "second.ini"
    first.write_text(ini(sock, app, "env = GREETING=first"))
    second.write_text(ini(sock, app, "env = GREETING=second"))
    old = time.time() - 3600
    os.utime(second, (old, old))        # older than the first: uWSGI misses the retarget
    (vassals / "l.ini").symlink_to(first)
    emp = Emperor(nsuwsgi, sockdir, vassals)
    _, master, _ = wait_answer(sock, "first")

    first.write_text(ini(sock, app, "env = GREETING=edited"))    # the target's content
    wait_answer(sock, "edited", master=master)

    tmp_link = vassals / ".l.ini.new"
    tmp_link.symlink_to(second)
    os.replace(tmp_link, vassals / "l.ini")                      # ln -sfn, atomically
    wait_answer(sock, "second", master=master)
    v = emp.vassal("l.ini")
    assert v["path"] == str(vassals / "l.ini") and v["pid"] == master
    assert emp.stop() == 0


# --------------------------------------------------------------------------- 6. failures

def test_bad_vassals_back_off_into_quarantine_while_a_healthy_one_serves(
        nsuwsgi, sockdir, vassals, app):
    good_sock = sockdir / "good.sock"
    write_atomic(vassals / "good.ini", ini(good_sock, app, "env = GREETING=good"))
    emp = Emperor(nsuwsgi, sockdir, vassals, "--emperor-throttle", "50",
                  "--emperor-max-throttle", "300")
    _, good_master, _ = wait_answer(good_sock, "good")
    bad = write_atomic(vassals / "bad.ini", ini(sockdir / "bad.sock", app) +
                       "bogus-option = 1\n")
    write_atomic(vassals / "crash.ini", "[uwsgi]\nattach-control-daemon = /bin/false\n")

    seen: dict[str, set] = {"bad.ini": set(), "crash.ini": set()}
    answers = 0

    def both_quarantined():
        nonlocal answers
        answer = try_get(good_sock)
        assert answer is not None and answer[:2] == ("good", good_master), \
            f"the healthy vassal answers the whole time: {answer}"
        answers += 1
        for v in emp.stats()["vassals"]:
            if v["id"] in seen:
                seen[v["id"]].add(v["state"])
        return all("broken" in states for states in seen.values())
    wait_for(both_quarantined, 20, f"both bad vassals quarantined: {seen}\n{emp.log()[-3000:]}",
             interval=0.02)
    assert answers >= 3, "the healthy vassal was asked while the others failed"
    by_name = {v["id"]: v for v in emp.stats()["vassals"]}
    assert by_name["bad.ini"]["first_failure"] == "exited with code 2"
    assert by_name["crash.ini"]["first_failure"] == "exited with code 3"
    for name in ("bad.ini", "crash.ini"):
        v = by_name[name]
        assert v["failures"] >= 4 and v["respawns"] >= 3, v
        assert v["last_exit"] in ("exited with code 2", "exited with code 3"), v
    good = by_name["good.ini"]
    assert (good["pid"], good["state"], good["respawns"], good["failures"]) == \
           (good_master, "running", 0, 0)
    log = emp.log()
    assert f"{bad}:5: unknown option 'bogus-option'" in log, "the file, line and option"
    assert "vassal bad.ini keeps failing: quarantined" in log
    assert "vassal crash.ini keeps failing: quarantined" in log
    assert emp.stats()["governing"] >= 1
    assert emp.stop() == 0


def test_fixing_a_backed_off_vassal_retries_it_at_once(nsuwsgi, sockdir, vassals, app):
    """A 60 s backoff, but the rewrite is served long before it ends."""
    sock = sockdir / "fix.sock"
    path = write_atomic(vassals / "fix.ini", ini(sock, app, "env = GREETING=fixed") +
                        "bogus-option = 1\n")
    emp = Emperor(nsuwsgi, sockdir, vassals, "--emperor-throttle", "60000")
    emp.wait_vassal("fix.ini", lambda v: v["state"] == "backoff" and v["failures"] == 2,
                    what="fix.ini backing off after its second failure")
    emp.wait_log("will be started again in 60.0s")
    write_atomic(path, ini(sock, app, "env = GREETING=fixed"))
    wait_answer(sock, "fixed", timeout=20)      # well inside the 60 s backoff
    emp.wait_log("vassal fix.ini changed: retrying it now")
    v = emp.wait_ready("fix.ini")
    assert v["state"] == "running" and v["first_failure"] == "exited with code 2"
    assert emp.stop() == 0


def test_a_fix_made_while_a_retry_is_starting_restarts_it_at_once(
        nsuwsgi, sockdir, vassals, app, tmp_path):
    """The retry has no SIGHUP handler yet: a graceful reload would kill it and count one more
    failure (a doubled backoff); it is started again at once instead, its streak forgotten.
    The wrapper holds each start while the HOLD file exists, so the retry is caught starting."""
    hold = tmp_path / "HOLD"
    wrapper = tmp_path / "held.sh"
    wrapper.write_text(f'#!/bin/sh\nwhile [ -e "{hold}" ]; do sleep 0.02; done\n'
                       f'exec "{sys.executable}" -m nsuwsgi "$@"\n')
    wrapper.chmod(0o755)
    sock = sockdir / "held.sock"
    path = write_atomic(vassals / "held.ini", ini(sock, app, "env = GREETING=held") +
                        "bogus-option = 1\n")
    emp = Emperor(nsuwsgi, sockdir, vassals, "--emperor-wrapper", str(wrapper),
                  "--emperor-throttle", "1500")
    first = emp.wait_vassal("held.ini", lambda v: v["state"] == "backoff" and v["failures"] == 2,
                            what="held.ini backing off after two failures")
    hold.write_text("")
    retry = emp.wait_vassal("held.ini", lambda v: v["state"] == "running" and v["pid"] > 0,
                            what="the timer's retry, held while starting")
    assert retry["failures"] == first["failures"] == 2
    write_atomic(path, ini(sock, app, "env = GREETING=held"))
    again = emp.wait_vassal("held.ini", lambda v: v["pid"] not in (0, retry["pid"]),
                            what="a new start right after the fix")
    assert again["failures"] == 0 and again["state"] == "running", again
    hold.unlink()
    wait_answer(sock, "held")
    log = emp.log()
    assert "vassal held.ini changed while starting: restarting it now" in log
    assert "killed by SIGHUP" not in log
    assert emp.stop() == 0


# --------------------------------------------------------------------------- 7. templates

def test_templates_include_include_before_and_vassal_set(nsuwsgi, sockdir, vassals, tmp_path):
    """include-before < the vassal's file < include; `vassal-set` fills %(placeholders)."""
    app = tmp_path / "tpl.py"
    app.write_text('''
import os
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    body = " ".join(os.environ.get(k, "-") for k in ("GREETING", "TAG", "COLOR"))
    return [body.encode()]
''')
    before, after = tmp_path / "before.ini", tmp_path / "after.ini"
    before.write_text("[uwsgi]\nenv = TAG=before\nprocesses = 3\n")
    after.write_text("[uwsgi]\nenv = COLOR=after\nprocesses = 2\n")
    sock = sockdir / "t.sock"
    write_atomic(vassals / "t.ini", ini(sock, app, "env = GREETING=%(greeting)",
                                        "env = TAG=vassal", "env = COLOR=vassal"))
    emp = Emperor(nsuwsgi, sockdir, vassals, "--vassal-set", "greeting=from-set",
                  "--vassals-include-before", str(before), "--vassals-include", str(after))

    def body():
        try:
            return get(sock).decode()
        except OSError:
            return None
    assert wait_for(body, 15, f"an answer on {sock}") == "from-set vassal after"
    master = emp.wait_ready("t.ini")["pid"]
    workers = wait_for(lambda: len(linux.proc_children(master)) == 2 and
                       linux.proc_children(master), 10, "two workers")
    assert len(workers) == 2, "processes = 2 from the include beats the vassal's 1"
    assert emp.stop() == 0


# --------------------------------------------------------------------------- 8. on demand

def on_demand_ini(sock, app) -> str:
    return ini(sock, app, "env = GREETING=lazy", "idle = 1", "die-on-idle = true")


def check_on_demand(emp: Emperor, name: str, sock: Path) -> None:
    v = emp.wait_vassal(name, lambda v: v["on_demand"] == str(sock), what=f"{name} armed")
    assert v["pid"] == 0 and v["state"] == "stopped" and not v["ready"], v
    assert emp.vassal_processes() == [], "no vassal process before the first connection"
    assert os.path.exists(sock), "the Emperor bound the socket itself"

    _, first, _ = wait_answer(sock, "lazy", what="the first connection answered")
    v = emp.vassal(name)
    assert v["pid"] == first and v["on_demand"] == str(sock)
    emp.wait_vassal(name, lambda v: v["pid"] == 0, what=f"{name} gone idle (die-on-idle)")
    wait_for(lambda: not alive(first), 10, "the idle vassal to end")
    assert emp.vassal(name)["last_exit"] == "exited with code 0"
    assert emp.vassal(name)["failures"] == 0
    emp.wait_log(f"vassal {name} back to on-demand mode")

    _, second, _ = wait_answer(sock, "lazy", what="the next connection answered")
    assert second != first


def test_on_demand_directory(nsuwsgi, sockdir, vassals, app, listener):
    demand = sockdir / "demand"
    demand.mkdir()
    sock = demand / "od.socket"
    write_atomic(vassals / "od.ini", on_demand_ini(sock, app))
    emp = Emperor(nsuwsgi, sockdir, vassals, "--emperor-on-demand-dir", str(demand),
                  listener=listener)
    ready = listener.wait_for_field("READY", "1")
    assert ready.fields["STATUS"] == "The Emperor is governing 1 vassal", \
        "an armed on-demand vassal counts"
    check_on_demand(emp, "od.ini", sock)
    assert emp.stop() == 0
    assert not os.path.exists(sock), "the Emperor removes the socket it bound"


def test_on_demand_extension(nsuwsgi, sockdir, vassals, app):
    sock = sockdir / "ext.sock"
    (vassals / "ext.ini.sock").write_text(f"{sock}\n")
    write_atomic(vassals / "ext.ini", on_demand_ini(sock, app))
    emp = Emperor(nsuwsgi, sockdir, vassals, "--emperor-on-demand-ext", ".sock")
    check_on_demand(emp, "ext.ini", sock)
    assert [v["id"] for v in emp.stats()["vassals"]] == ["ext.ini"], \
        "ext.ini.sock is not a vassal"
    assert emp.stop() == 0


# --------------------------------------------------------------------------- 9. heartbeat

def test_a_stopped_vassal_misses_its_heartbeat_and_is_respawned(nsuwsgi, sockdir, vassals, app):
    sock = sockdir / "hb.sock"
    write_atomic(vassals / "hb.ini", ini(sock, app, "env = GREETING=beat"))
    emp = Emperor(nsuwsgi, sockdir, vassals, "--emperor-required-heartbeat", "2")
    _, master, _ = wait_answer(sock, "beat")
    emp.wait_vassal("hb.ini", lambda v: v["last_heartbeat"] > 0, what="a first heartbeat")
    os.kill(master, signal.SIGSTOP)
    try:
        v = emp.wait_vassal("hb.ini", lambda v: v["pid"] not in (0, master) and v["ready"],
                            timeout=15, what="a new vassal after the missed heartbeat")
        assert v["respawns"] == 1 and v["last_exit"] == "was killed by SIGKILL", v
        wait_for(lambda: not alive(master), 5, "the stopped master to be gone")
    finally:
        if alive(master):
            kill_pid(master, signal.SIGCONT)
    emp.wait_log("vassal hb.ini sent no heartbeat in 2s: killing it")
    wait_answer(sock, "beat", master=v["pid"])
    assert emp.stop() == 0


# --------------------------------------------------------------------------- 10, 11. signals

def test_sighup_reloads_every_vassal_gracefully(nsuwsgi, sockdir, vassals, app, listener):
    socks = {name: sockdir / f"{name}.sock" for name in ("h1", "h2")}
    for name, sock in socks.items():
        write_atomic(vassals / f"{name}.ini", ini(sock, app, f"env = GREETING={name}"))
    emp = Emperor(nsuwsgi, sockdir, vassals, listener=listener)
    listener.wait_for_field("READY", "1")
    before = {name: wait_answer(sock, name) for name, sock in socks.items()}
    for name in socks:
        emp.wait_ready(f"{name}.ini")

    mark = listener.mark()
    emp.signal(signal.SIGHUP)
    reloading = listener.wait_for_field("RELOADING", "1", since=mark)
    assert int(reloading.fields["MONOTONIC_USEC"]) > 0
    after_mark = listener.messages.index(reloading) + 1
    ready = listener.wait_for_field("READY", "1", since=after_mark)
    assert ready.fields["STATUS"] == "The Emperor is governing 2 vassals"
    for name, sock in socks.items():
        _, master, worker = before[name]
        wait_answer(sock, name, master=master, not_worker=worker,
                    what=f"{name} served by a new worker of the same master")
        v = emp.wait_ready(f"{name}.ini")
        assert v["pid"] == master and v["respawns"] == 0
    assert emp.log().count("graceful reload: reading the configuration again") == 2
    assert emp.stop() == 0


@pytest.mark.parametrize("fork_server", ["true", "false"])
def test_emperor_sigkill_takes_every_vassal_and_worker_down(nsuwsgi, sockdir, vassals, app,
                                                            fork_server):
    socks = [sockdir / "k1.sock", sockdir / "k2.sock"]
    for i, sock in enumerate(socks):
        write_atomic(vassals / f"k{i}.ini", ini(sock, app, "processes = 2"))
    emp = Emperor(nsuwsgi, sockdir, vassals, f"--emperor-fork-server={fork_server}")
    masters = [wait_answer(sock)[1] for sock in socks]
    workers = [wait_for(lambda: len(linux.proc_children(m)) == 2 and linux.proc_children(m),
                        10, f"two workers under {m}") for m in masters]
    tree = descendants(emp.pid)         # collected before the kill: they become our orphans
    assert sorted(emp.vassal_processes()) == sorted(masters + workers[0] + workers[1]), tree
    assert bool(emp.helpers()) == (fork_server == "true")
    emp.signal(signal.SIGKILL)
    assert emp.inst.wait_exit(5) == -signal.SIGKILL
    wait_for(lambda: not [p for p in tree if alive(p)], 10,
             f"every vassal process gone: {[p for p in tree if alive(p)]}")
    assert all(refused(sock) for sock in socks)


def test_a_killed_fork_server_costs_the_emperor_nothing(nsuwsgi, sockdir, vassals, app):
    """Its vassals die with it (PDEATHSIG); the Emperor lives on and starts them again as new
    processes, and vassals added later start too."""
    sock = sockdir / "f1.sock"
    write_atomic(vassals / "f1.ini", ini(sock, app))
    emp = Emperor(nsuwsgi, sockdir, vassals)
    first_master = wait_answer(sock)[1]
    (server,) = emp.helpers()
    os.kill(server, signal.SIGKILL)
    emp.wait_log("the fork-server is gone")
    wait_for(lambda: not alive(first_master), 10, "the old vassal master gone")
    again = wait_answer(sock, not_master=first_master, what="f1 started again")[1]
    assert again in linux.proc_children(emp.pid), "a new process of the Emperor, not forked"
    assert emp.inst.proc.poll() is None, "the Emperor is still running"
    sock2 = sockdir / "f2.sock"
    write_atomic(vassals / "f2.ini", ini(sock2, app))
    wait_answer(sock2, what="a vassal added after the fork-server died")
    assert "Traceback" not in emp.log()
    assert emp.stop() == 0


def test_a_fork_server_that_stops_answering_is_killed_and_replaced_by_exec(
        nsuwsgi, sockdir, vassals, app):
    """A spawn that gets no answer gives up after the fork-server's timeout: the fork-server
    is killed (with what it forked) and vassals start as new processes."""
    sock = sockdir / "h1.sock"
    write_atomic(vassals / "h1.ini", ini(sock, app))
    emp = Emperor(nsuwsgi, sockdir, vassals)
    first_master = wait_answer(sock)[1]
    (server,) = emp.helpers()
    os.kill(server, signal.SIGSTOP)
    sock2 = sockdir / "h2.sock"
    write_atomic(vassals / "h2.ini", ini(sock2, app))
    emp.wait_log("the fork-server is gone", timeout=20)
    wait_for(lambda: not alive(server), 10, "the stopped fork-server killed")
    again = wait_answer(sock2, what="h2 started as a new process", timeout=20)[1]
    assert again in linux.proc_children(emp.pid)
    wait_for(lambda: not alive(first_master), 10, "h1's master gone with the fork-server")
    wait_answer(sock, not_master=first_master, what="h1 started again")
    assert emp.inst.proc.poll() is None and "Traceback" not in emp.log()
    assert emp.stop() == 0


# --------------------------------------------------------------------------- 12. bad input

def test_an_emperor_refuses_app_options_and_others_refuse_emperor_options(tmp_path, app):
    result = run_cli("--emperor", str(tmp_path), "--socket", ":0")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "socket" in result.stderr and "an Emperor only governs vassals" in result.stderr
    assert "move it into a vassal's config file" in result.stderr

    result = run_cli("--http-socket", str(tmp_path / "x.sock"), "--wsgi-file", str(app),
                     "--emperor-throttle", "100")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "emperor-throttle" in result.stderr
    assert "this option only applies to an Emperor" in result.stderr


def test_an_emperor_stats_address_it_cannot_bind_is_a_clean_setup_error(tmp_path, vassals):
    missing = tmp_path / "no-such-dir" / "stats.sock"
    result = run_cli("--emperor", str(vassals), "--emperor-stats", str(missing))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert (f"nsuwsgi: error: command line: emperor-stats = {missing}: "
            f"No such file or directory") in result.stderr

    busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    address = "127.0.0.1:%d" % busy.getsockname()[1]
    try:
        result = run_cli("--emperor", str(vassals), "--emperor-stats", address)
    finally:
        busy.close()
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"emperor-stats = {address}: Address already in use" in result.stderr


# --------------------------------------------------------------------------- 13. stats

def test_stats_describe_each_vassal_and_the_governing_count(nsuwsgi, sockdir, vassals, app):
    sock_i, sock_j, sock_y = sockdir / "i.sock", sockdir / "j.sock", sockdir / "y.sock"
    write_atomic(vassals / "i.ini", ini(sock_i, app, "env = GREETING=ini"))
    write_atomic(vassals / "j.json", json.dumps({"uwsgi": {
        "http-socket": str(sock_j), "wsgi-file": str(app), "processes": 1,
        "env": "GREETING=json"}}))
    write_atomic(vassals / "y.yaml", f"uwsgi:\n  http-socket: {sock_y}\n  wsgi-file: {app}\n"
                                     f"  processes: 1\n  env: GREETING=yaml\n")
    (vassals / "notes.txt").write_text("not a vassal\n")
    emp = Emperor(nsuwsgi, sockdir, vassals)
    masters = {}
    for name, sock, greeting in (("i.ini", sock_i, "ini"), ("j.json", sock_j, "json"),
                                 ("y.yaml", sock_y, "yaml")):
        masters[name] = wait_answer(sock, greeting)[1]
        emp.wait_ready(name)
    stats = emp.stats()
    assert stats["pid"] == emp.pid and stats["governing"] == 3
    assert stats["emperor"] == [str(vassals)] and stats["emperor_tyrant"] is False
    assert [v["id"] for v in stats["vassals"]] == ["i.ini", "j.json", "y.yaml"]
    me = os.stat(vassals / "i.ini")
    for v in stats["vassals"]:
        assert v["path"] == str(vassals / v["id"])
        assert v["pid"] == masters[v["id"]]
        assert (v["state"], v["ready"], v["respawns"], v["failures"]) == ("running", True, 0, 0)
        assert v["status"].startswith("nsuwsgi is ready"), v["status"]
        assert (v["last_exit"], v["first_failure"], v["on_demand"]) == ("", "", "")
        assert (v["uid"], v["gid"]) == (me.st_uid, me.st_gid)
        assert v["last_heartbeat"] > 0
        assert os.readlink(f"/proc/{v['pid']}/cwd") == str(vassals)
    # ps shows each vassal as if it had been exec'd, and the fork-server by its role.
    flags = {"i.ini": "--ini", "j.json": "--json", "y.yaml": "--yaml"}
    for name, pid in masters.items():
        assert " ".join(linux.proc_cmdline(pid)) == f"nsuwsgi {flags[name]} {vassals / name}"
    titles = [" ".join(linux.proc_cmdline(pid)) for pid in linux.proc_children(emp.pid)]
    assert "nsuwsgi emperor fork-server" in titles

    (vassals / "j.json").unlink()
    emp.wait_gone("j.json")
    assert emp.stats()["governing"] == 2
    assert emp.stop() == 0
