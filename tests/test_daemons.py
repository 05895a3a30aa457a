"""External daemons under a real master: every attach-daemon behaviour, with real processes.

The daemon is usually tests/helpers/sigdaemon.py, which writes what it saw (start facts and
every signal) as JSON lines, so each test waits for a recorded fact instead of sleeping.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from support import (PYTHON, SIGDAEMON, alive, kill_pid, read_events, reap_strays,
                      wait_for)
from nsuwsgi import linux


def sigdaemon(log, *extra) -> str:
    return " ".join([PYTHON, SIGDAEMON, str(log), *extra])


def events(log, kind=None, pid=None):
    return [e for e in read_events(log)
            if (kind is None or e["event"] == kind) and (pid is None or e["pid"] == pid)]


def signals_seen(log, pid=None):
    return [e["sig"] for e in events(log, "signal", pid)]


def wait_started(log, count=1, timeout=10.0):
    return wait_for(lambda: len(events(log, "start")) >= count and events(log, "start"),
                    timeout, f"{count} daemon start(s) in {log}")[count - 1]


# ---------------------------------------------------------------- how a daemon is started

def test_plain_command_is_execd_directly_with_clean_inheritance(nsuwsgi, tmp_path):
    log = tmp_path / "d.log"
    inst = nsuwsgi("--attach-daemon", sigdaemon(log))
    inst.ready()
    pid = inst.wait_running(0)
    start = wait_started(log)
    assert start["pid"] == pid, "the tracked pid is the daemon itself, not a /bin/sh wrapper"
    assert linux.proc_cmdline(pid)[1] == SIGDAEMON
    assert start["ppid"] == inst.pid
    assert start["sid"] == start["pgid"] == pid, "each daemon leads its own session"
    assert start["stdin"] == "/dev/null"
    assert start["fds"] == [0, 1, 2, 3] or start["fds"] == [0, 1, 2], start["fds"]
    assert inst.stop() == 0


def test_daemons_start_with_default_signal_dispositions_and_an_empty_mask(nsuwsgi):
    """uWSGI leaves SIGPIPE ignored in every daemon; nsuwsgi resets it (the master ignores it).
    `sleep` is not Python, which would ignore SIGPIPE itself."""
    inst = nsuwsgi("--attach-daemon", "sleep 60")
    inst.ready()
    pid = inst.wait_running(0)
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    # glibc's posix_spawn leaves its internal signals 32 and 33 ignored (harmless: glibc
    # programs install their own handlers for them); nothing else may be ignored.
    assert int(status["SigIgn"], 16) & ~(1 << 31 | 1 << 32) == 0
    assert int(status["SigBlk"], 16) == 0


def test_shell_command_runs_under_sh_and_its_whole_group_is_stopped(nsuwsgi, tmp_path):
    log = tmp_path / "d.log"
    inst = nsuwsgi("--attach-daemon", sigdaemon(log) + "; echo never")
    inst.ready()
    sh_pid = inst.wait_running(0)
    assert linux.proc_cmdline(sh_pid)[:2] == ["/bin/sh", "-c"]
    start = wait_started(log)
    assert start["pgid"] == sh_pid, "the real program is in the shell's process group"
    assert inst.stop() == 0
    assert signal.SIGTERM in signals_seen(log, start["pid"])
    wait_for(lambda: not alive(start["pid"]), 5, "the shell's child to be gone")


def test_a_dead_daemon_is_respawned_at_once(nsuwsgi, tmp_path):
    """uWSGI notices on its 1 s tick; nsuwsgi reacts to the pidfd event.

    The bound (0.9 s) only shows there is no one-second tick; bench/daemon_respawn.py measures.
    """
    log = tmp_path / "d.log"
    inst = nsuwsgi("--attach-daemon", sigdaemon(log))
    inst.ready()
    first = inst.wait_running(0)
    wait_started(log)
    os.kill(first, signal.SIGKILL)
    second = inst.wait_running(0, timeout=0.9, not_pid=first)
    assert second != first
    assert inst.daemon(0)["restarts"] == 1
    assert "was killed by SIGKILL" in inst.daemon(0)["last_exit"]


# ---------------------------------------------------------------- stopping

def test_master_sigkill_leaves_no_dumb_daemon_alive(nsuwsgi, tmp_path):
    log1, log2 = tmp_path / "a.log", tmp_path / "b.log"
    inst = nsuwsgi("--attach-daemon", sigdaemon(log1),
                   "--attach-daemon", sigdaemon(log2) + "; echo never")
    inst.ready()
    inst.wait_running(0)
    inst.wait_running(1)
    direct = wait_started(log1)["pid"]
    grandchild = wait_started(log2)["pid"]          # a child of /bin/sh, not of the master
    inst.signal(signal.SIGKILL)
    inst.wait_exit()
    wait_for(lambda: not alive(direct) and not alive(grandchild), 5,
             "every daemon to die with the master")


def test_stop_signal_then_sigkill_after_the_mercy_period(nsuwsgi, tmp_path):
    log = tmp_path / "d.log"
    inst = nsuwsgi("--reload-mercy", "1",
                   "--attach-daemon2", f"cmd={sigdaemon(log, '--ignore-term')},stopsignal=SIGTERM")
    inst.ready()
    pid = inst.wait_running(0)
    wait_started(log)
    assert inst.stop() == 0
    assert signals_seen(log, pid) == [signal.SIGTERM]
    assert "did not stop in time, killing" in inst.log()
    assert not alive(pid)


def test_custom_stop_signal_is_sent(nsuwsgi, tmp_path):
    log = tmp_path / "d.log"
    inst = nsuwsgi("--attach-daemon2", f"cmd={sigdaemon(log)},stopsignal=3")
    inst.ready()
    pid = inst.wait_running(0)
    wait_started(log)
    assert inst.stop() == 0
    assert signals_seen(log, pid) == [signal.SIGQUIT]


def test_sigint_is_an_immediate_shutdown_and_exits_zero(nsuwsgi, tmp_path):
    log = tmp_path / "d.log"
    inst = nsuwsgi("--attach-daemon", sigdaemon(log))
    inst.ready()
    pid = inst.wait_running(0)
    wait_started(log)
    inst.signal(signal.SIGINT)
    assert inst.wait_exit() == 0
    assert "immediate shutdown" in inst.log()
    assert not alive(pid)


# ---------------------------------------------------------------- reload

def test_reload_sends_reloadsignal_and_keeps_the_daemon(nsuwsgi, tmp_path):
    log = tmp_path / "d.log"
    inst = nsuwsgi("--attach-daemon2", f"cmd={sigdaemon(log)},reloadsignal=SIGUSR1")
    inst.ready()
    pid = inst.wait_running(0)
    wait_started(log)
    inst.signal(signal.SIGHUP)
    wait_for(lambda: signal.SIGUSR1 in signals_seen(log, pid), 5, "SIGUSR1 from the reload")
    assert inst.daemon(0)["pid"] == pid


def test_reload_without_reloadsignal_stops_and_respawns_a_dumb_daemon(nsuwsgi, tmp_path):
    log = tmp_path / "d.log"
    inst = nsuwsgi("--attach-daemon", sigdaemon(log))
    inst.ready()
    pid = inst.wait_running(0)
    wait_started(log)
    inst.signal(signal.SIGHUP)
    new = inst.wait_running(0, not_pid=pid)
    assert signals_seen(log, pid) == [signal.SIGTERM]
    assert new != pid


def test_reload_applies_the_new_config_and_refuses_a_broken_one(nsuwsgi, tmp_path):
    keep, drop, add = tmp_path / "keep.log", tmp_path / "drop.log", tmp_path / "add.log"
    ini = tmp_path / "app.ini"
    keep_line = f"attach-daemon2 = cmd={sigdaemon(keep)},reloadsignal=SIGUSR1\n"
    ini.write_text("[uwsgi]\n" + keep_line + f"attach-daemon = {sigdaemon(drop)}\n")
    inst = nsuwsgi("--ini", str(ini))
    inst.ready()
    kept_pid = inst.wait_running(0)
    dropped_pid = inst.wait_running(1)
    wait_started(keep)
    wait_started(drop)
    ini.write_text("[uwsgi]\n" + keep_line + f"attach-daemon = {sigdaemon(add)}\n")
    inst.signal(signal.SIGHUP)
    added = wait_started(add)
    wait_for(lambda: not alive(dropped_pid), 5, "the removed daemon to stop")
    daemons = inst.stats()["daemons"]
    assert [d["pid"] for d in daemons] == [kept_pid, added["pid"]]

    ini.write_text("[uwsgi]\n" + keep_line + "atach-daemon = oops\n")
    inst.signal(signal.SIGHUP)
    inst.wait_log("keeping the running configuration")
    assert "app.ini:3" in inst.log() and "did you mean 'attach-daemon'" in inst.log()
    assert [d["pid"] for d in inst.stats()["daemons"]] == [kept_pid, added["pid"]]


def test_a_reload_that_adds_an_app_says_it_needs_a_restart(nsuwsgi, tmp_path):
    """Sockets are bound at start (as root, outside any jail): a reload cannot add them."""
    keep = tmp_path / "keep.log"
    ini = tmp_path / "app.ini"
    line = f"attach-daemon2 = cmd={sigdaemon(keep)},reloadsignal=SIGUSR1\n"
    ini.write_text("[uwsgi]\n" + line)
    inst = nsuwsgi("--ini", str(ini))
    inst.ready()
    pid = inst.wait_running(0)
    wait_started(keep)                  # its SIGUSR1 handler is in place
    app = tmp_path / "app.py"
    app.write_text("def application(e, s):\n    s('200 OK', [])\n    return [b'']\n")
    ini.write_text("[uwsgi]\n" + line + f"http-socket = 127.0.0.1:0\nwsgi-file = {app}\n")
    inst.signal(signal.SIGHUP)
    inst.wait_log("an app was added; its sockets are bound and its workers started when "
                  "nsuwsgi restarts")
    assert "'http-socket' changed; it takes effect when nsuwsgi restarts" in inst.log()
    assert [d["pid"] for d in inst.stats()["daemons"]] == [pid]


# ---------------------------------------------------------------- control, touch, chdir, stdin

def test_control_daemon_death_ends_the_instance(nsuwsgi, tmp_path):
    control, other = tmp_path / "c.log", tmp_path / "o.log"
    inst = nsuwsgi("--attach-daemon2", f"cmd={sigdaemon(control)},control=true",
                   "--attach-daemon", sigdaemon(other))
    inst.ready()
    pid = inst.wait_running(0)
    other_pid = inst.wait_running(1)
    wait_started(other)
    os.kill(pid, signal.SIGKILL)
    assert inst.wait_exit() == 3, "exit code 3: a control daemon ended the instance"
    assert signal.SIGTERM in signals_seen(other, other_pid)


def test_control_false_is_really_false(nsuwsgi, tmp_path):
    log = tmp_path / "c.log"
    inst = nsuwsgi("--attach-daemon2", f"cmd={sigdaemon(log)},control=0")
    inst.ready()
    pid = inst.wait_running(0)
    os.kill(pid, signal.SIGKILL)
    inst.wait_running(0, not_pid=pid)
    assert inst.proc.poll() is None


def test_touch_restarts_the_daemon(nsuwsgi, tmp_path):
    log, trigger = tmp_path / "t.log", tmp_path / "restart.me"
    trigger.write_text("1")
    inst = nsuwsgi("--attach-daemon2", f"cmd={sigdaemon(log)},touch={trigger}")
    inst.ready()
    pid = inst.wait_running(0)
    wait_started(log)
    trigger.write_text("2")
    new = inst.wait_running(0, not_pid=pid)
    assert signals_seen(log, pid) == [signal.SIGTERM]
    assert new != pid
    assert f"{trigger} has been touched" in inst.log()


def test_chdir_and_stdin_keys(nsuwsgi, tmp_path):
    log1, log2 = tmp_path / "a.log", tmp_path / "b.log"
    workdir = tmp_path / "work"
    workdir.mkdir()
    stdin_file = tmp_path / "stdin.txt"
    stdin_file.write_text("hello")
    with open(stdin_file) as stdin:
        inst = nsuwsgi("--attach-daemon2", f"cmd={sigdaemon(log1)},chdir={workdir}",
                       "--attach-daemon2", f"cmd={sigdaemon(log2)},stdin=1", stdin=stdin)
        inst.ready()
        first, second = wait_started(log1), wait_started(log2)
    assert first["cwd"] == str(workdir)
    assert first["stdin"] == "/dev/null"
    assert second["stdin"] == str(stdin_file)


def test_env_reaches_daemons(nsuwsgi, tmp_path):
    log = tmp_path / "e.log"
    inst = nsuwsgi("--env", "NSU_GREETING=hello world", "--attach-daemon", sigdaemon(log))
    inst.ready()
    assert wait_started(log)["env"]["NSU_GREETING"] == "hello world"


# ---------------------------------------------------------------- failures and backoff

def test_missing_command_is_reported_backed_off_and_never_crashes_the_master(nsuwsgi, tmp_path):
    inst = nsuwsgi("--attach-daemon", "/nonexistent/bin/mydaemon --flag")
    inst.ready()
    inst.wait_log("is BROKEN")
    log = inst.log()
    assert 'cannot start "/nonexistent/bin/mydaemon --flag"' in log
    assert "command line: attach-daemon" in log
    assert "No such file or directory" in log and "hint:" in log
    d = inst.daemon(0)
    assert d["state"] == "broken"
    assert d["first_failure"].startswith("exec failed")
    assert inst.proc.poll() is None
    with open(f"/proc/{inst.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    assert int(fields[11]) + int(fields[12]) < 200, "the master must not spin (CPU ticks)"


def test_a_crash_looping_daemon_backs_off_and_is_marked_broken(nsuwsgi, tmp_path):
    inst = nsuwsgi("--attach-daemon", "sh -c 'exit 7'")
    inst.ready()
    inst.wait_log("is BROKEN")
    d = inst.daemon(0)
    assert d["state"] == "broken"
    assert d["last_exit"] == "exited with code 7"
    assert d["failures_in_a_row"] >= 5
    delays = [float(line.split(" in ")[1].split("s ")[0]) for line in inst.log().splitlines()
              if "will be started again in" in line]
    assert delays[:3] == [0.1, 0.2, 0.4], "exponential backoff, not uWSGI's +1 s per respawn"


# ---------------------------------------------------------------- pidfile (smart) daemons

def memcached_version(sock) -> bytes:
    """memcached's answer to `version`, once it answers: its socket file appears at bind(),
    a moment before listen(), and a connect() in between is refused."""
    import socket

    def ask() -> bytes | None:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(5)
                s.connect(sock)
                s.sendall(b"version\r\n")
                return s.recv(100)
        except (FileNotFoundError, ConnectionRefusedError):
            return None
    return wait_for(ask, 10, f"memcached answering on {sock}")


@pytest.fixture
def memcached_pidfile():
    """memcached writes its pidfile and socket after dropping to nobody: a 0777 dir in /tmp."""
    directory = Path(tempfile.mkdtemp(prefix="nsumc", dir="/tmp"))
    os.chmod(directory, 0o777)
    path = directory / "mc.pid"
    yield path
    found = _read_pid(path)
    if found:
        kill_pid(found)
    shutil.rmtree(directory, ignore_errors=True)


def _read_pid(path):
    try:
        return int(open(path).read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def start_smart_memcached(nsuwsgi, pidfile):
    sock = os.path.join(os.path.dirname(pidfile), "mc.sock")
    cmd = f"{pidfile} memcached -s {sock} -p 0 -U 0 -u nobody -d -P {pidfile}"
    inst = nsuwsgi("--smart-attach-daemon", cmd)
    inst.ready()
    return inst, sock


def test_smart_memcached_is_watched_through_its_pidfile(nsuwsgi, memcached_pidfile):
    inst, sock = start_smart_memcached(nsuwsgi, memcached_pidfile)
    pid = inst.wait_running(0)
    assert pid == _read_pid(memcached_pidfile)
    assert memcached_version(sock).startswith(b"VERSION")
    assert os.getppid() != pid and linux.proc_stat(pid)


def test_a_zombie_smart_daemon_is_dead_not_alive(nsuwsgi, memcached_pidfile):
    """memcached daemonizes, so it is re-parented to this test process (a subreaper). Killed
    and left unreaped, it is a zombie; uWSGI's kill(pid, 0) would call it alive."""
    inst, sock = start_smart_memcached(nsuwsgi, memcached_pidfile)
    pid = inst.wait_running(0)
    os.kill(pid, signal.SIGKILL)

    def respawned_while_zombie():
        stat = linux.proc_stat(pid)
        d = inst.daemon(0)
        return d["state"] == "running" and d["pid"] not in (-1, pid) and stat and stat[0] == "Z"
    deadline = time.monotonic() + 10
    while not respawned_while_zombie():           # no reaping here: keep the zombie around
        assert time.monotonic() < deadline, f"no respawn while {pid} is a zombie"
        time.sleep(0.005)
    inst.seen_pids.add(inst.daemon(0)["pid"])
    assert memcached_version(sock).startswith(b"VERSION")
    reap_strays()


