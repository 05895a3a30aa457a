"""A tenant's app served from inside a namespace jail, with no network of its own and as
nobody, through a socket the keeper bound outside the jail before building it."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

from nsuwsgi.rootfs import build_rootfs
from support import mounts_under, unix_http_get, wait_for

APP = '''
import os
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    facts = "uid=%d hostname=%s pid=%d" % (os.getuid(), os.uname().nodename, os.getpid())
    return [facts.encode()]
'''


def jailed_tenant(nsuwsgi, tmp_path, app: str, sockdir_mode: int | None = None) \
        -> tuple[Path, str]:
    """(a rootfs with `app` as /app.py, a socket path in a directory the `nsuwsgi` fixture
    removes at teardown)."""
    root = tmp_path / "root"
    build_rootfs(str(root), usr_from_host=True)
    (root / "app.py").write_text(app)
    return root, os.path.join(nsuwsgi.socket_dir(sockdir_mode), "tenant.sock")


def test_app_served_from_a_jail_with_no_network_as_nobody(nsuwsgi, tmp_path):
    root, path = jailed_tenant(nsuwsgi, tmp_path, APP, 0o777)
    ini = tmp_path / "tenant.ini"
    ini.write_text(f"""[uwsgi]
namespace = {root}:tenant1
namespace-keep-mount = /usr:/usr:ro
namespace-net = true
uid = nobody
gid = nogroup
http-socket = {path}
wsgi-file = /app.py
processes = 2
""")
    inst = nsuwsgi("--ini", str(ini))
    inst.ready()
    reply = wait_for(lambda: _try(path), 15, f"an answer from the jailed app:\n{inst.log()}")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    facts = dict(item.split("=") for item in body.decode().split())
    assert facts["uid"] == "65534" and facts["hostname"] == "tenant1"
    assert int(facts["pid"]) < 100, "a pid of the jail's own PID namespace"
    assert os.stat(path).st_uid == 0, "bound by the keeper, as root, outside the jail"
    assert inst.stop() == 0
    assert not mounts_under(root), "the jail's mounts went with it"


def _try(path):
    try:
        return unix_http_get(path)
    except OSError:
        return None


# ---- shared-socket: a privileged port bound as root, served by workers that cannot bind it

def _get_tcp(port: int) -> bytes | None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        return data
    except OSError:
        return None


def _facts(reply: bytes) -> dict:
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), reply
    return dict(item.split("=") for item in body.decode().split())


def _uid_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("Uid:")).split()[1])


def test_a_shared_socket_on_a_low_port_is_served_by_nobody(nsuwsgi, tmp_path):
    app = os.path.join(nsuwsgi.socket_dir(0o755), "app.py")     # nobody must read the app
    with open(app, "w") as f:
        f.write(APP)
    ini = tmp_path / "low.ini"
    ini.write_text(f"""[uwsgi]
shared-socket = 127.0.0.1:81
http-socket = =0
uid = nobody
gid = nogroup
wsgi-file = {app}
processes = 2
""")
    inst = nsuwsgi("--ini", str(ini))
    inst.ready()
    reply = wait_for(lambda: _get_tcp(81), 15, f"an answer on 127.0.0.1:81:\n{inst.log()}")
    assert _facts(reply)["uid"] == "65534"
    assert "uwsgi socket 0 bound to 127.0.0.1:81 (shared socket 0, http)" in inst.log()
    stats = inst.stats()
    assert stats["uid"] == 65534, "the master dropped to nobody too"
    assert stats["sockets"][0]["name"] == "127.0.0.1:81" and stats["sockets"][0]["shared"] == 1
    assert all(_uid_of(w["pid"]) == 65534 for w in stats["workers"])
    assert inst.stop() == 0


def test_a_shared_socket_is_served_from_a_jail_with_no_network(nsuwsgi, tmp_path):
    root, _ = jailed_tenant(nsuwsgi, tmp_path, APP)
    ini = tmp_path / "tenant.ini"
    ini.write_text(f"""[uwsgi]
namespace = {root}:tenant2
namespace-keep-mount = /usr:/usr:ro
namespace-net = true
uid = nobody
gid = nogroup
shared-socket = 127.0.0.1:82
http-socket = =0
wsgi-file = /app.py
processes = 2
""")
    inst = nsuwsgi("--ini", str(ini))
    inst.ready()
    reply = wait_for(lambda: _get_tcp(82), 15, f"an answer from the jailed app:\n{inst.log()}")
    facts = _facts(reply)
    assert facts["uid"] == "65534" and facts["hostname"] == "tenant2"
    assert int(facts["pid"]) < 100, "a pid of the jail's own PID namespace"
    assert "uwsgi socket 0 bound to 127.0.0.1:82 (shared socket 0, http)" in inst.log()
    assert inst.stats()["sockets"][0]["shared"] == 1
    assert inst.stop() == 0
    assert not mounts_under(root), "the jail's mounts went with it"


# ---- stopping a jailed instance: the master alone gets the signal, its workers stop gracefully

WAITING_APP = '''
import os, time
def application(environ, start_response):
    deadline = time.monotonic() + 20        # answer once /go exists (bounded)
    while not os.path.exists("/go") and time.monotonic() < deadline:
        time.sleep(0.01)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"finished pid=%d" % os.getpid()]
'''


def test_sigterm_to_a_jailed_instance_lets_the_request_in_flight_finish(nsuwsgi, tmp_path):
    root, path = jailed_tenant(nsuwsgi, tmp_path, WAITING_APP)
    ini = tmp_path / "tenant.ini"
    ini.write_text(f"""[uwsgi]
namespace = {root}:tenant3
namespace-keep-mount = /usr:/usr:ro
uid = nobody
gid = nogroup
http-socket = {path}
wsgi-file = /app.py
worker-reload-mercy = 30
""")
    inst = nsuwsgi("--ini", str(ini))
    inst.ready()
    wait_for(lambda: inst.stats()["workers"][0]["pid"] > 0, 15, f"a worker:\n{inst.log()}")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(20)
        wait_for(lambda: sock.connect_ex(path) == 0, 10, "the socket")
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        wait_for(lambda: (w := inst.stats()["workers"][0])["status"] == "busy"
                 and w["requests"] == 0, 10, "the request")
        inst.signal(signal.SIGTERM)             # to the keeper, which relays it to init
        inst.wait_log("graceful shutdown")
        (root / "go").write_text("")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), f"{data!r}\n{inst.log()}"
    assert b"Connection: close" in head and body.startswith(b"finished")
    assert inst.wait_exit(15) == 0
    assert not mounts_under(root), "the jail's mounts went with it"
    assert "died" not in inst.log() and "NO MERCY" not in inst.log()
