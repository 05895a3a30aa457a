"""One vassal: a config file, and the nsuwsgi instance the Emperor runs for it.

A vassal goes through the same state machine as every supervised process (fsm.py), so a
crash-looping or malformed vassal backs off exponentially (emperor-throttle, capped by
emperor-max-throttle) and shows up as BROKEN in the stats and the log, while the Emperor loop
goes on serving every other vassal. Touching its file retries at once.

uWSGI talks to vassals over a private byte protocol. Ours is sd_notify: a vassal is an
nsuwsgi instance, and an instance already tells systemd READY/RELOADING/STOPPING/WATCHDOG,
so under an Emperor it tells the Emperor the same things (docs/emperor.md). The Emperor
accepts a message only from the vassal's own main pid, as systemd's NotifyAccess=main does.
"""

from __future__ import annotations

import os
import signal
import socket

from nsuwsgi import linux
from nsuwsgi.fsm import Action, Backoff, Event, Machine, State
from nsuwsgi.spawn import SpawnError, describe_status, resolve_executable, spawn
from nsuwsgi.spec import ProcessSpec

LOADER_FLAGS = {".ini": "--ini", ".json": "--json", ".yaml": "--yaml", ".yml": "--yaml"}
# A change seen before a vassal's first READY waits this long for it: a master sends READY
# right after forking its worker, and on a busy machine the worker may already answer (and a
# client change the file) before the master has run again.
READY_GRACE = 1.0