def test_stale_pidfile_naming_an_unrelated_process_is_not_trusted(nsuwsgi, memcached_pidfile):
    unrelated = subprocess.Popen(["sleep", "60"])
    try:
        memcached_pidfile.write_text(f"{unrelated.pid}\n")
        inst, sock = start_smart_memcached(nsuwsgi, memcached_pidfile)
        pid = inst.wait_running(0, not_pid=unrelated.pid)
        assert pid != unrelated.pid
        assert "not adopting pidfile" in inst.log() and "does not run 'memcached'" in inst.log()
        assert unrelated.poll() is None, "the unrelated process is left alone"
        assert memcached_version(sock).startswith(b"VERSION")
    finally:
        unrelated.kill()
        unrelated.wait()


def test_smart_daemon_survives_stop_and_reload_and_is_adopted(nsuwsgi, memcached_pidfile):
    inst, sock = start_smart_memcached(nsuwsgi, memcached_pidfile)
    pid = inst.wait_running(0)
    inst.signal(signal.SIGHUP)
    inst.wait_log("graceful reload")
    assert inst.daemon(0)["pid"] == pid and alive(pid)
    assert inst.stop() == 0
    assert alive(pid), "a smart daemon outlives its master"
    second, _ = start_smart_memcached(nsuwsgi, memcached_pidfile)
    assert second.wait_running(0) == pid
    assert "found valid/active pidfile" in second.log()
    assert "spawning" not in second.log(), "adopted, not duplicated"
    assert second.stop() == 0


