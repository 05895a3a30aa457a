"""The state machine every supervised process goes through, as one total table.

Modelled on s6 and supervisord's lessons: a supervised process is in exactly one state, every
(state, event) pair has an entry (nothing is "impossible" and silently mishandled), and the
machine is pure: it takes an event and the monotonic time and returns the actions to perform.
The master performs them. That keeps the timing policy (exponential backoff with a cap, reset
once the process has stayed up, SIGTERM then SIGKILL) testable with a fake clock.

uWSGI's throttle, by contrast, uses a lifetime respawn counter that never resets, so the 20th
crash of a long-lived daemon waits about 20 s. Here a process that stayed up `stable_after`
seconds is restarted at once, and only consecutive quick failures back off.
"""

from __future__ import annotations

import enum

from nsuwsgi.records import Frozen, Record, set_field


class State(enum.Enum):
    STOPPED = "stopped"       # not running, not wanted
    STARTING = "starting"     # spawned, not yet confirmed (pidfile daemons wait for the pidfile)
    RUNNING = "running"
    BACKOFF = "backoff"       # failed; a timer will start it again
    BROKEN = "broken"         # failed many times in a row; still retried, at the capped delay
    STOPPING = "stopping"     # stop signal sent; SIGKILL when the mercy timer fires


class Event(enum.Enum):
    START = "start"           # we want it running
    UP = "up"                 # the spawn is confirmed running
    FAIL = "fail"             # the start failed (exec error, no valid pidfile in time)
    EXIT = "exit"             # the process ended
    STOP = "stop"             # we want it stopped
    TIMER = "timer"           # the machine's timer fired
    RESTART = "restart"       # stop if running, then start (touch, reload); retries at once
    ADOPT = "adopt"           # a live process from an earlier master was found (pidfile)


class Action(enum.Enum):
    SPAWN = "spawn"
    SIGNAL_STOP = "signal_stop"   # send the stop signal; arm the mercy timer
    KILL = "kill"                 # SIGKILL the process group
    ARM_BACKOFF = "arm_backoff"   # arm the timer with `Machine.delay`
    CANCEL_TIMER = "cancel_timer"
    GAVE_UP = "gave_up"           # entered BROKEN: log it once
    STOPPED = "stopped"           # reached STOPPED: the master may be waiting for this


# Pseudo-states resolved by the machine: where a crash leads depends on the backoff policy,
# and where a finished stop leads depends on whether a restart was asked for.
RETRY = "retry"
AFTER_STOP = "after_stop"

S, E, A = State, Event, Action

TABLE: dict[tuple[State, Event], tuple[object, tuple[Action, ...]]] = {
    (S.STOPPED, E.START): (S.STARTING, (A.SPAWN,)),
    (S.STOPPED, E.RESTART): (S.STARTING, (A.SPAWN,)),
    (S.STOPPED, E.UP): (S.STOPPED, ()),
    (S.STOPPED, E.FAIL): (S.STOPPED, ()),
    (S.STOPPED, E.EXIT): (S.STOPPED, ()),
    (S.STOPPED, E.STOP): (S.STOPPED, ()),
    (S.STOPPED, E.TIMER): (S.STOPPED, ()),
    (S.STOPPED, E.ADOPT): (S.RUNNING, ()),

    (S.STARTING, E.ADOPT): (S.STARTING, ()),
    (S.STARTING, E.START): (S.STARTING, ()),
    (S.STARTING, E.UP): (S.RUNNING, ()),
    (S.STARTING, E.FAIL): (RETRY, ()),
    (S.STARTING, E.EXIT): (RETRY, ()),
    (S.STARTING, E.STOP): (S.STOPPING, (A.SIGNAL_STOP,)),
    (S.STARTING, E.TIMER): (RETRY, (A.KILL,)),          # start timed out
    (S.STARTING, E.RESTART): (S.STARTING, ()),

    (S.RUNNING, E.ADOPT): (S.RUNNING, ()),
    (S.RUNNING, E.START): (S.RUNNING, ()),
    (S.RUNNING, E.UP): (S.RUNNING, ()),
    (S.RUNNING, E.FAIL): (S.RUNNING, ()),
    (S.RUNNING, E.EXIT): (RETRY, ()),
    (S.RUNNING, E.STOP): (S.STOPPING, (A.SIGNAL_STOP,)),
    (S.RUNNING, E.TIMER): (S.RUNNING, ()),
    (S.RUNNING, E.RESTART): (S.STOPPING, (A.SIGNAL_STOP,)),

    (S.BACKOFF, E.ADOPT): (S.BACKOFF, ()),
    (S.BACKOFF, E.START): (S.BACKOFF, ()),
    (S.BACKOFF, E.UP): (S.BACKOFF, ()),
    (S.BACKOFF, E.FAIL): (S.BACKOFF, ()),
    (S.BACKOFF, E.EXIT): (S.BACKOFF, ()),
    (S.BACKOFF, E.STOP): (S.STOPPED, (A.CANCEL_TIMER, A.STOPPED)),
    (S.BACKOFF, E.TIMER): (S.STARTING, (A.SPAWN,)),
    (S.BACKOFF, E.RESTART): (S.STARTING, (A.CANCEL_TIMER, A.SPAWN)),

    (S.BROKEN, E.ADOPT): (S.BROKEN, ()),
    (S.BROKEN, E.START): (S.BROKEN, ()),
    (S.BROKEN, E.UP): (S.BROKEN, ()),
    (S.BROKEN, E.FAIL): (S.BROKEN, ()),
    (S.BROKEN, E.EXIT): (S.BROKEN, ()),
    (S.BROKEN, E.STOP): (S.STOPPED, (A.CANCEL_TIMER, A.STOPPED)),
    (S.BROKEN, E.TIMER): (S.STARTING, (A.SPAWN,)),
    (S.BROKEN, E.RESTART): (S.STARTING, (A.CANCEL_TIMER, A.SPAWN)),

    (S.STOPPING, E.ADOPT): (S.STOPPING, ()),
    (S.STOPPING, E.START): (S.STOPPING, ()),
    (S.STOPPING, E.UP): (S.STOPPING, ()),
    (S.STOPPING, E.FAIL): (AFTER_STOP, (A.CANCEL_TIMER,)),
    (S.STOPPING, E.EXIT): (AFTER_STOP, (A.CANCEL_TIMER,)),
    (S.STOPPING, E.STOP): (S.STOPPING, ()),
    (S.STOPPING, E.TIMER): (S.STOPPING, (A.KILL,)),
    (S.STOPPING, E.RESTART): (S.STOPPING, ()),
}

