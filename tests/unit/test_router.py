"""The router config: one template, valid haproxy.cfg, names and domains checked (pure)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from fleet.errors import UsageError
from fleet.router import (
    ADMIN_SOCKET,
    HTTP_PORT,
    MetricsAccess,
    RouterApp,
    Server,
    app_for_line,
    backend_name,
    render_config,
    routes_json,
    validate_domain,
)
from fleet.services.router import describe_rejection
from tests.local_haproxy import local_config

ROOT = Path(__file__).resolve().parents[2]
APPS = [
    RouterApp("py1", ("py1.fleet.test", "www.example.com", "*.apps.example.org"), 2, False,
              (Server("web.1", "169.254.77.11", 20000), Server("web.2", "169.254.77.12", 20001))),
    RouterApp("idle", ("idle.fleet.test",), 0, False),
    RouterApp("fixing", ("fixing.fleet.test",), 1, True),
]  # fmt: skip
METRICS = MetricsAccess("169.254.77.11", "unit-test-password-0123456789")


def test_render_routes_each_domain_to_its_backend() -> None:
    cfg = render_config(APPS, METRICS)
    assert "    use_backend app-py1 if { var(txn.fleet_host) -m str py1.fleet.test }" in cfg
    assert "    use_backend app-py1 if { var(txn.fleet_host) -m str www.example.com }" in cfg
    assert "    use_backend app-py1 if { var(txn.fleet_host) -m end .apps.example.org }" in cfg
    assert "    server web.2 169.254.77.12:20001 check inter 1s fastinter 200ms fall 2 rise 1" in cfg
    assert "    default_backend fleet-no-such-app" in cfg


# "aaa" sorts first and holds the wildcards; the exact hosts under them, and a longer wildcard, are other apps'
OVERLAPPING = [
    RouterApp("aaa", ("aaa.fleet.test", "*.example.com", "*.shop.example.com"), 1),
    RouterApp("bbb", ("bbb.fleet.test", "www.example.com", "*.eu.shop.example.com"), 1),
    RouterApp("ccc", ("ccc.fleet.test", "cart.shop.example.com"), 1),
]


def routing_rules(cfg: str) -> list[tuple[str, str, str]]:
    """The frontend's use_backend rules, in order: (backend, "str" or "end", domain or suffix)."""
    rule = re.compile(r"    use_backend (\S+) if \{ var\(txn\.fleet_host\) -m (str|end) (\S+) \}")
    return [(m[1], m[2], m[3]) for m in rule.finditer(cfg)]


def first_match(cfg: str, host: str) -> str:
    """The backend HAProxy picks for ``host`` (already lowercased, no port): the first rule that matches."""
    for backend, how, value in routing_rules(cfg):
        if host == value if how == "str" else host.endswith(value):
            return backend
    return "fleet-no-such-app"


def test_exact_hosts_are_tested_before_any_wildcard_and_the_longest_wildcard_first() -> None:
    rules = routing_rules(render_config(OVERLAPPING, METRICS))
    kinds = [how for _, how, _ in rules]
    assert kinds == ["str"] * 5 + ["end"] * 3
    assert [(b, v) for b, how, v in rules if how == "end"] == [
        ("app-bbb", ".eu.shop.example.com"),
        ("app-aaa", ".shop.example.com"),
        ("app-aaa", ".example.com"),
    ]


@pytest.mark.parametrize(
    ("host", "backend"),
    [
        ("www.example.com", "app-bbb"),  # exact, though aaa sorts first and holds *.example.com
        ("cart.shop.example.com", "app-ccc"),  # exact, under two wildcards of another app
        ("x.eu.shop.example.com", "app-bbb"),  # the longest wildcard
        ("x.shop.example.com", "app-aaa"),
        ("x.y.example.com", "app-aaa"),
        ("example.com", "fleet-no-such-app"),
    ],
)
def test_the_most_specific_domain_wins(host: str, backend: str) -> None:
    assert first_match(render_config(OVERLAPPING, METRICS), host) == backend
    assert first_match(render_config(OVERLAPPING[::-1], METRICS), host) == backend  # whatever the apps' order


def test_error_pages_per_backend_state() -> None:
    cfg = render_config(APPS, METRICS)
    backends = {b.split("\n", 1)[0]: b for b in cfg.split("backend ")[1:]}
    assert "fleet-h10.http" in backends["app-py1"] and "fleet-h14.http" not in backends["app-py1"]
    assert "fleet-h14.http" in backends["app-idle"]
    assert 'code=H80 desc=\\"Maintenance mode\\"' in backends["app-fixing"]
    assert "code=H80" not in backends["app-py1"]
    for name in ("app-py1", "app-idle", "app-fixing"):
        assert "errorfile 504 /etc/haproxy/errors/fleet-h12.http" in backends[name]
        assert "errorfile 502 /etc/haproxy/errors/fleet-h13.http" in backends[name]
        assert "    filter lua.fleet-timing 30000 55000\n" in backends[name]
    assert "    timeout server 55s\n" in cfg and "    lua-load-per-thread /etc/haproxy/fleet-router.lua\n" in cfg


