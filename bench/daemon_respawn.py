#!/usr/bin/env python3
"""Benchmark: latency from `kill -9` of a supervised daemon to its replacement running.

Compares nsuwsgi with Debian's uWSGI (`/usr/bin/uwsgi-core`) in one run, for two cases:

  dumb   attach-daemon       = memcached -s SOCK -p 0 -U 0 -u nobody            (foreground)
  smart  smart-attach-daemon = PIDFILE memcached -s SOCK -p 0 -U 0 -u nobody -d -P PIDFILE

"Replacement running" means: a memcached pid other than the killed one, alive (not a zombie),
whose unix socket accepts a connection and answers `version\\r\\n` with `VERSION`. The pid is
found by walking the master's descendants (dumb) or by reading the pidfile (smart), and it is
cross-checked with SO_PEERCRED on the connection. The clock (time.perf_counter) starts just
before os.kill(pid, SIGKILL) and stops when that answer arrives; the bench polls every ~0.5 ms.

The bench makes itself a child subreaper and reaps orphans (daemonized memcacheds) itself at
every poll, because PID 1 on the project's machines reaps ~1-2 s late, and uWSGI's
kill(pid, 0) liveness check would see a zombie as alive.

Between kills the bench waits until the replacement has been up for a while: 1.5 s for nsuwsgi
(it resets its backoff once a daemon has been up 1 s) and 3.5 s for uWSGI (it throttles a
respawn when the daemon lived <= 3 s, counted in whole seconds), plus a random 0-1 s for both.
The random part spreads the kills over uWSGI's 1 s master cycle: with a fixed wait every kill
lands at the same phase of that cycle and uWSGI's spread (p90, min, max) would be an artefact.
uWSGI's log is scanned for `throttling` lines and nsuwsgi's for backoff lines; their counts are
printed, so a throttled figure never goes unnoticed.

This is a benchmark, not a test: it prints figures and never asserts. Exit status 0 when it
ran, 1 when it could not run (a missing program, an implementation that would not start).

    .venv/bin/python bench/daemon_respawn.py [--iterations 15]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import psutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
UWSGI = "/usr/bin/uwsgi-core"
MEMCACHED = shutil.which("memcached") or "/usr/bin/memcached"
TARGET_MS = 20.0
DIR_PREFIX = "nsuwsgi-bench-respawn-"

START_TIMEOUT = 20.0        # first daemon of a master must be up within this
RESPAWN_TIMEOUT = {"nsuwsgi": 10.0, "uWSGI": 20.0}   # one replacement, per iteration
STOP_TIMEOUT = 10.0         # master must exit after its stop signal within this
IMPORT_RETRY_FOR = 600.0    # another engineer may be mid-edit on nsuwsgi/config
IMPORT_RETRY_EVERY = 15.0


# --------------------------------------------------------------------------- processes


def set_subreaper() -> str:
    try:
        import prctl
        prctl.set_child_subreaper(1)
        return "python-prctl"
    except ImportError:
        sys.path.insert(0, ROOT)
        from nsuwsgi import linux
        linux.set_child_subreaper(True)
        return "nsuwsgi.linux"


def proc_children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found.extend(int(p) for p in f.read().split())
        except OSError:
            continue
    return found


def descendants(pid: int, limit: int = 64) -> list[int]:
    out: list[int] = []
    todo = [pid]
    while todo and len(out) < limit:
        for child in proc_children(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


def proc_comm_state(pid: int) -> tuple[str, str] | None:
    """(comm, state) from /proc/PID/stat, or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    lpar, rpar = raw.find(b"("), raw.rfind(b")")
    return raw[lpar + 1:rpar].decode(errors="replace"), raw[rpar + 2:rpar + 3].decode()


def alive_memcached(pid: int) -> bool:
    cs = proc_comm_state(pid)
    return cs is not None and cs[0] == "memcached" and cs[1] not in ("Z", "X")


