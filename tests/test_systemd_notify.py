"""The sd_notify client against a real NOTIFY_SOCKET listener: real sockets, real processes."""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct
import subprocess
import sys
import time
import uuid

import pytest

from notify_listener import NotifyListener
from nsuwsgi.systemd import Notifier
from support import ROOT

PYTHON = sys.executable


@pytest.fixture
def listener(tmp_path):
    with NotifyListener(tmp_path / "notify.sock") as lst:
        yield lst


@pytest.fixture
def abstract_listener():
    with NotifyListener(f"@nsuwsgi-test-{uuid.uuid4().hex}") as lst:
        yield lst


@pytest.fixture
def notifier(listener):
    with Notifier.from_environ(listener.env()) as n:
        yield n


# ---- delivery

def test_ready_with_status_reaches_a_filesystem_socket(listener, notifier):
    assert notifier.enabled and notifier.reason is None
    assert notifier.ready("serving 2 daemons")
    msg = listener.wait_for_field("READY", "1", timeout=5)
    assert msg.fields == {"READY": "1", "STATUS": "serving 2 daemons"}
    assert msg.raw == "READY=1\nSTATUS=serving 2 daemons\n"
    assert msg.pid == os.getpid()
    assert (msg.uid, msg.gid) == (os.getuid(), os.getgid())
    assert (notifier.sent, notifier.errors, notifier.last_error) == (1, 0, None)


def test_abstract_socket(abstract_listener):
    assert abstract_listener.env()["NOTIFY_SOCKET"].startswith("@")
    with Notifier.from_environ(abstract_listener.env()) as n:
        assert n.enabled and n.address.startswith("\0")
        assert n.status("up")
        assert n.stopping()
    abstract_listener.wait_for_field("STOPPING", "1", timeout=5)
    assert abstract_listener.statuses() == ["up"]
    assert all(m.pid == os.getpid() for m in abstract_listener.messages)


def test_messages_arrive_in_order_on_one_socket(listener, notifier):
    notifier.status("starting")
    notifier.ready()
    notifier.status("The Emperor is governing 2 vassals")
    notifier.watchdog()
    notifier.notify(MAINPID=4321)
    listener.wait_for_field("MAINPID", "4321", timeout=5)
    fd = notifier.fileno()
    notifier.stopping()
    listener.wait_for_field("STOPPING", timeout=5)
    assert notifier.fileno() == fd      # one socket, kept open between sends
    assert listener.statuses() == ["starting", "The Emperor is governing 2 vassals"]
    assert [m.raw for m in listener.messages[1:4]] == ["READY=1\n", "STATUS=The Emperor is "
                                                       "governing 2 vassals\n", "WATCHDOG=1\n"]


def test_reloading_carries_monotonic_usec(listener, notifier):
    before = time.monotonic_ns() // 1000
    assert notifier.reloading()
    after = time.monotonic_ns() // 1000
    msg = listener.wait_for_field("RELOADING", "1", timeout=5)
    assert set(msg.fields) == {"RELOADING", "MONOTONIC_USEC"}
    assert before <= int(msg.fields["MONOTONIC_USEC"]) <= after


def test_notify_fields_and_newlines_in_values(listener, notifier):
    assert notifier.notify(STATUS="two\nlines", ERRNO=5)
    msg = listener.wait_for_field("ERRNO", "5", timeout=5)
    assert msg.fields == {"STATUS": "two lines", "ERRNO": "5"}


def test_since_skips_earlier_messages(listener, notifier):
    notifier.ready()
    listener.wait_for_field("READY", timeout=5)
    mark = listener.mark()
    with pytest.raises(AssertionError, match="timed out"):
        listener.wait_for_field("READY", timeout=0.2, since=mark)
    notifier.reloading()
    notifier.ready()
    assert listener.wait_for_field("READY", timeout=5, since=mark).raw == "READY=1\n"


# ---- no socket, bad socket, vanished listener

@pytest.mark.parametrize("value", [None, ""])
def test_no_socket_is_a_silent_no_op(value):
    environ = {} if value is None else {"NOTIFY_SOCKET": value}
    with Notifier.from_environ(environ) as n:
        assert not n.enabled and "not set" in n.reason
        assert not n.ready("x") and not n.reloading() and not n.watchdog()
        assert (n.sent, n.errors, n.last_error, n.fileno()) == (0, 0, None, -1)


@pytest.mark.parametrize("value", ["vsock:2:1234", "relative/notify.sock", "@", "/" + "x" * 120])
def test_unusable_addresses_are_treated_as_absent(value):
    with Notifier.from_environ({"NOTIFY_SOCKET": value}) as n:
        assert not n.enabled and repr(value) in n.reason
        assert not n.ready()
        assert (n.errors, n.fileno()) == (0, -1)


def test_vanished_filesystem_listener_is_recorded_not_raised(tmp_path):
    lst = NotifyListener(tmp_path / "gone.sock")
    with Notifier.from_environ(lst.env()) as n:
        lst.close()                     # closes and unlinks
        assert not n.ready()
        assert not n.status("still here")
        assert (n.sent, n.errors) == (0, 2)
        assert n.last_error.errno == errno.ENOENT


