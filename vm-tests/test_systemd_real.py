"""The unit files in docs/systemd/, installed as they stand, under a real systemd.

One Debian 12 container (vm-tests/systemd_rig.py) is booted for the whole module; each test
installs what it needs, and its fixture stops and removes it again. Everything the tests
check is what a user sees: `systemctl is-active`, the Status line, the unit's control group,
/run/nsuwsgi, and HTTP or uwsgi answers from inside the container.
"""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest

import support
from systemd_rig import ROOT, Container, make_workdir, why_unavailable

pytestmark = [pytest.mark.xdist_group("systemd"), pytest.mark.timeout(900)]

EMPEROR = "emperor.nsuwsgi.service"
SOCKET = "emperor.nsuwsgi.socket"

APP = '''
import os
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("%s master %d worker %d uid %d" % (os.environ.get("APP", "-"), os.getppid(),
                                                os.getpid(), os.getuid())).encode()]
'''

EMPEROR_INI = """\
[uwsgi]
emperor = /etc/nsuwsgi/vassals
emperor-stats = /run/nsuwsgi/emperor-stats.sock
"""

CGIT_INI = """\
[uwsgi]
; the seed's cgit app (idle shortened from 600 s so the test sees it exit and come back)
master = True
cheap = True
idle = 2
die-on-idle = True
manage-script-name = True
plugins = 0:cgi
cgi = /usr/lib/cgit/cgit.cgi
"""


def vassal_ini(name: str, port: int, extra: str = "") -> str:
    return (f"[uwsgi]\nmaster = true\nprocesses = 1\nhttp-socket = 127.0.0.1:{port}\n"
            f"wsgi-file = /srv/app.py\nenv = APP={name}\n{extra}")


@pytest.fixture(scope="module")
def box():
    reason = why_unavailable()
    if reason and os.environ.get("CI"):
        pytest.fail(f"CI must run the systemd container tests: {reason}")
    if reason:
        pytest.skip(reason)
    container = Container(make_workdir())
    try:
        container.start()
        support.OWNED.add(container.nspawn.pid)
        for name in ("emperor.nsuwsgi.service", "emperor.nsuwsgi.socket",
                     "nsuwsgi-app@.socket", "nsuwsgi-app@.service"):
            container.write(f"/etc/systemd/system/{name}",
                            (ROOT / "docs" / "systemd" / name).read_text())
        container.write("/srv/app.py", APP)
        container.write("/etc/nsuwsgi/emperor.ini", EMPEROR_INI)
        container.sh("systemctl daemon-reload")
        yield container
    finally:
        container.stop()
        if container.nspawn is not None:
            support.OWNED.discard(container.nspawn.pid)
        assert not container.mounted and not support.mounts_under(container.root), \
            "the overlay is unmounted"
        shutil.rmtree(container.workdir, ignore_errors=True)


@pytest.fixture
def emperor(box):
    """A clean vassals directory; afterwards the Emperor, its socket and drop-ins are gone."""
    vassals = box.path("/etc/nsuwsgi/vassals")
    vassals.mkdir(parents=True, exist_ok=True)
    for leftover in vassals.iterdir():
        leftover.unlink()
    yield box
    box.sh(f"systemctl stop {SOCKET} {EMPEROR}; systemctl disable {SOCKET} {EMPEROR} 2>/dev/null;"
           f" rm -rf /etc/systemd/system/{EMPEROR}.d; systemctl daemon-reload;"
           f" systemctl reset-failed", check=False)
    assert box.unit_pids(EMPEROR) == []
    for leftover in vassals.iterdir():
        leftover.unlink()


def add_vassal(box: Container, name: str, port: int, extra: str = "") -> None:
    box.write(f"/etc/nsuwsgi/vassals/{name}.ini", vassal_ini(name, port, extra))


