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
from nsuwsgi.systemd import Notifier, feed_watchdog, listen_fds


NOTIFY_REST_MIN = 0.02     # seconds the notify socket rests after a read, at least...
NOTIFY_REST_MAX = 0.25      # ...and at most (a vassal's send waits 0.5 s on a full queue)
HEARTBEAT_SLACK = 0.01      # a deadline is checked just after it has passed


class Emperor:
    def __init__(self, config, log):
        self.config = config
        self.log = log
        self.inherited: list[InheritedSocket] = []     # socket activation (LISTEN_FDS)
        self.take_inherited_sockets()       # first: before we open any fd of our own
        self.loop = Loop()
        self.vassals: dict[str, Vassal] = {}
        self.by_pid: dict[int, Vassal] = {}     # running vassals by main pid (notifications)
        self.monitor = monitor.Monitor(config["emperor"])
        self.systemd = Notifier.from_environ(unset=True)
        self.notify_socket = None
        self.notify_address = ""
        self.notify_timer = None            # the notify socket rests (notifications_readable)
        self.notify_listening = False
        self.notify_rest = NOTIFY_REST_MIN
        self.notify_target = self.notify_busy = 1
        self.heartbeat_timer = None
        self.stats_socket = None
        self.stopping = False
        self.mercy = float(config["reload-mercy"])
        self.wrapper = wrapper_argv(config["emperor-wrapper"])
        self.clone_plan = clone_plan(config["emperor-use-clone"])
        self.warned: set[str] = set()
        self.forkserver = None
        self.governing = -1                 # the count last told to systemd
        self.started = time.time()
        self.bind_stats_socket()

    def bind_stats_socket(self) -> None:
        """emperor-stats, bound before anything runs: a missing directory or an address in use
        is a setup error naming the option (exit 1), like the master's `stats`."""
        if not self.config["emperor-stats"]:
            return
        from nsuwsgi.master import setup_step
        from nsuwsgi.stats import bind_stats
        with setup_step(self.config, "emperor-stats"):
            self.stats_socket = bind_stats(self.config["emperor-stats"])

    # ---- setup

    def run(self) -> int:
        self.open_notify_socket()
        self.start_forkserver()
        if self.stats_socket is not None:
            from nsuwsgi.stats import serve_one, socket_name
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
        self.close_unclaimed_sockets()
        self.systemd.ready(status=self.status_text())
        self.schedule_safety_rescan()
        feed_watchdog(self.systemd, self.loop)
        if self.config["emperor-required-heartbeat"]:
            self.heartbeat_timer = self.loop.call_later(
                float(self.config["emperor-required-heartbeat"]), self.check_heartbeats)
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
        self.loop.add_reader(sock, self.notifications_readable)
        self.notify_listening = True
        qlen = max_dgram_qlen()
        self.notify_target = max(1, min(qlen // 2, 64))
        self.notify_busy = max(2, qlen - 2)

    def start_forkserver(self) -> None:
        """Fork vassals from a pre-imported process, unless a wrapper or clone() is asked for."""
        from nsuwsgi.emperor import forkserver
        if (not self.config["emperor-fork-server"] or self.config["emperor-wrapper"]
                or self.clone_plan is not None):
            return
        self.forkserver = forkserver.ForkServer(self.loop, self.log, self.vassal_ended,
                                                self.forkserver_gone)
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
            pid, pidfd = self.forkserver.spawn(list(spec.argv), env, spec.cwd, spec.uid,
                                               spec.gid, spec.stdin_fd)
        except ForkServerGone as err:
            reason, server, self.forkserver = str(err), self.forkserver, None
            # This spawn fails (and is retried); the vassals forked before are ended
            # from the loop, not from inside one vassal's spawn.
            self.loop.call_later(0, lambda: self.forkserver_lost(server, reason))
            raise OSError(f"fork-server gone: {reason}") from None
        return Child(pid=pid, pidfd=pidfd, started=self.loop.clock())

    def forkserver_gone(self, reason: str) -> None:
        """The fork-server's socket reached EOF (unless a spawn noticed first)."""
        if self.forkserver is not None:
            server, self.forkserver = self.forkserver, None
            self.forkserver_lost(server, reason)

    def forkserver_lost(self, server, reason: str) -> None:
        """The fork-server died (killed, crashed). Its vassals died with it (PDEATHSIG), and
        nobody can tell us how: they end as if SIGKILLed, and start again as new processes."""
        self.log(f"[emperor] the fork-server is gone ({reason}): its vassals died with it; "
                 f"vassals start as new processes from now on")
        server.kill()           # if it only stopped answering; its vassals go with it
        server.close()
        for vassal in list(self.by_pid.values()):
            if vassal.forked:
                vassal.ended(signal.SIGKILL)

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
        self.read_notifications()           # a READY=1 waiting in the queue counts
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
        """Bind the vassal's socket if it is on demand. False if that failed (logged).

        A socket passed by socket activation that belongs to the vassal comes first: the
        vassal is then on demand on that socket, whatever the on-demand options say.
        """
        name = on_demand_socket_name(self.config, vassal.file.path)
        inherited = self.claim_inherited(vassal, name)
        if inherited is not None:
            vassal.on_demand = inherited.sock
            vassal.on_demand_name = inherited.address
            vassal.on_demand_inherited = True
            return True
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

    # ---- socket activation of the Emperor itself

    def take_inherited_sockets(self) -> None:
        """The listening sockets systemd passed (LISTEN_FDS), kept for the vassals they match.

        The variables are removed first thing, so no vassal ever sees them.
        """
        from nsuwsgi.server.sockets import name_of
        for fd, fdname in listen_fds(os.environ):
            label = f"fd {fd}" + (f" (name {fdname})" if fdname else "")
            try:
                sock = socket.socket(fileno=fd)
            except OSError as err:          # not ours to close: LISTEN_FDS may be wrong
                self.log(f"[emperor] warning: inherited {label} is not a socket "
                         f"({err.strerror or err}): ignored")
                continue
            try:
                listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
                address = name_of(sock)
            except OSError:
                listening, address = 0, "?"
            if not listening or sock.type != socket.SOCK_STREAM:
                self.log(f"[emperor] warning: inherited {label} ({address or 'unbound'}) is "
                         f"not a listening stream socket: closing it")
                sock.close()
                continue
            self.inherited.append(InheritedSocket(fd, fdname, sock, address))
            self.log(f"[emperor] inherited socket {label}: {address}")

    def claim_inherited(self, vassal: Vassal, on_demand_name: str):
        """The free inherited socket of this vassal: named as the vassal (LISTEN_FDNAMES, the
        file name without extension), or bound where its on-demand socket would be."""
        if not self.inherited:
            return None
        from nsuwsgi.server.sockets import same_address
        free = [s for s in self.inherited if s.owner is None]
        stem = os.path.splitext(vassal.name)[0]
        found = next((s for s in free if s.name and s.name == stem), None)
        if found is None and on_demand_name:
            found = next((s for s in free if same_address(s.sock, on_demand_name)), None)
        if found is not None:
            found.owner = vassal.name
            self.log(f"[emperor] vassal {vassal.name}: on demand on the inherited socket "
                     f"fd {found.fd} ({found.address})")
        return found

    def release_inherited(self, sock: socket.socket) -> None:
        """A vassal on an inherited socket was forgotten: the socket waits for its return."""
        for inherited in self.inherited:
            if inherited.sock is sock:
                inherited.owner = None

    def close_unclaimed_sockets(self) -> None:
        for inherited in [s for s in self.inherited if s.owner is None]:
            name = f" (name {inherited.name})" if inherited.name else ""
            inherited.sock.close()          # before saying so: a client then finds it closed
            self.log(f"[emperor] warning: inherited socket fd {inherited.fd}{name} "
                     f"({inherited.address}) matches no vassal: closed it (hint: name it as "
                     f"the vassal file without extension with FileDescriptorName=, or bind it "
                     f"where the vassal's on-demand socket would be)")
            self.inherited.remove(inherited)

    # ---- notifications

    def notifications_readable(self) -> None:
        """A datagram woke us: read what is queued, then let the next ones gather a while.

        Each wake-up costs ~0.1 ms of CPU on a small VM, and 200 idle vassals ping 13 times a
        second: one wake-up per ping was most of the Emperor's idle CPU. So after a read the
        socket rests, and what arrived meanwhile is read in one go. The rest adapts so that a
        read finds about half the receive queue (net.unix.max_dgram_qlen datagrams, often 10:
        a sender waits when it is full), between NOTIFY_REST_MIN and NOTIFY_REST_MAX (well
        under the 0.5 s a vassal's send waits on a full queue, so nothing is lost); a read
        that finds nothing ends the resting. What needs the latest state (a rescan, the
        heartbeat check, the stats, a reload) reads the queue first.
        """
        self._rest_or_listen(self.read_notifications())

    def notify_rested(self) -> None:
        self.notify_timer = None
        if self.notify_socket is None or self.notify_socket.fileno() < 0:
            return
        count = self.read_notifications()   # aim at `notify_target` datagrams per read
        self.notify_rest = min(NOTIFY_REST_MAX, max(
            NOTIFY_REST_MIN, self.notify_rest * self.notify_target / max(count, 0.5)))
        self._rest_or_listen(count)

    def _rest_or_listen(self, count: int) -> None:
        resting = self.notify_timer is not None
        if count == 0 or (count >= self.notify_busy and self.notify_rest <= NOTIFY_REST_MIN):
            if resting:                     # idle again, or too busy to rest: every datagram
                self.notify_timer.cancel()  # wakes us
                self.notify_timer = None
            if not self.notify_listening:
                self.loop.add_reader(self.notify_socket, self.notifications_readable)
                self.notify_listening = True
            return
        if self.notify_listening:
            self.loop.remove_reader(self.notify_socket)
            self.notify_listening = False
        if not resting:
            self.notify_timer = self.loop.call_later(self.notify_rest, self.notify_rested)

    def read_notifications(self) -> int:
        """Handle every queued datagram; how many there were."""
        count = 0
        if self.notify_socket is None:
            return count
        while True:
            try:
                data, ancdata, _, _ = self.notify_socket.recvmsg(4096, socket.CMSG_SPACE(12))
            except (BlockingIOError, InterruptedError):
                return count
            count += 1
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

    def check_heartbeats(self) -> None:
        """Kill the vassals whose heartbeat is overdue; wake again at the next deadline.

        No periodic tick: a heartbeat only moves a vassal's deadline later, and a vassal
        without one has none, so the earliest deadline now (or a whole period if there is
        none) is the earliest moment a vassal can be overdue.
        """
        self.heartbeat_timer = None
        limit = float(self.config["emperor-required-heartbeat"])
        self.read_notifications()           # a heartbeat waiting in the queue counts
        now = self.loop.clock()
        earliest = now + limit
        for vassal in list(self.vassals.values()):
            if vassal.heartbeat_overdue(now, limit) and vassal.machine.state is State.RUNNING:
                vassal.log(f"vassal {vassal.name} sent no heartbeat in {limit:.0f}s: "
                           f"killing it (it will be respawned)")
                vassal.last_heartbeat = 0.0
                vassal.signal(signal.SIGKILL)
            elif vassal.last_heartbeat > 0 and vassal.child is not None \
                    and vassal.last_heartbeat + limit > now:
                earliest = min(earliest, vassal.last_heartbeat + limit)
        if not self.stopping:
            self.heartbeat_timer = self.loop.call_later(
                max(earliest - now, 0.0) + HEARTBEAT_SLACK, self.check_heartbeats)

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
        for inherited in self.inherited:
            inherited.sock.close()
        self.inherited = []
        if self.notify_socket is not None:
            self.notify_socket.close()
        if self.stats_socket is not None:
            self.stats_socket.close()
            from nsuwsgi.stats import is_unix
            stats = self.config["emperor-stats"]
            if is_unix(stats):
                linux.unlink_quietly(stats)
        self.systemd.close()
        self.loop.close()

    # ---- stats

    def log_vassals(self) -> None:
        for v in self.vassals.values():
            self.log(f"[emperor] vassal {v.name} state {v.machine.state.value} pid {v.pid} "
                     f"respawns {v.machine.restarts} last exit {v.last_exit or '-'}")

    def snapshot(self) -> dict:
        self.read_notifications()
        return {
            "version": __version__, "pid": os.getpid(), "uid": os.getuid(),
            "gid": os.getgid(), "cwd": os.getcwd(), "emperor": list(self.config["emperor"]),
            "emperor_tyrant": bool(self.config["emperor-tyrant"]),
            "governing": self.governed(),
            "workers": [],          # uwsgitop reads it from an Emperor too
            "vassals": [v.snapshot() for v in sorted(self.vassals.values(),
                                                       key=lambda v: v.name)],
        }


# --------------------------------------------------------------------------- helpers

class InheritedSocket:
    """A listening socket passed to the Emperor by socket activation."""

    __slots__ = ("fd", "name", "sock", "address", "owner")

    def __init__(self, fd: int, name: str, sock: socket.socket, address: str):
        self.fd = fd                    # as passed (LISTEN_FDS numbering), for the log
        self.name = name                # its LISTEN_FDNAMES entry, or ""
        self.sock = sock
        self.address = address
        self.owner: str | None = None   # the vassal that uses it


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


def max_dgram_qlen() -> int:
    """How many datagrams a unix socket's receive queue holds before senders wait."""
    try:
        with open("/proc/sys/net/unix/max_dgram_qlen") as f:
            return max(1, int(f.read()))
    except (OSError, ValueError):
        return 10


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
