"""Shared test machinery: run real nsuwsgi masters, wait on conditions, prove nothing leaked.

Every pytest worker makes itself a child subreaper, so any process a test leaves behind, even
a daemon that double-forked away from its master, is re-parented to the worker. After each test
the `hygiene` fixture checks that the worker has no children left (nothing orphaned, no
zombies) and no more open fds than before; a leftover process fails the test and is killed by
pid. Waits are bounded polls on a condition, never bare sleeps.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from nsuwsgi import linux
from nsuwsgi.stats import read_stats

ROOT = Path(__file__).resolve().parent.parent
HELPERS = Path(__file__).resolve().parent / "helpers"
SIGDAEMON = str(HELPERS / "sigdaemon.py")
PYTHON = sys.executable


def mounts_under(path) -> list[str]:
    """Mount points at or below `path` (a test's jail or container left nothing mounted)."""
    prefix = os.path.realpath(path).rstrip("/")
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


def wait_for(predicate, timeout: float = 10.0, what: str = "a condition", interval=0.005):
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        reap_strays()
        time.sleep(interval)


def unix_http_get(path, timeout: float = 10.0) -> bytes:
    """One HTTP/1.0 GET / over the unix socket `path`: the whole raw response (the server
    closes after it). OSError when nothing listens."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(b"GET / HTTP/1.0\r\nHost: t\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def my_children() -> list[int]:
    return linux.proc_children(os.getpid())


OWNED: set[int] = set()     # children that subprocess.Popen objects will reap themselves


def reap_strays() -> None:
    """Reap zombies re-parented to us (we are a subreaper), leaving Popen's own children."""
    for pid in my_children():
        if pid in OWNED:
            continue
        stat = linux.proc_stat(pid)
        if stat and stat[0] == "Z":
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def alive(pid: int) -> bool:
    stat = linux.proc_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def kill_pid(pid: int, sig=signal.SIGKILL) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def read_events(path) -> list[dict]:
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


class Instance:
    """A real `python -m nsuwsgi` master started by a test."""

    def __init__(self, args, workdir: Path, env=None, stats=True, stdin=subprocess.DEVNULL,
                 prefix=()):
        self.workdir = workdir
        self.sockdir = tempfile.mkdtemp(prefix="nsu", dir="/tmp")
        os.chmod(self.sockdir, 0o777)    # daemons that drop to nobody create sockets here
        self.stats_path = os.path.join(self.sockdir, "stats.sock") if stats else None
        self.logfile = workdir / f"master-{time.monotonic_ns()}.log"
        argv = [*prefix, PYTHON, "-m", "nsuwsgi", *args]    # prefix must exec (ip netns exec)
        if stats:
            argv += ["--stats", self.stats_path]
        full_env = dict(os.environ)
        full_env.update(env or {})
        self._log = open(self.logfile, "wb")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=stdin, cwd=workdir, env=full_env,
                                     start_new_session=True)
        OWNED.add(self.proc.pid)
        self.pid = self.proc.pid
        self.seen_pids: set[int] = set()

    # ---- observation

    def log(self) -> str:
        return self.logfile.read_text(errors="replace")

    def wait_log(self, text: str, timeout=10.0) -> str:
        return wait_for(lambda: text in self.log() and self.log(), timeout,
                        f"{text!r} in the master log:\n{self.log()[-3000:]}")

    def stats(self) -> dict:
        data = read_stats(self.stats_path)
        for d in data["daemons"]:
            if d["pid"] > 0:
                self.seen_pids.add(d["pid"])
        return data

    def ready(self, timeout=10.0) -> dict:
        return wait_for(self._try_stats, timeout, f"stats from the master:\n{self.log()[-2000:]}")

    def _try_stats(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"master exited {self.proc.returncode}:\n{self.log()}")
        try:
            return self.stats()
        except (OSError, ValueError):
            return None

    def daemon(self, index: int) -> dict:
        return self.stats()["daemons"][index]

    def wait_daemon(self, index: int, predicate, timeout=10.0, what="daemon state"):
        def check():
            d = self.daemon(index)
            return d if predicate(d) else None
        return wait_for(check, timeout, f"{what}; last stats: {self._safe_stats()}")

    def wait_running(self, index: int, timeout=10.0, not_pid=None) -> int:
        d = self.wait_daemon(index, lambda d: d["state"] == "running" and d["pid"] > 0
                             and d["pid"] != not_pid, timeout, f"daemon {index} running")
        return d["pid"]

    def _safe_stats(self):
        try:
            return json.dumps(self.stats()["daemons"])
        except Exception as exc:  # noqa: BLE001 - diagnostics only
            return repr(exc)

    # ---- control

    def signal(self, sig) -> None:
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=15.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"master did not exit in {timeout}s:\n{self.log()[-3000:]}")

    def stop(self, timeout=15.0) -> int:
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in self.seen_pids:
            kill_pid(pid)
        self._log.close()
        OWNED.discard(self.proc.pid)
        shutil.rmtree(self.sockdir, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def subreaper():
    linux.set_child_subreaper(True)
    yield


def open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


@pytest.fixture(autouse=True)
def hygiene(request):
    """After every test: no process left under us, no zombie, no leaked fd."""
    fds_before = open_fds()
    yield
    if request.node.get_closest_marker("no_hygiene"):
        return
    leftovers = wait_for_no_children()
    for pid in leftovers:
        kill_pid(pid)
    reap_strays_until_empty()
    leaked = open_fds() - fds_before
    leaked = {fd for fd in leaked if _fd_target(fd) is not None}
    assert not leftovers, f"processes left behind: {[describe(p) for p in leftovers]}"
    assert not leaked, f"fds leaked: {[(fd, _fd_target(fd)) for fd in leaked]}"


def wait_for_no_children(timeout=5.0) -> list[int]:
    """Children still alive after `timeout` (zombies are reaped as they appear)."""
    deadline = time.monotonic() + timeout
    while True:
        reap_strays()
        living = [p for p in my_children() if p not in OWNED and alive(p)]
        zombies = [p for p in my_children() if p not in OWNED and not alive(p)]
        if not living and not zombies:
            return []
        if time.monotonic() > deadline:
            return living
        time.sleep(0.01)


def reap_strays_until_empty() -> None:
    try:
        wait_for(lambda: not [p for p in my_children() if p not in OWNED], 5, "strays reaped")
    except AssertionError:
        pass


def describe(pid: int) -> str:
    return f"{pid} {' '.join(linux.proc_cmdline(pid))}"


def _fd_target(fd: int):
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


class Starter:
    """nsuwsgi(*args) starts a master in tmp_path; nsuwsgi.socket_dir() gives a short
    directory for the unix sockets of a config written before the start. All of it is cleaned
    up after the test: the masters by pid, the directories removed."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.started: list[Instance] = []
        self.dirs: list[str] = []

    def __call__(self, *args, env=None, stats=True, stdin=subprocess.DEVNULL,
                 prefix=()) -> Instance:
        inst = Instance(list(args), self.tmp_path, env=env, stats=stats, stdin=stdin,
                        prefix=prefix)
        self.started.append(inst)
        return inst

    def socket_dir(self, mode: int | None = None) -> str:
        path = tempfile.mkdtemp(prefix="nsusock", dir="/tmp")
        self.dirs.append(path)
        if mode is not None:
            os.chmod(path, mode)
        return path

    def cleanup(self) -> None:
        for inst in self.started:
            inst.cleanup()
        for path in self.dirs:
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def nsuwsgi(tmp_path):
    """Factory of real masters (Starter)."""
    starter = Starter(tmp_path)
    yield starter
    starter.cleanup()


@pytest.fixture
def sockdir(nsuwsgi) -> Path:
    """A short directory for unix sockets (pytest's tmp_path can exceed sun_path's 107 bytes),
    removed after the test's masters are stopped."""
    return Path(nsuwsgi.socket_dir())


def run_cli(*args, cwd=None, env=None, timeout=30) -> subprocess.CompletedProcess:
    """Run `python -m nsuwsgi ARGS` to completion (for --help, errors, --show-config)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([PYTHON, "-m", "nsuwsgi", *args], capture_output=True, text=True,
                          cwd=cwd, env=full_env, timeout=timeout, stdin=subprocess.DEVNULL)
