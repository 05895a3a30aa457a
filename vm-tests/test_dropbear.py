"""uWSGI's "Managing dropbear" example, run as written, and logged into with a real ssh client.

The seed config (the jail options of uWSGI's docs) plus what the rootfs needs: /usr from the
host read-only (dropbear is dynamically linked), `namespace-net` so port 1022 lives only on the
jail's own loopback, and `-r` naming the one host key we generate. The client is dropbear's
`dbclient`, whose `-J` runs a proxy command instead of opening a TCP connection: the proxy
enters the jail's network namespace (through its init's /proc entry on the host) and relays to
127.0.0.1:1022 with busybox nc.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import textwrap
from pathlib import Path

import pytest

from nsuwsgi import linux
from nsuwsgi.rootfs import build_rootfs
from support import alive, mounts_under, wait_for

PORT = 1022
TOOLS = ("dropbearkey", "dbclient", "nsenter", "busybox")


@pytest.fixture
def workdir():
    """A 0755 directory under /tmp: the rootfs, the client key and dbclient's HOME."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing or not os.path.exists("/usr/sbin/dropbear"):
        pytest.skip(f"needs dropbear-bin and busybox (missing: {missing or 'dropbear'})")
    base = Path(tempfile.mkdtemp(prefix="nsudropbear", dir="/tmp"))
    os.chmod(base, 0o755)
    yield base
    leftover = mounts_under(base)
    assert not leftover, f"mounts left on the host under the rootfs: {leftover}"
    shutil.rmtree(base, ignore_errors=True)


def run(*argv, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=10,
                          stdin=subprocess.DEVNULL, **kw)


def prepare_rootfs(base: Path) -> tuple[Path, Path]:
    """docs/rootfs.md's recipe: the tree, a host key, root's authorized key. -> (root, key)."""
    root = base / "root"
    build_rootfs(str(root), usr_from_host=True, warn=lambda message: None)
    host_key = root / "etc" / "dropbear" / "dropbear_ed25519_host_key"
    done = run("dropbearkey", "-t", "ed25519", "-f", str(host_key))
    assert done.returncode == 0, done.stderr
    client_key = base / "client_key"
    done = run("dropbearkey", "-t", "ed25519", "-f", str(client_key))
    assert done.returncode == 0, done.stderr
    done = run("dropbearkey", "-y", "-f", str(client_key))
    public = [line for line in done.stdout.splitlines() if line.startswith("ssh-")]
    assert done.returncode == 0 and len(public) == 1, done.stdout + done.stderr
    ssh_dir = root / "root" / ".ssh"
    ssh_dir.mkdir(mode=0o700)
    os.chmod(ssh_dir, 0o700)
    (ssh_dir / "authorized_keys").write_text(public[0] + "\n")
    os.chmod(ssh_dir / "authorized_keys", 0o600)
    passwd = (root / "etc" / "passwd").read_text()
    assert re.search(r"^root:x:0:0:[^:]*:/root:/bin/sh$", passwd, re.M), passwd
    assert os.access(root / "bin" / "sh", os.X_OK, follow_symlinks=False) or \
        (root / "bin" / "sh").is_symlink()
    return root, client_key


def listening(init_pid: int, port: int) -> bool:
    """Is `port` in LISTEN state in the network namespace of `init_pid`? (/proc/PID/net)"""
    wanted = f":{port:04X} "
    for name in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{init_pid}/net/{name}") as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if (fields[1] + " ").endswith(wanted) and fields[3] == "0A":
                        return True
        except FileNotFoundError:
            return False
    return False


def test_dropbear_example_ssh_into_the_namespace(nsuwsgi, workdir, tmp_path):
    root, client_key = prepare_rootfs(workdir)
    ini = tmp_path / "dropbear.ini"
    ini.write_text(textwrap.dedent(f"""\
        [uwsgi]
        namespace = {root}/:testns
        namespace-keep-mount = /dev/pts
        namespace-keep-mount = /usr:/usr:ro
        namespace-net = true
        socket = :3031
        exec-as-root = chown -R root /etc/dropbear
        attach-daemon = /usr/sbin/dropbear -j -k -p {PORT} -E -F -I 300 -r /etc/dropbear/dropbear_ed25519_host_key
    """))
    inst = nsuwsgi("--ini", str(ini))
    inst.ready()
    inst.wait_running(0)
    inst.wait_log("sockets are configured but no app is")     # :3031 is never opened
    init = wait_for(lambda: linux.proc_children(inst.pid), 10, "the jail's init")
    assert len(init) == 1
    init = init[0]
    assert os.readlink(f"/proc/{init}/ns/net") != os.readlink("/proc/self/ns/net")
    wait_for(lambda: listening(init, PORT), 10,
             f"dropbear listening on {PORT} in the jail's network:\n{inst.log()}")
    assert not listening(os.getpid(), PORT), "port 1022 is not on the host's network"

    home = workdir / "home"             # dbclient's known_hosts goes here, not in /root
    home.mkdir()
    proxy = f"nsenter --net=/proc/{init}/ns/net busybox nc 127.0.0.1 {PORT}"
    argv = ["dbclient", "-y", "-y", "-i", str(client_key), "-J", proxy, "root@jail",
            "hostname; ps"]
    env = dict(os.environ, HOME=str(home))

    def login():
        done = run(*argv, env=env)
        return done if done.returncode == 0 and "testns" in done.stdout else None

    done = wait_for(login, 10, f"an ssh login into the jail:\n{run(*argv, env=env)}\n"
                               f"{inst.log()[-2000:]}", interval=0.2)
    out = done.stdout.splitlines()
    assert out[0] == "testns", done.stdout
    header = [i for i, line in enumerate(out) if line.split()[:1] == ["PID"]]
    assert header, done.stdout
    rows = [line.split(None, 2) for line in out[header[0] + 1:] if line.strip()]
    pids = {int(row[0]) for row in rows}
    commands = " ".join(row[2] for row in rows if len(row) > 2)
    assert 1 in pids and 2 in pids, done.stdout
    assert max(pids) < 100 and len(pids) < 15, f"only the jail's processes: {done.stdout}"
    assert "dropbear" in commands and "nsuwsgi" in commands, done.stdout
    for row in rows:
        command = row[2] if len(row) > 2 else ""
        assert "-m nsuwsgi" in command or command.startswith(
            ("/usr/sbin/dropbear", "sh -c", "{ps}", "ps")), f"a host process is visible: {row}"
    assert "Pubkey auth succeeded for 'root'" in inst.log()

    jailed = [init, *linux.proc_children(init)]
    assert inst.stop() == 0
    wait_for(lambda: not [p for p in jailed if alive(p)], 5, "the jail gone")
