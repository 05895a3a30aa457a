#!/usr/bin/env python3
"""Benchmark: HTTP throughput, latency, idle worker memory and cold start of nsuwsgi's prefork
WSGI server, against Debian's uWSGI and gunicorn (sync workers), all measured in ONE run.

Servers (each started fresh, in its own process group, cwd = the repository):

  nsuwsgi    .venv/bin/python -m nsuwsgi --http-socket ADDR --wsgi-file APP --processes N
             --disable-logging                                         (stopped with SIGTERM)
  uWSGI      uwsgi-core --plugin python3 --http-socket ADDR --master --processes N
             --disable-logging --wsgi-file APP       (SIGINT: uWSGI takes SIGTERM as a reload)
  uWSGI-ka   the same with --http11-socket instead of --http-socket: uWSGI's keep-alive mode.
             Informational only. uWSGI's --http-socket (the reference for the targets) closes
             the connection after every response, without `Connection: close`, so wrk
             reconnects for every request and counts each close as a socket "read" error;
             gunicorn's sync worker also closes after every response (it says so, no error).
             nsuwsgi keeps connections alive. uWSGI-ka shows what uWSGI does with keep-alive.
  gunicorn   .venv/bin/gunicorn -w N -k sync --bind ADDR --chdir bench/apps MODULE:application
             (no access log; --no-control-socket when this gunicorn has it; SIGTERM)

Apps (bench/apps/, the same files for every server):

  hello      returns b"Hello World" (with a Content-Length)
  cpu1ms     a pure-Python busy loop of ~1 ms of CPU per request. The loop count is calibrated
             once at the start, in this process, on the venv's interpreter, and handed to every
             server in BENCH_SPIN_ITERATIONS. Each server's answer is checked against the value
             the loop must produce, and /spin-time reports how long the loop takes inside the
             server (uWSGI embeds libpython3.11.so; the venv runs /usr/bin/python3.11).

Matrix: app x processes (1, 2) x connections (16, 64); wrk -t1 for 16 connections and -t2 for
64, --latency, a 1 s warm-up then a 5 s measured run per cell. The four servers of an
(app, processes) pair run side by side (an idle one sleeps in epoll) and each cell is measured
for every server in turn, the order rotating, so that the figures compared in a ratio were taken
seconds apart: this machine is shared, and other people's work comes and goes. Printed per
cell: req/s, p50 and p99 latency, non-2xx responses, socket errors (connect/read/write/
timeout), the CPU time the server's processes (master + workers) used per request during the
measured run, and how many CPUs other work on the machine used meanwhile (/proc/stat busy time
minus the server's, wrk's and the bench's own; plus the hypervisor's steal). Then ratios
nsuwsgi/uWSGI and nsuwsgi/gunicorn. At the start the bench also times the calibrated loop 20
times over 2 s on the idle machine and prints the spread: on a shared VM the vCPU's speed moves
from one fraction of a second to the next without any steal showing, and that spread is the
noise to expect on any single figure.

Idle memory: afterwards each server of the pair is started again, alone (PSS divides shared
pages among all the processes that map them, so a neighbour would lower it), serves 1 s of
wrk -c16, is left idle 1 s, and the PSS (and USS) of each of its workers (the master's
children, for every server) is read with psutil's memory_full_info(); the master's too.

Cold start: time from the Popen call to the first HTTP 200 for GET /, for uWSGI, a plain
nsuwsgi and a jailed one (`--namespace ROOTFS:bench` on a rootfs built by `nsuwsgi rootfs
--usr-from-host`, with /usr and the repository's top directory (/work, created in the
rootfs as its mount point) kept read-only, so the venv and the app are visible). The bench
tries to connect every 1 ms; once connected it sends the request and reads the answer
(anything but a 200 is retried). One unrecorded start each, then --starts recorded starts,
round-robin; medians reported. Also the floors: `python -c pass` and `python -m nsuwsgi
--version` (interpreter start plus nsuwsgi's imports).

Ports: TCP on 127.0.0.1 (wrk speaks no unix sockets). Each server gets a port the kernel chose:
the bench binds a socket to port 0, reads the port, closes the socket and passes the number on.
Another program could take the port in between; in a bench that is an acceptable risk.

This is a benchmark, not a test: it prints figures and never asserts. Exit 0 when it ran,
1 when it could not run (a missing program, a server that would not start).

    .venv/bin/python bench/http_throughput.py [--duration 5] [--warmup 1] [--starts 10]
                                              [--skip-matrix] [--skip-cold]
                                              [--memory-only]
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import psutil

from common import (ROOT, UWSGI, UWSGI_PLUGIN, VENV_NSUWSGI, VENV_PYTHON, BenchError, Processes,
                    bench_main, check_uwsgi, clean_up, free_ports, log_tail, machine,
                    print_ran, tool_version)

APPS_DIR = os.path.join(ROOT, "bench", "apps")
GUNICORN = os.path.join(ROOT, ".venv", "bin", "gunicorn")
WRK = shutil.which("wrk") or "/usr/bin/wrk"
DIR_PREFIX = "nsuwsgi-bench-http-"

APPS = ("hello", "cpu1ms")
PROCESSES = (1, 2)
CONNECTIONS = (16, 64)
SERVERS = ("nsuwsgi", "uWSGI", "uWSGI-ka", "gunicorn")
STOP_SIGNAL = {"nsuwsgi": signal.SIGTERM, "uWSGI": signal.SIGINT, "uWSGI-ka": signal.SIGINT,
               "gunicorn": signal.SIGTERM}
TARGET_THROUGHPUT_UWSGI = 1.0
TARGET_THROUGHPUT_GUNICORN = 2.5
TARGET_COLD_START = 1.5
SPIN_TARGET_S = 0.001

READY_TIMEOUT = 30.0        # a server must answer 200 within this after Popen
COLD_TIMEOUT = 20.0         # one cold start must reach its first 200 within this
HTTP_TIMEOUT = 10.0         # one plain GET
IDLE_BEFORE_PSS = 1.0
SETTLE_S = 0.2              # between a cell's warm-up and its speed probe + measured run
MEMORY_LOAD_S = 1           # the memory instance serves this long before it is left idle
MAX_DURATION = 600          # bounds for the flags, whatever they say
MAX_STARTS = 200


def stop(procs: Processes, proc) -> None:
    for problem in procs.stop(proc)[1]:
        print(f"# warning: {problem}", file=sys.stderr)


def http_get(port: int, path: str = "/", timeout: float = HTTP_TIMEOUT) -> tuple[int, bytes]:
    """One HTTP/1.0 GET (the server closes afterwards); (status, body). OSError if refused."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" % path.encode())
        return _read_response(s)


