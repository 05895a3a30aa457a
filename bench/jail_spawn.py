#!/usr/bin/env python3
"""Benchmark: wall time for nsuwsgi's spawn primitive to start a jailed /bin/true and see it exit.

Everything is called from this one, already running Python process (no interpreter start-up is
counted for anyone). Four variants, measured in the same run, interleaved round-robin:

  nsuwsgi-jail   nsuwsgi.spawn.spawn() of /bin/true (busybox applet) in a jail: PID + mount +
                 UTS + IPC namespaces, pivot into a busybox rootfs built once under /tmp, a
                 fresh /proc (and its read-only sub-mounts), hostname, uid/gid drop to nobody
                 (the plan's SwitchUser op), bounding set / caps / no_new_privs. With a PID
                 namespace the pid spawn() returns is the namespace's init (PID 1): it forks
                 the payload, reaps it and exits with its status. That is part of the cost.
  bwrap          `bwrap --unshare-all --ro-bind / / --proc /proc --dev /dev true`, started
                 with os.posix_spawn, waited with os.waitpid. Note --unshare-all also makes a
                 network, cgroup and (when permitted) user namespace, which nsuwsgi-jail
                 does not; it does not drop to nobody (it stays uid 0 with no capabilities).
  unshare        `unshare -pmunif --fork true` (util-linux; -n is a network namespace too; no
                 new root, no /proc, no uid drop), os.posix_spawn + os.waitpid.
  nsuwsgi-plain  the floor: nsuwsgi.spawn.spawn() of the host's /bin/true with no jail.

The clock (time.perf_counter_ns) starts just before the spawn call and stops just after the
wait returns (os.waitid(P_PIDFD, ...) for nsuwsgi, os.waitpid for the others). Every run's
exit status is checked; a variant that does not exit 0 stops the bench (a fast failure is not
a fast spawn). Warm-up: 20 rounds, not recorded. Then --iterations rounds (default 200); each
round runs every variant once, the starting variant rotating from round to round.

`--profile` also runs 50 jailed nsuwsgi spawns under cProfile (top 15 by cumulative time).
cProfile only sees the parent: everything the child does between fork and the payload's exec
shows up as the parent blocking in os.read on the error pipe (spawn._read_all), and the
payload's run and the init's exit as os.waitid. So --profile also prints a split of each
jailed spawn into "spawn() returned" (fork .. payload exec'd) and "exit seen" (exec .. init
exited and reaped), and a per-op timing of the jail plan measured inside a forked child.

This is a benchmark, not a test: it prints figures and never asserts. Exit 0 when it ran,
1 when it could not run (not root, a missing program, a variant that fails).

    .venv/bin/python bench/jail_spawn.py [--iterations 200] [--warmup 20] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import math
import os
import platform
import pstats
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

BWRAP = "/usr/bin/bwrap"
UNSHARE = "/usr/bin/unshare"
TRUE_HOST = "/bin/true"
TRUE_JAIL = "/bin/true"           # busybox applet symlink inside the rootfs
NOBODY = 65534
DIR_PREFIX = "nsuwsgi-bench-jailspawn-"
PROFILE_SPAWNS = 50
PROFILE_TOP = 15
OP_TIMING_RUNS = 30
MAX_ITERATIONS = 100_000          # keeps every loop bounded whatever the flags say
IMPORT_RETRY_FOR = 300.0          # another engineer may be mid-edit on nsuwsgi/
IMPORT_RETRY_EVERY = 10.0
CHILD_ENV = ("PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C")
HOST_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}


class BenchError(Exception):
    """The bench cannot run; the message says why."""


# --------------------------------------------------------------------------- nsuwsgi imports


def import_nsuwsgi():
    """Import what the bench drives; retry for a while if a concurrent edit broke an import."""
    deadline = time.monotonic() + IMPORT_RETRY_FOR
    while True:
        try:
            from nsuwsgi import linux, spawn as spawn_mod
            from nsuwsgi.jail import plan as plan_mod
            from nsuwsgi.rootfs import build_rootfs
            from nsuwsgi.spec import JailSpec, ProcessSpec
            return linux, spawn_mod, plan_mod, build_rootfs, JailSpec, ProcessSpec
        except (ImportError, SyntaxError) as exc:
            if time.monotonic() >= deadline:
                raise BenchError(f"cannot import nsuwsgi: {exc}") from None
            print(f"# import failed ({exc}); retrying in {IMPORT_RETRY_EVERY:.0f} s",
                  file=sys.stderr)
            for name in [m for m in sys.modules if m == "nsuwsgi" or m.startswith("nsuwsgi.")]:
                del sys.modules[name]
            time.sleep(IMPORT_RETRY_EVERY)


LINUX, SPAWN, PLAN, BUILD_ROOTFS, JAIL_SPEC, PROCESS_SPEC = (None,) * 6


# --------------------------------------------------------------------------- the variants


@dataclass
class Variant:
    name: str
    describe: str
    run: Callable[[], int]            # one spawn + wait; returns the wait status (0 = ok)
    samples: list[int] = field(default_factory=list)    # nanoseconds


def jail_process_spec(rootfs: str):
    flags = LINUX.CLONE_NEWPID | LINUX.CLONE_NEWNS | LINUX.CLONE_NEWUTS | LINUX.CLONE_NEWIPC
    jail = JAIL_SPEC(namespaces=flags, rootfs=rootfs, hostname="bench",
                     uid=NOBODY, gid=NOBODY)
    jail_plan = PLAN.plan(jail)
    if not any(isinstance(op, PLAN.SwitchUser) and op.uid == NOBODY
               for op in jail_plan.payload_ops):
        raise BenchError("the jail plan has no SwitchUser(uid=nobody) op")
    if not jail_plan.new_pid_namespace:
        raise BenchError("the jail plan has no PID namespace")
    spec = PROCESS_SPEC(argv=(TRUE_JAIL,), executable=TRUE_JAIL, env=CHILD_ENV,
                        jail=jail_plan, pdeathsig=int(signal.SIGKILL))
    return spec, jail_plan


def plain_process_spec():
    return PROCESS_SPEC(argv=(TRUE_HOST,), executable=TRUE_HOST, env=CHILD_ENV,
                        pdeathsig=int(signal.SIGKILL))


def nsuwsgi_runner(spec) -> Callable[[], int]:
    spawn = SPAWN.spawn
    waitid = os.waitid
    p_pidfd, wexited = os.P_PIDFD, os.WEXITED
    monotonic = time.monotonic

    def run() -> int:
        child = spawn(spec, monotonic())
        try:
            info = waitid(p_pidfd, child.pidfd, wexited)
        finally:
            os.close(child.pidfd)
        return info.si_status if info.si_code == os.CLD_EXITED else 0x100 | info.si_status
    return run


def posix_spawn_runner(argv: list[str]) -> Callable[[], int]:
    path = argv[0]
    env = dict(HOST_ENV)
    posix_spawn = os.posix_spawn
    waitpid = os.waitpid

    def run() -> int:
        pid = posix_spawn(path, argv, env)
        return waitpid(pid, 0)[1]
    return run


BWRAP_ARGV = [BWRAP, "--unshare-all", "--ro-bind", "/", "/", "--proc", "/proc",
              "--dev", "/dev", "true"]
UNSHARE_ARGV = [UNSHARE, "-pmunif", "--fork", "true"]


def make_variants(rootfs: str) -> list[Variant]:
    jail_spec, _ = jail_process_spec(rootfs)
    return [
        Variant("nsuwsgi-jail", "spawn(): pid+mnt+uts+ipc ns, pivot, /proc, uid nobody",
                nsuwsgi_runner(jail_spec)),
        Variant("bwrap", " ".join(["bwrap"] + BWRAP_ARGV[1:]), posix_spawn_runner(BWRAP_ARGV)),
        Variant("unshare", " ".join(["unshare"] + UNSHARE_ARGV[1:]),
                posix_spawn_runner(UNSHARE_ARGV)),
        Variant("nsuwsgi-plain", "spawn() of /bin/true, no jail (floor)",
                nsuwsgi_runner(plain_process_spec())),
    ]


# --------------------------------------------------------------------------- measuring


def timed(variant: Variant) -> int:
    start = time.perf_counter_ns()
    status = variant.run()
    elapsed = time.perf_counter_ns() - start
    if status != 0:
        raise BenchError(f"{variant.name}: the child did not exit 0 (wait status {status:#x})")
    return elapsed


def measure(variants: list[Variant], warmup: int, iterations: int) -> None:
    count = len(variants)
    for round_no in range(warmup + iterations):
        for k in range(count):
            variant = variants[(round_no + k) % count]
            elapsed = timed(variant)
            if round_no >= warmup:
                variant.samples.append(elapsed)


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def summary(samples_ns: list[int]) -> tuple[float, float, float]:
    ms = sorted(s / 1e6 for s in samples_ns)
    return statistics.median(ms), percentile(ms, 0.90), ms[0]


# --------------------------------------------------------------------------- --profile


def profile_jail(rootfs: str) -> None:
    spec, jail_plan = jail_process_spec(rootfs)
    run = nsuwsgi_runner(spec)
    for _ in range(5):
        run()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(PROFILE_SPAWNS):
        run()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(PROFILE_TOP)
    print(f"\n## cProfile: {PROFILE_SPAWNS} jailed nsuwsgi spawns (parent side), "
          f"top {PROFILE_TOP} by cumtime")
    print(out.getvalue().rstrip())

    print(f"\n## split of a jailed spawn (median of {PROFILE_SPAWNS}, no profiler)")
    split_spawn(spec)

    print(f"\n## jail plan ops timed inside a forked child (median of {OP_TIMING_RUNS} runs)")
    time_ops(jail_plan)


def split_spawn(spec) -> None:
    """fork .. spawn() returns (payload exec'd) vs .. exit seen (payload ran, init exited)."""
    spawn = SPAWN.spawn
    to_return, to_exit = [], []
    for _ in range(PROFILE_SPAWNS):
        t0 = time.perf_counter_ns()
        child = spawn(spec, time.monotonic())
        t1 = time.perf_counter_ns()
        try:
            os.waitid(os.P_PIDFD, child.pidfd, os.WEXITED)
        finally:
            os.close(child.pidfd)
        t2 = time.perf_counter_ns()
        to_return.append((t1 - t0) / 1e6)
        to_exit.append((t2 - t1) / 1e6)
    print(f"  spawn() call, until the payload exec'd : {statistics.median(to_return):7.3f} ms")
    print(f"  waitid, payload runs + init exits      : {statistics.median(to_exit):7.3f} ms")


def time_ops(jail_plan) -> None:
    """Fork like spawn() does (unshare PID ns in the parent), run each op timed, report back.

    The child runs the init ops as PID 1, forks the payload the way spawn() does, and times
    the payload ops and init's own capability/no_new_privs work; exec is replaced by _exit so
    nothing else is timed. Results come back through a pipe as `name ns` lines.
    """
    from nsuwsgi.jail import apply, init as init_mod

    totals: dict[str, list[float]] = {}
    order: list[str] = []
    for _ in range(OP_TIMING_RUNS):
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        own_ns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        t_fork = time.perf_counter_ns()
        LINUX.unshare(LINUX.CLONE_NEWPID)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                lines = [f"fork {time.perf_counter_ns() - t_fork}"]
                _op_child(jail_plan, apply, init_mod, lines)
                os.write(write_end, ("\n".join(lines) + "\n").encode())
                code = 0
            except BaseException as exc:     # noqa: BLE001 - report, never raise in a child
                os.write(write_end, f"error {type(exc).__name__}: {exc}\n".encode())
            finally:
                os._exit(code)
        LINUX.setns(own_ns, LINUX.CLONE_NEWPID)
        os.close(own_ns)
        os.close(write_end)
        data = b""
        while chunk := os.read(read_end, 65536):
            data += chunk
        os.close(read_end)
        os.waitpid(pid, 0)
        for line in data.decode().splitlines():
            name, value = line.rsplit(" ", 1)
            if name.startswith("error"):
                print(f"  {line}")
                return
            if name not in totals:
                totals[name] = []
                order.append(name)
            totals[name].append(int(value) / 1e6)
    total = 0.0
    for name in order:
        med = statistics.median(totals[name])
        total += med
        print(f"  {name:<44} {med:7.3f} ms")
    print(f"  {'(sum of medians)':<44} {total:7.3f} ms")


def _op_child(jail_plan, apply, init_mod, lines: list[str]) -> None:
    def timed_ops(where: str, ops) -> None:
        for op in ops:
            t = time.perf_counter_ns()
            apply.run_ops((op,))
            lines.append(f"{where}: {op.stage} {op.detail} {time.perf_counter_ns() - t}")

    timed_ops("init", jail_plan.init_ops)
    r2, w2 = os.pipe()
    t = time.perf_counter_ns()
    payload = os.fork()
    if payload == 0:
        sub = [f"payload: fork {time.perf_counter_ns() - t}"]
        code = 1
        try:
            timed_ops_into = []
            for op in jail_plan.payload_ops:
                t0 = time.perf_counter_ns()
                apply.run_ops((op,))
                timed_ops_into.append(f"payload: {op.stage} {op.detail} "
                                      f"{time.perf_counter_ns() - t0}")
            sub += timed_ops_into
            code = 0
        finally:
            os.write(w2, ("\n".join(sub) + "\n").encode())
            os._exit(code)
    os.close(w2)
    data = b""
    while chunk := os.read(r2, 65536):
        data += chunk
    os.close(r2)
    os.waitpid(payload, 0)
    lines.extend(data.decode().splitlines())
    LINUX_ = LINUX
    t = time.perf_counter_ns()
    LINUX_.drop_bounding_set(jail_plan.init_caps)
    lines.append(f"init: drop_bounding_set {time.perf_counter_ns() - t}")
    t = time.perf_counter_ns()
    LINUX_.set_capabilities(jail_plan.init_caps)
    lines.append(f"init: set_capabilities {time.perf_counter_ns() - t}")


# --------------------------------------------------------------------------- main


def tool_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"? ({exc})"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) \
        else "?"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--iterations", type=int, default=200,
                        help="measured rounds per variant (default 200)")
    parser.add_argument("--warmup", type=int, default=20,
                        help="unrecorded rounds per variant first (default 20)")
    parser.add_argument("--profile", action="store_true",
                        help=f"also cProfile {PROFILE_SPAWNS} jailed nsuwsgi spawns")
    args = parser.parse_args(argv)
    if not 1 <= args.iterations <= MAX_ITERATIONS:
        parser.error(f"--iterations must be 1..{MAX_ITERATIONS}")
    if not 0 <= args.warmup <= MAX_ITERATIONS:
        parser.error(f"--warmup must be 0..{MAX_ITERATIONS}")
    return args


