"""The lab: a fleet of booted systemd-nspawn hosts on this machine.

Everything here acts on the local machine (mounts, links, processes), through
``run_local``. It is idempotent: ``up`` after a crashed run, and ``down``,
find and remove leftovers (orphaned container inits, mounts, links).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fleet.errors import HealthcheckTimeout, LockHeld, PrerequisiteError, UsageError
from fleet.exec.base import fan_out
from fleet.exec.local import run_local
from fleet.hostkeys import HostKey, read_known_hosts, with_pinned, write_known_hosts
from fleet.inventory import render_inventory
from fleet.lab.plan import (
    BASE_ROOTS,
    BASE_SUITE,
    BRIDGE,
    HOST_ADDRESS,
    LAB_DIR,
    MASKED_UNITS,
    MAX_NODES,
    NODE_TMPFS,
    PREFIX_LEN,
    ROUTER_ONLY_UNITS,
    LabNode,
    apt_proxy_conf,
    base_debootstrap_argv,
    base_root,
    boot_argv,
    enforce_limits_argv,
    lab_inventory_file,
    lab_inventory_vars,
    lab_key_file,
    lab_nodes,
    networkd_unit,
    tmpfs_mount_unit,
)
from fleet.settings import Settings

if TYPE_CHECKING:
    from fleet.exec.ssh import SSHExecutor

log = logging.getLogger(__name__)

BOOT_TIMEOUT = 120.0


@dataclass(frozen=True)
class LabNodeStatus:
    name: str
    address: str
    running: bool
    init_pid: int | None
    link: str  # "up", "down" (partitioned) or "absent"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


# -- prerequisites ------------------------------------------------------------
def check_prerequisites() -> None:
    if os.geteuid() != 0:
        raise PrerequisiteError("the lab needs root (it mounts filesystems and boots containers); run it as root, e.g. with sudo")
    for tool, package in (
        ("systemd-nspawn", "systemd-container"),
        ("debootstrap", "debootstrap"),
        ("ip", "iproute2"),
        ("ssh-keygen", "openssh-client"),
        ("sshd", "openssh-server"),
    ):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            raise PrerequisiteError(f"{tool} is missing; install it with `apt-get install {package}` (or run `make demo`)")


# -- process and mount discovery (procfs) ---------------------------------------
def _proc_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _is_ns_init(pid: int) -> bool:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return line.split()[-1] == "1" and len(line.split()) > 2
    except OSError:
        pass
    return False


def _root_mount_source(pid: int) -> str | None:
    """The source of the filesystem mounted at / in the process's mount namespace."""
    try:
        for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
            fields = line.split()
            if fields[4] == "/":
                return fields[fields.index("-") + 2]
    except (OSError, ValueError, IndexError):
        pass
    return None


def node_inits(node: LabNode) -> list[int]:
    """Container init processes booted on this node's root overlay."""
    source = root_source(node)
    return [p for p in _proc_pids() if _is_ns_init(p) and _root_mount_source(p) == source]


def root_source(node: LabNode) -> str:
    return f"fleet-lab-{node.name}-root"


def node_nspawns(node: LabNode) -> list[int]:
    root = str(node.root)
    return [p for p in _proc_pids() if (c := _cmdline(p)) and os.path.basename(c[0]) == "systemd-nspawn" and root in c]


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path)
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        target = line.split()[4].encode().decode("unicode_escape")
        if target == prefix or target.startswith(prefix + "/"):
            found.append(target)
    return sorted(set(found), key=len, reverse=True)


def _is_mountpoint(path: Path) -> bool:
    return str(path) in _mounts_under(path)


def _link_state(name: str) -> str:
    operstate = Path(f"/sys/class/net/{name}/operstate")
    if not operstate.exists():
        return "absent"
    flags = int(Path(f"/sys/class/net/{name}/flags").read_text(), 16)
    return "up" if flags & 0x1 else "down"


# -- the lab lock: one lab.up/down/kill/partition/heal at a time on this machine
LOCK_FILE = Path("/run/fleet-lab.lock")


