"""The router's configuration, rendered from the router role's own template (pure).

``roles/router/templates/haproxy.cfg.j2`` is the one template: the router
role renders it while provisioning and fleet renders it here on every
change, with the same variables (``fleet_router_apps``, the ports, the
router's management address and the metrics password), so both write the
same haproxy.cfg. Names, domains and addresses are validated before they
reach it.

The config holds the metrics password (HAProxy's stats page and Prometheus
exporter answer only with it): it is written on routers 0640 root:haproxy,
and anything fleet shows of a config (a rejection by ``haproxy -c``) goes
through ``MetricsAccess.scrub`` first.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from fleet.errors import UsageError
from fleet.model import ADDRESS_RE

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "roles" / "router" / "templates"
HTTP_PORT = 80
METRICS_PORT = 8404
ADMIN_SOCKET = "/run/haproxy/admin.sock"  # the template's stats socket; fleet waits on it after a reload
MASTER_SOCKET = "/run/haproxy-master.sock"  # Debian's haproxy.service starts the master with -S here
DEFAULT_DOMAIN = "fleet.test"
LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
DOMAIN_RE = re.compile(rf"(\*\.)?{LABEL}(\.{LABEL})+")
METRICS_USER = "fleet"  # the template's userlist; the password is $FLEET_HOME/router-metrics.secret
METRICS_PASSWORD_RE = re.compile(r"[A-Za-z0-9_-]{16,128}")  # secrets.token_urlsafe: one haproxy.cfg word, no quoting


@dataclass(frozen=True)
class MetricsAccess:
    """Where a router's stats page and Prometheus exporter listen, and the password they ask for.

    ``address`` is the router's management address (``fleet_router_metrics_address``, by default the
    host's inventory address); the password never shows in a repr.
    """

    address: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        if not ADDRESS_RE.fullmatch(self.address):
            raise UsageError(f"{self.address!r} is not an IP address or DNS name for the router's metrics to listen on")
        if not METRICS_PASSWORD_RE.fullmatch(self.password):
            raise UsageError("the router's metrics password must be 16 to 128 of [A-Za-z0-9_-] (not shown)")

    def scrub(self, text: str) -> str:
        """``text`` (a config, haproxy's output about it) with the password replaced by ***."""
        return text.replace(self.password, "***")


def validate_domain(domain: str) -> str:
    d = domain.strip().lower().rstrip(".")
    if len(d) > 253 or not DOMAIN_RE.fullmatch(d):
        raise UsageError(
            f"{domain!r} is not a valid hostname: use labels of letters, digits and '-' separated by dots, "
            "optionally starting with '*.' (e.g. www.example.com, *.example.com)"
        )
    return d


@dataclass(frozen=True)
class Server:
    name: str
    address: str
    port: int


@dataclass(frozen=True)
class RouterApp:
    name: str
    domains: tuple[str, ...]
    web_quantity: int
    maintenance: bool = False
    servers: tuple[Server, ...] = field(default_factory=tuple)
    error_page_url: str = ""  # ERROR_PAGE_URL: the router's error pages frame this page
    maintenance_page_url: str = ""  # MAINTENANCE_PAGE_URL: likewise for maintenance mode


#: The router's own error pages: (code, log description, title). The h13 page also answers H12 (both are
#: HAProxy 502s: a dyno that closed, or fleet-timing's first-byte deadline), so its title is the generic one.
ERROR_PAGES = {
    "h10": ("H10", "App crashed", "Application error"),
    "h12": ("H12", "Request timeout", "Request timeout"),
    "h13": ("H13", "Connection closed without response", "Application error"),
    "h14": ("H14", "No web dynos running", "Application error"),
}
URL_RE = re.compile(r"https?://[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]+")


def valid_page_url(url: str) -> bool:
    """An error/maintenance page URL safe to put in an HTML attribute and an HTTP response."""
    return bool(URL_RE.fullmatch(url)) and len(url) <= 2048


def _framed(title: str, url: str) -> str:
    src = html.escape(url, quote=True)
    return (
        f"<!DOCTYPE html><html><head><title>{title}</title><style>html,body,iframe{{margin:0;border:0;width:100%;height:100%}}</style>"
        f'</head><body><iframe src="{src}"></iframe></body></html>\n'
    )


def app_error_file(kind: str, url: str) -> str:
    """An errorfile (raw HTTP response) framing the app's ERROR_PAGE_URL, as Heroku's router does."""
    code, desc, title = ERROR_PAGES[kind]
    body = _framed(title, url)
    return (
        "HTTP/1.1 503 Service Unavailable\r\nCache-Control: no-cache\r\nConnection: close\r\nContent-Type: text/html\r\n"
        f'X-Fleet-Log: at=error code={code} desc="{desc}"\r\n'
        f"Content-Length: {len(body.encode())}\r\n\r\n{body}"
    )


def app_maintenance_page(url: str) -> str:
    return _framed("Offline for maintenance", url)


def app_page_files(app: RouterApp) -> dict[str, str]:
    """Files this app's backend refers to on the router, by path."""
    files = {}
    if app.error_page_url:
        for kind in ERROR_PAGES:
            files[f"/etc/haproxy/errors/app-{app.name}-{kind}.http"] = app_error_file(kind, app.error_page_url)
    if app.maintenance_page_url:
        files[f"/etc/haproxy/errors/app-{app.name}-maintenance.html"] = app_maintenance_page(app.maintenance_page_url)
    return files


def backend_name(app: str) -> str:
    """The app's backend in haproxy.cfg (the template writes ``backend app-NAME``)."""
    return f"app-{app}"


def routes_json(apps: list[RouterApp]) -> str:
    """What the router role reads back (/etc/haproxy/fleet-apps.json) to render the same config."""
    return json.dumps([asdict(a) for a in apps], indent=1, sort_keys=True) + "\n"


def render_config(
    apps: list[RouterApp], metrics: MetricsAccess, http_port: int = HTTP_PORT, metrics_port: int = METRICS_PORT
) -> str:
    """One router's haproxy.cfg (its metrics address is its own): it holds the metrics password, show it scrubbed."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,  # as Ansible's template module
        keep_trailing_newline=True,
        autoescape=False,
    )
    variables: dict[str, Any] = {
        "fleet_router_apps": json.loads(routes_json(apps)),
        "fleet_router_http_port": http_port,
        "fleet_router_metrics_port": metrics_port,
        "fleet_router_metrics_address": metrics.address,
        "fleet_router_metrics_password": metrics.password,
    }
    return env.get_template("haproxy.cfg.j2").render(**variables)


def app_for_line(config: str, line_number: int) -> str | None:
    """The app whose part of haproxy.cfg holds ``line_number`` (1-based): names it in errors.

    Each part starts at a ``# app: NAME`` line; ``# app: -`` starts the router's own.
    """
    app = None
    for i, line in enumerate(config.splitlines(), start=1):
        m = re.match(r"\s*# app: (\S+)$", line)
        if m:
            app = None if m.group(1) == "-" else m.group(1)
        if i == line_number:
            return app
    return None
