"""The fork-server: vassals forked from a clean process that has already imported nsuwsgi.

Starting each vassal as a fresh interpreter costs its imports (tens of ms of CPU) and about
10 MB of private memory. The fork-server is forked from the Emperor at startup, imports what a
vassal needs, runs a vassal's first steps on made-up input (warm_up), freezes its heap, and
from then on only forks, through the one spawn primitive
(a `run` payload instead of an exec): each child becomes one vassal, which reads its own
config, drops to its own user and jails itself. The fork-server never reads a tenant's config,
so no tenant's data can leak into another vassal through it; the pages of the imported code
stay shared between every vassal (copy-on-write).

The protocol is two kinds of SOCK_SEQPACKET messages on a socketpair. The Emperor sends a
JSON request (argv, env, cwd, uid, gid), with the on-demand socket as SCM_RIGHTS when there is
one; the fork-server answers `spawned PID` (with the child's pidfd as SCM_RIGHTS) or
`failed ERRNO`. When a vassal ends the fork-server
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
import selectors
import signal
import socket
import sys

from nsuwsgi import linux
from nsuwsgi.cli import main
from nsuwsgi.loop import Loop
from nsuwsgi.spawn import SpawnError, spawn
from nsuwsgi.spec import ProcessSpec

# What a vassal imports to serve an app, run daemons and build a jail. The last two are
# imported lazily by the standard library (the utf-8-sig codec reads a config file, runpy
# loads a wsgi-file): imported here they cost a vassal nothing (~0.4 MB less, measured).
VASSAL_MODULES = ("nsuwsgi.cli", "nsuwsgi.config", "nsuwsgi.options", "nsuwsgi.instance",
                  "nsuwsgi.master", "nsuwsgi.server.worker", "nsuwsgi.server.pool",
                  "nsuwsgi.server.scoreboard", "nsuwsgi.daemons", "nsuwsgi.watch",
                  "nsuwsgi.stats", "nsuwsgi.jail.plan", "nsuwsgi.jail.apply",
                  "nsuwsgi.jail.init", "nsuwsgi.jail.hooks", "nsuwsgi.spawn",
                  "encodings.utf_8_sig", "runpy")
NSUWSGI_PREFIX = ("-m", "nsuwsgi")


class ForkServerGone(Exception):
    pass


class ForkServer:
    """The Emperor's side: start the server, ask it for vassals, hear when they end."""

    def __init__(self, loop, log, on_exit, on_gone):
        self.loop = loop
        self.log = log
        self.on_exit = on_exit              # called with (pid, wait status)
        self.on_gone = on_gone              # called with the reason, if the server dies
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
              gid: int | None, stdin_fd: int | None) -> tuple[int, int]:
        """A new vassal's (pid, pidfd). Raises OSError (the child's errno) or ForkServerGone.

        The pidfd comes from the fork-server, made before it could reap the child: a vassal
        that fails at once (a malformed file) may be gone, and its pid free, by the time we
        read the answer, so opening a pidfd here could fail or, worse, name another process.
        """
        request = json.dumps({"argv": argv, "env": env, "cwd": cwd, "uid": uid,
                              "gid": gid}).encode()
        fds = [stdin_fd] if stdin_fd is not None else []
        rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        try:
            self.sock.sendmsg([request], rights)
        except OSError as err:
            raise ForkServerGone(str(err)) from None
        while True:                          # exits may arrive before our answer
            words, pidfds = self._receive(blocking=True)
            if words[0] == "exit":
                # Reported from the loop once we have returned: on_exit may respawn a vassal,
                # and a spawn() nested in this one would take our answer as its own.
                self.loop.call_later(0, lambda pid=int(words[1]), status=int(words[2]):
                                     self.on_exit(pid, status))
            if words[0] == "spawned":
                for extra in pidfds[1:]:
                    os.close(extra)
                if not pidfds:
                    raise ForkServerGone("the fork-server sent no pidfd")
                return int(words[1]), pidfds[0]
            for fd in pidfds:
                os.close(fd)
            if words[0] == "failed":
                raise OSError(int(words[1]), os.strerror(int(words[1])))

    def _readable(self) -> None:
        while True:
            try:
                words, fds = self._receive(blocking=False)
            except ForkServerGone as err:
                self.on_gone(str(err))
                return
            for fd in fds:                  # only a "spawned" answer carries one
                os.close(fd)
            if not words:
                return
            if words[0] == "exit":
                self.on_exit(int(words[1]), int(words[2]))

    def _receive(self, blocking: bool) -> tuple[list[str], list[int]]:
        self.sock.settimeout(10.0 if blocking else 0.0)
        try:
            data, ancdata, _, _ = self.sock.recvmsg(256, socket.CMSG_SPACE(4),
                                                    socket.MSG_CMSG_CLOEXEC)
        except (BlockingIOError, InterruptedError):
            return [], []
        except (socket.timeout, OSError) as err:
            raise ForkServerGone(str(err)) from None
        fds = received_fds(ancdata)
        if not data:
            for fd in fds:
                os.close(fd)
            self.loop.remove_reader(self.sock)
            raise ForkServerGone("the fork-server ended")
        return data.decode().split(), fds

    def kill(self) -> None:
        if self.child is not None:
            try:
                linux.pidfd_send_signal(self.child.pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass

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
    linux.set_process_title("nsuwsgi emperor fork-server")
    for name in VASSAL_MODULES:
        importlib.import_module(name)
    try:
        warm_up()
    except WarmUpOverran:        # its timer fired on the way out: only an optimisation
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
    gc.collect()
    gc.freeze()                  # the imported code stays shared with every vassal
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_IGN)      # the Emperor ends us by closing the socket
    loop = Loop()
    loop.on_signal(signal.SIGCHLD, lambda signum: _report_exits(sock))
    loop.add_reader(sock, lambda: _one_request(sock, loop))
    loop.run(until=lambda: sock.fileno() < 0)
    return 0


