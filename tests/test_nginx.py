"""Real nginx in front of nsuwsgi: `uwsgi_pass unix:SOCK;` with Debian's stock uwsgi_params.

Each test starts nsuwsgi on a unix socket speaking the uwsgi protocol, then nginx as a
foreground child (`nginx -c CONF -p PREFIX -g 'daemon off;'`) listening on a unix socket too,
so no TCP port is used at all. Clients speak HTTP/1.1 to nginx's socket; the app echoes what
it was given as JSON. Both servers are stopped by pid at the end of every test.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile

import pytest

from nsuwsgi import linux
from support import OWNED, kill_pid, wait_for

NGINX = "/usr/sbin/nginx"
UWSGI_PARAMS = "/etc/nginx/uwsgi_params"

pytestmark = [
    pytest.mark.skipif(not os.access(NGINX, os.X_OK),
                       reason=f"{NGINX} is not installed (apt-get install nginx-light)"),
    pytest.mark.skipif(not os.path.exists(UWSGI_PARAMS),
                       reason=f"{UWSGI_PARAMS} is missing (it comes with nginx-common)"),
]

ECHO = '''
import hashlib, json, os

def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/boom":
        raise RuntimeError("boom on purpose")
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length)
    info = {key: environ.get(key) for key in (
        "REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "SERVER_PROTOCOL", "REQUEST_URI",
        "CONTENT_LENGTH", "CONTENT_TYPE", "HTTP_HOST")}
    info.update(length=len(body), sha256=hashlib.sha256(body).hexdigest(), pid=os.getpid())
    data = json.dumps(info).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(data))),
                              ("X-Echo-App", "nsuwsgi" + path),
                              ("Set-Cookie", "a=1; Path=/"),
                              ("Set-Cookie", "b=2; Path=/")])
    return [data]
'''

CONFIG = """\
{user}worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{
    worker_connections 64;
}}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    client_max_body_size 8m;
    server {{
        listen unix:{listen};
        server_name nginx-front;
        location / {{
            include {params};
            uwsgi_pass unix:{upstream};
            add_header X-Nginx-Connection $connection always;
            add_header X-Nginx-Requests $connection_requests always;
        }}
    }}
}}
"""


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a unix socket (the Host header says `nginx-front`)."""

    def __init__(self, path: str, timeout: float = 10.0):
        super().__init__("nginx-front", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.unix_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class Nginx:
    """A real nginx master (plus its one worker) started in the foreground by a test."""

    def __init__(self, prefix, listen: str, upstream: str):
        self.prefix = str(prefix)
        os.makedirs(self.prefix, exist_ok=True)
        self.listen = listen
        self.conf = os.path.join(self.prefix, "nginx.conf")
        user = "user root;\n" if os.geteuid() == 0 else ""   # workers reach the upstream socket
        with open(self.conf, "w") as f:
            f.write(CONFIG.format(user=user, prefix=self.prefix, listen=listen,
                                  params=UWSGI_PARAMS, upstream=upstream))
        self.output = os.path.join(self.prefix, "nginx.out")
        self._out = open(self.output, "wb")
        self.proc = subprocess.Popen([NGINX, "-c", self.conf, "-p", self.prefix + "/",
                                      "-g", "daemon off;"],
                                     stdout=self._out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.prefix,
                                     start_new_session=True)
        OWNED.add(self.proc.pid)
        self.pid = self.proc.pid

    def log(self) -> str:
        parts = []
        for name in ("nginx.out", "error.log"):
            try:
                with open(os.path.join(self.prefix, name), errors="replace") as f:
                    parts.append(f"--- {name}\n{f.read()}")
            except FileNotFoundError:
                pass
        return "\n".join(parts)

    def errors(self) -> list[str]:
        """error.log lines at level error or worse (a 502, an upstream reset...)."""
        try:
            with open(os.path.join(self.prefix, "error.log"), errors="replace") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return []
        return [line for line in lines
                if any(f"[{lvl}]" in line for lvl in ("error", "crit", "alert", "emerg"))]

    def ready(self, timeout: float = 10.0) -> None:
        def answers():
            if self.proc.poll() is not None:
                raise AssertionError(f"nginx exited {self.proc.returncode}:\n{self.log()}")
            with socket.socket(socket.AF_UNIX) as sock:
                try:
                    sock.connect(self.listen)
                except OSError:
                    return False
                return True
        wait_for(answers, timeout, f"nginx on {self.listen}:\n{self.log()}")

    def workers(self) -> list[int]:
        return linux.proc_children(self.pid)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGQUIT (graceful shutdown) and wait; returns nginx's exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"nginx did not stop in {timeout}s:\n{self.log()}")

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            workers = self.workers()
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                for pid in workers:
                    kill_pid(pid)
        self._out.close()
        OWNED.discard(self.proc.pid)


@pytest.fixture
def front(nsuwsgi, tmp_path):
    """front(*nsuwsgi_args) -> (nsuwsgi instance, nginx, nginx's socket path)."""
    sockdir = tempfile.mkdtemp(prefix="nsung", dir="/tmp")
    os.chmod(sockdir, 0o777)
    started: list[Nginx] = []

    def start(*extra):
        app = tmp_path / "echo.py"
        app.write_text(ECHO)
        upstream = os.path.join(sockdir, "app.sock")
        inst = nsuwsgi("--socket", upstream, "--wsgi-file", str(app), *extra)
        inst.ready()
        wait_for(lambda: inst.stats()["workers"] and all(
            w["pid"] > 0 for w in inst.stats()["workers"]), 10, f"workers:\n{inst.log()}")
        listen = os.path.join(sockdir, "nginx.sock")
        nginx = Nginx(tmp_path / "nginx", listen, upstream)
        started.append(nginx)
        nginx.ready()
        return inst, nginx, listen

    yield start
    for nginx in started:
        nginx.cleanup()
    shutil.rmtree(sockdir, ignore_errors=True)


def raw_request(path: str, request: bytes) -> http.client.HTTPResponse:
    """Send exact bytes to nginx, parse one response (the body is read before returning)."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(request)
        response = http.client.HTTPResponse(sock)
        response.begin()
        response.body = response.read()
        return response


def request(conn: UnixHTTPConnection, method: str, url: str, body=None, headers=None):
    conn.request(method, url, body=body, headers=headers or {})
    response = conn.getresponse()
    response.body = response.read()
    return response


def echoed(response) -> dict:
    assert response.status == 200, (response.status, response.body[:2000])
    return json.loads(response.body)


@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/1.0"])
def test_get_with_a_query_string_reaches_the_app(front, version):
    inst, nginx, path = front()
    response = raw_request(path, b"GET /some/where?a=1&b=two%%20words HTTP/%s\r\n"
                                 b"Host: example.test\r\nConnection: close\r\n\r\n"
                           % version[5:].encode())
    info = echoed(response)
    assert info["REQUEST_METHOD"] == "GET"
    assert info["PATH_INFO"] == "/some/where"
    assert info["QUERY_STRING"] == "a=1&b=two%20words"
    assert info["REQUEST_URI"] == "/some/where?a=1&b=two%20words"
    assert info["SERVER_PROTOCOL"] == version
    assert info["HTTP_HOST"] == "example.test"
    assert info["length"] == 0
    assert nginx.stop() == 0
    assert nginx.errors() == []


def test_percent_encoded_path_arrives_decoded_as_wsgi_latin1(front):
    inst, nginx, path = front()
    response = raw_request(path, b"GET /caf%C3%A9/x?q=%C3%A9 HTTP/1.1\r\nHost: t\r\n"
                                 b"Connection: close\r\n\r\n")
    info = echoed(response)
    assert info["PATH_INFO"] == "/café/x".encode().decode("latin-1"), "PEP 3333 bytes-as-latin-1"
    assert info["QUERY_STRING"] == "q=%C3%A9", "the query string stays encoded"


@pytest.mark.parametrize("size", [11, 1 << 20], ids=["small", "1MiB"])
def test_post_body_arrives_intact(front, size):
    inst, nginx, path = front()
    body = b"hello world" if size == 11 else os.urandom(size)
    with contextlib.closing(UnixHTTPConnection(path, timeout=30)) as conn:
        response = request(conn, "POST", "/upload?x=1", body=body,
                           headers={"Content-Type": "application/octet-stream"})
    info = echoed(response)
    assert info["REQUEST_METHOD"] == "POST"
    assert info["PATH_INFO"] == "/upload"
    assert info["CONTENT_LENGTH"] == str(size)
    assert info["CONTENT_TYPE"] == "application/octet-stream"
    assert info["length"] == size
    assert info["sha256"] == hashlib.sha256(body).hexdigest()
    assert nginx.errors() == []


def test_response_headers_set_by_the_app_come_back(front):
    inst, nginx, path = front()
    with contextlib.closing(UnixHTTPConnection(path)) as conn:
        response = request(conn, "GET", "/hdr")
    assert response.status == 200
    assert response.getheader("X-Echo-App") == "nsuwsgi/hdr"
    assert response.getheader("Content-Type") == "application/json"
    assert response.msg.get_all("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
    assert int(response.getheader("Content-Length")) == len(response.body)


def test_keep_alive_from_the_client_to_nginx(front):
    inst, nginx, path = front()
    with contextlib.closing(UnixHTTPConnection(path)) as conn:
        seen = []
        first_sock = None
        for i in range(1, 6):
            response = request(conn, "POST" if i % 2 else "GET", f"/n{i}?i={i}",
                               body=b"x" * i if i % 2 else None)
            info = echoed(response)
            assert info["PATH_INFO"] == f"/n{i}" and info["QUERY_STRING"] == f"i={i}"
            assert info["length"] == (i if i % 2 else 0)
            assert not response.will_close, "nginx keeps the client connection open"
            first_sock = first_sock or conn.sock
            assert conn.sock is first_sock, "http.client did not reconnect"
            seen.append((response.getheader("X-Nginx-Connection"),
                         int(response.getheader("X-Nginx-Requests"))))
    assert len({c for c, _ in seen}) == 1, f"one nginx connection served all: {seen}"
    assert [n for _, n in seen] == [1, 2, 3, 4, 5]
    assert nginx.errors() == []


def test_an_app_error_gives_500_through_nginx(front):
    inst, nginx, path = front()
    with contextlib.closing(UnixHTTPConnection(path)) as conn:
        response = request(conn, "GET", "/boom")
        assert response.status == 500
        inst.wait_log("boom on purpose")
        after = request(conn, "GET", "/fine")
        assert echoed(after)["PATH_INFO"] == "/fine", "nginx and the worker keep serving"
    assert nginx.errors() == [], "a clean 500 from upstream, not a broken upstream"


def test_upstream_keeps_working_while_workers_are_recycled(front):
    inst, nginx, path = front("--max-requests", "2", "--processes", "1")
    pids = []
    with contextlib.closing(UnixHTTPConnection(path)) as conn:
        for i in range(6):                       # one client connection to nginx
            response = request(conn, "POST", f"/k{i}", body=b"data%d" % i)
            pids.append(echoed(response)["pid"])
    for i in range(4):                           # and a fresh one per request
        with contextlib.closing(UnixHTTPConnection(path)) as conn:
            pids.append(echoed(request(conn, "GET", f"/f{i}"))["pid"])
    assert len(pids) == 10
    counts = collections.Counter(pids)
    assert len(counts) == 5 and set(counts.values()) == {2}, \
        f"each worker served exactly 2 requests before being replaced: {pids}"
    assert "max-requests 2" in inst.log()
    assert nginx.errors() == [], "no 502, no upstream reset while workers were recycled"
    assert nginx.stop() == 0
    assert inst.stop() == 0