def _read_response(s: socket.socket) -> tuple[int, bytes]:
    chunks = []
    for _ in range(10_000):                 # bounded: the answers are tiny
        data = s.recv(65536)
        if not data:
            break
        chunks.append(data)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    return (int(m[1]) if m else 0), body


# --------------------------------------------------------------------------- servers

@dataclass
class Setup:
    workdir: str
    spin_iterations: int
    gunicorn_extra: list[str]
    env: dict


def server_argv(name: str, app: str, processes: int, port: int, setup: Setup) -> list[str]:
    addr = f"127.0.0.1:{port}"
    app_file = os.path.join(APPS_DIR, f"{app}.py")
    if name == "nsuwsgi":
        return [VENV_PYTHON, "-m", "nsuwsgi", "--http-socket", addr, "--wsgi-file", app_file,
                "--processes", str(processes), "--disable-logging"]
    if name in ("uWSGI", "uWSGI-ka"):
        socket_opt = "--http-socket" if name == "uWSGI" else "--http11-socket"
        return [UWSGI, "--plugin", "python3", socket_opt, addr, "--master", "--processes",
                str(processes), "--disable-logging", "--wsgi-file", app_file]
    if name == "gunicorn":
        return [GUNICORN, "-w", str(processes), "-k", "sync", "--bind", addr, "--chdir",
                APPS_DIR, *setup.gunicorn_extra, f"{app}:application"]
    raise ValueError(name)


def wait_ready(proc: subprocess.Popen, port: int, log_path: str, what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with {proc.returncode} before answering:\n"
                             f"{log_tail(log_path)}")
        try:
            status, _ = http_get(port, timeout=2.0)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.005)
    raise BenchError(f"{what} did not answer 200 within {READY_TIMEOUT:.0f} s:\n"
                     f"{log_tail(log_path)}")