def test_same_output_from_the_routes_file_the_role_reads() -> None:
    """The role renders from fleet-apps.json; fleet from RouterApp values: same variables, same text."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(ROOT / "roles/router/templates")), trim_blocks=True, keep_trailing_newline=True
    )
    as_role = env.get_template("haproxy.cfg.j2").render(
        fleet_router_apps=json.loads(routes_json(APPS)),
        fleet_router_http_port=80,
        fleet_router_metrics_port=8404,
        fleet_router_metrics_address="169.254.77.11",
        fleet_router_metrics_password="unit-test-password-0123456789",
    )
    assert as_role == render_config(APPS, METRICS)


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
def test_rendered_config_passes_haproxy_check(tmp_path: Path) -> None:
    rendered = render_config(APPS, METRICS)
    assert f"stats socket {ADMIN_SOCKET} " in rendered  # the socket fleet waits on after a reload
    assert f"\nbackend {backend_name('py1')}\n" in rendered  # the name fleet drains servers of
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(local_config(APPS, tmp_path, HTTP_PORT))
    res = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Configuration file is valid" in res.stdout


@pytest.mark.parametrize("good", ["example.com", "www.example.com", "*.example.com", "a-b.c0.example.io", "WWW.Example.COM."])
def test_valid_domains(good: str) -> None:
    assert validate_domain(good) == good.lower().rstrip(".")


@pytest.mark.parametrize(
    "bad", ["localhost", "exa mple.com", "-x.example.com", "x-.example.com", "*.*.example.com", "a.*.example.com",
            "ex;ample.com", "example.com }", "a" * 64 + ".com", "é.example.com", "example.com\nuse_backend x", ""],
)  # fmt: skip
def test_invalid_domains_are_refused(bad: str) -> None:
    with pytest.raises(UsageError) as err:
        validate_domain(bad)
    assert "is not a valid hostname" in str(err.value)


def test_app_for_line_names_the_app_behind_an_error() -> None:
    cfg = render_config(APPS, METRICS)
    lines = cfg.splitlines()
    n = next(i for i, line in enumerate(lines, 1) if "server web.2" in line)
    assert app_for_line(cfg, n) == "py1"
    assert app_for_line(cfg, 3) is None
    assert app_for_line(cfg, next(i for i, line in enumerate(lines, 1) if "-m end .apps.example.org" in line)) == "py1"
    assert app_for_line(cfg, next(i for i, line in enumerate(lines, 1) if "default_backend" in line)) is None
    msg = describe_rejection(cfg, f"[ALERT]    (1) : config : parsing [/etc/haproxy/haproxy.cfg.fleet-new:{n}] : bad thing\n")
    assert msg.startswith("haproxy rejected the new config (in app py1); the old one keeps serving: [ALERT]")


def test_app_error_and_maintenance_pages_frame_the_apps_urls() -> None:
    from fleet.router import app_page_files, valid_page_url

    app = RouterApp(
        "framed", ("framed.fleet.test",), 1, True, (), 'https://pages.example.com/error?a=1&b="2"', "https://pages.example.com/m"
    )
    files = app_page_files(app)
    assert sorted(files) == [
        f"/etc/haproxy/errors/app-framed-{k}" for k in ("h10.http", "h12.http", "h13.http", "h14.http", "maintenance.html")
    ]
    h12 = files["/etc/haproxy/errors/app-framed-h12.http"]
    head, body = h12.split("\r\n\r\n", 1)
    assert (
        head.startswith("HTTP/1.1 503 Service Unavailable\r\n")
        and 'X-Fleet-Log: at=error code=H12 desc="Request timeout"' in head
    )
    assert f"Content-Length: {len(body.encode())}" in head
    assert '<iframe src="https://pages.example.com/error?a=1&amp;b=&quot;2&quot;">' in body
    cfg = render_config([app], METRICS)
    assert "errorfile 504 /etc/haproxy/errors/app-framed-h12.http" in cfg
    assert "file /etc/haproxy/errors/app-framed-maintenance.html" in cfg
    assert valid_page_url("https://x.example/p") and not valid_page_url("javascript:alert(1)")
    assert not valid_page_url("https://x.example/\nerrorfile 503 /etc/passwd") and not valid_page_url('https://x" y')