def test_listener_closed_but_file_left_is_recorded_not_raised(tmp_path):
    lst = NotifyListener(tmp_path / "stale.sock")
    lst.sock.close()                    # the file stays, nobody is bound to it
    try:
        with Notifier.from_environ(lst.env()) as n:
            assert not n.ready()
            assert n.last_error.errno == errno.ECONNREFUSED
    finally:
        lst.close()


def test_vanished_abstract_listener_is_recorded_not_raised(abstract_listener):
    with Notifier.from_environ(abstract_listener.env()) as n:
        assert n.ready()
        abstract_listener.close()
        assert not n.watchdog()
        assert n.errors == 1 and n.last_error.errno == errno.ECONNREFUSED


def test_a_full_listener_blocks_the_sender_only_briefly(listener, notifier):
    notifier.send_timeout = 0.05
    deadline = time.monotonic() + 10
    while notifier.errors == 0 and time.monotonic() < deadline:
        notifier.status("x" * 1024)     # the listener reads nothing, so its queue fills up
    assert notifier.last_error is not None and notifier.last_error.errno == errno.EAGAIN
    listener.poll()
    assert len(listener.messages) == notifier.sent


# ---- environment

def test_unset_removes_the_variables_from_os_environ(monkeypatch, listener):
    monkeypatch.setenv("NOTIFY_SOCKET", listener.path)
    monkeypatch.setenv("WATCHDOG_USEC", "3000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    with Notifier.from_environ(unset=True) as n:
        for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            assert name not in os.environ
        assert n.watchdog_interval() == 1.5
        assert n.ready()
    listener.wait_for_field("READY", timeout=5)


def test_without_unset_the_environment_is_left_alone(monkeypatch, listener):
    monkeypatch.setenv("NOTIFY_SOCKET", listener.path)
    with Notifier.from_environ() as n:
        assert n.enabled
    assert os.environ["NOTIFY_SOCKET"] == listener.path


@pytest.mark.parametrize("usec, pid, interval", [
    ("2000000", None, 1.0),
    ("30000000", "self", 15.0),
    ("1", None, 0.0000005),
    (None, None, None),
    ("", None, None),
    ("0", None, None),
    ("-5", None, None),
    ("soon", None, None),
    ("2000000", "other", None),
    ("2000000", "not-a-pid", None),
])
def test_watchdog_interval(usec, pid, interval):
    environ = {}
    if usec is not None:
        environ["WATCHDOG_USEC"] = usec
    if pid is not None:
        named = {"self": str(os.getpid()), "other": str(os.getpid() + 1)}
        environ["WATCHDOG_PID"] = named.get(pid, pid)
    assert Notifier.from_environ(environ).watchdog_interval() == interval


# ---- processes and fds

CHILD = """
from nsuwsgi.systemd import Notifier
import os
with Notifier.from_environ(unset=True) as n:
    assert 'NOTIFY_SOCKET' not in os.environ
    n.ready(status='child %d' % os.getpid())
    assert n.last_error is None, n.last_error
"""


def test_a_childs_message_carries_the_childs_pid(listener):
    env = dict(os.environ, **listener.env())
    proc = subprocess.run([PYTHON, "-c", CHILD], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    msg = listener.wait_for_field("READY", timeout=5)
    assert msg.pid != os.getpid()
    assert msg.fields["STATUS"] == f"child {msg.pid}"


def test_a_child_pid_matches_popen(abstract_listener):
    env = dict(os.environ, **abstract_listener.env())
    proc = subprocess.Popen([PYTHON, "-c", CHILD], env=env, cwd=ROOT, stdin=subprocess.DEVNULL)
    try:
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert abstract_listener.wait_for_field("READY", timeout=5).pid == proc.pid


LIST_FDS = "import os; print(' '.join(sorted(os.listdir('/proc/self/fd'), key=int)))"


def test_the_socket_is_close_on_exec_with_a_bounded_send(listener, notifier):
    notifier.ready()
    fd = notifier.fileno()
    assert fd >= 0
    assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    sock = socket.socket(fileno=os.dup(fd))
    try:
        seconds, micros = struct.unpack("ll", sock.getsockopt(socket.SOL_SOCKET,
                                                              socket.SO_SNDTIMEO, 16))
    finally:
        sock.close()
    assert (seconds, micros) == (0, 500_000), "a full queue holds a send at most 0.5 s"
    out = subprocess.run([PYTHON, "-c", LIST_FDS], close_fds=False, capture_output=True,
                         text=True, timeout=30, stdin=subprocess.DEVNULL).stdout
    assert str(fd) not in out.split()


def test_close_releases_the_socket_and_a_later_send_reopens(listener, notifier):
    notifier.status("one")
    assert notifier.fileno() >= 0
    notifier.close()
    assert notifier.fileno() == -1
    notifier.status("two")
    notifier.close()
    notifier.close()                    # idempotent
    listener.wait_for(lambda m: m.fields.get("STATUS") == "two", timeout=5)
    assert listener.statuses() == ["one", "two"]