def http(box: Container, address: str, path: str = "/") -> tuple[str, str]:
    done = box.sh(f"client http {address} {path}", check=False)
    if done.returncode != 0:
        return "", done.stderr
    status, _, body = done.stdout.partition("\n")
    return status, body


def answers(box: Container, port: int, expected: str):
    status, body = http(box, f"127.0.0.1:{port}")
    return body if status == "200" and body.startswith(expected) else None


def status_text(box: Container, unit: str = EMPEROR) -> str:
    return box.show(unit, "StatusText")


def governing(count: int) -> str:
    plural = "vassal" if count == 1 else "vassals"
    return f"The Emperor is governing {count} {plural}"


def master_pid(body: str) -> int:
    return int(re.search(r"master (\d+)", body).group(1))


# --------------------------------------------------------------------------- the Emperor

def test_systemd_accepts_the_unit_files_as_they_stand(box):
    done = box.sh("cd /etc/systemd/system && systemd-analyze verify emperor.nsuwsgi.service "
                  "emperor.nsuwsgi.socket nsuwsgi-app@cgit.socket nsuwsgi-app@cgit.service 2>&1")
    assert done.stdout == ""



def test_start_becomes_active_and_status_counts_vassals_as_they_come_and_go(emperor):
    box = emperor
    add_vassal(box, "app1", 8001)
    add_vassal(box, "app2", 8002)
    box.sh(f"systemctl start {EMPEROR}")
    assert box.show(EMPEROR, "ActiveState") == "active"
    assert box.show(EMPEROR, "Type") == "notify"
    # Type=notify: `start` returned only after READY=1, when the vassals were spawned.
    assert status_text(box) == governing(2)
    shown = box.sh(f"systemctl status --no-pager {EMPEROR}", check=False).stdout
    assert f'Status: "{governing(2)}"' in shown
    box.wait_for(lambda: answers(box, 8001, "app1"), 10, "app1 answering")
    box.wait_for(lambda: answers(box, 8002, "app2"), 10, "app2 answering")

    add_vassal(box, "app3", 8003)
    box.wait_for(lambda: status_text(box) == governing(3), 10, "status: 3 vassals")
    box.wait_for(lambda: answers(box, 8003, "app3"), 10, "app3 answering")

    box.path("/etc/nsuwsgi/vassals/app2.ini").unlink()
    box.path("/etc/nsuwsgi/vassals/app3.ini").unlink()
    box.wait_for(lambda: status_text(box) == governing(1), 10, "status: 1 vassal")
    box.wait_for(lambda: http(box, "127.0.0.1:8002")[0] == "", 10, "app2's port closed")
    assert answers(box, 8001, "app1")


def test_stop_leaves_no_process_and_removes_the_runtime_directory(emperor):
    box = emperor
    add_vassal(box, "app1", 8001, "socket = /run/nsuwsgi/app1.sock\n"
                                  "chown-socket = www-data:www-data\nchmod-socket = 660\n")
    add_vassal(box, "app2", 8002)
    box.sh(f"systemctl start {EMPEROR}")
    box.wait_for(lambda: answers(box, 8001, "app1"), 10, "app1 answering")
    box.wait_for(lambda: answers(box, 8002, "app2"), 10, "app2 answering")
    # The vassal's socket in RuntimeDirectory= gets the owner its config asks for.
    owner = box.sh("stat -c '%U:%G %a' /run/nsuwsgi/app1.sock").stdout.split()
    assert owner == ["www-data:www-data", "660"]
    assert box.sh("client uwsgi /run/nsuwsgi/app1.sock /").stdout.startswith("200\napp1")
    pids = box.unit_pids(EMPEROR)
    assert len(pids) >= 5, pids        # Emperor, fork-server, 2 x (master + worker)

    box.sh(f"systemctl stop {EMPEROR}")
    assert box.show(EMPEROR, "ActiveState") == "inactive"
    assert box.show(EMPEROR, "Result") == "success"
    assert box.unit_pids(EMPEROR) == []
    assert [pid for pid in pids if box.alive(pid)] == []
    assert box.sh("test -e /run/nsuwsgi", check=False).returncode != 0


