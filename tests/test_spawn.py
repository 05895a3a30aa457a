"""The one spawn primitive, with real processes.

Every test reaps what it started, by pid or pidfd, so the autouse `hygiene` fixture (no
children, no zombies, no leaked fds after a test) holds. Waits are bounded: `select` on a pidfd
or `wait_for` on a condition, never a bare sleep.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from nsuwsgi import linux
from nsuwsgi.spawn import Child, SpawnError, resolve_executable, spawn
from nsuwsgi.spec import ProcessSpec
from support import OWNED, PYTHON, ROOT, alive, kill_pid, wait_for

PATH = "/usr/local/bin:/usr/bin:/bin"
ENV = (f"PATH={PATH}",)

# A child that reports facts about itself as JSON. It scans fds with fstat (listing
# /proc/self/fd would itself open a directory fd and show up in the answer).
FACTS = r"""
import json, os, sys
fds = []
for fd in range(min(os.sysconf("SC_OPEN_MAX"), 65536)):
    try:
        os.fstat(fd)
    except OSError:
        continue
    fds.append(fd)
write_to = int(sys.argv[2]) if len(sys.argv) > 2 else None
if write_to is not None:
    os.write(write_to, b"hello through a passed fd")
facts = {
    "pid": os.getpid(), "ppid": os.getppid(), "sid": os.getsid(0), "pgid": os.getpgid(0),
    "fds": fds, "cwd": os.getcwd(), "umask": os.umask(0),
    "targets": {str(fd): os.readlink(f"/proc/self/fd/{fd}") for fd in fds},
}
with open(sys.argv[1], "w") as f:
    json.dump(facts, f)
