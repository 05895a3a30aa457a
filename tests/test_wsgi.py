"""The WSGI layer: environ (PEP 3333), app loading and mountpoints (uWSGI's rules), response
framing, FileWrapper/sendfile, static-map, wsgi.input.

Requests are stand-in Head objects with the field names of the parser contract
(nsuwsgi/server/__init__.py); when the real parsers exist, one test also goes through them.
Responses are written to a socketpair and read back by a thread until EOF.
"""

from __future__ import annotations

import io
import os
import socket
import sys
import threading
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from wsgiref.validate import validator

import pytest
from hypothesis import given, settings, strategies as st

from nsuwsgi.server import wsgi
from nsuwsgi.server.apps import AppLoadError, Apps, App, load_apps
from nsuwsgi.server.static import StaticMap
from nsuwsgi.server.wsgi import (BodyReader, FileWrapper, Response, build_environ, call_app,
                                 environ_base, environ_from)

APPS = Path(__file__).parent / "apps"


@dataclass
class Head:                     # the HTTP Head of the parser contract
    method: bytes = b"GET"
    target: bytes = b"/"
    version: str = "1.1"
    headers: list = field(default_factory=list)
    keep_alive: bool = True
    chunked: bool = False
    content_length: int | None = None


@dataclass
class UwsgiHead:                # the uwsgi Head: the web server's vars
    vars: dict = field(default_factory=dict)
    keep_alive: bool = False


def environ_for(head=None, body=b"", **kw) -> dict:
    chunks = iter([body] if body else [])
    args = dict(server_name="testhost", server_port=8080, remote_addr="10.0.0.9",
                remote_port=40000, url_scheme="http", body_stream=BodyReader(
                    lambda: next(chunks, b"")), errors_stream=sys.stderr)
    args.update(kw)
    return build_environ(head or Head(), **args)


# --------------------------------------------------------------------------- helpers

class Exchange:
    """A socketpair: the server writes on `server`, a thread collects the client's bytes."""

    def __init__(self):
        self.server, self.client = socket.socketpair()
        self.received = bytearray()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while data := self.client.recv(1 << 16):
            self.received += data

    def finish(self) -> bytes:
        self.server.shutdown(socket.SHUT_WR)
        self.thread.join(10)
        return bytes(self.received)

    def close(self):
        """Stop the reader thread before closing: no thread outlives its test (this process
        also forks, in other tests)."""
        try:
            self.server.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.thread.join(10)
        self.server.close()
        self.client.close()


@pytest.fixture
def exchange():
    ex = Exchange()
    yield ex
    ex.close()


@dataclass
class Reply:
    keep_alive: bool
    status: str
    headers: list
    body: bytes
    raw: bytes
    logs: list

    def header(self, name):
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return values[-1] if values else None

    def names(self):
        return [k.lower() for k, _ in self.headers]


def parse(raw: bytes):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = [tuple(line.split(": ", 1)) for line in lines[1:]]
    return lines[0], headers, body


def dechunk(body: bytes) -> tuple[bytes, bool]:
    """The payload of a chunked body, and whether the terminating chunk was there."""
    out = bytearray()
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return bytes(out), body == b"\r\n"
        out += body[:size]
        assert body[size:size + 2] == b"\r\n"
        body = body[size + 2:]
    return bytes(out), False


def run(ex: Exchange, app, *, method="GET", version="1.1", keep_alive=True, uwsgi=False,
        environ=None, headers=()) -> Reply:
    if environ is None:
        environ = environ_for(Head(method.encode(), b"/x", version, list(headers)))
    logs: list[str] = []
    response = Response.for_environ(ex.server, environ, keep_alive=keep_alive, uwsgi=uwsgi,
                                    log=logs.append)
    keep = call_app(app, environ, response, logs.append)
    raw = ex.finish()
    status, hdrs, body = parse(raw)
    return Reply(keep, status, hdrs, body, raw, logs)


def simple_app(body=b"Hello World", status="200 OK", headers=(("Content-Type", "text/plain"),),
               kind="list"):
    def app(environ, start_response):
        start_response(status, list(headers))
        if kind == "list":
            return [body]
        if kind == "tuple":
            return (body[:3], body[3:])
        return iter([body[:3], b"", body[3:]])          # a generator-like iterator
    return app


@pytest.fixture
def isolated(monkeypatch):
    """load_apps changes sys.path, sys.modules and the cwd: undo all three."""
    path, modules, cwd = list(sys.path), set(sys.modules), os.getcwd()
    yield
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        del sys.modules[name]
    os.chdir(cwd)


# --------------------------------------------------------------------------- environ: HTTP

def test_environ_http_basic_keys():
    env = environ_for(Head(b"POST", b"/a/b?x=1&y=%20", "1.1",
                           [(b"Host", b"example.org:8080"), (b"User-Agent", b"curl/8.0"),
                            (b"Content-Type", b"text/plain"), (b"Content-Length", b"5")]),
                      body=b"hello")
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/a/b"
    assert env["QUERY_STRING"] == "x=1&y=%20"
    assert env["REQUEST_URI"] == "/a/b?x=1&y=%20"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("testhost", "8080")
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("10.0.0.9", "40000")
    assert env["HTTP_HOST"] == "example.org:8080"
    assert env["HTTP_USER_AGENT"] == "curl/8.0"
    assert env["CONTENT_TYPE"] == "text/plain" and "HTTP_CONTENT_TYPE" not in env
    assert env["CONTENT_LENGTH"] == "5" and "HTTP_CONTENT_LENGTH" not in env
    assert env["wsgi.version"] == (1, 0)
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.multithread"] is False and env["wsgi.multiprocess"] is True
    assert env["wsgi.run_once"] is False
    assert env["wsgi.errors"] is sys.stderr
    assert env["wsgi.file_wrapper"] is FileWrapper
    assert env["wsgi.input"].read() == b"hello"
    for key, value in env.items():
        if not key.startswith("wsgi."):
            assert type(key) is str and type(value) is str, key


