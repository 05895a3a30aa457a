"""The Emperor: one process that keeps the running vassals equal to the vassal files.

uWSGI's Emperor wakes every 3 s to compare mtimes, so it starts, reloads and stops vassals
seconds late and misses a second change within the same second. Ours is the same single-
threaded loop as the master (loop.py), woken by inotify (monitor.py), by each vassal's pidfd
and by sd_notify datagrams from vassals; a slow safety rescan only backs inotify up.

A bad vassal never costs another one anything: a malformed file is the vassal's own exit
code 2 and backoff, never an exception in this loop. The Emperor reads no tenant config
itself; each vassal is a separate nsuwsgi instance that reads, validates and jails itself.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time

from nsuwsgi import __version__, linux
from nsuwsgi.emperor import monitor
from nsuwsgi.emperor.vassal import Vassal
from nsuwsgi.errors import EXIT_OK
from nsuwsgi.fsm import State
from nsuwsgi.loop import Loop
from nsuwsgi.systemd import Notifier, feed_watchdog


class Emperor:
    def __init__(self, config, log):
        self.config = config
        self.log = log
        self.loop = Loop()
        self.vassals: dict[str, Vassal] = {}
        self.by_pid: dict[int, Vassal] = {}     # running vassals by main pid (notifications)
        self.monitor = monitor.Monitor(config["emperor"])
        self.systemd = Notifier.from_environ(unset=True)
        self.notify_socket = None
        self.notify_address = ""
        self.stats_socket = None
        self.stopping = False
        self.mercy = float(config["reload-mercy"])
        self.wrapper = wrapper_argv(config["emperor-wrapper"])
        self.clone_plan = clone_plan(config["emperor-use-clone"])
        self.warned: set[str] = set()
        self.forkserver = None
        self.governing = -1                 # the count last told to systemd
        self.started = time.time()

    # ---- setup

    def run(self) -> int:
        self.open_notify_socket()
        self.start_forkserver()
        if self.config["emperor-stats"]:
            from nsuwsgi.stats import bind_stats, serve_one, socket_name
            self.stats_socket = bind_stats(self.config["emperor-stats"])
            self.loop.add_reader(self.stats_socket,
                                 lambda: serve_one(self.stats_socket, self.snapshot))
            self.log(f"[emperor] stats server listening on {socket_name(self.stats_socket)}")
        self.loop.add_reader(self.monitor.fileno(), self.files_changed)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        self.loop.on_signal(signal.SIGTERM, lambda s: self.shutdown())
        self.loop.on_signal(signal.SIGINT, lambda s: self.shutdown())
        self.loop.on_signal(signal.SIGQUIT, lambda s: self.shutdown())
        self.loop.on_signal(signal.SIGHUP, lambda s: self.reload_all())
        self.loop.on_signal(signal.SIGUSR1, lambda s: self.log_vassals())
        self.loop.on_signal(signal.SIGWINCH, lambda s: self.rescan())
        self.log(f"[emperor] governing {', '.join(self.config['emperor'])} "
                 f"(pid: {os.getpid()}, nsuwsgi {__version__})")
        self.rescan()
        self.systemd.ready(status=self.status_text())
        self.schedule_safety_rescan()
        feed_watchdog(self.systemd, self.loop)
        if self.config["emperor-required-heartbeat"]:
            self.loop.call_later(self.heartbeat_period(), self.check_heartbeats)
        try:
            self.loop.run(until=self.finished)
        finally:
            self.cleanup()
        self.systemd.status("The Emperor is buried.")
        self.log("[emperor] The Emperor is buried.")
        return EXIT_OK

    def open_notify_socket(self) -> None:
        """One abstract datagram socket; each message is checked against the sender's pid."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC |
                             socket.SOCK_NONBLOCK)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        name = f"nsuwsgi-emperor-{os.getpid()}-{os.urandom(6).hex()}"
        sock.bind("\0" + name)
        self.notify_socket = sock
        self.notify_address = "@" + name
        self.loop.add_reader(sock, self.read_notifications)

    def start_forkserver(self) -> None:
        """Fork vassals from a pre-imported process, unless a wrapper or clone() is asked for."""
        from nsuwsgi.emperor import forkserver
        if (not self.config["emperor-fork-server"] or self.config["emperor-wrapper"]
                or self.clone_plan is not None):
            return
        self.forkserver = forkserver.ForkServer(self.loop, self.log, self.vassal_ended)
        try:
            self.forkserver.start()
        except OSError as err:
            self.log(f"[emperor] no fork-server ({err}): vassals start as new processes")
            self.forkserver = None

    def fork_vassal(self, spec):
        from nsuwsgi.emperor.forkserver import ForkServerGone
        from nsuwsgi.spawn import Child
        env = dict(item.split("=", 1) for item in spec.env)
        try:
            pid = self.forkserver.spawn(list(spec.argv), env, spec.cwd, spec.uid, spec.gid,
                                        spec.stdin_fd)
        except ForkServerGone as err:
            self.log(f"[emperor] the fork-server is gone ({err}): vassals start as new "
                     f"processes from now on")
            self.forkserver = None
            raise OSError(f"fork-server gone: {err}") from None
        return Child(pid=pid, pidfd=linux.pidfd_open(pid), started=self.loop.clock())

    def vassal_ended(self, pid: int, status: int) -> None:
        """The fork-server reaped one of its vassals."""
        vassal = self.by_pid.get(pid)
        if vassal is not None:
            vassal.ended(status)

    # ---- the desired set against the running set

    def files_changed(self) -> None:
        if self.monitor.dispatch():
            self.rescan()

    def rescan(self) -> None:
        if self.stopping:
            return
        changes = self.monitor.rescan()
        for warning in self.monitor.warnings:
            if warning not in self.warned:          # the safety rescan repeats them
                self.log(f"[emperor] warning: {warning}")
        self.warned = set(self.monitor.warnings)
        for name in changes.removed:
            vassal = self.vassals.get(name)
            if vassal is not None and not vassal.removed:
                self.log(f"[emperor] vassal {name} removed: stopping it")
                vassal.stop(forget=True)
        for name in changes.added:
            self.add(name, self.monitor.vassals[name])
        for name in changes.changed:
            vassal = self.vassals.get(name)
            if vassal is None:
                self.add(name, self.monitor.vassals[name])
            elif vassal.removed:
                continue                    # re-added by vassal_gone() once it has ended
            elif self.owner_refused(self.monitor.vassals[name]):
                vassal.stop(forget=True)
            elif self.owner_changed(vassal, self.monitor.vassals[name]):
                vassal.log(f"the owner of {vassal.file.path} changed: restarting vassal "
                           f"{name} as its new owner")
                vassal.stop(forget=True)        # vassal_gone() adds it again
            else:
                vassal.file_changed(self.monitor.vassals[name])
        self.vassal_changed()

    def add(self, name: str, file) -> None:
        if name in self.vassals:            # the old one is still stopping; vassal_gone()
            return                          # adds the new one when it has ended
        if self.owner_refused(file):
            return
        vassal = Vassal(name, file, self)
        if not self.prepare_on_demand(vassal):
            return
        self.vassals[name] = vassal
        self.log(f"[emperor] new vassal {name} ({file.path})")
        vassal.start()
        # Hundreds of vassals may start in this one turn of the loop; their READY datagrams
        # would overflow the socket's queue (net.unix.max_dgram_qlen, often 10) meanwhile.
        self.read_notifications()

    def owner_refused(self, file) -> bool:
        if not self.config["emperor-tyrant"]:
            return False
        if (file.uid == 0 or file.gid == 0) and not self.config["emperor-tyrant-allow-root"]:
            self.log(f"[emperor-tyrant] vassal {file.name} refused: {file.path} is owned by "
                     f"root (uid {file.uid}, gid {file.gid}) (hint: chown it to the tenant, "
                     f"or set emperor-tyrant-allow-root)")
            return True
        return False

    def owner_changed(self, vassal: Vassal, file) -> bool:
        return (bool(self.config["emperor-tyrant"])
                and (file.uid, file.gid) != (vassal.file.uid, vassal.file.gid))

    def vassal_owner(self, vassal: Vassal) -> tuple[int | None, int | None]:
        if self.config["emperor-tyrant"]:
            return vassal.file.uid, vassal.file.gid
        return None, None

    def vassal_gone(self, vassal: Vassal) -> None:
        if self.vassals.get(vassal.name) is vassal:
            del self.vassals[vassal.name]
            self.log(f"[emperor] vassal {vassal.name} stopped and forgotten")
            file = self.monitor.vassals.get(vassal.name)
            if file is not None and not self.stopping:     # re-added while it was stopping
                self.add(vassal.name, file)
        self.vassal_changed()

    def governed(self) -> int:
        """Vassals running or waiting for their first connection (on demand)."""
        return sum(1 for v in self.vassals.values() if v.running or v.on_demand is not None)

    def vassal_changed(self) -> None:
        """A vassal was spawned, ended or forgotten: refresh the pid index and the count."""
        self.by_pid = {v.pid: v for v in self.vassals.values() if v.pid}
        count = self.governed()
        if count != self.governing and not self.stopping:
            self.governing = count
            self.systemd.status(self.status_text())

    def status_text(self) -> str:
        count = self.governed()
        return f"The Emperor is governing {count} vassal{'s' if count != 1 else ''}"

    # ---- on-demand vassals

    def prepare_on_demand(self, vassal: Vassal) -> bool:
        """Bind the vassal's socket if it is on demand. False if that failed (logged)."""
        name = on_demand_socket_name(self.config, vassal.file.path)
        if not name:
            return True
        try:
            vassal.on_demand = bind_on_demand(name)
        except OSError as err:
            self.log(f"[emperor] vassal {vassal.name}: cannot bind its on-demand socket "
                     f"{name}: {err.strerror or err} (hint: fix the socket name, or free it)")
            return False
        vassal.on_demand_name = name
        return True

    # ---- notifications

    def read_notifications(self) -> None:
        while True:
            try:
                data, ancdata, _, _ = self.notify_socket.recvmsg(4096, socket.CMSG_SPACE(12))
            except (BlockingIOError, InterruptedError):
                return
            pid = sender_pid(ancdata)
            vassal = self.by_pid.get(pid)
            if vassal is None and pid and self.clone_plan is not None \
                    and self.clone_plan.new_pid_namespace:
                vassal = self.cloned_vassal(pid)
            if vassal is not None:                  # only a vassal's main pid is heard
                vassal.notified(parse_fields(data))

    def cloned_vassal(self, pid: int) -> Vassal | None:
        """With emperor-use-clone pid, our child is the namespace's init (PID 1) and the
        vassal's main process is the payload init started, PID 2 there: hear that one."""
        try:
            with open(f"/proc/{pid}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            parent, inner = int(fields["PPid"]), fields["NSpid"].split()[-1]
        except (OSError, KeyError, ValueError, IndexError):
            return None
        if inner != "2":
            return None
        return self.by_pid.get(parent)

    def heartbeat_period(self) -> float:
        """How often overdue heartbeats are looked for: a tenth of the limit, at least 1 s."""
        return max(1.0, self.config["emperor-required-heartbeat"] / 10)

    def check_heartbeats(self) -> None:
        limit = float(self.config["emperor-required-heartbeat"])
        now = self.loop.clock()
        for vassal in list(self.vassals.values()):
            if vassal.heartbeat_overdue(now, limit) and vassal.machine.state is State.RUNNING:
                vassal.log(f"vassal {vassal.name} sent no heartbeat in {limit:.0f}s: "
                           f"killing it (it will be respawned)")
                vassal.last_heartbeat = 0.0
                vassal.signal(signal.SIGKILL)
        if not self.stopping:
            self.loop.call_later(self.heartbeat_period(), self.check_heartbeats)

    def schedule_safety_rescan(self) -> None:
        def tick():
            self.rescan()
            if not self.stopping:
                self.schedule_safety_rescan()
        self.loop.call_later(max(1, self.config["emperor-freq"]), tick)

    # ---- signals

    def reload_all(self) -> None:
        if self.stopping:
            return
        self.log("[emperor] graceful reload of every vassal")
        self.systemd.reloading()
        self.rescan()
        for vassal in self.vassals.values():
            vassal.reload()
        self.systemd.ready(status=self.status_text())

    def shutdown(self) -> None:
        if self.stopping:
            self.log("[emperor] second stop signal: killing every vassal now")
            for vassal in self.vassals.values():
                vassal._kill_group()
            return
        self.log(f"[emperor] stopping {len(self.vassals)} vassal(s) gracefully")
        self.systemd.stopping()
        self.stopping = True
        for vassal in list(self.vassals.values()):
            vassal.stop(forget=True)

    def finished(self) -> bool:
        return self.stopping and not self.vassals

    def cleanup(self) -> None:
        for vassal in self.vassals.values():
            vassal.close()
        if self.forkserver is not None:
            self.forkserver.close()
        self.monitor.close()
        if self.notify_socket is not None:
            self.notify_socket.close()
        if self.stats_socket is not None:
            self.stats_socket.close()
            stats = self.config["emperor-stats"]
            if "/" in stats:
                linux.unlink_quietly(stats)
        self.systemd.close()
        self.loop.close()

    # ---- stats

    def log_vassals(self) -> None:
        for v in self.vassals.values():
            self.log(f"[emperor] vassal {v.name} state {v.machine.state.value} pid {v.pid} "
                     f"respawns {v.machine.restarts} last exit {v.last_exit or '-'}")

    def snapshot(self) -> dict:
        return {
            "version": __version__, "pid": os.getpid(), "uid": os.getuid(),
            "gid": os.getgid(), "cwd": os.getcwd(), "emperor": list(self.config["emperor"]),
            "emperor_tyrant": bool(self.config["emperor-tyrant"]),
            "governing": self.governed(),
            "vassals": [v.snapshot() for v in sorted(self.vassals.values(),
                                                       key=lambda v: v.name)],
        }


# --------------------------------------------------------------------------- helpers

def wrapper_argv(value: str | None) -> list[str]:
    """The command that runs a vassal: `emperor-wrapper`, or this very nsuwsgi."""
    if value:
        import shlex
        return shlex.split(value)
    return [sys.executable, "-m", "nsuwsgi"]


def clone_plan(flags: int | None):
    """emperor-use-clone: new namespaces for each vassal, nothing else dropped.

    The vassal is a whole nsuwsgi instance that applies its own jail and privileges; this
    only gives it fresh namespaces to start from (uWSGI's clone() flags).
    """
    if not flags:
        return None
    from nsuwsgi.jail.plan import JailPlan, init_ops
    from nsuwsgi.spec import JailSpec
    spec = JailSpec(namespaces=flags)
    return JailPlan(new_pid_namespace=spec.pid_namespace, init_ops=tuple(init_ops(spec)),
                    payload_ops=())


def on_demand_socket_name(config, path: str) -> str:
    """uWSGI's sources, in its order: the extension file, then the directory."""
    extension = config["emperor-on-demand-extension"]
    if extension:
        try:
            with open(path + extension, "rb") as f:
                raw = f.read(4096)
        except OSError:
            raw = b""
        name = bytearray()
        for byte in raw:
            if byte < 32:
                break
            name.append(byte)
        if name:
            return name.decode(errors="replace")
    directory = config["emperor-on-demand-directory"]
    if directory:
        base = os.path.basename(path)
        stem, dot, _ = base.rpartition(".")
        if dot and stem:
            return os.path.join(directory, stem + ".socket")
    return ""


def bind_on_demand(name: str) -> socket.socket:
    """A listening socket the Emperor keeps, so connections queue while the vassal starts."""
    if ":" in name and not name.startswith("/"):
        host, port = name.rsplit(":", 1)
        host = host.strip("[]") or "0.0.0.0"
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, int(port)))
        except (OSError, ValueError):
            sock.close()
            raise
    else:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        linux.unlink_quietly(name)
        try:
            sock.bind(name)
            os.chmod(name, 0o666)
        except OSError:
            sock.close()
            raise
    sock.listen(100)
    return sock


def sender_pid(ancdata) -> int:
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(data) >= 12:
            return int.from_bytes(data[0:4], sys.byteorder, signed=True)
    return 0


def parse_fields(data: bytes) -> dict[str, str]:
    fields = {}
    for line in data.decode("utf-8", "replace").split("\n"):
        key, sep, value = line.partition("=")
        if sep:
            fields[key] = value
    return fields