"""


def make_spec(argv, **kw) -> ProcessSpec:
    env = kw.pop("env", ENV)
    executable = kw.pop("executable", None) or resolve_executable(argv[0], env)
    return ProcessSpec(argv=tuple(argv), executable=executable, env=tuple(env), **kw)


def facts_spec(out: Path, *extra: str, **kw) -> ProcessSpec:
    return make_spec([PYTHON, "-I", "-c", FACTS, str(out), *extra], **kw)


def wait_exit(child: Child, timeout: float = 10.0) -> os.waitid_result:
    """Wait (bounded, on the pidfd) for `child` to end, reap it and close its pidfd."""
    ready, _, _ = select.select([child.pidfd], [], [], timeout)
    assert ready, f"child {child.pid} did not exit within {timeout}s"
    result = os.waitid(os.P_PIDFD, child.pidfd, os.WEXITED)
    os.close(child.pidfd)
    child.pidfd = -1
    OWNED.discard(child.pid)
    return result


@contextlib.contextmanager
def started(spec: ProcessSpec):
    """Spawn `spec`; whatever happens in the test, the child is killed and reaped after."""
    child = spawn(spec, now=time.monotonic())
    OWNED.add(child.pid)         # keep conftest's stray reaper away from our own child
    try:
        yield child
    finally:
        if child.pidfd >= 0:
            with contextlib.suppress(ProcessLookupError):
                linux.pidfd_send_signal(child.pidfd, signal.SIGKILL)
            wait_exit(child)


def run_to_end(spec: ProcessSpec) -> os.waitid_result:
    with started(spec) as child:
        return wait_exit(child)


def exited_ok(result: os.waitid_result) -> bool:
    return result.si_code == os.CLD_EXITED and result.si_status == 0


def run_facts(tmp_path: Path, *extra: str, **kw) -> dict:
    out = tmp_path / f"facts-{time.monotonic_ns()}.json"
    result = run_to_end(facts_spec(out, *extra, **kw))
    assert exited_ok(result), result
    return json.loads(out.read_text())


def status_masks(tmp_path: Path, **kw) -> dict[str, int]:
    """The Sig* lines of the child's own /proc/self/status (cat is exec'd directly)."""
    out = tmp_path / f"status-{time.monotonic_ns()}"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        result = run_to_end(make_spec(["cat", "/proc/self/status"], stdout_fd=fd, **kw))
    finally:
        os.close(fd)
    assert exited_ok(result), result
    masks = {}
    for line in out.read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("SigBlk", "SigIgn", "SigCgt"):
            masks[key] = int(value.strip(), 16)
    return masks


def bit(sig: int) -> int:
    return 1 << (int(sig) - 1)


def my_stray_children() -> list[int]:
    return [p for p in linux.proc_children(os.getpid()) if p not in OWNED]


# --------------------------------------------------------------------------- success and failure


def test_exec_true_returns_a_running_child():
    now = time.monotonic()
    child = spawn(make_spec(["true"]), now=now)
    OWNED.add(child.pid)
    assert isinstance(child, Child)
    assert child.pid > 0 and child.pid != os.getpid()
    assert child.pidfd >= 0
    assert child.started == now
    assert not os.get_inheritable(child.pidfd)
    result = wait_exit(child)
    assert result.si_pid == child.pid
    assert exited_ok(result)


def test_exit_status_is_the_programs():
    result = run_to_end(make_spec(["sh", "-c", "exit 7"]))
    assert (result.si_code, result.si_status) == (os.CLD_EXITED, 7)


def test_missing_executable_raises_exec_enoent_and_leaves_no_zombie(tmp_path):
    missing = str(tmp_path / "no-such-program")
    with pytest.raises(SpawnError) as info:
        spawn(make_spec(["no-such-program"], executable=missing), now=time.monotonic())
    err = info.value
    assert (err.stage, err.errno, err.detail) == ("exec", errno.ENOENT, missing)
    assert str(err) == f"exec:ENOENT:{missing}"
    assert "No such file or directory" in err.describe() and missing in err.describe()
    assert my_stray_children() == []      # the failed child was reaped before raising


def test_unresolved_name_reports_enoent():
    spec = make_spec(["nsuwsgi-surely-not-a-command"])
    assert spec.executable == "nsuwsgi-surely-not-a-command"
    with pytest.raises(SpawnError) as info:
        spawn(spec, now=time.monotonic())
    assert (info.value.stage, info.value.errno) == ("exec", errno.ENOENT)
    assert my_stray_children() == []


def test_non_executable_file_raises_exec_eacces(tmp_path):
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)
    with pytest.raises(SpawnError) as info:
        spawn(make_spec([str(script)]), now=time.monotonic())
    assert (info.value.stage, info.value.errno) == ("exec", errno.EACCES)
    assert my_stray_children() == []


def test_missing_cwd_raises_chdir(tmp_path):
    missing = str(tmp_path / "gone")
    with pytest.raises(SpawnError) as info:
        spawn(make_spec(["true"], cwd=missing), now=time.monotonic())
    err = info.value
    assert (err.stage, err.errno, err.detail) == ("chdir", errno.ENOENT, missing)
    assert my_stray_children() == []


def test_cwd_and_umask_are_applied(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    facts = run_facts(tmp_path, cwd=str(work), umask=0o027)
    assert facts["cwd"] == str(work)
    assert facts["umask"] == 0o027


def test_fork_failure_raises_spawn_error_and_leaks_nothing(monkeypatch):
    """The module promises: a running child, or SpawnError naming the step that failed."""
    mask_before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    fds_before = set(os.listdir("/proc/self/fd"))

    def no_fork():
        raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))

    monkeypatch.setattr(os, "fork", no_fork)
    try:
        with pytest.raises(SpawnError) as info:
            # pdeathsig needs the fork road (a plain spec goes through posix_spawn)
            spawn(make_spec(["true"], pdeathsig=signal.SIGKILL), now=time.monotonic())
        monkeypatch.undo()
        assert (info.value.stage, info.value.errno) == ("fork", errno.EAGAIN)
        assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == mask_before
        assert set(os.listdir("/proc/self/fd")) == fds_before
    finally:
        monkeypatch.undo()
        # repair the worker whatever spawn left behind, so later tests are not affected
        signal.pthread_sigmask(signal.SIG_SETMASK, mask_before)
        for fd in set(os.listdir("/proc/self/fd")) - fds_before:
            with contextlib.suppress(OSError):
                os.close(int(fd))


# --------------------------------------------------------------------------- file descriptors


def test_only_stdio_and_pass_fds_survive(tmp_path):
    # Inheritable (non-CLOEXEC) fds in the parent, as a careless library might leave them.
    leaky = []
    for _ in range(3):
        r, w = os.pipe()
        os.set_inheritable(r, True)
        os.set_inheritable(w, True)
        leaky += [r, w]
    passed_r, passed_w = os.pipe()          # close-on-exec in the parent, passed explicitly
    try:
        facts = run_facts(tmp_path, str(passed_w), pass_fds=(passed_w,))
        assert facts["fds"] == [0, 1, 2, passed_w], facts["targets"]
        assert facts["targets"][str(passed_w)] == os.readlink(f"/proc/self/fd/{passed_w}")
        os.close(passed_w)
        passed_w = -1
        assert os.read(passed_r, 100) == b"hello through a passed fd"
        assert not os.get_inheritable(passed_r)     # the parent's flags are untouched
    finally:
        for fd in (*leaky, passed_r, passed_w):
            if fd >= 0:
                os.close(fd)


def test_no_extra_fds_without_pass_fds(tmp_path):
    r, w = os.pipe()
    os.set_inheritable(r, True)
    os.set_inheritable(w, True)
    try:
        facts = run_facts(tmp_path)
    finally:
        os.close(r)
        os.close(w)
    assert facts["fds"] == [0, 1, 2], facts["targets"]


def test_stdout_fd_redirects_and_is_not_kept_twice(tmp_path):
    out = tmp_path / "out.txt"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    facts_file = tmp_path / "facts.json"
    try:
        script = FACTS + "\nprint('to stdout', flush=True)\n"
        result = run_to_end(make_spec([PYTHON, "-I", "-c", script, str(facts_file)],
                                      stdout_fd=fd))
    finally:
        os.close(fd)
    assert exited_ok(result)
    assert out.read_text() == "to stdout\n"
    facts = json.loads(facts_file.read_text())
    assert facts["fds"] == [0, 1, 2]
    assert facts["targets"]["1"] == str(out)


def test_stdin_is_dev_null_by_default(tmp_path):
    facts = run_facts(tmp_path)
    assert facts["targets"]["0"] == "/dev/null"


def test_stdin_is_inherited_when_asked(tmp_path):
    r, w = os.pipe()
    saved = os.dup(0)
    try:
        os.dup2(r, 0)
        try:
            facts = run_facts(tmp_path, stdin_devnull=False)
        finally:
            os.dup2(saved, 0)
        assert facts["targets"]["0"] == os.readlink(f"/proc/self/fd/{r}")
        assert facts["targets"]["0"].startswith("pipe:")
    finally:
        for fd in (r, w, saved):
            os.close(fd)


def test_a_python_payload_never_collects_what_it_inherited(tmp_path):
    """A socket in a garbage cycle of the parent must not close, in a forked Python payload,
    the file the payload has under the same fd number by then: spawn freezes what the child
    inherits, so the child's collections never reach it."""
    import gc
    import socket
    was_enabled = gc.isenabled()
    gc.disable()                        # the cycle must survive until the fork
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        cycle = [sock]
        cycle.append(cycle)
        number = sock.fileno()
        del sock, cycle                 # garbage now, still open: only a collection closes it
        out = tmp_path / "written"

        def payload() -> int:           # runs in the child
            fd = os.open(out, os.O_WRONLY | os.O_CREAT, 0o600)
            os.dup2(fd, number)         # the child's own file, under the inherited number
            gc.collect()
            try:
                os.write(number, b"still open")
            except OSError:
                return 3
            return 0

        child = spawn(ProcessSpec(argv=("payload",), executable="", env=(), run=payload),
                      now=time.monotonic())
        OWNED.add(child.pid)
        result = wait_exit(child)
    finally:
        gc.collect()                    # the parent's own garbage socket closes here
        if was_enabled:
            gc.enable()
    assert (result.si_code, result.si_status) == (os.CLD_EXITED, 0)
    assert out.read_bytes() == b"still open"


