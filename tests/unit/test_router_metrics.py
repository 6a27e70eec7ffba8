"""The routers' stats page and Prometheus exporter: on each router's management address, behind basic auth.

The password is made once in $FLEET_HOME/router-metrics.secret (0600); it reaches routers on stdin (router sync)
or in a 0600 extra-vars file (provisioning), and shows nowhere else: not in --dry-run lines, logs, errors or a
command line. The role and fleet render the same haproxy.cfg for each router, checked here with Ansible itself.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fleet.context import Fleet
from fleet.errors import ConfigError, UsageError
from fleet.exec.base import CommandResult
from fleet.exec.recording import Call, RecordingExecutor
from fleet.inventory import parse_router_metrics_addresses
from fleet.provision import playbook_argv
from fleet.router import METRICS_USER, MetricsAccess, RouterApp, Server, app_for_line, render_config, routes_json
from fleet.services import nodes
from fleet.services import router as router_service
from fleet.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "router"
PASSWORD = "unit-test-password-0123456789"
APPS = [
    RouterApp("py1", ("py1.fleet.test", "*.apps.example.org"), 1, False, (Server("web.1.v1", "192.0.2.12", 20000),)),
    RouterApp("zzz", ("zzz.fleet.test",), 0),
]
# r1 has an inventory address, r2 none (its name is its address, as for Ansible), r3 sets the role's variable;
# d1 is no router; the routers' group sets nothing
INVENTORY = """
all:
  children:
    dyno_hosts:
      hosts:
        d1: {ansible_host: 192.0.2.12}
    router_hosts:
      hosts:
        r1: {ansible_host: 192.0.2.11}
        r2:
        r3: {ansible_host: 192.0.2.13, fleet_router_metrics_address: "fd00::13"}
