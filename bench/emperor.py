#!/usr/bin/env python3
"""Benchmark: nsuwsgi's Emperor against uWSGI's, measured in ONE run.

Emperors (each started fresh, in its own session, cwd = the repository, each governing its
own temporary vassal directory):

  nsuwsgi  .venv/bin/python -m nsuwsgi --emperor DIR --emperor-stats SOCK   (stopped: SIGTERM)
  uWSGI    uwsgi-core --emperor DIR                                         (stopped: SIGINT)
           uWSGI's defaults, on purpose: it scans the directory every 3 s (emperor-freq).

Vassals: the same .ini file for both, written to a staging directory and renamed into the
vassal directory (an atomic appearance):

  [uwsgi]
  plugin = python3 / master = true / processes = 1 / http-socket = 127.0.0.1:PORT
  wsgi-file = bench/apps/APP.py / disable-logging = true  (+ env = GREETING=.. / cheap = true)

Per run (--runs, default 5; the two Emperors run side by side and take turns, the order
alternating from one run to the next; one new vassal per run and Emperor, app greeting.py,
which answers "Hello $GREETING"):

  (a) appear   time from the rename into the directory to the first HTTP 200 (the bench
               tries GET / every 1 ms; a connection that succeeds waits for its answer).
  (b) reload   the file is rewritten (atomic rename) with GREETING=v2 instead of v1: time
               from the rename to the end of the first 200 answered "Hello v2". Meanwhile a
               client thread sends GET / in a loop (one connection per request, 5 ms apart,
               10 s timeout): failed requests (refused, reset, timed out, not 200, a body that
               is neither v1 nor v2) and the longest request (the stall) are counted over the
               requests in flight from the rename until 1 s after the first v2 answer.
               Before the rename the bench waits for the next whole second after the old
               file's mtime (uWSGI compares mtimes in whole seconds).
  (c) delete   time from unlink() to the port refusing connections (connect every 1 ms).

Scale (once per Emperor, each alone on the machine, a fresh Emperor each; --skip-scale):

  (d) --vassals N (default 200) hello.py vassals (master + 1 worker each) renamed into the
      directory in one loop: time until every one answered a 200. The bench reads
      /proc/net/tcp every 10 ms and sends one GET (asyncio) to each port once it listens
      (retried if it fails). Once all answered: 2 s settle, then --idle (10) s of the
      Emperor's CPU time (sum of /proc/PID/task/*/schedstat, ns), its RSS, and the PSS per
      vassal: the vassals' processes (every descendant of the Emperor holding a vassal's
      listening socket, and their descendants) summed from /proc/PID/smaps_rollup, divided
      by the number of vassals. Other descendants (nsuwsgi's fork-server) are the Emperor's
      helpers: shown apart, and counted with the Emperor for the CPU target. nsuwsgi's
      vassals send the Emperor a WATCHDOG datagram every 15 s (half its 30 s heartbeat), so
      a 10 s window holds zero or one round of them: --idle 30 gives a steadier figure.
  (e) --cheap N (default: skipped) vassals with cheap = true: time until every one has bound
      its socket, and the PSS per vassal. A connection would make a cheap vassal start its
      worker, so "bound" is read from /proc/net/tcp (a LISTEN entry on 127.0.0.1:PORT: a
      connect() would succeed), never by connecting.

Targets (nsuwsgi): (a) <= 100 ms, (b) <= 300 ms with 0 failed requests and no stall > 100 ms,
(c) <= 50 ms, (d) all answering <= 3 s, PSS per vassal <= 5 MB, Emperor idle CPU < 0.1 %.
Times are medians over the runs; failures are summed over the runs; the stall is the worst of
all runs. Each figure is printed with nsuwsgi/uWSGI (lower is better for all of them).

Processes: the bench makes itself a child subreaper, so nothing an Emperor starts can escape
to PID 1. An Emperor is stopped with its stop signal; whatever of its descendants is left
after that is SIGKILLed by pid (psutil checks the pid was not reused); at the end every
remaining descendant of the bench is SIGKILLed and reaped. Ports: 127.0.0.1 only, chosen by
the kernel (bind port 0, read it, close; for many vassals all are bound at once, so they
differ). Another program could take a port in between; in a bench that is an acceptable risk.

This is a benchmark, not a test: it prints figures and never asserts. Exit 0 when it ran,
1 when it could not run (a missing program, an Emperor that would not start).

    .venv/bin/python bench/emperor.py [--runs 5] [--vassals 200] [--skip-scale] [--cheap N]
                                      [--idle 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field

import psutil

from common import (ROOT, UWSGI, VENV_PYTHON, BenchError, Processes, bench_main, check_uwsgi,
                    clean_up, descendants, free_ports, loadavg, log_tail, machine, print_ran,
                    reap_orphans, set_subreaper, tool_version)

APPS_DIR = os.path.join(ROOT, "bench", "apps")
DIR_PREFIX = "nsuwsgi-bench-emperor-"

SERVERS = ("nsuwsgi", "uWSGI")
STOP_SIGNAL = {"nsuwsgi": signal.SIGTERM, "uWSGI": signal.SIGINT}

TARGET_APPEAR_MS = 100.0
TARGET_RELOAD_MS = 300.0
TARGET_STALL_MS = 100.0
TARGET_DELETE_MS = 50.0
TARGET_SCALE_S = 3.0
TARGET_PSS_MB = 5.0
TARGET_IDLE_CPU_PCT = 0.1

EMPEROR_START_TIMEOUT = 30.0    # the Emperor's "governing" / "starting" line
VASSAL_TIMEOUT = 30.0           # (a), (b), (c): one vassal
HTTP_TIMEOUT = 10.0             # one GET
CLIENT_GAP = 0.005              # (b): between two requests of the client loop
RELOAD_TAIL = 1.0               # (b): the window goes on this long after the first v2
RELOAD_LEAD = 0.3               # (b): the client runs this long before the rewrite
SETTLE_IDLE = 2.0               # (d), (e): after all are up, before the idle measurement
SCAN_POLL = 0.010               # (d), (e): /proc/net/tcp read this often
STOP_TIMEOUT_BASE = 20.0        # an Emperor must exit this long (+ per vassal) after its signal
STOP_TIMEOUT_PER_VASSAL = 0.1
IMPORT_RETRY_FOR = 600.0        # another engineer may be mid-edit on nsuwsgi
IMPORT_RETRY_EVERY = 15.0

LOG_WORRY = re.compile(r"Traceback|Error|error|will be started again|keeps failing|"
                       r"did not stop in time|cannot|refused|warning|second stop signal|"
                       r"ended: |BROKEN|quarantined")


def read_log(path: str, offset: int = 0) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


# --------------------------------------------------------------------------- HTTP

def http_get(port: int, timeout: float = HTTP_TIMEOUT) -> tuple[int, bytes]:
    """One HTTP/1.0 GET / (the server closes afterwards); (status, body). OSError if refused."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        chunks = []
        for _ in range(10_000):             # bounded: the answers are tiny
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return parse_response(b"".join(chunks))