@contextmanager
def lab_lock(what: str) -> Iterator[None]:
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise LockHeld(f"the lab is busy: {holder}; wait for it to finish and try again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"`fleet {what}` (pid {os.getpid()})".encode(), 0)
        yield
    finally:
        os.close(fd)


# -- status -------------------------------------------------------------------
def known_lab_nodes() -> list[LabNode]:
    """Nodes with any trace on this machine: a directory, a process or a link."""
    found: set[int] = set()
    nodes_dir = LAB_DIR / "nodes"
    if nodes_dir.is_dir():
        for entry in nodes_dir.iterdir():
            try:
                found.add(LabNode.from_name(entry.name).index)
            except UsageError:
                continue
    for name in os.listdir("/sys/class/net"):
        if name.startswith("vb-node"):
            try:
                found.add(LabNode.from_name(name[3:]).index)
            except UsageError:
                continue
    return [LabNode(i) for i in sorted(found)]


def node_status(node: LabNode) -> LabNodeStatus:
    inits = node_inits(node)
    return LabNodeStatus(node.name, node.address, bool(inits), inits[0] if inits else None, _link_state(node.veth))


def status() -> list[LabNodeStatus]:
    return [node_status(n) for n in known_lab_nodes()]


# -- cleanup ------------------------------------------------------------------
def _kill_and_wait(pids: list[int], timeout: float = 10.0) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    end = time.monotonic() + timeout
    while time.monotonic() < end and any(Path(f"/proc/{p}").exists() for p in pids):
        time.sleep(0.05)


def remove_node(node: LabNode) -> None:
    """Power the node off and remove every trace of it. Safe on leftovers."""
    _power_off(node)
    for target in _mounts_under(node.dir):
        res = run_local(("umount", target), check=False)
        if not res.ok:
            run_local(("umount", "-l", target), check=False)
    if _link_state(node.veth) != "absent":
        run_local(("ip", "link", "del", node.veth), check=False)
    shutil.rmtree(node.dir, ignore_errors=True)
    _remove_cgroups(node)


def down() -> list[str]:
    check_prerequisites()
    with lab_lock("lab.down"):
        return _down()


def _down() -> list[str]:
    removed = []
    for node in known_lab_nodes():
        remove_node(node)
        removed.append(node.name)
    if _link_state(BRIDGE) != "absent":
        run_local(("ip", "link", "del", BRIDGE))
    for target in _mounts_under(LAB_DIR):
        run_local(("umount", target), check=False)
    shutil.rmtree(LAB_DIR, ignore_errors=True)
    return removed


# -- bring-up -------------------------------------------------------------------
def _ensure_lab_dir() -> None:
    LAB_DIR.mkdir(parents=True, exist_ok=True)
    # a tmpfs, so the lab's private key is not in the nodes' lower layer (the host's /)
    if not _is_mountpoint(LAB_DIR):
        run_local(("mount", "-t", "tmpfs", "-o", "mode=0700", "fleet-lab", str(LAB_DIR)))
    (LAB_DIR / "nodes").mkdir(exist_ok=True)


def _ensure_bridge() -> None:
    if _link_state(BRIDGE) == "absent":
        run_local(("ip", "link", "add", BRIDGE, "type", "bridge"))
    addrs = run_local(("ip", "-o", "-4", "addr", "show", "dev", BRIDGE)).stdout
    if f"{HOST_ADDRESS}/{PREFIX_LEN}" not in addrs:
        run_local(("ip", "addr", "add", f"{HOST_ADDRESS}/{PREFIX_LEN}", "dev", BRIDGE))
    run_local(("ip", "link", "set", BRIDGE, "up"))


def _ensure_key() -> str:
    key = lab_key_file()
    if not key.exists():
        run_local(("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fleet-lab", "-f", str(key)))
    os.chmod(key, 0o600)
    return Path(str(key) + ".pub").read_text().strip()


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)


def _mask(root: Path, unit: str) -> None:
    link = root / "etc/systemd/system" / unit
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to("/dev/null")


def _enable(root: Path, unit: str, target: str, unit_path: str) -> None:
    wants = root / "etc/systemd/system" / f"{target}.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / unit
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(unit_path)