def test_environ_headers_joined_dropped_and_latin1():
    env = environ_for(Head(headers=[(b"Accept", b"text/html"), (b"accept", b"text/plain"),
                                    (b"Cookie", b"a=1"), (b"Cookie", b"b=2"),
                                    (b"X-Forwarded-For", b"1.2.3.4"),
                                    (b"X_Forwarded_For", b"6.6.6.6"),
                                    (b"X-Name", b"caf\xe9")]))
    assert env["HTTP_ACCEPT"] == "text/html,text/plain"
    assert env["HTTP_COOKIE"] == "a=1; b=2"
    assert env["HTTP_X_FORWARDED_FOR"] == "1.2.3.4"         # the underscore twin is dropped
    assert env["HTTP_X_NAME"] == "caf\xe9"


def test_environ_path_info_is_percent_decoded_latin1():
    env = environ_for(Head(target=b"/caf%C3%A9/a%2Fb%20c?q=%C3%A9"))
    assert env["PATH_INFO"] == "/caf\xc3\xa9/a/b c"        # bytes as latin-1 (PEP 3333)
    assert env["PATH_INFO"].encode("latin-1").decode("utf-8") == "/café/a/b c"
    assert env["QUERY_STRING"] == "q=%C3%A9"                # never decoded
    assert env["REQUEST_URI"] == "/caf%C3%A9/a%2Fb%20c?q=%C3%A9"


@pytest.mark.parametrize("target, path, query", [
    (b"http://example.org/p/q?x=1", "/p/q", "x=1"),
    (b"http://example.org", "/", ""),
    (b"*", "*", ""),
    (b"/a#frag", "/a", ""),
    (b"/a?x=1#frag", "/a", "x=1"),
])
def test_environ_target_forms(target, path, query):
    env = environ_for(Head(method=b"OPTIONS", target=target))
    assert (env["PATH_INFO"], env["QUERY_STRING"]) == (path, query)


def test_environ_http10_and_str_fields_and_base_reuse():
    base = environ_base(server_name="h", server_port=80, remote_addr="::1", remote_port=1,
                        url_scheme="https", script_name="/mnt", errors_stream=sys.stderr)
    env1 = environ_from(base, Head("PURGE", "/x", "1.0", []), None)
    env2 = environ_from(base, Head(b"GET", b"/y", (1, 1), [(b"A", b"1")]), None)
    assert env1["REQUEST_METHOD"] == "PURGE" and env1["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert env2["SERVER_PROTOCOL"] == "HTTP/1.1" and "HTTP_A" not in env1
    assert env1["wsgi.url_scheme"] == "https" and env1["SCRIPT_NAME"] == "/mnt"
    assert "HTTP_A" not in base and "PATH_INFO" not in base


def test_environ_passes_wsgiref_validator(exchange):
    def app(environ, start_response):
        body = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
        environ["wsgi.errors"].write("")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"got " + body]
    environ = environ_for(Head(b"POST", b"/v?a=b", "1.1",
                               [(b"Content-Length", b"4"), (b"Host", b"h")]), body=b"data")
    reply = run(exchange, validator(app), environ=environ)
    assert reply.status == "HTTP/1.1 200 OK", reply.logs
    assert dechunk(reply.body) == (b"got data", True)


# --------------------------------------------------------------------------- environ: uwsgi

def test_environ_uwsgi_vars_copied():
    uvars = {"REQUEST_METHOD": "GET", "REQUEST_URI": "/app/x?y=1", "PATH_INFO": "/app/x",
             "QUERY_STRING": "y=1", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "203.0.113.7",
             "REMOTE_PORT": "5555", "SERVER_NAME": "www.example.org", "SERVER_PORT": "443",
             "HTTP_HOST": "www.example.org", "CONTENT_LENGTH": "", "HTTPS": "on",
             "SCRIPT_NAME": ""}
    env = environ_for(UwsgiHead(uvars), remote_addr="", remote_port="")
    for key, value in uvars.items():
        assert env[key] == value, key
    assert env["wsgi.url_scheme"] == "https"
    assert env["wsgi.version"] == (1, 0) and env["wsgi.file_wrapper"] is FileWrapper
    assert hasattr(env["wsgi.input"], "read")


def test_environ_uwsgi_defaults_and_scheme():
    env = environ_for(UwsgiHead({"UWSGI_SCHEME": "https", "HTTP_X": "1"}))
    assert env["wsgi.url_scheme"] == "https"
    assert (env["REQUEST_METHOD"], env["PATH_INFO"], env["QUERY_STRING"],
            env["SCRIPT_NAME"]) == ("GET", "", "", "")
    assert env["SERVER_NAME"] == "testhost" and env["REMOTE_ADDR"] == "10.0.0.9"
    assert environ_for(UwsgiHead({"HTTPS": "off"}))["wsgi.url_scheme"] == "http"


def body_source(events):
    """A BodyReader source over parser events, as the worker feeds it."""
    from nsuwsgi.server.events import Body
    pieces = iter([e.data for e in events if isinstance(e, Body)])
    return lambda: next(pieces, b"")


def test_environ_from_real_http_parser():
    events = pytest.importorskip("nsuwsgi.server.events")
    http = pytest.importorskip("nsuwsgi.server.http")
    parser = http.HttpParser(events.Limits())
    found = parser.feed(b"POST /p%20q?x=1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nX-A: 2\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n3\r\nab\n\r\n4\r\ncd\nz\r\n0\r\n\r\n")
    head = next(e for e in found if isinstance(e, events.Head))
    env = environ_for(head, body_stream=BodyReader(body_source(found)))
    assert (env["REQUEST_METHOD"], env["PATH_INFO"], env["QUERY_STRING"]) == ("POST", "/p q",
                                                                              "x=1")
    assert env["HTTP_X_A"] == "1,2" and env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert "CONTENT_LENGTH" not in env and env["wsgi.input_terminated"] is True
    assert list(env["wsgi.input"]) == [b"ab\n", b"cd\n", b"z"]


def uwsgi_packet(pairs: dict, body: bytes = b"") -> bytes:
    data = b"".join(len(k).to_bytes(2, "little") + k.encode("latin-1") +
                    len(v).to_bytes(2, "little") + v.encode("latin-1") for k, v in pairs.items())
    return bytes([0]) + len(data).to_bytes(2, "little") + bytes([0]) + data + body


