"""The supervision state machine, driven with a fake clock (plain `now` floats).

The machine is pure: every test feeds events and times and looks at the returned actions, the
state and the counters. No processes, no timers, no sleeps.
"""

from __future__ import annotations

import itertools

import pytest

from nsuwsgi.fsm import TABLE, Action, Backoff, Event, Machine, State

A, E, S = Action, Event, State

POLICY = Backoff()  # base 0.1, cap 30, stable_after 1.0, broken_after 5


def machine(**policy) -> Machine:
    return Machine(policy=Backoff(**policy)) if policy else Machine()


def running(m: Machine | None = None, now: float = 0.0) -> Machine:
    """A machine that was started at `now` and confirmed up."""
    m = m or machine()
    assert m.handle(E.START, now) == [A.SPAWN]
    assert m.handle(E.UP, now) == []
    assert m.state is S.RUNNING
    return m


# --------------------------------------------------------------------------- the table


def test_table_is_total():
    missing = [(s, e) for s, e in itertools.product(State, Event) if (s, e) not in TABLE]
    assert not missing
    assert len(TABLE) == len(State) * len(Event)


def test_table_targets_and_actions_are_well_formed():
    for (state, event), (target, actions) in TABLE.items():
        assert isinstance(target, State) or target in ("retry", "after_stop"), (state, event)
        assert all(isinstance(a, Action) for a in actions), (state, event)


@pytest.mark.parametrize("state,event", list(itertools.product(State, Event)))
def test_every_pair_is_handled_without_error(state, event):
    m = machine()
    m.state = state
    m.started_at = 0.0
    actions = m.handle(event, 100.0)
    assert isinstance(m.state, State)
    assert all(isinstance(a, Action) for a in actions)


# --------------------------------------------------------------------------- starting up


def test_start_from_stopped_spawns():
    m = machine()
    assert m.state is S.STOPPED
    assert m.handle(E.START, 5.0) == [A.SPAWN]
    assert m.state is S.STARTING
    assert m.started_at == 5.0
    assert (m.spawns, m.restarts) == (1, 0)


def test_up_confirms_running():
    m = machine()
    m.handle(E.START, 0.0)
    assert m.handle(E.UP, 0.2) == []
    assert m.state is S.RUNNING


def test_restart_from_stopped_spawns():
    m = machine()
    assert m.handle(E.RESTART, 0.0) == [A.SPAWN]
    assert m.state is S.STARTING


def test_adopt_from_stopped_runs_without_spawning():
    m = machine()
    assert m.handle(E.ADOPT, 0.0) == []
    assert m.state is S.RUNNING
    assert m.spawns == 0


def test_start_timeout_kills_and_retries():
    m = machine()
    m.handle(E.START, 0.0)
    actions = m.handle(E.TIMER, 0.5)     # no pidfile in time
    assert actions[0] is A.KILL
    assert A.SPAWN in actions            # first failure: retried at once
    assert m.state is S.STARTING
    assert m.failures == 1


# --------------------------------------------------------------------------- crashes and backoff


@pytest.mark.parametrize("ran_for", [1.0, 1.5, 3600.0])
def test_crash_after_stable_run_respawns_at_once(ran_for):
    m = running(now=10.0)
    actions = m.handle(E.EXIT, 10.0 + ran_for)
    assert actions == [A.SPAWN]
    assert m.state is S.STARTING
    assert m.delay == 0.0
    assert m.failures == 1


def test_consecutive_quick_crashes_back_off_exponentially():
    m = machine(broken_after=100)
    now = 0.0
    m.handle(E.START, now)
    delays = []
    for _ in range(12):
        now += 0.01
        actions = m.handle(E.EXIT, now)      # died 10 ms after its spawn
        if A.SPAWN in actions:
            assert m.state is S.STARTING
            delays.append(0.0)
            continue
        assert actions == [A.ARM_BACKOFF]
        assert m.state is S.BACKOFF
        delays.append(m.delay)
        now += m.delay
        assert m.handle(E.TIMER, now) == [A.SPAWN]
        assert m.state is S.STARTING
    assert delays == pytest.approx([0.0, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6,
                                    30.0, 30.0])
    assert m.failures == 12


