"""The fork-server: vassals forked from a clean process that has already imported nsuwsgi.

Starting each vassal as a fresh interpreter costs its imports (tens of ms of CPU) and about
10 MB of private memory. The fork-server is forked from the Emperor at startup, imports what a
vassal needs, freezes its heap, and from then on only forks, through the one spawn primitive
(a `run` payload instead of an exec): each child becomes one vassal, which reads its own
config, drops to its own user and jails itself. The fork-server never reads a tenant's config,
so no tenant's data can leak into another vassal through it; the pages of the imported code
stay shared between every vassal (copy-on-write).

The protocol is two kinds of SOCK_SEQPACKET messages on a socketpair. The Emperor sends a
JSON request (argv, env, cwd, uid, gid), with the on-demand socket as SCM_RIGHTS when there is
one; the fork-server answers `spawned PID` or `failed ERRNO`. When a vassal ends the fork-server
(its parent) reaps it and sends `exit PID STATUS`. Vassals get PDEATHSIG SIGKILL from the
fork-server, and the fork-server from the Emperor, so a SIGKILLed Emperor leaves nothing.
"""

from __future__ import annotations

import array
import errno
import gc
import importlib
import json
import os
import signal
import socket
import sys

from nsuwsgi.cli import main
from nsuwsgi.loop import Loop
from nsuwsgi.spawn import SpawnError, spawn
from nsuwsgi.spec import ProcessSpec

# What a vassal imports to serve an app, run daemons and build a jail.
VASSAL_MODULES = ("nsuwsgi.cli", "nsuwsgi.config", "nsuwsgi.options", "nsuwsgi.instance",
                  "nsuwsgi.master", "nsuwsgi.server.worker", "nsuwsgi.server.pool",
                  "nsuwsgi.server.scoreboard", "nsuwsgi.daemons", "nsuwsgi.watch",
                  "nsuwsgi.stats", "nsuwsgi.jail.plan", "nsuwsgi.jail.apply",
                  "nsuwsgi.jail.init", "nsuwsgi.jail.hooks", "nsuwsgi.spawn")
NSUWSGI_PREFIX = ("-m", "nsuwsgi")


class ForkServerGone(Exception):
    pass


class ForkServer:
    """The Emperor's side: start the server, ask it for vassals, hear when they end."""

    def __init__(self, loop, log, on_exit):
        self.loop = loop
        self.log = log
        self.on_exit = on_exit              # called with (pid, wait status)
        self.sock: socket.socket | None = None
        self.child = None

    def start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            spec = ProcessSpec(argv=("nsuwsgi-forkserver",), executable="", env=(),
                               pass_fds=(theirs.fileno(),), new_session=False,
                               pdeathsig=int(signal.SIGKILL), run=lambda: serve(theirs))
            self.child = spawn(spec, self.loop.clock())
        finally:
            theirs.close()
        self.sock = ours
        self.loop.add_reader(self.sock, self._readable)
        self.log(f"[emperor] fork-server started (pid: {self.child.pid})")

    def spawn(self, argv: list[str], env: dict[str, str], cwd: str, uid: int | None,
              gid: int | None, stdin_fd: int | None) -> int:
        """A new vassal's pid. Raises OSError (the child's errno) or ForkServerGone."""
        request = json.dumps({"argv": argv, "env": env, "cwd": cwd, "uid": uid,
                              "gid": gid}).encode()
        fds = [stdin_fd] if stdin_fd is not None else []
        rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        try:
            self.sock.sendmsg([request], rights)
        except OSError as err:
            raise ForkServerGone(str(err)) from None
        while True:                          # exits may arrive before our answer
            words = self._receive(blocking=True)
            if words[0] == "spawned":
                return int(words[1])
            if words[0] == "failed":
                raise OSError(int(words[1]), os.strerror(int(words[1])))

    def _readable(self) -> None:
        while self._receive(blocking=False):
            pass

    def _receive(self, blocking: bool) -> list[str]:
        self.sock.settimeout(10.0 if blocking else 0.0)
        try:
            data = self.sock.recv(256)
        except (BlockingIOError, InterruptedError):
            return []
        except (socket.timeout, OSError) as err:
            raise ForkServerGone(str(err)) from None
        if not data:
            self.loop.remove_reader(self.sock)
            raise ForkServerGone("the fork-server ended")
        words = data.decode().split()
        if words[0] == "exit":
            self.on_exit(int(words[1]), int(words[2]))
        return words

    def close(self) -> None:
        """The fork-server sees EOF and exits; the Emperor reaps it."""
        if self.sock is not None:
            self.loop.remove_reader(self.sock)
            self.sock.close()
            self.sock = None
        if self.child is not None:
            os.waitid(os.P_PIDFD, self.child.pidfd, os.WEXITED)
            os.close(self.child.pidfd)
            self.child = None


def vassal_args(argv: list[str]) -> list[str] | None:
    """The nsuwsgi arguments of a vassal command, or None if it is not plain nsuwsgi."""
    if len(argv) >= 3 and argv[0] == sys.executable and tuple(argv[1:3]) == NSUWSGI_PREFIX:
        return argv[3:]
    return None


# --------------------------------------------------------------------------- the server side

def serve(sock: socket.socket) -> int:
    for name in VASSAL_MODULES:
        importlib.import_module(name)
    gc.collect()
    gc.freeze()                  # the imported code stays shared with every vassal
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_IGN)      # the Emperor ends us by closing the socket
    loop = Loop()
    loop.on_signal(signal.SIGCHLD, lambda signum: _report_exits(sock))
    loop.add_reader(sock, lambda: _one_request(sock, loop))
    loop.run(until=lambda: sock.fileno() < 0)
    return 0


def _one_request(sock: socket.socket, loop: Loop) -> None:
    data, ancdata, _, _ = sock.recvmsg(1 << 20, socket.CMSG_SPACE(4))
    if not data:                             # the Emperor closed its end: we are done
        loop.remove_reader(sock)
        sock.close()
        return
    fds = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds += array.array("i", payload[:len(payload) - len(payload) % 4]).tolist()
    try:
        child = spawn(vassal_spec(json.loads(data), fds[0] if fds else None), loop.clock())
    except SpawnError as err:
        sock.send(f"failed {err.errno or errno.EIO}".encode())
        return
    finally:
        for fd in fds:
            os.close(fd)
    os.close(child.pidfd)                    # exits are reaped on SIGCHLD
    sock.send(f"spawned {child.pid}".encode())


def vassal_spec(request: dict, stdin_fd: int | None) -> ProcessSpec:
    """The vassal as the one spawn primitive runs it: this process's code, no exec."""
    uid, gid = request["uid"], request["gid"]
    args = vassal_args(request["argv"]) or []
    return ProcessSpec(argv=tuple(request["argv"]), executable="", env=(),
                       cwd=request["cwd"], uid=uid, gid=gid,
                       groups=() if uid is not None or gid is not None else None,
                       stdin_fd=stdin_fd, new_session=True, pdeathsig=int(signal.SIGKILL),
                       run=lambda: run_vassal(request["env"], args))


def run_vassal(env: dict[str, str], args: list[str]) -> int:
    """In the forked child, as the vassal's user, in its directory: `nsuwsgi ARGS`."""
    os.environ.clear()
    os.environ.update(env)
    sys.argv = [sys.argv[0] if sys.argv else "nsuwsgi", *args]
    try:
        return main(args)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def _report_exits(sock) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        sock.send(f"exit {pid} {status}".encode())
