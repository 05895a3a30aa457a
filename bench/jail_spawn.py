#!/usr/bin/env python3
"""Benchmark: wall time for nsuwsgi's spawn primitive to start a jailed /bin/true and see it exit.

Everything is called from this one, already running Python process (no interpreter start-up is
counted for anyone). Four variants, measured in the same run, interleaved round-robin:

  nsuwsgi-jail   nsuwsgi.spawn.spawn() of /bin/true (busybox applet) in a jail: PID + mount +
                 UTS + IPC namespaces, pivot into a busybox rootfs built once under /tmp, a
                 fresh /proc, hostname, uid/gid drop to nobody (the plan's SwitchUser op), and
                 whatever else nsuwsgi.jail.plan.plan() adds for that JailSpec (read-only or
                 masked /proc paths, bounding set, capabilities, no_new_privs, seccomp...).
                 With a PID namespace the pid spawn() returns is the namespace's init (PID 1):
                 it forks the payload, reaps it and exits with its status. That is part of the
                 cost.
  bwrap          `bwrap --unshare-all --ro-bind / / --proc /proc --dev /dev true`, started
                 with os.posix_spawn, waited with os.waitpid. As root, --unshare-all makes a
                 user, PID, mount, network, IPC, UTS and cgroup namespace; the payload stays
                 uid 0 of its user namespace (no_new_privs set, no uid drop, no seccomp).
  unshare        `unshare -pmunif --fork true` (util-linux; -n is a network namespace too; no
                 new root, no /proc, no uid drop), os.posix_spawn + os.waitpid.
  nsuwsgi-plain  the floor: nsuwsgi.spawn.spawn() of the host's /bin/true with no jail.

The clock (time.perf_counter_ns) starts just before the spawn call and stops just after the
wait returns (os.waitid(P_PIDFD, ...) for nsuwsgi, os.waitpid for the others). Every run's
exit status is checked; a variant that does not exit 0 stops the bench (a fast failure is not
a fast spawn). Warm-up: 20 rounds, not recorded. Then --iterations rounds (default 200); each
round runs every variant once, the starting variant rotating from round to round.

`--profile` then runs 50 jailed nsuwsgi spawns under cProfile (top 15 by cumulative time).
cProfile only sees the parent: everything the children do between fork and the payload's exec
shows up as the parent blocking in os.read on the error pipe (spawn._read_all), and the
payload's run plus init's exit as os.waitid. So --profile also prints (a) the split of a jailed
spawn into "until spawn() returns" and "until the exit is seen", and (b) a timeline of the
real spawn path in all three processes (parent, init = PID 1, payload): nsuwsgi's helpers, the
jail plan's ops, the nsuwsgi.linux calls, os.fork/execve/_exit and signal.pthread_sigmask are
wrapped for the duration with timers that write into a shared anonymous mmap (init closes
every fd, so a pipe would not do). Wrappers cost a few microseconds each; the originals are
restored afterwards.

Before measuring, the bench spawns one jailed /bin/sh through the same ProcessSpec and checks
the jail is what it claims to be (uid/gid 65534, hostname, payload is PID 2 under the jail's
init, / is the rootfs, /proc is the jail's own); it refuses to run otherwise.

This is a benchmark, not a test: it prints figures and never asserts. Exit 0 when it ran,
1 when it could not run (not root, a missing program, a variant that fails).

    .venv/bin/python bench/jail_spawn.py [--iterations 200] [--warmup 20] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import math
import mmap
import os
import platform
import pstats
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable

from common import ROOT, BenchError, tool_version

sys.path.insert(0, ROOT)

BWRAP = "/usr/bin/bwrap"
UNSHARE = "/usr/bin/unshare"
TRUE_HOST = "/bin/true"
TRUE_JAIL = "/bin/true"           # busybox applet symlink inside the rootfs
SH_JAIL = "/bin/sh"
NOBODY = 65534
HOSTNAME = "nsuwsgi-bench"
DIR_PREFIX = "nsuwsgi-bench-jailspawn-"
PROFILE_SPAWNS = 50
PROFILE_TOP = 15
MAX_ITERATIONS = 100_000          # keeps every loop bounded whatever the flags say
IMPORT_RETRY_FOR = 300.0          # another engineer may be mid-edit on nsuwsgi/
IMPORT_RETRY_EVERY = 10.0
CHILD_ENV = ("PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C")
HOST_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
BWRAP_ARGV = [BWRAP, "--unshare-all", "--ro-bind", "/", "/", "--proc", "/proc",
              "--dev", "/dev", "true"]
UNSHARE_ARGV = [UNSHARE, "-pmunif", "--fork", "true"]


class NS:
    """The nsuwsgi modules the bench drives, imported once by load()."""

    linux = spawn = plan = apply = init = build_rootfs = JailSpec = ProcessSpec = None

    @classmethod
    def load(cls) -> None:
        """Import; retry for a while if a concurrent edit broke an import."""
        deadline = time.monotonic() + IMPORT_RETRY_FOR
        while True:
            try:
                from nsuwsgi import linux, spawn
                from nsuwsgi.jail import apply, init, plan
                from nsuwsgi.rootfs import build_rootfs
                from nsuwsgi.spec import JailSpec, ProcessSpec
                break
            except (ImportError, SyntaxError) as exc:
                if time.monotonic() >= deadline:
                    raise BenchError(f"cannot import nsuwsgi: {exc}") from None
                print(f"# import failed ({exc}); retrying in {IMPORT_RETRY_EVERY:.0f} s",
                      file=sys.stderr)
                for name in [m for m in sys.modules if m.split(".")[0] == "nsuwsgi"]:
                    del sys.modules[name]
                time.sleep(IMPORT_RETRY_EVERY)
        cls.linux, cls.spawn, cls.plan, cls.apply, cls.init = linux, spawn, plan, apply, init
        cls.build_rootfs, cls.JailSpec, cls.ProcessSpec = build_rootfs, JailSpec, ProcessSpec


# --------------------------------------------------------------------------- the specs


def jail_process_spec(rootfs: str, argv: tuple[str, ...] = (TRUE_JAIL,), **extra):
    linux = NS.linux
    flags = linux.CLONE_NEWPID | linux.CLONE_NEWNS | linux.CLONE_NEWUTS | linux.CLONE_NEWIPC
    jail = NS.JailSpec(namespaces=flags, rootfs=rootfs, hostname=HOSTNAME,
                       uid=NOBODY, gid=NOBODY)
    jail_plan = NS.plan.plan(jail)
    if not any(isinstance(op, NS.plan.SwitchUser) and op.uid == NOBODY
               for op in jail_plan.payload_ops):
        raise BenchError("the jail plan has no SwitchUser(uid=nobody) op")
    if not jail_plan.new_pid_namespace:
        raise BenchError("the jail plan has no PID namespace")
    return NS.ProcessSpec(argv=argv, executable=argv[0], env=CHILD_ENV, jail=jail_plan,
                          pdeathsig=int(signal.SIGKILL), **extra)


def plain_process_spec():
    """As a dumb daemon is spawned: nothing posix_spawn cannot do, so the vfork road."""
    return NS.ProcessSpec(argv=(TRUE_HOST,), executable=TRUE_HOST, env=CHILD_ENV)


def check_jail(rootfs: str) -> str:
    """Run a jailed /bin/sh through the same jail; BenchError unless it is the promised jail."""
    host_pid = os.getpid()
    checks = [
        ('"$(id -u)" = 65534', "uid"),
        ('"$(id -g)" = 65534', "gid"),
        (f'"$(hostname)" = {HOSTNAME}', "hostname"),
        ('"$$" = 2', "payload is PID 2 (under the jail's init)"),
        ('-f /etc/nsuwsgi-rootfs.txt -a ! -e /work', "/ is the rootfs"),
        (f'-d /proc/1 -a ! -e /proc/{host_pid}', "/proc is the jail's own"),
    ]
    script = "r=; " + " ".join(f'[ {test} ] || r="$r, {name}";' for test, name in checks) \
        + ' echo "${r#, }"; [ -z "$r" ]'
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    try:
        spec = jail_process_spec(rootfs, (SH_JAIL, "-c", script), stdout_fd=write_end,
                                 stderr_fd=write_end)
        child = NS.spawn.spawn(spec, time.monotonic())
        os.close(write_end)
        write_end = -1
        try:
            info = os.waitid(os.P_PIDFD, child.pidfd, os.WEXITED)
        finally:
            os.close(child.pidfd)
        output = b""
        for _ in range(1000):               # bounded: the output is one short line
            chunk = os.read(read_end, 4096)
            if not chunk:
                break
            output += chunk
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    failed = output.decode(errors="replace").strip()
    if info.si_code != os.CLD_EXITED or info.si_status != 0:
        raise BenchError(f"the jail is not what the bench promises: {failed or info}")
    return ", ".join(name for _, name in checks)


# --------------------------------------------------------------------------- the variants


@dataclass
class Variant:
    name: str
    describe: str
    run: Callable[[], int]            # one spawn + wait; returns the wait status (0 = ok)
    after: Callable[[], None] = lambda: None     # untimed cleanup (closing the pidfd)
    samples: list[int] = field(default_factory=list)    # nanoseconds


def nsuwsgi_variant(name: str, describe: str, spec) -> Variant:
    spawn = NS.spawn.spawn
    waitid, p_pidfd, wexited = os.waitid, os.P_PIDFD, os.WEXITED
    monotonic = time.monotonic
    pending: list[int] = []

    def run() -> int:
        child = spawn(spec, monotonic())
        pending.append(child.pidfd)
        info = waitid(p_pidfd, child.pidfd, wexited)
        return info.si_status if info.si_code == os.CLD_EXITED else 0x100 | info.si_status

    def after() -> None:
        while pending:
            os.close(pending.pop())
    return Variant(name, describe, run, after)


def posix_spawn_variant(name: str, argv: list[str]) -> Variant:
    path, env = argv[0], dict(HOST_ENV)
    posix_spawn, waitpid = os.posix_spawn, os.waitpid

    def run() -> int:
        return waitpid(posix_spawn(path, argv, env), 0)[1]
    return Variant(name, " ".join([os.path.basename(path)] + argv[1:]), run)


def make_variants(rootfs: str) -> list[Variant]:
    return [
        nsuwsgi_variant("nsuwsgi-jail", "spawn(): pid+mnt+uts+ipc ns, pivot_root into the "
                        "busybox rootfs, fresh /proc, hostname, uid/gid nobody",
                        jail_process_spec(rootfs)),
        posix_spawn_variant("bwrap", BWRAP_ARGV),
        posix_spawn_variant("unshare", UNSHARE_ARGV),
        nsuwsgi_variant("nsuwsgi-plain", "spawn() of the host's /bin/true, no jail (floor)",
                        plain_process_spec()),
    ]


# --------------------------------------------------------------------------- measuring


def timed(variant: Variant) -> int:
    start = time.perf_counter_ns()
    try:
        status = variant.run()
        elapsed = time.perf_counter_ns() - start
    finally:
        variant.after()
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


def report(variants: list[Variant]) -> None:
    rows = {v.name: (len(v.samples), *summary(v.samples)) for v in variants}
    bwrap_median = rows["bwrap"][1]
    print()
    print(f"{'variant':<14} {'n':>5} {'median ms':>10} {'p90 ms':>9} {'min ms':>9} "
          f"{'/ bwrap':>8}")
    for name, (n, med, p90, low) in rows.items():
        print(f"{name:<14} {n:>5} {med:>10.3f} {p90:>9.3f} {low:>9.3f} "
              f"{med / bwrap_median:>8.2f}")
    ns_median = rows["nsuwsgi-jail"][1]
    print()
    print(f"ratio nsuwsgi-jail / bwrap (medians): {ns_median / bwrap_median:.2f}")
    print(f"target: nsuwsgi-jail median <= bwrap median ({ns_median:.3f} ms vs "
          f"{bwrap_median:.3f} ms): {'MET' if ns_median <= bwrap_median else 'NOT MET'}")


# --------------------------------------------------------------------------- --profile


def profile_jail(rootfs: str) -> None:
    spec = jail_process_spec(rootfs)
    variant = nsuwsgi_variant("profile", "", spec)
    for _ in range(5):
        timed(variant)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(PROFILE_SPAWNS):
        timed(variant)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(PROFILE_TOP)
    print(f"\n## cProfile: {PROFILE_SPAWNS} jailed nsuwsgi spawns, parent side only, "
          f"top {PROFILE_TOP} by cumtime")
    print(out.getvalue().strip())
    split_spawn(spec)
    timeline(spec)


def split_spawn(spec) -> None:
    """fork .. spawn() returns (payload exec'd) vs .. exit seen (payload ran, init exited)."""
    to_return, to_exit = [], []
    for _ in range(PROFILE_SPAWNS):
        t0 = time.perf_counter_ns()
        child = NS.spawn.spawn(spec, time.monotonic())
        t1 = time.perf_counter_ns()
        try:
            os.waitid(os.P_PIDFD, child.pidfd, os.WEXITED)
        finally:
            os.close(child.pidfd)
        t2 = time.perf_counter_ns()
        to_return.append((t1 - t0) / 1e6)
        to_exit.append((t2 - t1) / 1e6)
    print(f"\n## split of a jailed spawn (median of {PROFILE_SPAWNS}, no profiler)")
    print(f"  spawn() call until it returns (payload exec'd) : "
          f"{statistics.median(to_return):7.3f} ms")
    print(f"  then waitid until the exit is seen              : "
          f"{statistics.median(to_exit):7.3f} ms")


class Timeline:
    """Timestamps from the parent, init and payload, in a MAP_SHARED anonymous mapping.

    Region 0 is the parent's, 1 init's, 2 the payload's: a forked child moves to the next
    region, so each region has one writer and needs no lock.
    """

    REGION = 1 << 16
    ROLES = ("parent", "init", "payload")

    def __init__(self):
        self.buf = mmap.mmap(-1, self.REGION * len(self.ROLES))
        self.region = 0
        self.offset = 0

    def record(self, label: str, start: int, end: int) -> None:
        data = f"{label}\t{start}\t{end}\n".encode()
        if self.offset + len(data) <= self.REGION:
            base = self.region * self.REGION + self.offset
            self.buf[base:base + len(data)] = data
            self.offset += len(data)

    def forked_child(self) -> None:
        self.region = min(self.region + 1, len(self.ROLES) - 1)
        self.offset = 0

    def take(self) -> list[tuple[str, str, int, int]]:
        rows = []
        for region, role in enumerate(self.ROLES):
            raw = self.buf[region * self.REGION:(region + 1) * self.REGION].split(b"\0", 1)[0]
            for line in raw.decode(errors="replace").splitlines():
                label, start, end = line.split("\t")
                rows.append((role, label, int(start), int(end)))
        self.buf[:] = bytes(len(self.buf))
        self.region, self.offset = 0, 0
        return rows


class Patches:
    """Replace attributes with timed wrappers; restore() puts every original back."""

    def __init__(self, tl: Timeline):
        self.tl = tl
        self.saved: list[tuple[object, str, object]] = []

    def _set(self, owner, name, value) -> None:
        if isinstance(owner, dict):
            self.saved.append((owner, name, owner[name]))
            owner[name] = value
        else:
            self.saved.append((owner, name, getattr(owner, name)))
            setattr(owner, name, value)

    def restore(self) -> None:
        for owner, name, value in reversed(self.saved):
            if isinstance(owner, dict):
                owner[name] = value
            else:
                setattr(owner, name, value)
        self.saved.clear()

    def timed(self, owner, name: str, label: str) -> None:
        func = getattr(owner, name, None)
        if not callable(func):
            return              # the code changed under us: time what still exists
        tl, clock = self.tl, time.perf_counter_ns

        def wrapper(*args, **kwargs):
            start = clock()
            try:
                return func(*args, **kwargs)
            finally:
                tl.record(label, start, clock())
        self._set(owner, name, wrapper)

    def marked(self, owner, name: str, label: str) -> None:
        """For calls that never return (execve, _exit, run_init): a mark at entry."""
        func = getattr(owner, name, None)
        if not callable(func):
            return
        tl, clock = self.tl, time.perf_counter_ns

        def wrapper(*args, **kwargs):
            now = clock()
            tl.record(label, now, now)
            return func(*args, **kwargs)
        self._set(owner, name, wrapper)

    def ops(self, table: dict) -> None:
        tl, clock = self.tl, time.perf_counter_ns
        for key, func in list(table.items()):
            def wrapper(op, log, func=func):
                start = clock()
                try:
                    return func(op, log)
                finally:
                    tl.record(f"op {op.stage}", start, clock())
            self._set(table, key, wrapper)

    def fork(self) -> None:
        real_fork, tl, clock = os.fork, self.tl, time.perf_counter_ns

        def fork():
            start = clock()
            pid = real_fork()
            if pid == 0:
                tl.forked_child()
                tl.record("os.fork: child runs Python", start, clock())
            else:
                tl.record("os.fork: returns in parent", start, clock())
            return pid
        self._set(os, "fork", fork)


def timeline(spec) -> None:
    """Run the real jailed spawn path with timers in every process; print a median timeline."""
    tl = Timeline()
    patches = Patches(tl)
    sp, linux = NS.spawn, NS.linux
    try:
        patches.fork()
        patches.marked(os, "execve", "os.execve (payload exec)")
        patches.marked(os, "_exit", "os._exit")
        patches.timed(os, "setsid", "os.setsid")
        patches.timed(os, "closerange", "os.closerange")
        patches.timed(signal, "pthread_sigmask", "signal.pthread_sigmask")
        for name in ("_fork", "_read_all", "_default_signals", "_set_pdeathsig",
                     "_setup_stdio", "_close_fds", "_switch_user"):
            patches.timed(sp, name, f"spawn.{name}")
        patches.marked(NS.init, "run_init", "init.run_init entered")
        patches.ops(NS.apply.APPLY)
        for name in ("unshare", "setns", "pidfd_open", "set_pdeathsig", "mount", "umount2",
                     "pivot_root", "last_cap", "drop_bounding_set", "clear_ambient",
                     "set_keepcaps", "set_capabilities", "set_no_new_privs", "set_dumpable"):
            patches.timed(linux, name, f"  linux.{name}")
        samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
        counts: dict[tuple[str, str], int] = {}
        for i in range(PROFILE_SPAWNS + 3):
            t0 = time.perf_counter_ns()
            child = sp.spawn(spec, time.monotonic())
            t1 = time.perf_counter_ns()
            try:
                os.waitid(os.P_PIDFD, child.pidfd, os.WEXITED)
            finally:
                os.close(child.pidfd)
            t2 = time.perf_counter_ns()
            rows = tl.take() + [("parent", "spawn() returned", t1, t1),
                                ("parent", "waitid returned", t2, t2)]
            if i < 3:
                continue            # warm-up
            for role, label, start, end in rows:
                key = (role, label)
                samples.setdefault(key, []).append(((start - t0) / 1e6, (end - start) / 1e6))
                counts[key] = counts.get(key, 0) + 1
    finally:
        patches.restore()
    print(f"\n## timeline of a jailed spawn in all three processes (median of {PROFILE_SPAWNS}; "
          f"t = ms since the spawn() call; indented = nested inside the line above)")
    print(f"  {'process':<8} {'step':<36} {'at ms':>8} {'takes ms':>9} {'per spawn':>9}")
    keys = sorted(samples, key=lambda k: statistics.median(s for s, _ in samples[k]))
    for role, label in keys:
        at = statistics.median(s for s, _ in samples[(role, label)])
        took = statistics.median(d for _, d in samples[(role, label)])
        per = counts[(role, label)] / PROFILE_SPAWNS
        print(f"  {role:<8} {label:<36} {at:8.3f} {took:9.3f} {per:9.1f}")


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--iterations", type=int, default=200,
                        help="measured rounds, one spawn per variant each (default 200)")
    parser.add_argument("--warmup", type=int, default=20,
                        help="unrecorded rounds first (default 20)")
    parser.add_argument("--profile", action="store_true",
                        help=f"also profile {PROFILE_SPAWNS} jailed nsuwsgi spawns")
    args = parser.parse_args(argv)
    if not 1 <= args.iterations <= MAX_ITERATIONS:
        parser.error(f"--iterations must be 1..{MAX_ITERATIONS}")
    if not 0 <= args.warmup <= MAX_ITERATIONS:
        parser.error(f"--warmup must be 0..{MAX_ITERATIONS}")
    return args


