"""The prefork worker: one request at a time, many connections parked between requests.

A sync worker that kept serving one keep-alive connection would starve every other client of
the same process. So the worker waits in one selector on the listening sockets *and* on its
idle keep-alive connections, serves whichever is ready, one request at a time, and parks the
connection again afterwards. The app's code runs in this process only; a stuck request is the
master's business (harakiri reads the scoreboard).

Signals, as uWSGI's workers: SIGHUP finishes the current request and leaves (graceful),
SIGINT/SIGTERM leave at once. A worker exits 0 after `max-requests` and is replaced.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import time

import _signal       # signal.signal converts to enums: pages every process touches

from nsuwsgi.server.apps import AppLoadError, load_apps
from nsuwsgi.server.events import BadRequest, Body, End, Head, Limits
from nsuwsgi.server.http import HttpParser
from nsuwsgi.server.sockets import HTTP
from nsuwsgi.server.uwsgi import UwsgiParser
from nsuwsgi.server.wsgi import (BodyReader, ClientGone, Response, call_app, environ_base,
                                 environ_from, on_app_exception)

EXIT_APP_FAILED = 22
KEEPALIVE_IDLE = 15.0           # seconds a parked keep-alive connection may stay silent
REQUEST_TIMEOUT = 60.0          # seconds a client may take to send the rest of a request
RECV = 65536
# The reason phrases of the statuses a parser's BadRequest carries (http.HTTPStatus would
# import a large enum at every start for these few lines).
BAD_REQUEST_PHRASES = {400: b"Bad Request", 408: b"Request Timeout", 411: b"Length Required",
                       413: b"Request Entity Too Large", 414: b"Request-URI Too Long",
                       417: b"Expectation Failed", 431: b"Request Header Fields Too Large",
                       501: b"Not Implemented", 505: b"HTTP Version Not Supported"}


class Stop(Exception):
    """Leave the serving loop (graceful stop, or max-requests reached)."""


class Connection:
    __slots__ = ("sock", "parser", "events", "base", "uwsgi", "last_used", "peer", "parked")

    def __init__(self, sock, protocol: str, limits: Limits, server: tuple[str, str], peer):
        self.sock = sock
        self.uwsgi = protocol != HTTP
        self.parser = UwsgiParser(limits) if self.uwsgi else HttpParser(limits)
        self.events: list = []
        self.peer = peer
        remote_addr, remote_port = peer[:2] if isinstance(peer, tuple) else ("", "")
        self.base = environ_base(server_name=server[0], server_port=server[1],
                                 remote_addr=remote_addr, remote_port=remote_port)
        self.last_used = time.monotonic()
        self.parked = False     # registered in the worker's selector (stays so between requests)

    def fill(self) -> bool:
        """Read once and parse; False when the client closed the connection."""
        try:
            data = self.sock.recv(RECV)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not data:
            return False
        self.events.extend(self.parser.feed(data))
        return True


class Worker:
    def __init__(self, config, listeners, slot, index: int, log):
        self.config, self.listeners, self.slot, self.index = config, listeners, slot, index
        self.log = log
        self.limits = Limits(buffer_size=config["buffer-size"])
        self.max_requests = config["max-requests"]
        self.log_requests = not config["disable-logging"]
        self.served = 0
        self.stopping = False
        self.selector = selectors.DefaultSelector()
        self.app = None
        self.response = None                # the response being written, for _graceful
        self.servers = {}                   # listener -> (SERVER_NAME, SERVER_PORT)
        self.tcp = set()                    # the listeners whose connections get TCP_NODELAY
        self.pid = os.getpid()

    # ---- setup

    def run(self) -> int:
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
        _signal.signal(_signal.SIGHUP, self._graceful)
        _signal.signal(_signal.SIGINT, _leave_now)
        _signal.signal(_signal.SIGTERM, _leave_now)
        _signal.signal(_signal.SIGPIPE, _signal.SIG_IGN)
        _signal.signal(_signal.SIGUSR1, _signal.SIG_IGN)   # meant for the master (stats)
        _signal.signal(_signal.SIGUSR2, _signal.SIG_IGN)
        on_app_exception(self.slot.exception)          # stats: the worker's EXC column
        try:
            if self.config["cgi"]:
                from nsuwsgi.server.cgi import make_cgi_app     # CGI instances only
                self.app = make_cgi_app(self.config, log=self.log)
            else:
                self.app = load_apps(self.config, chdir=False, log=self.log).wsgi
        except AppLoadError as err:
            self.log(f"nsuwsgi: error: {err}")
            if err.traceback:
                self.log(err.traceback.rstrip())
            return EXIT_APP_FAILED
        self.selector.register(wake_r, selectors.EVENT_READ, None)
        for sock, protocol in self.listeners:
            self.selector.register(sock, selectors.EVENT_READ, protocol)
            self.servers[sock] = _server_name(sock)
            if sock.family != socket.AF_UNIX:       # read once: it converts to an enum
                self.tcp.add(sock)
        try:
            self.serve()
        except Stop:
            pass
        return 0

    def _graceful(self, signum, frame) -> None:
        self.stopping = True
        if self.response is not None:
            self.response.keep_alive = False    # the answer in progress says Connection: close

    # ---- the loop

    def serve(self) -> None:
        while not self.stopping:
            for key, _ in self.selector.select(timeout=KEEPALIVE_IDLE / 3):
                data = key.data
                if data is None:
                    _drain(key.fileobj)
                elif isinstance(data, str):
                    if self.stopping:   # SIGHUP woke this select: the next generation accepts
                        break
                    self.accept(key.fileobj, data)
                else:
                    self.serve_connection(data)
                if self.stopping:
                    break
            self.close_idle()
        self.close_all()

    def accept(self, listener, protocol: str) -> None:
        """Take one waiting connection and serve it now. (Taking a whole burst and parking it
        would shorten tail latency under bursts, but a graceful stop must then serve what it
        parked: left for later, see docs/status.md.)"""
        try:
            sock, peer = listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return                      # another worker took it
        sock.settimeout(REQUEST_TIMEOUT)
        if listener in self.tcp:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.serve_connection(Connection(sock, protocol, self.limits, self.servers[listener],
                                         peer))

    def serve_connection(self, conn: Connection) -> None:
        """Serve every request the connection has ready; park it or close it afterwards."""
        try:
            keep = self.serve_requests(conn)
        except (ClientGone, OSError):
            keep = False
        if keep and not self.stopping:
            conn.last_used = time.monotonic()
            if not conn.parked:
                # Registered once, and left registered while it is served and between
                # requests: two epoll_ctl calls and two mode switches per keep-alive request
                # were ~10% of a hello-world request. It keeps its REQUEST_TIMEOUT mode: the
                # select loop only reads it once it is readable.
                self.selector.register(conn.sock, selectors.EVENT_READ, conn)
                conn.parked = True
        else:
            self.forget(conn)

    def forget(self, conn: Connection) -> None:
        if conn.parked:
            self.selector.unregister(conn.sock)
            conn.parked = False
        _close(conn.sock)

    def serve_requests(self, conn: Connection) -> bool:
        while True:
            head = self.next_head(conn)
            if head is None:
                return False
            keep = self.handle(conn, head)
            if self.max_requests and self.served >= self.max_requests:
                self.log(f"...The work of process {self.pid} is done "
                         f"(max-requests {self.max_requests}). Seeya!")
                self.stopping = True
                return False
            if not keep:
                return False
            if not conn.events and not self.stopping:
                return True             # park it until the client speaks again

    def next_head(self, conn: Connection):
        """The next request's Head, reading as needed; None on EOF or a bad request."""
        while True:
            while conn.events:
                event = conn.events.pop(0)
                if type(event) is Head:
                    return event
            try:
                if not conn.fill():
                    return None
            except BadRequest as bad:
                conn.events.extend(bad.events)
                if any(type(e) is Head for e in conn.events):
                    continue
                self.bad_request(conn, bad)
                return None

    def bad_request(self, conn: Connection, bad: BadRequest) -> None:
        self.log(f"[pid: {self.pid}] invalid request from {_peer(conn)}: "
                 f"{bad.status} {bad.reason}")
        if conn.uwsgi:
            return
        body = f"{bad.status} {bad.reason}\n".encode()
        phrase = BAD_REQUEST_PHRASES.get(bad.status, b"Bad Request")
        try:
            conn.sock.sendall(b"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
                              b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                              % (bad.status, phrase, len(body), body))
        except OSError:
            pass

    # ---- one request

    def handle(self, conn: Connection, head: Head) -> bool:
        started = self.slot.begin()
        body = BodyReader(self._body_source(conn),
                          self._send_continue(conn) if head.expect_continue else None)
        environ = environ_from(conn.base, head, body)
        last = self.max_requests and self.served + 1 >= self.max_requests
        response = Response.for_environ(conn.sock, environ,
                                        keep_alive=head.keep_alive and not last and
                                        not self.stopping, uwsgi=conn.uwsgi, log=self.log)
        self.response = response
        keep = call_app(self.app, environ, response, self.log)
        self.response = None
        self.served += 1
        self.slot.end(response.sent + response.head_size)
        if keep:
            keep = self._skip_unread_body(body)
        if self.log_requests:
            self.log_request(conn, environ, response, started)
        return keep

    def _body_source(self, conn: Connection):
        def source() -> bytes:
            while True:
                while conn.events:
                    event = conn.events[0]
                    if type(event) is Body:
                        conn.events.pop(0)
                        return event.data
                    if type(event) is End:
                        conn.events.pop(0)      # BodyReader asks no more after b""
                    return b""
                if not conn.fill():
                    raise ClientGone("the client closed the connection mid-body")
        return source

    @staticmethod
    def _send_continue(conn: Connection):
        def send() -> None:
            conn.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        return send

    @staticmethod
    def _skip_unread_body(body: BodyReader) -> bool:
        """The app did not read the whole body: drain it so the next request parses.

        A client still waiting for `100 Continue` has not sent the body, and a 100 now would
        follow the final response: close the connection instead.
        """
        if body.continue_pending:
            return False
        try:
            return body.drain()
        except (ClientGone, OSError, BadRequest):
            return False

    def log_request(self, conn: Connection, environ: dict, response, started: float) -> None:
        ms = int((time.monotonic() - started) * 1000)
        self.log(f"[pid: {self.pid}|app: 0|req: {self.served}/{self.served}] {_peer(conn)} () "
                 f"{{{len(environ)} vars}} [{time.asctime()}] {environ.get('REQUEST_METHOD')} "
                 f"{environ.get('REQUEST_URI') or environ.get('PATH_INFO')} => generated "
                 f"{response.sent} bytes in {ms} msecs ({environ.get('SERVER_PROTOCOL')} "
                 f"{response.code}) (1 switches on core 0)")

    # ---- housekeeping

    def close_idle(self) -> None:
        deadline = time.monotonic() - KEEPALIVE_IDLE
        for key in list(self.selector.get_map().values()):
            conn = key.data
            if isinstance(conn, Connection) and conn.last_used < deadline:
                self.forget(conn)

    def close_all(self) -> None:
        for key in list(self.selector.get_map().values()):
            if isinstance(key.data, Connection):
                _close(key.data.sock)
        self.selector.close()


def _leave_now(signum, frame) -> None:
    os._exit(0)


def _drain(sock) -> None:
    try:
        while sock.recv(4096):
            pass
    except (BlockingIOError, OSError):
        pass


def _close(sock) -> None:
    try:
        sock.close()
    except OSError:
        pass


def _server_name(listener) -> tuple[str, str]:
    """A listener's (SERVER_NAME, SERVER_PORT), once per worker, not a syscall per accept."""
    name = listener.getsockname()
    return (name[0], str(name[1])) if isinstance(name, tuple) else ("", "")


def _peer(conn: Connection) -> str:
    return conn.peer[0] if isinstance(conn.peer, tuple) else "unix"


def run_worker(config, listeners, slot, index: int, log) -> int:
    """The worker process's whole life; returns its exit code."""
    return Worker(config, listeners, slot, index, log).run()
