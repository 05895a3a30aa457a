"""PID 1 of a jail: reap every orphan, relay signals to the payload, report its exit.

In a new PID namespace the first process is init. If it is the payload itself (as in uWSGI,
where the jailed master is PID 1), orphans of daemons pile up as zombies and signals without
a handler are silently dropped by the kernel. So nsuwsgi's first process stays a tiny init,
in the manner of tini: all signals blocked and taken with sigwaitinfo, SIGCHLD reaps
everything, any other signal goes to the payload, and when the payload exits init exits with
the same status (128+N for a signal), which tears the whole namespace down. Before it does, what
is left (say, the children of a shell payload) gets SIGTERM and a few seconds to finish.

The payload leads its own process group, so a signal reaches a shell payload's children
too, as it would without the namespace. Init runs in a forked child; it uses only os/signal
calls and never returns.
"""

from __future__ import annotations

import os
import signal
import time

import _signal

from nsuwsgi import linux
from nsuwsgi.linux import syscalls

RELAYED = set(range(1, signal.NSIG)) - {signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, 32, 33}


def exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def run_init(payload_pid: int, keep_caps: frozenset, to_group: bool = True) -> None:
    """Relay and reap until the payload ends, then exit with its status. Never returns."""
    code = 1
    try:
        _signal.pthread_sigmask(_signal.SIG_BLOCK, RELAYED | {signal.SIGCHLD})
        if os.geteuid() == 0:
            _drop_to(keep_caps)
        linux.set_no_new_privs()
        linux.set_dumpable(False)       # jailed processes cannot ptrace or read /proc/1/*
        code = _relay(payload_pid, to_group)
    finally:
        os._exit(code)


LEFTOVER_GRACE = 5.0     # seconds the rest of the namespace gets once the payload has ended


def _drop_to(keep_caps: frozenset) -> None:
    """Keep only what init needs. The bounding set may already be cut to the payload's set
    (init applied the payload's ops itself); without CAP_SETPCAP it stays that way."""
    try:
        linux.drop_bounding_set(keep_caps)
    except OSError:
        pass
    syscalls.set_capabilities(keep_caps & _permitted())


def _permitted() -> frozenset:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapPrm:"):
                mask = int(line.split()[1], 16)
                return frozenset(cap for cap in range(64) if mask >> cap & 1)
    return frozenset()


def _relay(payload_pid: int, to_group: bool) -> int:
    wanted = RELAYED | {signal.SIGCHLD}
    asked_to_stop = False
    while True:
        status = _reap_all(payload_pid)
        if status is not None:
            _end_leftovers(signal_them=not asked_to_stop)
            return exit_code(status)
        info = signal.sigwaitinfo(wanted)
        if info.si_signo != signal.SIGCHLD:
            asked_to_stop = asked_to_stop or info.si_signo in STOPPING
            try:
                if to_group:
                    os.killpg(payload_pid, info.si_signo)   # a shell payload's children too
                else:
                    os.kill(payload_pid, info.si_signo)
            except ProcessLookupError:
                pass


STOPPING = {signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP}


def _end_leftovers(signal_them: bool) -> None:
    """The payload ended: SIGTERM whatever is left (a shell's children), reap it, bounded.

    Exiting at once would SIGKILL them with the namespace before they could handle SIGTERM.
    When a stop signal was already relayed to the payload's group, they have it: no second.
    """
    try:
        if signal_them:
            os.kill(-1, signal.SIGTERM)     # from PID 1: every other process in the namespace
    except ProcessLookupError:
        return
    deadline = time.monotonic() + LEFTOVER_GRACE
    while time.monotonic() < deadline:
        try:
            while os.waitpid(-1, os.WNOHANG)[0] != 0:
                pass
        except ChildProcessError:
            return                          # nobody left
        signal.sigtimedwait({signal.SIGCHLD}, max(0.0, deadline - time.monotonic()))


def _reap_all(payload_pid: int) -> int | None:
    """Reap every dead child; the payload's wait status if it was among them."""
    found = None
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return found
        if pid == 0:
            return found
        if pid == payload_pid:
            found = status