def run(args: argparse.Namespace) -> None:
    global LINUX, SPAWN, PLAN, BUILD_ROOTFS, JAIL_SPEC, PROCESS_SPEC
    if os.geteuid() != 0:
        raise BenchError("run me as root: the jail needs CAP_SYS_ADMIN")
    for program in (BWRAP, UNSHARE, TRUE_HOST):
        if not os.access(program, os.X_OK):
            raise BenchError(f"{program} is missing")
    LINUX, SPAWN, PLAN, BUILD_ROOTFS, JAIL_SPEC, PROCESS_SPEC = import_nsuwsgi()

    print("# jail_spawn: spawn a jailed /bin/true from a running Python process, wait for exit")
    print(f"# python   : {sys.executable} ({platform.python_implementation()} "
          f"{sys.version.split()[0]}; {sys.version.replace(chr(10), ' ')})")
    print(f"# kernel   : {platform.release()}, {os.cpu_count()} CPUs")
    print(f"# bwrap    : {tool_version([BWRAP, '--version'])}")
    print(f"# unshare  : {tool_version([UNSHARE, '--version'])}")

    workdir = tempfile.mkdtemp(prefix=DIR_PREFIX, dir="/tmp")
    try:
        rootfs = os.path.join(workdir, "rootfs")
        warnings: list[str] = []
        t = time.perf_counter()
        BUILD_ROOTFS(rootfs, warn=warnings.append)
        print(f"# rootfs   : {rootfs} (busybox, built in {time.perf_counter() - t:.2f} s"
              f"{'; warnings: ' + '; '.join(warnings) if warnings else ''})")
        if not os.path.lexists(os.path.join(rootfs, TRUE_JAIL.lstrip("/"))):
            raise BenchError(f"the rootfs has no {TRUE_JAIL}")
        variants = make_variants(rootfs)
        print(f"# method   : {args.warmup} warm-up + {args.iterations} measured rounds, "
              f"variants round-robin (rotating start); perf_counter_ns from just before the "
              f"spawn call to just after the wait returns; exit status 0 checked every time")
        for v in variants:
            print(f"#   {v.name:<14} {v.describe}")
        gc_was = _gc_disable()
        try:
            measure(variants, args.warmup, args.iterations)
        finally:
            _gc_restore(gc_was)
        report(variants)
        if args.profile:
            profile_jail(rootfs)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        left = os.path.exists(workdir)
        print(f"# cleanup  : {workdir} {'NOT removed' if left else 'removed'}")