class Vassal:
    """The Emperor (`host`) creates one per vassal file and performs what its machine asks."""

    def __init__(self, name: str, file, host):
        self.name = name
        self.file = file                    # monitor.VassalFile: path, identity, owner
        self.host = host
        cfg = host.config
        self.machine = Machine(Backoff(base=cfg["emperor-throttle"] / 1000.0,
                                       cap=max(cfg["emperor-max-throttle"], 1) / 1000.0,
                                       stable_after=1.0, broken_after=4))
        self.child = None                   # spawn.Child of the running vassal
        self.forked = False                 # its child is the fork-server's, not ours
        self.timer = None
        self.change_timer = None            # a change waits for the first READY (READY_GRACE)
        self.removed = False                # its file is gone: forget it once stopped
        self.on_demand: socket.socket | None = None
        self.on_demand_name = ""
        self.on_demand_inherited = False    # passed by socket activation: never ours to close
        self.ready = False
        self.reported_ready = False         # READY seen since the spawn: SIGHUP is handled
        self.status = ""
        self.last_heartbeat = 0.0
        self.last_change = host.loop.clock()
        self.last_exit = ""
        self.first_failure = ""

    # ---- what the Emperor asks for

    def start(self) -> None:
        if self.on_demand is not None:
            self.arm()
            return
        self._handle(Event.START)

    def file_changed(self, file) -> None:
        """A graceful reload (SIGHUP) if it runs; a retry at once if it was backing off."""
        self.file = file
        self.last_change = self.host.loop.clock()
        state = self.machine.state
        if state in (State.STARTING, State.RUNNING) and not self.reported_ready \
                and self.child is not None:
            # Until its first READY a vassal may have no SIGHUP handler yet: SIGHUP would kill
            # it (and, for a retry, defer the fix by a longer backoff). Its READY may be on its
            # way, though: wait for it a little (then reload), else start it again.
            if self.change_timer is None:
                self.change_timer = self.host.loop.call_later(READY_GRACE, self._not_ready)
        elif state in (State.STARTING, State.RUNNING) and not self.reported_ready:
            self.log(f"vassal {self.name} changed while starting: restarting it now")
            self._handle(Event.RESTART)
        elif state in (State.STARTING, State.RUNNING) and self.child is not None:
            self.log(f"vassal {self.name} changed: graceful reload")
            self.ready = False
            self.signal(signal.SIGHUP)
        elif state in (State.BACKOFF, State.BROKEN):
            self.log(f"vassal {self.name} changed: retrying it now")
            self._handle(Event.RESTART)
        elif state is State.STOPPED and self.on_demand is None:
            self._handle(Event.START)

    def _not_ready(self) -> None:
        """A change waited READY_GRACE for the first READY in vain: start the vassal again."""
        self.change_timer = None
        if self.child is not None and not self.reported_ready \
                and self.machine.state in (State.STARTING, State.RUNNING):
            self.log(f"vassal {self.name} changed while starting: restarting it now")
            self._handle(Event.RESTART)

    def _cancel_change(self) -> bool:
        """Forget a change waiting for READY; whether there was one."""
        if self.change_timer is None:
            return False
        self.change_timer.cancel()
        self.change_timer = None
        return True

    def reload(self) -> None:
        """SIGHUP for the Emperor: every running vassal reloads gracefully."""
        if self.child is None or self.machine.state is not State.RUNNING:
            return
        if not self.reported_ready:
            self._handle(Event.RESTART)         # see file_changed()
            return
        self.ready = False
        self.signal(signal.SIGHUP)

    def stop(self, forget: bool) -> None:
        """Graceful stop: SIGTERM, then SIGKILL of its process group after the mercy period."""
        self.removed = self.removed or forget
        self._cancel_change()
        self.disarm()
        self._handle(Event.STOP)
        if self.machine.state is State.STOPPED:
            self._stopped()

    def heartbeat_overdue(self, now: float, limit: float) -> bool:
        return (limit > 0 and self.last_heartbeat > 0 and self.child is not None
                and now - self.last_heartbeat > limit)

    # ---- on-demand

    def arm(self) -> None:
        """Wait for the first connection on the vassal's socket (bound by the Emperor)."""
        self.host.loop.add_reader(self.on_demand, self._connection_arrived)
        self.status = "on demand"
        self.log(f"vassal {self.name}: on demand, waiting for connections on "
                 f"{self.on_demand_name}")

    def disarm(self) -> None:
        if self.on_demand is not None:
            self.host.loop.remove_reader(self.on_demand)

    def _connection_arrived(self) -> None:
        self.disarm()
        self.log(f"vassal {self.name}: a connection arrived on {self.on_demand_name}: "
                 f"spawning it")
        self._handle(Event.START)

    # ---- notifications from the vassal (sd_notify fields)

    def notified(self, fields: dict[str, str]) -> None:
        ready = fields.get("READY") == "1"
        heartbeat = fields.get("WATCHDOG") == "1"
        if ready or heartbeat:
            self.last_heartbeat = self.host.loop.clock()
        # Datagrams can be lost (a full queue); a master pings only once it is ready, so its
        # first ping stands for a READY=1 that never arrived.
        if ready or (heartbeat and not self.reported_ready):
            if not self.ready:
                self.log(f"vassal {self.name} is ready (pid: {self.pid})")
            self.ready = True
            self.reported_ready = True
            if self._cancel_change():       # its file changed meanwhile: reload it now
                self.log(f"vassal {self.name} changed: graceful reload")
                self.ready = False
                self.signal(signal.SIGHUP)
        if fields.get("RELOADING") == "1":
            self.ready = False
        if "STATUS" in fields:
            self.status = fields["STATUS"]

    # ---- the state machine

    def _handle(self, event: Event) -> None:
        for action in self.machine.handle(event, self.host.loop.clock()):
            self._perform(action)

    def _perform(self, action: Action) -> None:
        if action is Action.SPAWN:
            self._spawn()
        elif action is Action.SIGNAL_STOP:
            self.signal(signal.SIGTERM)
            self._arm_timer(self.host.mercy)
        elif action is Action.KILL:
            self.log(f"vassal {self.name} (pid: {self.pid}) did not stop in time: SIGKILL")
            self._kill_group()
        elif action is Action.ARM_BACKOFF:
            self.log(f"vassal {self.name} will be started again in {self.machine.delay:.1f}s "
                     f"(failure {self.machine.failures} in a row)")
            self._arm_timer(self.machine.delay)
        elif action is Action.CANCEL_TIMER:
            self._cancel_timer()
        elif action is Action.GAVE_UP:
            self.log(f"vassal {self.name} keeps failing: quarantined, retried every "
                     f"{self.machine.policy.cap:.0f}s at most (touch its file to retry now)")
        elif action is Action.STOPPED:
            self._stopped()

    def _spawn(self) -> None:
        self.ready = self.reported_ready = False
        self.last_heartbeat = 0.0
        spec = self.process_spec()
        try:
            self.forked = self.host.forkserver is not None and spec.jail is None
            if self.forked:
                self.child = self.host.fork_vassal(spec)    # the exit comes from the server
            else:
                self.child = spawn(spec, self.host.loop.clock())
                self.host.loop.add_reader(self.child.pidfd, self._exited)
        except (SpawnError, OSError) as err:
            self.child = None
            why = err.describe() if isinstance(err, SpawnError) else str(err)
            self._note_failure(f"cannot start: {why}")
            self.log(f"cannot start vassal {self.name}: {why}")
            self._handle(Event.FAIL)
            return
        self.status = "running"
        self.log(f"vassal {self.name} spawned (pid: {self.child.pid})")
        self._handle(Event.UP)
        self.host.vassal_changed()

    def process_spec(self) -> ProcessSpec:
        cfg = self.host.config
        uid, gid = self.host.vassal_owner(self)
        env = dict(os.environ)      # the Emperor took NOTIFY_*, WATCHDOG_* and LISTEN_* out
        env["NOTIFY_SOCKET"] = self.host.notify_address
        if cfg["emperor-required-heartbeat"]:
            env["WATCHDOG_USEC"] = str(cfg["emperor-required-heartbeat"] * 1_000_000)
        env["UWSGI_VASSAL_NAME"] = self.name
        argv = vassal_argv(self.host.wrapper, cfg, os.path.abspath(self.file.path))
        return ProcessSpec(
            argv=tuple(argv), executable=resolve_executable(argv[0], env),
            env=tuple(f"{k}={v}" for k, v in env.items()),
            cwd=os.path.dirname(os.path.abspath(self.file.path)),
            uid=uid, gid=gid, groups=() if uid is not None else None,
            stdin_fd=self.on_demand.fileno() if self.on_demand is not None else None,
            pdeathsig=int(signal.SIGKILL),      # no vassal outlives its Emperor
            jail=self.host.clone_plan)

    def _exited(self) -> None:
        """Our child's pidfd is readable: reap it."""
        self.host.loop.remove_reader(self.child.pidfd)
        self.ended(linux.reap_pidfd(self.child.pidfd))

    def ended(self, status: int | None) -> None:
        changed = self._cancel_change()     # it changed and ended before its first READY
        child = self.child
        os.close(child.pidfd)
        self.child = None
        self.ready = False
        self.last_exit = describe_status(status) if status is not None else "ended"
        self.status = f"ended: {self.last_exit}"
        stopping = self.machine.state is State.STOPPING
        if not stopping:
            self.log(f"vassal {self.name} (pid: {child.pid}) ended: {self.last_exit}")
        if self.on_demand is not None and not stopping and status == 0:
            self.machine.note_clean_exit()      # die-on-idle: back to waiting, not a crash
            self.machine.state = State.STOPPED
            self._cancel_timer()
            self.log(f"vassal {self.name} back to on-demand mode")
            self.arm()
            self.host.vassal_changed()
            return
        if status != 0 and not stopping:
            self._note_failure(self.last_exit)
        self._handle(Event.EXIT)
        if changed and self.machine.state in (State.BACKOFF, State.BROKEN):
            self.log(f"vassal {self.name} changed: retrying it now")
            self._handle(Event.RESTART)     # the changed file gets a fresh streak at once
        self.host.vassal_changed()

    def _stopped(self) -> None:
        self.status = "stopped"
        if self.removed:
            self.close()
            self.host.vassal_gone(self)
        elif self.on_demand is not None:
            self.arm()

    # ---- helpers

    @property
    def pid(self) -> int:
        return self.child.pid if self.child is not None else 0

    @property
    def running(self) -> bool:
        return self.child is not None

    def signal(self, sig: int) -> None:
        if self.child is not None:
            try:
                linux.pidfd_send_signal(self.child.pidfd, sig)
            except OSError:
                pass

    def _kill_group(self) -> None:
        if self.child is not None:
            try:
                os.killpg(self.child.pid, signal.SIGKILL)
            except OSError:
                self.signal(signal.SIGKILL)

    def _arm_timer(self, delay: float) -> None:
        self._cancel_timer()
        self.timer = self.host.loop.call_later(delay, self._timer_fired)

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _timer_fired(self) -> None:
        self.timer = None
        self._handle(Event.TIMER)

    def _note_failure(self, what: str) -> None:
        if not self.first_failure:
            self.first_failure = what

    def log(self, message: str) -> None:
        self.host.log(f"[emperor] {message}")

    def close(self) -> None:
        self._cancel_timer()
        self._cancel_change()
        self.disarm()
        if self.on_demand is not None:
            if self.on_demand_inherited:    # it goes back to the Emperor (and its unit)
                self.host.release_inherited(self.on_demand)
            else:
                self.on_demand.close()
                if self.on_demand_name.startswith("/"):
                    linux.unlink_quietly(self.on_demand_name)
            self.on_demand = None

    def snapshot(self) -> dict:
        return {
            "id": self.name, "path": self.file.path, "pid": self.pid,
            "state": self.machine.state.value, "ready": self.ready, "status": self.status,
            "respawns": self.machine.restarts, "failures": self.machine.failures,
            "last_exit": self.last_exit, "first_failure": self.first_failure,
            "last_change": self.last_change, "last_heartbeat": self.last_heartbeat,
            "on_demand": self.on_demand_name, "uid": self.file.uid, "gid": self.file.gid,
        }


def vassal_argv(wrapper: list[str], cfg, path: str) -> list[str]:
    """uWSGI's order: inherit-before, include-before, set, the file, inherit, include."""
    argv = list(wrapper)
    for value in cfg["vassals-inherit-before"]:
        argv += ["--inherit", value]
    for value in cfg["vassals-include-before"]:
        argv += ["--include", value]
    for value in cfg["vassal-set"]:
        argv += ["--set", value]
    argv += [LOADER_FLAGS[os.path.splitext(path)[1]], path]
    for value in cfg["vassals-inherit"]:
        argv += ["--inherit", value]
    for value in cfg["vassals-include"]:
        argv += ["--include", value]
    return argv
