"""External daemons: the attach-daemon family, driven by the shared state machine.

A `Daemon` turns one DaemonDecl into processes. Three kinds, as in uWSGI:
  dumb    our child, in the foreground; stops with the master (stop signal, then SIGKILL);
  smart   daemonizes itself and writes a pidfile; survives the master and is adopted later;
  smart2  nsuwsgi daemonizes it and writes the pidfile; otherwise like smart.

Where uWSGI polls, we wait on events: a pidfd per process (including pidfile daemons that are
not our children), and inotify for pidfiles and touch files. A pidfile is trusted only when its
pid is alive, is not a zombie, started no later than the pidfile was written (and, for a daemon
we spawned, no earlier than our spawn), and runs the daemon's program. uWSGI trusts any pid
that `kill(pid, 0)` accepts, so zombies and reused pids look alive to it.

Commands without shell syntax are exec'd directly, so the tracked pid is the daemon itself and
PDEATHSIG reaches it. Commands that need a shell run under /bin/sh in their own session; the
whole process group is signalled, and the lifeline (lifeline.py) kills it if the master dies.
"""

from __future__ import annotations

import os
import pwd
import shlex
import signal
from collections.abc import Callable

from nsuwsgi import linux
from nsuwsgi.fsm import Action, Backoff, Event, Machine, State
from nsuwsgi.spawn import SpawnError, describe_status, resolve_executable, spawn
from nsuwsgi.jail.plan import plan
from nsuwsgi.spec import DUMB, SMART2, DaemonDecl, JailSpec, ProcessSpec

SHELL_CHARS = set("|&;<>()$`\\*?[]#~=%{}\n'\"")
SHELL_WORDS = {"if", "for", "while", "case", "then", "do", "!", "{", "cd", "export", "set",
               "source", ".", "ulimit", "umask", "trap", "exit"}


def command_argv(command: str) -> tuple[list[str], bool]:
    """(argv, uses_shell). Plain `prog arg 'quoted arg'` is exec'd without a shell."""
    text = command.strip()
    if text.startswith("exec "):
        text = text[5:].strip()
    try:
        words = shlex.split(text)
    except ValueError:
        words = []
    plain = words and not any(ch in SHELL_CHARS for ch in text.replace("'", "").replace('"', ""))
    if plain and words[0] not in SHELL_WORDS:
        return words, False
    return ["/bin/sh", "-c", command], True


def program_name(command: str) -> str:
    """The program a command runs, for matching a pidfile's process: `memcached`, `celery`.

    For shell commands it is the last simple command (`cd /app && exec celery ...` -> celery);
    when that starts with shell syntax (`while`, `if` ...) there is no name to check: "".
    """
    last = command.replace("&&", ";").replace("||", ";").split(";")[-1]
    for word in last.split():
        if "=" in word or word in ("exec", "env", "nohup", "sudo") or word.startswith("-"):
            continue
        if word in SHELL_WORDS or any(ch in SHELL_CHARS for ch in word.strip("'\"")):
            return ""
        return os.path.basename(word.strip("'\""))
    return ""


def runs_program(pid: int, name: str) -> bool:
    """True when the process's command line or comm names `name` (interpreters allowed)."""
    if not name:
        return True
    words = [os.path.basename(w).rstrip(":") for w in linux.proc_cmdline(pid)[:3]]
    if words and words[0] and " " in words[0]:     # a process title like "nginx: master"
        words = [w.rstrip(":") for w in words[0].split()] + words[1:]
    if name in words:
        return True
    try:
        with open(f"/proc/{pid}/comm") as f:
            comm = f.read().strip()
    except OSError:
        return False
    return comm == name[:15]


def read_pidfile(path: str) -> tuple[int, float] | None:
    """(pid, mtime) from a pidfile, or None if it is missing or holds no valid pid."""
    try:
        with open(path, "rb") as f:
            data = f.read(64)
        mtime = os.stat(path).st_mtime
    except OSError:
        return None
    try:
        pid = int(data.split()[0])
    except (ValueError, IndexError):
        return None
    return (pid, mtime) if pid > 0 else None


TICK = 0.05   # slack for /proc's 10 ms start-time granularity