def wait_workers(master: psutil.Process, processes: int) -> list[psutil.Process]:
    """The master's children, once there are `processes` of them (workers start one by one:
    the first 200 can come before the last worker is up)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        workers = master.children()
        if len(workers) >= processes or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    if len(workers) != processes:
        print(f"# note: pid {master.pid} has {len(workers)} child processes for --processes "
              f"{processes}: {[w.pid for w in workers]}")
    return workers


def check_answer(name: str, app: str, port: int, setup: Setup) -> None:
    status, body = http_get(port)
    expected = b"Hello World" if app == "hello" else b"%d\n" % spin(setup.spin_iterations)
    if status != 200 or body != expected:
        raise BenchError(f"{name} answered {status} {body[:80]!r} for the {app} app, "
                         f"expected 200 {expected!r}")


# --------------------------------------------------------------------------- wrk

@dataclass
class Cell:
    rps: float = 0.0
    requests: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    non2xx: int = 0
    errors: tuple[int, int, int, int] = (0, 0, 0, 0)    # connect, read, write, timeout
    cpu_us_per_req: float = 0.0
    other_cpus: float = 0.0     # CPUs busy outside the server, wrk and the bench (others' work)
    steal_cpus: float = 0.0     # CPUs stolen by the hypervisor


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise BenchError(f"cannot read the latency {text!r} in wrk's output")
    return float(m[1]) * _UNITS[m[2]]


def run_wrk(port: int, connections: int, seconds: float) -> Cell:
    threads = 1 if connections <= 16 else 2
    argv = [WRK, f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency",
            f"http://127.0.0.1:{port}/"]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk did not finish within {seconds + 30:.0f} s") from None
    if out.returncode != 0:
        raise BenchError(f"wrk failed ({out.returncode}): {out.stderr.strip()}")
    text = out.stdout
    cell = Cell()
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not m:
        raise BenchError(f"cannot read wrk's output:\n{text}")
    cell.rps = float(m[1])
    m = re.search(r"(\d+) requests in", text)
    cell.requests = int(m[1]) if m else 0
    for pct, attr in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", text, re.M)
        setattr(cell, attr, _ms(m[1]) if m else float("nan"))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    cell.non2xx = int(m[1]) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    cell.errors = tuple(int(x) for x in m.groups()) if m else (0, 0, 0, 0)
    return cell


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


# --------------------------------------------------------------------------- the matrix

@dataclass
class Instance:
    """One (server, app, processes): its cells, idle memory and the loop's speed inside it."""
    cells: dict[int, Cell] = field(default_factory=dict)      # by connections
    worker_mem: list[tuple[float, float, float]] = field(default_factory=list)  # PSS/USS/RSS MB
    master_mem: tuple[float, float, float] = (0.0, 0.0, 0.0)
    spin_us: float | None = None


@dataclass
class Running:
    name: str
    port: int
    proc: subprocess.Popen
    log_path: str
    everyone: list[psutil.Process]              # master + workers


def launch(procs: Processes, name: str, app: str, processes: int, setup: Setup,
           tag: str) -> Running:
    port = free_ports(1)[0]
    log_path = os.path.join(setup.workdir, f"{name}-{app}-{processes}-{tag}.log")
    proc = procs.start(server_argv(name, app, processes, port, setup), log_path,
                       STOP_SIGNAL[name], env=setup.env)
    wait_ready(proc, port, log_path, f"{name} ({app}, {processes} processes)")
    check_answer(name, app, port, setup)
    master = psutil.Process(proc.pid)
    return Running(name, port, proc, log_path, [master] + wait_workers(master, processes))


def still_up(r: Running) -> None:
    if r.proc.poll() is not None:
        raise BenchError(f"{r.name} exited during the run:\n{log_tail(r.log_path)}")


class Machine:
    """CPU time of the whole machine, to show how much the bench's own processes got."""

    TICK = os.sysconf("SC_CLK_TCK")

    @staticmethod
    def sample() -> tuple[float, float, float]:
        """(busy CPU-seconds of the machine, steal, CPU-seconds of the bench + its reaped
        children such as wrk)."""
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
        busy = (v[0] + v[1] + v[2] + v[5] + v[6]) / Machine.TICK
        own = os.times()
        return busy, v[7] / Machine.TICK, own.user + own.system + own.children_user \
            + own.children_system


def speed_probe(iterations: int) -> float:
    """ms of thread CPU for the calibrated loop, best of 3."""
    best = None
    for _ in range(3):
        t0 = time.thread_time_ns()
        spin(iterations)
        took = time.thread_time_ns() - t0
        best = took if best is None or took < best else best
    return best / 1e6


def measure_cell(r: Running, conns: int, args) -> Cell:
    run_wrk(r.port, conns, args.warmup)                       # warm-up, not recorded
    time.sleep(SETTLE_S)        # the server finishes what the warm-up left queued
    cpu_before = cpu_seconds(r.everyone)
    m_before = Machine.sample()
    cell = run_wrk(r.port, conns, args.duration)
    m_after = Machine.sample()
    server = cpu_seconds(r.everyone) - cpu_before
    cell.cpu_us_per_req = server / cell.requests * 1e6 if cell.requests else 0.0
    busy, steal, own = (a - b for a, b in zip(m_after, m_before))
    cell.other_cpus = max(0.0, busy - server - own) / args.duration
    cell.steal_cpus = steal / args.duration
    still_up(r)
    return cell


def memory_of(p: psutil.Process) -> tuple[float, float, float]:
    info = p.memory_full_info()
    return info.pss / 2**20, info.uss / 2**20, info.rss / 2**20


