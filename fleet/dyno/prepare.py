"""A dyno's preparation on its host: runs as root, started by the dyno's systemd unit, before the container.

Standard library only: fleet writes this file into each release dir on the hosts (``prepare``) and the
unit runs it with ``/usr/bin/python3 -I``. It reads nothing of the app's; every argument is fleet's:

    prepare --uid U --disk-mb MB --dyno-id HEX --network CIDR [--port P] -- NSPAWN ARGV...

1. the dyno gets a mount namespace and a network namespace of its own;
2. a tmpfs of MB at /run/fleet-dyno holds app/, owned by U: the writable layer of the dyno's /app;
3. a veth pair joins the dyno to the host: ``fd<HEX>`` on the host with the gateway address (the first
   of CIDR), ``eth0`` in the dyno with an address of CIDR no other dyno on the host has (chosen under
   a lock), routes both ways; a web dyno's port is mapped (nftables map ``inet fleet dyno_ports``)
   from the host's addresses to the dyno's, so the router reaches it at host:port;
4. the container is exec'd and stays in these namespaces: they, the tmpfs and the veth pair vanish
   with the dyno, whatever way it ends.

The host's firewall (roles/dyno_host, ``inet fleet``) keeps dynos off fleet's hosts and each other.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import ipaddress
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
DYNO_TMP = "/run/fleet-dyno"
LOCK = "/run/fleet-dyno-net.lock"
NFT_TABLE = ("inet", "fleet")
PORT_MAP = "dyno_ports"
HOST_IF_PREFIX = "fd"
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def host_interface(dyno_id: str) -> str:
    """The host side of the dyno's veth pair: fd + 12 hex digits of the dyno id (at most 15 characters)."""
    if not dyno_id or any(c not in "0123456789abcdef" for c in dyno_id):
        raise ValueError(f"dyno id must be lowercase hex, got {dyno_id!r}")
    return HOST_IF_PREFIX + dyno_id[:12]


def addresses_in_use(route_text: str) -> set[ipaddress.IPv4Address]:
    """Dyno addresses on this host, from ``ip -4 -o route show``: the /32 routes to fd* interfaces."""
    used = set()
    for line in route_text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[1] == "dev" and fields[2].startswith(HOST_IF_PREFIX):
            try:
                used.add(ipaddress.IPv4Address(fields[0].split("/")[0]))
            except ValueError:
                continue
    return used


def dyno_routes(route_text: str, network: ipaddress.IPv4Network) -> list[str]:
    """What a dyno routes through its host: what the host itself reaches (``ip -4 -o route show`` of the host).

    ``default`` when the host has a default route, else each network the host has a route to (a lab node
    reaches only its bridge: an address beyond it then fails at once in the dyno too, as on its host,
    instead of timing out). A host with no route yet (its network still coming up at boot) gives
    ``default``: a dyno must always be able to answer whoever reaches it."""
    destinations = []
    for line in route_text.splitlines():
        fields = line.split()
        if not fields or (len(fields) >= 3 and fields[1] == "dev" and fields[2].startswith(HOST_IF_PREFIX)):
            continue
        if fields[0] == "default":
            return ["default"]
        try:
            dest = ipaddress.IPv4Network(fields[0], strict=False)
        except ValueError:
            continue
        if not dest.overlaps(network):
            destinations.append(str(dest))
    return sorted(set(destinations)) or ["default"]


def gateway(network: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    return network.network_address + 1


def pick_address(network: ipaddress.IPv4Network, used: Iterable[ipaddress.IPv4Address]) -> ipaddress.IPv4Address:
    """The lowest address of ``network`` after the gateway that no dyno uses."""
    taken = set(used) | {gateway(network)}
    for address in network.hosts():
        if address not in taken:
            return address
    raise RuntimeError(f"no free dyno address left in {network}")


def _unshare(flags: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare: {os.strerror(err)}")


def _run(argv: Sequence[str], host_ns: int | None = None, check: bool = True) -> str:
    """Run a command in the dyno's namespaces, or (``host_ns``) in the host's network namespace."""
    fds: tuple[int, ...] = ()
    if host_ns is not None:
        argv = ("nsenter", f"--net=/proc/self/fd/{host_ns}", *argv)
        fds = (host_ns,)
    proc = subprocess.run(argv, capture_output=True, text=True, pass_fds=fds, env={"PATH": PATH})
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip() or f'exit {proc.returncode}'}")
    return proc.stdout


def prepare_disk(uid: int, disk_mb: int) -> None:
    _run(("mount", "--make-rprivate", "/"))
    os.makedirs(DYNO_TMP, exist_ok=True)
    _run(("mount", "-t", "tmpfs", "-o", f"size={disk_mb}m,mode=0755,nosuid,nodev", "fleet-dyno", DYNO_TMP))
    app = f"{DYNO_TMP}/app"
    os.mkdir(app, 0o755)
    os.chown(app, uid, uid)


def prepare_network(host_ns: int, dyno_id: str, network: ipaddress.IPv4Network, port: int | None) -> ipaddress.IPv4Address:
    host_if, gw = host_interface(dyno_id), gateway(network)
    with open(LOCK, "a") as lock:  # held while the address is chosen and routed
        fcntl.flock(lock, fcntl.LOCK_EX)
        host_routes = _run(("ip", "-4", "-o", "route", "show"), host_ns)
        address = pick_address(network, addresses_in_use(host_routes))
        _run(("ip", "link", "del", host_if), host_ns, check=False)  # a leftover of a dyno with this id
        _run(("ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", str(os.getpid())), host_ns)
        # scope link: never the source address the host masquerades a dyno's outbound connections to
        _run(("ip", "addr", "add", f"{gw}/32", "dev", host_if, "scope", "link"), host_ns)
        _run(("ip", "link", "set", host_if, "up"), host_ns)
        _run(("ip", "route", "add", f"{address}/32", "dev", host_if), host_ns)
        if port is not None:
            element = f"{{ {port} : {address} }}"
            _run(("nft", "delete", "element", *NFT_TABLE, PORT_MAP, f"{{ {port} }}"), host_ns, check=False)
            _run(("nft", "add", "element", *NFT_TABLE, PORT_MAP, element), host_ns)
    _run(("ip", "link", "set", "lo", "up"))
    _run(("ip", "addr", "add", f"{address}/32", "dev", "eth0"))
    _run(("ip", "link", "set", "eth0", "up"))
    _run(("ip", "route", "add", str(gw), "dev", "eth0"))
    for destination in dyno_routes(host_routes, network):
        _run(("ip", "route", "add", destination, "via", str(gw)))
    return address


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="prepare")
    parser.add_argument("--uid", type=int, required=True)
    parser.add_argument("--disk-mb", type=int, required=True)
    parser.add_argument("--dyno-id", required=True)
    parser.add_argument("--network", type=ipaddress.IPv4Network, required=True)
    parser.add_argument("--port", type=int)
    parser.add_argument("container", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    container = args.container[1:] if args.container[:1] == ["--"] else args.container
    if not container or args.uid < 1000:
        parser.error("needs a container command after -- and an unprivileged uid")
    os.environ.clear()
    os.environ["PATH"] = PATH
    host_ns = os.open("/proc/self/ns/net", os.O_RDONLY)
    _unshare(CLONE_NEWNS | CLONE_NEWNET)
    prepare_disk(args.uid, args.disk_mb)
    prepare_network(host_ns, args.dyno_id, args.network, args.port)
    os.close(host_ns)
    os.execv(container[0], container)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except (OSError, RuntimeError, ValueError) as e:
        print(f"fleet prepare: {e}", file=sys.stderr)
        sys.exit(1)