def test_smart2_daemon_is_daemonized_by_nsuwsgi(nsuwsgi, tmp_path):
    log, pidfile = tmp_path / "s.log", tmp_path / "s.pid"
    inst = nsuwsgi("--smart-attach-daemon2", f"{pidfile} {sigdaemon(log)}")
    inst.ready()
    pid = inst.wait_running(0)
    assert _read_pid(pidfile) == pid == wait_started(log)["pid"]
    assert wait_started(log)["ppid"] != inst.pid
    assert inst.stop() == 0
    assert alive(pid)
    kill_pid(pid, signal.SIGTERM)
    wait_for(lambda: not alive(pid), 5, "the smart2 daemon to end")


def test_notifypid_smart_daemon_gets_reload_and_stop_signals(nsuwsgi, tmp_path):
    log, pidfile = tmp_path / "n.log", tmp_path / "n.pid"
    inst = nsuwsgi("--attach-daemon2",
                   f"cmd={sigdaemon(log)},pidfile={pidfile},daemonize=1,notifypid=1,"
                   f"reloadsignal=SIGUSR1,stopsignal=SIGUSR2")
    inst.ready()
    pid = inst.wait_running(0)
    wait_started(log)
    inst.signal(signal.SIGHUP)
    wait_for(lambda: signal.SIGUSR1 in signals_seen(log, pid), 5, "SIGUSR1 on reload")
    assert inst.stop() == 0
    wait_for(lambda: signal.SIGUSR2 in signals_seen(log, pid), 5, "SIGUSR2 on stop")
    kill_pid(pid)
    wait_for(lambda: not alive(pid), 5, "cleanup")