def parse_response(raw: bytes) -> tuple[int, bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    return (int(m[1]) if m else 0), body


def refuses(port: int) -> bool:
    """True when a connect() to the port is refused (nothing listens)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(0.5)
    try:
        s.connect(("127.0.0.1", port))
        return False
    except ConnectionRefusedError:
        return True
    except OSError:                         # a full backlog drops the SYN: not closed yet
        return False
    finally:
        s.close()


def listening_ports(wanted: set[int]) -> set[int]:
    """Ports of `wanted` with a LISTEN socket on 127.0.0.1 (read from /proc/net/tcp)."""
    found = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split(None, 4)
            if parts[3] != "0A":
                continue
            addr, _, port = parts[1].partition(":")
            p = int(port, 16)
            if p in wanted and addr in ("0100007F", "00000000"):
                found.add(p)
    return found


def listening_inodes(wanted: set[int]) -> dict[int, int]:
    """socket inode -> port, for the LISTEN sockets on the ports of `wanted`."""
    out = {}
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if parts[3] != "0A":
                continue
            p = int(parts[1].partition(":")[2], 16)
            if p in wanted:
                out[int(parts[9])] = p
    return out


# --------------------------------------------------------------------------- /proc figures

def cpu_ns(pid: int) -> int:
    """CPU time of every thread of the process, ns (schedstat: not rounded to clock ticks)."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total


def rollup_kb(pid: int, field: str) -> int:
    """A field of /proc/PID/smaps_rollup ("Pss", "Rss"), in kB; 0 if the process is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def socket_inodes(pid: int) -> set[int]:
    out = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(int(target[8:-1]))
    return out


@dataclass
class Tree:
    """An Emperor's process tree split into the Emperor, its helpers and its vassals."""
    emperor: int
    helpers: list[int]
    vassal_pids: list[int]
    vassals_found: int          # ports with a holder among the Emperor's descendants


def split_tree(emperor_pid: int, ports: set[int]) -> Tree:
    inode_port = listening_inodes(ports)
    procs = descendants(emperor_pid)
    holders: dict[int, int] = {}        # pid -> port
    for p in procs:
        for inode in socket_inodes(p.pid):
            if inode in inode_port:
                holders[p.pid] = inode_port[inode]
                break
    vassal = set(holders)
    for pid in list(holders):
        vassal.update(c.pid for c in descendants(pid))
    helpers = [p.pid for p in procs if p.pid not in vassal]
    return Tree(emperor_pid, helpers, sorted(vassal), len(set(holders.values())))


# --------------------------------------------------------------------------- Emperors

@dataclass
class Emperor:
    server: str
    proc: subprocess.Popen
    vassal_dir: str
    staging: str
    log_path: str
    stats_path: str | None

    def alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"the {self.server} Emperor exited with {self.proc.returncode}:\n"
                             f"{log_tail(self.log_path)}")

    def drop(self, name: str, text: str) -> float:
        """Write the file in the staging directory, rename it into the vassal directory;
        perf_counter() just before the rename."""
        tmp = os.path.join(self.staging, name)
        with open(tmp, "w") as f:
            f.write(text)
        t0 = time.perf_counter()
        os.rename(tmp, os.path.join(self.vassal_dir, name))
        return t0

    def stats(self) -> dict | None:
        """nsuwsgi's --emperor-stats JSON (None for uWSGI or when unreadable)."""
        if not self.stats_path:
            return None
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5.0)
        try:
            s.connect(self.stats_path)
            chunks = []
            while True:
                data = s.recv(1 << 20)
                if not data:
                    break
                chunks.append(data)
            raw = b"".join(chunks)
        except OSError as exc:
            return {"error": f"cannot read the stats socket: {exc}"}
        finally:
            s.close()
        try:
            return json.loads(raw)
        except ValueError as exc:
            return {"error": f"the stats answer ({len(raw)} bytes) is not JSON: {exc}"}