assert len(TABLE) == len(State) * len(Event), "the transition table must be total"


class Backoff(Frozen):
    """Restart delays: 0 after a stable run, then base * 2**n, capped; BROKEN after a streak."""

    __slots__ = ("base", "cap", "stable_after", "broken_after")

    def __init__(self, base: float = 0.1, cap: float = 30.0, stable_after: float = 1.0,
                 broken_after: int = 5):
        set_field(self, "base", base)
        set_field(self, "cap", cap)
        set_field(self, "stable_after", stable_after)
        set_field(self, "broken_after", broken_after)

    def delay(self, failures: int) -> float:
        if failures <= 1:
            return 0.0
        return min(self.cap, self.base * (2 ** (failures - 2)))


class Machine(Record):
    """One supervised process's state, driven by handle(event) through TABLE."""

    __slots__ = ("policy", "state", "failures", "restarts", "spawns", "delay", "started_at",
                 "restart_pending", "stopping_for_good")

    def __init__(self, policy: Backoff | None = None, state: State = State.STOPPED,
                 failures: int = 0, restarts: int = 0, spawns: int = 0, delay: float = 0.0,
                 started_at: float | None = None, restart_pending: bool = False,
                 stopping_for_good: bool = False):
        self.policy = Backoff() if policy is None else policy
        self.state = state
        self.failures = failures        # consecutive quick failures
        self.restarts = restarts        # spawns after the first one, for stats
        self.spawns = spawns
        self.delay = delay              # the delay of the armed backoff timer
        self.started_at = started_at
        self.restart_pending = restart_pending
        self.stopping_for_good = stopping_for_good

    def handle(self, event: Event, now: float) -> list[Action]:
        target, actions = TABLE[(self.state, event)]
        actions = list(actions)
        if event is Event.RESTART and self.state in (State.RUNNING, State.STOPPING):
            self.restart_pending = True
        if event is Event.START and self.state is State.STOPPING:
            self.restart_pending = True
        if event is Event.STOP:
            self.restart_pending = False
        if self.state is State.STOPPED and event in (Event.START, Event.RESTART):
            self.failures = 0                   # an operator's new start is a fresh attempt
        if target == RETRY:
            target = self._after_failure(now, actions)
        elif target == AFTER_STOP:
            target = self._after_stop(actions)
        if Action.SPAWN in actions:
            self._note_spawn(now)
        if event is Event.RESTART and self.state in (State.BACKOFF, State.BROKEN):
            self.failures = 0
        self.state = target
        return actions

    def note_clean_exit(self) -> None:
        """The process left on purpose (an on-demand vassal's die-on-idle): no failure streak."""
        self.failures = 0

    def _note_spawn(self, now: float) -> None:
        if self.spawns:
            self.restarts += 1
        self.spawns += 1
        self.started_at = now

    def _after_failure(self, now: float, actions: list[Action]) -> State:
        ran_for = now - self.started_at if self.started_at is not None else 0.0
        if self.state is State.RUNNING and ran_for >= self.policy.stable_after:
            self.failures = 0           # only a real, stable run resets the streak
        self.failures += 1
        self.delay = self.policy.delay(self.failures)
        if self.delay == 0.0:
            actions.append(Action.SPAWN)
            return State.STARTING
        actions.append(Action.ARM_BACKOFF)
        if self.failures >= self.policy.broken_after:
            if self.state is not State.BROKEN and self.failures == self.policy.broken_after:
                actions.append(Action.GAVE_UP)
            return State.BROKEN
        return State.BACKOFF

    def _after_stop(self, actions: list[Action]) -> State:
        if self.restart_pending:
            self.restart_pending = False
            self.failures = 0
            actions.append(Action.SPAWN)
            return State.STARTING
        actions.append(Action.STOPPED)
        return State.STOPPED
