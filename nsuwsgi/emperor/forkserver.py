"""The fork-server: vassals forked from a clean process that has already imported nsuwsgi.

Starting each vassal as a fresh interpreter costs its imports (tens of ms of CPU) and about
10 MB of private memory. The fork-server is forked from the Emperor at startup, imports what a
vassal needs, freezes its heap, and from then on only forks: each child becomes one vassal,
which reads its own config, drops to its own user and jails itself. The fork-server never reads
a tenant's config, so no tenant's data can leak into another vassal through it; the pages of
the imported code stay shared between every vassal (copy-on-write).

The protocol is two kinds of SOCK_SEQPACKET messages on a socketpair. The Emperor sends a
JSON request (argv, env, cwd, uid, gid), with the on-demand socket as SCM_RIGHTS when there is
one; the fork-server answers `spawned PID` or `failed ERRNO`. When a vassal ends the fork-server
(its parent) reaps it and sends `exit PID STATUS`. Vassals get PDEATHSIG SIGKILL from the
fork-server, and the fork-server from the Emperor, so a SIGKILLed Emperor leaves nothing.
"""

from __future__ import annotations

import array
import gc
import importlib
import json
import os
import selectors
import signal
import socket
import sys

from nsuwsgi import linux

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
        from nsuwsgi.spawn import spawn
        from nsuwsgi.spec import ProcessSpec
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
    wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *a: None)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_IGN)      # the Emperor ends us by closing the socket
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    selector.register(wake_read, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            if key.fileobj is sock:
                if not _one_request(sock, selector, wake_read, wake_write):
                    return 0
            else:
                _drain(wake_read)
                _report_exits(sock)


def _one_request(sock, selector, wake_read: int, wake_write: int) -> bool:
    data, ancdata, _, _ = sock.recvmsg(1 << 20, socket.CMSG_SPACE(4))
    if not data:
        return False
    fds = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds += array.array("i", payload[:len(payload) - len(payload) % 4]).tolist()
    request = json.loads(data)
    try:
        pid = os.fork()
    except OSError as err:
        sock.send(f"failed {err.errno}".encode())
        return True
    if pid == 0:
        selector.close()
        sock.close()
        signal.set_wakeup_fd(-1)
        os.close(wake_read)
        os.close(wake_write)
        _become_vassal(request, fds[0] if fds else None)       # never returns
    for fd in fds:
        os.close(fd)
    sock.send(f"spawned {pid}".encode())
    return True


def _report_exits(sock) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        sock.send(f"exit {pid} {status}".encode())


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _become_vassal(request: dict, stdin_fd: int | None) -> None:
    """The forked child turns into `nsuwsgi ARGS` as that vassal's user. Never returns."""
    code = 1
    try:
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP,
                    signal.SIGQUIT):
            signal.signal(sig, signal.SIG_DFL)
        os.setsid()
        linux.set_pdeathsig(signal.SIGKILL)
        if os.getppid() == 1:
            os._exit(1)                         # the fork-server is already gone
        fd = stdin_fd if stdin_fd is not None else os.open(os.devnull, os.O_RDONLY)
        os.dup2(fd, 0)
        os.close(fd)
        if request["gid"] is not None:
            os.setgroups([])
            os.setgid(request["gid"])
        if request["uid"] is not None:
            os.setuid(request["uid"])
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        args = vassal_args(request["argv"]) or []
        sys.argv = [sys.argv[0] if sys.argv else "nsuwsgi", *args]
        from nsuwsgi.cli import main
        code = main(args)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