def start_emperor(procs: Processes, server: str, workdir: str, tag: str) -> Emperor:
    base = os.path.join(workdir, f"{server}-{tag}")
    vassal_dir, staging = os.path.join(base, "vassals"), os.path.join(base, "staging")
    os.makedirs(vassal_dir)
    os.makedirs(staging)
    log_path = os.path.join(base, "emperor.log")
    stats_path = None
    if server == "nsuwsgi":
        stats_path = os.path.join(base, "stats.sock")
        argv = [VENV_PYTHON, "-m", "nsuwsgi", "--emperor", vassal_dir,
                "--emperor-stats", stats_path]
        ready_line = "[emperor] governing"
    else:
        argv = [UWSGI, "--emperor", vassal_dir]
        ready_line = "*** starting uWSGI Emperor ***"
    proc = procs.start(argv, log_path, STOP_SIGNAL[server])
    emp = Emperor(server, proc, vassal_dir, staging, log_path, stats_path)
    deadline = time.monotonic() + EMPEROR_START_TIMEOUT
    while ready_line not in read_log(log_path):
        emp.alive()
        if time.monotonic() > deadline:
            raise BenchError(f"the {server} Emperor did not start within "
                             f"{EMPEROR_START_TIMEOUT:.0f} s:\n{log_tail(log_path)}")
        time.sleep(0.01)
    time.sleep(0.5)         # its first scan of the (empty) directory
    emp.alive()
    return emp


def vassal_ini(port: int, app: str, greeting: str | None = None, cheap: bool = False) -> str:
    lines = ["[uwsgi]", "plugin = python3", "master = true", "processes = 1",
             f"http-socket = 127.0.0.1:{port}",
             f"wsgi-file = {os.path.join(APPS_DIR, app + '.py')}", "disable-logging = true"]
    if greeting is not None:
        lines.append(f"env = GREETING={greeting}")
    if cheap:
        lines.append("cheap = true")
    return "\n".join(lines) + "\n"


def worrying_lines(text: str, limit: int = 20) -> tuple[int, list[str]]:
    """(count, up to `limit` examples differing in more than numbers) of the log lines that
    may show a problem."""
    examples: dict[str, str] = {}
    count = 0
    for line in text.splitlines():
        if LOG_WORRY.search(line) and "WARNING: you are running uWSGI as root" not in line:
            count += 1
            key = re.sub(r"\d+", "N", line)
            if key not in examples and len(examples) < limit:
                examples[key] = line.strip()
    return count, list(examples.values())


# --------------------------------------------------------------------------- (a) (b) (c)

@dataclass
class RunResult:
    appear_ms: float | None = None
    reload_ms: float | None = None
    failed: int = 0
    stall_ms: float = 0.0
    requests: int = 0
    v1_after_v2: int = 0
    failures: list[str] = field(default_factory=list)
    delete_ms: float | None = None


