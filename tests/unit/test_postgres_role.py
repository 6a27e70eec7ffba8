"""roles/postgres: its templates rendered as Ansible renders them, and the role's wiring into site.yml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles/postgres"


def render(name: str, **variables: Any) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROLE / "templates")), trim_blocks=True, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined)  # fmt: skip
    return env.get_template(name).render(**variables)


def test_pg_hba_allows_only_scram_from_the_client_networks_and_peer_for_postgres() -> None:
    text = render("pg_hba.conf.j2", fleet_postgres_client_networks=["169.254.77.0/24", "169.254.128.0/18"])
    rules = [line.split() for line in text.splitlines() if line and not line.startswith("#")]
    assert rules == [
        ["local", "all", "postgres", "peer"],
        ["host", "sameuser", "all", "169.254.77.0/24", "scram-sha-256"],
        ["host", "sameuser", "all", "169.254.128.0/18", "scram-sha-256"],
    ]


def test_fleet_conf_listens_on_localhost_and_the_fleet_address() -> None:
    text = render("fleet.conf.j2", fleet_postgres_listen_address="169.254.77.13", fleet_postgres_port=5432)
    settings = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert settings == ["listen_addresses = 'localhost,169.254.77.13'", "port = 5432", "password_encryption = scram-sha-256"]


def test_defaults_client_networks_are_the_host_and_dyno_networks() -> None:
    defaults = yaml.safe_load((ROLE / "defaults/main.yml").read_text())
    assert defaults["fleet_postgres_client_networks"] == "{{ [fleet_host_network, fleet_dyno_network] }}"
    assert defaults["fleet_postgres_backup_dir"] == "/var/lib/fleet/backups"
    assert defaults["fleet_postgres_listen_address"] == "{{ ansible_host | default(inventory_hostname) }}"


def test_site_runs_the_role_on_addon_hosts() -> None:
    plays = yaml.safe_load((ROOT / "roles/site.yml").read_text())
    assert {"name": "Add-on hosts (PostgreSQL, Redis)", "hosts": "addon_hosts", "gather_facts": False,
            "roles": ["addon_host", "postgres", "redis"]} in plays


def test_backup_dir_is_0700_postgres_and_every_task_is_named() -> None:
    tasks = yaml.safe_load((ROLE / "tasks/main.yml").read_text())
    assert all(t.get("name") for t in tasks)
    backup = next(t for t in tasks if t["name"] == "Backups directory")["ansible.builtin.file"]
    assert backup == {"path": "{{ fleet_postgres_backup_dir }}", "state": "directory", "owner": "postgres", "group": "postgres",
                      "mode": "0700"}  # fmt: skip
    # commands that only look report no change: a second run changes nothing
    looks = [t for t in tasks if "ansible.builtin.shell" in t or "ansible.builtin.command" in t]
    assert looks and all(t.get("changed_when") is False for t in looks)