def test_redis_dumb_and_smart(nsuwsgi, tmp_path):
    import socket
    dumb_sock = tmp_path / "r1.sock"
    smart_sock, pidfile = tmp_path / "r2.sock", tmp_path / "r2.pid"
    base = "redis-server --port 0 --save '' --appendonly no"
    inst = nsuwsgi("--attach-daemon", f"{base} --unixsocket {dumb_sock}",
                   "--smart-attach-daemon",
                   f"{pidfile} {base} --unixsocket {smart_sock} --daemonize yes "
                   f"--pidfile {pidfile} --logfile {tmp_path / 'r2.log'}")
    inst.ready()
    inst.wait_running(0)
    smart_pid = inst.wait_running(1)
    for path in (dumb_sock, smart_sock):
        wait_for(lambda: path.exists(), 10, f"{path}")
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(path))
            s.sendall(b"PING\r\n")
            assert s.recv(100) == b"+PONG\r\n"
    assert inst.stop() == 0
    assert alive(smart_pid)
    kill_pid(smart_pid, signal.SIGTERM)
    wait_for(lambda: not alive(smart_pid), 10, "redis to stop")


# ---------------------------------------------------------------- the instance

def test_stats_json_describes_master_and_daemons(nsuwsgi, tmp_path):
    log = tmp_path / "d.log"
    inst = nsuwsgi("--attach-daemon", sigdaemon(log))
    inst.ready()
    pid = inst.wait_running(0)
    data = inst.stats()
    assert data["pid"] == inst.pid
    (d,) = data["daemons"]
    assert d["cmd"] == sigdaemon(log)
    assert d["pid"] == pid and d["state"] == "running" and d["restarts"] == 0
    assert d["last_exit"] is None
    assert data["workers"] == []