class ClientLoop(threading.Thread):
    """GET / in a loop, one connection per request, CLIENT_GAP apart: (start, end, ok/what)."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port = port
        self.records: list[tuple[float, float, str]] = []
        self.first_v2: float | None = None
        self.got_v2 = threading.Event()
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            start = time.perf_counter()
            try:
                status, body = http_get(self.port)
                what = body.decode(errors="replace") if status == 200 else f"HTTP {status}"
            except OSError as exc:
                what = f"{type(exc).__name__}: {exc}"
            end = time.perf_counter()
            self.records.append((start, end, what))
            if what == "Hello v2" and self.first_v2 is None:
                self.first_v2 = end
                self.got_v2.set()
            self.halt.wait(CLIENT_GAP)


def measure_lifecycle(emp: Emperor, run_no: int) -> RunResult:
    res = RunResult()
    name = f"greeting-{run_no}.ini"
    port = free_ports(1)[0]
    path = os.path.join(emp.vassal_dir, name)

    # (a) appear -> first 200
    t0 = emp.drop(name, vassal_ini(port, "greeting", "v1"))
    deadline = t0 + VASSAL_TIMEOUT
    while True:
        try:
            status, body = http_get(port)
            if status == 200 and body == b"Hello v1":
                res.appear_ms = (time.perf_counter() - t0) * 1e3
                break
        except OSError:
            pass
        if time.perf_counter() > deadline:
            emp.alive()
            raise BenchError(f"{emp.server}: vassal {name} did not answer within "
                             f"{VASSAL_TIMEOUT:.0f} s:\n{log_tail(emp.log_path)}")
        time.sleep(0.001)

    # (b) rewrite -> first 200 from the reloaded vassal, with a client loop running
    mtime = int(os.stat(path).st_mtime)
    while int(time.time()) <= mtime:        # uWSGI compares whole seconds
        time.sleep(0.01)
    client = ClientLoop(port)
    client.start()
    try:
        time.sleep(RELOAD_LEAD)
        t0 = emp.drop(name, vassal_ini(port, "greeting", "v2"))
        if client.got_v2.wait(VASSAL_TIMEOUT):
            time.sleep(RELOAD_TAIL)
    finally:
        client.halt.set()
        client.join(HTTP_TIMEOUT + 5)
    if client.first_v2 is None:
        emp.alive()
        raise BenchError(f"{emp.server}: vassal {name} never answered 'Hello v2' within "
                         f"{VASSAL_TIMEOUT:.0f} s of its rewrite:\n{log_tail(emp.log_path)}")
    res.reload_ms = (client.first_v2 - t0) * 1e3
    window_end = client.first_v2 + RELOAD_TAIL
    for start, end, what in client.records:
        if end < t0 or start > window_end:
            continue
        res.requests += 1
        res.stall_ms = max(res.stall_ms, (end - start) * 1e3)
        if what not in ("Hello v1", "Hello v2"):
            res.failed += 1
            res.failures.append(f"{(start - t0) * 1e3:+.0f} ms: {what} after "
                                f"{(end - start) * 1e3:.0f} ms")
        elif what == "Hello v1" and start > client.first_v2:
            res.v1_after_v2 += 1

    # (c) unlink -> port refused
    t0 = time.perf_counter()
    os.unlink(path)
    deadline = t0 + VASSAL_TIMEOUT
    while not refuses(port):
        if time.perf_counter() > deadline:
            emp.alive()
            raise BenchError(f"{emp.server}: port {port} still open {VASSAL_TIMEOUT:.0f} s "
                             f"after {name} was deleted:\n{log_tail(emp.log_path)}")
        time.sleep(0.001)
    res.delete_ms = (time.perf_counter() - t0) * 1e3
    emp.alive()
    return res


# --------------------------------------------------------------------------- (d) (e)

async def _get_200(port: int, deadline: float) -> float | None:
    """GET / until a 200; perf_counter() at its end, or None at the deadline."""
    while time.perf_counter() < deadline:
        writer = None
        try:
            left = deadline - time.perf_counter()
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port), max(left, 0.01))
            writer.write(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            left = deadline - time.perf_counter()
            raw = await asyncio.wait_for(reader.read(), max(left, 0.01))
            if parse_response(raw)[0] == 200:
                return time.perf_counter()
        except (OSError, asyncio.TimeoutError):
            pass
        finally:
            if writer is not None:
                writer.close()
        await asyncio.sleep(0.02)
    return None


async def _wait_all(emp: Emperor, ports: list[int], t0: float, timeout: float,
                    http: bool) -> dict[int, float]:
    wanted = set(ports)
    ready: dict[int, float] = {}
    tasks: dict[int, asyncio.Task] = {}
    deadline = t0 + timeout
    try:
        while len(ready) < len(ports):
            now = time.perf_counter()
            if now > deadline:
                break
            emp.alive()
            listening = listening_ports(wanted - ready.keys())
            for p in listening:
                if p in tasks:
                    continue
                if http:
                    tasks[p] = asyncio.create_task(_get_200(p, deadline))
                else:
                    ready[p] = now
            for p, task in list(tasks.items()):
                if task.done():
                    del tasks[p]
                    if task.result() is not None:
                        ready[p] = task.result()
            await asyncio.sleep(SCAN_POLL)
    finally:
        for task in tasks.values():
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks.values(), return_exceptions=True)
    return ready


@dataclass
class ScaleResult:
    server: str
    count: int
    ready: int = 0
    all_s: float | None = None
    first_s: float | None = None
    median_s: float | None = None
    emperor_rss_mb: float = 0.0
    emperor_pss_mb: float = 0.0
    helpers: int = 0
    helpers_rss_mb: float = 0.0
    helpers_pss_mb: float = 0.0
    emperor_cpu_pct: float | None = None
    helpers_cpu_pct: float | None = None
    vassals_cpu_pct: float | None = None
    vassals_found: int = 0
    vassal_procs: int = 0
    pss_per_vassal_mb: float | None = None
    stop_s: float = 0.0
    notes: list[str] = field(default_factory=list)


def measure_scale(procs: Processes, server: str, workdir: str, count: int, cheap: bool,
                  idle_s: float) -> ScaleResult:
    tag = "cheap" if cheap else "scale"
    res = ScaleResult(server, count)
    emp = start_emperor(procs, server, workdir, tag)
    try:
        ports = free_ports(count)
        app = "hello"
        names = []
        for i, port in enumerate(ports):       # written first: the drop is only renames
            name = f"{tag}-{i:04d}.ini"
            with open(os.path.join(emp.staging, name), "w") as f:
                f.write(vassal_ini(port, app, cheap=cheap))
            names.append(name)
        t0 = time.perf_counter()
        for name in names:
            os.rename(os.path.join(emp.staging, name), os.path.join(emp.vassal_dir, name))
        timeout = 60.0 + 0.5 * count
        ready = asyncio.run(_wait_all(emp, ports, t0, timeout, http=not cheap))
        res.ready = len(ready)
        if ready:
            times = sorted(t - t0 for t in ready.values())
            res.first_s = times[0]
            res.median_s = statistics.median(times)
            if len(ready) == count:
                res.all_s = times[-1]
        if len(ready) < count:
            res.notes.append(f"only {len(ready)} of {count} vassals "
                             f"{'bound' if cheap else 'answered'} within {timeout:.0f} s")
            st = emp.stats()
            if st is not None:
                res.notes.append(f"Emperor stats: {summarize_stats(st)}")
            return res
        time.sleep(SETTLE_IDLE)
        emp.alive()
        tree = split_tree(emp.proc.pid, set(ports))
        res.helpers = len(tree.helpers)
        res.vassals_found, res.vassal_procs = tree.vassals_found, len(tree.vassal_pids)
        if not cheap:
            before = (cpu_ns(tree.emperor), sum(cpu_ns(p) for p in tree.helpers),
                      sum(cpu_ns(p) for p in tree.vassal_pids))
            w0 = time.perf_counter()
            time.sleep(idle_s)
            wall = time.perf_counter() - w0
            after = (cpu_ns(tree.emperor), sum(cpu_ns(p) for p in tree.helpers),
                     sum(cpu_ns(p) for p in tree.vassal_pids))
            pct = [(a - b) / 1e9 / wall * 100 for a, b in zip(after, before)]
            res.emperor_cpu_pct, res.helpers_cpu_pct, res.vassals_cpu_pct = pct
        emp.alive()
        res.emperor_rss_mb = rollup_kb(tree.emperor, "Rss") / 1024
        res.emperor_pss_mb = rollup_kb(tree.emperor, "Pss") / 1024
        res.helpers_rss_mb = sum(rollup_kb(p, "Rss") for p in tree.helpers) / 1024
        res.helpers_pss_mb = sum(rollup_kb(p, "Pss") for p in tree.helpers) / 1024
        if tree.vassals_found:
            res.pss_per_vassal_mb = sum(rollup_kb(p, "Pss") for p in tree.vassal_pids) / 1024 \
                / tree.vassals_found
        if tree.vassals_found != count:
            res.notes.append(f"{tree.vassals_found} of {count} ports held by a descendant "
                             f"of the Emperor")
        st = emp.stats()
        if st is not None:
            res.notes.append(f"Emperor stats: {summarize_stats(st)}")
            unready = [v for v in st.get("vassals", []) if not v.get("ready")]
            if unready:
                res.notes.append(f"{len(unready)} of {len(st.get('vassals', []))} vassals are "
                                 f"not 'ready' in the Emperor's stats although every one "
                                 f"{'is bound' if cheap else 'answers HTTP'} (their READY "
                                 f"notification did not reach the Emperor?)")
    finally:
        took, problems = procs.stop(emp.proc,
                                    STOP_TIMEOUT_BASE + STOP_TIMEOUT_PER_VASSAL * count)
        res.stop_s = took
        res.notes += problems
        if server == "nsuwsgi":
            n, lines = worrying_lines(read_log(emp.log_path))
            if n:
                res.notes.append(f"{n} nsuwsgi log line(s) worth a look, e.g.: "
                                 + " || ".join(lines[:8]))
        reap_orphans(procs)
    return res


def summarize_stats(st: dict) -> str:
    if "error" in st:
        return st["error"]
    states: dict[str, int] = {}
    for v in st.get("vassals", []):
        key = f"{v.get('state')}{'/ready' if v.get('ready') else ''}"
        states[key] = states.get(key, 0) + 1
    return (f"governing {st.get('governing')}, {len(st.get('vassals', []))} vassals: "
            + ", ".join(f"{k} {n}" for k, n in sorted(states.items())))


# --------------------------------------------------------------------------- report

def med(values: list[float | None]) -> float | None:
    v = [x for x in values if x is not None]
    return statistics.median(v) if v else None


def fmt(v: float | None, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.3f}" if a / b < 0.1 else f"{a / b:.2f}"


def verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else ("met" if ok else "NOT MET")


def report_runs(results: dict[str, list[RunResult]]) -> dict:
    print("\n## (a) appear, (b) reload, (c) delete: per run, ms")
    print(f"  {'run':>3} {'server':<8} {'(a) appear':>11} {'(b) reload':>11} {'failed':>7} "
          f"{'stall':>7} {'reqs':>5} {'(c) delete':>11}")
    n = max(len(v) for v in results.values())
    for i in range(n):
        for server in SERVERS:
            if i >= len(results[server]):
                continue
            r = results[server][i]
            print(f"  {i + 1:>3} {server:<8} {fmt(r.appear_ms):>11} {fmt(r.reload_ms):>11} "
                  f"{r.failed:>7} {fmt(r.stall_ms):>7} {r.requests:>5} {fmt(r.delete_ms):>11}")
    print(f"\n  {'median':<12} {'(a) appear':>11} {'(b) reload':>11} {'failed(sum)':>12} "
          f"{'stall(max)':>11} {'stall(med)':>11} {'(c) delete':>11}")
    summary = {}
    for server in SERVERS:
        rs = results[server]
        s = {
            "appear": med([r.appear_ms for r in rs]),
            "reload": med([r.reload_ms for r in rs]),
            "failed": sum(r.failed for r in rs),
            "stall_max": max((r.stall_ms for r in rs), default=None),
            "stall_med": med([r.stall_ms for r in rs]),
            "delete": med([r.delete_ms for r in rs]),
        }
        summary[server] = s
        print(f"  {server:<12} {fmt(s['appear']):>11} {fmt(s['reload']):>11} "
              f"{s['failed']:>12} {fmt(s['stall_max']):>11} {fmt(s['stall_med']):>11} "
              f"{fmt(s['delete']):>11}")
    a, b = summary["nsuwsgi"], summary["uWSGI"]
    print(f"  {'nsuwsgi/uWSGI':<12} {ratio(a['appear'], b['appear']):>11} "
          f"{ratio(a['reload'], b['reload']):>11} {'':>12} "
          f"{ratio(a['stall_max'], b['stall_max']):>11} "
          f"{ratio(a['stall_med'], b['stall_med']):>11} {ratio(a['delete'], b['delete']):>11}")
    for server in SERVERS:
        fails = [f for r in results[server] for f in r.failures]
        late = sum(r.v1_after_v2 for r in results[server])
        if fails:
            print(f"  {server} failed requests (time from the rewrite): "
                  + "; ".join(fails[:10]) + (" ..." if len(fails) > 10 else ""))
        if late:
            print(f"  {server}: {late} 'Hello v1' answer(s) to requests sent after the first "
                  f"v2 (the old generation still serving)")
    return summary


def report_scale(title: str, results: dict[str, ScaleResult], cheap: bool) -> None:
    print(f"\n## {title}")
    rows = [
        ("vassals ready", lambda r: f"{r.ready}/{r.count}", None),
        ("first ready (s)", lambda r: fmt(r.first_s, ".2f"), lambda r: r.first_s),
        ("median vassal (s)", lambda r: fmt(r.median_s, ".2f"), lambda r: r.median_s),
        ("all ready (s)", lambda r: fmt(r.all_s, ".2f"), lambda r: r.all_s),
        ("Emperor RSS / PSS (MB)", lambda r: f"{r.emperor_rss_mb:.1f} / {r.emperor_pss_mb:.1f}",
         lambda r: r.emperor_rss_mb),
        ("helpers: n, RSS / PSS (MB)",
         lambda r: f"{r.helpers}, {r.helpers_rss_mb:.1f} / {r.helpers_pss_mb:.1f}", None),
    ]
    if not cheap:
        rows += [
            ("Emperor idle CPU (%)", lambda r: fmt(r.emperor_cpu_pct, ".3f"),
             lambda r: r.emperor_cpu_pct),
            ("helpers idle CPU (%)", lambda r: fmt(r.helpers_cpu_pct, ".3f"), None),
            ("all vassals idle CPU (%)", lambda r: fmt(r.vassals_cpu_pct, ".3f"),
             lambda r: r.vassals_cpu_pct),
        ]
    rows += [
        ("vassal processes / vassals", lambda r: f"{r.vassal_procs} / {r.vassals_found}", None),
        ("PSS per vassal (MB)", lambda r: fmt(r.pss_per_vassal_mb, ".2f"),
         lambda r: r.pss_per_vassal_mb),
        ("Emperor stop (s)", lambda r: fmt(r.stop_s, ".2f"), lambda r: r.stop_s),
    ]
    print(f"  {'':<28} {'nsuwsgi':>14} {'uWSGI':>14} {'nsuwsgi/uWSGI':>14}")
    ns, uw = results.get("nsuwsgi"), results.get("uWSGI")
    for label, show, value in rows:
        a = show(ns) if ns else "-"
        b = show(uw) if uw else "-"
        r = ratio(value(ns), value(uw)) if value and ns and uw else ""
        print(f"  {label:<28} {a:>14} {b:>14} {r:>14}")
    for server, r in results.items():
        for note in r.notes:
            print(f"  {server} note: {note}")


def report_targets(summary: dict, scale: dict[str, ScaleResult] | None,
                   cheap: dict[str, ScaleResult] | None, vassals: int) -> None:
    print("\n## targets (nsuwsgi); nsuwsgi/uWSGI: lower is better")
    ns, uw = summary["nsuwsgi"], summary["uWSGI"]

    def line(what: str, value: str, target: str, ok: bool | None, r: str, ref: str) -> None:
        shown = "-" if target == "(no target)" else verdict(ok)
        print(f"  {what:<38} {value:>10}  {target:<12} {shown:<13} nsuwsgi/uWSGI "
              f"{r:>6}  (uWSGI {ref})")

    def le(v, limit):
        return None if v is None else v <= limit

    line("(a) appear -> first 200, median", f"{fmt(ns['appear'])} ms", "<= 100 ms",
         le(ns["appear"], TARGET_APPEAR_MS), ratio(ns["appear"], uw["appear"]),
         f"{fmt(uw['appear'])} ms")
    line("(b) rewrite -> reloaded 200, median", f"{fmt(ns['reload'])} ms", "<= 300 ms",
         le(ns["reload"], TARGET_RELOAD_MS), ratio(ns["reload"], uw["reload"]),
         f"{fmt(uw['reload'])} ms")
    line("(b) failed requests, all runs", f"{ns['failed']}", "== 0", ns["failed"] == 0, "-",
         f"{uw['failed']}")
    line("(b) longest stall, worst run", f"{fmt(ns['stall_max'])} ms", "<= 100 ms",
         le(ns["stall_max"], TARGET_STALL_MS), ratio(ns["stall_max"], uw["stall_max"]),
         f"{fmt(uw['stall_max'])} ms")
    line("(c) delete -> port refused, median", f"{fmt(ns['delete'])} ms", "<= 50 ms",
         le(ns["delete"], TARGET_DELETE_MS), ratio(ns["delete"], uw["delete"]),
         f"{fmt(uw['delete'])} ms")
    if scale:
        a, b = scale.get("nsuwsgi"), scale.get("uWSGI")

        def g(r, attr):
            return getattr(r, attr) if r is not None else None
        line(f"(d) {vassals} vassals all answering", f"{fmt(g(a, 'all_s'), '.2f')} s", "<= 3 s",
             le(g(a, "all_s"), TARGET_SCALE_S), ratio(g(a, "all_s"), g(b, "all_s")),
             f"{fmt(g(b, 'all_s'), '.2f')} s")
        line("(d) PSS per vassal", f"{fmt(g(a, 'pss_per_vassal_mb'), '.2f')} MB", "<= 5 MB",
             le(g(a, "pss_per_vassal_mb"), TARGET_PSS_MB),
             ratio(g(a, "pss_per_vassal_mb"), g(b, "pss_per_vassal_mb")),
             f"{fmt(g(b, 'pss_per_vassal_mb'), '.2f')} MB")
        cpu_a = None if a is None or a.emperor_cpu_pct is None else \
            a.emperor_cpu_pct + (a.helpers_cpu_pct or 0.0)
        cpu_b = None if b is None or b.emperor_cpu_pct is None else \
            b.emperor_cpu_pct + (b.helpers_cpu_pct or 0.0)
        line("(d) Emperor (+ helpers) idle CPU", f"{fmt(cpu_a, '.3f')} %", "< 0.1 %",
             None if cpu_a is None else cpu_a < TARGET_IDLE_CPU_PCT, ratio(cpu_a, cpu_b),
             f"{fmt(cpu_b, '.3f')} %")
    if cheap:
        a, b = cheap.get("nsuwsgi"), cheap.get("uWSGI")
        n = (a or b).count
        line(f"(e) {n} cheap vassals all bound", f"{fmt(a.all_s if a else None, '.2f')} s",
             "(no target)", None, ratio(a.all_s if a else None, b.all_s if b else None),
             f"{fmt(b.all_s if b else None, '.2f')} s")
        pa = a.pss_per_vassal_mb if a else None
        pb = b.pss_per_vassal_mb if b else None
        line("(e) PSS per cheap vassal", f"{fmt(pa, '.2f')} MB", "(no target)", None,
             ratio(pa, pb), f"{fmt(pb, '.2f')} MB")


# --------------------------------------------------------------------------- setup

def looks_like_mid_edit(text: str) -> bool:
    return "/nsuwsgi/" in text and \
        any(e in text for e in ("ImportError", "ModuleNotFoundError", "SyntaxError",
                                "AttributeError", "NameError"))


def wait_importable() -> str:
    """nsuwsgi's version once the Emperor's modules import (someone may be mid-edit)."""
    check = ("import nsuwsgi, nsuwsgi.cli, nsuwsgi.instance, nsuwsgi.master, "
             "nsuwsgi.emperor.emperor; print('nsuwsgi', nsuwsgi.__version__)")
    deadline = time.monotonic() + IMPORT_RETRY_FOR
    while True:
        out = subprocess.run([VENV_PYTHON, "-c", check], cwd=ROOT, capture_output=True,
                             text=True, timeout=60)
        text = (out.stdout + out.stderr).strip()
        if out.returncode == 0:
            return text
        if not looks_like_mid_edit(text) or time.monotonic() + IMPORT_RETRY_EVERY > deadline:
            raise BenchError(f"nsuwsgi does not import:\n{text[-2000:]}")
        print(f"# nsuwsgi does not import (someone mid-edit?): {text.splitlines()[-1][:200]}; "
              f"retrying in {IMPORT_RETRY_EVERY:.0f} s", flush=True)
        time.sleep(IMPORT_RETRY_EVERY)


def preflight() -> None:
    check_uwsgi()
    for app in ("hello", "greeting"):
        if not os.path.exists(os.path.join(APPS_DIR, app + ".py")):
            raise BenchError(f"missing bench/apps/{app}.py")


# --------------------------------------------------------------------------- main

def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5,
                        help="runs of (a)-(c) per Emperor; medians are printed (default 5)")
    parser.add_argument("--vassals", type=int, default=200,
                        help="vassals dropped at once for (d) (default 200)")
    parser.add_argument("--skip-scale", action="store_true", help="no (d) part")
    parser.add_argument("--cheap", type=int, default=0, metavar="N",
                        help="(e): N cheap vassals at once (default 0: skipped; heavy)")
    parser.add_argument("--idle", type=float, default=10.0,
                        help="seconds of idle CPU measured in (d) (default 10)")
    args = parser.parse_args(argv)
    if not 1 <= args.runs <= 100:
        parser.error("--runs must be 1..100")
    if not 1 <= args.vassals <= 5000 or not 0 <= args.cheap <= 5000:
        parser.error("--vassals must be 1..5000 and --cheap 0..5000")
    if not 1 <= args.idle <= 600:
        parser.error("--idle must be 1..600 s")
    return args


def run(args, procs: Processes) -> None:
    preflight()
    subreaper = set_subreaper()
    ns_version = wait_importable()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    print("# emperor  : nsuwsgi's Emperor vs uWSGI's, one run")
    print(f"# machine  : {machine()}, RLIMIT_NOFILE {soft}/{hard}, "
          f"{psutil.virtual_memory().available / 2**30:.1f} GiB available")
    print(f"# nsuwsgi  : {ns_version}: {VENV_PYTHON} -m nsuwsgi --emperor DIR --emperor-stats "
          f"SOCK (-> {os.path.realpath(VENV_PYTHON)}); stopped with SIGTERM")
    print(f"# uWSGI    : {UWSGI} {tool_version([UWSGI, '--version'], line=-1)} --emperor DIR, its "
          f"defaults (directory scanned every 3 s); stopped with SIGINT")
    print("# vassals  : the same .ini for both: plugin = python3, master = true, processes = 1,"
          " http-socket = 127.0.0.1:PORT, wsgi-file, disable-logging = true")
    print("#            (a)-(c): bench/apps/greeting.py with env = GREETING=v1 -> v2; "
          "(d), (e): bench/apps/hello.py (+ cheap = true for (e))")
    print(f"# method   : files written to a staging dir, renamed in (atomic); (a) GET / every "
          f"1 ms; (b) client loop GET / every {CLIENT_GAP * 1e3:.0f} ms, window = rewrite .. "
          f"first v2 + {RELOAD_TAIL:g} s; (c) connect every 1 ms until refused")
    print(f"#            (d) /proc/net/tcp every {SCAN_POLL * 1e3:.0f} ms, one GET per "
          f"listening port; idle CPU from schedstat over {args.idle:g} s after "
          f"{SETTLE_IDLE:g} s settle; PSS from smaps_rollup")
    print(f"# runs     : {args.runs} of (a)-(c) per Emperor, both Emperors up side by side, "
          f"order alternating; scale: once per Emperor, each alone, nsuwsgi first")
    print(f"# processes: bench is a child subreaper: {'yes' if subreaper else 'NO (prctl failed)'};"
          f" ports 127.0.0.1, kernel-chosen (bind port 0)", flush=True)

    workdir = tempfile.mkdtemp(prefix=DIR_PREFIX, dir="/tmp")
    started = time.monotonic()
    try:
        # ---- (a) (b) (c)
        print("\n## runs, as they are measured", flush=True)
        emperors = {s: start_emperor(procs, s, workdir, "lifecycle") for s in SERVERS}
        log_marks = {s: len(read_log(e.log_path).encode()) for s, e in emperors.items()}
        results: dict[str, list[RunResult]] = {s: [] for s in SERVERS}
        for i in range(args.runs):
            order = SERVERS if i % 2 == 0 else SERVERS[::-1]
            for server in order:
                r = measure_lifecycle(emperors[server], i + 1)
                results[server].append(r)
                print(f"  run {i + 1} {server:<8} (a) {r.appear_ms:8.1f} ms  (b) "
                      f"{r.reload_ms:8.1f} ms, {r.failed} failed of {r.requests}, stall "
                      f"{r.stall_ms:7.1f} ms  (c) {r.delete_ms:8.1f} ms", flush=True)
        lifecycle_notes = []
        for server, emp in emperors.items():
            took, problems = procs.stop(emp.proc, STOP_TIMEOUT_BASE)
            lifecycle_notes += [f"{server}: {p}" for p in problems]
            if server == "nsuwsgi":
                n, lines = worrying_lines(read_log(emp.log_path, log_marks[server]))
                if n:
                    lifecycle_notes.append(f"nsuwsgi log: {n} line(s) worth a look: "
                                           + " || ".join(lines[:10]))
        summary = report_runs(results)
        for note in lifecycle_notes:
            print(f"  note: {note}")

        # ---- (d)
        scale = None
        if not args.skip_scale:
            print(f"\n## (d) {args.vassals} vassals, as they are measured", flush=True)
            scale = {}
            for server in SERVERS:
                r = measure_scale(procs, server, workdir, args.vassals, False, args.idle)
                scale[server] = r
                print(f"  {server:<8} {r.ready}/{r.count} answering, all in "
                      f"{fmt(r.all_s, '.2f')} s; Emperor idle CPU "
                      f"{fmt(r.emperor_cpu_pct, '.3f')} %; PSS per vassal "
                      f"{fmt(r.pss_per_vassal_mb, '.2f')} MB; load average {loadavg()}",
                      flush=True)
            report_scale(f"(d) {args.vassals} vassals (master + 1 worker each) dropped at "
                         f"once", scale, cheap=False)

        # ---- (e)
        cheap = None
        if args.cheap:
            print(f"\n## (e) {args.cheap} cheap vassals, as they are measured", flush=True)
            cheap = {}
            for server in SERVERS:
                r = measure_scale(procs, server, workdir, args.cheap, True, args.idle)
                cheap[server] = r
                print(f"  {server:<8} {r.ready}/{r.count} bound, all in "
                      f"{fmt(r.all_s, '.2f')} s; PSS per vassal "
                      f"{fmt(r.pss_per_vassal_mb, '.2f')} MB; load average {loadavg()}",
                      flush=True)
            report_scale(f"(e) {args.cheap} cheap vassals (master only) dropped at once",
                         cheap, cheap=True)

        report_targets(summary, scale, cheap, args.vassals)
        print_ran(started)
    finally:
        clean_up(procs, workdir, "Emperor")


def main(argv=None) -> int:
    return bench_main("emperor", run, parse_args(argv), Processes())


if __name__ == "__main__":
    raise SystemExit(main())
