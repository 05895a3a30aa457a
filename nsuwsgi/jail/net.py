"""Per-tenant networking: a veth pair from a host bridge into a jail's network namespace.

Runs on the host side (the keeper), while the jail waits for it, so the tenant's payload
starts with its interface already configured. pyroute2 is imported here, lazily, because its
import costs about 150 ms and only jails with `namespace-net-veth` need it. Nothing needs
tearing down: when the jail's network namespace goes, the kernel deletes its end of the pair,
and with it the host end.
"""

from __future__ import annotations

import ipaddress

from nsuwsgi.spec import VethSpec


class NetError(Exception):
    pass


def host_interface_name(jail_pid: int) -> str:
    return f"nsu{jail_pid}"[:15]


def setup_veth(jail_pid: int, veth: VethSpec) -> None:
    """Create the pair, attach the host end to the bridge, configure the jail end."""
    from pyroute2 import IPRoute, NetNS
    from pyroute2.netlink.exceptions import NetlinkError
    host_if, moving = host_interface_name(jail_pid), f"nsj{jail_pid}"[:15]
    interface = ipaddress.ip_interface(veth.address)
    try:
        with IPRoute() as ipr:
            bridge = ipr.link_lookup(ifname=veth.bridge)
            if not bridge:
                raise NetError(f"bridge '{veth.bridge}' does not exist on the host")
            ipr.link("add", ifname=host_if, kind="veth",
                     peer={"ifname": moving, "net_ns_pid": jail_pid})
            (host_index,) = ipr.link_lookup(ifname=host_if)
            ipr.link("set", index=host_index, master=bridge[0], state="up")
        with NetNS(f"/proc/{jail_pid}/ns/net") as ns:
            (index,) = ns.link_lookup(ifname=moving)
            ns.link("set", index=index, ifname=veth.name)
            ns.addr("add", index=index, address=str(interface.ip),
                    prefixlen=interface.network.prefixlen)
            ns.link("set", index=index, state="up")
            if veth.gateway:
                ns.route("add", dst="default", gateway=veth.gateway)
    except NetlinkError as err:
        raise NetError(f"veth setup failed: {err}") from None