"""
ADDRESSES = {"r1": "192.0.2.11", "r2": "r2", "r3": "fd00::13"}


def section(cfg: str, header: str) -> list[str]:
    """The lines of one section of haproxy.cfg (``frontend metrics``, ``userlist fleet-metrics``), without its header."""
    lines = cfg.splitlines()
    start = lines.index(header) + 1
    end = next((i for i in range(start, len(lines)) if lines[i] and not lines[i].startswith(" ")), len(lines))
    return [line.strip() for line in lines[start:end] if line.strip() and not line.strip().startswith("#")]


# -- the rendered config -----------------------------------------------------------------------
def test_metrics_listen_on_the_management_address_only() -> None:
    cfg = render_config(APPS, MetricsAccess("192.0.2.11", PASSWORD))
    assert section(cfg, "frontend metrics")[0] == "bind 192.0.2.11:8404 transparent"  # see test_metrics_auth.py
    assert "bind :8404" not in cfg
    assert section(cfg, "frontend http")[0] == "bind :80"  # the apps' traffic still comes in on every address
    assert "    bind fd00::13:8404 transparent\n" in render_config(
        APPS, MetricsAccess("fd00::13", PASSWORD)
    )  # haproxy: last ':' is the port
    assert "    bind 192.0.2.11:9100 transparent\n" in render_config(
        APPS, MetricsAccess("192.0.2.11", PASSWORD), metrics_port=9100
    )


def test_stats_and_metrics_answer_only_with_the_password() -> None:
    cfg = render_config(APPS, MetricsAccess("192.0.2.11", PASSWORD))
    assert section(cfg, "userlist fleet-metrics") == [f"user {METRICS_USER} insecure-password {PASSWORD}"]
    frontend = section(cfg, "frontend metrics")
    auth = "http-request auth realm fleet-router unless { http_auth(fleet-metrics) }"
    # the auth rule comes before the exporter and the stats page: neither answers before it
    assert frontend == [
        "bind 192.0.2.11:8404 transparent",
        auth,
        "http-request use-service prometheus-exporter if { path /metrics }",
        "stats enable",
        "stats uri /stats",
        "stats refresh 10s",
    ]
    assert cfg.count(PASSWORD) == 1 and METRICS_USER == "fleet"


def test_an_error_in_the_metrics_part_is_the_routers_own_not_the_last_apps() -> None:
    cfg = render_config(APPS, MetricsAccess("192.0.2.11", PASSWORD))
    lines = cfg.splitlines()
    user_line = next(i for i, line in enumerate(lines, 1) if "insecure-password" in line)
    bind_line = next(i for i, line in enumerate(lines, 1) if line == "    bind 192.0.2.11:8404 transparent")
    assert app_for_line(cfg, user_line) is None and app_for_line(cfg, bind_line) is None
    assert app_for_line(cfg, next(i for i, line in enumerate(lines, 1) if "backend app-zzz" in line)) == "zzz"


@pytest.mark.parametrize("address", ["", "0.0.0.0 accept-proxy", "192.0.2.1\nuserlist x", "{{ ansible_host }}", "a b"])
def test_metrics_address_must_be_one_address(address: str) -> None:
    with pytest.raises(UsageError):
        MetricsAccess(address, PASSWORD)


@pytest.mark.parametrize(
    "password", ["", "short", "x" * 129, "pass word-0123456789", "pw-0123456789abcdef\n", 'quote"0123456789abc']
)
def test_password_must_be_one_haproxy_word(password: str) -> None:
    with pytest.raises(UsageError) as err:
        MetricsAccess("192.0.2.11", password)
    assert password not in str(err.value) or not password


def test_password_is_not_in_a_repr_and_is_scrubbed() -> None:
    access = MetricsAccess("192.0.2.11", PASSWORD)
    assert PASSWORD not in repr(access) and "192.0.2.11" in repr(access)
    assert access.scrub(f"parsing [x:67] : user fleet insecure-password {PASSWORD}") == (
        "parsing [x:67] : user fleet insecure-password ***"
    )


# -- the address each router binds: the role's default, or its own variable, from the same inventory -----------
def test_router_metrics_address_is_the_inventory_address_unless_set() -> None:
    assert parse_router_metrics_addresses(INVENTORY, "inv.yml") == ADDRESSES


def test_router_metrics_address_set_for_a_group_applies_to_its_hosts() -> None:
    text = INVENTORY.replace("    router_hosts:\n", "    router_hosts:\n      vars: {fleet_router_metrics_address: 10.0.0.1}\n")
    assert parse_router_metrics_addresses(text, "inv.yml") == {"r1": "10.0.0.1", "r2": "10.0.0.1", "r3": "fd00::13"}


@pytest.mark.parametrize("bad", ['"10.0.0.1 ssl"', "[10.0.0.1]", "8404", '"{{ ansible_host }}"'])
def test_a_bad_router_metrics_address_names_its_key(bad: str) -> None:
    text = INVENTORY.replace('fleet_router_metrics_address: "fd00::13"', f"fleet_router_metrics_address: {bad}")
    with pytest.raises(ConfigError) as err:
        parse_router_metrics_addresses(text, "inv.yml")
    assert "all.children.router_hosts.hosts.r3.fleet_router_metrics_address" in str(err.value)


# -- router sync: each router its own config, written 0640 root:haproxy, the password on stdin only --------------
@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    inv = tmp_path / "inv.yml"
    inv.write_text(INVENTORY)
    return Settings(home=tmp_path / "home", inventory_override=str(inv))


def answer(haproxy_check: CommandResult | None = None) -> RecordingExecutor:
    def respond(call: Call) -> CommandResult:
        if call.argv[:2] == ("haproxy", "-c") and haproxy_check is not None:
            return haproxy_check
        out = "reloaded\n" if "install" in call.argv else ""
        return CommandResult(call.host, call.argv, 0, out, "")

    return RecordingExecutor(respond)


def candidate_writes(ex: RecordingExecutor) -> dict[str, Call]:
    return {c.host: c for c in ex.calls if c.argv[:2] == ("sh", "-c") and router_service.CANDIDATE in c.argv}


def test_sync_renders_each_routers_own_config_and_shows_no_password(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    ex = answer()
    fleet = Fleet(settings, ex)
    try:
        assert router_service.sync(fleet) == {"r1": "reloaded", "r2": "reloaded", "r3": "reloaded"}
    finally:
        fleet.close()
    secret = settings.home / "router-metrics.secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    password = secret.read_text().strip()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", password)  # secrets.token_urlsafe(32)
    writes = candidate_writes(ex)
    assert sorted(writes) == ["r1", "r2", "r3"]
    for host, call in writes.items():
        assert call.argv[-2:] == ("0640", "0:haproxy")  # root:haproxy, not world-readable
        assert call.stdin == render_config([], MetricsAccess(ADDRESSES[host], password))
    # what --dry-run prints, and every log line: no password
    shown = [c.describe() for c in ex.calls] + [r.getMessage() for r in caplog.records]
    assert shown and not [line for line in shown if password in line]
    assert not [c for c in ex.calls if any(password in a for a in c.argv)]  # never on a command line

    again = answer()
    fleet = Fleet(settings, again)
    try:
        router_service.sync(fleet)
    finally:
        fleet.close()
    assert secret.read_text().strip() == password  # made once
    assert f"insecure-password {password}\n" in (candidate_writes(again)["r1"].stdin or "")


def test_a_rejected_config_is_described_without_the_password(settings: Settings) -> None:
    settings.ensure_home()
    (settings.home / "router-metrics.secret").write_text(PASSWORD + "\n")
    os.chmod(settings.home / "router-metrics.secret", 0o600)
    alert = (
        f"[ALERT]    (1) : config : parsing [/etc/haproxy/haproxy.cfg.fleet-new:67] : 'user fleet insecure-password {PASSWORD}'\n"
    )
    fleet = Fleet(settings, answer(CommandResult("r1", ("haproxy",), 1, "", alert)))
    try:
        with pytest.raises(router_service.RouterConfigRejected) as err:
            router_service.sync(fleet)
    finally:
        fleet.close()
    assert PASSWORD not in str(err.value)
    assert str(err.value).startswith("haproxy rejected the new config (in the router's own part)")
    assert "insecure-password ***" in str(err.value)


def test_a_secret_file_others_can_read_is_made_0600(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    settings.ensure_home()
    secret = settings.home / "router-metrics.secret"
    secret.write_text(PASSWORD + "\n")
    os.chmod(secret, 0o644)
    assert router_service.metrics_password(Fleet(settings, RecordingExecutor())) == PASSWORD
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert PASSWORD not in caplog.text


@pytest.mark.parametrize("content", ["", "short\n", "two words-0123456789\n"])
def test_a_malformed_secret_file_is_refused_without_showing_it(settings: Settings, content: str) -> None:
    settings.ensure_home()
    (settings.home / "router-metrics.secret").write_text(content)
    with pytest.raises(ConfigError) as err:
        router_service.metrics_password(Fleet(settings, RecordingExecutor()))
    assert "router-metrics.secret" in str(err.value) and "delete it" in str(err.value)
    assert not content.strip() or content.strip() not in str(err.value)


# -- provisioning: the password in a 0600 extra-vars file, gone afterwards, never on the command line ------------
def test_playbook_argv_names_the_extra_vars_file_only() -> None:
    argv = playbook_argv("ansible-playbook", Path("inv.yml"), ("r1",), True, Path("/home/op/.fleet/ansible/tmp/ev.json"))
    assert argv[4:6] == ("--extra-vars", "@/home/op/.fleet/ansible/tmp/ev.json")
    assert argv[-3:] == ("r1", "--check", "--diff")


FAKE_PLAYBOOK = """#!/bin/sh
# records its argv and its extra-vars file (mode and content), then answers like ansible-playbook
for a in "$@"; do echo "$a"; done > "$RECORD.argv"
f=$(echo "$5" | cut -c2-)
stat -c %a "$f" > "$RECORD.mode"
cat "$f" > "$RECORD.vars"
echo "TASK [router : Router configuration] ***"
echo "changed: [r1]"
echo "PLAY RECAP ***"
echo "r1 : ok=3 changed=1 unreachable=0 failed=0"
"""


def test_provision_passes_the_password_in_a_0600_file_it_removes(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "ansible-playbook"
    fake.write_text(FAKE_PLAYBOOK)
    fake.chmod(0o755)
    record = tmp_path / "record"
    monkeypatch.setattr(nodes, "ansible_playbook_path", lambda: str(fake))
    monkeypatch.setenv("RECORD", str(record))
    lines: list[str] = []
    fleet = Fleet(settings, RecordingExecutor())
    try:
        result = nodes.provision(fleet, check=True, on_line=lines.append)
    finally:
        fleet.close()
    assert result.changed == 1
    password = (settings.home / "router-metrics.secret").read_text().strip()
    argv = record.with_suffix(".argv").read_text().splitlines()
    assert argv[3] == "--extra-vars" and argv[4].startswith(f"@{settings.home / 'ansible' / 'tmp'}/extra-vars-")
    assert not [a for a in argv if password in a]
    assert record.with_suffix(".mode").read_text().strip() == "600"
    assert json.loads(record.with_suffix(".vars").read_text()) == {
        "fleet_router_metrics_password": password,
        "fleet_dyno_network": "169.254.128.0/18",  # not secret, but fleet's setting: the roles get it the same way
    }
    assert not Path(argv[4][1:]).exists()  # removed once ansible-playbook is done
    assert lines and not [line for line in lines if password in line]


def test_provision_refuses_a_bad_metrics_address_before_ansible_runs(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    Path(str(settings.inventory_override)).write_text(INVENTORY.replace('"fd00::13"', '"fd00::13 transparent"'))
    monkeypatch.setattr(nodes, "ansible_playbook_path", lambda: pytest.fail("ansible-playbook ran"))
    fleet = Fleet(settings, RecordingExecutor())
    try:
        with pytest.raises(ConfigError, match="fleet_router_metrics_address"):
            nodes.provision(fleet)
    finally:
        fleet.close()


# -- the router role ---------------------------------------------------------------------------------------
def role_tasks() -> dict[str, dict[str, object]]:
    return {str(t["name"]): t for t in yaml.safe_load((ROLE / "tasks" / "main.yml").read_text())}


def role_task(module: str, name_start: str) -> dict[str, object]:
    return next(t for name, t in role_tasks().items() if module in t and name.startswith(name_start))


def test_role_writes_the_config_0640_root_haproxy_and_never_shows_its_diff() -> None:
    task = role_task("ansible.builtin.template", "Router configuration")
    args = task["ansible.builtin.template"]
    assert isinstance(args, dict) and args["dest"] == "/etc/haproxy/haproxy.cfg"
    assert (args["owner"], args["group"], args["mode"]) == ("root", "haproxy", "0640")
    assert task["diff"] is False  # `nodes.provision --check` runs ansible-playbook with --diff
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert defaults["fleet_router_metrics_address"] == "{{ ansible_host | default(inventory_hostname) }}"
    assert "fleet_router_metrics_password" not in defaults


ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


def run_role_template(tmp: Path, extra_vars: dict[str, object], apps: list[RouterApp]) -> subprocess.CompletedProcess[str]:
    """The role's own defaults, template, password check and template task (to a temp dir), run by Ansible on
    this machine for the routers of INVENTORY, with fleet's extra-vars file and --diff as `nodes.provision --check`."""
    role = tmp / "roles" / "router"
    (role / "tasks").mkdir(parents=True)
    (role / "defaults").symlink_to(ROLE / "defaults")
    (role / "templates").symlink_to(ROLE / "templates")
    template = json.loads(json.dumps(role_task("ansible.builtin.template", "Router configuration")))
    args = template["ansible.builtin.template"]
    for key in ("owner", "group", "validate"):  # this machine's haproxy group and haproxy -c are not the point here
        args.pop(key)
    args["dest"] = str(tmp / "out" / "{{ inventory_hostname }}.cfg")
    template.pop("notify")
    tasks = [
        {
            "name": "Routes",
            "ansible.builtin.set_fact": {"fleet_router_apps": "{{ lookup('ansible.builtin.file', routes) | from_json }}"},
        },
        role_task("ansible.builtin.assert", "The metrics password"),
        template,
    ]
    (role / "tasks" / "main.yml").write_text(yaml.safe_dump(tasks))
    (tmp / "play.yml").write_text(yaml.safe_dump([{"hosts": "router_hosts", "gather_facts": False, "roles": ["router"]}]))
    (tmp / "inv.yml").write_text(INVENTORY)
    (tmp / "routes.json").write_text(routes_json(apps))
    (tmp / "out").mkdir()
    (tmp / "ansible").mkdir()
    env = {
        **os.environ,
        "ANSIBLE_ROLES_PATH": str(tmp / "roles"),
        "ANSIBLE_HOME": str(tmp / "ansible"),
        "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible" / "tmp"),
        "ANSIBLE_REMOTE_TEMP": str(tmp / "ansible" / "remote"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
    }
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "routes": str(tmp / "routes.json")}
    with nodes.extra_vars_file(tmp / "ansible", {**extra_vars, **local}) as extra:
        argv = [str(ANSIBLE_PLAYBOOK), "-i", str(tmp / "inv.yml"), str(tmp / "play.yml"), "--extra-vars", f"@{extra}", "--diff"]
        return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.skipif(not ANSIBLE_PLAYBOOK.exists(), reason="ansible-playbook is not installed beside this Python")
