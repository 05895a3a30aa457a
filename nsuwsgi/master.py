"""The master: one thread, one loop, one table of supervised processes.

Modelled on gunicorn's arbiter: signals are turned into loop events, never handled inside the
signal handler; every child is watched through a pidfd, so its death is an event rather than
something found on the next tick. The signal table is documented in docs/signals.md:

  SIGTERM          graceful shutdown (uWSGI 2.0 reloads here; we follow systemd and 2.1)
  SIGINT, SIGQUIT  immediate shutdown; a second stop signal SIGKILLs what is left
  SIGHUP           graceful reload: the config is read again and applied as a diff

A reload happens in the same process, without re-exec: a bad new config is reported and the
running one is kept, and a reload inside a jail needs no binary or cwd from outside it.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import pwd
import signal
import sys
import time
from collections.abc import Callable

import _signal       # signal.signal converts to enums: pages every process touches

from nsuwsgi import __version__, linux
from nsuwsgi.fsm import State
from nsuwsgi.errors import (EXIT_CONFIG, EXIT_CONTROL_DAEMON, EXIT_OK, EXIT_RUNTIME,
                            ConfigErrors, UserError)
from nsuwsgi.lifeline import Lifeline
from nsuwsgi.loop import Loop
from nsuwsgi.options import Config, decode_config, jail_spec, validate
from nsuwsgi.server import sockets
from nsuwsgi.systemd import Notifier, feed_watchdog

TYPE_CHECKING = False    # type checkers take it as True; `typing` costs ~2 ms at start
if TYPE_CHECKING:                       # imported only by configs that use them
    from nsuwsgi.daemons import Daemon
    from nsuwsgi.watch import Watcher
from nsuwsgi.server.pool import Pool, memory
from nsuwsgi.server.worker import run_worker

# Options that shape the process itself; a reload cannot change them.
RESTART_ONLY = ("pidfile", "stats", "uid", "gid", "logto", "daemonize", "chdir", "umask",
                "socket", "http-socket", "shared-socket", "protocol", "listen")


class Log:
    """Lines to fd 2 (the terminal, the journal, or the logto file after setup)."""

    def __init__(self, fd: int = 2):
        self.fd = fd

    def __call__(self, message: str) -> None:
        try:
            os.write(self.fd, (message + "\n").encode(errors="replace"))
        except OSError:
            pass


class Master:
    def __init__(self, config: Config, reload_config: Callable[[], Config], log: Log):
        self.config = config
        self.reload_config = reload_config
        self.log = log
        self.loop: Loop | None = None
        self.watcher: Watcher | None = None
        self.lifeline = Lifeline()
        self.daemons: list[Daemon] = []
        self.retiring: list[Daemon] = []     # removed by a reload, still stopping
        self.lingering: set[int] = set()     # process groups whose leader already ended
        self.stats_socket = None
        self.control = None                  # the keeper's socket, when we run in a jail
        self.listeners: list[tuple] = []     # (socket, protocol), bound before any jail
        self.kept_shared: list = []          # shared sockets no option serves: kept open
        self.shared_fds: set[int] = set()    # listeners that are shared sockets (stats)
        self.pool = None                     # the prefork workers, when there is an app
        self.cheap = False                   # no worker until the next connection
        self.last_activity = time.monotonic()
        self.requests_seen = 0
        self.check_timer = None             # the once-a-second worker check, while needed
        self.stopping = False
        self.exit_code = EXIT_OK
        self.started = time.time()
        self.mercy = float(config["reload-mercy"])
        self.honour_stdin = bool(config["daemons-honour-stdin"])
        # systemd, or an Emperor, listening for READY/RELOADING/STOPPING/WATCHDOG; taken out
        # of the environment so workers and daemons do not talk to it themselves.
        self.systemd = Notifier.from_environ(unset=True)

    # ---- DaemonHost interface

    @property
    def running(self) -> bool:
        return not self.stopping

    def now(self) -> float:
        return self.loop.clock()

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def control_daemon_died(self, daemon: Daemon) -> None:
        self.log(f"[nsuwsgi] control daemon \"{daemon.name}\" ended: shutting down the instance")
        self.exit_code = EXIT_CONTROL_DAEMON
        self.shutdown(graceful=True)

    def lifeline_add(self, pgid: int) -> None:
        self.lifeline.add(pgid)

    def lifeline_ready(self) -> None:
        self.lifeline.start()

    def lifeline_remove(self, pgid: int) -> None:
        self.lifeline.remove(pgid)

    def linger(self, pgid: int, sig: int | None) -> None:
        """A dumb daemon's leader ended; the rest of its process group gets the mercy period.

        Members are not our children, so there is no event for them: poll the group every
        20 ms, only while something lingers, and SIGKILL it when the mercy period is over.
        """
        try:
            os.killpg(pgid, sig or 0)       # usually ESRCH: a daemon exec'd directly is alone
        except ProcessLookupError:
            self.lifeline.remove(pgid)
            return
        except PermissionError:
            pass
        deadline = self.now() + self.mercy

        def check():
            if not linux.group_alive(pgid):
                self.lingering.discard(pgid)
                self.lifeline.remove(pgid)
            elif self.now() >= deadline:
                self.log(f"[nsuwsgi-daemons] process group {pgid} outlived its daemon: killing it")
                _killpg(pgid, signal.SIGKILL)
                self.lingering.discard(pgid)
                self.lifeline.remove(pgid)
            else:
                self.loop.call_later(0.02, check)
        self.lingering.add(pgid)
        self.loop.call_later(0.02, check)     # off the respawn's critical path

    def reap_later(self, child) -> None:
        def reap():
            try:
                os.waitid(os.P_PIDFD, child.pidfd, os.WEXITED | os.WNOHANG)
            except ChildProcessError:
                pass
            self.loop.remove_reader(child.pidfd)
            os.close(child.pidfd)
        self.loop.add_reader(child.pidfd, reap)

    # ---- setup

    def setup(self) -> None:
        """Process-wide setup, in uWSGI's order: detach, log, env, pidfile, sockets, drop, chdir."""
        self.setup_outside_jail()
        cfg = self.config
        self.run_hooks("as-root")
        with setup_step(cfg, "uid"):
            drop_privileges(cfg["uid"], cfg["gid"], not cfg["no-initgroups"], self.log)
        self.run_hooks("as-user")
        self.setup_environment()

    def setup_outside_jail(self) -> None:
        """What must exist before any jail: the log, the pidfile, the stats socket."""
        cfg = self.config
        log_and_pidfiles(cfg, ("pidfile",))
        with setup_step(cfg, "stats"):
            if cfg["stats"]:
                from nsuwsgi.stats import bind_stats
                self.stats_socket = bind_stats(cfg["stats"])
        if serves_an_app(cfg):
            self.listeners, self.kept_shared, self.shared_fds = bind_listeners(cfg, self.log)
        elif cfg["socket"] or cfg["http-socket"] or cfg["shared-socket"]:
            self.log("[nsuwsgi] sockets are configured but no app is (wsgi-file, module or "
                     "mount): they are not opened")

    def setup_environment(self) -> None:
        cfg = self.config
        for name, value in cfg["env"]:
            os.environ[name] = value
        if cfg["umask"] is not None:
            os.umask(cfg["umask"])
        with setup_step(cfg, "chdir"):
            if cfg["chdir"]:
                os.chdir(cfg["chdir"])

    def run_hooks(self, phase: str) -> None:
        selected = [h for h in self.config.hooks if h.phase == phase]
        if selected:
            run_hook_phase(selected, phase, self.log)

    def run_in_jail(self, control) -> int:
        """The master's life inside a jail (the plan already dropped privileges)."""
        problems = validate(self.config, inside_jail=True)
        if problems:
            for err in problems:
                self.log(f"nsuwsgi: error: {err}")
            return EXIT_CONFIG
        self.control = control
        self.reload_config = _reload_from_keeper
        for sock in self.kept_shared:       # not passed into the jail: the keeper keeps them
            sock.detach()
        self.kept_shared = []
        try:
            self.setup_environment()
            self.run_hooks("master-start")
        except SetupError as err:
            self.log(f"nsuwsgi: error: {err}")
            return EXIT_RUNTIME
        return self.run()

    # ---- running

    def run(self) -> int:
        self.loop = Loop()
        _signal.signal(_signal.SIGPIPE, _signal.SIG_IGN)
        self.loop.on_signal(signal.SIGTERM, lambda s: self.shutdown(graceful=True))
        self.loop.on_signal(signal.SIGINT, lambda s: self.shutdown(graceful=False))
        self.loop.on_signal(signal.SIGQUIT, lambda s: self.shutdown(graceful=False))
        self.loop.on_signal(signal.SIGHUP, lambda s: self.reload())
        self.loop.on_signal(signal.SIGUSR1, lambda s: self.log_stats())
        self.loop.on_signal(signal.SIGUSR2, lambda s: None)     # no backtraces: ignored
        if self.control is not None:
            self.loop.add_reader(self.control, self._control_message)
        self.log(f"[nsuwsgi] master running (pid: {os.getpid()}, nsuwsgi {__version__})")
        self.start_workers()
        if self.stats_socket is not None:
            self.serve_stats()
        self.start_daemons()
        self.systemd.ready(status=self.status_text())
        feed_watchdog(self.systemd, self.loop, stopped=lambda: self.stopping)
        try:
            self.loop.run(until=self.finished)
        finally:
            self.cleanup()
        self.log(f"[nsuwsgi] goodbye (exit code {self.exit_code})")
        return self.exit_code

    def status_text(self) -> str:
        if self.pool is None:
            return f"nsuwsgi is running {len(self.daemons)} daemon(s)"
        return f"nsuwsgi is ready: {self.config['processes'] or 1} worker(s)"

    def finished(self) -> bool:
        if not self.stopping:
            return False
        if self.pool is not None and not self.pool.stopped:
            return False
        return not self.lingering and all(d.stopped for d in self.daemons + self.retiring)

    def watch(self, path: str, callback: Callable[[], None]) -> bool:
        """Call `callback` when `path` changes (touch options, pidfiles): inotify, on demand."""
        if self.watcher is None:
            from nsuwsgi.watch import Watcher
            self.watcher = Watcher()
            self.loop.add_reader(self.watcher.fileno(), self.watcher.dispatch)
        return self.watcher.watch(path, callback)

    def unwatch(self, path: str, callback: Callable[[], None]) -> None:
        if self.watcher is not None:
            self.watcher.unwatch(path, callback)

    def serve_stats(self) -> None:
        from nsuwsgi.stats import serve_one, socket_name
        self.loop.add_reader(self.stats_socket, lambda: serve_one(self.stats_socket,
                                                                   self.snapshot))
        self.log(f"[nsuwsgi] stats server listening on {socket_name(self.stats_socket)}")

    # ---- the prefork workers

    def start_workers(self) -> None:
        if not self.listeners:              # bound only when the config serves an app
            return
        processes = max(1, self.config["processes"])
        self.pool = Pool(self.loop, self.log, [sock.fileno() for sock, _ in self.listeners],
                         self._worker_main, processes, float(self.config["worker-reload-mercy"]))
        for path in self.config["touch-reload"]:
            self.watch(path, self._touched)
        self.touch_seen = {p: linux.file_state(p) for p in self.config["touch-reload"]}
        if self.config["cheap"]:
            self.go_cheap()
        else:
            self.pool.start()
        self._schedule_checks()

    def go_cheap(self) -> None:
        """No worker until a client connects (cheap); the master watches the sockets."""
        self.cheap = True
        self.log("[nsuwsgi] cheap mode: no worker until the first connection")
        for sock, _ in self.listeners:
            self.loop.add_reader(sock, self._first_connection)

    def _first_connection(self) -> None:
        for sock, _ in self.listeners:
            self.loop.remove_reader(sock)
        self.cheap = False
        self.last_activity = time.monotonic()
        self.log("[nsuwsgi] a connection arrived: spawning the workers")
        self.pool.start()

    def _touched(self) -> None:
        for path in self.config["touch-reload"]:
            now = linux.file_state(path)
            if now != self.touch_seen.get(path):
                self.touch_seen[path] = now
                self.log(f"*** {path} has been touched... grace them all !!! ***")
                if not self.cheap and not self.stopping:
                    self.pool.reload()
                return

    def _worker_main(self, index: int, slot: int) -> int:
        """Runs in the forked worker."""
        return run_worker(self.config, self.listeners, self.pool.scoreboard.writer(slot), index,
                          self.log)

    def _checks_needed(self) -> bool:
        return bool(self.config["harakiri"] or self.config["idle"] or
                    self.config["reload-on-rss"])

    def _schedule_checks(self) -> None:
        """Check the workers once a second while harakiri, idle or reload-on-rss is set; a
        reload may set one, or unset the last."""
        if self.check_timer is None and self.pool is not None and self._checks_needed():
            self.check_timer = self.loop.call_later(1.0, self._check_workers)

    def _check_workers(self) -> None:
        self.check_timer = None
        if self.stopping or self.pool is None or not self._checks_needed():
            return
        now = time.monotonic()
        busy = False
        requests = 0
        for worker in self.pool.workers:
            served, busy_since = self.pool.scoreboard.read(worker.slot)[:2]
            requests += served
            busy = busy or bool(busy_since)
            self._harakiri(worker, busy_since, now)
            self._check_rss(worker)
        if requests != self.requests_seen or busy:
            self.requests_seen, self.last_activity = requests, now
        idle = self.config["idle"]
        if idle and not self.cheap and now - self.last_activity > idle:
            self._idle()
        self._schedule_checks()

    def _harakiri(self, worker, busy_since: float, now: float) -> None:
        limit = self.config["harakiri"]
        if limit and busy_since and now - busy_since > limit and worker.pid > 0:
            self.log(f"*** HARAKIRI ON WORKER {worker.index} (pid: {worker.pid}, "
                     f"running for {now - busy_since:.1f}s, limit {limit}s) ***")
            worker.harakiri_count += 1
            worker.signal(signal.SIGKILL)

    def _check_rss(self, worker) -> None:
        limit = self.config["reload-on-rss"]
        if limit and worker.pid > 0 and worker.state is State.RUNNING:
            rss = memory(worker.pid)[1]
            if rss > limit * 1024 * 1024:
                self.log(f"worker {worker.index} (pid: {worker.pid}) uses {rss >> 20} MB, "
                         f"over reload-on-rss {limit} MB: recycling it")
                worker.signal(signal.SIGHUP)

    def _idle(self) -> None:
        if self.config["die-on-idle"]:
            self.log(f"[nsuwsgi] idle for {self.config['idle']}s: die-on-idle, shutting down")
            self.systemd.status("idle: exiting (die-on-idle)")
            self.shutdown(graceful=True)
            return
        self.log(f"[nsuwsgi] idle for {self.config['idle']}s: going cheap")
        self.pool.stop(graceful=True)
        self.pool.fresh()
        self.go_cheap()

    def shutdown(self, graceful: bool) -> None:
        """Stop dumb daemons (stop signal, SIGKILL after reload-mercy); smart ones live on.

        Graceful and immediate differ for workers (the server); for daemons they are the same.
        A second stop signal of any kind SIGKILLs whatever is still running.
        """
        if self.stopping:
            self.log("[nsuwsgi] second stop signal: killing every remaining daemon now")
            for daemon in self.daemons + self.retiring:
                if not daemon.stopped:
                    daemon.send_signal(signal.SIGKILL)
            for pgid in self.lingering:
                _killpg(pgid, signal.SIGKILL)
            if self.pool is not None:
                self.pool.kill()
            return
        self.stopping = True
        self.systemd.stopping()
        how = "graceful" if graceful else "immediate"
        self.log(f"[nsuwsgi] {how} shutdown: stopping {len(self.daemons)} daemon(s)")
        if self.pool is not None:
            self.pool.stop(graceful)
        for daemon in self.daemons:
            if daemon.is_dumb or daemon.state is State.STARTING:
                daemon.stop()           # a smart daemon still starting has no pid to hand over
            else:
                daemon.release()

    def _control_message(self) -> None:
        """The keeper sent a new config (a reload), or went away (we stop)."""
        try:
            data = self.control.recv(1 << 22)
        except OSError:
            data = b""
        if not data:
            self.loop.remove_reader(self.control)
            self.log("[nsuwsgi] the keeper outside the jail is gone: shutting down")
            self.shutdown(graceful=False)
            return
        self.log("[nsuwsgi] graceful reload: new configuration from the keeper")
        self.reload(lambda: decode_config(data))

    def reload(self, read_config: Callable[[], Config] | None = None) -> None:
        if self.stopping:
            return
        if read_config is None:
            self.log("[nsuwsgi] graceful reload: reading the configuration again")
        self.systemd.reloading()
        new = read_new_config(read_config or self.reload_config, self.log)
        if new is not None and self.pool is not None and not serves_an_app(new):
            self.log("[nsuwsgi] reload refused: the new configuration has no app, and a "
                     "serving instance stops serving only when it stops; keeping the running "
                     "configuration")
            new = None
        if new is None:
            self.systemd.ready(status=self.status_text())
            return
        for name in RESTART_ONLY:
            if new[name] != self.config[name]:
                self.log(f"[nsuwsgi] '{name}' changed; it takes effect when nsuwsgi restarts")
        if self.pool is None and serves_an_app(new) and not serves_an_app(self.config):
            self.log("[nsuwsgi] an app was added; its sockets are bound and its workers "
                     "started when nsuwsgi restarts")
        for name, _ in self.config["env"]:
            os.environ.pop(name, None)
        for name, value in new["env"]:
            os.environ[name] = value
        self.mercy = float(new["reload-mercy"])
        self.honour_stdin = bool(new["daemons-honour-stdin"])
        self.apply_daemons(new.daemons)
        self.config = new
        if self.pool is not None:
            self._resize_pool(max(1, new["processes"]))
            if not self.cheap:
                self.pool.reload()      # workers load the app after fork: a new generation
            self.last_activity = time.monotonic()   # a new generation: `idle` counts anew
            self._schedule_checks()
        self.systemd.ready(status=self.status_text())

    def _resize_pool(self, processes: int) -> None:
        """A changed `processes`: the next generation of workers has the new count."""
        if processes == self.pool.processes:
            return
        self.log(f"[nsuwsgi] processes {self.pool.processes} -> {processes}: the new "
                 f"generation has {processes} worker(s)")
        self.pool.resize(processes)

    def start_daemons(self) -> None:
        if not self.config.daemons:
            return
        from nsuwsgi.daemons import Daemon      # only instances with daemons import it
        self.daemons = [Daemon(decl, self) for decl in self.config.daemons]
        for daemon in self.daemons:
            daemon.start()

    def apply_daemons(self, decls) -> None:
        """Keep daemons whose declaration is unchanged; stop removed ones; start new ones."""
        if not decls and not self.daemons:
            return
        from nsuwsgi.daemons import Daemon      # only instances with daemons import it
        unmatched = list(self.daemons)
        kept: list[Daemon] = []
        for decl in decls:
            match = next((d for d in unmatched if d.decl == decl), None)
            if match is not None:
                unmatched.remove(match)
                match.decl = decl                       # the new origin, for messages
                match.reload()
                kept.append(match)
            else:
                daemon = Daemon(decl, self)
                kept.append(daemon)
                daemon.start()
        for daemon in unmatched:
            self.log(f"[nsuwsgi] daemon \"{daemon.name}\" is no longer configured")
            if daemon.is_dumb:
                daemon.stop()
                self.retiring.append(daemon)
            else:
                daemon.release()
        self.daemons = kept
        self._forget_retired()

    def _forget_retired(self) -> None:
        for daemon in [d for d in self.retiring if d.stopped]:
            daemon.forget()
            self.retiring.remove(daemon)

    def cleanup(self) -> None:
        for daemon in self.daemons + self.retiring:
            daemon.forget()
        self.lifeline.close()
        if self.stats_socket is not None:
            self.stats_socket.close()
        for sock, _ in self.listeners:
            sock.close()
        for sock in self.kept_shared:
            sock.close()
        if self.pool is not None:
            self.pool.close()
        if self.control is None:                # in a jail the keeper does it, on the host
            vacuum(self.config)
        if self.watcher is not None:
            self.watcher.close()
        self.systemd.close()
        self.loop.close()

    # ---- stats

    def log_stats(self) -> None:
        """SIGUSR1, as in uWSGI: one line per daemon in the log."""
        for d in self.daemons:
            self.log(f"[nsuwsgi] daemon \"{d.name}\" state {d.state.value} pid {d.pid} "
                     f"restarts {d.machine.restarts} last exit {d.last_exit}")

    def socket_stats(self) -> dict:
        """uWSGI's `listen_queue` (connections waiting in the backlogs) and `sockets`."""
        found = []
        for sock, protocol in self.listeners:
            queue, max_queue = sockets.listen_queue(sock)
            found.append({"name": sockets.name_of(sock), "proto": protocol, "queue": queue,
                          "max_queue": max_queue,
                          "shared": int(sock.fileno() in self.shared_fds)})
        return {"listen_queue": sum(s["queue"] for s in found), "listen_queue_errors": 0,
                "sockets": found}

    def snapshot(self) -> dict:
        self._forget_retired()
        return {
            "version": __version__,
            "pid": os.getpid(),
            "uid": os.getuid(),
            "gid": os.getgid(),
            "cwd": os.getcwd(),
            "state": "stopping" if self.stopping else "running",
            "started": int(self.started),
            **self.socket_stats(),
            "workers": self.pool.stats() if self.pool is not None else [],
            "daemons": [d.stats() for d in self.daemons],
        }


