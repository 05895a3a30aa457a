"""Socket activation of the Emperor itself (LISTEN_FDS / LISTEN_PID / LISTEN_FDNAMES).

The Emperor is started for real through a launcher that execs it with listening sockets on
fds 3...: systemd's own `systemd-socket-activate` (which waits for the first connection, so
that connection is pending when the Emperor starts and must be answered), or a tiny launcher
(helpers/listen_fds_launcher.py) that passes several named sockets at once. A socket is
matched to a vassal by name (the vassal file without extension) or by address (where the
vassal's on-demand socket would be); the vassal is then on demand on it. Clients talk HTTP to
the vassals over the inherited unix sockets; every wait is bounded; every process is stopped
by pid through the `nsuwsgi` fixture.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

import pytest

from emperor_support import Emperor, ini, write_atomic
from emperor_support import get as get_body
from emperor_support import app, vassals  # noqa: F401 - pytest fixtures
from nsuwsgi import systemd
from support import alive, wait_for

HERE = Path(__file__).parent
LAUNCHER = HERE / "helpers" / "listen_fds_launcher.py"
SOCKET_ACTIVATE = shutil.which("systemd-socket-activate")

def on_demand_ini(sock, app, greeting) -> str:
    return ini(sock, app, f"env = GREETING={greeting}", "idle = 1", "die-on-idle = true")


def get(sock, timeout=20.0) -> list[str]:
    """One HTTP/1.0 GET over a unix socket: the 200 answer's body (emperor_support.APP: its
    greeting, master and worker pids, and what it sees of LISTEN_*), split in words."""
    return get_body(sock, timeout).decode().split()


def try_get(sock) -> list[str] | None:
    try:
        return get(sock, timeout=5.0)
    except (OSError, AssertionError):
        return None


def refuses(sock) -> bool:
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(str(sock))
        except (ConnectionRefusedError, FileNotFoundError):
            return True
    return False


# --------------------------------------------------------------------------- the helper

def test_listen_fds_are_ours_only_with_our_pid_and_are_always_unset():
    environ = {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "2",
               "LISTEN_FDNAMES": "a:b", "OTHER": "x"}
    assert systemd.listen_fds(environ) == []
    assert environ == {"OTHER": "x"}, "another process's sockets: ignored, and hidden"
    environ = {"LISTEN_FDS": "1"}
    assert systemd.listen_fds(environ) == [] and environ == {}
    environ = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "many"}
    assert systemd.listen_fds(environ) == [] and environ == {}


# --------------------------------------------------------------------------- systemd's tool

@pytest.mark.skipif(SOCKET_ACTIVATE is None, reason="systemd-socket-activate not installed")
def test_systemd_socket_activate_starts_the_emperor_and_the_first_connection_is_answered(
        nsuwsgi, sockdir, vassals, app):
    sock = sockdir / "shop.sock"
    write_atomic(vassals / "shop.ini", on_demand_ini(sock, app, "activated"))
    # systemd-socket-activate binds the unix path, waits for a connection, then execs the
    # Emperor with the socket on fd 3 (LISTEN_PID is then the Emperor's own pid).
    emp = Emperor(nsuwsgi, sockdir, vassals,
                  prefix=[SOCKET_ACTIVATE, "-l", str(sock), "--fdname=shop"])
    emp.wait_log(f"Listening on {sock} as 3.")      # bound and listening
    assert emp.stats() is None, "no Emperor before the first connection"

    # This connection is what starts the Emperor: it waits in the backlog meanwhile.
    greeting, master, _, listen_fds, listen_pid = get(sock)
    master = int(master)
    assert greeting == "activated"
    assert (listen_fds, listen_pid) == ("-", "-"), "the vassal never sees LISTEN_*"
    log = emp.wait_log("[emperor] inherited socket fd 3 (name shop)")
    assert "vassal shop.ini: on demand on the inherited socket fd 3" in log
    v = emp.vassal("shop.ini")
    assert v["on_demand"] == str(sock) and v["pid"] == master, v
    assert "uwsgi socket 0 inherited from fd 0" in emp.log(), "the vassal adopted it"

    # die-on-idle: back to waiting on the same inherited socket; the next one starts again.
    emp.wait_vassal("shop.ini", lambda v: v["pid"] == 0, what="shop.ini gone idle")
    wait_for(lambda: not alive(master), 10, "the idle vassal to end")
    emp.wait_log("vassal shop.ini back to on-demand mode")
    _, second, *_ = get(sock)
    assert int(second) != master
    assert emp.stop() == 0
    assert sock.exists(), "an inherited socket's file is its unit's, not the Emperor's"


# --------------------------------------------------------------------------- several sockets

def test_sockets_match_vassals_by_name_or_address_and_the_rest_are_closed(
        nsuwsgi, sockdir, vassals, app):
    demand = sockdir / "demand"
    demand.mkdir()
    named = sockdir / "named-elsewhere.sock"        # matched by LISTEN_FDNAMES = "named"
    addressed = demand / "addr.socket"              # matched by the on-demand path
    stray = sockdir / "stray.sock"                  # matches nothing
    write_atomic(vassals / "named.ini", on_demand_ini(named, app, "by-name"))
    write_atomic(vassals / "addr.ini", on_demand_ini(addressed, app, "by-address"))
    emp = Emperor(nsuwsgi, sockdir, vassals, "--emperor-on-demand-dir", str(demand),
                  prefix=[sys.executable, str(LAUNCHER), f"named={named}",
                          f"unknown={addressed}", f"stray={stray}", "--"])
    log = emp.wait_log("matches no vassal: closed it")
    assert f"inherited socket fd 5 (name stray) ({stray}) matches no vassal" in log
    assert refuses(stray), "the unmatched socket was closed"

    for name, sock in (("named.ini", named), ("addr.ini", addressed)):
        v = emp.wait_vassal(name, lambda v: v["on_demand"] == str(sock), what=f"{name} armed")
        assert v["pid"] == 0 and v["state"] == "stopped", v
    assert emp.vassal_processes() == [], "nothing runs before a connection"
    assert get(named)[0] == "by-name"
    assert get(addressed)[0] == "by-address"
    assert f"vassal addr.ini: on demand on the inherited socket fd 4 ({addressed})" in emp.log()

    # A vassal whose file goes away gives its socket back; when the file returns it is on
    # demand on the same socket again (the Emperor never binds or unlinks an inherited one).
    os.unlink(vassals / "named.ini")
    emp.wait_gone("named.ini")
    assert named.exists()
    write_atomic(vassals / "named.ini", on_demand_ini(named, app, "back"))
    emp.wait_vassal("named.ini", lambda v: v["on_demand"] == str(named), what="named re-armed")
    assert wait_for(lambda: (a := try_get(named)) and a[0] == "back" and a, 20,
                    "the returning vassal answering on its inherited socket")
    assert emp.stop() == 0
    assert named.exists() and addressed.exists()