def test_reload_keeps_every_vassal_and_restart_replaces_them(emperor):
    box = emperor
    add_vassal(box, "app1", 8001)
    add_vassal(box, "app2", 8002)
    box.sh(f"systemctl start {EMPEROR}")
    before = {port: master_pid(box.wait_for(lambda p=port: answers(box, p, ""), 10, "answer"))
              for port in (8001, 8002)}
    main_before = box.show(EMPEROR, "MainPID")

    box.sh(f"systemctl reload {EMPEROR}")
    # A reload is graceful: same Emperor, same vassal masters, new workers, never down.
    for port, master in before.items():
        box.wait_for(lambda p=port: answers(box, p, ""), 10, "answering after reload")
        assert master_pid(answers(box, port, "")) == master
    assert box.show(EMPEROR, "MainPID") == main_before
    box.wait_for(lambda: status_text(box) == governing(2), 10, "status after reload")
    assert box.show(EMPEROR, "ActiveState") == "active"

    box.sh(f"systemctl restart {EMPEROR}")
    assert box.show(EMPEROR, "MainPID") != main_before
    assert status_text(box) == governing(2)
    for port, master in before.items():
        body = box.wait_for(lambda p=port: answers(box, p, ""), 10, "answering after restart")
        assert master_pid(body) != master
        assert not box.alive(master)


def test_stats_socket_lists_vassals_with_their_state(emperor):
    box = emperor
    add_vassal(box, "app1", 8001)
    box.sh(f"systemctl start {EMPEROR}")
    def vassals():
        stats = json.loads(box.sh("client stats /run/nsuwsgi/emperor-stats.sock").stdout)
        assert stats["pid"] == int(box.show(EMPEROR, "MainPID"))
        return [(v["id"], v["state"], v["ready"]) for v in stats["vassals"]]
    box.wait_for(lambda: vassals() == [("app1.ini", "running", True)], 10, "app1 ready in stats")


def test_socket_activation_starts_the_emperor_and_answers_the_first_connection(emperor):
    box = emperor
    # docs/systemd/emperor.nsuwsgi.socket: ListenStream=127.0.0.1:8001, FileDescriptorName=app1
    add_vassal(box, "app1", 8001)
    box.sh(f"systemctl enable --now {SOCKET}")
    assert box.show(EMPEROR, "ActiveState") == "inactive"
    status, body = http(box, "127.0.0.1:8001")
    assert (status, body[:4]) == ("200", "app1")
    assert box.show(EMPEROR, "ActiveState") == "active"
    assert status_text(box) == governing(1)
    # The vassal serves on the socket systemd made: stopping the Emperor leaves it listening.
    box.sh(f"systemctl stop {EMPEROR}")
    assert box.show(SOCKET, "ActiveState") == "active"
    status, body = http(box, "127.0.0.1:8001")
    assert (status, body[:4]) == ("200", "app1")


def test_watchdog_kills_and_restarts_a_hung_emperor(emperor):
    box = emperor
    box.write(f"/etc/systemd/system/{EMPEROR}.d/watchdog.conf",
              "[Service]\nWatchdogSec=2\nTimeoutAbortSec=2\n")
    box.sh("systemctl daemon-reload")
    add_vassal(box, "app1", 8001)
    box.sh(f"systemctl start {EMPEROR}")
    hung = box.show(EMPEROR, "MainPID")
    body = box.wait_for(lambda: answers(box, 8001, "app1"), 10, "app1 answering")
    # A healthy Emperor feeds the watchdog: systemd records its pings, and a span longer
    # than WatchdogSec passes without a restart.
    first = int(box.show(EMPEROR, "WatchdogTimestampMonotonic"))
    box.wait_for(lambda: int(box.show(EMPEROR, "WatchdogTimestampMonotonic")) > first + 2_500_000,
                 10, "watchdog pings for more than WatchdogSec")
    assert box.show(EMPEROR, "MainPID") == hung
    assert box.show(EMPEROR, "NRestarts") == "0"
    box.sh(f"kill -STOP {hung}")
    box.wait_for(lambda: box.show(EMPEROR, "MainPID") not in ("0", hung) and
                 box.show(EMPEROR, "ActiveState") == "active", 30, "a new Emperor")
    assert int(box.show(EMPEROR, "NRestarts")) >= 1
    assert not box.alive(int(hung))
    assert not box.alive(master_pid(body))
    box.wait_for(lambda: answers(box, 8001, "app1"), 10, "app1 answering again")