def serves_an_app(config: Config) -> bool:
    return bool(config["wsgi-file"] or config["module"] or config["mount"] or config["cgi"])


def bind_listeners(config: Config, log) -> tuple[list[tuple], list, set[int]]:
    """Every configured socket, bound now (as root, outside any jail), plus passed-in ones.

    Returns the listeners as (socket, protocol), the shared sockets that no option serves
    (kept open, not served) and the fds of the listeners that are shared sockets.

    `shared-socket` entries are bound first; `socket`/`http-socket = =N` serve the N-th with
    their own protocol (options.validate checked that it exists). A configured address that
    systemd (LISTEN_FDS) or the Emperor (fd 0) already passed in is adopted, never bound
    again: the service may not even be allowed to bind it (a per-app service runs as its own
    user, its socket unit as root). uWSGI adopts them the same way.
    """
    passed = [(sock, protocol, "systemd")
              for sock, protocol in sockets.systemd_sockets(os.environ, config["protocol"])]
    on_stdin = sockets.stdin_listener()
    if on_stdin is not None:
        passed.append((on_stdin, None, "fd 0"))
    found = []
    shared = []
    for number, setting in enumerate(config.items("shared-socket")):
        match = _adopt(passed, setting.value)
        if match is not None:
            log(f"shared socket {number} inherited from {match[2]}: {setting.value}")
            shared.append(match[0])
            continue
        try:
            sock = _bind(config, "shared-socket", setting.origin, sockets.SocketSpec(setting.value))
        except SetupError:
            for sock in shared:
                sock.close()
            raise
        log(f"shared socket {number} bound to {sockets.name_of(sock)}")
        shared.append(sock)
    served: set[int] = set()
    for option in ("socket", "http-socket"):
        for setting in config.items(option):
            spec = setting.value
            if option == "socket" and config["protocol"]:
                spec = sockets.SocketSpec(spec.address, config["protocol"])
            number = sockets.shared_index(spec.address)
            if number is not None:
                sock = shared[number]
                served.add(number)
                log(f"uwsgi socket {len(found)} bound to {sockets.name_of(sock)} "
                    f"(shared socket {number}, {spec.protocol})")
                found.append((sock, spec.protocol))
                continue
            match = _adopt(passed, spec.address)
            if match is not None:
                log(f"uwsgi socket {len(found)} inherited from {match[2]}: {spec.address} "
                    f"({spec.protocol})")
                found.append((match[0], spec.protocol))
                continue
            sock = _bind(config, option, setting.origin, spec)
            log(f"uwsgi socket {len(found)} bound to {sockets.name_of(sock)} ({spec.protocol})")
            found.append((sock, spec.protocol))
    for sock, protocol, source in passed:
        protocol = protocol or config["protocol"] or sockets.UWSGI
        log(f"uwsgi socket {len(found)} inherited from {source}: {sockets.name_of(sock)} "
            f"({protocol})")
        found.append((sock, protocol))
    kept, shared_fds = [], set()
    for number, sock in enumerate(shared):
        if number in served:
            shared_fds.add(sock.fileno())
        else:
            log(f"shared socket {number} ({sockets.name_of(sock)}) is served by no socket "
                f"option: kept open, not served")
            kept.append(sock)
    return found, kept, shared_fds