class Reaper:
    """Reaps zombie children the bench did not start with Popen (orphans adopted as subreaper)."""

    def __init__(self) -> None:
        self.own: set[int] = set()       # Popen children: subprocess reaps those
        self.me = os.getpid()
        self.reaped = 0

    def reap(self) -> None:
        for pid in proc_children(self.me):
            if pid in self.own:
                continue
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                continue
            if done:
                self.reaped += 1

    def sleep(self, seconds: float, step: float = 0.001) -> None:
        deadline = time.perf_counter() + seconds
        while True:
            self.reap()
            left = deadline - time.perf_counter()
            if left <= 0:
                return
            time.sleep(min(step, left))


def memcached_version(path: str, timeout: float = 0.5) -> int | None:
    """The server pid (SO_PEERCRED) if `version` gets a VERSION answer on the socket, else None."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall(b"version\r\n")
        data = s.recv(64)
        if not data.startswith(b"VERSION"):
            return None
        pid, _uid, _gid = struct.unpack("3i", s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                             struct.calcsize("3i")))
        return pid
    except OSError:
        return None
    finally:
        s.close()


def read_pid(path: str) -> int | None:
    try:
        with open(path, "rb") as f:
            return int(f.read(32).split()[0])
    except (OSError, ValueError, IndexError):
        return None


def our_memcacheds(run_dir: str) -> list[psutil.Process]:
    """Every memcached whose command line names this run's directory."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            if proc.info["name"] == "memcached" and run_dir in " ".join(proc.info["cmdline"] or []):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def kill_and_reap(procs: list[psutil.Process], reaper: Reaper) -> list[int]:
    """SIGKILL each process (by pid, pid-reuse safe via psutil), wait for it; the survivors."""
    for proc in procs:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    deadline = time.perf_counter() + 5.0
    left = list(procs)
    while left and time.perf_counter() < deadline:
        reaper.sleep(0.01)
        left = [p for p in left if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    return [p.pid for p in left]


# --------------------------------------------------------------------------- one measurement run


@dataclass
class Result:
    case: str
    impl: str
    samples: list[float] = field(default_factory=list)      # ms
    notes: list[str] = field(default_factory=list)          # anomalies, in order
    throttled: int = 0          # uWSGI "throttling" log lines during the measured iterations
    backoffs: int = 0           # nsuwsgi "will be started again in" log lines (same)
    wait: float = 0.0
    jitter: float = 0.0
    load: tuple[float, float] = (0.0, 0.0)   # 1-min load average at start and end
    error: str | None = None
    log_tail: str = ""


class Run:
    """One master (nsuwsgi or uWSGI) supervising one memcached, killed repeatedly."""

    def __init__(self, impl: str, case: str, reaper: Reaper):
        self.impl, self.case, self.reaper = impl, case, reaper
        self.dir = tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{impl}-{case}-")
        os.chmod(self.dir, 0o777)      # memcached writes its socket and pidfile as nobody
        self.sock = os.path.join(self.dir, "mc.sock")
        self.pidfile = os.path.join(self.dir, "mc.pid")
        self.log_path = os.path.join(self.dir, "master.log")
        self.proc: subprocess.Popen | None = None
        self.seen: dict[int, psutil.Process] = {}   # every memcached/launcher pid seen

    # ---- command lines

    def memcached_cmd(self) -> str:
        cmd = f"memcached -s {self.sock} -p 0 -U 0 -u nobody"
        return cmd + f" -d -P {self.pidfile}" if self.case == "smart" else cmd

    def argv(self) -> list[str]:
        if self.case == "dumb":
            daemon = ["--attach-daemon", self.memcached_cmd()]
        else:
            daemon = ["--smart-attach-daemon", f"{self.pidfile} {self.memcached_cmd()}"]
        if self.impl == "nsuwsgi":
            return [VENV_PYTHON, "-m", "nsuwsgi", *daemon]
        return [UWSGI, "--master", "--socket", os.path.join(self.dir, "uwsgi.sock"), *daemon]

    # ---- master

    def start(self) -> None:
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv(), cwd=ROOT, stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.reaper.own.add(self.proc.pid)

    def master_alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self) -> list[str]:
        """Stop the master, then kill by pid every memcached it left behind. Problems found."""
        problems: list[str] = []
        if self.proc is None:
            return problems
        for pid in descendants(self.proc.pid):
            self._remember(pid)
        if self.proc.poll() is None:
            sig = signal.SIGTERM if self.impl == "nsuwsgi" else signal.SIGINT
            self.proc.send_signal(sig)
            deadline = time.perf_counter() + STOP_TIMEOUT
            while self.proc.poll() is None and time.perf_counter() < deadline:
                self.reaper.sleep(0.01)
            if self.proc.poll() is None:
                problems.append(f"{self.impl} master (pid {self.proc.pid}) did not exit within "
                                f"{STOP_TIMEOUT:.0f}s of {sig.name}; killed it")
                self.proc.kill()
                self.proc.wait(5)
        self.reaper.own.discard(self.proc.pid)
        self.logf.close()
        # Smart daemons outlive their master by design (both implementations): ours to clean.
        leftovers = {p.pid: p for p in self.seen.values() if _running(p)}
        leftovers.update({p.pid: p for p in our_memcacheds(self.dir)})
        for p in leftovers.values():
            try:
                what = f"{p.pid} ({p.name()})"
                expected = self.case == "smart" and p.name() == "memcached"
            except psutil.NoSuchProcess:
                continue
            if not expected:
                problems.append(f"{self.impl} left {what} running after it stopped")
        survivors = kill_and_reap(list(leftovers.values()), self.reaper)
        if survivors:
            problems.append(f"could not kill leftover processes {survivors}")
        return problems

    def _remember(self, pid: int) -> None:
        if pid not in self.seen:
            try:
                self.seen[pid] = psutil.Process(pid)
            except psutil.NoSuchProcess:
                pass

    # ---- the daemon

    def probe(self, exclude: int | None) -> int | None:
        """The pid of a running replacement memcached (not `exclude`), or None."""
        if self.case == "dumb":
            pid = None
            for cand in descendants(self.proc.pid):
                if cand != exclude and alive_memcached(cand):
                    pid = cand
                    break
        else:
            pid = read_pid(self.pidfile)
            if pid is None or pid == exclude or not alive_memcached(pid):
                return None
        if pid is None:
            return None
        peer = memcached_version(self.sock)
        if peer is None or peer != pid:
            return None
        return pid

    def wait_up(self, exclude: int | None, timeout: float, poll: float) -> tuple[int | None, float]:
        """Poll until a replacement is running: (pid, perf_counter when seen) or (None, now)."""
        deadline = time.perf_counter() + timeout
        while True:
            self.reaper.reap()
            pid = self.probe(exclude)
            now = time.perf_counter()
            if pid is not None:
                return pid, now
            if now > deadline or not self.master_alive():
                return None, now
            time.sleep(poll)


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def looks_like_mid_edit(log: str) -> bool:
    """nsuwsgi died importing its own modules (another engineer mid-edit): worth retrying."""
    return "/nsuwsgi/" in log and \
        any(e in log for e in ("ImportError", "ModuleNotFoundError", "SyntaxError"))


