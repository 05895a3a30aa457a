"""The one spawn primitive: every process nsuwsgi starts goes through `spawn`.

It follows CPython's subprocess child discipline. Everything is decided before fork and handed
to the child as flat data (a ProcessSpec). Between fork and exec the child calls only `os`
functions and `os._exit`: no logging, no imports, no locks, no Python-level signal handlers
(all signals are blocked across the fork and reset to their defaults in the child). A failure
in the child is written to a close-on-exec pipe as `stage:errno:detail`; the parent reads that
pipe until EOF, so `spawn` either returns a running child or raises SpawnError naming the step
that failed. This also makes a missing command a normal, reportable event instead of a child
that silently exits 127.

Two faster roads, both still this one primitive, avoid copying the Python process where
nothing but exec follows: a plain spawn (no jail, no uid change, no cwd) uses posix_spawn
(vfork), and in a PID-namespace jail, init applies the payload's privilege ops to itself and
posix_spawns the payload instead of forking a second Python. Signal masks go through the
C-level `_signal` functions: the `signal` module's wrappers build enums, slowly.
"""

from __future__ import annotations

import errno
import gc
import os
import signal
import socket
import sys

import _signal

from nsuwsgi import linux
from nsuwsgi import jail        # the package; spawn() loads its modules when a spec has a jail
from nsuwsgi.errors import JailError
from nsuwsgi.records import Record
from nsuwsgi.spec import ProcessSpec

ALL_SIGNALS = set(range(1, signal.NSIG)) - {signal.SIGKILL, signal.SIGSTOP, 32, 33}


class SpawnError(Exception):
    """The child could not be started; `stage` says which step failed."""

    def __init__(self, stage: str, err: int, detail: str):
        self.stage = stage
        self.errno = err
        self.detail = detail
        name = errno.errorcode.get(err, str(err))
        super().__init__(f"{stage}:{name}:{detail}" if detail else f"{stage}:{name}")

    def describe(self) -> str:
        """A sentence for the log: what failed, why, and on what."""
        reason = os.strerror(self.errno) if self.errno else "failed"
        where = f" {self.detail}" if self.detail else ""
        return f"{self.stage} failed: {reason}{where} ({errno.errorcode.get(self.errno, '?')})"


class Child(Record):
    """A spawned process: its pid, a pidfd to watch and signal it, and when it started."""

    __slots__ = ("pid", "pidfd", "started")

    def __init__(self, pid: int, pidfd: int, started: float):
        self.pid = pid
        self.pidfd = pidfd
        self.started = started      # time.monotonic() at spawn