BIND_HINTS = {
    errno.EADDRINUSE: "another process listens there: stop it or choose another address",
    errno.EACCES: "ports below 1024 need root or CAP_NET_BIND_SERVICE; a unix socket needs "
                  "a writable directory",
    errno.EADDRNOTAVAIL: "no interface of this machine has that address",
    errno.ENOENT: "create the socket's directory first",
}


def _bind(config: Config, option: str, origin, spec):
    """Bind one configured address; a failure names file:line, option and value, with a hint."""
    try:
        return sockets.bind(spec, config["listen"], config["chmod-socket"],
                            config["chown-socket"])
    except OSError as err:
        hint = BIND_HINTS.get(err.errno)
        raise SetupError(f"{origin}: {option} = {spec.address}: {err.strerror or err}"
                         + (f" (hint: {hint})" if hint else "")) from None


def _adopt(passed: list[tuple], address: str) -> tuple | None:
    """The passed-in (socket, protocol, source) listening on `address`, taken from `passed`."""
    match = next((p for p in passed if sockets.same_address(p[0], address)), None)
    if match is not None:
        passed.remove(match)
    return match


def read_new_config(read: Callable[[], Config], log) -> Config | None:
    """A reload's new config, or None after logging why it was refused (the old one stays)."""
    try:
        config = read()
        import_what_config_needs(config)
        return config
    except ConfigErrors as errors:
        for err in errors.errors:
            log(f"[nsuwsgi] reload refused: {err}")
    except UserError as err:
        log(f"[nsuwsgi] reload refused: {err}")
    except ImportError as err:
        log(f"[nsuwsgi] reload refused: the new configuration needs {err.name}, which cannot be "
            f"imported here (a jail without the nsuwsgi package): restart the instance")
    log("[nsuwsgi] keeping the running configuration")
    return None