# --------------------------------------------------------------------------- one service per app

@pytest.fixture
def cgit(box):
    box.sh("id www-cgit >/dev/null 2>&1 || useradd --system --gid www-data --no-create-home "
           "--home-dir /var/lib/www/cgit --shell /bin/false www-cgit")
    box.sh("set -e; rm -rf /srv/git /tmp/work; mkdir -p /srv/git; git init -q --bare /srv/git/demo.git;"
           " git init -q /tmp/work; cd /tmp/work; echo hello > README;"
           " git -c user.name=t -c user.email=t@localhost add README;"
           " git -c user.name=t -c user.email=t@localhost commit -q -m 'first commit';"
           " git push -q /srv/git/demo.git HEAD:master; rm -rf /tmp/work")
    box.write("/etc/cgitrc", "virtual-root=/\nrepo.url=demo\nrepo.path=/srv/git/demo.git\n"
                             "repo.desc=the rig's repository\n")
    box.write("/etc/nsuwsgi/apps-available/cgit.ini", CGIT_INI)
    box.sh("systemctl enable --now nsuwsgi-app@cgit.socket")
    yield box
    box.sh("systemctl stop nsuwsgi-app@cgit.socket nsuwsgi-app@cgit.service;"
           " systemctl disable nsuwsgi-app@cgit.socket; systemctl reset-failed", check=False)
    assert box.unit_pids("nsuwsgi-app@cgit.service") == []


def test_one_service_per_app_cgit_starts_on_demand_exits_idle_and_comes_back(cgit):
    box = cgit
    service = "nsuwsgi-app@cgit.service"
    sock = "/run/nsuwsgi-apps/cgit.socket"
    owner = box.sh(f"stat -c '%U:%G %a' {sock}").stdout.split()
    assert owner == ["www-cgit:www-data", "660"]
    assert box.show(service, "ActiveState") == "inactive"

    first = box.sh(f"client uwsgi {sock} /")
    assert first.stdout.startswith("200\n") and "demo" in first.stdout
    assert box.show(service, "ActiveState") == "active"
    main = box.show(service, "MainPID")
    assert box.sh(f"stat -c %U /proc/{main}").stdout.strip() == "www-cgit"
    log = box.sh(f"client uwsgi {sock} /demo/log/")
    assert log.stdout.startswith("200\n") and "first commit" in log.stdout

    # die-on-idle: the app exits cleanly after `idle` seconds, and systemd keeps it down.
    box.wait_for(lambda: box.show(service, "ActiveState") == "inactive", 30, "idle exit")
    assert box.show(service, "Result") == "success"
    assert box.show("nsuwsgi-app@cgit.socket", "ActiveState") == "active"

    again = box.sh(f"client uwsgi {sock} /")
    assert again.stdout.startswith("200\n") and "demo" in again.stdout
    assert box.show(service, "MainPID") not in ("0", main)


# --------------------------------------------------------------------------- the quickstart

