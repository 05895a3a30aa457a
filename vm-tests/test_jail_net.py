"""Per-tenant networking: `lo` in a namespace-net jail, and a veth pair into a bridge.

Addresses live only in network namespaces these tests create: the keeper itself runs inside a
test namespace (`ip netns exec`), so its "host bridge" is the test's, never the machine's.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from nsuwsgi.rootfs import build_rootfs
from support import wait_for


@pytest.fixture
def test_netns():
    name = f"nsut{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    ip = ["ip", "-n", name]
    subprocess.run([*ip, "link", "add", "br-t", "type", "bridge"], check=True)
    subprocess.run([*ip, "addr", "add", "10.231.0.1/24", "dev", "br-t"], check=True)
    subprocess.run([*ip, "link", "set", "br-t", "up"], check=True)
    subprocess.run([*ip, "link", "set", "lo", "up"], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], check=True)


@pytest.fixture
def rootfs(tmp_path):
    root = tmp_path / "root"
    build_rootfs(str(root), usr_from_host=True)
    return root


def read(path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def links_in(netns: str) -> str:
    return subprocess.run(["ip", "-n", netns, "-o", "link"], capture_output=True, text=True,
                          check=True).stdout


def test_veth_into_a_bridge_gives_the_jail_its_address(nsuwsgi, tmp_path, rootfs, test_netns):
    ini = tmp_path / "veth.ini"
    ini.write_text(f"""[uwsgi]
namespace = {rootfs}:vethjail
namespace-keep-mount = /usr:/usr:ro
namespace-net = true
namespace-net-veth = bridge=br-t,address=10.231.0.2/24,gateway=10.231.0.1
attach-daemon = /bin/sh -c 'cat /proc/net/dev > /tmp/ifaces; exec busybox nc -ll -p 7000 -e /bin/echo hello-from-jail'
""")
    inst = nsuwsgi("--ini", str(ini), prefix=["ip", "netns", "exec", test_netns])
    inst.ready()
    inst.wait_running(0)
    interfaces = wait_for(lambda: "lo:" in read(rootfs / "tmp" / "ifaces") and
                          read(rootfs / "tmp" / "ifaces"), 10, "the jail's interface list")
    assert "eth0:" in interfaces and "lo:" in interfaces
    assert "nsu" in links_in(test_netns), "the host end is in the bridge's namespace"

    def answer():
        result = subprocess.run(["ip", "netns", "exec", test_netns, "busybox", "nc",
                                 "10.231.0.2", "7000"], capture_output=True, text=True,
                                stdin=subprocess.DEVNULL, timeout=5)
        return "hello-from-jail" in result.stdout
    wait_for(answer, 10, "an answer from the jail over the veth")
    assert inst.stop() == 0
    wait_for(lambda: "nsu" not in links_in(test_netns), 5, "the host end to go with the jail")


def test_namespace_net_has_only_lo_and_it_is_up(nsuwsgi, tmp_path, rootfs):
    ini = tmp_path / "lo.ini"
    ini.write_text(f"""[uwsgi]
namespace = {rootfs}:lojail
namespace-net = true
attach-daemon = /bin/sh -c 'cat /proc/net/dev > /tmp/ifaces; busybox ip link > /tmp/links 2>&1; exec sleep 60'
""")
    inst = nsuwsgi("--ini", str(ini))
    inst.ready()
    wait_for(lambda: "lo:" in read(rootfs / "tmp" / "links") and
             "lo:" in read(rootfs / "tmp" / "ifaces"), 10, "the jail's interfaces")
    names = [line.split(":")[0].strip() for line in
             (rootfs / "tmp" / "ifaces").read_text().splitlines()[2:]]
    assert names == ["lo"]
    assert "UP" in (rootfs / "tmp" / "links").read_text().split("lo:")[1].split("\n")[0]
    assert inst.stop() == 0


def test_veth_needs_namespace_net(tmp_path, rootfs):
    from support import run_cli
    ini = tmp_path / "bad.ini"
    ini.write_text(f"[uwsgi]\nnamespace = {rootfs}\n"
                   "namespace-net-veth = bridge=br0,address=10.231.0.2/24\n")
    result = run_cli("--ini", str(ini))
    assert result.returncode == 2
    assert "bad.ini:3: namespace-net-veth" in result.stderr and "namespace-net" in result.stderr
