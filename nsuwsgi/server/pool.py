"""The master's side of the workers: N supervised processes sharing the listening sockets.

Each worker slot goes through the same state machine as a daemon (fsm.py) and the same spawn
primitive (with `run`: the worker is forked Python, not exec'd). A graceful reload starts a
fresh generation first and only then asks the old one to finish its current requests and
leave, so the listening sockets always have someone accepting and no request is dropped.
"""

from __future__ import annotations

import gc
import os
import signal
import time
from collections.abc import Callable

from nsuwsgi import linux
from nsuwsgi.fsm import Action, Backoff, Event, Machine, State
from nsuwsgi.server.scoreboard import Scoreboard
from nsuwsgi.spawn import SpawnError, spawn
from nsuwsgi.spec import ProcessSpec

GRACEFUL_STOP = signal.SIGHUP       # finish the current request, then exit (uWSGI's workers)
IMMEDIATE_STOP = signal.SIGINT
EXIT_APP_FAILED = 22                # uWSGI's UWSGI_FAILED_APP_CODE


class WorkerSlot:
    """Worker number `index` (1-based, as uWSGI counts) of one generation."""

    def __init__(self, index: int, pool: "Pool", slot: int):
        self.index = index
        self.pool = pool
        self.slot = slot                # scoreboard slot: generations alternate halves
        self.machine = Machine(Backoff(cap=10.0))
        self.child = None
        self.timer = None
        self.stop_signal = GRACEFUL_STOP
        self.last_exit: str | None = None
        self.harakiri_count = 0         # requests the master killed in this slot (harakiri)
        self.last_spawn = 0             # epoch seconds of the last spawn (0: never)

    @property
    def state(self) -> State:
        return self.machine.state

    @property
    def pid(self) -> int:
        return self.child.pid if self.child is not None else -1

    @property
    def stopped(self) -> bool:
        return self.state is State.STOPPED

    def start(self) -> None:
        self._handle(Event.START)

    def stop(self, graceful: bool = True) -> None:
        self.stop_signal = GRACEFUL_STOP if graceful else IMMEDIATE_STOP
        self._handle(Event.STOP)

    def signal(self, sig: int) -> None:
        if self.child is not None:
            try:
                linux.pidfd_send_signal(self.child.pidfd, sig)
            except ProcessLookupError:
                pass

    def _handle(self, event: Event) -> None:
        for action in self.machine.handle(event, self.pool.loop.clock()):
            self._perform(action)

    def _perform(self, action: Action) -> None:
        if action is Action.SPAWN:
            self._spawn()
        elif action is Action.SIGNAL_STOP:
            self.signal(self.stop_signal)
            self._arm(self.pool.mercy)
        elif action is Action.KILL:
            if self.state is State.STOPPING:
                self.pool.log(f"worker {self.index} (pid: {self.pid}) is taking too much time "
                              f"to die...NO MERCY !!!")
            self.signal(signal.SIGKILL)
        elif action is Action.ARM_BACKOFF:
            self._arm(self.machine.delay)
        elif action is Action.CANCEL_TIMER and self.timer is not None:
            self.timer.cancel()
            self.timer = None
        elif action is Action.GAVE_UP:
            self.pool.log(f"worker {self.index} is BROKEN: it failed {self.machine.failures} "
                          f"times in a row (last: {self.last_exit})")

    def _arm(self, delay: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.pool.loop.call_later(delay, self._timer_fired)

    def _timer_fired(self) -> None:
        self.timer = None
        self._handle(Event.TIMER)

    def _spawn(self) -> None:
        self.pool.scoreboard.reset(self.slot)
        spec = ProcessSpec(argv=("nsuwsgi-worker",), executable="", env=(),
                           stdin_devnull=True, new_session=False,
                           pass_fds=self.pool.pass_fds, pdeathsig=int(signal.SIGKILL),
                           run=lambda: self.pool.worker_main(self.index, self.slot))
        try:
            self.child = spawn(spec, self.pool.loop.clock())
        except SpawnError as err:
            self.last_exit = err.describe()
            self.pool.log(f"cannot start worker {self.index}: {err.describe()}")
            self._handle(Event.FAIL)
            return
        self.last_spawn = int(time.time())
        self.pool.loop.add_reader(self.child.pidfd, self._exited)
        self.pool.log(f"spawned uWSGI worker {self.index} (pid: {self.child.pid}, cores: 1)")
        self._handle(Event.UP)

    def _exited(self) -> None:
        status = linux.reap_pidfd(self.child.pidfd)
        if status is None:
            return
        self.pool.loop.remove_reader(self.child.pidfd)
        os.close(self.child.pidfd)
        pid, self.child = self.child.pid, None
        code = os.waitstatus_to_exitcode(status)
        self.last_exit = f"exit code {code}" if code >= 0 else f"killed by signal {-code}"
        if self.state is State.RUNNING and code == 0:
            self.machine.note_clean_exit()          # max-requests: recycled, not failed
        if self.state is not State.STOPPING:
            if code == EXIT_APP_FAILED:
                self.pool.log(f"worker {self.index} (pid: {pid}) could not load the app")
            elif code != 0:
                self.pool.log(f"worker {self.index} (pid: {pid}) died ({self.last_exit})")
        self._handle(Event.EXIT)

    def stats(self) -> dict:
        """uWSGI's per-worker record (the fields uwsgitop reads), plus last_exit.

        Requests, exceptions, tx and running time count since this worker process started
        (the slot is reset at each spawn); respawn_count and harakiri_count since the slot's
        generation started. Times: avg_rt and running_time in microseconds, last_spawn in
        epoch seconds.
        """
        requests, busy_since, total, exceptions, tx = self.pool.scoreboard.read(self.slot)
        pid = self.pid
        vsz, rss = memory(pid)
        busy = bool(busy_since) and pid > 0
        return {
            "id": self.index,
            "pid": pid,
            "requests": requests,
            "exceptions": exceptions,
            "status": "busy" if busy else ("idle" if pid > 0 else self.state.value),
            "rss": rss,
            "vsz": vsz,
            "avg_rt": int(total / requests * 1_000_000) if requests else 0,
            "running_time": int(total * 1_000_000),
            "tx": tx,
            "respawn_count": self.machine.spawns,
            "harakiri_count": self.harakiri_count,
            "last_spawn": self.last_spawn,
            "signals": 0,
            "cores": [{"id": 0, "requests": requests, "in_request": int(busy)}],
            "last_exit": self.last_exit,
        }


def memory(pid: int) -> tuple[int, int]:
    """(vsz, rss) in bytes, from /proc/PID/statm; (0, 0) when there is no such process."""
    if pid <= 0:
        return 0, 0
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            size, resident = f.read().split()[:2]
    except (OSError, ValueError):
        return 0, 0
    page = os.sysconf("SC_PAGE_SIZE")
    return int(size) * page, int(resident) * page


class Pool:
    """Every worker of the instance, and the facts they share."""

    def __init__(self, loop, log: Callable[[str], None], pass_fds,
                 worker_main: Callable[[int, int], int], processes: int, mercy: float):
        self.loop, self.log = loop, log
        # 2 * processes slots: a reload's two generations overlap.
        self.scoreboard = Scoreboard(2 * processes)
        self.pass_fds, self.worker_main = tuple(pass_fds), worker_main
        self.processes, self.mercy = processes, mercy
        self.generation = 0
        self.workers = self._generation()
        self.retiring: list[WorkerSlot] = []

    def _generation(self) -> list[WorkerSlot]:
        base = (self.generation % 2) * self.processes
        return [WorkerSlot(i + 1, self, base + i) for i in range(self.processes)]

    def start(self) -> None:
        gc.collect()        # only what the master built since instance.run_instance froze
        gc.freeze()         # the code: quick. The heap stays shared with every worker.
        for worker in self.workers:
            worker.start()

    def fresh(self) -> None:
        """Going cheap: these workers stop; the next ones come from a new generation."""
        self.generation += 1
        self.retiring += self.workers
        self.workers = self._generation()

    def stop(self, graceful: bool) -> None:
        for worker in self.workers + self.retiring:
            worker.stop(graceful)

    def kill(self) -> None:
        """A second stop signal: no more waiting."""
        for worker in self.workers + self.retiring:
            worker.signal(signal.SIGKILL)

    def resize(self, processes: int) -> None:
        """A reload changed `processes`: the next generation has `processes` workers.

        It gets a new scoreboard. The running generation keeps writing to the old one (its
        own mapping, inherited at fork) until it leaves; the master reads only the current
        generation's slots. A generation not started yet (cheap) is rebuilt.
        """
        old, self.scoreboard = self.scoreboard, Scoreboard(2 * processes)
        old.close()
        self.processes = processes
        if all(w.child is None and w.stopped for w in self.workers):
            self.workers = self._generation()

    def close(self) -> None:
        self.scoreboard.close()

    def reload(self) -> None:
        """A fresh generation first, then the old one finishes its requests and leaves."""
        old = self.workers
        self.fresh()
        self.start()
        for worker in old:
            worker.stop(graceful=True)

    @property
    def stopped(self) -> bool:
        self.retiring = [w for w in self.retiring if not w.stopped]
        return all(w.stopped for w in self.workers) and not self.retiring

    def stats(self) -> list[dict]:
        return [w.stats() for w in self.workers]