# docs/quickstart.md, steps 3 to 7, exactly as written there (the test checks they still are).
QUICKSTART = """\
mkdir -p /srv/nsuwsgi
nsuwsgi rootfs /srv/nsuwsgi/app1 --usr-from-host --user app1:10001:10001
nsuwsgi rootfs /srv/nsuwsgi/app2 --usr-from-host --user app2:10002:10002
install -o 10001 -g 10001 -m 0644 "$SRC/examples/hello_app.py" /srv/nsuwsgi/app1/home/app1/app.py
install -o 10002 -g 10002 -m 0644 "$SRC/examples/hello_app.py" /srv/nsuwsgi/app2/home/app2/app.py
dropbearkey -t ed25519 -f /srv/nsuwsgi/app1/etc/dropbear/dropbear_ed25519_host_key
chown -R 10001:10001 /srv/nsuwsgi/app1/etc/dropbear
install -d -o 10001 -g 10001 -m 0700 /srv/nsuwsgi/app1/home/app1/.ssh
dropbearkey -t ed25519 -f /root/app1.key
dropbearkey -y -f /root/app1.key | grep '^ssh-' > /root/app1.key.pub
install -o 10001 -g 10001 -m 0600 /root/app1.key.pub /srv/nsuwsgi/app1/home/app1/.ssh/authorized_keys
mkdir -p /etc/nsuwsgi/vassals
install -m 0644 "$SRC/examples/quickstart/emperor.ini" /etc/nsuwsgi/emperor.ini
install -m 0644 "$SRC/examples/quickstart/vassals/app1.ini" "$SRC/examples/quickstart/vassals/app2.ini" /etc/nsuwsgi/vassals/
install -m 0644 "$SRC/docs/systemd/emperor.nsuwsgi.service" /etc/systemd/system/
systemctl daemon-reload
systemctl enable --now emperor.nsuwsgi.service
"""


def test_the_quickstart_gives_two_jailed_tenants_one_reachable_by_ssh(emperor):
    box = emperor
    guide = (ROOT / "docs" / "quickstart.md").read_text()
    missing = [line for line in QUICKSTART.splitlines() if line not in guide.splitlines()]
    assert missing == [], "docs/quickstart.md changed: update QUICKSTART in this test"
    for part in ("examples", "docs/systemd"):
        shutil.copytree(ROOT / part, box.path(f"/root/src/{part}"), dirs_exist_ok=True)
    try:
        box.sh("set -e\nSRC=/root/src\n" + QUICKSTART, timeout=120)
        assert box.show(EMPEROR, "ActiveState") == "active"
        assert status_text(box) == governing(2)
        for name, uid in (("app1", 10001), ("app2", 10002)):
            body = box.wait_for(lambda n=name: curl_unix(box, f"/run/nsuwsgi/{n}.sock"), 20,
                                f"{name} answering")
            assert body.startswith(f"Hello from {name}: ") and f"uid {uid}," in body
        login = box.wait_for(lambda: ssh_app1(box, "hostname; id -u; cat /proc/self/status"), 20,
                             "an ssh login into app1's jail")
        hostname, uid, *status = login.splitlines()
        assert (hostname, uid) == ("app1", "10001")
        cap_eff = next(line for line in status if line.startswith("CapEff:"))
        assert cap_eff.split()[1] == "0000000000000000"
        box.sh(f"systemctl stop {EMPEROR}")
        assert box.unit_pids(EMPEROR) == []
        mounts = box.sh("cat /proc/self/mountinfo").stdout
        assert "/srv/nsuwsgi" not in mounts
    finally:
        box.write("/etc/nsuwsgi/emperor.ini", EMPEROR_INI)
        box.sh("rm -rf /srv/nsuwsgi /root/app1.key /root/app1.key.pub /root/src", check=False)


def curl_unix(box: Container, path: str):
    done = box.sh(f"curl -sf --max-time 10 --unix-socket {path} http://tenant/", check=False)
    return done.stdout if done.returncode == 0 else None


def ssh_app1(box: Container, command: str):
    done = box.sh(f"dbclient -y -i /root/app1.key -p 2201 app1@127.0.0.1 '{command}'",
                  check=False)
    return done.stdout if done.returncode == 0 else None