def run_group(procs: Processes, app: str, processes: int, order: list[str], setup: Setup,
              args, results: dict) -> None:
    """Throughput: the group's servers run side by side (idle ones sleep in their accept
    loop), and every cell is measured for each server in turn, so the servers' cells of one
    connection count lie within seconds of each other. Memory: then each server alone."""
    running: list[Running] = []
    for name in order:
        results[(name, app, processes)] = Instance()
    try:
        for name in order if not args.memory_only else ():
            running.append(launch(procs, name, app, processes, setup, "throughput"))
        for r in running:
            if app == "cpu1ms":
                status, body = http_get(r.port, "/spin-time")
                results[(r.name, app, processes)].spin_us = \
                    float(body) if status == 200 else None
        for k, conns in enumerate(CONNECTIONS):
            for r in running[k:] + running[:k]:
                cell = measure_cell(r, conns, args)
                results[(r.name, app, processes)].cells[conns] = cell
                print_cell(r.name, app, processes, conns, cell)
    finally:
        for r in running:
            stop(procs, r.proc)
    for name in order:
        r = launch(procs, name, app, processes, setup, "memory")
        try:
            run_wrk(r.port, CONNECTIONS[0], MEMORY_LOAD_S)
            time.sleep(IDLE_BEFORE_PSS)
            still_up(r)
            master = r.everyone[0]
            inst = results[(name, app, processes)]
            inst.worker_mem = [memory_of(w) for w in master.children()]
            inst.master_mem = memory_of(master)
        finally:
            stop(procs, r.proc)


def print_cell(name: str, app: str, processes: int, conns: int, cell: Cell) -> None:
    c, r, w, t = cell.errors
    print(f"  {app:<7} p={processes} c={conns:<3} {name:<9} {cell.rps:>7.0f} req/s  "
          f"p50 {cell.p50_ms:6.2f} ms  p99 {cell.p99_ms:7.2f} ms  non-2xx {cell.non2xx} "
          f"sock err {c}/{r}/{w}/{t}  server CPU {cell.cpu_us_per_req:4.0f} us/req  "
          f"others {cell.other_cpus:.2f} CPU, steal {cell.steal_cpus:.2f}", flush=True)


def run_matrix(procs: Processes, setup: Setup, args, servers: list[str]):
    results: dict[tuple[str, str, int], Instance] = {}
    group = 0
    for app in APPS:
        for processes in PROCESSES:
            order = servers[group % len(servers):] + servers[:group % len(servers)]
            group += 1
            run_group(procs, app, processes, order, setup, args, results)
    return results


# --------------------------------------------------------------------------- cold start

@dataclass
class ColdVariant:
    name: str
    argv_for: object            # port -> argv
    stop_signal: int
    connect_s: list[float] = field(default_factory=list)
    first_200_s: list[float] = field(default_factory=list)


def cold_start_once(procs: Processes, variant: ColdVariant, setup: Setup,
                    log_path: str) -> tuple[float, float]:
    port = free_ports(1)[0]
    argv = variant.argv_for(port)
    t0 = time.perf_counter()
    proc = procs.start(argv, log_path, variant.stop_signal, env=setup.env)
    connected_at = None
    try:
        deadline = t0 + COLD_TIMEOUT
        while True:
            now = time.perf_counter()
            if now > deadline:
                raise BenchError(f"{variant.name}: no 200 within {COLD_TIMEOUT:.0f} s:\n"
                                 f"{log_tail(log_path)}")
            if proc.poll() is not None:
                raise BenchError(f"{variant.name} exited with {proc.returncode}:\n"
                                 f"{log_tail(log_path)}")
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.settimeout(HTTP_TIMEOUT)
                s.connect(("127.0.0.1", port))
                if connected_at is None:
                    connected_at = time.perf_counter() - t0
                s.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                status, _ = _read_response(s)
                if status == 200:
                    return connected_at, time.perf_counter() - t0
            except OSError:
                pass
            finally:
                s.close()
            time.sleep(0.001)
    finally:
        stop(procs, proc)


def interpreter_floor(argv: list[str], runs: int, env: dict) -> float:
    samples = []
    for _ in range(runs + 1):
        t0 = time.perf_counter()
        r = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=30)
        samples.append(time.perf_counter() - t0)
        if r.returncode != 0:
            raise BenchError(f"{' '.join(argv)} exited {r.returncode}")
    return statistics.median(samples[1:])


