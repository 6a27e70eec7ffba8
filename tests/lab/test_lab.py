"""The foundation on a real lab: boot, reach over SSH, provision, fail, clean up.

Tests in this module run in file order; the session's lab fixture takes the lab down at the end.
"""

from __future__ import annotations

import base64
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from fleet.lab.plan import LAB_DIR, LabNode
from fleet.services import lab as lab_service

from .conftest import FLEET, run_fleet, status_by_name

pytestmark = pytest.mark.lab

REQUIRED_KEYS = {"name", "address", "groups", "reachable", "mem_total", "mem_available", "load1", "disk_free"}


def test_status_json_has_one_reachable_object_per_host(lab: Path) -> None:
    rows = status_by_name(lab)
    assert sorted(rows) == ["node1", "node2", "node3"]
    for name, row in rows.items():
        assert set(row) >= REQUIRED_KEYS, name
        assert row["reachable"] is True, row
        assert row["address"] == LabNode.from_name(name).address
        assert isinstance(row["mem_total"], int) and row["mem_total"] > 0
        assert 0 < row["mem_available"] <= row["mem_total"]
        assert isinstance(row["disk_free"], int) and row["disk_free"] > 0
        assert row["systemd_state"] in ("running", "degraded")
    assert rows["node1"]["groups"] == ["dyno_hosts", "router_hosts"]
    assert rows["node2"]["groups"] == ["dyno_hosts"]


def test_status_table_is_readable(lab: Path) -> None:
    res = run_fleet(lab, "nodes.status")
    assert res.code == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split()[:4] == ["HOST", "ADDRESS", "GROUPS", "STATE"]
    assert [line.split()[0] for line in lines[1:]] == ["node1", "node2", "node3"]
    assert all(" reachable " in line for line in lines[1:])


def test_second_provision_changes_nothing(lab: Path) -> None:
    res = run_fleet(lab, "nodes.provision", timeout=600)
    assert res.code == 0, res.stdout[-3000:]
    recap = [line for line in res.stdout.splitlines() if " : ok=" in line]
    assert len(recap) == 3
    assert all("changed=0 " in line and "failed=0 " in line for line in recap), recap
    assert res.stdout.strip().endswith("provisioned 3 hosts: changed=0")