def test_spawn_leaves_the_parents_collector_as_it_found_it():
    import gc
    assert gc.isenabled()
    child = spawn(ProcessSpec(argv=("payload",), executable="", env=(), run=lambda: 0),
                  now=time.monotonic())
    OWNED.add(child.pid)
    assert gc.isenabled()
    assert exited_ok(wait_exit(child))


# --------------------------------------------------------------------------- session, signals, env


def test_new_session_makes_the_child_a_session_and_group_leader(tmp_path):
    facts = run_facts(tmp_path, new_session=True)
    assert facts["sid"] == facts["pgid"] == facts["pid"]
    assert facts["ppid"] == os.getpid()


def test_without_new_session_the_child_stays_in_our_session(tmp_path):
    facts = run_facts(tmp_path, new_session=False)
    assert facts["sid"] == os.getsid(0)
    assert facts["pgid"] == os.getpgid(0)


def test_signal_dispositions_and_mask_are_reset(tmp_path):
    assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN    # Python ignores it already
    old_term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    old_usr2 = signal.signal(signal.SIGUSR2, lambda *a: None)
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGHUP})
    try:
        masks = status_masks(tmp_path)
        # the parent is as it was: spawn restores its own mask after the fork
        assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == \
            old_mask | {signal.SIGUSR1, signal.SIGHUP}
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGUSR2, old_usr2)
    assert masks["SigIgn"] & (bit(signal.SIGPIPE) | bit(signal.SIGTERM)) == 0
    # glibc's posix_spawn leaves its two internal signals (32, 33) ignored; glibc programs
    # install their own handlers for them at start, and no program may use them.
    assert masks["SigIgn"] & ~(bit(32) | bit(33)) == 0, hex(masks["SigIgn"])
    assert masks["SigBlk"] == 0, hex(masks["SigBlk"])
    assert masks["SigCgt"] == 0, hex(masks["SigCgt"])


