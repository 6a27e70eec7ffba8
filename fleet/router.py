"""The router's configuration, rendered from the router role's own template (pure).

``roles/router/templates/haproxy.cfg.j2`` is the one template: the router
role renders it while provisioning and fleet renders it here on every
change, with the same variables (``fleet_router_apps`` and the ports), so
both write the same haproxy.cfg. Names and domains are validated before
they reach it.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from fleet.errors import UsageError

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "roles" / "router" / "templates"
HTTP_PORT = 80
METRICS_PORT = 8404
DEFAULT_DOMAIN = "fleet.test"
LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
DOMAIN_RE = re.compile(rf"(\*\.)?{LABEL}(\.{LABEL})+")


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


def routes_json(apps: list[RouterApp]) -> str:
    """What the router role reads back (/etc/haproxy/fleet-apps.json) to render the same config."""
    return json.dumps([asdict(a) for a in apps], indent=1, sort_keys=True) + "\n"


def render_config(apps: list[RouterApp], http_port: int = HTTP_PORT, metrics_port: int = METRICS_PORT) -> str:
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
    }
    return env.get_template("haproxy.cfg.j2").render(**variables)


def app_for_line(config: str, line_number: int) -> str | None:
    """The app whose part of haproxy.cfg holds ``line_number`` (1-based): names it in errors."""
    app = None
    for i, line in enumerate(config.splitlines(), start=1):
        m = re.match(r"\s*# app: (\S+)$", line)
        if m:
            app = m.group(1)
        if i == line_number:
            return app
    return None