class ImportRetry:
    """One bounded (IMPORT_RETRY_FOR s) retry allowance for an nsuwsgi that does not import.

    The master imports nsuwsgi.master lazily, after reading its options, so `--version` alone
    proves little: the check imports the whole chain the master needs. Time spent waiting
    here is added to the measurement budget.
    """

    CHECK = "import nsuwsgi, nsuwsgi.cli, nsuwsgi.master; print('nsuwsgi', nsuwsgi.__version__)"

    def __init__(self, reaper: Reaper):
        self.reaper = reaper
        self.deadline = time.monotonic() + IMPORT_RETRY_FOR
        self.waited = 0.0
        self.failures: list[str] = []     # distinct errors seen, for the report

    def check(self) -> tuple[bool, str]:
        try:
            out = subprocess.run([VENV_PYTHON, "-c", self.CHECK], cwd=ROOT,
                                 capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            return False, "import check timed out"
        return out.returncode == 0, (out.stdout + out.stderr).strip()

    def wait_until_importable(self) -> str | None:
        """The version line once nsuwsgi imports; None if it never does (or fails otherwise)."""
        while True:
            ok, text = self.check()
            if ok:
                return text
            if not looks_like_mid_edit(text) or not self.pause(text):
                print(f"nsuwsgi does not import:\n{text[-2000:]}")
                return None

    def pause(self, text: str) -> bool:
        """Note the error and sleep before a retry; False when the allowance is used up."""
        if time.monotonic() + IMPORT_RETRY_EVERY > self.deadline:
            return False
        last = text.strip().splitlines()[-1][:200] if text.strip() else "?"
        if last not in self.failures:
            self.failures.append(last)
        print(f"  nsuwsgi does not import (someone mid-edit?): {last}; retrying in "
              f"{IMPORT_RETRY_EVERY:.0f}s", flush=True)
        start = time.monotonic()
        self.reaper.sleep(IMPORT_RETRY_EVERY, step=0.05)
        self.waited += time.monotonic() - start
        return True


def measure(impl: str, case: str, iterations: int, wait: float, jitter: float, poll: float,
            reaper: Reaper, budget_end) -> Result:
    res = Result(case, impl, wait=wait, jitter=jitter)
    load_start = os.getloadavg()[0]
    run = Run(impl, case, reaper)
    try:
        run.start()
        pid, up_at = run.wait_up(None, START_TIMEOUT, 0.005)
        if pid is None:
            alive = run.master_alive()
            res.error = (f"{impl} did not bring memcached up within {START_TIMEOUT:.0f}s "
                         f"(master {'still running' if alive else f'exited with {run.proc.returncode}'})")
            res.log_tail = run.log_text()[-3000:]
            return res
        log_mark = len(run.log_text())
        for i in range(iterations):
            if time.perf_counter() > budget_end():
                res.notes.append(f"time budget used up: stopped after {i} iteration(s)")
                break
            # Let the replacement stay up `wait` s (stable for backoff/throttle purposes).
            stay = wait + random.uniform(0.0, jitter)
            while time.perf_counter() - up_at < stay:
                reaper.sleep(min(0.05, stay - (time.perf_counter() - up_at)))
                if not alive_memcached(pid):
                    break
            if not alive_memcached(pid):
                res.notes.append(f"iter {i + 1}: memcached pid {pid} died before it was killed")
                pid, up_at = run.wait_up(pid, RESPAWN_TIMEOUT[impl], poll)
                if pid is None:
                    res.notes.append(f"iter {i + 1}: and was not replaced; case aborted")
                    break
                continue
            running = our_memcacheds(run.dir)
            if len(running) != 1:
                res.notes.append(f"iter {i + 1}: {len(running)} memcached processes for this "
                                 f"run before the kill (pids {sorted(p.pid for p in running)}), "
                                 f"expected 1")
            for p in descendants(run.proc.pid):
                run._remember(p)
            run._remember(pid)
            t0 = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            new, t1 = run.wait_up(pid, RESPAWN_TIMEOUT[impl], poll)
            if new is None:
                why = "master exited" if not run.master_alive() else \
                    f"not within {RESPAWN_TIMEOUT[impl]:.0f}s"
                res.notes.append(f"iter {i + 1}: no replacement for pid {pid} ({why}); "
                                 f"case aborted")
                break
            res.samples.append((t1 - t0) * 1000.0)
            pid, up_at = new, t1
        log = run.log_text()[log_mark:]
        res.throttled = len(re.findall(r"\] throttling ", log))
        res.backoffs = len(re.findall(r"will be started again in ", log))
        res.log_tail = run.log_text()[-3000:]
        if impl == "nsuwsgi":
            for line in log.splitlines():
                if any(w in line for w in ("Traceback", "Error", "BROKEN", "did not write")):
                    res.notes.append(f"nsuwsgi log: {line.strip()[:200]}")
    finally:
        res.load = (load_start, os.getloadavg()[0])
        res.notes.extend(run.stop())
        shutil.rmtree(run.dir, ignore_errors=True)
    return res


# --------------------------------------------------------------------------- reporting


def pct(data: list[float], q: int) -> float:
    if len(data) == 1:
        return data[0]
    return statistics.quantiles(data, n=100, method="inclusive")[q - 1]


def report(results: list[Result]) -> bool | None:
    header = f"{'case':<6} {'implementation':<15} {'n':>3} {'median ms':>10} {'p90 ms':>9} " \
             f"{'min':>8} {'max':>9}  {'uWSGI/nsuwsgi':>13}"
    print(header)
    print("-" * len(header))
    met: bool | None = True
    for case in ("dumb", "smart"):
        rows = {r.impl: r for r in results if r.case == case}
        medians = {impl: statistics.median(r.samples) for impl, r in rows.items() if r.samples}
        for impl in ("nsuwsgi", "uWSGI"):
            r = rows.get(impl)
            if r is None:
                continue
            ratio = ""
            if impl == "uWSGI" and "nsuwsgi" in medians and "uWSGI" in medians:
                ratio = f"{medians['uWSGI'] / medians['nsuwsgi']:.1f}x"
            if r.samples:
                s = r.samples
                print(f"{case:<6} {impl:<15} {len(s):>3} {statistics.median(s):>10.2f} "
                      f"{pct(s, 90):>9.2f} {min(s):>8.2f} {max(s):>9.2f}  {ratio:>13}")
            else:
                print(f"{case:<6} {impl:<15} {0:>3} {'-':>10} {'-':>9} {'-':>8} {'-':>9}  {'':>13}")
        if "nsuwsgi" not in medians:
            met = None if met is not False else met
        elif medians["nsuwsgi"] > TARGET_MS:
            met = False
    return met


def version_of(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        return (out.stdout + out.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"unavailable ({err})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=15, help="kills per case and implementation")
    ap.add_argument("--nsuwsgi-wait", type=float, default=1.5,
                    help="seconds a replacement stays up before the next kill (nsuwsgi)")
    ap.add_argument("--uwsgi-wait", type=float, default=3.5,
                    help="the same for uWSGI (it throttles daemons that lived <= 3 s)")
    ap.add_argument("--jitter", type=float, default=1.0,
                    help="add a random 0..JITTER s to every wait (spreads kills over "
                         "uWSGI's 1 s master cycle)")
    ap.add_argument("--poll", type=float, default=0.0005, help="poll interval, seconds")
    ap.add_argument("--budget", type=float, default=290.0,
                    help="start no new iteration after this many seconds (keeps a run < 5 min)")
    ap.add_argument("--only", choices=("nsuwsgi", "uWSGI"), help="measure one implementation")
    args = ap.parse_args()
    if args.iterations < 1:
        ap.error("--iterations must be >= 1")
    if min(args.nsuwsgi_wait, args.uwsgi_wait, args.jitter, args.poll) < 0:
        ap.error("waits, jitter and poll must be >= 0")

    missing = [p for p in (VENV_PYTHON, UWSGI, MEMCACHED) if not os.access(p, os.X_OK)]
    if missing:
        print(f"cannot run: missing {', '.join(missing)}")
        return 1
    if os.geteuid() != 0:
        print("cannot run: memcached -u nobody needs root (run the bench as root)")
        return 1

    reaper = Reaper()
    how = set_subreaper()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    started = time.perf_counter()
    print("daemon_respawn: latency from kill -9 of a supervised memcached to a replacement that "
          "answers `version` on its unix socket")
    retry = ImportRetry(reaper)
    ns_version = retry.wait_until_importable() if args.only != "uWSGI" else "(skipped)"
    if ns_version is None:
        return 1
    ns_python = version_of([VENV_PYTHON, "-c",
                            "import sys, os; print(os.path.realpath(sys.executable), "
                            "sys.version.split()[0])"])
    print(f"nsuwsgi:   {ns_version}, run as `{VENV_PYTHON} -m nsuwsgi` "
          f"(interpreter {ns_python})")
    print(f"uWSGI:     {version_of([UWSGI, '--version'])} ({UWSGI}, `--master --socket ...`)")
    print(f"memcached: {version_of([MEMCACHED, '-V'])}")
    print(f"bench:     {sys.executable} {sys.version.split()[0]}, child subreaper via {how}, "
          f"orphans reaped at every poll; poll {args.poll * 1000:.1f} ms; "
          f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"waits:     before each kill the replacement stays up {args.nsuwsgi_wait:.1f}s for "
          f"nsuwsgi (its backoff resets after 1 s up) and {args.uwsgi_wait:.1f}s for uWSGI (so "
          f"it is not throttled: it throttles daemons that lived <= 3 s), plus a random "
          f"0-{args.jitter:.1f}s (spreads kills over uWSGI's 1 s master cycle)")
    print(flush=True)

    impls = [i for i in ("nsuwsgi", "uWSGI") if args.only in (None, i)]
    def budget_end() -> float:
        return started + args.budget + retry.waited
    results: list[Result] = []
    try:
        for case in ("dumb", "smart"):
            for impl in impls:
                wait = args.nsuwsgi_wait if impl == "nsuwsgi" else args.uwsgi_wait
                print(f"measuring {case:<5} {impl:<7} ({args.iterations} kills, "
                      f"{wait:.1f}s apart) ...", flush=True)
                while True:                 # nsuwsgi may be mid-edit: bounded retries
                    if impl == "nsuwsgi":
                        ok, text = retry.check()
                        if not ok and looks_like_mid_edit(text) and retry.pause(text):
                            continue
                    res = measure(impl, case, args.iterations, wait, args.jitter, args.poll,
                                  reaper, budget_end)
                    if impl == "nsuwsgi" and res.error and not res.samples and \
                            looks_like_mid_edit(res.log_tail) and retry.pause(res.log_tail):
                        continue
                    break
                results.append(res)
                if res.error:
                    print(f"  ERROR: {res.error}\n  log tail:\n    "
                          + "\n    ".join(res.log_tail.splitlines()[-15:]), flush=True)
    finally:
        # Belt and braces: nothing started by the bench may survive it.
        stray = []
        for proc in psutil.process_iter(["name", "cmdline"]):
            try:
                if proc.info["name"] == "memcached" and \
                        DIR_PREFIX in " ".join(proc.info["cmdline"] or []):
                    stray.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        if stray:
            print(f"cleanup: killing {len(stray)} leftover memcached: {[p.pid for p in stray]}")
            kill_and_reap(stray, reaper)

    print()
    met = report(results)
    print()
    for r in results:
        extra = []
        if r.impl == "uWSGI":
            extra.append(f"{r.throttled} throttled respawn(s) in uWSGI's log")
        else:
            extra.append(f"{r.backoffs} delayed (backoff) restart(s) in nsuwsgi's log")
        extra.append(f"load average {r.load[0]:.2f} -> {r.load[1]:.2f}")
        print(f"{r.case:<6} {r.impl:<8} waited {r.wait:.1f}s + 0-{r.jitter:.1f}s between kills; "
              + "; ".join(extra))
        for note in r.notes:
            print(f"       note: {note}")
        if r.error:
            print(f"       error: {r.error}")
    if retry.failures:
        print(f"nsuwsgi import failures seen while waiting ({retry.waited:.0f}s waited in all):")
        for line in retry.failures:
            print(f"       {line}")
    print()
    print(f"target: nsuwsgi median <= {TARGET_MS:.0f} ms in both cases -> "
          + {True: "MET", False: "NOT MET", None: "NOT MEASURED"}[met])
    left = [p.pid for p in psutil.process_iter(["name", "cmdline"])
            if p.info["name"] == "memcached" and DIR_PREFIX in " ".join(p.info["cmdline"] or [])]
    print(f"cleanup: {len(left)} memcached started by the bench still running"
          + (f" ({left})" if left else "") + f"; {reaper.reaped} orphan(s) reaped; "
          f"total run time {time.perf_counter() - started:.0f}s; load average now "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0 if results and not all(r.error for r in results) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted (everything the bench started has been stopped)")
        sys.exit(130)