# A made-up vassal config for warm_up(): no tenant's file is ever read here.
WARM_UP_CONFIG = b"""[uwsgi]
master = true
processes = 1
http-socket = 127.0.0.1:0
socket = /nonexistent/nsuwsgi-warm-up.sock
wsgi-file = /nonexistent/nsuwsgi-warm-up.py
disable-logging = true
env = NSUWSGI_WARM_UP=%d
"""
WARM_UP_APP = b"""BODY = b"ok"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", "2")]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
"""
WARM_UP_ROUNDS = 10         # CPython 3.11 specialises a function's bytecode after 8 calls


def warm_up(rounds: int = WARM_UP_ROUNDS) -> bool:
    """Run what every vassal runs first, here, once, before any fork: its pages stay shared.

    A vassal that runs code the fork-server never ran writes to it: CPython counts the calls
    of each function and then rewrites its bytecode in place (specialisation), and fills the
    caches of the types it uses; every page written is then a private copy in every vassal.
    So the fork-server reads a made-up config (from a memfd, with the same loaders and option
    parsers a vassal master uses), loads a made-up app the way a worker loads a wsgi-file, and
    serves made-up requests with it through the worker's own loop, WARM_UP_ROUNDS times. Measured: about -0.5 MB per vassal (docs/architecture.md). Only an
    optimisation: whatever fails here is skipped silently (tests/test_emperor_forkserver.py
    checks that it runs to the end).
    """
    from nsuwsgi.config import load_config
    from nsuwsgi.server.apps import load_app
    config = run_from_memfd(WARM_UP_CONFIG, rounds,
                            lambda path: load_config(["--ini", path], {}, "/"))
    if config is None:
        return False
    before = set(sys.modules)
    try:
        app = run_from_memfd(WARM_UP_APP, rounds,
                             lambda path: load_app("wsgi-file", path, kind="file"))
    finally:            # the app's module (not what it imported): no vassal sees it
        for name in set(sys.modules) - before:
            if name.startswith("uwsgi_file_"):
                del sys.modules[name]
    return app is not None and warm_up_requests(config, app, rounds)


def run_from_memfd(data: bytes, rounds: int, load):
    """`load(path)` `rounds` times on a memfd holding `data`; its last result, or None if
    anything failed (only an optimisation: never fail for it)."""
    try:
        fd = os.memfd_create("nsuwsgi-warm-up")
    except OSError:
        return None
    result = None
    try:
        os.write(fd, data)
        for _ in range(rounds):
            result = load(f"/proc/self/fd/{fd}")
    except Exception:       # noqa: BLE001
        return None
    finally:
        os.close(fd)
    return result


