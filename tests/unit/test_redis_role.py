"""roles/redis: its firewall template rendered as Ansible renders it (and checked by `nft -c` where this machine can), its
tasks, its wiring into site.yml, and the dyno firewall letting dynos reach the add-ons' ports: the same range as
fleet.addons.redis.PORTS."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from fleet.addons.redis import PORTS

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles/redis"


def render(template: Path, **variables: Any) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(template.parent)), trim_blocks=True, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined)  # fmt: skip
    return env.get_template(template.name).render(**variables)


def rules(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("add rule")]


def nft_check(text: str, tmp_path: Path) -> None:
    """`nft -c` (parse and validate, change nothing) when nft is here and we are root; else nothing."""
    nft = shutil.which("nft")
    if nft is None or os.geteuid() != 0:
        return
    path = tmp_path / "check.nft"
    path.write_text(text)
    res = subprocess.run([nft, "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)
    if "Operation not permitted" in res.stderr or "Could not process rule: No such file" in res.stderr:
        return  # no nf_tables here (a container without it): the syntax was not checked
    assert res.returncode == 0, res.stderr


def test_firewall_opens_the_add_on_ports_to_loopback_and_the_client_networks_only(tmp_path: Path) -> None:
    text = render(ROLE / "templates/redis-net.nft.j2", fleet_redis_ports="16379-16999",
                  fleet_redis_client_networks=["169.254.77.0/24", "169.254.128.0/18", "2001:db8::/64"])  # fmt: skip
    assert "table inet fleet_redis {" in text and "flush chain inet fleet_redis input" in text
    assert rules(text) == [
        "add rule inet fleet_redis input iif lo accept",
        "add rule inet fleet_redis input ip saddr 169.254.77.0/24 tcp dport 16379-16999 accept",
        "add rule inet fleet_redis input ip saddr 169.254.128.0/18 tcp dport 16379-16999 accept",
        "add rule inet fleet_redis input ip6 saddr 2001:db8::/64 tcp dport 16379-16999 accept",
        "add rule inet fleet_redis input tcp dport 16379-16999 drop",
    ]
    nft_check(text, tmp_path)


def test_defaults_match_fleets_port_range_and_name_the_client_networks() -> None:
    defaults = yaml.safe_load((ROLE / "defaults/main.yml").read_text())
    assert defaults["fleet_redis_ports"] == f"{PORTS.start}-{PORTS.stop - 1}"
    assert defaults["fleet_redis_client_networks"] == "{{ [fleet_host_network, fleet_dyno_network] }}"
    assert defaults["fleet_redis_packages"] == ["redis-server", "nftables"]


def test_dynos_may_reach_the_add_on_ports_when_there_are_add_on_hosts(tmp_path: Path) -> None:
    defaults = yaml.safe_load((ROOT / "roles/dyno_host/defaults/main.yml").read_text())
    expr = defaults["fleet_dyno_open_ports"]
    assert f"fleet_redis_ports | default('{PORTS.start}-{PORTS.stop - 1}')" in expr
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    value = env.from_string(expr).render(groups={"addon_hosts": ["db1"]})
    assert value == "[80, 443, 5432, '16379-16999']"
    assert env.from_string(expr).render(groups={}) == "[80, 443]"
    text = render(ROOT / "roles/dyno_host/templates/dyno-net.nft.j2", fleet_dyno_network="169.254.128.0/18",
                  fleet_protected_addresses=["169.254.77.1", "169.254.77.13"], fleet_dyno_open_ports=[80, 443, 5432, "16379-16999"],
                  fleet_dyno_user="dyno", fleet_dyno_uid=1500)  # fmt: skip
    assert 'add rule inet fleet forward iifname "fd*" ip daddr @fleet_hosts tcp dport != { 80, 443, 5432, 16379-16999 } drop' in rules(text)
    assert 'add rule inet fleet input iifname "fd*" tcp dport { 80, 443, 5432, 16379-16999 } accept' in rules(text)
    nft_check(text, tmp_path)


def test_site_runs_the_role_on_addon_hosts() -> None:
    plays = yaml.safe_load((ROOT / "roles/site.yml").read_text())
    [play] = [p for p in plays if p["hosts"] == "addon_hosts"]
    assert play["roles"] == ["addon_host", "postgres", "redis"]  # the servers may bind the fleet address before it is up


def test_addon_hosts_let_servers_bind_the_fleet_address_before_the_network_has_it() -> None:
    """A reboot: PostgreSQL and Redis start before networkd gives the host its address (seen on the lab)."""
    [write, apply] = yaml.safe_load((ROOT / "roles/addon_host/tasks/main.yml").read_text())
    copy = write["ansible.builtin.copy"]
    assert copy["dest"].startswith("/etc/sysctl.d/") and copy["mode"] == "0644"
    settings = [line for line in copy["content"].splitlines() if line and not line.startswith("#")]
    assert settings == ["net.ipv4.ip_nonlocal_bind = 1", "net.ipv6.ip_nonlocal_bind = 1"]
    assert apply["ansible.builtin.command"]["argv"] == ["sysctl", "-q", "-p", copy["dest"]]


def tasks() -> list[dict[str, Any]]:
    loaded = yaml.safe_load((ROLE / "tasks/main.yml").read_text())
    assert isinstance(loaded, list)
    return loaded


def task(name: str) -> dict[str, Any]:
    [found] = [t for t in tasks() if t["name"] == name]
    return found


def test_every_task_is_named_and_the_host_network_is_asserted_first() -> None:
    assert all(t.get("name") for t in tasks())
    assert tasks()[0]["name"] == "The host network is set (fleet_host_network in the inventory)"
    assert "fleet_host_network is defined" in tasks()[0]["ansible.builtin.assert"]["that"]


def test_the_packages_own_server_is_masked_before_the_package_and_stopped_after() -> None:
    names = [t["name"] for t in tasks()]
    mask = task("The package's single server (redis-server.service) is masked")["ansible.builtin.file"]
    assert mask == {"src": "/dev/null", "dest": "/etc/systemd/system/redis-server.service", "state": "link", "force": True}
    install = "Redis and nftables (Debian's packages; redis-server brings the redis user and redis-server@.service)"
    stop = "The package's single server is not running (a host that had it before)"
    assert names.index("The package's single server (redis-server.service) is masked") < names.index(install) < names.index(stop)
    assert task(stop)["ansible.builtin.systemd"] == {"name": "redis-server.service", "state": "stopped"}


def test_the_template_unit_is_unmasked_and_the_data_dir_is_redis_own() -> None:
    unmask = task("Unmask redis-server@.service")
    assert unmask["ansible.builtin.file"] == {"path": "/etc/systemd/system/redis-server@.service", "state": "absent"}
    assert "lnk_source == '/dev/null'" in unmask["when"]
    data = task("The add-ons' data directories live here (redis-server@.service may write data only under /var/lib/redis)")
    assert data["ansible.builtin.file"] == {"path": "/var/lib/redis", "state": "directory", "owner": "redis", "group": "redis",
                                            "mode": "0750"}  # fmt: skip


def test_the_firewall_is_loaded_at_boot_by_its_own_unit() -> None:
    unit = (ROLE / "files/fleet-redis-net.service").read_text()
    assert "ExecStart=/usr/sbin/nft -f /etc/fleet/redis-net.nft\n" in unit and "WantedBy=multi-user.target\n" in unit
    assert task("Add-on ports open to the client networks only")["ansible.builtin.template"]["dest"] == "{{ fleet_config_dir }}/redis-net.nft"
    assert task("The add-on firewall is loaded, and at boot")["ansible.builtin.systemd"] == {
        "name": "fleet-redis-net.service", "state": "started", "enabled": True}  # fmt: skip


@pytest.mark.parametrize("handler", ["Reload systemd", "Reload redis network"])
def test_handlers_exist_for_what_tasks_notify(handler: str) -> None:
    handlers = yaml.safe_load((ROLE / "handlers/main.yml").read_text())
    assert handler in [h["name"] for h in handlers]
    assert any(t.get("notify") == handler for t in tasks())
