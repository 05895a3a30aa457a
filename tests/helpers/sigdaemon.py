"""A test daemon that records what it was given: start facts and every signal it receives.

Each event is one JSON line appended to LOGFILE, so a test can wait for "the daemon saw
SIGUSR1" as a condition instead of sleeping. Usage:

    sigdaemon.py LOGFILE [--ignore-term] [--exit-after SECONDS] [--exit-code N]
                         [--pidfile PATH] [--daemonize]
"""

import argparse
import json
import os
import signal
import sys
import time


def record(path, **event):
    event["pid"] = os.getpid()
    event["t"] = time.time()
    with open(path, "a") as f:
        f.write(json.dumps(event) + "\n")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("log")
    p.add_argument("--ignore-term", action="store_true")
    p.add_argument("--exit-after", type=float)
    p.add_argument("--exit-code", type=int, default=0)
    p.add_argument("--pidfile")
    p.add_argument("--daemonize", action="store_true")
    args = p.parse_args()
    # Handlers first: a test may signal us as soon as it sees the "start" record.
    def on_signal(signum, frame):
        record(args.log, event="signal", sig=signum, name=signal.Signals(signum).name)
        if signum == signal.SIGTERM and args.ignore_term:
            return
        if signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            record(args.log, event="exit", code=0)
            sys.exit(0)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP,
                signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH):
        signal.signal(sig, on_signal)
    if args.daemonize:
        if os.fork():
            os._exit(0)
        os.setsid()
    if args.pidfile:
        with open(args.pidfile + ".tmp", "w") as f:
            f.write(f"{os.getpid()}\n")
        os.rename(args.pidfile + ".tmp", args.pidfile)
    try:
        stdin = os.readlink("/proc/self/fd/0")
    except OSError:
        stdin = None
    fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
    with open("/proc/self/status") as f:
        status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    record(args.log, event="start", cwd=os.getcwd(), stdin=stdin, fds=fds,
           pgid=os.getpgid(0), sid=os.getsid(0), ppid=os.getppid(),
           uid=os.getuid(), gid=os.getgid(), groups=os.getgroups(),
           sigign=status.get("SigIgn"), sigblk=status.get("SigBlk"),
           env={k: v for k, v in os.environ.items() if k.startswith(("NSU", "TEST"))})

    deadline = None if args.exit_after is None else time.monotonic() + args.exit_after
    while deadline is None or time.monotonic() < deadline:
        signal.pause() if deadline is None else time.sleep(max(0.0, deadline - time.monotonic()))
    record(args.log, event="exit", code=args.exit_code)
    sys.exit(args.exit_code)


if __name__ == "__main__":
    main()