def trusted_pid(path: str, program: str, not_before: float | None) -> tuple[int | None, str]:
    """The pid a pidfile names if it is really our daemon, else (None, why not).

    `not_before` is our spawn time (seconds since boot) when we started the daemon ourselves.
    """
    found = read_pidfile(path)
    if found is None:
        return None, "no valid pid in the pidfile"
    pid, mtime = found
    written = linux.wall_to_boottime(mtime)
    stat = linux.proc_stat(pid)
    if stat is None:
        return None, f"pid {pid} is not running"
    state, started = stat
    if state in ("Z", "X"):
        return None, f"pid {pid} is a zombie"
    if started > written + TICK:
        return None, f"pid {pid} started after the pidfile was written (a reused pid)"
    if not_before is not None and started + TICK < not_before:
        return None, f"pid {pid} is older than our spawn"
    if not runs_program(pid, program):
        return None, f"pid {pid} does not run '{program}'"
    return pid, ""


def daemon_env(base: dict[str, str]) -> tuple[str, ...]:
    return tuple(f"{k}={v}" for k, v in base.items())


class Daemon:
    """One declared daemon and the processes that implement it."""

    def __init__(self, decl: DaemonDecl, host: "DaemonHost"):
        self.decl = decl
        self.host = host
        self.machine = Machine(Backoff(cap=float(decl.max_throttle or 30)))
        self.argv, self.uses_shell = command_argv(decl.command)
        # smart2: we write the pidfile with our own grandchild's pid, so it needs no name check
        self.program = "" if decl.mode == SMART2 else program_name(decl.command)
        self.child = None               # our direct child (spawn.Child)
        self.pid: int | None = None     # the daemon's own pid (child, or pidfile pid)
        self.pidfd: int | None = None   # watches self.pid
        self.spawned_at: float | None = None
        self.timer = None
        self.last_exit: str | None = None
        self.first_failure: str | None = None
        self.watching_pidfile = False
        self.touch_seen: dict[str, tuple | None] = {}
        self.touch_timer = None
        self.released = False

    # ---- identity

    @property
    def name(self) -> str:
        return self.decl.command

    @property
    def is_dumb(self) -> bool:
        return self.decl.mode == DUMB

    @property
    def state(self) -> State:
        return self.machine.state

    def log(self, message: str) -> None:
        self.host.log(f"[nsuwsgi-daemons] {message}")

    # ---- requests from the master

    def start(self) -> None:
        """First start: adopt a live pidfile daemon if there is one, else spawn."""
        self._watch_touch_files()
        if self.decl.pidfile and self._try_adopt():
            return
        self._handle(Event.START)

    def stop(self) -> None:
        self._handle(Event.STOP)

    def restart(self) -> None:
        self._handle(Event.RESTART)

    def reload(self) -> None:
        """The master reloads: a reload signal if set (the daemon reloads itself), else restart."""
        if self.is_dumb:
            if self.decl.reload_signal and self.state is State.RUNNING:
                self.log(f"sending reload signal {self.decl.reload_signal} to \"{self.name}\" "
                         f"(pid: {self.pid})")
                self.send_signal(self.decl.reload_signal)
            else:
                self.restart()
        elif self.decl.notify_pid and self.state is State.RUNNING:
            self.send_signal(self.decl.reload_signal or signal.SIGHUP)

    def release(self) -> None:
        """The master is going away: smart daemons live on (notifypid ones are told)."""
        if self.decl.notify_pid and self.state is State.RUNNING:
            self.send_signal(self.decl.stop_signal)
        self.released = True
        self._cancel_timer()
        self._unwatch_all()
        self._close_fds()

    @property
    def stopped(self) -> bool:
        return self.state is State.STOPPED or self.released

    # ---- the state machine

    def _handle(self, event: Event) -> None:
        for action in self.machine.handle(event, self.host.now()):
            self._perform(action)

    def _perform(self, action: Action) -> None:
        if action is Action.SPAWN:
            self._spawn()
        elif action is Action.SIGNAL_STOP:
            self.send_signal(self.decl.stop_signal)
            self._arm(self.host.mercy, Event.TIMER)
        elif action is Action.KILL:
            if self.state is State.STOPPING:
                pid = self.pid if self.pid is not None else self.child and self.child.pid
                self.log(f"daemon did not stop in time, killing (pid: {pid}): {self.name}")
            self.send_signal(signal.SIGKILL)
        elif action is Action.ARM_BACKOFF:
            self._forget_process()
            self.log(f"\"{self.name}\" will be started again in {self.machine.delay:.1f}s "
                     f"(failure {self.machine.failures} in a row)")
            self._arm(self.machine.delay, Event.TIMER)
        elif action is Action.CANCEL_TIMER:
            self._cancel_timer()
        elif action is Action.GAVE_UP:
            self.log(f"\"{self.name}\" is BROKEN: it failed {self.machine.failures} times in a "
                     f"row; retrying every {self.machine.policy.cap:.0f}s at most "
                     f"(first failure: {self.first_failure}; declared at {self.decl.origin})")
        elif action is Action.STOPPED:
            self._forget_process()

    def _arm(self, delay: float, event: Event) -> None:
        self._cancel_timer()
        self.timer = self.host.loop.call_later(delay, lambda: self._timer_fired(event))

    def _timer_fired(self, event: Event) -> None:
        self.timer = None
        if self.state is State.STARTING:
            self._record_failure(f"no running process in {self.decl.pidfile} after "
                                 f"{self.decl.freq}s")
            self.log(f"\"{self.name}\" did not write a valid pidfile {self.decl.pidfile} "
                     f"within freq={self.decl.freq}s [{self.decl.origin}]")
        self._handle(event)

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    # ---- spawning

    def _process_spec(self) -> ProcessSpec:
        decl = self.decl
        env = self.host.environment()
        groups, gid = None, decl.gid
        if decl.uid is not None and gid is None:
            gid = primary_gid(decl.uid)
        if decl.uid is not None or gid is not None:
            groups = self._groups_for(decl.uid, gid)
        executable = resolve_executable(self.argv[0], env)
        uid = decl.uid
        jail = None
        if decl.ns_pid:     # the jail's plan switches user, and sets caps for that user
            jail = plan(JailSpec(namespaces=linux.CLONE_NEWPID, uid=uid, gid=gid,
                                 groups=groups))
            uid = gid = groups = None
        return ProcessSpec(
            argv=tuple(self.argv), executable=executable, env=daemon_env(env),
            cwd=decl.chdir, uid=uid, gid=gid, groups=groups,
            stdin_devnull=not (decl.stdin or self.host.honour_stdin),
            new_session=True,
            # No PDEATHSIG: it would reach only the direct child and force the slow fork
            # road; the lifeline kills a dumb daemon's whole group when the master dies.
            pdeathsig=0,
            daemonize_pidfile=decl.pidfile if decl.mode == SMART2 else None,
            jail=jail,
        )

    @staticmethod
    def _groups_for(uid: int | None, gid: int | None) -> tuple[int, ...]:
        """No inherited supplementary groups: the user's own, or just the gid (uWSGI keeps root's)."""
        if uid is not None:
            try:
                user = pwd.getpwuid(uid)
                return tuple(os.getgrouplist(user.pw_name, gid if gid is not None else user.pw_gid))
            except KeyError:
                pass
        return (gid,) if gid is not None else ()

    def _spawn(self) -> None:
        if self.child is not None:          # a launcher that timed out: reap it in the background
            self.host.loop.remove_reader(self.child.pidfd)
            self.host.reap_later(self.child)
            self.child = None
        self._forget_process()
        spec = self._process_spec()
        verb = "respawning" if self.machine.spawns > 1 else "spawning"
        self.spawned_at = linux.boottime()
        if self.is_dumb:
            self.host.lifeline_ready()          # before the spawn: no window without it
        try:
            self.child = spawn(spec, self.host.now())
        except SpawnError as err:
            if self.decl.mode == SMART2 and err.stage == "exec":
                linux.unlink_quietly(self.decl.pidfile)   # it names our grandchild, which never ran
            self._record_failure(f"{err.describe()}")
            self.log(f"cannot start \"{self.name}\": {err.describe()} "
                     f"[{self.decl.origin}: {self.decl.option}] (hint: {spawn_hint(err)})")
            if self.decl.control and self.host.running:
                self.host.control_daemon_died(self)     # the instance lives with it
            self._handle(Event.FAIL)
            return
        self.host.loop.add_reader(self.child.pidfd, self._child_exited)
        how = "via /bin/sh" if self.uses_shell else "directly"
        self.log(f"{verb} \"{self.name}\" (pid: {self.child.pid}, {how})")
        if self.is_dumb:
            self.pid, self.pidfd = self.child.pid, self.child.pidfd
            self.host.lifeline_add(self.child.pid)
            self._handle(Event.UP)
        else:
            self._wait_for_pidfile()

    def _record_failure(self, text: str) -> None:
        self.last_exit = text
        if self.first_failure is None:
            self.first_failure = text

    # ---- pidfile daemons

    def _try_adopt(self) -> bool:
        pid, why = trusted_pid(self.decl.pidfile, self.program, None)
        if pid is None:
            if os.path.exists(self.decl.pidfile):
                self.log(f"not adopting pidfile {self.decl.pidfile} for \"{self.name}\": {why}")
            return False
        try:
            self.pidfd = linux.pidfd_open(pid)
        except OSError:
            return False
        self.pid = pid
        self.host.loop.add_reader(self.pidfd, self._daemon_exited)
        self.log(f"found valid/active pidfile for \"{self.name}\" (pid: {pid}), adopting it")
        self._handle(Event.ADOPT)
        return True

    def _wait_for_pidfile(self) -> None:
        if not self.watching_pidfile:
            self.watching_pidfile = self.host.watch(self.decl.pidfile, self._pidfile_event)
        self._arm(float(self.decl.freq), Event.TIMER)
        self._pidfile_event()

    def _pidfile_event(self) -> None:
        if self.state is not State.STARTING or self.pid is not None:
            return
        pid, _why = trusted_pid(self.decl.pidfile, self.program, self.spawned_at)
        if pid is None:
            return
        self.pid = pid
        if self.child is not None and pid == self.child.pid:
            self.pidfd = self.child.pidfd          # a foreground daemon that writes a pidfile
        else:
            try:
                self.pidfd = linux.pidfd_open(pid)
            except OSError:
                self.pid = None
                return
            self.host.loop.add_reader(self.pidfd, self._daemon_exited)
        self._cancel_timer()
        self.log(f"\"{self.name}\" is running (pid: {pid}, from {self.decl.pidfile})")
        self._handle(Event.UP)

    def _daemon_exited(self) -> None:
        """The pidfd of a pidfile daemon that is not our child turned readable: it is dead."""
        pid = self.pid
        self._close_pidfd()
        self.pid = None
        self._record_failure(f"pid {pid} ended")
        self.log(f"\"{self.name}\" (pid: {pid}) ended")
        self._handle(Event.EXIT)

    # ---- our direct child ended

    def _child_exited(self) -> None:
        child = self.child
        status = linux.reap_pidfd(child.pidfd)
        if status is None:
            return
        self.host.loop.remove_reader(child.pidfd)
        os.close(child.pidfd)
        if self.is_dumb:                        # no straggler outlives its daemon
            already_signalled = self.state is State.STOPPING
            self.host.linger(child.pid, None if already_signalled else self.decl.stop_signal)
        self.child = None
        text = describe_status(status)
        if self.pid == child.pid:               # the daemon itself ended
            self.pid, self.pidfd = None, None
            self._record_failure(text)
            self.log(f"\"{self.name}\" (pid: {child.pid}) {text}")
            if self.decl.control and self.host.running and self.state is State.RUNNING:
                self.host.control_daemon_died(self)     # not when we stopped it ourselves
            self._handle(Event.EXIT)
            return
        # The launcher of a pidfile daemon ended (it usually daemonized and exited 0).
        if self.state is State.STOPPING and self.pid is None:
            self._handle(Event.EXIT)                    # stopped while still starting
        elif status != 0 and self.pid is None and self.state is State.STARTING:
            self._record_failure(f"launcher {text}")
            self.log(f"\"{self.name}\" launcher (pid: {child.pid}) {text} before writing "
                     f"{self.decl.pidfile}")
            self._handle(Event.FAIL)
        elif self.state is State.STARTING:
            self._pidfile_event()

    # ---- signals

    def send_signal(self, sig: int) -> None:
        """Signal the daemon's process group if it leads one, else the process itself.

        An ns_pid daemon is signalled through its init only, which relays to the daemon
        (signalling the group too would deliver every signal twice).
        """
        if self.decl.ns_pid and self.pidfd is not None:
            try:
                linux.pidfd_send_signal(self.pidfd, sig)
            except ProcessLookupError:
                pass
            return
        targets = []
        if self.pid is not None:
            targets.append(self.pid)
        if self.child is not None and self.child.pid not in targets:
            targets.append(self.child.pid)
        for pid in targets:
            try:
                if os.getpgid(pid) == pid:
                    os.killpg(pid, sig)
                elif pid == self.pid and self.pidfd is not None:
                    linux.pidfd_send_signal(self.pidfd, sig)
                else:
                    os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    # ---- touch

    def _watch_touch_files(self) -> None:
        for path in self.decl.touch:
            self.touch_seen[path] = linux.file_state(path)
            self.host.watch(path, self._touch_event)

    def _touch_event(self) -> None:
        """Coalesce a burst of events (create, write, close) into one look 20 ms later."""
        if self.touch_timer is None:
            self.touch_timer = self.host.loop.call_later(0.02, self._check_touch_files)

    def _check_touch_files(self) -> None:
        self.touch_timer = None
        for path in self.decl.touch:
            now = linux.file_state(path)
            if now != self.touch_seen.get(path):
                self.touch_seen[path] = now
                self.log(f"*** {path} has been touched... restarting daemon \"{self.name}\" "
                         f"(pid: {self.pid}) ***")
                self.restart()
                return

    # ---- cleanup

    def _forget_process(self) -> None:
        """Drop the pidfd of a pidfile daemon that is gone (our own child is reaped on exit)."""
        if self.child is None or self.pid != self.child.pid:
            self._close_pidfd()
            self.pid = None

    def _close_pidfd(self) -> None:
        if self.pidfd is None:
            return
        if self.child is None or self.pidfd != self.child.pidfd:
            self.host.loop.remove_reader(self.pidfd)
            os.close(self.pidfd)
        self.pidfd = None

    def _unwatch_all(self) -> None:
        if self.watching_pidfile:
            self.host.unwatch(self.decl.pidfile, self._pidfile_event)
            self.watching_pidfile = False
        for path in self.decl.touch:
            self.host.unwatch(path, self._touch_event)

    def _close_fds(self) -> None:
        self._close_pidfd()
        if self.child is not None:
            self.host.loop.remove_reader(self.child.pidfd)
            os.close(self.child.pidfd)
            self.child = None

    def forget(self) -> None:
        """Removed from the config and stopped: release every resource."""
        self._cancel_timer()
        if self.touch_timer is not None:
            self.touch_timer.cancel()
            self.touch_timer = None
        self._unwatch_all()
        self._close_fds()

    # ---- stats

    def stats(self) -> dict:
        return {
            "cmd": self.decl.command,
            "mode": self.decl.mode,
            "pid": self.pid if self.pid is not None else -1,
            "state": self.state.value,
            "respawns": self.machine.restarts,
            "restarts": self.machine.restarts,
            "failures_in_a_row": self.machine.failures,
            "last_exit": self.last_exit,
            "first_failure": self.first_failure,
            "pidfile": self.decl.pidfile,
            "control": self.decl.control,
            "stopsignal": self.decl.stop_signal,
            "reloadsignal": self.decl.reload_signal,
            "declared_at": str(self.decl.origin),
        }