def describe_status(status: int) -> str:
    """A wait status (waitpid, or linux.reap_pidfd) in words, for the log and the stats."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return f"was killed by {name}"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"


def resolve_executable(name: str, env: dict[str, str] | tuple[str, ...]) -> str:
    """An absolute path for argv[0], resolved in the parent with the child's PATH.

    Returns the name unchanged when it cannot be found, so the child's exec reports ENOENT
    through the error pipe like any other failure.
    """
    if "/" in name:
        return name
    if isinstance(env, tuple):
        env = dict(item.split("=", 1) for item in env if "=" in item)
    path = env.get("PATH", os.defpath)
    import shutil                   # ~2 ms; resolving happens before any fork
    return shutil.which(name, path=path) or name


def spawn(spec: ProcessSpec, now: float) -> Child:
    """Fork and exec `spec`. Returns the running child, or raises SpawnError."""
    argv = [os.fsencode(a) for a in spec.argv]
    executable = os.fsencode(spec.executable)
    env = dict(os.fsencode(e).split(b"=", 1) for e in spec.env)
    if _plain(spec):
        pid = _posix_spawn(spec, executable, argv, env, keep=spec.pass_fds)
        return Child(pid=pid, pidfd=linux.pidfd_open(pid), started=now)
    if spec.jail is not None:
        _load_jail_code()
    handled = _handled_signals()
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    sync = socket.socketpair() if spec.host_setup is not None else (None, None)
    parent = os.getpid()
    collecting = spec.run is not None and gc.isenabled()
    if collecting:
        gc.disable()                # see _run_python_payload: no collection before its freeze
    old_mask = _signal.pthread_sigmask(_signal.SIG_BLOCK, ALL_SIGNALS)
    pid = -1
    try:
        pid = _fork(spec)
    except SpawnError:
        _signal.pthread_sigmask(_signal.SIG_SETMASK, old_mask)
        os.close(read_end)
        os.close(write_end)
        raise
    finally:
        if collecting and pid != 0:     # the parent (not by getpid(): both may be PID 1)
            gc.enable()
    if pid == 0:
        _child(spec, argv, executable, env, write_end, parent, sync[1], handled,
               collecting)                                                      # no return
    _signal.pthread_sigmask(_signal.SIG_SETMASK, old_mask)
    os.close(write_end)
    if sync[0] is not None:
        sync[1].close()
        try:
            _host_setup(spec, pid, sync[0])
        except SpawnError:
            os.close(read_end)
            _kill_and_reap(pid)
            raise
        finally:
            sync[0].close()
    try:
        report = _read_all(read_end)
    finally:
        os.close(read_end)
    if report:
        _reap(pid)
        stage, err, detail = report.decode(errors="replace").split(":", 2)
        raise SpawnError(stage, int(err), detail)
    pidfd = linux.pidfd_open(pid)
    return Child(pid=pid, pidfd=pidfd, started=now)


def _load_jail_code() -> None:
    """The child may not import between fork and exec, so the parent loads the jail's code.

    Only jailed specs pay for it (~10 ms): a plain instance never imports the jail modules.
    """
    from nsuwsgi.jail import apply, init
    del apply, init                 # loaded: the child reaches them as jail.apply, jail.init


def _plain(spec: ProcessSpec) -> bool:
    """Nothing between fork and exec but what posix_spawn itself can do."""
    return (spec.jail is None and spec.run is None and spec.daemonize_pidfile is None and
            not spec.pdeathsig and spec.cwd is None and spec.umask is None and
            spec.uid is None and spec.gid is None and spec.groups is None and
            os.path.isdir("/proc/self/fd"))     # to find inheritable fds (a chroot may lack it)


def _posix_spawn(spec: ProcessSpec, executable: bytes, argv, env, keep) -> int:
    """vfork+exec through posix_spawn: stdio set up, every other inheritable fd closed."""
    actions = []
    if spec.stdin_fd is None and spec.stdin_devnull:
        actions.append((os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0))
    for target, source in ((0, spec.stdin_fd), (1, spec.stdout_fd), (2, spec.stderr_fd)):
        if source is not None and source != target:
            actions.append((os.POSIX_SPAWN_DUP2, source, target))
    for fd in _inheritable_fds(exclude=keep):
        actions.append((os.POSIX_SPAWN_CLOSE, fd))
    for fd in keep:
        os.set_inheritable(fd, True)
    try:
        return os.posix_spawn(executable, argv, env, file_actions=actions,
                              setsid=spec.new_session, setsigmask=(),
                              setsigdef=ALL_SIGNALS)
    except OSError as exc:
        raise SpawnError("exec", exc.errno or 0, spec.executable) from None
    finally:
        for fd in keep:
            os.set_inheritable(fd, False)


def _inheritable_fds(exclude) -> list[int]:
    """Fds above 2 that exec would pass on (Python's own fds are close-on-exec already)."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in exclude:
            try:
                if os.get_inheritable(fd):
                    found.append(fd)
            except OSError:
                pass                # the directory fd of listdir itself, now closed
    return found


def _handled_signals() -> list[int]:
    """Signals whose disposition is not the default: the child resets only these."""
    return [sig for sig in ALL_SIGNALS if _signal.getsignal(sig) != _signal.SIG_DFL]


def _fork(spec: ProcessSpec) -> int:
    """fork(); with a PID namespace, the child is born as PID 1 of a new one.

    unshare(CLONE_NEWPID) only changes where the caller's *next* child goes, so the parent
    unshares, forks, and then setns()es back to its own PID namespace for later children.
    """
    if spec.jail is None or not spec.jail.new_pid_namespace:
        return _or_spawn_error("fork", "", os.fork)
    from nsuwsgi.linux import syscalls      # in the parent; loaded with jail.apply already
    own_ns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _or_spawn_error("unshare", "pid", syscalls.unshare, linux.CLONE_NEWPID)
        try:
            pid = _or_spawn_error("fork", "", os.fork)
        except SpawnError:
            syscalls.setns(own_ns, linux.CLONE_NEWPID)
            raise
        if pid != 0:                # the parent goes back; the child is PID 1 of the new one
            _or_spawn_error("setns", "pid", syscalls.setns, own_ns, linux.CLONE_NEWPID)
        return pid
    finally:
        os.close(own_ns)


def _or_spawn_error(stage: str, detail: str, func, *args):
    try:
        return func(*args)
    except OSError as exc:
        raise SpawnError(stage, exc.errno or 0, detail) from None


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _host_setup(spec: ProcessSpec, pid: int, sync: socket.socket) -> None:
    """Wait until the child's namespaces exist, do the host's part, then let it go on."""
    if sync.recv(1) != b"R":
        return                      # the child failed first; its error pipe says why
    try:
        spec.host_setup(pid)
    except Exception as exc:        # noqa: BLE001 - reported as the spawn's failure
        raise SpawnError("host_setup", getattr(exc, "errno", 0) or 0, str(exc)) from None
    sync.send(b"G")


def _kill_and_reap(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _reap(pid)


def _wait_for_host(sync) -> None:
    """Child side of host_setup: say our namespaces exist, wait for the go-ahead."""
    sync.send(b"R")
    if sync.recv(1) != b"G":
        os._exit(127)
    sync.close()


def _child(spec, argv, executable, env, errpipe, parent, sync, handled, collecting) -> None:
    """Runs in the forked child. Only os calls and the jail's ops; it ends in exec or _exit."""
    stage, detail = "start", ""
    try:
        stage = "signals"
        _default_signals(handled)
        if spec.pdeathsig:
            stage = "pdeathsig"
            _set_pdeathsig(spec.pdeathsig, parent)
        if spec.new_session:
            stage = "setsid"
            os.setsid()
        if spec.jail is not None:
            stage = "jail"
            jail.apply.run_ops(spec.jail.init_ops)
            if sync is not None:
                stage = "wait_for_host"
                _wait_for_host(sync)
            if spec.jail.new_pid_namespace and spec.run is None:
                stage = "spawn_payload"
                _become_init_and_spawn_payload(spec, executable, argv, env, errpipe)
            if spec.jail.new_pid_namespace:
                stage = "fork_payload"
                _become_init_and_fork_payload(spec, errpipe)
            jail.apply.run_ops(spec.jail.payload_ops)
        stage = "stdio"
        _setup_stdio(spec)
        stage = "close_fds"
        _close_fds(spec.pass_fds, errpipe)
        if spec.umask is not None:
            os.umask(spec.umask)
        if spec.cwd:
            stage, detail = "chdir", spec.cwd
            os.chdir(spec.cwd)
        stage, detail = "setuid", ""
        _switch_user(spec)
        if spec.daemonize_pidfile:
            stage = "daemonize"
            _daemonize(spec.daemonize_pidfile)
        stage = "unblock"
        _signal.pthread_sigmask(_signal.SIG_SETMASK, ())
        if spec.run is not None:
            _run_python_payload(spec, errpipe, collecting)       # never returns
        stage, detail = "exec", spec.executable
        os.execve(executable, argv, env)
    except JailError as exc:
        _report(errpipe, exc.stage, exc.errno, exc.detail)
    except OSError as exc:
        _report(errpipe, stage, exc.errno or 0, detail)
    except BaseException as exc:
        _report(errpipe, stage, 0, f"{detail} {type(exc).__name__}".strip())
    os._exit(127)


def _default_signals(handled: list[int]) -> None:
    """Dispositions back to default; the mask stays blocked until just before exec."""
    for sig in handled:
        try:
            _signal.signal(sig, _signal.SIG_DFL)
        except (OSError, ValueError):
            pass


def _set_pdeathsig(sig: int, parent: int) -> None:
    linux.set_pdeathsig(sig)
    # Did the parent die before prctl took effect? PID 1 of a new PID namespace cannot tell:
    # its parent lives outside the namespace, so getppid() is 0 there.
    if os.getpid() != 1 and os.getppid() != parent:
        os._exit(127)


def _become_init_and_fork_payload(spec, errpipe) -> None:
    """We are PID 1 of a new PID namespace: fork the payload, stay behind as its init."""
    init_pid = os.getpid()
    payload = os.fork()
    if payload != 0:
        os.closerange(3, 1 << 20)   # init keeps no fd: the payload reports from now on
        jail.init.run_init(payload, spec.jail.init_caps, spec.jail.relay_to_group)     # never returns
    _set_pdeathsig(signal.SIGKILL, init_pid)
    os.setpgid(0, 0)                # its own group: init relays signals to all of it


def _become_init_and_spawn_payload(spec, executable, argv, env, errpipe) -> None:
    """PID 1 of a new namespace, exec payload: drop to the payload's privileges ourselves and
    posix_spawn it (vfork: no second copy of the Python process), then stay behind as init
    with no more than the payload has. Never returns."""
    jail.apply.run_ops(spec.jail.payload_ops)
    _setup_stdio(spec)
    _close_fds(spec.pass_fds, errpipe)
    if spec.umask is not None:
        os.umask(spec.umask)
    try:
        if spec.cwd:
            os.chdir(spec.cwd)
        _switch_user(spec)
    except OSError as exc:
        raise JailError("chdir" if spec.cwd else "setuid", exc.errno or 0,
                              spec.cwd or "") from None
    pid = _posix_spawn_payload(spec, executable, argv, env)
    os.closerange(3, 1 << 20)       # the error pipe too: the parent reads EOF, success
    jail.init.run_init(pid, spec.jail.init_caps, spec.jail.relay_to_group)     # never returns


def _posix_spawn_payload(spec, executable, argv, env) -> int:
    try:
        return os.posix_spawn(executable, argv, env, setpgroup=0, setsigmask=(),
                              setsigdef=ALL_SIGNALS)
    except OSError as exc:
        raise JailError("exec", exc.errno or 0, spec.executable) from None


def _switch_user(spec) -> None:
    """Plain (unjailed) uid/gid changes; a jail does this in its SwitchUser op instead."""
    if spec.groups is not None:
        os.setgroups(list(spec.groups))
    if spec.gid is not None:
        os.setgid(spec.gid)
    if spec.uid is not None:
        os.setuid(spec.uid)


def _run_python_payload(spec, errpipe, collecting: bool) -> None:
    """Run already-imported Python code instead of exec (the jailed master). Never returns.

    What the child inherited is frozen: never collected here. A socket in a garbage cycle of
    the parent would otherwise close, when collected, whatever fd the child has by then
    under the same number; and a collection would write to every inherited page (memory
    shared with the parent). The parent turned collection off for the fork, so nothing ran
    in between. (The parent used to run a full gc.collect() before each fork instead: 1.5
    to 2 ms on every cold start, measured.)
    """
    gc.freeze()
    if collecting:
        gc.enable()
    os.close(errpipe)               # setup succeeded: the parent's read sees EOF
    code = 1
    try:
        code = spec.run()
    except BaseException:           # a bug in nsuwsgi: say so before the process ends
        sys.excepthook(*sys.exc_info())     # the C traceback printer: nothing to import
        sys.stderr.flush()
    finally:
        os._exit(code if isinstance(code, int) else 1)


def _report(errpipe: int, stage: str, err: int, detail: str) -> None:
    try:
        os.write(errpipe, f"{stage}:{err}:{detail}".encode(errors="replace"))
    except OSError:
        pass


def _setup_stdio(spec: ProcessSpec) -> None:
    if spec.stdin_fd is None and spec.stdin_devnull:
        fd = os.open("/dev/null", os.O_RDONLY)
        if fd != 0:
            os.dup2(fd, 0)
            os.close(fd)
    for target, source in ((0, spec.stdin_fd), (1, spec.stdout_fd), (2, spec.stderr_fd)):
        if source is not None and source != target:
            os.dup2(source, target)


def _close_fds(keep: tuple[int, ...], errpipe: int) -> None:
    """Close every fd above 2 except the listed ones and the error pipe (close-on-exec)."""
    keep_all = sorted({*keep, errpipe})
    low = 3
    for fd in keep_all:
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    os.closerange(low, 1 << 20)
    for fd in keep:
        os.set_inheritable(fd, True)


def _daemonize(pidfile: str) -> None:
    """smart-attach-daemon2: detach, and let the grandchild record its own pid."""
    if os.fork() != 0:
        os._exit(0)
    fd = os.open(pidfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    os.write(fd, f"{os.getpid()}\n".encode())
    os.close(fd)
