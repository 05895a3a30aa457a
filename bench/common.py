"""What every benchmark needs: start and always stop its processes, describe the machine, main.

A benchmark that leaves a server running spoils the next measurement (and the machine), so
every process a bench starts goes through `Processes`, which stops it (and, by pid, everything
below it) whatever happens: an error, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import ctypes
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time

import psutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
VENV_NSUWSGI = os.path.join(ROOT, ".venv", "bin", "nsuwsgi")   # the console script
UWSGI = "/usr/bin/uwsgi-core"
UWSGI_PLUGIN = "/usr/lib/uwsgi/plugins/python3_plugin.so"
PR_SET_CHILD_SUBREAPER = 36
STOP_TIMEOUT = 10.0         # a server must exit within this after its stop signal


def set_subreaper() -> bool:
    """Orphans of what the bench starts come back to it, so none can escape the cleanup."""
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


class BenchError(Exception):
    """The bench cannot run; the message says why."""


class Processes:
    """Every process the bench starts, so that each one is stopped whatever happens."""

    def __init__(self) -> None:
        self.running: list[tuple[subprocess.Popen, int]] = []

    def start(self, argv: list[str], log_path: str, stop_signal: int,
              env: dict | None = None) -> subprocess.Popen:
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.running.append((proc, stop_signal))
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = STOP_TIMEOUT) \
            -> tuple[float, list[str]]:
        """Stop signal, wait; SIGKILL by pid whatever is left of its family.

        Returns (seconds it took to exit, problems seen). A jail's init is in another session,
        so the family is collected by pid before the stop signal, not by process group.
        """
        entry = next((e for e in self.running if e[0] is proc), None)
        if entry is None:
            return 0.0, []
        self.running.remove(entry)
        problems = []
        family = descendants(proc.pid)
        started = time.perf_counter()
        if proc.poll() is None:
            try:
                os.kill(proc.pid, entry[1])
            except ProcessLookupError:
                pass
            if entry[1] == signal.SIGKILL:      # no grace asked for: the family goes too
                kill_pids(family)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                problems.append(f"pid {proc.pid} did not exit within {timeout:.0f} s of "
                                f"{signal.Signals(entry[1]).name}: SIGKILL")
                kill_pids(family + [psutil.Process(proc.pid)])
                proc.wait(timeout=STOP_TIMEOUT)
        took = time.perf_counter() - started
        _, alive = psutil.wait_procs(family, timeout=5.0)
        if alive:
            problems.append(f"{len(alive)} process(es) below pid {proc.pid} outlived it: "
                            f"SIGKILL {[p.pid for p in alive][:20]}")
            kill_pids(alive)
        return took, problems

    def stop_all(self) -> list[str]:
        problems = []
        for proc, _ in list(self.running):
            try:
                problems += self.stop(proc)[1]
            except Exception as exc:        # cleanup goes on for the others
                problems.append(f"stopping pid {proc.pid}: {exc}")
        return problems


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def kill_pids(procs: list[psutil.Process]) -> None:
    for p in procs:
        try:
            p.kill()                # psutil checks the pid was not reused
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=STOP_TIMEOUT)     # reaps the bench's own children


def free_ports(n: int) -> list[int]:
    """n distinct ports the kernel picked: bind n sockets to port 0, read them, close all."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def log_tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join("    | " + line for line in text.splitlines()[-lines:])


def tool_version(argv: list[str], line: int = 0) -> str:
    """One line (the first by default) of what `argv` prints about its version."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd=ROOT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"? ({exc})"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[line] if text else "?"


def check_uwsgi() -> None:
    """Debian's uWSGI with its python3 plugin, and our venv: every comparison needs them."""
    for program, what in ((UWSGI, "uwsgi-core (apt-get install uwsgi-core)"),
                          (VENV_PYTHON, "the venv (./scripts/test.sh sets it up)")):
        if not os.access(program, os.X_OK):
            raise BenchError(f"missing {what}: {program}")
    if not os.path.exists(UWSGI_PLUGIN):
        raise BenchError(f"missing uWSGI's python3 plugin ({UWSGI_PLUGIN}; "
                         f"apt-get install uwsgi-plugin-python3)")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> str:
    """What the `# machine` header line of every bench starts with."""
    return (f"Linux {platform.release()}, {os.cpu_count()} CPUs ({cpu_model()}), "
            f"load average {loadavg()} at start")


def print_ran(started: float) -> None:
    """The closing line of a run that went to its end: its length, the load then."""
    print(f"\n# ran in {time.monotonic() - started:.0f} s; load average {loadavg()} at the end")


def reap_orphans(procs: Processes) -> None:
    """Reap zombies adopted as subreaper (never a running Popen child: subprocess reaps it)."""
    running = {proc.pid for proc, _ in procs.running}
    for child in psutil.Process().children():
        if child.pid in running:
            continue
        try:
            os.waitpid(child.pid, os.WNOHANG)
        except ChildProcessError:
            pass


def clean_up(procs: Processes, workdir: str, what: str) -> None:
    """The end of every run, whatever happened: stop each process the bench started, SIGKILL
    by pid whatever is still below the bench, reap, remove workdir; print what was found."""
    problems = procs.stop_all()
    left = descendants(os.getpid())     # started by the bench, directly or not
    if left:
        problems.append(f"{len(left)} leftover process(es) below the bench: SIGKILL "
                        f"{[p.pid for p in left][:20]}")
        kill_pids(left)
    reap_orphans(procs)
    for p in problems:
        print(f"# cleanup  : {p}")
    shutil.rmtree(workdir, ignore_errors=True)
    left = descendants(os.getpid())
    print(f"# cleanup  : every {what} stopped, {len(left)} process(es) left below the "
          f"bench; {workdir} {'NOT removed' if os.path.exists(workdir) else 'removed'}")


def _on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def bench_main(name: str, run, args, procs: Processes) -> int:
    """Run `run(args, procs)`; whatever happens, every process it started is stopped."""
    # children inherit an ignored SIGINT through exec (uWSGI's stop signal): un-ignore it
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        run(args, procs)
    except BenchError as exc:
        print(f"{name}: cannot run: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{name}: interrupted (everything the bench started has been stopped)")
        return 130
    finally:
        for problem in procs.stop_all():
            print(f"# cleanup  : {problem}", file=sys.stderr)
    return 0