# --------------------------------------------------------------------------- process setup

def modules_needed(config: Config) -> list[str]:
    """The optional parts of nsuwsgi this config uses.

    A plain instance imports only what serving needs (cold start, memory); everything else is
    imported here, before any jail or privilege drop (after them the package may be out of
    reach), never on first use.
    """
    needed = []
    if config.daemons:
        needed += ["nsuwsgi.daemons", "nsuwsgi.jail.plan"]
    if config.daemons or config["touch-reload"]:
        needed.append("nsuwsgi.watch")
    if config.hooks:
        needed.append("nsuwsgi.jail.hooks")
    jailed = jail_spec(config) is not None
    if jailed:
        needed += ["nsuwsgi.jail.plan", "nsuwsgi.jail.apply", "nsuwsgi.jail.init",
                   "nsuwsgi.linux.syscalls"]
        if config["namespace-net-veth"]:
            needed.append("ipaddress")  # options.parse_veth, run again by a reload in the jail
    if config["stats"]:
        needed.append("nsuwsgi.stats")
    if config["cgi"]:
        needed.append("nsuwsgi.server.cgi")
    if config["static-map"]:
        needed.append("nsuwsgi.server.static")
    return needed


def import_what_config_needs(config: Config) -> None:
    """Raises ImportError naming the module when it cannot be imported (in a jail, on reload)."""
    for name in modules_needed(config):
        importlib.import_module(name)