def test_pidfile_logto_and_vacuum(nsuwsgi, tmp_path):
    pidfile, logfile = tmp_path / "master.pid", tmp_path / "master.log"
    inst = nsuwsgi("--pidfile", str(pidfile), "--logto", str(logfile), "--vacuum",
                   "--attach-daemon", sigdaemon(tmp_path / "d.log"))
    inst.ready()
    assert _read_pid(pidfile) == inst.pid
    wait_for(lambda: "spawning" in logfile.read_text(), 5, "the log in the logto file")
    assert inst.stop() == 0
    assert not pidfile.exists(), "vacuum removes the pidfile"


def test_daemonize_detaches_and_logs_to_the_file(tmp_path):
    from support import run_cli
    logfile, pidfile = tmp_path / "d.log", tmp_path / "m.pid"
    result = run_cli("--daemonize", str(logfile), "--pidfile", str(pidfile),
                     "--attach-daemon", sigdaemon(tmp_path / "x.log"))
    assert result.returncode == 0
    master = wait_for(lambda: _read_pid(pidfile), 10, "the daemonized master's pidfile")
    wait_for(lambda: "spawning" in logfile.read_text(), 10, "the daemonized master's log")
    os.kill(master, signal.SIGTERM)
    wait_for(lambda: not alive(master), 10, "the daemonized master to stop")
    assert "goodbye" in logfile.read_text()