def run(args: argparse.Namespace) -> None:
    if os.geteuid() != 0:
        raise BenchError("run me as root: the jail needs CAP_SYS_ADMIN")
    for program in (BWRAP, UNSHARE, TRUE_HOST):
        if not os.access(program, os.X_OK):
            raise BenchError(f"{program} is missing")
    NS.load()

    print("# jail_spawn: start a jailed /bin/true from a running Python process, see it exit")
    print(f"# python   : {sys.executable} ({platform.python_implementation()} "
          f"{sys.version.split()[0]}; {' '.join(sys.version.split())})")
    print(f"# machine  : Linux {platform.release()}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at start")
    print(f"# bwrap    : {tool_version([BWRAP, '--version'])}")
    print(f"# unshare  : {tool_version([UNSHARE, '--version'])}")

    workdir = tempfile.mkdtemp(prefix=DIR_PREFIX, dir="/tmp")
    try:
        rootfs = os.path.join(workdir, "rootfs")
        warnings: list[str] = []
        t = time.perf_counter()
        NS.build_rootfs(rootfs, warn=warnings.append)
        print(f"# rootfs   : {rootfs} (busybox, built in {time.perf_counter() - t:.2f} s"
              f"{'; warnings: ' + '; '.join(warnings) if warnings else ''})")
        if not os.path.lexists(os.path.join(rootfs, TRUE_JAIL.lstrip("/"))):
            raise BenchError(f"the rootfs has no {TRUE_JAIL}")
        print(f"# jail     : checked with a jailed /bin/sh: {check_jail(rootfs)}")
        variants = make_variants(rootfs)
        print(f"# method   : {args.warmup} warm-up + {args.iterations} measured rounds; each "
              f"round spawns every variant once, round-robin with a rotating start;")
        print("#            perf_counter_ns from just before the spawn call to just after the "
              "wait returns; exit status 0 checked every time; GC left as is")
        for v in variants:
            print(f"#   {v.name:<14} {v.describe}")
        started = time.monotonic()
        measure(variants, args.warmup, args.iterations)
        print(f"# measured in {time.monotonic() - started:.1f} s; load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end "
              f"(other work on this machine adds noise; round-robin shares it)")
        report(variants)
        if args.profile:
            profile_jail(rootfs)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        print(f"# cleanup  : {workdir} "
              f"{'NOT removed' if os.path.exists(workdir) else 'removed'}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except BenchError as exc:
        print(f"jail_spawn: cannot run: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:      # SpawnError/UserError from nsuwsgi: report, exit 1
        print(f"jail_spawn: cannot run: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
