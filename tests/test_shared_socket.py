"""`shared-socket` for real: bound first by the master, served through `=N` references.

uWSGI's idiom: `shared-socket = ADDRESS` binds early (as root, before a jail), and
`http-socket = =0` / `socket = =1` serve the N-th shared socket with their own protocol.
The root-only half (a low port served by nobody, and from inside a jail) is in
vm-tests/test_jail_server.py.
"""

from __future__ import annotations

import os
import re
import socket

import pytest

from nsuwsgi.errors import EXIT_CONFIG
from nsuwsgi.server.uwsgi import encode_uwsgi_vars
from support import run_cli, wait_for
from test_server import ECHO, app_file, read_response


def tcp(port: int, data: bytes) -> tuple[bytes, dict, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        return read_response(sock)


def unix(path: str, data: bytes) -> tuple[bytes, dict, bytes]:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(data)
        return read_response(sock)


def answered(call):
    try:
        return call()
    except OSError:
        return None


def bound_port(inst, number: int) -> int:
    text = inst.wait_log(f"shared socket {number} bound to 127.0.0.1:")
    return int(re.search(rf"shared socket {number} bound to 127\.0\.0\.1:(\d+)", text).group(1))


def test_http_socket_serves_shared_socket_0(nsuwsgi, tmp_path):
    inst = nsuwsgi("--shared-socket", "127.0.0.1:0", "--http-socket", "=0",
                   "--wsgi-file", app_file(tmp_path, ECHO))
    port = bound_port(inst, 0)
    status, _, body = wait_for(lambda: answered(lambda: tcp(port, b"GET /a HTTP/1.0\r\n\r\n")),
                               10, f"an answer on the shared socket:\n{inst.log()}")
    assert status == b"HTTP/1.1 200 OK" and body == b"path=/a body="
    log = inst.log()
    assert f"uwsgi socket 0 bound to 127.0.0.1:{port} (shared socket 0, http)" in log
    stats = inst.stats()
    assert stats["sockets"] == [{"name": f"127.0.0.1:{port}", "proto": "http", "queue": 0,
                                 "max_queue": 100, "shared": 1}]
    assert inst.stop() == 0


def test_two_options_serve_two_shared_sockets_each_with_its_protocol(nsuwsgi, tmp_path):
    path = os.path.join(nsuwsgi.socket_dir(), "shared.sock")
    # socket = =1 speaks uwsgi to the unix socket; http-socket = =0 speaks HTTP on TCP; a third
    # shared socket that no option refers to is bound and kept open, but not served.
    inst = nsuwsgi("--shared-socket", "127.0.0.1:0", "--shared-socket", path,
                   "--shared-socket", "127.0.0.1:0", "--chmod-socket", "660",
                   "--socket", "=1", "--http-socket", "=0",
                   "--wsgi-file", app_file(tmp_path, ECHO))
    port = bound_port(inst, 0)
    unused = bound_port(inst, 2)
    status, _, body = wait_for(lambda: answered(lambda: tcp(port, b"GET /h HTTP/1.0\r\n\r\n")),
                               10, f"HTTP on shared socket 0:\n{inst.log()}")
    assert body == b"path=/h body="
    request = encode_uwsgi_vars({"REQUEST_METHOD": "GET", "PATH_INFO": "/u",
                                 "SERVER_PROTOCOL": "HTTP/1.1"})
    status, _, body = unix(path, request)
    assert status.startswith(b"HTTP/1.1 200") and body == b"path=/u body="
    assert os.stat(path).st_mode & 0o777 == 0o660, "chmod-socket applies to shared sockets"
    log = inst.log()
    assert f"uwsgi socket 0 bound to {path} (shared socket 1, uwsgi)" in log
    assert f"uwsgi socket 1 bound to 127.0.0.1:{port} (shared socket 0, http)" in log
    assert "shared socket 2 (127.0.0.1:" in log and "kept open, not served" in log
    # kept open: the port is still ours, and a request waits in its backlog unanswered
    with socket.create_connection(("127.0.0.1", unused), timeout=5) as waiting:
        waiting.sendall(b"GET / HTTP/1.0\r\n\r\n")
        waiting.settimeout(0.5)
        with pytest.raises(TimeoutError):
            waiting.recv(10)            # a served socket would answer (or close) at once
    assert [s["shared"] for s in inst.stats()["sockets"]] == [1, 1]
    assert inst.stop() == 0


def test_a_reference_to_a_missing_shared_socket_is_a_config_error(tmp_path):
    ini = tmp_path / "app.ini"
    ini.write_text("[uwsgi]\nshared-socket = 127.0.0.1:0\nhttp-socket = =0\n"
                   f"socket = =5\nwsgi-file = {app_file(tmp_path)}\n")
    result = run_cli("--ini", str(ini), cwd=tmp_path)
    assert result.returncode == EXIT_CONFIG, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("nsuwsgi: error:")]
    assert len(lines) == 1, result.stderr
    assert f"{ini}:4: socket: =5 refers to shared socket 5" in lines[0]
    assert "(hint: add shared-socket" in lines[0]


def test_bad_shared_socket_values_are_config_errors(tmp_path):
    app = app_file(tmp_path)
    for args, where in ((["--shared-socket", "=0"], "shared-socket"),
                        (["--http-socket", "=x"], "http-socket: '=x' is not =N"),
                        (["--shared-socket", "127.0.0.1:0", "--http-socket", "=0",
                          "--socket", "=0"], "shared socket 0 is already served by")):
        result = run_cli(*args, "--wsgi-file", app, cwd=tmp_path)
        assert result.returncode == EXIT_CONFIG, result.stderr
        assert "Traceback" not in result.stderr
        assert where in result.stderr and "hint:" in result.stderr, result.stderr
