"""fleet.lab.plan: lab node names, addresses, argv and unit texts (no I/O, no lab)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from fleet.errors import UsageError
from fleet.lab.plan import (
    LAB_DIR,
    MAX_NODES,
    NODE_TMPFS,
    LabNode,
    boot_argv,
    lab_inventory_file,
    lab_key_file,
    lab_nodes,
    networkd_unit,
    tmpfs_mount_unit,
)
from fleet.model import Node


def systemd_escape_mount(path: str) -> str:
    if shutil.which("systemd-escape") is None:
        pytest.fail("systemd-escape is not installed: `make test` installs it (systemd)")
    res = subprocess.run(
        ["systemd-escape", "--path", "--suffix=mount", path], capture_output=True, text=True, check=True, timeout=30
    )
    return res.stdout.strip()


def test_lab_node_two() -> None:
    n = LabNode(2)
    assert n.name == "node2"
    assert n.address == "169.254.77.12"
    assert n.veth == "vb-node2"
    assert n.is_router is False
    assert n.dir == Path("/var/lib/fleet-lab/nodes/node2")
    assert n.root == Path("/var/lib/fleet-lab/nodes/node2/root")


def test_only_node1_is_router() -> None:
    assert [n.is_router for n in lab_nodes(4)] == [True, False, False, False]
    assert LabNode(1).address == "169.254.77.11"
    assert LabNode(MAX_NODES).address == "169.254.77.30"


def test_lab_nodes() -> None:
    assert lab_nodes(3) == (LabNode(1), LabNode(2), LabNode(3))
    assert lab_nodes(0) == ()


def test_as_node() -> None:
    assert LabNode(1).as_node() == Node(
        name="node1",
        address="169.254.77.11",
        groups=("dyno_hosts", "router_hosts"),
        key_file="/var/lib/fleet-lab/id_ed25519",
    )
    assert LabNode(2).as_node() == Node(
        name="node2", address="169.254.77.12", groups=("dyno_hosts",), key_file="/var/lib/fleet-lab/id_ed25519"
    )
    # node3 also runs the add-ons (PostgreSQL)
    assert LabNode(3).as_node() == Node(
        name="node3", address="169.254.77.13", groups=("dyno_hosts", "addon_hosts"), key_file="/var/lib/fleet-lab/id_ed25519"
    )
    assert LabNode(3).as_node().known_hosts_name == "169.254.77.13"


def test_lab_paths() -> None:
    assert str(LAB_DIR) == "/var/lib/fleet-lab"
    assert lab_key_file() == Path("/var/lib/fleet-lab/id_ed25519")
    assert lab_inventory_file() == Path("/var/lib/fleet-lab/inventory.yml")


def test_boot_argv() -> None:
    assert boot_argv(LabNode(2)) == (
        "systemd-nspawn",
        "--register=no",
        "--keep-unit",
        "-D",
        "/var/lib/fleet-lab/nodes/node2/root",
        "-b",
        "--network-bridge=fleetbr0",
        "--bind=/var/lib/fleet-lab/nodes/node2/var-lib-fleet:/var/lib/fleet",
        "--capability=all",
        "-M",
        "node2",
        "--",
        "systemd.firstboot=off",
    )


def test_boot_argv_machine_name_follows_the_node() -> None:
    argv = boot_argv(LabNode(7))
    assert argv[argv.index("-M") + 1] == "node7"
    assert argv[argv.index("-D") + 1] == "/var/lib/fleet-lab/nodes/node7/root"
    assert argv[-1] == "systemd.firstboot=off"
    assert argv[-2] == "--"


def test_networkd_unit() -> None:
    text = networkd_unit(LabNode(2))
    assert text == (
        "[Match]\nName=host0\n\n[Network]\nLinkLocalAddressing=no\n\n[Address]\nAddress=169.254.77.12/24\nScope=global\n"
    )
    assert "Address=169.254.77.12/24" in text.splitlines()
    assert "LinkLocalAddressing=no" in text.splitlines()


def test_tmpfs_mount_unit_var_tmp() -> None:
    name, text = tmpfs_mount_unit("/var/tmp")
    assert name == "var-tmp.mount"
    assert text == (
        "[Unit]\n"
        "Description=fleet lab: tmpfs at /var/tmp\n"
        "DefaultDependencies=no\n"
        "Before=local-fs.target\n\n"
        "[Mount]\n"
        "What=tmpfs\n"
        "Where=/var/tmp\n"
        "Type=tmpfs\n"
        "Options=mode=1777\n\n"
        "[Install]\n"
        "WantedBy=local-fs.target\n"
    )


def test_tmpfs_mount_unit_mode() -> None:
    _, text = tmpfs_mount_unit("/var/lib/fleet", "755")
    assert "Options=mode=755" in text.splitlines()
    assert "Where=/var/lib/fleet" in text.splitlines()


@pytest.mark.parametrize("where", [w for w, _ in NODE_TMPFS] + ["/srv/my-app", "/var/lib/fleet/"])
def test_tmpfs_mount_unit_name_matches_systemd_escape(where: str) -> None:
    assert tmpfs_mount_unit(where)[0] == systemd_escape_mount(where)


def test_var_lib_fleet_unit_name() -> None:
    assert systemd_escape_mount("/var/lib/fleet") == "var-lib-fleet.mount"
    assert tmpfs_mount_unit("/var/lib/fleet")[0] == "var-lib-fleet.mount"


@pytest.mark.parametrize("where", ["/srv/my app", "/.hidden", "/srv/x\\y"])
def test_tmpfs_mount_unit_name_matches_systemd_escape_for_other_characters(where: str) -> None:
    assert tmpfs_mount_unit(where)[0] == systemd_escape_mount(where)


@pytest.mark.parametrize(("name", "index"), [("node1", 1), ("node2", 2), ("node20", 20)])
def test_from_name(name: str, index: int) -> None:
    assert LabNode.from_name(name) == LabNode(index)


@pytest.mark.parametrize("name", ["nodeX", "node0", "node", "node01", "node-1", "Node1", "vb-node1", "node100", ""])
def test_from_name_rejects(name: str) -> None:
    with pytest.raises(UsageError) as info:
        LabNode.from_name(name)
    assert str(info.value) == f"{name!r} is not a lab node name; lab nodes are node1..node20"
    assert info.value.exit_code == 2


@pytest.mark.parametrize("name", ["node21", "node99"])
def test_from_name_rejects_beyond_max_nodes(name: str) -> None:
    with pytest.raises(UsageError):
        LabNode.from_name(name)


def test_node_disk_for_fleet_data_is_off_overlayfs_and_kept_across_reboots() -> None:
    node = LabNode(3)
    assert node.fleet_data == Path("/var/lib/fleet-lab/nodes/node3/var-lib-fleet")
    assert node.fleet_data.parent == node.dir and node.fleet_data != node.root  # the node's tmpfs, not its overlay
    assert "/var/lib/fleet" not in [w for w, _ in NODE_TMPFS]


def test_limits_are_enforced_by_remounting_each_controller_then_reexecuting_systemd() -> None:
    from fleet.lab.plan import enforce_limits_argv

    assert enforce_limits_argv() == (
        "sh",
        "-c",
        "mount -o remount,bind,rw /sys/fs/cgroup/memory && mount -o remount,bind,rw /sys/fs/cgroup/cpu"
        " && mount -o remount,bind,rw /sys/fs/cgroup/cpuacct && mount -o remount,bind,rw /sys/fs/cgroup/pids"
        " && systemctl daemon-reexec",
    )


def test_lab_hosts_boot_a_bare_debian_and_reach_the_archive_only_through_the_apt_cache() -> None:
    from fleet.lab.plan import BASE_PACKAGES, apt_proxy_conf, base_debootstrap_argv, base_root, lab_inventory_vars

    # named by what it holds: another package list is another tree, never a stale one
    assert base_root().parent == Path("/var/cache/fleet/lab-roots") and base_root().name.startswith("bookworm-")
    argv = base_debootstrap_argv(Path("/x/root"), "http://127.0.0.1:3143/deb.example.org/debian")
    assert argv == ("debootstrap", "--variant=minbase", "--include=" + ",".join(BASE_PACKAGES), "bookworm", "/x/root",
                    "http://127.0.0.1:3143/deb.example.org/debian")  # fmt: skip
    assert "haproxy" not in BASE_PACKAGES and "systemd-container" not in BASE_PACKAGES  # provisioning installs those
    assert apt_proxy_conf() == ('Acquire::http::Proxy "http://169.254.77.1:3143";\nAcquire::http::Pipeline-Depth "0";\n'
                                'Acquire::http::Timeout "30";\nAcquire::Retries "3";\n')
    assert lab_inventory_vars()["fleet_apt_update_cache"] is True