def primary_gid(uid: int) -> int | None:
    try:
        return pwd.getpwuid(uid).pw_gid
    except KeyError:
        return None


def spawn_hint(err: SpawnError) -> str:
    if err.stage == "exec" and err.errno in (2,):
        return "check that the program exists and is on PATH, or give its full path"
    if err.stage == "exec" and err.errno == 13:
        return "make the program executable (chmod +x) and readable by the daemon's user"
    if err.stage == "chdir":
        return "create the directory or fix chdir="
    if err.stage in ("setuid", "setgid", "setgroups"):
        return "uid/gid changes need a master running as root"
    return "see the daemons guide in docs/daemons.md"


class DaemonHost:
    """What a Daemon needs from the master (an interface, so tests can drive a daemon)."""

    loop = None
    mercy: float = 3.0
    honour_stdin: bool = False
    running: bool = True
    now: Callable[[], float]

    def log(self, message: str) -> None: ...
    def watch(self, path: str, callback: Callable[[], None]) -> bool: ...
    def unwatch(self, path: str, callback: Callable[[], None]) -> None: ...
    def environment(self) -> dict[str, str]: ...
    def control_daemon_died(self, daemon: Daemon) -> None: ...
    def lifeline_add(self, pgid: int) -> None: ...
    def lifeline_ready(self) -> None: ...
    def lifeline_remove(self, pgid: int) -> None: ...
    def linger(self, pgid: int, sig: int | None) -> None: ...
    def reap_later(self, child) -> None: ...