def build_rootfs(setup: Setup) -> tuple[str, list[str]]:
    rootfs = os.path.join(setup.workdir, "rootfs")
    r = subprocess.run([VENV_PYTHON, "-m", "nsuwsgi", "rootfs", rootfs, "--usr-from-host"],
                       cwd=ROOT, env=setup.env, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise BenchError(f"nsuwsgi rootfs failed: {(r.stderr or r.stdout).strip()}")
    keep = ["--namespace-keep-mount", "/usr:/usr:ro"]
    top = "/" + ROOT.strip("/").split("/")[0]            # /work: the venv and the apps
    if top not in ("/usr", "/tmp"):
        os.makedirs(rootfs + top, exist_ok=True)
        keep += ["--namespace-keep-mount", f"{top}:{top}:ro"]
    return rootfs, keep


def run_cold_starts(procs: Processes, setup: Setup, args) -> tuple[list[ColdVariant], dict]:
    hello = os.path.join(APPS_DIR, "hello.py")

    def nsuwsgi_argv(port: int) -> list[str]:
        # The console script, as users and the systemd units start it (`python -m` would add
        # runpy and importlib.util, ~5 ms, that no deployment pays).
        return [VENV_NSUWSGI, "--http-socket", f"127.0.0.1:{port}",
                "--wsgi-file", hello, "--processes", "1", "--disable-logging"]

    variants = [
        ColdVariant("uWSGI", lambda port: [UWSGI, "--plugin", "python3", "--http-socket",
                                           f"127.0.0.1:{port}", "--master", "--processes",
                                           "1", "--disable-logging", "--wsgi-file", hello],
                    signal.SIGINT),
        ColdVariant("nsuwsgi", nsuwsgi_argv, signal.SIGTERM),
    ]
    notes = {}
    if os.geteuid() == 0:
        t = time.perf_counter()
        rootfs, keep = build_rootfs(setup)
        notes["rootfs"] = (f"{rootfs} (nsuwsgi rootfs --usr-from-host, "
                           f"{time.perf_counter() - t:.2f} s); "
                           f"{' '.join(keep)}")
        variants.append(ColdVariant(
            "nsuwsgi-ns",
            lambda port: nsuwsgi_argv(port) + ["--namespace", f"{rootfs}:bench", *keep],
            signal.SIGTERM))
        # The same jail done by uWSGI itself (its master is PID 1 of the namespace; no keeper,
        # no init): the like-for-like reference, printed for information.
        uwsgi_keep = [word.replace(":ro", "") for word in keep]
        variants.append(ColdVariant(
            "uWSGI-ns",
            lambda port: [UWSGI, "--plugin", "python3", "--http-socket", f"127.0.0.1:{port}",
                          "--master", "--processes", "1", "--disable-logging", "--wsgi-file",
                          hello, "--namespace", f"{rootfs}:bench", *uwsgi_keep],
            signal.SIGKILL))        # its outer process ignores SIGINT; the family is killed
    else:
        notes["rootfs"] = "not root: the namespace variant is skipped"
    log_path = os.path.join(setup.workdir, "cold.log")
    for round_no in range(args.starts + 1):
        for k in range(len(variants)):
            v = variants[(round_no + k) % len(variants)]
            connect_s, first_s = cold_start_once(procs, v, setup, log_path)
            if round_no > 0:                # round 0: unrecorded (page cache, pyc)
                v.connect_s.append(connect_s)
                v.first_200_s.append(first_s)
    floors = {
        "python -c pass": interpreter_floor([VENV_PYTHON, "-c", "pass"], args.starts,
                                            setup.env),
        "python -m nsuwsgi --version": interpreter_floor(
            [VENV_PYTHON, "-m", "nsuwsgi", "--version"], args.starts, setup.env),
        "nsuwsgi --version": interpreter_floor(
            [VENV_NSUWSGI, "--version"], args.starts, setup.env),
    }
    return variants, {"notes": notes, "floors": floors}


# --------------------------------------------------------------------------- setup

def spin(n: int) -> int:
    return _cpu_app().spin(n)


_CPU_APP = None


def _cpu_app():
    global _CPU_APP
    if _CPU_APP is None:
        spec = importlib.util.spec_from_file_location("bench_cpu1ms",
                                                      os.path.join(APPS_DIR, "cpu1ms.py"))
        _CPU_APP = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(_CPU_APP)
    return _CPU_APP


def calibrate() -> tuple[int, float]:
    """Loop count for ~1 ms of thread CPU time in spin(); and the check's measured ms."""
    def best(n: int, runs: int) -> float:
        times = []
        for _ in range(runs):
            t0 = time.thread_time_ns()
            spin(n)
            times.append(time.thread_time_ns() - t0)
        return min(times) / 1e9
    probe = 100_000
    best(probe, 3)                                  # warm
    samples = []
    for _ in range(10):         # the vCPU's speed moves: its typical speed over ~0.6 s
        samples.append(best(probe, 2))
        time.sleep(0.05)
    n = max(1, round(probe * SPIN_TARGET_S / statistics.median(samples)))
    return n, best(n, 50) * 1e3


def speed_spread(iterations: int) -> list[float]:
    """The calibrated loop, 20 times over ~2 s (ms): how much the vCPU's speed moves."""
    out = []
    for _ in range(20):
        out.append(speed_probe(iterations))
        time.sleep(0.1)
    return out


def pyc_staleness() -> tuple[int, int]:
    """(nsuwsgi modules without an up-to-date .pyc, all nsuwsgi modules)."""
    stale = total = 0
    for path in glob.glob(os.path.join(ROOT, "nsuwsgi", "**", "*.py"), recursive=True):
        total += 1
        cached = importlib.util.cache_from_source(path)
        try:
            with open(cached, "rb") as f:
                header = f.read(16)
            st = os.stat(path)
            flags = int.from_bytes(header[4:8], "little")
            ok = (flags == 0 and int.from_bytes(header[8:12], "little") ==
                  (int(st.st_mtime) & 0xFFFFFFFF)
                  and int.from_bytes(header[12:16], "little") == (st.st_size & 0xFFFFFFFF))
        except OSError:
            ok = False
        stale += not ok
    return stale, total


def preflight() -> list[str]:
    check_uwsgi()
    if not os.access(WRK, os.X_OK):
        raise BenchError(f"missing wrk (apt-get install wrk): {WRK}")
    extra = []
    if os.access(GUNICORN, os.X_OK):
        help_text = subprocess.run([GUNICORN, "--help"], capture_output=True, text=True,
                                   timeout=30).stdout
        if "--no-control-socket" in help_text:
            extra.append("--no-control-socket")     # gunicorn >= 25 opens one under ~
    return extra


# --------------------------------------------------------------------------- report

def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def report(results: dict, servers: list[str], cold: tuple | None, calib: tuple) -> None:
    print("\n## throughput (req/s), p50/p99 latency (ms), server CPU per request (us); "
          "'bg': most CPUs others used during the row's cells")
    header = f"  {'app':<7} {'p':>1} {'c':>3}"
    for name in servers:
        header += f" | {name:>9} {'p50':>6} {'p99':>6} {'cpu':>5}"
    header += " | ns/uWSGI ns/guni ns/uWSGI-ka |  bg"
    print(header)
    for app in APPS:
        for processes in PROCESSES:
            for conns in CONNECTIONS:
                line = f"  {app:<7} {processes:>1} {conns:>3}"
                rps = {}
                bg = 0.0
                for name in servers:
                    cell = results[(name, app, processes)].cells[conns]
                    rps[name] = cell.rps
                    bg = max(bg, cell.other_cpus + cell.steal_cpus)

                    line += (f" | {cell.rps:>9.0f} {cell.p50_ms:>6.2f} {cell.p99_ms:>6.2f} "
                             f"{cell.cpu_us_per_req:>5.0f}")
                line += (f" | {ratio(rps['nsuwsgi'], rps['uWSGI']):>8.2f} "
                         f"{ratio(rps['nsuwsgi'], rps.get('gunicorn', 0)):>7.2f} "
                         f"{ratio(rps['nsuwsgi'], rps['uWSGI-ka']):>11.2f} | {bg:.2f}")
                print(line)

    print("\n## errors reported by wrk (non-2xx; socket errors connect/read/write/timeout)")
    for name in servers:
        parts = []
        for app in APPS:
            for processes in PROCESSES:
                for conns in CONNECTIONS:
                    cell = results[(name, app, processes)].cells[conns]
                    c, r, w, t = cell.errors
                    if cell.non2xx or c or r or w or t:
                        parts.append(f"{app}/p{processes}/c{conns}: non-2xx {cell.non2xx}, "
                                     f"{c}/{r}/{w}/{t} ({r / max(cell.requests, 1):.2f} "
                                     f"read errors per request)")
        print(f"  {name:<9} " + ("; ".join(parts) if parts else "none"))
    print("  (uWSGI --http-socket closes every connection after its response without "
          "`Connection: close`: wrk counts ~1 read error per request; not failed requests)")
    print("  (uWSGI-ka: a sync worker keeps serving one keep-alive connection until it closes;"
          " the other connections wait unserved,\n   so its latencies are those of the few "
          "connections it serves, and wrk records nothing for the starved ones)")

    report_memory(results, servers)

    print(f"\n## the 1 ms loop inside each server (min of 20 spins, thread CPU, when the "
          f"cpu1ms servers started): calibrated {calib[1]:.3f} ms in the bench at the start")
    for p in PROCESSES:
        spins = [(name, results[(name, "cpu1ms", p)].spin_us) for name in servers]
        print(f"  p={p}: " + ", ".join(f"{n} {s / 1000:.3f} ms" if s else f"{n} ?"
                                     for n, s in spins))

    print("\n## targets")
    c = results
    h = c[("nsuwsgi", "hello", 1)].cells[16].rps
    u = c[("uWSGI", "hello", 1)].cells[16].rps
    g = c[("gunicorn", "hello", 1)].cells[16].rps if "gunicorn" in servers else 0.0
    print(f"  hello, 1 process, 16 conns: nsuwsgi/uWSGI {ratio(h, u):.2f} (>= "
          f"{TARGET_THROUGHPUT_UWSGI:.1f}): {verdict(ratio(h, u) >= TARGET_THROUGHPUT_UWSGI)}")
    if g:
        print(f"  hello, 1 process, 16 conns: nsuwsgi/gunicorn {ratio(h, g):.2f} (>= "
              f"{TARGET_THROUGHPUT_GUNICORN:.1f}): "
              f"{verdict(ratio(h, g) >= TARGET_THROUGHPUT_GUNICORN)}")
    else:
        print("  hello, 1 process, 16 conns: nsuwsgi/gunicorn: gunicorn not installed")
    cpu_cells = sorted((ratio(c[("nsuwsgi", "cpu1ms", p)].cells[k].rps,
                              c[("uWSGI", "cpu1ms", p)].cells[k].rps), p, k)
                       for p in PROCESSES for k in CONNECTIONS)
    worst, wp, wk = cpu_cells[0]
    print(f"  cpu1ms, every cell: nsuwsgi/uWSGI lowest {worst:.2f} (p={wp} c={wk}; all: "
          f"{', '.join(f'{r:.2f}' for r, _, _ in cpu_cells)}) (>= "
          f"{TARGET_THROUGHPUT_UWSGI:.1f}): {verdict(worst >= TARGET_THROUGHPUT_UWSGI)}")
    report_pss_target(results)
    if cold is not None:
        variants, _ = cold
        by = {v.name: statistics.median(v.first_200_s) for v in variants}
        for name in ("nsuwsgi", "nsuwsgi-ns"):
            if name in by:
                r = ratio(by[name], by["uWSGI"])
                print(f"  cold start to first 200, {name}/uWSGI {r:.2f} ({by[name] * 1e3:.1f} "
                      f"vs {by['uWSGI'] * 1e3:.1f} ms; <= {TARGET_COLD_START}): "
                      f"{verdict(r <= TARGET_COLD_START)}")
        print_like_for_like(by)


def report_memory(results: dict, servers: list[str]) -> None:
    print(f"\n## idle memory: each server alone, after {MEMORY_LOAD_S} s of wrk -c16 and "
          f"{IDLE_BEFORE_PSS:g} s idle; per worker PSS (USS) in MB; master PSS")
    print("   (PSS splits a shared page among every process mapping it: the venv's "
          "/usr/bin/python3.11 text is shared with this bench, uWSGI's libpython with no one)")
    for app in APPS:
        for processes in PROCESSES:
            line = f"  {app:<7} p={processes}"
            for name in servers:
                inst = results[(name, app, processes)]
                workers = " ".join(f"{pss:.1f} ({uss:.1f})" for pss, uss, _ in
                                   inst.worker_mem) or "-"
                line += f" | {name} {workers}; master {inst.master_mem[0]:.1f}"
            print(line)


def report_pss_target(results: dict) -> None:
    c = results
    pss_ok = True
    pss_parts = []
    for app in APPS:
        for processes in PROCESSES:
            ns = [m[0] for m in c[("nsuwsgi", app, processes)].worker_mem]
            uw = [m[0] for m in c[("uWSGI", app, processes)].worker_mem]
            n_mean = statistics.mean(ns) if ns else float("nan")
            u_mean = statistics.mean(uw) if uw else float("nan")
            pss_ok &= n_mean <= u_mean
            pss_parts.append(f"{app}/p{processes} {n_mean:.1f} vs {u_mean:.1f}")
    print(f"  idle worker PSS, nsuwsgi <= uWSGI (mean MB per worker): "
          f"{'; '.join(pss_parts)}: {verdict(pss_ok)}")


def print_like_for_like(by: dict) -> None:
    """Information, not a target: a namespace start against uWSGI's own namespace start."""
    if "nsuwsgi-ns" in by and "uWSGI-ns" in by:
        print(f"  (information) cold start nsuwsgi-ns/uWSGI-ns "
              f"{ratio(by['nsuwsgi-ns'], by['uWSGI-ns']):.2f} ({by['nsuwsgi-ns'] * 1e3:.1f} vs "
              f"{by['uWSGI-ns'] * 1e3:.1f} ms: both jail themselves)")


def report_cold(cold: tuple) -> None:
    variants, extra = cold
    print("\n## cold start: Popen -> first HTTP 200 (GET /, hello app, 1 process), ms")
    print(f"  {'variant':<11} {'n':>3} {'connect ok':>11} {'first 200':>10} {'p90':>7} "
          f"{'min':>7} {'/ uWSGI':>8}")
    base = statistics.median(variants[0].first_200_s)
    for v in variants:
        f = sorted(v.first_200_s)
        med = statistics.median(f)
        p90 = f[max(0, -(-9 * len(f) // 10) - 1)]
        print(f"  {v.name:<11} {len(f):>3} {statistics.median(v.connect_s) * 1e3:>11.1f} "
              f"{med * 1e3:>10.1f} {p90 * 1e3:>7.1f} {f[0] * 1e3:>7.1f} {med / base:>8.2f}")
    for what, secs in extra["floors"].items():
        print(f"  floor: {what:<28} {secs * 1e3:7.1f} ms (median, process start to exit)")


# --------------------------------------------------------------------------- main

def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=float, default=5.0,
                        help="seconds of measured wrk per cell (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="seconds of wrk warm-up per cell, not recorded (default 1)")
    parser.add_argument("--starts", type=int, default=10,
                        help="recorded cold starts per variant (default 10)")
    parser.add_argument("--skip-cold", action="store_true", help="no cold-start part")
    parser.add_argument("--skip-matrix", action="store_true", help="no throughput part")
    parser.add_argument("--memory-only", action="store_true",
                        help="of the matrix, only the idle memory part (no wrk cells)")
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= MAX_DURATION or not 1 <= args.warmup <= MAX_DURATION:
        parser.error(f"--duration and --warmup: 1..{MAX_DURATION} s (wrk counts whole seconds)")
    if not 1 <= args.starts <= MAX_STARTS:
        parser.error(f"--starts must be 1..{MAX_STARTS}")
    return args


def run(args, procs: Processes) -> None:
    gunicorn_extra = preflight()
    servers = [s for s in SERVERS if s != "gunicorn" or os.access(GUNICORN, os.X_OK)]
    spin_n, spin_ms = calibrate()
    env = dict(os.environ, BENCH_SPIN_ITERATIONS=str(spin_n))
    real = os.path.realpath(VENV_PYTHON)
    stale, total = pyc_staleness()
    print("# http_throughput: nsuwsgi's WSGI server vs uWSGI and gunicorn sync, one run")
    print(f"# machine  : {machine()}")
    print(f"# nsuwsgi  : {VENV_PYTHON} -> {real} (CPython {platform.python_version()}, "
          f"the same interpreter runs this bench and gunicorn)")
    print(f"# .pyc     : {stale} of {total} nsuwsgi modules have no up-to-date .pyc "
          f"(PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!s}); "
          f"those are compiled at every start")
    print(f"# uWSGI    : {UWSGI} {tool_version([UWSGI, '--version'])}, plugin "
          f"{os.path.realpath(UWSGI_PLUGIN)} (embeds libpython3.11.so)")
    if "gunicorn" in servers:
        print(f"# gunicorn : {tool_version([GUNICORN, '--version'])} "
              f"{' '.join(gunicorn_extra)}")
    else:
        print(f"# gunicorn : not installed ({GUNICORN}); `.venv/bin/pip install gunicorn` "
              f"adds its column")
    print(f"# wrk      : {tool_version([WRK, '-v'])}")
    print(f"# cpu1ms   : BENCH_SPIN_ITERATIONS={spin_n}: {spin_ms:.3f} ms of thread CPU per "
          f"spin in the bench (min of 50)")
    spread = sorted(speed_spread(spin_n))
    print(f"# vCPU     : the same loop 20 times over 2 s, idle machine: min {spread[0]:.3f}, "
          f"median {statistics.median(spread):.3f}, max {spread[-1]:.3f} ms (the speed of "
          f"this VM's CPU moves by {spread[-1] / spread[0]:.2f}x: noise on every figure)")
    print("# ports    : 127.0.0.1, a fresh kernel-chosen port per server (bind port 0, read "
          "it, close, pass it on)")
    print(f"# method   : per cell {args.warmup:g} s wrk warm-up + {args.duration:g} s "
          f"measured; -t1 for 16 connections, -t2 for 64; server CPU = (master + workers) "
          f"user+sys during the measured run / requests")
    print("#            uWSGI: --http-socket (closes after every response); uWSGI-ka: "
          "--http11-socket (keep-alive), informational")
    workdir = tempfile.mkdtemp(prefix=DIR_PREFIX, dir="/tmp")
    setup = Setup(workdir, spin_n, gunicorn_extra, env)
    started = time.monotonic()
    try:
        results = None
        if not args.skip_matrix:
            print("\n## cells, as they are measured")
            results = run_matrix(procs, setup, args, servers)
        cold = None
        if not args.skip_cold:
            cold = run_cold_starts(procs, setup, args)
            print(f"\n# rootfs   : {cold[1]['notes']['rootfs']}")
            report_cold(cold)
        if results is not None and args.memory_only:
            report_memory(results, servers)
            print("\n## targets")
            report_pss_target(results)
        elif results is not None:
            report(results, servers, cold, (spin_n, spin_ms))
        if (results is None or args.memory_only) and cold is not None:
            variants = cold[0]
            base = statistics.median(variants[0].first_200_s)
            for v in variants[1:]:
                if v.name.startswith("uWSGI"):
                    continue
                r = statistics.median(v.first_200_s) / base
                print(f"  cold start {v.name}/uWSGI {r:.2f} (<= {TARGET_COLD_START}): "
                      f"{verdict(r <= TARGET_COLD_START)}")
            print_like_for_like({v.name: statistics.median(v.first_200_s) for v in variants})
        print_ran(started)
    finally:
        clean_up(procs, workdir, "server")


def main(argv=None) -> int:
    return bench_main("http_throughput", run, parse_args(argv), Processes())


if __name__ == "__main__":
    raise SystemExit(main())