def test_dumb_memcached_stops_with_the_master(nsuwsgi, memcached_pidfile):
    sock = str(memcached_pidfile.parent / "mc.sock")
    inst = nsuwsgi("--attach-daemon", f"memcached -s {sock} -p 0 -U 0 -u nobody")
    inst.ready()
    pid = inst.wait_running(0)
    wait_for(lambda: os.path.exists(sock), 10, "memcached's socket")
    assert memcached_version(sock).startswith(b"VERSION")
    assert inst.stop() == 0
    assert not alive(pid)


def test_stats_over_tcp_on_loopback(nsuwsgi):
    import re
    inst = nsuwsgi("--stats", "127.0.0.1:0", "--attach-daemon", "sleep 60", stats=False)
    text = inst.wait_log("stats server listening on")
    address = re.search(r"stats server listening on (\S+)", text).group(1)
    inst.stats_path = address
    assert inst.ready()["pid"] == inst.pid
    assert inst.stop() == 0


def test_reloading_or_touching_a_control_daemon_does_not_end_the_instance(nsuwsgi, tmp_path):
    log, trigger = tmp_path / "c.log", tmp_path / "touch.me"
    trigger.write_text("1")
    inst = nsuwsgi("--attach-daemon2", f"cmd={sigdaemon(log)},control=1,touch={trigger}")
    inst.ready()
    first = inst.wait_running(0)
    wait_started(log)
    inst.signal(signal.SIGHUP)
    second = inst.wait_running(0, not_pid=first)
    wait_started(log, 2)
    trigger.write_text("2")
    inst.wait_running(0, not_pid=second)
    assert inst.proc.poll() is None, "a restart we asked for is not the control daemon dying"


