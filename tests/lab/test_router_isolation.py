"""The router on a real lab: one app's domains cannot take another's hosts, and a client cannot forge the log line;
HAProxy's stats page and metrics answer on node1's management address only, and only with fleet's password.

tests/router/test_routing.py and tests/router/test_metrics_auth.py check the same in a local HAProxy in seconds;
these go through `domains.add`, the router sync, the router role and journald on node1.
"""

from __future__ import annotations

import re
import socket
import stat
from pathlib import Path

import pytest

from .conftest import run_fleet
from .test_lab import _ssh
from .test_router import ROUTER, get, router_log, router_metrics

pytestmark = pytest.mark.lab


def test_exact_domains_win_and_a_host_cannot_forge_log_fields(lab: Path) -> None:
    # iso-a sorts first and holds the wildcard; iso-b holds an exact host under it. Neither has web dynos: each
    # answers H14 (503), and the router's log line names the app that answered.
    apps = ("iso-a", "iso-b")
    for app in apps:
        assert run_fleet(lab, "apps.create", app).code == 0
    try:
        assert run_fleet(lab, "domains.add", "-a", "iso-a", "*.iso-example.com").code == 0
        assert run_fleet(lab, "domains.add", "-a", "iso-b", "www.iso-example.com").code == 0

        assert get("www.iso-example.com", "/iso-exact")[0] == 503
        assert router_log(lab, 'path="/iso-exact"').endswith(" app=app-iso-b")
        assert get("x.iso-example.com", "/iso-wild")[0] == 503
        assert router_log(lab, 'path="/iso-wild"').endswith(" app=app-iso-a")

        with socket.create_connection((ROUTER, 80), timeout=10) as client:
            client.sendall(b'GET /iso-forge HTTP/1.1\r\nHost: www.iso-example.com" status=200 dyno=web.9\x1b[2K\r\n\r\n')
            assert client.recv(65536).startswith(b"HTTP/1.1 404 ")
        line = router_log(lab, 'path="/iso-forge"')
        assert re.search(r" host=[a-z0-9.:_-]+ request_id=", line), line
        assert line.count(" status=") == 1 and line.count(" dyno=") == 1 and " status=404 " in line, line
        assert all(" " <= c <= "~" for c in line), repr(line)
    finally:
        for app in apps:
            run_fleet(lab, "apps.destroy", app, "--confirm", app)


def test_router_metrics_answer_on_the_management_address_with_the_password_only(lab: Path) -> None:
    secret = lab / "router-metrics.secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    password = secret.read_text().strip()
    # fleet renders node1's config (router.sync), then the role does (nodes.provision): the same file, so the role
    # changes nothing and the next sync has nothing to do
    sync = run_fleet(lab, "router.sync")
    assert sync.code == 0, sync.stderr
    prov = run_fleet(lab, "nodes.provision", "--node", "node1", timeout=600)
    assert prov.code == 0, prov.stdout[-3000:] + prov.stderr
    task = re.search(r"TASK \[router : Router configuration[^\n]*\n(\w+): \[node1\]", prov.stdout)
    assert task and task.group(1) == "ok", prov.stdout[-3000:]
    again = run_fleet(lab, "router.sync")
    assert again.code == 0 and again.stdout.strip() == "node1: unchanged", again.stdout + again.stderr

    for path in ("/metrics", "/stats"):
        assert router_metrics(lab, path, password=None)[0] == 401
        assert router_metrics(lab, path, password="wrong-password-0123456789")[0] == 401
        status, body = router_metrics(lab, path)
        assert status == 200, body[:500]
    # node1's inventory address only, not its loopback or any other
    listening = _ssh(lab, "node1", "ss", "-Hltn", "sport = :8404").splitlines()
    assert [line.split()[3] for line in listening] == [f"{ROUTER}:8404"], listening
    # the config holds the password: root and the haproxy group read it
    assert _ssh(lab, "node1", "stat", "-c", "%a %U %G", "/etc/haproxy/haproxy.cfg").strip() == "640 root haproxy"
    # and it shows nowhere fleet writes or prints
    audit = run_fleet(lab, "audit", "--limit", "1000", "--json")
    assert audit.code == 0
    for out in (sync, prov, again, audit):
        assert password not in out.stdout + out.stderr
