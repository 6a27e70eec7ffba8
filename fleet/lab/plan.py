"""The lab's shape, as values and argv: no I/O here.

A lab node is a booted systemd-nspawn container whose root is an overlay of
a bare Debian (debootstrapped once, cached) on a per-node tmpfs, joined to a
host bridge with a link-local address (see shared/LAB-NOTES.md). Its only way
to Debian's archive is fleet's apt cache on the bridge, its apt proxy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from fleet.model import ADDON_GROUP, DYNO_GROUP, ROUTER_GROUP, Node
from fleet.stack import APT_CACHE_PORT

LAB_DIR = Path("/var/lib/fleet-lab")
BRIDGE = "fleetbr0"
SUBNET_PREFIX = "169.254.77"
HOST_ADDRESS = f"{SUBNET_PREFIX}.1"
PREFIX_LEN = 24
#: The lab's host network, where the nodes (and the bridge) have their addresses.
HOST_NETWORK = f"{SUBNET_PREFIX}.0/{PREFIX_LEN}"
ADDON_NODE_INDEX = 3
MAX_NODES = 20

#: What a bare lab host has before nodes.provision, as a minimal Debian cloud image: the base system, systemd,
#: sshd, and python3 with python3-apt for Ansible. Provisioning installs everything else from Debian's packages.
BASE_SUITE = "bookworm"
BASE_PACKAGES = ("systemd", "systemd-sysv", "dbus", "iproute2", "openssh-server", "python3", "python3-apt")
BASE_ROOTS = Path("/var/cache/fleet/lab-roots")


def base_root() -> Path:
    """The debootstrapped tree every node's root overlays (read-only), named by what it holds."""
    import hashlib

    digest = hashlib.sha256(f"{BASE_SUITE} {' '.join(BASE_PACKAGES)}".encode()).hexdigest()[:12]
    return BASE_ROOTS / f"{BASE_SUITE}-{digest}"


def base_debootstrap_argv(target: Path, mirror: str) -> tuple[str, ...]:
    return ("debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", BASE_SUITE, str(target), mirror)


def apt_proxy_conf() -> str:
    """A node's apt configuration: Debian's archive through fleet's apt cache on the bridge (nodes have no other
    route out). No pipelining, a 30 s stall limit and retries: seen here, an apt whose pipelined requests met a
    connection the cache had closed waited forever (its socket in CLOSE_WAIT), and the provisioning with it."""
    return (
        f'Acquire::http::Proxy "http://{HOST_ADDRESS}:{APT_CACHE_PORT}";\n'
        'Acquire::http::Pipeline-Depth "0";\n'
        'Acquire::http::Timeout "30";\n'
        'Acquire::Retries "3";\n'
    )
NODE_NAME_RE = re.compile(r"node([1-9]|1[0-9]|20)")  # node1..node{MAX_NODES}, matched in full

#: Units of the control machine that a lab node must not start.
MASKED_UNITS = (
    "postgresql.service",
    "pg_receivewal@15-main.service",
    "console-getty.service",
    "getty@tty1.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "man-db.timer",
    "systemd-timesyncd.service",
    "systemd-remount-fs.service",
    "apt-cacher-ng.service",  # the control machine's package (fleet's own apt cache runs there, not in nodes)
)
ROUTER_ONLY_UNITS = ("haproxy.service",)


@dataclass(frozen=True)
class LabNode:
    index: int

    @property
    def name(self) -> str:
        return f"node{self.index}"

    @property
    def address(self) -> str:
        return f"{SUBNET_PREFIX}.{10 + self.index}"

    @property
    def is_router(self) -> bool:
        return self.index == 1

    @property
    def is_addon_host(self) -> bool:
        """node3 also runs the add-on services (PostgreSQL, Redis): every provisioning of a lab of 3 or more installs them there."""
        return self.index == ADDON_NODE_INDEX

    @property
    def dir(self) -> Path:
        return LAB_DIR / "nodes" / self.name

    @property
    def root(self) -> Path:
        return self.dir / "root"

    @property
    def fleet_data(self) -> Path:
        """The node's /var/lib/fleet: on the host's lab tmpfs, so it outlives a node reboot like a disk,
        and off overlayfs, which nested overlays (dyno /app layers) need for their upper dirs."""
        return self.dir / "var-lib-fleet"

    @property
    def veth(self) -> str:
        return f"vb-{self.name}"

    def as_node(self) -> Node:
        groups: tuple[str, ...] = (DYNO_GROUP, ROUTER_GROUP) if self.is_router else (DYNO_GROUP,)
        if self.is_addon_host:
            groups += (ADDON_GROUP,)
        return Node(name=self.name, address=self.address, groups=groups, key_file=str(lab_key_file()))

    @classmethod
    def from_name(cls, name: str) -> LabNode:
        m = NODE_NAME_RE.fullmatch(name)
        if not m:
            from fleet.errors import UsageError

            raise UsageError(f"{name!r} is not a lab node name; lab nodes are node1..node{MAX_NODES}")
        return cls(int(m.group(1)))