@pytest.mark.parametrize("failures,delay", [
    (0, 0.0), (1, 0.0), (2, 0.1), (3, 0.2), (4, 0.4), (5, 0.8), (10, 25.6), (11, 30.0),
    (50, 30.0),
])
def test_backoff_delay_policy(failures, delay):
    assert POLICY.delay(failures) == pytest.approx(delay)


def test_backoff_cap_is_configurable():
    policy = Backoff(base=1.0, cap=5.0)
    assert [policy.delay(n) for n in range(1, 7)] == [0.0, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_quick_failure_to_start_counts_like_a_crash():
    m = machine()
    m.handle(E.START, 0.0)
    assert m.handle(E.FAIL, 0.0) == [A.SPAWN]      # exec error: first retry is immediate
    assert m.handle(E.FAIL, 0.0) == [A.ARM_BACKOFF]
    assert m.state is S.BACKOFF
    assert m.delay == pytest.approx(0.1)


def test_streak_resets_after_a_stable_run():
    m = machine()
    now = 0.0
    m.handle(E.START, now)
    # three quick crashes build a streak
    for _ in range(3):
        now += 0.01
        actions = m.handle(E.EXIT, now)
        if A.ARM_BACKOFF in actions:
            now += m.delay
            m.handle(E.TIMER, now)
    assert m.failures == 3
    m.handle(E.UP, now)
    now += POLICY.stable_after + 5      # this one stayed up
    assert m.handle(E.EXIT, now) == [A.SPAWN]
    assert m.failures == 1
    assert m.delay == 0.0


def test_twentieth_crash_of_a_long_lived_process_is_immediate():
    """uWSGI's lifetime respawn counter would make this one wait ~20 s."""
    m = running(now=0.0)
    now = 0.0
    for crash in range(1, 21):
        now += 600.0                 # ten minutes up each time
        assert m.handle(E.EXIT, now) == [A.SPAWN], f"crash {crash}"
        assert m.delay == 0.0
        assert m.failures == 1
        m.handle(E.UP, now)
    assert m.restarts == 20


def test_stable_is_measured_from_the_spawn():
    m = running(now=100.0)
    just_short = 100.0 + POLICY.stable_after - 0.001
    m.failures = 1                   # the previous run was already a quick failure
    assert m.handle(E.EXIT, just_short) == [A.ARM_BACKOFF]
    assert m.failures == 2


# --------------------------------------------------------------------------- BROKEN


def drive_to_broken(m: Machine, now: float = 0.0) -> tuple[float, list[list[Action]]]:
    """Quick crash after quick crash until BROKEN; returns the clock and every action list."""
    history = []
    m.handle(E.START, now)
    while m.state is not S.BROKEN:
        now += 0.01
        actions = m.handle(E.EXIT, now)
        history.append(actions)
        if m.state is S.BACKOFF:
            now += m.delay
            assert m.handle(E.TIMER, now) == [A.SPAWN]
        assert len(history) <= m.policy.broken_after
    return now, history


def test_broken_after_consecutive_failures_with_one_gave_up():
    m = machine()
    now, history = drive_to_broken(m)
    assert len(history) == POLICY.broken_after
    assert m.failures == POLICY.broken_after
    gave_up = [a for actions in history for a in actions if a is A.GAVE_UP]
    assert gave_up == [A.GAVE_UP]
    assert history[-1] == [A.ARM_BACKOFF, A.GAVE_UP]
    assert m.delay == pytest.approx(POLICY.delay(POLICY.broken_after))


def test_broken_retries_on_timer_and_does_not_give_up_twice():
    m = machine()
    now, _ = drive_to_broken(m)
    for _ in range(10):
        now += m.delay
        assert m.handle(E.TIMER, now) == [A.SPAWN]
        assert m.state is S.STARTING
        now += 0.01
        actions = m.handle(E.EXIT, now)
        assert actions == [A.ARM_BACKOFF]       # no second GAVE_UP
        assert m.state is S.BROKEN
    assert m.delay == POLICY.cap


def test_broken_process_that_then_stays_up_recovers():
    m = machine()
    now, _ = drive_to_broken(m)
    now += m.delay
    m.handle(E.TIMER, now)
    m.handle(E.UP, now)
    assert m.state is S.RUNNING
    now += 3600
    assert m.handle(E.EXIT, now) == [A.SPAWN]
    assert m.failures == 1


@pytest.mark.parametrize("stuck_in", [S.BACKOFF, S.BROKEN])
def test_restart_while_waiting_retries_at_once_and_resets_the_streak(stuck_in):
    m = machine()
    now = 0.0
    m.handle(E.START, now)
    while m.state is not stuck_in:
        now += 0.01
        m.handle(E.EXIT, now)
        if m.state is S.BACKOFF and stuck_in is S.BROKEN:
            now += m.delay
            m.handle(E.TIMER, now)
    assert m.failures >= 2
    spawns = m.spawns
    assert m.handle(E.RESTART, now) == [A.CANCEL_TIMER, A.SPAWN]
    assert m.state is S.STARTING
    assert m.failures == 0
    assert m.spawns == spawns + 1
    # the streak really started over: the next quick crash is retried at once
    now += 0.01
    assert m.handle(E.EXIT, now) == [A.SPAWN]
    assert m.failures == 1


def test_a_new_streak_after_restart_gives_up_again():
    m = machine()
    now, _ = drive_to_broken(m)
    m.handle(E.RESTART, now)
    gave_up = 0
    while True:
        now += 0.01
        actions = m.handle(E.EXIT, now)
        gave_up += actions.count(A.GAVE_UP)
        if m.state is S.BROKEN:
            break
        if m.state is S.BACKOFF:
            now += m.delay
            m.handle(E.TIMER, now)
    assert gave_up == 1


# --------------------------------------------------------------------------- stopping


def test_stop_signals_then_kills_then_reports_stopped():
    m = running()
    assert m.handle(E.STOP, 10.0) == [A.SIGNAL_STOP]
    assert m.state is S.STOPPING
    assert m.handle(E.TIMER, 13.0) == [A.KILL]          # SIGTERM -> SIGKILL
    assert m.state is S.STOPPING
    assert m.handle(E.EXIT, 13.01) == [A.CANCEL_TIMER, A.STOPPED]
    assert m.state is S.STOPPED


def test_stop_that_works_before_the_mercy_timer():
    m = running()
    m.handle(E.STOP, 10.0)
    assert m.handle(E.EXIT, 10.1) == [A.CANCEL_TIMER, A.STOPPED]
    assert m.state is S.STOPPED
    assert m.spawns == 1


def test_stop_while_starting():
    m = machine()
    m.handle(E.START, 0.0)
    assert m.handle(E.STOP, 0.1) == [A.SIGNAL_STOP]
    assert m.handle(E.EXIT, 0.2) == [A.CANCEL_TIMER, A.STOPPED]
    assert m.state is S.STOPPED


def test_restart_from_running_stops_then_spawns():
    m = running()
    assert m.handle(E.RESTART, 10.0) == [A.SIGNAL_STOP]
    assert m.state is S.STOPPING
    assert m.handle(E.EXIT, 10.5) == [A.CANCEL_TIMER, A.SPAWN]
    assert m.state is S.STARTING
    assert m.started_at == 10.5
    assert (m.spawns, m.restarts) == (2, 1)
    assert m.failures == 0


def test_restart_after_mercy_kill_still_respawns():
    m = running()
    m.handle(E.RESTART, 10.0)
    assert m.handle(E.TIMER, 13.0) == [A.KILL]
    assert m.handle(E.EXIT, 13.01) == [A.CANCEL_TIMER, A.SPAWN]
    assert m.state is S.STARTING


def test_stop_during_a_restart_cancels_the_restart():
    m = running()
    m.handle(E.RESTART, 10.0)
    assert m.handle(E.STOP, 10.1) == []
    assert m.handle(E.EXIT, 10.2) == [A.CANCEL_TIMER, A.STOPPED]
    assert m.state is S.STOPPED


def test_start_during_a_stop_turns_it_into_a_restart():
    m = running()
    m.handle(E.STOP, 10.0)
    assert m.handle(E.START, 10.1) == []
    assert m.handle(E.EXIT, 10.2) == [A.CANCEL_TIMER, A.SPAWN]
    assert m.state is S.STARTING


@pytest.mark.parametrize("waiting_in", [S.BACKOFF, S.BROKEN])
def test_stop_while_waiting_cancels_the_timer(waiting_in):
    m = machine()
    if waiting_in is S.BROKEN:
        drive_to_broken(m)
    else:
        m.handle(E.START, 0.0)
        m.handle(E.EXIT, 0.01)
        m.handle(E.EXIT, 0.02)
    assert m.state is waiting_in
    assert m.handle(E.STOP, 1.0) == [A.CANCEL_TIMER, A.STOPPED]
    assert m.state is S.STOPPED
    # the cancelled timer firing late anyway changes nothing
    assert m.handle(E.TIMER, 5.0) == []
    assert m.state is S.STOPPED


def test_start_after_a_stop_begins_a_fresh_streak():
    """An operator's STOP then START is a new attempt: its first quick crash retries at once.

    Otherwise a daemon stopped while BROKEN (say, to fix its config) comes back mid-streak:
    its first crash waits the long delay, and it is BROKEN again without a GAVE_UP log line.
    """
    m = machine()
    now, _ = drive_to_broken(m)
    m.handle(E.STOP, now)
    assert m.state is S.STOPPED
    now += 60
    assert m.handle(E.START, now) == [A.SPAWN]
    now += 0.01
    assert m.handle(E.EXIT, now) == [A.SPAWN]
    assert m.failures == 1


# --------------------------------------------------------------------------- stale events


NO_OP = [
    (S.STOPPED, E.UP), (S.STOPPED, E.FAIL), (S.STOPPED, E.EXIT), (S.STOPPED, E.STOP),
    (S.STOPPED, E.TIMER),
    (S.STARTING, E.START), (S.STARTING, E.ADOPT), (S.STARTING, E.RESTART),
    (S.RUNNING, E.START), (S.RUNNING, E.UP), (S.RUNNING, E.FAIL), (S.RUNNING, E.TIMER),
    (S.RUNNING, E.ADOPT),
    (S.BACKOFF, E.START), (S.BACKOFF, E.UP), (S.BACKOFF, E.FAIL), (S.BACKOFF, E.EXIT),
    (S.BACKOFF, E.ADOPT),
    (S.BROKEN, E.START), (S.BROKEN, E.UP), (S.BROKEN, E.FAIL), (S.BROKEN, E.EXIT),
    (S.BROKEN, E.ADOPT),
    (S.STOPPING, E.UP), (S.STOPPING, E.STOP), (S.STOPPING, E.ADOPT),
]


@pytest.mark.parametrize("state,event", NO_OP)
def test_stale_events_change_nothing(state, event):
    m = Machine(state=state, failures=3, restarts=2, spawns=3, delay=0.4, started_at=1.0)
    before = (m.failures, m.restarts, m.spawns, m.delay, m.started_at, m.restart_pending)
    assert m.handle(event, 50.0) == []
    assert m.state is state
    assert (m.failures, m.restarts, m.spawns, m.delay, m.started_at,
            m.restart_pending) == before


# --------------------------------------------------------------------------- counters


def test_restarts_count_spawns_after_the_first():
    m = machine()
    assert (m.spawns, m.restarts) == (0, 0)
    m.handle(E.START, 0.0)
    assert (m.spawns, m.restarts) == (1, 0)
    m.handle(E.UP, 0.0)
    m.handle(E.EXIT, 10.0)               # stable crash, immediate respawn
    assert (m.spawns, m.restarts) == (2, 1)
    m.handle(E.EXIT, 10.01)              # quick crash: backoff, no spawn yet
    assert (m.spawns, m.restarts) == (2, 1)
    m.handle(E.TIMER, 10.2)
    assert (m.spawns, m.restarts) == (3, 2)
    m.handle(E.UP, 10.2)
    m.handle(E.RESTART, 20.0)
    assert (m.spawns, m.restarts) == (3, 2)     # stopping first
    m.handle(E.EXIT, 20.1)
    assert (m.spawns, m.restarts) == (4, 3)


def test_adopted_process_is_not_a_spawn():
    m = machine()
    m.handle(E.ADOPT, 0.0)
    assert (m.spawns, m.restarts) == (0, 0)
    m.handle(E.STOP, 1.0)
    assert m.handle(E.EXIT, 1.1) == [A.CANCEL_TIMER, A.STOPPED]
    assert m.spawns == 0