def test_environ_from_real_uwsgi_parser():
    events = pytest.importorskip("nsuwsgi.server.events")
    uwsgi = pytest.importorskip("nsuwsgi.server.uwsgi")
    uvars = {"REQUEST_METHOD": "PUT", "REQUEST_URI": "/caf%C3%A9", "PATH_INFO": "/caf\xc3\xa9",
             "QUERY_STRING": "", "SERVER_PROTOCOL": "HTTP/1.1", "CONTENT_LENGTH": "5",
             "REMOTE_ADDR": "198.51.100.1", "HTTP_HOST": "example.org", "HTTPS": "on"}
    found = uwsgi.UwsgiParser(events.Limits()).feed(uwsgi_packet(uvars, b"hello"))
    head = next(e for e in found if isinstance(e, events.Head))
    env = environ_for(head, body_stream=BodyReader(body_source(found)))
    for key, value in uvars.items():
        assert env[key] == value, key
    assert env["wsgi.url_scheme"] == "https" and env["wsgi.input"].read(5) == b"hello"
    assert "HTTP_X" not in env and env["SERVER_NAME"] == "testhost"


# --------------------------------------------------------------------------- mountpoints

MOUNTS = ("/foo", "/foobis/", "/footris/")


@pytest.fixture
def runner_apps(isolated):
    """uWSGI's t/python/manage_script_name/manage_script_name_test.ini."""
    app = str(APPS / "script_name.py")
    return load_apps({"wsgi-file": app, "mount": [f"{mp}={app}" for mp in MOUNTS],
                      "manage-script-name": True})


# (request, SCRIPT_NAME, PATH_INFO): the first two columns are uWSGI's test_mountpoints
RUNNER_TABLE = [
    ("/foo", "/foo", ""),
    ("/foo/", "/foo", "/"),
    ("/foo/resource", "/foo", "/resource"),
    ("/foobis/", "/foobis/", ""),
    ("/foobis", "/foobis/", ""),
    ("/foobis/resource", "/foobis/", "resource"),
    ("/footris/", "/footris/", ""),
    ("/footris", "/footris/", ""),
    ("/footris/resource", "/footris/", "resource"),
    ("/fooanything", "", "/fooanything"),
    ("/foobisis/", "", "/foobisis/"),
    ("/foofighters", "", "/foofighters"),
    ("/", "", "/"),
]


@pytest.mark.parametrize("path, script_name, path_info", RUNNER_TABLE)
def test_uwsgi_runner_mountpoints(runner_apps, exchange, path, script_name, path_info):
    environ = environ_for(Head(target=path.encode()))
    reply = run(exchange, runner_apps.wsgi, environ=environ)
    assert reply.body.decode() == f"{script_name}|{path_info}"


@pytest.mark.parametrize("path, expected", [
    ("/app/x", ("/app", "/x")), ("/app", ("/app", "")), ("/appx", None), ("/", None),
    ("/app/sub/y", ("/app/sub", "/y")), ("/app/subx", ("/app", "/subx")),
])
def test_manage_script_name_longest_mount_wins(path, expected):
    """§5.3's observed table, plus nested mounts (longest prefix on a / boundary)."""
    app = App("", lambda e, s: [], "wsgi-file", "x")
    apps = Apps([app, App("/app", app.callable, "mount", "m"),
                 App("/app/sub", app.callable, "mount", "m")], manage_script_name=True)
    assert apps.split(path) == expected


def test_without_manage_script_name_script_name_selects_exactly(isolated, exchange):
    app = str(APPS / "script_name.py")
    apps = load_apps({"wsgi-file": app, "mount": [f"/other={app}:other"]})
    # HTTP: SCRIPT_NAME is "", everything goes to the default app, PATH_INFO untouched
    env = environ_for(Head(target=b"/other/x"))
    assert apps.select(env) is apps.default and env["PATH_INFO"] == "/other/x"
    # uwsgi: the web server's SCRIPT_NAME picks the mount
    env = environ_for(UwsgiHead({"SCRIPT_NAME": "/other", "PATH_INFO": "/x"}))
    assert run(exchange, apps.wsgi, environ=env, uwsgi=True).body == b"other:/other"


def test_first_app_is_default_unless_no_default_app(isolated, exchange):
    app = str(APPS / "script_name.py")
    only_mounts = {"mount": [f"/a={app}:other"], "manage-script-name": "1"}
    apps = load_apps(only_mounts)
    assert apps.select(environ_for(Head(target=b"/elsewhere"))) is apps.apps[0].callable
    apps = load_apps({**only_mounts, "no-default-app": True})
    reply = run(exchange, apps.wsgi, environ=environ_for(Head(target=b"/elsewhere")))
    assert reply.status == "HTTP/1.1 404 Not Found" and reply.keep_alive


def test_single_app_is_called_directly(isolated):
    apps = load_apps({"wsgi-file": str(APPS / "hello.py")})
    assert apps.wsgi is apps.default and len(apps) == 1


def test_utf8_mountpoint_matches_latin1_path_info(isolated):
    app = str(APPS / "script_name.py")
    apps = load_apps({"wsgi-file": app, "mount": [f"/café={app}"],
                      "manage-script-name": True})
    env = environ_for(Head(target=b"/caf%C3%A9/x"))
    apps.select(env)
    assert (env["SCRIPT_NAME"].encode("latin-1").decode(), env["PATH_INFO"]) == ("/café",
                                                                                  "/x")


# --------------------------------------------------------------------------- app loading

def call(app, path="/") -> bytes:
    out = []
    body = b"".join(app(environ_for(Head(target=path.encode())),
                        lambda s, h, e=None: out.append(s)))
    return body


def test_load_wsgi_file_with_callable(isolated):
    apps = load_apps({"wsgi-file": str(APPS / "named_app.py"), "callable": "app"})
    assert call(apps.wsgi) == b"named"


def test_load_module_forms_with_pythonpath(isolated):
    apps = load_apps({"pythonpath": [str(APPS)], "module": "nsuwsgi_testpkg.wsgi"})
    assert call(apps.wsgi) == b"module default"
    apps = load_apps({"pythonpath": str(APPS), "wsgi": "nsuwsgi_testpkg.wsgi:api"})
    assert call(apps.wsgi) == b"module api"


def test_load_relative_to_chdir_and_mounts(isolated):
    apps = load_apps({"chdir": str(APPS), "wsgi-file": "hello.py",
                      "mount": ["/m=nsuwsgi_testpkg.wsgi:api", "/n=named_app.py:app"],
                      "callable": "application", "manage-script-name": True})
    assert os.getcwd() == str(APPS)
    assert "." in sys.path                         # uWSGI adds ".": the module mount works
    assert call(apps.wsgi, "/m/x") == b"module api"
    assert call(apps.wsgi, "/n") == b"named"
    assert call(apps.wsgi, "/") == b"Hello World"