def test_a_control_daemon_that_cannot_start_ends_the_instance(nsuwsgi):
    inst = nsuwsgi("--attach-control-daemon", "/nonexistent/bin/ctl")
    assert inst.wait_exit() == 3
    assert "cannot start" in inst.log()


def test_smart2_with_a_shell_command_is_trusted_through_its_own_pidfile(nsuwsgi, tmp_path):
    log, pidfile = tmp_path / "s.log", tmp_path / "s.pid"
    inst = nsuwsgi("--smart-attach-daemon2", f"{pidfile} cd {tmp_path} && {sigdaemon(log)}")
    inst.ready()
    pid = inst.wait_running(0)
    assert _read_pid(pidfile) == pid
    started = wait_started(log)
    assert started["pid"] in (pid, *linux.proc_children(pid))
    assert inst.stop() == 0
    assert alive(pid), "a smart2 daemon outlives its master"
    os.killpg(os.getpgid(pid), signal.SIGKILL)   # the shell and its child, started by this test
    wait_for(lambda: not alive(started["pid"]) and not alive(pid), 5, "the daemon to end")


def test_a_smart_daemon_that_never_writes_its_pidfile_backs_off(nsuwsgi, tmp_path):
    pidfile = tmp_path / "never.pid"
    inst = nsuwsgi("--smart-attach-daemon", f"{pidfile},1 sleep 60")
    inst.ready()
    inst.wait_log("will be started again in 0.1s", timeout=15)
    assert "did not write a valid pidfile" in inst.log()
    assert "did not stop in time" not in inst.log()


def test_stopping_while_a_smart_daemon_is_starting_leaves_nothing_behind(nsuwsgi, tmp_path):
    pidfile = tmp_path / "slow.pid"
    inst = nsuwsgi("--smart-attach-daemon", f"{pidfile} sleep 300")
    inst.ready()
    launcher = inst.wait_daemon(0, lambda d: d["state"] == "starting", what="starting")
    inst.wait_log("spawning")
    assert inst.stop() == 0
    assert launcher["pid"] == -1     # the hygiene fixture proves the sleep did not survive


def test_sigusr1_logs_daemon_states_and_the_master_keeps_running(nsuwsgi, tmp_path):
    inst = nsuwsgi("--attach-daemon", "sleep 60")
    inst.ready()
    inst.wait_running(0)
    inst.signal(signal.SIGUSR1)
    inst.wait_log('daemon "sleep 60" state running')
    inst.signal(signal.SIGUSR2)
    assert inst.ready()["pid"] == inst.pid