def test_env_is_exactly_the_specs(tmp_path):
    out = tmp_path / "env.txt"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    env = ("A=1", "B=two words", "EMPTY=", "EQ=x=y", f"PATH={PATH}")
    try:
        result = run_to_end(make_spec(["env"], env=env, stdout_fd=fd))
    finally:
        os.close(fd)
    assert exited_ok(result)
    assert sorted(out.read_text().splitlines()) == sorted(env)


def test_empty_env(tmp_path):
    out = tmp_path / "env.txt"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        result = run_to_end(make_spec(["env"], executable=shutil.which("env"), env=(),
                                      stdout_fd=fd))
    finally:
        os.close(fd)
    assert exited_ok(result)
    assert out.read_text() == ""


@pytest.mark.skipif(os.geteuid() != 0, reason="changing uid/gid needs root")
def test_uid_gid_and_groups_are_dropped_as_root(tmp_path):
    out = tmp_path / "status"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        result = run_to_end(make_spec(["cat", "/proc/self/status"], uid=65534, gid=65534,
                                      groups=(65534,), stdout_fd=fd))
    finally:
        os.close(fd)
    assert exited_ok(result)
    fields = dict(line.split(":", 1) for line in out.read_text().splitlines())
    assert fields["Uid"].split() == ["65534"] * 4
    assert fields["Gid"].split() == ["65534"] * 4
    assert fields["Groups"].split() == ["65534"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may change uid")
def test_uid_change_without_root_fails_at_setgid_or_setuid():
    with pytest.raises(SpawnError) as info:
        spawn(make_spec(["true"], uid=0, gid=0), now=time.monotonic())
    assert info.value.stage in ("setgid", "setuid")
    assert info.value.errno == errno.EPERM
    assert my_stray_children() == []


# --------------------------------------------------------------------------- pdeathsig


LAUNCHER = r"""
import os, sys, time
from nsuwsgi.spawn import spawn, resolve_executable
from nsuwsgi.spec import ProcessSpec
env = ("PATH=/usr/local/bin:/usr/bin:/bin",)
null = os.open("/dev/null", os.O_WRONLY | os.O_CLOEXEC)   # not our stdout pipe: the test
child = spawn(ProcessSpec(argv=("sleep", "60"),           # reads it to EOF
                          executable=resolve_executable("sleep", env), env=env,
                          stdout_fd=null, stderr_fd=null, pdeathsig=int(sys.argv[1])),
              time.monotonic())
print(child.pid, flush=True)
"""


def launch_sleeper_and_die(pdeathsig: int) -> int:
    """An intermediate process spawns `sleep 60` and exits; the sleeper is re-parented to us."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([PYTHON, "-c", LAUNCHER, str(pdeathsig)], capture_output=True,
                          text=True, timeout=30, env=env, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.strip())


def reaped(pid: int, statuses: list[int]) -> bool:
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:           # conftest's stray reaper got to it first
        return linux.proc_stat(pid) is None
    if done:
        statuses.append(status)
        return True
    return False


def test_pdeathsig_kills_the_child_when_its_parent_dies():
    pid = launch_sleeper_and_die(int(signal.SIGKILL))
    statuses: list[int] = []
    try:
        wait_for(lambda: reaped(pid, statuses), 10, f"sleep {pid} to die with its parent")
    finally:
        if not statuses and linux.proc_stat(pid) is not None:
            kill_pid(pid)
            wait_for(lambda: reaped(pid, statuses), 10, f"sleep {pid} reaped")
    if statuses:
        assert os.WIFSIGNALED(statuses[0]) and os.WTERMSIG(statuses[0]) == signal.SIGKILL


def test_without_pdeathsig_the_child_outlives_its_parent():
    """The control for the test above: the death is caused by pdeathsig, not by the launcher."""
    pid = launch_sleeper_and_die(0)
    statuses: list[int] = []
    try:
        assert alive(pid)
        assert linux.proc_cmdline(pid) == ["sleep", "60"]
        assert os.getppid() != pid and pid in linux.proc_children(os.getpid())
    finally:
        kill_pid(pid)
        wait_for(lambda: reaped(pid, statuses), 10, f"sleep {pid} reaped")


# --------------------------------------------------------------------------- daemonize


def test_daemonize_writes_the_grandchild_pid_and_the_child_exits_0(tmp_path):
    pidfile = tmp_path / "daemon.pid"
    statuses: list[int] = []
    child = spawn(make_spec(["sleep", "60"], daemonize_pidfile=str(pidfile)),
                  now=time.monotonic())
    OWNED.add(child.pid)
    grandchild = None
    try:
        result = wait_exit(child)
        assert exited_ok(result)
        text = pidfile.read_text()
        assert text.endswith("\n")
        grandchild = int(text)
        assert grandchild != child.pid
        # spawn returned only after the grandchild's exec closed the error pipe
        assert linux.proc_cmdline(grandchild) == ["sleep", "60"]
        assert alive(grandchild)
        # detached from the launcher: re-parented to us (the subreaper), in the launcher's
        # session but not leading it
        assert grandchild in linux.proc_children(os.getpid())
        assert os.getsid(grandchild) == child.pid
        assert os.getpgid(grandchild) == child.pid
    finally:
        if grandchild is not None:
            kill_pid(grandchild)
            wait_for(lambda: reaped(grandchild, statuses), 10, f"daemon {grandchild} reaped")


def test_daemonize_reports_the_grandchilds_exec_failure(tmp_path):
    pidfile = tmp_path / "daemon.pid"
    missing = str(tmp_path / "missing-daemon")
    statuses: list[int] = []
    with pytest.raises(SpawnError) as info:
        spawn(make_spec(["missing-daemon"], executable=missing,
                        daemonize_pidfile=str(pidfile)), now=time.monotonic())
    assert (info.value.stage, info.value.errno, info.value.detail) == \
        ("exec", errno.ENOENT, missing)
    grandchild = int(pidfile.read_text())
    wait_for(lambda: reaped(grandchild, statuses), 10, f"failed daemon {grandchild} reaped")
    if statuses:
        assert os.WIFEXITED(statuses[0]) and os.WEXITSTATUS(statuses[0]) == 127


# --------------------------------------------------------------------------- resolve_executable


def test_resolve_finds_true_on_path():
    found = resolve_executable("true", {"PATH": PATH})
    assert os.path.isabs(found) and os.path.basename(found) == "true"
    assert os.access(found, os.X_OK)
    assert found == shutil.which("true", path=PATH)


def test_resolve_accepts_the_env_tuple_form():
    assert resolve_executable("true", ("A=1", f"PATH={PATH}", "JUNK")) == \
        shutil.which("true", path=PATH)


def test_resolve_uses_the_given_path_not_ours(tmp_path):
    prog = tmp_path / "only-here"
    prog.write_text("#!/bin/sh\n")
    prog.chmod(0o755)
    assert resolve_executable("only-here", {"PATH": str(tmp_path)}) == str(prog)
    assert resolve_executable("only-here", {"PATH": PATH}) == "only-here"


def test_resolve_falls_back_to_the_default_path():
    assert resolve_executable("true", {}) == shutil.which("true", path=os.defpath)


@pytest.mark.parametrize("name", ["/bin/true", "./true", "bin/true", "/nonexistent/x"])
def test_resolve_returns_names_with_a_slash_unchanged(name):
    assert resolve_executable(name, {"PATH": PATH}) == name


def test_resolve_returns_unknown_names_unchanged():
    assert resolve_executable("nsuwsgi-surely-not-a-command", {"PATH": PATH}) == \
        "nsuwsgi-surely-not-a-command"