def _gc_disable() -> bool:
    import gc
    was = gc.isenabled()
    gc.disable()          # a collection in the middle of one timing would be pure noise
    return was


def _gc_restore(was: bool) -> None:
    import gc
    if was:
        gc.enable()


def report(variants: list[Variant]) -> None:
    rows = {v.name: (len(v.samples), *summary(v.samples)) for v in variants}
    print()
    print(f"{'variant':<14} {'n':>5} {'median ms':>10} {'p90 ms':>9} {'min ms':>9} "
          f"{'x bwrap':>8}")
    bwrap_median = rows["bwrap"][1]
    for name, (n, med, p90, low) in rows.items():
        print(f"{name:<14} {n:>5} {med:>10.3f} {p90:>9.3f} {low:>9.3f} "
              f"{med / bwrap_median:>8.2f}")
    ns_median = rows["nsuwsgi-jail"][1]
    met = ns_median <= bwrap_median
    print()
    print(f"ratio nsuwsgi-jail / bwrap (medians): {ns_median / bwrap_median:.2f}")
    print(f"target: nsuwsgi-jail median <= bwrap median "
          f"({ns_median:.3f} ms vs {bwrap_median:.3f} ms): {'MET' if met else 'NOT MET'}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except BenchError as exc:
        print(f"jail_spawn: cannot run: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:      # a SpawnError/UserError from nsuwsgi: report, exit 1
        print(f"jail_spawn: cannot run: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