def _ssh(home: Path, node: str, *argv: str) -> str:
    key = LAB_DIR / "id_ed25519"
    addr = LabNode.from_name(node).address
    proc = subprocess.run(
        ["ssh", "-i", str(key), "-o", f"UserKnownHostsFile={home / 'known_hosts'}", "-o", "StrictHostKeyChecking=yes",
         "-o", "BatchMode=yes", f"root@{addr}", shlex.join(argv)],
        capture_output=True, text=True, errors="replace", timeout=30,  # a host's journal holds what dynos printed: any bytes
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_provisioned_hosts_have_what_dynos_and_routers_need(lab: Path) -> None:
    for node in ("node1", "node2"):
        assert "dyno" in _ssh(lab, node, "id", "-un", "dyno")
        # stacks arrive as images (tests/lab/test_stacks.py); no host root is bound as one
        assert _ssh(lab, node, "stat", "-c", "%a %U", "/var/lib/fleet/stacks/images").strip() == "755 root"
        assert _ssh(lab, node, "sh", "-c", "findmnt -n /var/lib/fleet/stacks/host || echo none").strip() == "none"
        assert _ssh(lab, node, "stat", "-c", "%a", "/etc/fleet").strip() == "700"
    # only the router runs HAProxy; unknown hosts get the router's 404 page
    assert _ssh(lab, "node1", "systemctl", "is-active", "haproxy").strip() == "active"
    page = _ssh(lab, "node1", "python3", "-c",
                "import urllib.request as u, urllib.error as e\n"
                "try: u.urlopen(u.Request('http://127.0.0.1/', headers={'Host': 'nope.example'}))\n"
                "except e.HTTPError as x: print(x.code, x.read().decode())")  # fmt: skip
    assert page.startswith("404 ") and "No such app" in page
    # HAProxy's metrics: on node1's management address, with fleet's password (the rest: test_router_isolation.py)
    password = (lab / "router-metrics.secret").read_text().strip()
    auth = base64.b64encode(f"fleet:{password}".encode()).decode()
    scrape = urllib.request.Request(f"http://{LabNode(1).address}:8404/metrics", headers={"Authorization": f"Basic {auth}"})
    metrics = urllib.request.urlopen(scrape, timeout=10).read().decode()
    assert "haproxy_process_" in metrics


def test_changed_host_key_is_refused(lab: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(lab, home, ignore=shutil.ignore_patterns("state.db*", "ansible"))
    known = home / "known_hosts"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    other = (tmp_path / "other.pub").read_text().split()
    addr = LabNode(2).address
    lines = [f"{addr} {other[0]} {other[1]}" if line.startswith(addr + " ") else line for line in known.read_text().splitlines()]
    known.write_text("\n".join(lines) + "\n")
    before = known.read_text()

    rows = status_by_name(home)
    assert rows["node2"]["reachable"] is False
    assert "host key changed" in str(rows["node2"]["error"])
    assert "fleet nodes.enroll --node node2 --replace" in str(rows["node2"]["error"])
    assert rows["node1"]["reachable"] is True and rows["node3"]["reachable"] is True

    refused = run_fleet(home, "nodes.enroll", "--node", "node2")
    assert refused.code != 0
    assert refused.stderr.strip().count("\n") == 0, refused.stderr
    assert "already pinned" in refused.stderr and "--replace" in refused.stderr
    assert known.read_text() == before

    replaced = run_fleet(home, "nodes.enroll", "--node", "node2", "--replace")
    assert replaced.code == 0, replaced.stderr
    assert "node2: SHA256:" in replaced.stdout and "pinned" in replaced.stdout
    assert status_by_name(home)["node2"]["reachable"] is True


def test_unknown_host_key_is_refused(lab: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(lab, home, ignore=shutil.ignore_patterns("state.db*", "ansible"))
    (home / "known_hosts").write_text("")
    rows = status_by_name(home)
    assert all(r["reachable"] is False for r in rows.values())
    assert "host key not pinned" in str(rows["node3"]["error"])


def test_partition_then_heal(lab: Path) -> None:
    res = run_fleet(lab, "lab.partition", "node2")
    assert res.code == 0, res.stderr
    try:
        start = time.monotonic()
        rows = status_by_name(lab)
        elapsed = time.monotonic() - start
        assert rows["node2"]["reachable"] is False
        assert rows["node1"]["reachable"] is True and rows["node3"]["reachable"] is True
        assert elapsed < 10, elapsed
        assert "partitioned" in run_fleet(lab, "lab.status").stdout
    finally:
        healed = run_fleet(lab, "lab.heal", "node2")
    assert healed.code == 0, healed.stderr
    deadline = time.monotonic() + 20
    while not status_by_name(lab)["node2"]["reachable"]:
        assert time.monotonic() < deadline, "node2 did not come back after heal"
        time.sleep(1)


def test_kill_shows_unreachable_within_10s_and_up_restores(lab: Path) -> None:
    res = run_fleet(lab, "lab.kill", "node3")
    assert res.code == 0, res.stderr
    assert not lab_service.node_inits(LabNode(3))
    start = time.monotonic()
    rows = status_by_name(lab)
    elapsed = time.monotonic() - start
    assert elapsed < 10, elapsed
    assert rows["node3"]["reachable"] is False and rows["node3"]["error"]
    assert rows["node1"]["reachable"] is True and rows["node2"]["reachable"] is True

    # a power cut leaves mounts and links behind; lab.up finds and replaces them
    assert str(LabNode(3).root) in Path("/proc/self/mountinfo").read_text()
    up = run_fleet(lab, "lab.up", "--nodes", "3")
    assert up.code == 0, up.stderr
    assert status_by_name(lab)["node3"]["reachable"] is True
    # a new node is bare Debian: none of what dynos and routers need is there until nodes.provision installs it
    what = "for p in systemd-container haproxy nftables python3-psutil zstd rsync; do dpkg-query -W -f '${Status} ' $p 2>/dev/null | grep -q 'install ok installed' && echo $p; done; true"
    assert _ssh(lab, "node3", "sh", "-c", what).split() == []
    assert _ssh(lab, "node3", "sh", "-c", ". /etc/os-release; echo $VERSION_CODENAME").strip() == "bookworm"
    prov = run_fleet(lab, "nodes.provision", "--node", "node3", timeout=600)
    assert prov.code == 0, prov.stdout[-2000:]
    # node3 is not a router (node1 is): haproxy only there
    assert _ssh(lab, "node3", "sh", "-c", what).split() == ["systemd-container", "nftables", "python3-psutil", "zstd", "rsync"]
    assert _ssh(lab, "node1", "sh", "-c", what).split() == ["systemd-container", "haproxy", "nftables", "python3-psutil", "zstd", "rsync"]


def test_bad_input_changes_nothing(lab: Path, tmp_path: Path) -> None:
    config_before = (lab / "config.yml").read_text()
    bad = tmp_path / "bad.yml"
    bad.write_text("all:\n  children:\n    dyno_hosts:\n      hosts:\n        n1: {ansible_host: 10.0.0.1, ansible_port: nope}\n")
    res = run_fleet(lab, "inventory.use", str(bad))
    assert res.code != 0
    assert res.stderr.strip() == (
        f"fleet: error: {bad}: all.children.dyno_hosts.hosts.n1.ansible_port: must be a whole number from 1 to 65535, got 'nope'"
    )
    assert (lab / "config.yml").read_text() == config_before

    res = run_fleet(lab, "lab.kill", "node9")
    assert res.code != 0 and "node9 is not running" in res.stderr
    res = run_fleet(lab, "lab.kill", "router")
    assert res.code != 0 and "not a lab node name" in res.stderr
    res = run_fleet(lab, "nodes.status", "--node", "ghost")
    assert res.code != 0 and "no host named 'ghost'" in res.stderr


def test_lab_commands_wait_their_turn(lab: Path) -> None:
    with lab_service.lab_lock("lab.up (held by the test)"):
        res = run_fleet(lab, "lab.partition", "node2")
    assert res.code == 4, res.stderr
    assert res.stderr.strip() == (
        f"fleet: error: the lab is busy: `fleet lab.up (held by the test)` (pid {os.getpid()}); wait for it to finish and try again"
    )
    assert lab_service.node_status(LabNode(2)).link == "up"


def test_lab_needs_root_and_nspawn(lab: Path) -> None:
    nobody_home = tempfile.mkdtemp(prefix="fleet-nobody-")
    nobody = pwd.getpwnam("nobody")
    os.chown(nobody_home, nobody.pw_uid, nobody.pw_gid)
    try:
        res = subprocess.run(
            ["runuser", "-u", "nobody", "--", FLEET, "lab.up"],
            capture_output=True, text=True, timeout=60, env={**os.environ, "FLEET_HOME": nobody_home},
        )  # fmt: skip
    finally:
        shutil.rmtree(nobody_home)
    assert res.returncode == 3, res.stderr
    assert (
        res.stderr.strip()
        == "fleet: error: the lab needs root (it mounts filesystems and boots containers); run it as root, e.g. with sudo"
    )
    res2 = run_fleet(lab, "lab.up", env={"PATH": str(Path(FLEET).parent)})
    assert res2.code == 3
    assert "systemd-nspawn is missing; install it with `apt-get install systemd-container`" in res2.stderr


def test_audit_log_records_who_what_where(lab: Path) -> None:
    res = run_fleet(lab, "audit", "--json", "--limit", "100")
    assert res.code == 0, res.stderr
    entries = res.json()
    assert isinstance(entries, list)
    commands = [(e["command"], e["outcome"]) for e in entries]
    assert ("lab.up", "ok") in commands and ("nodes.provision", "ok") in commands
    assert ("lab.kill", "ok") in commands and ("inventory.use", "failed") in commands
    prov = next(e for e in entries if e["command"] == "nodes.provision")
    assert prov["source"] == "task" and prov["actor"] and prov["client"] and prov["at"]