def warm_up_requests(config, app, rounds: int) -> bool:
    """Serve made-up HTTP requests with `app` through a worker's own loop (Worker.serve:
    select, accept, parse, call the app, answer, park or close), on a loopback listener.

    The requests are queued before the loop runs, and the loop ends by the max-requests path
    after `rounds` of them; an interval timer bounds it should anything go wrong.
    """
    from nsuwsgi.server.scoreboard import Scoreboard
    from nsuwsgi.server.worker import Worker, _server_name

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    clients: list[socket.socket] = []
    scoreboard = worker = None
    armed = [False]

    def overran(signum, frame) -> None:
        if armed[0]:                    # not once the loop has returned: cleanup goes on
            raise WarmUpOverran()

    previous = signal.signal(signal.SIGALRM, overran)
    try:
        scoreboard = Scoreboard(1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(rounds)
        listener.setblocking(False)
        for n in range(rounds):             # HTTP/1.0 closes; HTTP/1.1 is parked (keep-alive)
            client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            clients.append(client)
            client.settimeout(1.0)
            client.connect(listener.getsockname())   # not create_connection: no idna codec
            client.sendall(b"GET /warm-up?a=%d HTTP/1.%d\r\nHost: localhost\r\n"
                           b"User-Agent: nsuwsgi\r\nAccept: */*\r\n\r\n" % (n, n % 2))
        worker = Worker(config, [(listener, "http")], scoreboard.writer(0), 1,
                        log=lambda line: None)
        worker.app, worker.max_requests = app, rounds
        worker.selector.register(listener, selectors.EVENT_READ, "http")
        worker.servers[listener] = _server_name(listener)
        worker.tcp.add(listener)
        armed[0] = True
        signal.setitimer(signal.ITIMER_REAL, WARM_UP_TIMEOUT)
        worker.serve()
        armed[0] = False
        return worker.served == rounds
    except (Exception, WarmUpOverran):  # noqa: BLE001 - only an optimisation: never fail
        return False
    finally:
        armed[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if worker is not None and worker.selector.get_map() is not None:
            worker.close_all()              # serve() did not get to it
        for client in clients:
            client.close()
        listener.close()
        if scoreboard is not None:
            scoreboard.close()


WARM_UP_TIMEOUT = 2.0       # seconds; the loop takes about a millisecond


class WarmUpOverran(BaseException):
    """Not an Exception: the app's error handling (call_app's) must not swallow it."""


def _one_request(sock: socket.socket, loop: Loop) -> None:
    data, ancdata, _, _ = sock.recvmsg(1 << 20, socket.CMSG_SPACE(4))
    if not data:                             # the Emperor closed its end: we are done
        loop.remove_reader(sock)
        sock.close()
        return
    fds = received_fds(ancdata)
    try:
        child = spawn(vassal_spec(json.loads(data), fds[0] if fds else None), loop.clock())
    except SpawnError as err:
        sock.send(f"failed {err.errno or errno.EIO}".encode())
        return
    finally:
        for fd in fds:
            os.close(fd)
    try:                                     # exits are reaped on SIGCHLD; the Emperor
        sock.sendmsg([f"spawned {child.pid}".encode()],     # watches it through our pidfd
                     [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [child.pidfd]))])
    finally:
        os.close(child.pidfd)


def received_fds(ancdata) -> list[int]:
    fds = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds += array.array("i", payload[:len(payload) - len(payload) % 4]).tolist()
    return fds


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
    # The title first: python-prctl finds the space it may overwrite by walking environ, and
    # crashes (SIGSEGV) if environ was emptied before its first call in the process.
    linux.set_process_title(" ".join(["nsuwsgi", *args]))     # as if exec'd, like uWSGI's
    replace_environ(env)
    sys.argv = [sys.argv[0] if sys.argv else "nsuwsgi", *args]
    try:
        return main(args)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def replace_environ(env: dict[str, str]) -> None:
    """Make os.environ equal `env`, touching only the entries that differ.

    A vassal's environment is mostly the fork-server's: clearing it all and setting it again
    would free and re-create every inherited entry, and each page they sit on would become
    a private copy in every vassal.
    """
    for name in [name for name in os.environ if name not in env]:
        del os.environ[name]
    for name, value in env.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


def _report_exits(sock) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        sock.send(f"exit {pid} {status}".encode())