class SetupError(Exception):
    """A setup step failed at runtime: names the option, its origin and the OS error."""


@contextlib.contextmanager
def setup_step(config: Config, option: str):
    try:
        yield
    except OSError as err:
        origin = config.origin(option)
        where = f"{origin}: " if origin is not None else ""
        raise SetupError(f"{where}{option} = {config[option]}: {err.strerror or err}") from None

def log_and_pidfiles(cfg: Config, pidfiles: tuple[str, ...]) -> None:
    """daemonize, logto and the pidfile options: the first steps of any nsuwsgi process."""
    with setup_step(cfg, "daemonize"):
        if cfg["daemonize"]:
            daemonize(cfg["daemonize"])
    with setup_step(cfg, "logto"):
        if cfg["logto"] and not cfg["daemonize"]:
            redirect_output(cfg["logto"])
    for option in pidfiles:
        with setup_step(cfg, option):
            if cfg[option]:
                write_pidfile(cfg[option])


def run_hook_phase(selected, phase: str, log) -> None:
    """Run one phase's hooks here; a failing hook is a SetupError like any other step."""
    from nsuwsgi.jail import hooks          # only configs with hooks import it
    try:
        hooks.run_phase(hooks.order_phase(selected), phase, log)
    except hooks.HookError as err:
        raise SetupError(str(err)) from None