def ensure_base_root(on_line: Callable[[str], None] = lambda line: None) -> Path:
    """The bare Debian every node boots from: debootstrapped once from this machine's Debian mirror through
    fleet's apt cache, kept in /var/cache/fleet/lab-roots for every later lab."""
    root = base_root()
    if (root / "etc/os-release").exists():
        return root
    BASE_ROOTS.mkdir(parents=True, exist_ok=True)
    with open(BASE_ROOTS / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (root / "etc/os-release").exists():
            return root
        from fleet.services import aptcache
        from fleet.services.stacks import machine_mirrors

        mirrors = machine_mirrors()
        via = mirrors.through(aptcache.ensure_running(["127.0.0.1"]))
        building = root.with_name(root.name + ".building")
        shutil.rmtree(building, ignore_errors=True)
        on_line(f"debootstrapping the lab hosts' bare Debian into {root} (once; a minute or two)")
        res = run_local(base_debootstrap_argv(building, via.archive), check=False, timeout=1800)
        if res.code != 0:
            shutil.rmtree(building, ignore_errors=True)
            last = next((ln for ln in reversed(res.stdout.splitlines() + res.stderr.splitlines()) if ln.strip()), "")
            raise PrerequisiteError(f"debootstrap of the lab hosts' Debian failed (exit {res.code}): {last}")
        # the archive as this machine names it; nodes reach it through their apt proxy
        (building / "etc/apt/sources.list").write_text(mirrors.sources_list(BASE_SUITE))
        for lists in (building / "var/lib/apt/lists").glob("*_*"):  # debootstrap's, of the cache's URL: stale
            lists.unlink()
        os.rename(building, root)
    return root


def prepare_root(node: LabNode, pubkey: str, base: Path) -> HostKey:
    """Mount the node's root (an overlay of ``base``) and write what it needs before boot; return its host key."""
    node.dir.mkdir(parents=True, exist_ok=True)
    run_local(("mount", "-t", "tmpfs", "-o", "mode=0755", f"fleet-lab-{node.name}", str(node.dir)))
    for sub in ("upper", "work", "root"):
        (node.dir / sub).mkdir()
    run_local(
        (
            "mount", "-t", "overlay", root_source(node),
            "-o", f"lowerdir={base},upperdir={node.dir / 'upper'},workdir={node.dir / 'work'}",
            str(node.root),
        )
    )  # fmt: skip
    root = node.root
    (root / "etc/machine-id").unlink(missing_ok=True)
    _write(root / "etc/hostname", node.name + "\n")
    _write(root / "etc/apt/apt.conf.d/01fleet-lab-proxy", apt_proxy_conf())
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(ssh_dir, 0o700)
    _write(ssh_dir / "authorized_keys", pubkey + "\n", 0o600)
    # a host key of its own, recorded by us: pinned without trust on first use
    for old in (root / "etc/ssh").glob("ssh_host_*"):
        old.unlink()
    hostkey = root / "etc/ssh/ssh_host_ed25519_key"
    run_local(("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", node.name, "-f", str(hostkey)))
    for unit in MASKED_UNITS + (() if node.is_router else ROUTER_ONLY_UNITS):
        _mask(root, unit)
    _write(root / "etc/systemd/network/10-fleet-host0.network", networkd_unit(node))
    _enable(root, "systemd-networkd.service", "multi-user.target", "/lib/systemd/system/systemd-networkd.service")
    _enable(root, "systemd-networkd.socket", "sockets.target", "/lib/systemd/system/systemd-networkd.socket")
    _enable(root, "ssh.service", "multi-user.target", "/lib/systemd/system/ssh.service")
    node.fleet_data.mkdir(mode=0o755)
    for where, mode in NODE_TMPFS:
        unit, text = tmpfs_mount_unit(where, mode)
        _write(root / "etc/systemd/system" / unit, text)
        _enable(root, unit, "local-fs.target", f"/etc/systemd/system/{unit}")
    return HostKey.parse(Path(str(hostkey) + ".pub").read_text())


CGROUP_FS = Path("/sys/fs/cgroup")


def node_cgroups(node: LabNode) -> list[Path]:
    """The node's own cgroup in each hierarchy, under this process's. nspawn makes its supervisor/payload
    groups inside the cgroup it starts in: nodes started from one cgroup shared one tree, and their
    systemds fought over it (units failing at boot with 219/CGROUP)."""
    out = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        hierarchy = CGROUP_FS / (controllers.removeprefix("name=") or "unified")
        if not controllers and not hierarchy.is_dir():
            hierarchy = CGROUP_FS  # cgroup v2 only: the unified hierarchy is /sys/fs/cgroup itself
        if controllers != "cpuset" and (hierarchy / "cgroup.procs").exists():  # a new cpuset has no cpus yet
            out.append(hierarchy / path.lstrip("/") / f"fleet-lab-{node.name}")
    return out


def _remove_cgroups(node: LabNode) -> None:
    for group in node_cgroups(node):
        for d in sorted((p for p in group.glob("**/") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                d.rmdir()


#: enter each cgroup.procs given before "--", then exec the rest (nspawn keeps its own command line)
ENTER_CGROUPS = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 1; shift; done; shift; exec "$@"'


def boot(node: LabNode) -> int:
    procs = []
    for group in node_cgroups(node):
        with contextlib.suppress(OSError):  # a hierarchy we may not write: the node shares it, as before
            group.mkdir(exist_ok=True)
            procs.append(str(group / "cgroup.procs"))
    log_file = open(node.dir / "console.log", "ab")  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen(
            ("sh", "-c", ENTER_CGROUPS, "fleet-lab", *procs, "--", *boot_argv(node)),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log_file.close()
    return proc.pid


def _node_is_healthy(node: LabNode) -> bool:
    return bool(node_inits(node)) and (node.dir / "hostkey.pub").exists()


def _silent(line: str) -> None:
    pass


def up(settings: Settings, count: int, on_line: Callable[[str], None] = _silent) -> list[LabNodeStatus]:
    """Boot the lab; ``on_line`` is told what it waits for (the base root's debootstrap, the nodes' boot)."""
    check_prerequisites()
    if not 1 <= count <= MAX_NODES:
        raise UsageError(f"--nodes must be from 1 to {MAX_NODES}, got {count}")
    with lab_lock("lab.up"):
        return _up(settings, count, on_line)


def _up(settings: Settings, count: int, on_line: Callable[[str], None]) -> list[LabNodeStatus]:
    _ensure_lab_dir()
    _ensure_bridge()
    from fleet.services import aptcache

    aptcache.ensure_running(["127.0.0.1", HOST_ADDRESS])  # the nodes' apt proxy, on the bridge (and this machine's)
    base = ensure_base_root(on_line)
    pubkey = _ensure_key()
    wanted = lab_nodes(count)
    for extra in known_lab_nodes():
        if extra.index > count:
            log.info("removing %s (lab now has %d nodes)", extra.name, count)
            remove_node(extra)
    booted = []
    for node in wanted:
        if _node_is_healthy(node) and _link_state(node.veth) == "up":
            continue
        if _node_is_healthy(node):  # partitioned: heal rather than reboot
            _set_link(node, "up")
            continue
        remove_node(node)
        hostkey = prepare_root(node, pubkey, base)
        on_line(f"booting {node.name} ({node.address})")
        boot(node)
        booted.append(node)
        _write(node.dir / "hostkey.pub", f"{hostkey.key_type} {hostkey.key_b64}\n")
    _write(lab_inventory_file(), render_inventory([n.as_node() for n in wanted], lab_inventory_vars()))
    enroll_lab_keys(settings, wanted)
    settings.use_inventory(lab_inventory_file())
    wait_until_booted(settings, wanted, on_line=on_line)
    enforce_limits(settings, tuple(booted))
    return [node_status(n) for n in wanted]


def enroll_lab_keys(settings: Settings, nodes: tuple[LabNode, ...]) -> None:
    text = read_known_hosts(settings.known_hosts)
    for node in nodes:
        key = HostKey.parse((node.dir / "hostkey.pub").read_text())
        text = with_pinned(text, node.as_node().known_hosts_name, [key])
    settings.ensure_home()
    write_known_hosts(settings.known_hosts, text)


def wait_until_booted(
    settings: Settings, nodes: tuple[LabNode, ...], timeout: float = BOOT_TIMEOUT, on_line: Callable[[str], None] = _silent
) -> None:
    """Wait until every node answers SSH and its systemd has finished booting."""
    on_line(f"waiting for {', '.join(n.name for n in nodes)} to finish booting (up to {timeout:g} s)")
    end = time.monotonic() + timeout
    pending = {n.name: n for n in nodes}
    last: dict[str, str] = {}
    with _node_ssh(settings, command_timeout=10.0) as ex:
        while pending and time.monotonic() < end:
            res = fan_out(
                [n.as_node() for n in pending.values()],
                lambda node: ex.run(node, ("systemctl", "is-system-running"), check=False).stdout.strip(),
                deadline=15.0,
            )
            for name, state in res.ok.items():
                last[name] = state
                if state in ("running", "degraded"):
                    pending.pop(name)
            for name, err in res.failed.items():
                last[name] = str(err)
            if pending:
                time.sleep(1.0)
    if pending:
        detail = "; ".join(f"{n}: {last.get(n, 'no answer')}" for n in sorted(pending))
        raise HealthcheckTimeout(
            f"lab nodes did not finish booting within {timeout:g}s ({detail}); see {LAB_DIR}/nodes/NODE/console.log"
        )


def enforce_limits(settings: Settings, nodes: tuple[LabNode, ...]) -> None:
    """Make freshly booted nodes enforce cgroup limits (MemoryMax of dynos); see ``enforce_limits_argv``."""
    if not nodes:
        return
    with _node_ssh(settings, command_timeout=30.0) as ex:
        res = fan_out([n.as_node() for n in nodes], lambda node: ex.run(node, enforce_limits_argv()), deadline=60.0)
    res.raise_on_failure("lab: enforcing resource limits")


@contextmanager
def _node_ssh(settings: Settings, command_timeout: float) -> Iterator[SSHExecutor]:
    """An SSH executor for nodes that may still be booting: short connect timeout, closed after use."""
    from fleet.exec.ssh import SSHExecutor

    ex = SSHExecutor(settings.known_hosts, connect_timeout=3.0, command_timeout=command_timeout)
    try:
        yield ex
    finally:
        ex.close()


# -- faults -------------------------------------------------------------------
def _existing(name: str) -> LabNode:
    node = LabNode.from_name(name)
    if not node_inits(node):
        raise UsageError(f"lab node {name} is not running; `fleet lab.status` lists the nodes")
    return node


def _on_running_node(what: str, name: str, act: Callable[[LabNode], None]) -> LabNodeStatus:
    check_prerequisites()
    with lab_lock(f"{what} {name}"):
        node = _existing(name)
        act(node)
        return node_status(node)


def _set_link(node: LabNode, state: str) -> None:
    run_local(("ip", "link", "set", node.veth, state))


def _power_off(node: LabNode) -> None:
    """SIGKILL the container's init, so its whole PID namespace dies at once (then its nspawn)."""
    _kill_and_wait(node_inits(node))
    _kill_and_wait(node_nspawns(node))


def kill(name: str) -> LabNodeStatus:
    """Power cut."""
    return _on_running_node("lab.kill", name, _power_off)


def reboot(settings: Settings, name: str, on_line: Callable[[str], None] = _silent) -> LabNodeStatus:
    """Power cycle: cut the power, then boot again from the same disk (the root's upper layer and
    /var/lib/fleet are kept), and wait until the node has finished booting."""

    def power_cycle(node: LabNode) -> None:
        _power_off(node)
        _boot_from_disk(settings, node, on_line)

    return _on_running_node("lab.reboot", name, power_cycle)


def _boot_from_disk(settings: Settings, node: LabNode, on_line: Callable[[str], None]) -> None:
    """Boot a powered-off node from the root and /var/lib/fleet it had, and wait until it has booted."""
    boot(node)
    wait_until_booted(settings, (node,), on_line=on_line)
    enforce_limits(settings, (node,))


def power_on(settings: Settings, name: str, on_line: Callable[[str], None] = _silent) -> LabNodeStatus:
    """Power a node back on after a power cut: boot it from the same disk (its root's upper layer and
    /var/lib/fleet, so the dynos enabled there start again, as on a real host), and wait until it has booted."""
    check_prerequisites()
    with lab_lock(f"lab.boot {name}"):
        node = LabNode.from_name(name)
        if node_inits(node):
            raise UsageError(f"lab node {name} is running; `fleet lab.kill {name}` cuts its power first")
        if not (node.root / "etc").is_dir() or not (node.dir / "hostkey.pub").exists():
            raise UsageError(f"lab node {name} has no disk to boot from; `fleet lab.up` makes it afresh")
        _kill_and_wait(node_nspawns(node))
        _boot_from_disk(settings, node, on_line)
        return node_status(node)


def partition(name: str) -> LabNodeStatus:
    """Cut the node off the network: its bridge port goes down."""
    return _on_running_node("lab.partition", name, lambda node: _set_link(node, "down"))


def heal(name: str) -> LabNodeStatus:
    return _on_running_node("lab.heal", name, lambda node: _set_link(node, "up"))
