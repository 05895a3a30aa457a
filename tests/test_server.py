"""The prefork server for real: HTTP and uwsgi clients over unix sockets, workers, reloads.

Every server listens on a unix socket in the instance's socket dir (no port picking); the
clients here speak raw bytes so each test states exactly what goes over the wire.
"""

from __future__ import annotations

import os
import signal
import socket
import time

from nsuwsgi.server.uwsgi import encode_uwsgi_vars
from support import wait_for

HELLO = '''
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello World"]
'''

ECHO = '''
import os, time
def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/sleep":
        time.sleep(float(environ["QUERY_STRING"] or "1"))
    if path == "/pid":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("X-Method", environ["REQUEST_METHOD"])])
    return [b"path=" + path.encode() + b" body=" + body]
'''


def app_file(tmp_path, text=HELLO, name="app.py"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(10)
    sock.connect(path)
    return sock


def read_response(sock) -> tuple[bytes, dict, bytes]:
    """(status line, headers, body) of one HTTP response, by Content-Length or to EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before the head: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode()] = value.strip().decode()
    if "content-length" in headers:
        length = int(headers["content-length"])
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return lines[0], headers, rest[:length]
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return lines[0], headers, rest
        rest += chunk


def http(path: str, request: bytes) -> tuple[bytes, dict, bytes]:
    with connect(path) as sock:
        sock.sendall(request)
        return read_response(sock)


def start_server(nsuwsgi, tmp_path, *extra, app=HELLO, protocol="http-socket"):
    path = os.path.join(nsuwsgi.socket_dir(), "app.sock")
    inst = nsuwsgi(f"--{protocol}", path, "--wsgi-file", app_file(tmp_path, app), *extra)
    inst.ready()
    wait_for(lambda: inst.stats()["workers"] and all(
        w["pid"] > 0 for w in inst.stats()["workers"]), 10, "workers")
    wait_for(lambda: _answers(path, protocol), 10, f"the server on {path}:\n{inst.log()}")
    return inst, path


def _answers(path, protocol) -> bool:
    try:
        if protocol == "http-socket":
            return http(path, b"GET / HTTP/1.0\r\n\r\n")[0].startswith(b"HTTP/1.1")
        return uwsgi_request(path, {"REQUEST_METHOD": "GET", "PATH_INFO": "/"})[0] != b""
    except OSError:
        return False


def uwsgi_request(path: str, env: dict, body: bytes = b"") -> tuple[bytes, dict, bytes]:
    with connect(path) as sock:
        sock.sendall(encode_uwsgi_vars(env) + body)
        return read_response(sock)


def test_hello_world_over_http(nsuwsgi, tmp_path):
    inst, path = start_server(nsuwsgi, tmp_path)
    status, headers, body = http(path, b"GET /x?y=1 HTTP/1.1\r\nHost: t\r\n"
                                       b"Connection: close\r\n\r\n")
    assert status == b"HTTP/1.1 200 OK"
    assert body == b"Hello World"
    assert headers["connection"] == "close", "uWSGI closes without saying so; we say it"
    assert inst.stop() == 0


def test_keep_alive_serves_several_requests_on_one_connection(nsuwsgi, tmp_path):
    inst, path = start_server(nsuwsgi, tmp_path, app=ECHO)
    with connect(path) as sock:
        for i in range(3):
            sock.sendall(b"GET /n%d HTTP/1.1\r\nHost: t\r\n\r\n" % i)
            status, headers, body = read_response(sock)
            assert body == b"path=/n%d body=" % i
            assert "connection" not in headers or headers["connection"] != "close"


def test_post_with_content_length_and_chunked_bodies(nsuwsgi, tmp_path):
    inst, path = start_server(nsuwsgi, tmp_path, app=ECHO)
    _, headers, body = http(path, b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                                  b"Connection: close\r\n\r\nhello")
    assert body == b"path=/p body=hello" and headers["x-method"] == "POST"
    _, _, body = http(path, b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                            b"Connection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    assert body == b"path=/c body=abcde"


def test_malformed_request_gets_400_and_the_worker_keeps_serving(nsuwsgi, tmp_path):
    inst, path = start_server(nsuwsgi, tmp_path)
    status, _, _ = http(path, b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 400")
    assert http(path, b"GET / HTTP/1.0\r\n\r\n")[2] == b"Hello World"
    assert "invalid request" in inst.log()


def test_uwsgi_protocol(nsuwsgi, tmp_path):
    inst, path = start_server(nsuwsgi, tmp_path, app=ECHO, protocol="socket")
    status, _, body = uwsgi_request(path, {"REQUEST_METHOD": "POST", "PATH_INFO": "/u",
                                           "CONTENT_LENGTH": "4", "SERVER_PROTOCOL": "HTTP/1.1"},
                                    b"data")
    assert status == b"HTTP/1.1 200 OK"
    assert body == b"path=/u body=data"


def test_stats_show_workers_and_requests(nsuwsgi, tmp_path):
    inst, path = start_server(nsuwsgi, tmp_path, "--processes", "2")
    for _ in range(4):
        http(path, b"GET / HTTP/1.0\r\n\r\n")
    # a worker counts a request once its response is sent: wait for the last one to land
    workers = wait_for(lambda: (w := inst.stats()["workers"]) and
                       sum(x["requests"] for x in w) >= 4 and w, 5, "4 requests counted")
    assert [w["id"] for w in workers] == [1, 2]
    assert all(w["rss"] > 0 and w["status"] in ("idle", "busy") for w in workers)
    # uwsgitop's fields (tests/test_uwsgitop.py runs the real one)
    assert all(w["vsz"] >= w["rss"] and w["exceptions"] == 0 and w["harakiri_count"] == 0
               for w in workers)
    served = [w for w in workers if w["requests"]]
    assert all(w["running_time"] > 0 and w["tx"] >= w["requests"] * len(b"Hello World")
               for w in served)
    assert all(abs(w["last_spawn"] - time.time()) < 60 for w in workers)


def test_max_requests_recycles_the_worker(nsuwsgi, tmp_path):
    inst, path = start_server(nsuwsgi, tmp_path, "--max-requests", "3", app=ECHO)
    pids = {int(http(path, b"GET /pid HTTP/1.0\r\n\r\n")[2]) for _ in range(7)}
    assert len(pids) >= 3, "a fresh worker every 3 requests"
    assert "max-requests 3" in inst.log()


def test_harakiri_kills_a_stuck_request_and_the_worker_is_replaced(nsuwsgi, tmp_path):
    inst, path = start_server(nsuwsgi, tmp_path, "--harakiri", "1", app=ECHO)
    first = inst.stats()["workers"][0]["pid"]
    with connect(path) as sock:
        sock.sendall(b"GET /sleep?30 HTTP/1.0\r\n\r\n")
        assert sock.recv(100) == b"", "the stuck worker was killed: the connection drops"
    inst.wait_log("HARAKIRI ON WORKER 1")
    wait_for(lambda: inst.stats()["workers"][0]["pid"] not in (-1, first), 10, "a new worker")
    assert http(path, b"GET / HTTP/1.0\r\n\r\n")[2].startswith(b"path=/")
    worker = inst.stats()["workers"][0]
    assert worker["harakiri_count"] == 1 and worker["respawn_count"] == 2


def start_from_ini(nsuwsgi, tmp_path, extra: str):
    """An ECHO server from an ini file that a test rewrites and reloads: (instance, ini path,
    socket path, the ini's fixed lines)."""
    ini = tmp_path / "app.ini"
    path = os.path.join(nsuwsgi.socket_dir(), "app.sock")
    base = f"[uwsgi]\nhttp-socket = {path}\nwsgi-file = {app_file(tmp_path, ECHO)}\n"
    ini.write_text(base + extra)
    inst = nsuwsgi("--ini", str(ini))
    inst.ready()
    return inst, ini, path, base


def test_harakiri_set_by_a_reload_is_enforced(nsuwsgi, tmp_path):
    """The worker check runs only while harakiri, idle or reload-on-rss is set: a reload that
    sets one must start it."""
    inst, ini, path, base = start_from_ini(nsuwsgi, tmp_path, "")
    first = wait_for(lambda: inst.stats()["workers"][0]["pid"] > 0 and
                     inst.stats()["workers"][0]["pid"], 10, "a worker")
    ini.write_text(base + "harakiri = 1\n")
    inst.signal(signal.SIGHUP)
    second = wait_for(lambda: inst.stats()["workers"][0]["pid"] not in (-1, first) and
                      inst.stats()["workers"][0]["pid"], 10, "the reloaded generation")
    with connect(path) as sock:
        sock.sendall(b"GET /sleep?30 HTTP/1.0\r\n\r\n")
        assert sock.recv(100) == b"", "the stuck worker was killed: the connection drops"
    inst.wait_log("HARAKIRI ON WORKER 1")
    wait_for(lambda: inst.stats()["workers"][0]["pid"] not in (-1, second), 10, "a new worker")
    assert inst.stop() == 0


def test_a_reload_without_the_app_is_refused_and_the_app_keeps_serving(nsuwsgi, tmp_path):
    inst, ini, path, base = start_from_ini(nsuwsgi, tmp_path, "")
    first = wait_for(lambda: inst.stats()["workers"][0]["pid"] > 0 and
                     inst.stats()["workers"][0]["pid"], 10, "a worker")
    ini.write_text(f"[uwsgi]\nhttp-socket = {path}\n")
    inst.signal(signal.SIGHUP)
    inst.wait_log("reload refused: the new configuration has no app")
    assert http(path, b"GET / HTTP/1.0\r\n\r\n")[2].startswith(b"path=/")
    assert inst.stats()["workers"][0]["pid"] == first
    assert inst.stop() == 0


def test_graceful_reload_under_load_drops_no_request(nsuwsgi, tmp_path):
    inst, path = start_server(nsuwsgi, tmp_path, "--processes", "2", app=ECHO)
    old = {w["pid"] for w in inst.stats()["workers"]}
    failures, served, reloaded = 0, 0, False
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            _, _, body = http(path, b"GET /pid HTTP/1.0\r\n\r\n")
            served += 1
            if int(body) not in old:
                reloaded = True
        except OSError:
            failures += 1
        if served == 50:
            inst.signal(signal.SIGHUP)
        if reloaded and served >= 200:
            break
    assert reloaded, "requests were answered by the new generation"
    assert failures == 0
    wait_for(lambda: not old & {w["pid"] for w in inst.stats()["workers"]}, 10, "old gone")


def test_an_app_that_cannot_load_is_reported_and_backed_off(nsuwsgi, tmp_path):
    inst, path = start_server(nsuwsgi, tmp_path)
    bad = app_file(tmp_path, "def application(:\n", name="bad.py")
    inst2 = nsuwsgi("--http-socket", path + "2", "--wsgi-file", bad)
    inst2.wait_log("bad.py")
    inst2.wait_log("could not load the app")
    assert inst2.proc.poll() is None, "the master keeps running and retries with backoff"


def test_socket_activation_through_systemd_socket_activate(tmp_path):
    import shutil
    import subprocess

    from support import OWNED, PYTHON
    if not shutil.which("systemd-socket-activate"):
        import pytest
        pytest.skip("systemd-socket-activate is not installed")
    sockpath = str(tmp_path / "act.sock")
    proc = subprocess.Popen(["systemd-socket-activate", "-l", sockpath, PYTHON, "-m",
                             "nsuwsgi", "--protocol", "http", "--wsgi-file",
                             app_file(tmp_path)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    OWNED.add(proc.pid)
    try:
        # The socket file appears at bind(), a moment before listen(): wait for an answer.
        def answer():
            try:
                return http(sockpath, b"GET / HTTP/1.0\r\n\r\n")
            except OSError:
                return None
        status, _, body = wait_for(answer, 10, "an answer on the activation socket")
        assert body == b"Hello World"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        OWNED.discard(proc.pid)


def test_cheap_starts_no_worker_until_the_first_connection(nsuwsgi, tmp_path):
    path = os.path.join(nsuwsgi.socket_dir(), "cheap.sock")
    inst = nsuwsgi("--http-socket", path, "--wsgi-file", app_file(tmp_path), "--cheap")
    inst.ready()
    inst.wait_log("cheap mode")
    assert all(w["pid"] == -1 for w in inst.stats()["workers"])
    status, _, body = http(path, b"GET / HTTP/1.0\r\n\r\n")
    assert body == b"Hello World", "the first connection waits for the worker and is served"
    assert inst.stats()["workers"][0]["pid"] > 0


def test_idle_goes_back_to_cheap_and_die_on_idle_exits(nsuwsgi, tmp_path):
    inst, path = start_server(nsuwsgi, tmp_path, "--idle", "1")
    http(path, b"GET / HTTP/1.0\r\n\r\n")
    inst.wait_log("going cheap", timeout=10)
    wait_for(lambda: all(w["pid"] == -1 for w in inst.stats()["workers"]), 10, "no worker")
    assert http(path, b"GET / HTTP/1.0\r\n\r\n")[2] == b"Hello World", "and it wakes up again"
    inst2, path2 = start_server(nsuwsgi, tmp_path, "--idle", "1", "--die-on-idle")
    assert inst2.wait_exit() == 0
    assert "die-on-idle" in inst2.log()


def test_touch_reload_starts_a_new_generation(nsuwsgi, tmp_path):
    trigger = tmp_path / "reload.me"
    trigger.write_text("1")
    inst, path = start_server(nsuwsgi, tmp_path, "--touch-reload", str(trigger), app=ECHO)
    first = int(http(path, b"GET /pid HTTP/1.0\r\n\r\n")[2])
    trigger.write_text("2")
    inst.wait_log("has been touched")
    wait_for(lambda: int(http(path, b"GET /pid HTTP/1.0\r\n\r\n")[2]) != first, 10,
             "a worker of the new generation")


def test_ipv6_loopback_socket_with_a_kernel_chosen_port(nsuwsgi, tmp_path):
    import re
    inst = nsuwsgi("--http-socket", "[::1]:0", "--wsgi-file", app_file(tmp_path))
    text = inst.wait_log("bound to [::1]:")
    port = int(re.search(r"bound to \[::1\]:(\d+)", text).group(1))

    def answer():
        try:
            with socket.create_connection(("::1", port), timeout=5) as sock:
                sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
                return read_response(sock)[2]
        except OSError:
            return None
    assert wait_for(answer, 10, "an answer over IPv6") == b"Hello World"


def test_the_last_response_before_max_requests_says_connection_close(nsuwsgi, tmp_path):
    inst, path = start_server(nsuwsgi, tmp_path, "--max-requests", "2")
    with connect(path) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        _, headers, _ = read_response(sock)
        if headers.get("connection") != "close":       # the readiness probe was request 1
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            _, headers, _ = read_response(sock)
        assert headers["connection"] == "close"


def test_an_oversized_head_gets_431_with_its_own_reason_phrase(nsuwsgi, tmp_path):
    inst, path = start_server(nsuwsgi, tmp_path)
    status, _, _ = http(path, b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n")
    assert status == b"HTTP/1.1 431 Request Header Fields Too Large"


def test_stats_count_bytes_sent_and_app_exceptions_exactly(nsuwsgi, tmp_path):
    app = ECHO.replace('    if path == "/pid":', '    if path == "/boom":\n'
                       '        raise RuntimeError("boom")\n    if path == "/pid":')
    inst, path = start_server(nsuwsgi, tmp_path, app=app)
    before = wait_for(lambda: (w := inst.stats()["workers"][0])["requests"] and w, 5, "probe")
    received = 0
    for target in (b"/a", b"/boom", b"/bb"):
        with connect(path) as sock:
            sock.sendall(b"GET " + target + b" HTTP/1.0\r\n\r\n")
            while chunk := sock.recv(65536):
                received += len(chunk)
    after = wait_for(lambda: (w := inst.stats()["workers"][0])["requests"] ==
                     before["requests"] + 3 and w, 5, "3 more requests counted")
    assert after["tx"] - before["tx"] == received, "every byte on the wire, heads included"
    assert after["exceptions"] - before["exceptions"] == 1
    assert after["running_time"] > before["running_time"]


# ---- the "Known problems" of docs/serving.md, each proved gone

WAIT_FOR_FILE = '''
import os, time
def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/wait":             # answer once the file QUERY_STRING names exists (bounded)
        deadline = time.monotonic() + 20
        while not os.path.exists(environ["QUERY_STRING"]) and time.monotonic() < deadline:
            time.sleep(0.01)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
'''


def _busy(inst, pid, served):
    """Worker `pid` is serving a request after `served` finished ones (stats show a request
    as busy until its worker has written the end of it, after the client had its answer)."""
    return any(w["pid"] == pid and w["status"] == "busy" and w["requests"] == served
               for w in inst.stats()["workers"])


def _idle_after(inst, pid):
    """How many requests worker `pid` has finished, once it is idle."""
    def check():
        w = next(w for w in inst.stats()["workers"] if w["pid"] == pid)
        return w["status"] == "idle" and (w["requests"],)
    return wait_for(check, 10, f"worker {pid} idle")[0]


def test_ipv6_http_socket_and_uwsgi_socket_fill_the_environ(nsuwsgi, tmp_path):
    import re
    if not socket.has_ipv6:
        import pytest
        pytest.skip("this Python has no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError as err:
        import pytest
        pytest.skip(f"no IPv6 loopback on this machine (binding [::1]:0: {err.strerror})")
    app = '''
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    keys = ("REMOTE_ADDR", "REMOTE_PORT", "SERVER_NAME", "SERVER_PORT")
    return [" ".join(environ[k] for k in keys).encode()]
'''
    inst = nsuwsgi("--socket", "[::1]:0", "--http-socket", "[::1]:0",
                   "--wsgi-file", app_file(tmp_path, app))
    text = inst.wait_log("(http)")
    uwsgi_port = int(re.search(r"bound to \[::1\]:(\d+) \(uwsgi\)", text).group(1))
    http_port = int(re.search(r"bound to \[::1\]:(\d+) \(http\)", text).group(1))

    def ask(port, request):
        try:
            with socket.create_connection(("::1", port), timeout=5) as sock:
                sock.sendall(request)
                body = read_response(sock)[2]
                return body, sock.getsockname()[1]
        except OSError:
            return None
    body, client_port = wait_for(lambda: ask(http_port, b"GET / HTTP/1.0\r\n\r\n"), 10,
                                 f"an answer over IPv6 HTTP:\n{inst.log()}")
    assert body.decode().split() == ["::1", str(client_port), "::1", str(http_port)]
    # uwsgi: nginx passes the variables; what it leaves out comes from the socket
    body, client_port = ask(uwsgi_port, encode_uwsgi_vars({"REQUEST_METHOD": "GET",
                                                            "PATH_INFO": "/"}))
    assert body.decode().split() == ["::1", str(client_port), "::1", str(uwsgi_port)]
    assert "Traceback" not in inst.log()


def test_a_bind_error_names_the_file_line_option_and_address(nsuwsgi, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ini = tmp_path / "app.ini"
        ini.write_text(f"[uwsgi]\nwsgi-file = {app_file(tmp_path)}\n"
                       f"http-socket = 127.0.0.1:{port}\n")
        inst = nsuwsgi("--ini", str(ini))
        assert inst.wait_exit() == 1
    assert (f"nsuwsgi: error: {ini}:3: http-socket = 127.0.0.1:{port}: Address already in use"
            in inst.log())
    assert "SocketSpec" not in inst.log()


def test_a_graceful_reload_closes_the_keep_alive_connection_it_is_serving(nsuwsgi, tmp_path):
    inst, path = start_server(nsuwsgi, tmp_path, app=WAIT_FOR_FILE)
    go = tmp_path / "go"
    with connect(path) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        _, headers, body = read_response(sock)
        assert headers.get("connection") != "close"
        old = int(body)
        served = _idle_after(inst, old)
        sock.sendall(b"GET /wait?" + str(go).encode() + b" HTTP/1.1\r\nHost: t\r\n\r\n")
        wait_for(lambda: _busy(inst, old, served), 10, "the request in progress")
        inst.signal(signal.SIGHUP)
        # the new generation is up, so the old worker has its graceful stop signal
        wait_for(lambda: old not in {w["pid"] for w in inst.stats()["workers"]}, 10,
                 "the new generation")
        go.write_text("")
        _, headers, body = read_response(sock)
        assert int(body) == old and headers["connection"] == "close"
        assert sock.recv(100) == b"", "the old worker closed the connection"
    assert int(http(path, b"GET / HTTP/1.0\r\n\r\n")[2]) != old


def test_a_second_stop_signal_kills_the_workers_at_once(nsuwsgi, tmp_path):
    inst, path = start_server(nsuwsgi, tmp_path, "--worker-reload-mercy", "60",
                              app=WAIT_FOR_FILE)
    worker = inst.stats()["workers"][0]["pid"]
    served = _idle_after(inst, worker)
    with connect(path) as sock:
        sock.sendall(b"GET /wait?" + str(tmp_path / "never").encode() + b" HTTP/1.0\r\n\r\n")
        wait_for(lambda: _busy(inst, worker, served), 10, "the request in progress")
        inst.signal(signal.SIGTERM)
        inst.wait_log("graceful shutdown")
        inst.signal(signal.SIGTERM)
        assert inst.wait_exit(10) == 0, f"not the 60 s of worker-reload-mercy:\n{inst.log()}"
        assert sock.recv(100) == b"", "the worker was killed mid-request"
    assert "second stop signal" in inst.log()


def test_an_app_that_raises_at_import_has_its_traceback_logged(nsuwsgi, tmp_path):
    bad = app_file(tmp_path, "def helper():\n    raise RuntimeError('broken at import')\n\n"
                             "helper()\n", name="raises.py")
    inst = nsuwsgi("--http-socket", os.path.join(tmp_path, "s.sock"), "--wsgi-file", bad)
    text = inst.wait_log("could not load the app")
    assert "raised RuntimeError: broken at import" in text
    assert "Traceback (most recent call last):" in text
    assert f'File "{bad}", line 4, in <module>' in text and "in helper" in text


def test_a_changed_processes_takes_effect_on_a_graceful_reload(nsuwsgi, tmp_path):
    inst, ini, path, base = start_from_ini(nsuwsgi, tmp_path, "processes = 1\n")

    def workers(n):
        ws = inst.stats()["workers"]
        return len(ws) == n and all(w["pid"] > 0 for w in ws) and ws
    first = wait_for(lambda: workers(1), 10, "1 worker")
    for count in (3, 2):
        ini.write_text(base + f"processes = {count}\n")
        inst.signal(signal.SIGHUP)
        now = wait_for(lambda: workers(count), 10, f"{count} workers:\n{inst.log()}")
        assert not {w["pid"] for w in first} & {w["pid"] for w in now}
        assert [w["id"] for w in now] == list(range(1, count + 1))
        first = now
        pids = {int(http(path, b"GET /pid HTTP/1.0\r\n\r\n")[2]) for _ in range(20)}
        assert pids <= {w["pid"] for w in now}
    assert "'processes' changed" not in inst.log()
    assert inst.stop() == 0