def test_pythonpath_order_is_uwsgis(isolated, tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    load_apps({"pythonpath": [str(tmp_path / "a"), str(tmp_path / "b")]})
    assert sys.path.index(str(tmp_path / "b")) < sys.path.index(str(tmp_path / "a"))
    load_apps({"pythonpath": str(tmp_path / "*")})
    assert str(tmp_path / "a") in sys.path


def test_virtualenv_site_packages_come_first(isolated, tmp_path):
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site_packages = tmp_path / "venv" / "lib" / version / "site-packages"
    site_packages.mkdir(parents=True)
    (site_packages / "nsuwsgi_venv_probe.py").write_text(
        "def application(e, s):\n    s('200 OK', [])\n    return [b'from venv']\n")
    ours = [i for i, p in enumerate(sys.path) if p.endswith("site-packages")]
    apps = load_apps({"virtualenv": str(tmp_path / "venv"), "module": "nsuwsgi_venv_probe"})
    assert call(apps.wsgi) == b"from venv"
    position = sys.path.index(str(site_packages))
    assert all(position < sys.path.index(p) for p in sys.path
               if p.endswith("site-packages") and p != str(site_packages)), ours


def test_mount_dotted_wsgi_name_is_a_module_when_no_such_file(isolated):
    """uWSGI treats a mount ending in .wsgi as a file; Django's `mysite.wsgi` is a module."""
    apps = load_apps({"pythonpath": str(APPS), "manage-script-name": True,
                      "mount": ["/d=nsuwsgi_testpkg.wsgi", "/e=nsuwsgi_testpkg.wsgi:api"]})
    assert call(apps.wsgi, "/d/") == b"module default"
    assert call(apps.wsgi, "/e/x") == b"module api"


def load_error(settings) -> AppLoadError:
    with pytest.raises(AppLoadError) as info:
        load_apps(settings)
    error = info.value
    assert "\n" not in str(error)
    return error


def test_error_file_missing_names_option_and_hint(isolated, tmp_path):
    os.chdir(tmp_path)
    error = load_error({"wsgi-file": "nope.py"})
    assert error.option == "wsgi-file" and error.value == "nope.py"
    assert str(error).startswith("wsgi-file: 'nope.py' does not exist")
    assert str(tmp_path) in error.hint and "chdir" in error.hint


def test_error_directory(isolated):
    assert "is a directory" in str(load_error({"wsgi-file": str(APPS)}))


def test_error_syntax_error_keeps_line(isolated, tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def application(e, s):\n    return [b'x'\n\nx = (\n")
    error = load_error({"wsgi-file": str(bad)})
    assert error.option == "wsgi-file"
    assert f"syntax error in {bad}, line" in str(error)
    assert "SyntaxError" in error.traceback


def test_error_exception_at_import_keeps_traceback(isolated):
    error = load_error({"wsgi-file": str(APPS / "raises_at_import.py")})
    assert "raised RuntimeError: database is not configured" in str(error)
    assert "raises_at_import.py" in error.traceback and "in helper" in error.traceback
    assert "importlib" not in error.traceback.splitlines()[1]


def test_error_missing_callable_suggests_one(isolated):
    error = load_error({"wsgi-file": str(APPS / "named_app.py")})
    assert "has no callable named 'application'" in str(error)
    assert error.hint == "set callable = app"
    error = load_error({"wsgi-file": str(APPS / "named_app.py"), "callable": "not_callable"})
    assert "is a int, not a callable" in str(error)


def test_error_module_not_found_and_missing_dependency(isolated):
    error = load_error({"module": "nsuwsgi_no_such_app.wsgi"})
    assert error.option == "module"
    assert "no module named 'nsuwsgi_no_such_app'" in str(error) and "pythonpath" in error.hint
    error = load_error({"wsgi-file": str(APPS / "missing_dependency.py")})
    assert "imports 'nsuwsgi_no_such_dependency', which is not installed" in str(error)
    assert error.traceback and "missing_dependency.py" in error.traceback
    error = load_error({"module": "bad name"})
    assert "is not a module name" in str(error)


def test_error_mount_static_map_and_conflicts(isolated, tmp_path):
    hello = str(APPS / "hello.py")
    assert load_error({"mount": "nomount"}).option == "mount"
    assert "not MOUNTPOINT=APP" in str(load_error({"mount": "app=" + hello}))
    assert "already used" in str(load_error({"mount": [f"/a={hello}", f"/a={hello}"]}))
    assert load_error({"static-map": "/static"}).option == "static-map"
    assert "must start with /" in str(load_error({"static-map": "static=/srv"}))
    error = load_error({"wsgi-file": hello, "module": "x"})
    assert "both wsgi-file and module are set" in str(error)
    assert load_error({"chdir": str(tmp_path / "missing")}).option == "chdir"


def test_error_virtualenv(isolated, tmp_path):
    assert "is not a directory" in str(load_error({"home": str(tmp_path / "none")}))
    (tmp_path / "v" / "lib" / "python2.7" / "site-packages").mkdir(parents=True)
    error = load_error({"virtualenv": str(tmp_path / "v")})
    assert "has no lib/python" in str(error) and "python2.7" in error.hint


def config(*entries):
    from nsuwsgi.errors import Origin
    from nsuwsgi.options import Entry, build_config
    return build_config([Entry(key, value, Origin("app.ini", line))
                         for line, (key, value) in enumerate(entries, 1)])


def test_load_from_a_real_config(isolated, exchange):
    """uWSGI's manage_script_name_test.ini, through the option table (aliases folded)."""
    app = str(APPS / "script_name.py")
    settings = config(("file", app), ("mount", f"/foo={app}"), ("mount", f"/foobis/={app}"),
                      ("manage-script-name", "1"), ("pp", str(APPS)),
                      ("python-path", "/nonexistent"))
    apps = load_apps(settings, chdir=False)
    assert [a.mountpoint for a in apps.apps] == ["", "/foo", "/foobis/"]
    assert sys.path.count(str(APPS)) >= 1 and sys.path.count("/nonexistent") == 1
    reply = run(exchange, apps.wsgi, environ=environ_for(Head(target=b"/foobis/x")))
    assert reply.body == b"/foobis/|x"


def test_config_errors_carry_the_origin(isolated):
    hello = str(APPS / "hello.py")
    with pytest.raises(AppLoadError) as info:
        load_apps(config(("wsgi-file", hello), ("mount", f"/a={hello}"),
                         ("mount", "/b=nsuwsgi_nowhere:app")), chdir=False)
    assert str(info.value).startswith("app.ini:3: mount: no module named 'nsuwsgi_nowhere'")


def test_apploaderror_is_a_usererror_with_origin():
    from nsuwsgi.errors import Origin, UserError
    error = AppLoadError("wsgi-file", "x.py", "'x.py' does not exist", "check the path")
    error.origin = Origin("/etc/app.ini", 3)
    assert isinstance(error, UserError)
    assert str(error) == ("/etc/app.ini:3: wsgi-file: 'x.py' does not exist "
                          "(hint: check the path)")


# --------------------------------------------------------------------------- framing

def test_list_body_gets_content_length_and_keeps_alive(exchange):
    reply = run(exchange, simple_app())
    assert reply.status == "HTTP/1.1 200 OK"
    assert reply.header("Content-Length") == "11" and reply.body == b"Hello World"
    assert "connection" not in reply.names() and "transfer-encoding" not in reply.names()
    assert reply.header("Date") and reply.keep_alive


def test_tuple_body_joined(exchange):
    reply = run(exchange, simple_app(kind="tuple"))
    assert reply.header("Content-Length") == "11" and reply.body == b"Hello World"


def test_generator_is_chunked_for_http11(exchange):
    reply = run(exchange, simple_app(kind="iter"))
    assert reply.header("Transfer-Encoding") == "chunked"
    assert reply.body == b"3\r\nHel\r\n8\r\nlo World\r\n0\r\n\r\n"
    assert reply.keep_alive


def test_generator_for_http10_closes(exchange):
    reply = run(exchange, simple_app(kind="iter"), version="1.0", keep_alive=False)
    assert reply.header("Connection") == "close" and reply.body == b"Hello World"
    assert "transfer-encoding" not in reply.names() and not reply.keep_alive


def test_http10_keep_alive_is_announced(exchange):
    reply = run(exchange, simple_app(), version="1.0", keep_alive=True)
    assert reply.header("Connection") == "keep-alive" and reply.keep_alive
    assert reply.header("Content-Length") == "11"


def test_http10_keep_alive_without_length_closes(exchange):
    reply = run(exchange, simple_app(kind="iter"), version="1.0", keep_alive=True)
    assert reply.header("Connection") == "close" and not reply.keep_alive


def test_client_without_keep_alive_gets_connection_close(exchange):
    reply = run(exchange, simple_app(), keep_alive=False)
    assert reply.header("Connection") == "close" and not reply.keep_alive


def test_app_content_length_is_used_and_enforced(exchange):
    reply = run(exchange, simple_app(body=b"Hello World, and more",
                                     headers=[("Content-Length", "11")]))
    assert reply.header("Content-Length") == "11" and reply.body == b"Hello World"
    assert reply.keep_alive


def test_short_body_for_declared_length_closes(exchange):
    reply = run(exchange, simple_app(headers=[("Content-Length", "100")], kind="iter"))
    assert reply.header("Content-Length") == "100" and not reply.keep_alive
    assert any("Content-Length 100 but sent 11" in line for line in reply.logs)


def test_short_list_body_says_connection_close(exchange):
    reply = run(exchange, simple_app(headers=[("Content-Length", "100")]))
    assert reply.header("Connection") == "close" and not reply.keep_alive


@pytest.mark.parametrize("kind", ["list", "iter"])
def test_head_has_headers_and_no_body(exchange, kind):
    consumed = []

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        if kind == "list":
            return [b"Hello World"]

        def gen():
            consumed.append(1)
            yield b"Hello"
            consumed.append(2)
            yield b" World"
        return gen()
    reply = run(exchange, app, method="HEAD")
    assert reply.status == "HTTP/1.1 200 OK" and reply.body == b"" and reply.keep_alive
    if kind == "list":
        assert reply.header("Content-Length") == "11"
    else:
        assert "transfer-encoding" not in reply.names() and consumed == [1]


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified", "101 Whatever"])
def test_no_body_statuses(exchange, status):
    reply = run(exchange, simple_app(status=status, headers=[("Content-Length", "11"),
                                                             ("ETag", '"x"')]))
    assert reply.status == "HTTP/1.1 " + status and reply.body == b""
    assert reply.keep_alive and "transfer-encoding" not in reply.names()
    if status.startswith("304"):
        assert reply.header("Content-Length") == "11"
    else:
        assert "content-length" not in reply.names()


def test_hop_by_hop_headers_dropped_and_connection_close_honoured(exchange):
    reply = run(exchange, simple_app(headers=[("Connection", "close"),
                                              ("Transfer-Encoding", "chunked"),
                                              ("Keep-Alive", "timeout=5"),
                                              ("Upgrade", "h2c"), ("X-Ok", "1")]))
    assert reply.header("Connection") == "close" and not reply.keep_alive
    assert reply.names().count("connection") == 1
    assert {"transfer-encoding", "keep-alive", "upgrade"}.isdisjoint(reply.names())
    assert reply.header("X-Ok") == "1" and reply.header("Content-Length") == "11"


def test_app_date_header_is_not_doubled(exchange):
    reply = run(exchange, simple_app(headers=[("Date", "Thu, 01 Jan 1970 00:00:00 GMT")]))
    assert reply.names().count("date") == 1
    assert reply.header("Date") == "Thu, 01 Jan 1970 00:00:00 GMT"


def test_uwsgi_protocol_response(exchange):
    env = environ_for(UwsgiHead({"REQUEST_METHOD": "GET", "PATH_INFO": "/",
                                 "SERVER_PROTOCOL": "HTTP/1.1"}))
    reply = run(exchange, simple_app(kind="iter"), environ=env, uwsgi=True, keep_alive=True)
    assert reply.status == "HTTP/1.1 200 OK" and reply.body == b"Hello World"
    assert reply.header("Connection") == "close" and not reply.keep_alive
    assert "transfer-encoding" not in reply.names() and "date" not in reply.names()


def test_write_callable_then_iterable(exchange):
    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"abc")
        write(b"")
        return [b"def"]
    reply = run(exchange, app)
    assert dechunk(reply.body) == (b"abcdef", True) and reply.keep_alive


def test_start_response_called_lazily_inside_generator(exchange):
    def app(environ, start_response):
        yield b""
        start_response("201 Created", [])
        yield b"made"
    reply = run(exchange, app)
    assert reply.status == "HTTP/1.1 201 Created" and dechunk(reply.body) == (b"made", True)


def test_empty_iterable_is_content_length_zero(exchange):
    def app(environ, start_response):
        start_response("200 OK", [])
        yield from ()
    reply = run(exchange, app)
    assert reply.header("Content-Length") == "0" and reply.body == b"" and reply.keep_alive


def test_large_bodies(exchange):
    big = os.urandom(300_000)

    def app(environ, start_response):
        start_response("200 OK", [])
        return iter([big, b"x", big])
    reply = run(exchange, app)
    assert dechunk(reply.body) == (big + b"x" + big, True)


def test_large_list_body(exchange):
    big = os.urandom(500_000)
    reply = run(exchange, simple_app(body=big))
    assert reply.header("Content-Length") == "500000" and reply.body == big


def test_close_is_called(exchange):
    closed = []

    class Body:
        def __iter__(self):
            return iter([b"a", b"b"])

        def close(self):
            closed.append(True)

    def app(environ, start_response):
        start_response("200 OK", [])
        return Body()
    reply = run(exchange, app)
    assert closed == [True] and dechunk(reply.body) == (b"ab", True)


# --------------------------------------------------------------------------- errors

def test_exception_before_start_response_is_500(exchange):
    def app(environ, start_response):
        raise KeyError("boom")
    reply = run(exchange, app)
    assert reply.status == "HTTP/1.1 500 Internal Server Error"
    assert reply.body == b"Internal Server Error\n" and reply.keep_alive
    assert reply.header("Content-Length") == str(len(reply.body))
    assert "Traceback" in reply.logs[0] and "KeyError: 'boom'" in reply.logs[0]
    assert "GET /x" in reply.logs[0]


def test_exception_during_iteration_before_first_chunk_is_500(exchange):
    closed = []

    class Body:
        def __iter__(self):
            raise ValueError("bad")

        def close(self):
            closed.append(True)

    def app(environ, start_response):
        start_response("200 OK", [("X-Lost", "1")])
        return Body()
    reply = run(exchange, app)
    assert reply.status.endswith("500 Internal Server Error") and "x-lost" not in reply.names()
    assert closed == [True]


def test_exception_after_headers_closes_connection(exchange):
    def app(environ, start_response):
        start_response("200 OK", [])
        yield b"part"
        raise RuntimeError("late")
    reply = run(exchange, app)
    assert reply.status == "HTTP/1.1 200 OK" and not reply.keep_alive
    assert dechunk(reply.body) == (b"part", False)           # no terminating chunk
    assert any("RuntimeError: late" in line for line in reply.logs)


def test_exc_info_before_headers_replaces_the_response(exchange):
    def app(environ, start_response):
        start_response("200 OK", [("X-First", "1")])
        try:
            raise ValueError("oops")
        except ValueError:
            start_response("503 Service Unavailable", [("Retry-After", "1")], sys.exc_info())
        return [b"sorry"]
    reply = run(exchange, app)
    assert reply.status == "HTTP/1.1 503 Service Unavailable" and reply.body == b"sorry"
    assert reply.header("Retry-After") == "1" and "x-first" not in reply.names()


def test_exc_info_after_headers_reraises_and_closes(exchange):
    seen = []

    def app(environ, start_response):
        start_response("200 OK", [])
        yield b"started"
        try:
            raise ValueError("mid-stream")
        except ValueError:
            try:
                start_response("500 Oops", [], sys.exc_info())
            except ValueError as exc:
                seen.append(exc)
                raise
    reply = run(exchange, app)
    assert len(seen) == 1 and not reply.keep_alive
    assert reply.status == "HTTP/1.1 200 OK"


def test_second_start_response_without_exc_info_is_an_error(exchange):
    def app(environ, start_response):
        start_response("200 OK", [])
        start_response("404 Not Found", [])
        return [b""]
    reply = run(exchange, app)
    assert reply.status.endswith("500 Internal Server Error")
    assert "already called" in reply.logs[0]


@pytest.mark.parametrize("status, headers, message", [
    ("200", [], None),
    ("OK", [], "invalid status"),
    (200, [], "status must be str"),
    ("200 OK", [("X-Bad", "a\r\nSet-Cookie: evil=1")], "line break"),
    ("200 OK", [("X-Bad", 5)], "value of header 'X-Bad' must be str, not int"),
    ("200 OK", [("X-Bad", b"v")], "must be str, not bytes"),
    ("200 OK", [(b"X-Bytes", "v")], "must be str"),
    ("200 OK", [("Bad Name", "v")], "invalid header name"),
    ("200 OK", [("X-Uni", "snow \u2603")], "not latin-1"),
    ("200 OK", [("Content-Length", "12abc")], "invalid Content-Length"),
])
def test_start_response_validation(exchange, status, headers, message):
    def app(environ, start_response):
        start_response(status, headers)
        return [b"body"]
    reply = run(exchange, app)
    if message is None:
        assert reply.status == "HTTP/1.1 200" and reply.body == b"body"
        return
    assert reply.status.endswith("500 Internal Server Error"), reply.raw
    assert message in reply.logs[0]
    assert b"evil" not in reply.raw


def test_str_body_is_refused(exchange):
    reply = run(exchange, simple_app(body="text"))
    assert reply.status.endswith("500 Internal Server Error")
    assert "must be bytes, not str" in reply.logs[0]


def test_app_returning_without_start_response(exchange):
    reply = run(exchange, lambda environ, start_response: [b"x"])
    assert reply.status.endswith("500 Internal Server Error")
    assert "without calling start_response" in reply.logs[0]


def test_client_gone_while_reading_the_body_is_not_an_app_error(exchange):
    def source():
        raise wsgi.ClientGone("the client closed the connection mid-body")
    env = environ_for(Head(b"POST", b"/", "1.1", []), body_stream=BodyReader(source))
    logs = []

    def app(environ, start_response):
        environ["wsgi.input"].read()
        raise AssertionError("not reached")
    response = Response.for_environ(exchange.server, env, keep_alive=True)
    assert call_app(app, env, response, logs.append) is False and logs == []


def test_client_gone_is_not_an_app_error():
    server, client = socket.socketpair()
    client.close()
    logs = []
    try:
        env = environ_for(Head())
        response = Response.for_environ(server, env, keep_alive=True, log=logs.append)

        def app(environ, start_response):
            write = start_response("200 OK", [])
            try:
                write(b"x" * 10)
            except OSError:
                pass                             # an app swallowing the error
            return [b"more"]
        assert call_app(app, env, response, logs.append) is False
        assert logs == [] and response.gone
        response = Response.for_environ(server, env, keep_alive=True)
        assert call_app(simple_app(), env, response, logs.append) is False and logs == []
    finally:
        server.close()


def test_keep_alive_over_tcp_with_sendfile(tmp_path):
    """Two responses on one TCP connection (MSG_MORE + sendfile, then a list body): the
    client finds both by their Content-Length."""
    path = tmp_path / "blob"
    data = os.urandom(200_000)
    path.write_bytes(data)
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    ex = Exchange.__new__(Exchange)
    ex.server, ex.client, ex.received = server, client, bytearray()
    ex.thread = threading.Thread(target=ex._read, daemon=True)
    ex.thread.start()
    try:
        for app in (file_app(path), simple_app()):
            env = environ_for(Head())
            response = Response.for_environ(server, env, keep_alive=True)
            assert call_app(app, env, response) is True
        raw = ex.finish()
    finally:
        ex.close()
        listener.close()
    status, headers, rest = parse(raw)
    assert status == "HTTP/1.1 200 OK" and ("Content-Length", "200000") in headers
    assert rest[:200_000] == data
    status, headers, rest = parse(rest[200_000:])
    assert status == "HTTP/1.1 200 OK" and rest == b"Hello World"


# --------------------------------------------------------------------------- FileWrapper

@pytest.fixture
def count_sendfile(monkeypatch):
    calls = []
    real = os.sendfile

    def spy(*args):
        calls.append(args[3])
        return real(*args)
    monkeypatch.setattr(wsgi.os, "sendfile", spy)
    return calls


def file_app(path, *, seek=0, headers=(), blksize=8192):
    def app(environ, start_response):
        f = open(path, "rb")
        f.seek(seek)
        start_response("200 OK", [("Content-Type", "application/octet-stream"), *headers])
        return environ["wsgi.file_wrapper"](f, blksize)
    return app


def test_file_wrapper_uses_sendfile(exchange, tmp_path, count_sendfile):
    data = os.urandom(1_000_000)
    path = tmp_path / "blob"
    path.write_bytes(data)
    reply = run(exchange, file_app(path))
    assert reply.header("Content-Length") == str(len(data)) and reply.body == data
    assert count_sendfile and sum(count_sendfile) >= len(data) and reply.keep_alive
    assert "transfer-encoding" not in reply.names()


def test_file_wrapper_offset_and_declared_length(exchange, tmp_path, count_sendfile):
    path = tmp_path / "blob"
    path.write_bytes(b"0123456789")
    reply = run(exchange, file_app(path, seek=2, headers=[("Content-Length", "5")]))
    assert reply.body == b"23456" and reply.header("Content-Length") == "5"
    assert count_sendfile == [5]


def test_file_wrapper_head_and_small_file(tmp_path, count_sendfile):
    path = tmp_path / "small"
    path.write_bytes(b"tiny")
    ex = Exchange()
    try:
        reply = run(ex, file_app(path), method="HEAD")
    finally:
        ex.close()
    assert reply.header("Content-Length") == "4" and reply.body == b"" and not count_sendfile


def test_file_wrapper_over_non_file_iterates(exchange):
    closed = []

    class Stream(io.BytesIO):
        def close(self):
            closed.append(True)
            super().close()

    def app(environ, start_response):
        start_response("200 OK", [])
        return environ["wsgi.file_wrapper"](Stream(b"x" * 20000), 8192)
    reply = run(exchange, app)
    assert dechunk(reply.body) == (b"x" * 20000, True) and closed == [True]


def test_file_wrapper_is_iterable_and_closes(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abcdefg")
    with open(path, "rb") as f:
        wrapper = FileWrapper(f, 3)
        assert list(wrapper) == [b"abc", b"def", b"g"]
        wrapper.close()
        assert f.closed


# --------------------------------------------------------------------------- static-map

@pytest.fixture
def docroot(tmp_path):
    root = tmp_path / "static"
    (root / "css").mkdir(parents=True)
    (root / "css" / "site.css").write_text("body { color: red }\n")
    (root / "index.html").write_text("<h1>hi</h1>")
    (tmp_path / "secret.txt").write_text("top secret")
    (root / "leak").symlink_to(tmp_path / "secret.txt")
    (root / "inside").symlink_to(root / "index.html")
    (tmp_path / "favicon.ico").write_bytes(b"\x00\x01icon")
    return tmp_path


def fallback_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"app:" + environ["PATH_INFO"].encode("latin-1")]


@pytest.fixture
def static_apps(docroot):
    apps = Apps([App("", fallback_app, "wsgi-file", "x")],
                static=StaticMap([("/static", str(docroot / "static")),
                                  ("/favicon.ico", str(docroot / "favicon.ico"))]))
    return apps


def get(apps, target: bytes, method="GET", headers=()) -> Reply:
    ex = Exchange()
    try:
        env = environ_for(Head(method.encode(), target, "1.1", list(headers)))
        return run(ex, apps.wsgi, environ=env)
    finally:
        ex.close()


def test_static_file_served_with_sendfile(static_apps, docroot, count_sendfile):
    reply = get(static_apps, b"/static/css/site.css")
    assert reply.status == "HTTP/1.1 200 OK" and reply.body == b"body { color: red }\n"
    assert reply.header("Content-Type") == "text/css"
    assert reply.header("Content-Length") == "20" and reply.keep_alive
    mtime = int((docroot / "static" / "css" / "site.css").stat().st_mtime)
    assert reply.header("Last-Modified") == formatdate(mtime, usegmt=True)
    assert count_sendfile == [20]


def test_static_if_modified_since(static_apps, docroot):
    mtime = int((docroot / "static" / "index.html").stat().st_mtime)
    reply = get(static_apps, b"/static/index.html",
                headers=[(b"If-Modified-Since", formatdate(mtime, usegmt=True).encode())])
    assert reply.status == "HTTP/1.1 304 Not Modified" and reply.body == b""
    assert reply.header("Last-Modified") == formatdate(mtime, usegmt=True)
    older = formatdate(mtime - 10, usegmt=True).encode()
    reply = get(static_apps, b"/static/index.html", headers=[(b"If-Modified-Since", older)])
    assert reply.status == "HTTP/1.1 200 OK" and reply.body == b"<h1>hi</h1>"


def test_static_head_and_single_file_map(static_apps):
    reply = get(static_apps, b"/static/index.html", method="HEAD")
    assert reply.header("Content-Length") == "11" and reply.body == b""
    assert get(static_apps, b"/favicon.ico").body == b"\x00\x01icon"


@pytest.mark.parametrize("target, served", [
    (b"/static/missing.css", False),                # no file: the app answers
    (b"/static/css", False),                        # a directory
    (b"/static/../secret.txt", False),
    (b"/static/%2e%2e/secret.txt", False),
    (b"/static/css/..%2f..%2fsecret.txt", False),
    (b"/static/leak", False),                       # symlink leading outside
    (b"/static/inside", True),                      # symlink staying inside
    (b"/staticx/index.html", False),                # prefix on a path boundary only
    (b"/static//index.html", True),
    (b"/static/index.html%00.txt", False),
    (b"/favicon.icox", False),
])
def test_static_resolution_is_safe(static_apps, target, served):
    reply = get(static_apps, target)
    assert reply.status == "HTTP/1.1 200 OK"
    if served:
        assert reply.body == b"<h1>hi</h1>"
    else:
        assert reply.body.startswith(b"app:") and b"top secret" not in reply.raw


def test_static_only_for_get_and_head(static_apps):
    assert get(static_apps, b"/static/index.html", method="POST").body.startswith(b"app:")


def test_static_map_from_settings_after_manage_script_name(isolated, docroot):
    apps = load_apps({"static-map": [f"/static={docroot / 'static'}"]})
    assert get(apps, b"/static/index.html").body == b"<h1>hi</h1>"
    assert get(apps, b"/nothing").status == "HTTP/1.1 404 Not Found"     # no app at all
    hello = str(APPS / "script_name.py")
    apps = load_apps({"static-map": f"/static={docroot / 'static'}", "wsgi-file": hello,
                      "mount": f"/m={hello}", "manage-script-name": True})
    assert get(apps, b"/m/static/index.html").body == b"<h1>hi</h1>"     # uWSGI's order
    assert get(apps, b"/m/other").body == b"/m|/other"


def test_static_dir_created_after_start(tmp_path):
    late = tmp_path / "late"
    apps = Apps([App("", fallback_app, "wsgi-file", "x")],
                static=StaticMap([("/s/", str(late))]))
    assert get(apps, b"/s/a.txt").body == b"app:/s/a.txt"
    late.mkdir()
    (late / "a.txt").write_text("now")
    reply = get(apps, b"/s/a.txt")
    assert reply.body == b"now" and reply.header("Content-Type") == "text/plain"


# --------------------------------------------------------------------------- wsgi.input

def reader(chunks, **kw) -> BodyReader:
    it = iter(chunks)
    return BodyReader(lambda: next(it, b""), **kw)


def test_body_reader_read_across_chunks():
    body = reader([b"hel", b"lo ", b"wor", b"ld"])
    assert body.read(4) == b"hell"
    assert body.read(0) == b""
    assert body.read(5) == b"o wor"
    assert body.read() == b"ld"
    assert body.read() == b"" and body.read(3) == b"" and body.exhausted


def test_body_reader_readline_across_chunk_boundaries():
    body = reader([b"first li", b"ne\nsec", b"ond", b" line\n", b"\nlast"])
    assert body.readline() == b"first line\n"
    assert body.readline() == b"second line\n"
    assert body.readline() == b"\n"
    assert body.readline() == b"last"
    assert body.readline() == b""


def test_body_reader_readline_size_limit():
    body = reader([b"abc", b"defg\nhij\n"])
    assert body.readline(2) == b"ab"
    assert body.readline(4) == b"cdef"
    assert body.readline(100) == b"g\n"
    assert body.readline(0) == b""
    assert list(body) == [b"hij\n"]


def test_body_reader_readlines_and_iteration():
    assert reader([b"a\nb", b"\nc"]).readlines() == [b"a\n", b"b\n", b"c"]
    assert reader([b"a\nb\nc\n"]).readlines(3) == [b"a\n", b"b\n"]     # as io.BytesIO
    assert [line for line in reader([b"x\n", b"y"])] == [b"x\n", b"y"]


def test_body_reader_expect_continue_only_when_read():
    sent = []
    body = reader([b"data"], expect_continue=lambda: sent.append("100"))
    assert body.read(0) == b"" and sent == []
    assert body.read() == b"data" and sent == ["100"]
    body.read()
    assert sent == ["100"]
    untouched = reader([b"data"], expect_continue=lambda: sent.append("again"))
    untouched.drain()
    assert sent == ["100", "again"]


def test_body_reader_drain():
    body = reader([b"12345", b"67890"])
    assert body.read(2) == b"12"
    assert body.drain(limit=100) and body.exhausted
    assert not reader([b"x" * 10, b"y" * 10]).drain(limit=5)


def test_body_reader_single_chunk_not_copied():
    chunk = b"x" * 1000
    assert reader([chunk]).read(1000) is chunk


OPS = st.lists(st.one_of(
    st.tuples(st.just("read"), st.one_of(st.none(), st.integers(-1, 12))),
    st.tuples(st.just("readline"), st.one_of(st.none(), st.integers(-1, 12))),
    st.tuples(st.just("readlines"), st.integers(-1, 12)),
    st.tuples(st.just("next"), st.none()),
), max_size=12)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=60).map(lambda b: b.replace(b"\x00", b"\n")),
       cuts=st.lists(st.integers(0, 60), max_size=8), ops=OPS)
def test_body_reader_behaves_like_bytesio(data, cuts, ops):
    points = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    chunks = [data[a:b] for a, b in zip(points, points[1:])]
    ours, ref = reader(chunks), io.BytesIO(data)
    for op, arg in ops:
        if op == "next":
            assert next(ours, None) == next(ref, None)
        elif op == "readlines":
            assert ours.readlines(arg) == ref.readlines(arg)
        else:
            assert getattr(ours, op)(arg) == getattr(ref, op)(arg), (op, arg)
    assert ours.read() == ref.read()