def test_ansible_renders_each_router_the_same_config_as_fleet(tmp_path: Path) -> None:
    first = run_role_template(tmp_path / "first", {"fleet_router_metrics_password": PASSWORD}, APPS)
    assert first.returncode == 0, first.stdout + first.stderr
    for host, address in ADDRESSES.items():
        as_role = (tmp_path / "first" / "out" / f"{host}.cfg").read_text()
        assert as_role == render_config(APPS, MetricsAccess(address, PASSWORD)), host
    assert "changed: [r1]" in first.stdout and PASSWORD not in first.stdout + first.stderr  # --diff shows no config


@pytest.mark.skipif(not ANSIBLE_PLAYBOOK.exists(), reason="ansible-playbook is not installed beside this Python")
@pytest.mark.parametrize("extra", [{}, {"fleet_router_metrics_password": "short pw"}])
def test_the_role_renders_nothing_without_fleets_password(tmp_path: Path, extra: dict[str, object]) -> None:
    res = run_role_template(tmp_path, extra, APPS)
    assert res.returncode != 0
    assert "fleet nodes.provision passes it" in res.stdout
    assert "short pw" not in res.stdout + res.stderr
    assert not list((tmp_path / "out").iterdir())


def test_the_password_is_made_once_and_leaves_no_temp_file(settings: Settings) -> None:
    fleet = Fleet(settings, RecordingExecutor())
    password = router_service.metrics_password(fleet)
    assert router_service.metrics_password(fleet) == password
    assert sorted(p.name for p in settings.home.iterdir()) == ["router-metrics.secret"]