def daemonize(logfile: str) -> None:
    """uWSGI's `daemonize`: detach from the terminal and log to a file."""
    if os.fork() != 0:
        os._exit(0)
    os.setsid()
    redirect_output(logfile)
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)


def redirect_output(logfile: str) -> None:
    fd = os.open(logfile, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)


def write_pidfile(path: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(tmp, path)


def drop_privileges(uid: int | None, gid: int | None, initgroups: bool, log) -> None:
    if uid is None and gid is None:
        return
    if gid is None and uid is not None:
        try:
            gid = pwd.getpwuid(uid).pw_gid
        except KeyError:
            gid = None
    if gid is not None and gid != os.getgid():
        name = _user_name(uid)
        if initgroups and name:
            os.initgroups(name, gid)
        else:
            os.setgroups([gid])
        os.setgid(gid)
        log(f"[nsuwsgi] setgid() to {gid}")
    if uid is not None and uid != os.getuid():
        os.setuid(uid)
        log(f"[nsuwsgi] setuid() to {uid}")


def _user_name(uid: int | None) -> str | None:
    if uid is None:
        return None
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except OSError:
        pass


def vacuum(config: Config, pidfiles: tuple[str, ...] = ("pidfile",),
           stats: bool = True) -> None:
    """`vacuum`: remove the pidfiles (these options) and a unix stats socket at exit."""
    if not config["vacuum"]:
        return
    if stats and config["stats"]:
        from nsuwsgi.stats import is_unix       # imported up front with `stats` set
        if is_unix(config["stats"]):
            linux.unlink_quietly(config["stats"])
    for option in pidfiles:
        if config[option]:
            linux.unlink_quietly(config[option])


def _reload_from_keeper() -> Config:
    raise UserError("inside a jail the config files are read by the keeper outside it; "
                    "send SIGHUP to the keeper (the pid in the pidfile)")
