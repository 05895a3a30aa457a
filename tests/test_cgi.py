"""The CGI gateway (nsuwsgi/server/cgi.py): driven as a WSGI app, then cgit through a server.

Most tests call `make_cgi_app(config)` directly with a hand-built environ, so they exercise the
mapping, the environment, the pipes and the response parsing without a server. Scripts live in
tests/cgi/ (copied into tmp_path where a directory layout matters) or are written per test.
The `hygiene` fixture proves after each test that every CGI child (and grandchild) was reaped
and no pipe or pidfd leaked.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from nsuwsgi.errors import COMMAND_LINE
from nsuwsgi.options import Entry, build_config
from nsuwsgi.server.cgi import CGIConfigError, CGITimeout, make_cgi_app
from support import alive, wait_for

SCRIPTS = Path(__file__).resolve().parent / "cgi"
CGIT = "/usr/lib/cgit/cgit.cgi"


# --------------------------------------------------------------------------- helpers

def make_app(*entries: tuple[str, str]):
    logs: list[str] = []
    config = build_config([Entry(key, value, COMMAND_LINE) for key, value in entries])
    return make_cgi_app(config, log=logs.append), logs


def environ_for(path="/", *, method="GET", query="", body=b"", headers=None,
                content_length=True, script_name="", **extra) -> dict:
    environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "REQUEST_URI": path + ("?" + query if query else ""),
        "SERVER_NAME": "cgi.test",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "192.0.2.7",
        "REMOTE_PORT": "40000",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
    }
    if body and content_length:
        environ["CONTENT_LENGTH"] = str(len(body))
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        environ[key] = value
    environ.update(extra)
    return environ


def call(app, path="/", **kwargs) -> tuple[str, dict, bytes]:
    """Run one request through the app; (status, headers, body)."""
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, headers

    result = app(environ_for(path, **kwargs), start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return seen["status"], {k.lower(): v for k, v in seen["headers"]}, body


def script(tmp_path: Path, name: str, text: str, mode=0o755) -> Path:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(mode)
    return path


def env_of(body: bytes) -> dict[str, str]:
    found = {}
    for line in body.decode(errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep and key not in found:
            found[key] = value
    return found


def copy_script(name: str, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(SCRIPTS / name, dest)
    return dest


# --------------------------------------------------------------------------- single script

def test_uwsgi_hello_world_single_script_gets_the_whole_path_as_path_info():
    app, _ = make_app(("cgi", str(SCRIPTS / "hello.cgi")))
    status, headers, body = call(app, "/foobar/say_hello")
    assert status == "200 OK"
    assert headers["content-type"] == "text/plain"
    assert body == b"Hello world!\nPATH_INFO=/foobar/say_hello\n"     # uWSGI's t/runner


def test_the_program_sees_the_cgi_1_1_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("CGI_TEST_FROM_WORKER", "inherited")
    monkeypatch.setenv("HTTP_STALE", "must not leak")
    monkeypatch.setenv("PATH_INFO", "/stale")
    app, _ = make_app(("cgi", str(SCRIPTS / "env.cgi")))
    status, _, body = call(app, "/a/b", method="POST", query="x=1&y=2", body=b"k=v",
                           headers={"Content-Type": "application/x-www-form-urlencoded",
                                    "User-Agent": "tester/1", "Host": "cgi.test:8080",
                                    "X-Custom": "yes", "Proxy": "http://evil:3128"})
    assert status == "200 OK"
    env = env_of(body)
    expected = {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_NAME": "cgi.test",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "SCRIPT_FILENAME": str(SCRIPTS / "env.cgi"),
        "PATH_INFO": "/a/b",
        "PATH_TRANSLATED": os.getcwd().rstrip("/") + "/a/b",
        "DOCUMENT_ROOT": os.getcwd(),
        "QUERY_STRING": "x=1&y=2",
        "REQUEST_URI": "/a/b?x=1&y=2",
        "REMOTE_ADDR": "192.0.2.7",
        "REMOTE_PORT": "40000",
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "CONTENT_LENGTH": "3",
        "HTTP_USER_AGENT": "tester/1",
        "HTTP_HOST": "cgi.test:8080",
        "HTTP_X_CUSTOM": "yes",
        "REDIRECT_STATUS": "200",
        "CGI_TEST_FROM_WORKER": "inherited",
        "PATH": os.environ["PATH"],
        "CWD": str(SCRIPTS),            # uWSGI chdirs to the script's directory
        "ARGC": "0",
    }
    assert {k: env.get(k) for k in expected} == expected
    assert env["SERVER_SOFTWARE"].startswith("nsuwsgi/")
    assert "HTTP_PROXY" not in env              # httpoxy
    assert "HTTP_STALE" not in env
    assert "wsgi.input" not in body.decode()


def test_request_vars_cannot_set_the_loader_or_path():
    """Over the uwsgi protocol any var reaches the environ; these never reach the program."""
    app, _ = make_app(("cgi", str(SCRIPTS / "env.cgi")))
    env = env_of(call(app, "/", LD_PRELOAD="/tmp/evil.so", PATH="/evil",
                      GIT_PROJECT_ROOT="/srv/git")[2])
    assert "LD_PRELOAD" not in env and env["PATH"] == os.environ["PATH"]
    assert env["GIT_PROJECT_ROOT"] == "/srv/git"        # a web server's own uwsgi_param


def test_no_path_info_means_no_path_translated_and_unix_socket_defaults(tmp_path):
    app, _ = make_app(("cgi", str(SCRIPTS / "env.cgi")))
    _, _, body = call(app, "", SERVER_NAME="", SERVER_PORT="", headers={"Host": "h.test:81"})
    env = env_of(body)
    assert env["PATH_INFO"] == ""
    assert "PATH_TRANSLATED" not in env
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("h.test", "81")
    assert "CONTENT_LENGTH" not in env


def test_mounted_script_splits_script_name_and_keeps_an_incoming_prefix():
    app, _ = make_app(("cgi", "/git/=" + str(SCRIPTS / "env.cgi")))
    env = env_of(call(app, "/git/repo/tree", script_name="/outer")[2])
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/outer/git", "/repo/tree")
    env = env_of(call(app, "/git")[2])
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/git", "")
    assert call(app, "/gitx/repo")[0] == "404 Not Found"      # no default, no prefix match


def test_longest_mountpoint_wins_and_the_default_takes_the_rest(tmp_path):
    a = script(tmp_path, "a.cgi", "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\na'\n")
    b = script(tmp_path, "b.cgi", "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nb'\n")
    c = script(tmp_path, "c.cgi", "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nc'\n")
    app, _ = make_app(("cgi", f"/x={a}"), ("cgi", f"/x/y={b}"), ("cgi", str(c)))
    assert [call(app, p)[2] for p in ("/x/z", "/x/y/z", "/x/y", "/q", "/xy")] == \
        [b"a", b"b", b"b", b"c", b"c"]


def test_isindex_query_becomes_argv_but_never_an_option():
    app, _ = make_app(("cgi", str(SCRIPTS / "env.cgi")))
    env = call(app, "/", query="foo+b%20ar")[2].decode()
    assert "ARGC=2\nARG=foo\nARG=b ar\n" in env
    assert "ARGC=0\n" in call(app, "/", query="-s")[2].decode()       # CVE-2012-1823
    assert "ARGC=0\n" in call(app, "/", query="a=b")[2].decode()


# --------------------------------------------------------------------------- request body

def test_post_body_is_passed_on_stdin():
    app, _ = make_app(("cgi", str(SCRIPTS / "echo.cgi")))
    stdin_before = os.fstat(0)
    status, _, body = call(app, "/", method="POST", body=b"hello=world&x=1")
    assert status == "200 OK"
    assert body == b"CONTENT_LENGTH=15\nhello=world&x=1"
    after = os.fstat(0)                         # the gateway's own fd 0 is left as it was
    assert (after.st_dev, after.st_ino) == (stdin_before.st_dev, stdin_before.st_ino)


def test_body_of_unknown_length_is_spooled_and_gets_a_content_length():
    app, _ = make_app(("cgi", str(SCRIPTS / "echo.cgi")))
    data = os.urandom(200_000)
    _, _, body = call(app, "/", method="POST", body=data, content_length=False)
    assert body == b"CONTENT_LENGTH=200000\n" + data


def test_large_body_and_large_output_do_not_deadlock():
    """bigio.cgi writes 1 MiB before reading its 1 MiB of stdin: both pipes fill up."""
    app, _ = make_app(("cgi", str(SCRIPTS / "bigio.cgi")), ("cgi-timeout", "20"))
    data = os.urandom(1 << 20)
    started = time.monotonic()
    status, _, body = call(app, "/", method="POST", body=data)
    assert status == "200 OK"
    assert len(body) == 2 << 20
    assert body[:1 << 20] == bytes(1 << 20) and body[1 << 20:] == data
    # A bound on a hang, not a speed check: a deadlock would last until the 20 s cgi-timeout.
    assert time.monotonic() - started < 15


def test_a_program_that_ignores_its_stdin_does_not_hang_the_gateway():
    app, _ = make_app(("cgi", str(SCRIPTS / "hello.cgi")), ("cgi-timeout", "10"))
    started = time.monotonic()
    status, _, body = call(app, "/p", method="POST", body=os.urandom(1 << 20))
    assert status == "200 OK" and body.startswith(b"Hello world!")
    # A bound on a hang, not a speed check: a gateway stuck on the unread stdin would wait
    # for the 10 s cgi-timeout.
    assert time.monotonic() - started < 8


# --------------------------------------------------------------------------- response parsing

@pytest.mark.parametrize("head, status, header", [
    ("Status: 404 Not Found\nContent-Type: text/plain\n\n", "404 Not Found", None),
    ("Status: 404\r\nContent-Type: text/plain\r\n\r\n", "404 Not Found", None),
    ("Content-Type: text/html\r\nStatus: 201 Made It\r\nX-A: 1\r\n\r\n", "201 Made It",
     ("x-a", "1")),
    ("Location: http://example.test/there\n\n", "302 Found",
     ("location", "http://example.test/there")),
    ("Location: /local/path\nContent-Type: text/plain\n\n", "302 Found",
     ("location", "/local/path")),
    ("Status: 301 Moved Permanently\nLocation: /moved\n\n", "301 Moved Permanently",
     ("location", "/moved")),
    ("Content-Type: text/plain\nConnection: keep-alive\nTransfer-Encoding: chunked\n\n",
     "200 OK", None),
])
def test_status_and_location(tmp_path, head, status, header):
    path = tmp_path / "head.txt"
    path.write_text(head + "the body")
    prog = script(tmp_path, "s.cgi", f"#!/bin/sh\ncat '{path}'\n")
    app, _ = make_app(("cgi", str(prog)))
    got, headers, body = call(app, "/")
    assert got == status
    assert body == b"the body"
    assert "status" not in headers
    assert "connection" not in headers and "transfer-encoding" not in headers
    if header:
        assert headers[header[0]] == header[1]


def test_missing_content_type_is_a_500(tmp_path):
    prog = script(tmp_path, "s.cgi", "#!/bin/sh\nprintf 'X-Foo: bar\\n\\nbody'\n")
    app, logs = make_app(("cgi", str(prog)))
    assert call(app, "/")[0] == "500 Internal Server Error"
    assert any("no Content-Type" in line and str(prog) in line for line in logs)


@pytest.mark.parametrize("text", [
    "exit 3",
    "printf 'just some text without a head'",
    "printf 'Content-Type: text/plain\\n'",              # no empty line before EOF
    "printf 'Content-Type: text/plain\\nnot a header\\n\\nx'",
    "printf 'Status: abc\\nContent-Type: text/plain\\n\\nx'",
])
def test_a_program_without_a_valid_head_is_a_502(tmp_path, text):
    prog = script(tmp_path, "s.cgi", f"#!/bin/sh\n{text}\n")
    app, logs = make_app(("cgi", str(prog)))
    assert call(app, "/")[0] == "502 Bad Gateway"
    assert any("invalid CGI response" in line and str(prog) in line for line in logs)


def test_exit_status_is_named_when_the_program_dies_without_headers(tmp_path):
    prog = script(tmp_path, "s.cgi", "#!/bin/sh\nexit 3\n")
    app, logs = make_app(("cgi", str(prog)))
    call(app, "/")
    assert any("(exit status 3)" in line for line in logs)


def test_head_request_and_early_close_kill_a_program_that_keeps_writing(tmp_path):
    prog = script(tmp_path, "yes.cgi", "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\n"
                                       "exec yes\n")
    app, _ = make_app(("cgi", str(prog)))
    result = app(environ_for("/"), lambda s, h, e=None: None)
    assert next(iter(result)).startswith(b"y\n")
    pid = result.run.child.pid
    result.close()                              # the client went away
    assert not alive(pid)


# --------------------------------------------------------------------------- failures

def test_exec_failure_is_a_500_naming_the_script_and_the_spawn_error(tmp_path):
    missing = tmp_path / "missing.cgi"
    app, logs = make_app(("cgi", str(missing)))
    assert call(app, "/")[0] == "500 Internal Server Error"
    assert len(logs) == 1 and str(missing) in logs[0] and "exec" in logs[0]
    assert "No such file or directory" in logs[0]

    noexec = script(tmp_path, "noexec.cgi", "#!/bin/sh\necho hi\n", mode=0o644)
    app, logs = make_app(("cgi", str(noexec)))
    assert call(app, "/")[0] == "500 Internal Server Error"
    assert str(noexec) in logs[0] and "Permission denied" in logs[0]


def test_timeout_before_headers_kills_the_group_and_answers_504(tmp_path):
    pidfile = tmp_path / "pids"
    prog = script(tmp_path, "slow.cgi", f"#!/bin/sh\necho $$ > '{pidfile}'\nsleep 30 &\n"
                                        f"echo $! >> '{pidfile}'\nwait\n")
    app, logs = make_app(("cgi", str(prog)), ("cgi-timeout", "1"))
    started = time.monotonic()
    status, _, _ = call(app, "/")
    took = time.monotonic() - started
    assert status == "504 Gateway Timeout"
    # Not a speed check: the 1 s timeout did not fire early, and fired at all (the script
    # sleeps 30 s; the upper bound only has to tell the two apart, generously).
    assert 0.9 < took < 15
    assert any("CGI timeout" in line and str(prog) in line for line in logs)
    pids = [int(p) for p in pidfile.read_text().split()]
    assert len(pids) == 2
    wait_for(lambda: not any(alive(p) for p in pids), 2, "the script and its sleep to die")


def test_timeout_after_headers_cuts_the_response(tmp_path):
    prog = script(tmp_path, "slow.cgi", "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n"
                                        "partial'\nexec sleep 30\n")
    app, logs = make_app(("cgi", str(prog)), ("cgi-timeout", "1"))
    result = app(environ_for("/"), lambda s, h, e=None: None)
    chunks = iter(result)
    assert next(chunks) == b"partial"
    started = time.monotonic()
    with pytest.raises(CGITimeout):
        next(chunks)
    # A bound on a hang, not a speed check: without the 1 s timeout, `sleep 30` runs out.
    assert time.monotonic() - started < 15
    result.close()
    assert any("CGI timeout" in line for line in logs)


def test_bad_options_are_reported_like_an_app_that_cannot_load(tmp_path):
    with pytest.raises(CGIConfigError, match="cgi-helper"):
        make_app(("cgi", str(tmp_path)), ("cgi-helper", "php-cgi"))
    with pytest.raises(CGIConfigError, match="mountpoint"):
        make_app(("cgi", f"cgi-bin={tmp_path}"))


# --------------------------------------------------------------------------- directories

@pytest.fixture
def docroot(tmp_path):
    root = tmp_path / "www" / "cgi-bin"
    copy_script("env.cgi", root / "env.cgi")
    copy_script("hello.cgi", root / "sub" / "deep.cgi")
    script(root, "plain.txt", "#!/bin/sh\necho no\n", mode=0o644)
    script(root, "tool.sh", "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\ntool'\n")
    outside = copy_script("hello.cgi", tmp_path / "secret" / "secret.cgi")
    (root / "escape.cgi").symlink_to(outside)
    (root / "alias.cgi").symlink_to(root / "env.cgi")
    return root


def test_directory_mountpoint_maps_segments_to_a_script(docroot):
    app, _ = make_app(("cgi", f"/cgi-bin={docroot}"))
    status, _, body = call(app, "/cgi-bin/env.cgi/extra/path", query="q=1")
    assert status == "200 OK"
    env = env_of(body)
    assert env["SCRIPT_NAME"] == "/cgi-bin/env.cgi"
    assert env["PATH_INFO"] == "/extra/path"
    assert env["SCRIPT_FILENAME"] == str(docroot / "env.cgi")
    assert env["DOCUMENT_ROOT"] == str(docroot)
    assert env["PATH_TRANSLATED"] == f"{docroot}/extra/path"
    assert env["CWD"] == str(docroot)
    status, _, body = call(app, "/cgi-bin/sub/deep.cgi")
    assert (status, body) == ("200 OK", b"Hello world!\nPATH_INFO=\n")
    env = env_of(call(app, "/cgi-bin/alias.cgi")[2])         # a symlink inside is fine
    assert env["SCRIPT_NAME"] == "/cgi-bin/alias.cgi"


def test_directory_as_the_default(docroot):
    app, _ = make_app(("cgi", str(docroot)))
    env = env_of(call(app, "/env.cgi/x")[2])
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/env.cgi", "/x")


@pytest.mark.parametrize("path, status", [
    ("/cgi-bin/sub/", "404 Not Found"),             # a directory: no cgi-index
    ("/cgi-bin/sub", "404 Not Found"),
    ("/cgi-bin/", "404 Not Found"),
    ("/cgi-bin", "404 Not Found"),
    ("/cgi-bin/missing.cgi", "404 Not Found"),
    ("/cgi-bin/../secret/secret.cgi", "404 Not Found"),
    ("/cgi-bin/sub/../env.cgi", "404 Not Found"),
    ("/cgi-bin/./env.cgi", "404 Not Found"),
    ("/cgi-bin/escape.cgi", "403 Forbidden"),        # a symlink out of the directory
    ("/cgi-bin/plain.txt", "403 Forbidden"),         # not executable, no helper
    ("/elsewhere/env.cgi", "404 Not Found"),
    ("/cgi-bin/env.cgi\0x", "400 Bad Request"),
])
def test_directory_refusals(docroot, path, status):
    app, logs = make_app(("cgi", f"/cgi-bin={docroot}"))
    assert call(app, path)[0] == status
    if "escape" in path:
        assert any("CGI security error" in line for line in logs)


def test_allowed_ext(docroot):
    app, logs = make_app(("cgi", f"/cgi-bin={docroot}"), ("cgi-allowed-ext", ".cgi"),
                         ("cgi-allowed-ext", ".py"))
    assert call(app, "/cgi-bin/env.cgi")[0] == "200 OK"
    assert call(app, "/cgi-bin/tool.sh")[0] == "403 Forbidden"
    assert any("allowed extension" in line for line in logs)


def test_helper_runs_the_script_through_a_program(docroot):
    (docroot / "show.sh").write_text("printf 'Content-Type: text/plain\\n\\n'\n"
                                     "echo \"ZERO=$0\"\necho \"PATH_INFO=$PATH_INFO\"\n")
    (docroot / "show.sh").chmod(0o644)      # not executable: the helper makes it runnable
    app, _ = make_app(("cgi", f"/cgi-bin={docroot}"), ("cgi-helper", ".sh=sh"))
    status, _, body = call(app, "/cgi-bin/show.sh/pi")
    assert status == "200 OK"
    assert body == f"ZERO={docroot / 'show.sh'}\nPATH_INFO=/pi\n".encode()


def test_missing_helper_is_an_exec_failure(docroot):
    app, logs = make_app(("cgi", f"/cgi-bin={docroot}"),
                         ("cgi-helper", ".sh=no-such-helper-program"))
    assert call(app, "/cgi-bin/tool.sh")[0] == "500 Internal Server Error"
    assert "no-such-helper-program" in logs[0] and str(docroot / "tool.sh") in logs[0]


# --------------------------------------------------------------------------- cgit

def _cgit_or_skip() -> None:
    probe = subprocess.run(["dpkg", "-s", "cgit"], capture_output=True, text=True)
    if probe.returncode != 0 or "Status: install ok installed" not in probe.stdout:
        pytest.skip("Debian's cgit package is not installed (apt-get install cgit)")
    if not os.access(CGIT, os.X_OK):
        pytest.skip(f"{CGIT} is missing although the cgit package is installed")
    if not shutil.which("git"):
        pytest.skip("git is not installed")


def _cgit_site(tmp_path: Path) -> Path:
    """A repository with one commit and a cgitrc serving it at /demo/."""
    repo = tmp_path / "demo"
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", HOME=str(tmp_path))
    subprocess.run(["git", "init", "-q", str(repo)], check=True, env=env)
    (repo / "README").write_text("hello\n")
    subprocess.run(["git", "-C", str(repo), "add", "README"], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t",
                    "commit", "-q", "-m", "The very first commit of demo"], check=True,
                   env=env)
    rc = tmp_path / "cgitrc"
    rc.write_text(f"virtual-root=/\ncache-size=0\nrepo.url=demo\nrepo.path={repo}/.git\n"
                  "repo.desc=a demo repository\n")
    return rc


def test_cgit_summary_page_through_the_gateway(tmp_path, monkeypatch):
    _cgit_or_skip()
    monkeypatch.setenv("CGIT_CONFIG", str(_cgit_site(tmp_path)))
    app, logs = make_app(("cgi", CGIT))
    status, headers, body = call(app, "/demo/", headers={"Host": "localhost"})
    assert status == "200 OK", logs
    assert headers["content-type"].startswith("text/html")
    page = body.decode()
    assert "demo" in page and "The very first commit of demo" in page


def _http_get(path: str, target: str) -> bytes:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(15)
        sock.connect(path)
        sock.sendall(f"GET {target} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_cgit_end_to_end_through_the_server(nsuwsgi, tmp_path):
    _cgit_or_skip()
    rc = _cgit_site(tmp_path)
    sockdir = tempfile.mkdtemp(prefix="nsucgi", dir="/tmp")       # unix paths are short
    try:
        sock = os.path.join(sockdir, "cgit.sock")
        inst = nsuwsgi("--http-socket", sock, "--master", "--manage-script-name",
                       "--plugins", "0:cgi", "--cgi", CGIT, "--env", f"CGIT_CONFIG={rc}")
        inst.ready()

        def listening():
            if "they are not opened" in inst.log():
                raise AssertionError(f"the server did not open its socket:\n{inst.log()}")
            return os.path.exists(sock)
        wait_for(listening, 10, "the http socket")
        response = wait_for(lambda: _try_get(sock, "/demo/"), 10, "a response from cgit")
        head, _, page = response.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), response[:500]
        assert b"Content-Type: text/html" in head
        assert b"demo" in page and b"The very first commit of demo" in page
        inst.stop()
    finally:
        shutil.rmtree(sockdir, ignore_errors=True)


def _try_get(sock: str, target: str) -> bytes | None:
    try:
        return _http_get(sock, target) or None
    except OSError:
        return None