def lab_nodes(count: int) -> tuple[LabNode, ...]:
    return tuple(LabNode(i) for i in range(1, count + 1))


def lab_key_file() -> Path:
    return LAB_DIR / "id_ed25519"


def lab_inventory_file() -> Path:
    return LAB_DIR / "inventory.yml"


def lab_inventory_vars() -> dict[str, object]:
    return {
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(lab_key_file()),
        "ansible_python_interpreter": "/usr/bin/python3",
        # lab nodes have no route out but the apt cache on the bridge (their apt proxy): provisioning installs
        # what they need from Debian's packages through it
        "fleet_apt_update_cache": True,
        "fleet_lab": True,
        # dynos may not reach the control machine (its sshd, git): here, the bridge's address
        "fleet_control_addresses": [HOST_ADDRESS],
        # add-on clients connect from here (roles/postgres' pg_hba.conf, roles/redis' firewall)
        "fleet_host_network": HOST_NETWORK,
    }


def boot_argv(node: LabNode) -> tuple[str, ...]:
    return (
        "systemd-nspawn",
        "--register=no",
        "--keep-unit",
        "-D",
        str(node.root),
        "-b",
        f"--network-bridge={BRIDGE}",
        f"--bind={node.fleet_data}:/var/lib/fleet",
        "--capability=all",
        "-M",
        node.name,
        "--",
        "systemd.firstboot=off",
    )


def networkd_unit(node: LabNode) -> str:
    """host0's address, of scope global although it is link-local: a dyno's outbound connections are
    masqueraded to it, and masquerading picks only an address of global scope."""
    return (
        "[Match]\nName=host0\n\n[Network]\nLinkLocalAddressing=no\n\n"
        f"[Address]\nAddress={node.address}/{PREFIX_LEN}\nScope=global\n"
    )


def systemd_escape_path(path: str) -> str:
    """What `systemd-escape --path PATH` prints."""
    trimmed = "/".join(part for part in path.split("/") if part)
    if not trimmed:
        return "-"
    out = []
    for i, ch in enumerate(trimmed):
        if ch == "/":
            out.append("-")
        elif ch.isascii() and (ch.isalnum() or ch in ":_" or (ch == "." and i > 0)):
            out.append(ch)
        else:
            out.extend(f"\\x{b:02x}" for b in ch.encode())
    return "".join(out)


def tmpfs_mount_unit(where: str, mode: str = "1777") -> tuple[str, str]:
    """(unit file name, text) for a tmpfs at ``where`` inside a node.

    Nested overlays (dyno /app layers) need their upper dirs off overlayfs.
    """
    name = systemd_escape_path(where) + ".mount"
    text = (
        "[Unit]\n"
        "Description=fleet lab: tmpfs at " + where + "\n"
        "DefaultDependencies=no\n"
        "Before=local-fs.target\n\n"
        "[Mount]\n"
        "What=tmpfs\n"
        f"Where={where}\n"
        "Type=tmpfs\n"
        f"Options=mode={mode}\n\n"
        "[Install]\n"
        "WantedBy=local-fs.target\n"
    )
    return name, text


NODE_TMPFS = (("/var/tmp", "1777"),)

#: nspawn mounts the cgroup v1 controllers read-only in a node, so systemd there accepts MemoryMax= but does not
#: enforce it (LAB-NOTES). Run over SSH once a node has booted, this makes them writable and re-executes systemd,
#: which then applies every unit's limits, those of dynos started at boot included, so a lab node holds dynos to
#: their sizes as a real host does (there, nothing is needed). Done at boot by a unit instead, it raced other early
#: units (one failed with 219/CGROUP).
CGROUP_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids")


def enforce_limits_argv() -> tuple[str, ...]:
    remounts = " && ".join(f"mount -o remount,bind,rw /sys/fs/cgroup/{c}" for c in CGROUP_CONTROLLERS)
    return ("sh", "-c", f"{remounts} && systemctl daemon-reexec")
