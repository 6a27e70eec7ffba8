"""fleet.provision: the ansible-playbook command line, its environment, and PLAY RECAP parsing."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from fleet.provision import ROLES_DIR, SITE_PLAYBOOK, RecapCounts, parse_recap, playbook_argv, playbook_env

PROJECT = Path(__file__).resolve().parents[2]

# ansible-playbook output (ANSIBLE_NOCOLOR=1), trailing spaces as ansible prints them.
RECORDED = """\

PLAY [dyno and router hosts] ***************************************************

TASK [Gathering Facts] *********************************************************
ok: [node1]
ok: [node2]
fatal: [node3]: UNREACHABLE! => {"changed": false, "msg": "Failed to connect to the host via ssh: ssh: connect to host 169.254.77.13 port 22: No route to host", "unreachable": true}

TASK [common : Install base packages] ******************************************
changed: [node1]
fatal: [node2]: FAILED! => {"changed": false, "msg": "No package matching 'haproxyy' is available"}

TASK [common : Create /var/lib/fleet] ******************************************
ok: [node1]

PLAY RECAP *********************************************************************
node1                      : ok=5    changed=2    unreachable=0    failed=0    skipped=1    rescued=0    ignored=0   
node2                      : ok=1    changed=0    unreachable=0    failed=1    skipped=0    rescued=0    ignored=0   
node3                      : ok=0    changed=0    unreachable=1    failed=0    skipped=0    rescued=0    ignored=0   

"""  # noqa: W291


def test_parse_recap_recorded_output() -> None:
    assert parse_recap(RECORDED) == {
        "node1": RecapCounts(ok=5, changed=2, unreachable=0, failed=0, skipped=1, rescued=0, ignored=0),
        "node2": RecapCounts(ok=1, changed=0, unreachable=0, failed=1, skipped=0, rescued=0, ignored=0),
        "node3": RecapCounts(ok=0, changed=0, unreachable=1, failed=0, skipped=0, rescued=0, ignored=0),
    }


def test_parse_recap_keeps_host_order() -> None:
    assert list(parse_recap(RECORDED)) == ["node1", "node2", "node3"]


def test_parse_recap_stops_at_the_first_other_line() -> None:
    output = (
        RECORDED
        + "Playbook run took 0 days, 0 hours, 1 minutes, 12 seconds\n"
        + "node9                      : ok=9    changed=9    unreachable=0    failed=0\n"
    )
    assert list(parse_recap(output)) == ["node1", "node2", "node3"]


def test_parse_recap_uses_the_last_recap() -> None:
    output = RECORDED + "\nPLAY RECAP ****\nnode1 : ok=7 changed=0 unreachable=0 failed=0\n"
    assert parse_recap(output) == {"node1": RecapCounts(ok=7)}


def test_parse_recap_ignores_unknown_counters_and_defaults_missing_ones() -> None:
    output = "PLAY RECAP ***\nnode1 : ok=3 changed=1 frobbed=4\n"
    assert parse_recap(output) == {"node1": RecapCounts(ok=3, changed=1)}


@pytest.mark.parametrize(
    "output",
    [
        "",
        "ERROR! the playbook: roles/site.yml could not be found\n",
        RECORDED.split("PLAY RECAP")[0],
        "PLAY RECAP ***\n\n",
    ],
)
def test_parse_recap_without_a_recap(output: str) -> None:
    assert parse_recap(output) == {}


# -- playbook_argv ----------------------------------------------------------------------------
def test_site_playbook_is_in_the_project() -> None:
    assert SITE_PLAYBOOK == PROJECT / "roles" / "site.yml"
    assert ROLES_DIR == PROJECT / "roles"
    assert SITE_PLAYBOOK.is_file()


def test_playbook_argv_plain() -> None:
    argv = playbook_argv("/opt/venv/bin/ansible-playbook", Path("/home/op/.fleet/inventory.yml"))
    assert argv == ("/opt/venv/bin/ansible-playbook", "-i", "/home/op/.fleet/inventory.yml", str(PROJECT / "roles" / "site.yml"))


def test_playbook_argv_with_limit() -> None:
    argv = playbook_argv("ansible-playbook", Path("inv.yml"), limit=("node1", "node3"))
    assert argv == ("ansible-playbook", "-i", "inv.yml", str(SITE_PLAYBOOK), "--limit", "node1,node3")


def test_playbook_argv_with_check() -> None:
    argv = playbook_argv("ansible-playbook", Path("inv.yml"), check=True)
    assert argv == ("ansible-playbook", "-i", "inv.yml", str(SITE_PLAYBOOK), "--check", "--diff")


def test_playbook_argv_with_limit_and_check() -> None:
    argv = playbook_argv("ansible-playbook", Path("inv.yml"), ("node2",), True)
    assert argv == ("ansible-playbook", "-i", "inv.yml", str(SITE_PLAYBOOK), "--limit", "node2", "--check", "--diff")


# -- playbook_env -----------------------------------------------------------------------------
def test_playbook_env_pins_host_keys(tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    env = playbook_env(known_hosts, tmp_path / "ansible")
    ssh_args = shlex.split(env["ANSIBLE_SSH_ARGS"])
    assert f"UserKnownHostsFile={known_hosts}" in ssh_args
    assert "StrictHostKeyChecking=yes" in ssh_args
    assert ssh_args[ssh_args.index("StrictHostKeyChecking=yes") - 1] == "-o"
    assert ssh_args[ssh_args.index(f"UserKnownHostsFile={known_hosts}") - 1] == "-o"
    assert "StrictHostKeyChecking=no" not in env["ANSIBLE_SSH_ARGS"]
    assert "accept-new" not in env["ANSIBLE_SSH_ARGS"]
    assert env["ANSIBLE_HOST_KEY_CHECKING"] == "True"


def test_playbook_env_paths_and_defaults(tmp_path: Path) -> None:
    home = tmp_path / "ansible"
    env = playbook_env(tmp_path / "known_hosts", home)
    assert env["ANSIBLE_HOME"] == str(home)
    assert env["ANSIBLE_LOCAL_TEMP"] == str(home / "tmp")
    assert env["ANSIBLE_SSH_CONTROL_PATH_DIR"] == str(home / "cp")
    assert env["ANSIBLE_ROLES_PATH"] == str(PROJECT / "roles")
    assert env["ANSIBLE_FORKS"] == "10"
    assert env["ANSIBLE_NOCOLOR"] == "1"
    assert all(isinstance(v, str) for v in env.values())
    assert not home.exists()  # pure: nothing created


def test_playbook_env_forks(tmp_path: Path) -> None:
    assert playbook_env(tmp_path / "kh", tmp_path, forks=3)["ANSIBLE_FORKS"] == "3"


def test_playbook_env_known_hosts_path_with_a_space(tmp_path: Path) -> None:
    # ansible splits ssh_args with shlex.split
    known_hosts = tmp_path / "My Fleet" / "known_hosts"
    ssh_args = shlex.split(playbook_env(known_hosts, tmp_path)["ANSIBLE_SSH_ARGS"])
    assert f"UserKnownHostsFile={known_hosts}" in ssh_args
