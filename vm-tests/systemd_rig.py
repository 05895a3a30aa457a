"""A real systemd to test nsuwsgi's unit files against: Debian 12 booted in systemd-nspawn.

systemd is not PID 1 on the CI machines, so the only honest way to check what `systemctl`
shows, what `systemctl stop` leaves behind, socket activation and the watchdog is to boot a
systemd of our own. The rig:

1. debootstraps a minimal Debian 12 once into a cache directory keyed by its package list
   (about a minute; later runs reuse it, read-only);
2. per test session, puts an overlayfs over the cached root, so the cache stays clean;
3. installs nsuwsgi the way the quickstart does: a wheel built from this checkout, pip
   installed into a venv at /opt/nsuwsgi, linked as /usr/local/bin/nsuwsgi;
4. boots it with `systemd-nspawn -b --register=no --keep-unit --private-network` (the flags
   that work where the host's PID 1 is not systemd), with its own loopback only;
5. runs commands inside through nsenter into the container's PID 1 namespaces.

Shutdown is a SIGTERM to nspawn (an orderly poweroff of the container), then the overlay is
unmounted: no process, mount or file outlives the session.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import support

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("NSUWSGI_VM_CACHE", "/var/cache/nsuwsgi-vm"))
RIG_VERSION = "1"
PACKAGES = [
    "systemd", "systemd-sysv", "dbus", "python3", "python3-venv", "libcap2", "cgit", "git",
    "dropbear-bin", "busybox-static", "procps", "iproute2", "curl", "passwd",
]
DEFAULT_MIRROR = "http://deb.debian.org/debian"
PATH = "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
CGROUP_TOPS = ("/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified", "/sys/fs/cgroup")
CLEAN_ENV = {"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8"}


class RigError(Exception):
    """The rig could not be built or booted; the message says which step and why."""


def why_unavailable() -> str | None:
    """A reason this machine cannot run the rig, or None when it can."""
    if os.geteuid() != 0:
        return "the systemd container tests need root"
    for tool in ("systemd-nspawn", "debootstrap", "nsenter"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/setup.sh installs it when run as root)"
    return None


def debian_mirror() -> str:
    """The host's own Debian mirror: the first non-security `deb` URI of its apt sources
    (one-line `deb URL SUITE...` entries or deb822 `URIs:` fields; comments skipped)."""
    sources = [Path("/etc/apt/sources.list")] + sorted(Path("/etc/apt/sources.list.d").glob("*"))
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split("#", 1)[0].split()
            if len(words) >= 2 and words[0] in ("deb", "URIs:"):
                uris = [w for w in words[1:] if w.startswith(("http://", "https://"))]
                for uri in uris:
                    if "security" not in uri:
                        return uri.rstrip("/")
    return DEFAULT_MIRROR


def run(argv: list[str], timeout: float, what: str, **kwargs) -> subprocess.CompletedProcess:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired as err:
        raise RigError(f"{what}: timed out after {timeout}s") from err
    if done.returncode != 0:
        raise RigError(f"{what} failed ({done.returncode}): "
                       f"{(done.stdout + done.stderr)[-2000:]}")
    return done


def cached_root() -> Path:
    """The debootstrapped Debian 12 root, built once per package list (under a file lock)."""
    key = hashlib.sha256(" ".join([RIG_VERSION] + PACKAGES).encode()).hexdigest()[:12]
    root = CACHE / f"bookworm-{key}"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (root / ".complete").exists():
            return root
        partial = CACHE / f"bookworm-{key}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        run(["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES),
             "bookworm", str(partial), debian_mirror()], 900, "debootstrap bookworm",
            env=dict(CLEAN_ENV))
        (partial / ".complete").write_text("debootstrap --variant=minbase bookworm\n")
        partial.rename(root)
        return root


def build_wheels(source: Path, into: Path) -> None:
    """nsuwsgi's wheel and its dependencies' wheels, built on the host.

    From a copy of the checkout: setuptools writes build/ into the source tree, and two test
    runs building from the same checkout at once would trip over each other's files.
    """
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "var", "build", "*.egg-info", "__pycache__", ".vagrant"))
    venv_pip = ROOT / ".venv" / "bin" / "pip"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_FIND_LINKS")}
    run([str(venv_pip), "wheel", "-q", "-w", str(into), str(source)], 600,
        "pip wheel (nsuwsgi and its dependencies)", env=env, cwd=str(into))


class Container:
    """One booted Debian 12 with a real systemd, nsuwsgi installed at /usr/local/bin/nsuwsgi."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.root = workdir / "root"
        self.log_path = workdir / "nspawn.log"
        self.nspawn: subprocess.Popen | None = None
        self.leader = 0
        self.mounted = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        base = cached_root()
        for name in ("upper", "work", "root", "wheels"):
            (self.workdir / name).mkdir()
        run(["mount", "-t", "overlay", "overlay", "-o",
             f"lowerdir={base},upperdir={self.workdir / 'upper'},"
             f"workdir={self.workdir / 'work'}", str(self.root)], 30, "mount the overlay")
        self.mounted = True
        self.install_nsuwsgi()
        self.boot()

    def install_nsuwsgi(self) -> None:
        build_wheels(self.workdir / "src", self.workdir / "wheels")
        shutil.copytree(self.workdir / "wheels", self.root / "tmp" / "wheels")
        run(["chroot", str(self.root), "sh", "-ec",
             "python3 -m venv /opt/nsuwsgi\n"
             "/opt/nsuwsgi/bin/pip install -q --no-index --find-links /tmp/wheels nsuwsgi\n"
             "ln -sf /opt/nsuwsgi/bin/nsuwsgi /usr/local/bin/nsuwsgi\n"
             "rm -r /tmp/wheels\n"], 300, "pip install nsuwsgi in the container",
            env=dict(CLEAN_ENV))
        shutil.copy(ROOT / "vm-tests" / "systemd_client.py", self.root / "usr/local/bin/client")
        os.chmod(self.root / "usr/local/bin/client", 0o755)

    def boot(self) -> None:
        # nspawn puts the container in a "payload" group below its own control group. Two
        # containers started from the same group (two test runs at once) would share it, and
        # one systemd would stop the other's services: so each gets a group of its own.
        self.cgroups = [Path(top) / self.workdir.name for top in CGROUP_TOPS
                        if Path(top, "cgroup.procs").exists()]
        enter = "".join(f"mkdir -p {group} && echo $$ > {group}/cgroup.procs && "
                        for group in self.cgroups)
        nspawn = ["systemd-nspawn", "--quiet", "--boot", "--directory", str(self.root),
                  "--register=no", "--keep-unit", "--private-network",
                  "--machine", "nsuwsgi-test"]
        log = open(self.log_path, "w")
        self.nspawn = subprocess.Popen(
            ["sh", "-c", enter + 'exec "$@"', "sh"] + nspawn,
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=dict(CLEAN_ENV),
            start_new_session=True)
        log.close()
        self.leader = self._wait_for_leader()
        deadline = time.monotonic() + 90
        while True:
            # Until systemd inside has set up its bus, systemctl fails at once: ask again.
            state = self.sh("systemctl is-system-running --wait", check=False, timeout=90)
            if state.stdout.strip() in ("running", "degraded"):
                return
            if time.monotonic() > deadline or self.nspawn.poll() is not None:
                raise RigError(f"the container did not boot: {state.stdout} {state.stderr} "
                               f"{self.log_tail()}")
            time.sleep(0.1)

    def _wait_for_leader(self) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.nspawn.poll() is not None:
                raise RigError(f"systemd-nspawn exited: {self.log_tail()}")
            children = Path(f"/proc/{self.nspawn.pid}/task/{self.nspawn.pid}/children")
            pids = children.read_text().split()
            if pids and _comm(int(pids[0])) == "systemd":
                return int(pids[0])
            time.sleep(0.05)
        raise RigError(f"no systemd in the container after 30s: {self.log_tail()}")

    def stop(self) -> None:
        """Power the container off (SIGTERM to nspawn), SIGKILL after 30 s; unmount."""
        if self.nspawn is not None and self.nspawn.poll() is None:
            self.nspawn.send_signal(signal.SIGTERM)
            try:
                self.nspawn.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.nspawn.pid, signal.SIGKILL)
                self.nspawn.wait(10)
        if self.mounted:
            done = subprocess.run(["umount", str(self.root)], check=False)
            self.mounted = done.returncode != 0
        for group in getattr(self, "cgroups", []):
            remove_cgroup(group)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    # ------------------------------------------------------------------ inside

    def sh(self, script: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run a shell script inside the container (all its namespaces, a clean environment)."""
        argv = ["nsenter", "--target", str(self.leader), "--all", "env", "-i"]
        argv += [f"{k}={v}" for k, v in CLEAN_ENV.items()] + ["sh", "-c", script]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"in the container: {script!r} exited {done.returncode}:\n"
                                 f"{done.stdout}\n{done.stderr}")
        return done

    def path(self, inside: str) -> Path:
        """The host path of a file in the container's root (not /run, /tmp or /proc)."""
        return self.root / inside.lstrip("/")

    def write(self, inside: str, text: str, mode: int = 0o644) -> None:
        target = self.path(inside)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        os.chmod(target, mode)

    def show(self, unit: str, prop: str) -> str:
        return self.sh(f"systemctl show -p {prop} --value {unit}").stdout.strip()

    def wait_for(self, predicate, timeout: float, what: str):
        return support.wait_for(predicate, timeout, what, interval=0.05)

    def unit_pids(self, unit: str) -> list[int]:
        """Every pid in the unit's control group, as the container sees them."""
        group = self.show(unit, "ControlGroup")
        if not group:
            return []
        listing = self.sh(
            f"for d in /sys/fs/cgroup/unified /sys/fs/cgroup/systemd /sys/fs/cgroup; do "
            f"  if [ -f $d{group}/cgroup.procs ]; then cat $d{group}/cgroup.procs; exit 0; fi; "
            f"done", check=False)
        return [int(pid) for pid in listing.stdout.split()]

    def alive(self, pid: int) -> bool:
        return self.sh(f"kill -0 {pid}", check=False).returncode == 0


def remove_cgroup(group: Path) -> None:
    """rmdir a control group tree bottom-up (it is empty once the container is gone)."""
    if not group.is_dir():
        return
    for sub in sorted((p for p in group.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        try:
            sub.rmdir()
        except OSError:
            pass
    try:
        group.rmdir()
    except OSError:
        pass


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def make_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="nsuwsgi-nspawn-", dir="/var/tmp"))
