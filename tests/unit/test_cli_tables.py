"""The commands' tables (fleet/cli/tables.py, rich): on a pipe, the very text the hand-written tables printed
(their code is kept below as the reference, fed the same rows); on a terminal, the same columns and cells drawn
with a header rule. nodes.status and usage are compared with their old exact text in test_probe.py and
test_metering.py."""

from __future__ import annotations

import io
import re
from types import SimpleNamespace as N
from typing import Any

import pytest
from rich.console import Console

from fleet.cli import tables
from fleet.slug.compiler import human_size


# -- the hand-written tables these replace (fleet/tasks before issue 14, item 3), as references ---------------------------
def old_builds(found: list[Any]) -> list[str]:
    out = [f"{'BUILD':6} {'STATUS':10} {'SLUG':13} {'SIZE':9} {'COMMIT':8} {'BUILDPACK':10} CREATED"]
    for b in found:
        out.append(f"{b.number:<6} {b.status:10} {b.slug_id:13} {human_size(b.slug_size):9} {(b.commit[:7] or '-'):8} {b.buildpack:10} {b.created_at}")
    return out


def old_lab(rows: list[Any]) -> list[str]:
    out = [f"{'NODE':8} {'ADDRESS':16} {'POWER':8} {'NETWORK':12}"]
    for r in rows:
        net = {"up": "connected", "down": "partitioned", "absent": "no link"}[r.link]
        out.append(f"{r.name:8} {r.address:16} {'on' if r.running else 'off':8} {net:12}")
    return out


def old_releases(found: list[Any]) -> list[str]:
    return [f"v{r.version:<4} {r.description:40} {r.actor:10} {r.created_at}  {r.status}" for r in found]


def old_addons(found: list[Any], app: str) -> list[str]:
    out = []
    for a in found:
        as_ = ", ".join(f"{x.var}" for x in a.attachments if x.app == app) or "-"
        owner = "" if a.app == app else f" (from {a.app})"
        out.append(f"{a.name:20} {a.service}:{a.plan:8} {as_}{owner}")
    return out


def old_inventory(nodes: list[Any]) -> list[str]:
    return [f"  {n.name:10} {n.user}@{n.address}:{n.port}  {','.join(n.groups)}" for n in nodes]


def old_fields(pairs: list[tuple[str, Any]], width: int) -> list[str]:
    return [f"{(k + ':').ljust(width)} {v}" for k, v in pairs]


def lines(table: tables.Table) -> list[str]:
    return tables.render(table).split("\n")


# -- fixtures ------------------------------------------------------------------------------------------------------------
BUILDS = [
    N(number=12, status="succeeded", slug_id="4f2a9c1be07d", slug_size=1_234_567, commit="c0ffee1234", buildpack="python",
      created_at="2026-11-27T10:00:00+00:00"),
    N(number=3, status="failed", slug_id="-", slug_size=0, commit="", buildpack="nodejs", created_at="2026-11-26T09:00:00+00:00"),
]  # fmt: skip
LAB = [N(name="node1", address="169.254.77.11", running=True, link="up"), N(name="node2", address="169.254.77.12", running=False, link="down"),
       N(name="node3", address="169.254.77.13", running=True, link="absent")]  # fmt: skip
RELEASES = [
    N(version=12, description="Deploy 4f2a9c1", actor="alice", created_at="2026-11-27T10:00:00+00:00", status="succeeded"),
    N(version=3, description="Set DATABASE_URL, SECRET_KEY config vars", actor="root", created_at="2026-11-26T00:00:00+00:00",
      status="failed"),
    N(version=1, description="Rollback to v1", actor="a-very-long-actor", created_at="2026-11-25T00:00:00+00:00", status="pending"),
]  # fmt: skip
ADDONS = [
    N(name="postgres-curved-12", service="postgres", plan="mini", app="shop", attachments=[N(app="shop", var="DATABASE"), N(app="blog", var="SHOP_DB")]),
    N(name="postgres-angular-7", service="postgres", plan="basic", app="blog", attachments=[N(app="shop", var="BLOG_DB")]),
]  # fmt: skip
INFO = [("git_url", "ssh://fleet@ctl.example/shop.git"), ("buildpack", "-"), ("stack", "fleet-12"), ("builds", 3), ("process_types", {"web": "x"})]


# -- on a pipe: the same text as before ----------------------------------------------------------------------------------
def test_builds_on_a_pipe_are_the_old_text() -> None:
    assert lines(tables.builds(BUILDS)) == old_builds(BUILDS)


def test_a_cell_wider_than_its_old_width_lines_up_and_the_words_stay_the_same() -> None:
    found = [*BUILDS, N(number=1000000, status="succeeded", slug_id="0123456789abcdef", slug_size=5, commit="abc",
                        buildpack="nodejs,python,static", created_at="2026-11-20T00:00:00+00:00")]  # fmt: skip
    new, old = lines(tables.builds(found)), old_builds(found)
    assert [line.split() for line in new] == [line.split() for line in old]  # the same columns and values
    starts = {line.index("2026-") for line in new[1:]}
    assert len(starts) == 1  # CREATED lines up, where the old format pushed a long row out of line


def test_lab_nodes_on_a_pipe_are_the_old_text_without_trailing_spaces() -> None:
    assert lines(tables.lab_nodes(LAB)) == [line.rstrip() for line in old_lab(LAB)]


def test_releases_on_a_pipe_are_the_old_text() -> None:
    assert lines(tables.releases(RELEASES[:2])) == old_releases(RELEASES[:2])
    new, old = lines(tables.releases(RELEASES)), old_releases(RELEASES)  # an actor over 10 characters
    assert [line.split() for line in new] == [line.split() for line in old]


def test_addons_on_a_pipe_are_the_old_text() -> None:
    assert lines(tables.addons(ADDONS, "shop")) == old_addons(ADDONS, "shop")
    assert lines(tables.addons(ADDONS, "blog")) == old_addons(ADDONS, "blog")


def test_inventory_hosts_on_a_pipe_are_the_old_text() -> None:
    nodes = [N(name="node1", user="root", address="169.254.77.11", port=22, groups=("dyno_hosts", "router_hosts")),
             N(name="db", user="admin", address="10.0.0.5", port=2222, groups=("addon_hosts",)),
             N(name="lonely", user="root", address="10.0.0.6", port=22, groups=())]  # fmt: skip
    assert lines(tables.inventory_hosts(nodes[:1] + nodes[2:])) == [line.rstrip() for line in old_inventory(nodes[:1] + nodes[2:])]
    new, old = lines(tables.inventory_hosts(nodes)), old_inventory(nodes)
    assert [line.split() for line in new] == [line.split() for line in old]  # the groups now line up too
    assert new[1] == "  db         admin@10.0.0.5:2222    addon_hosts"


@pytest.mark.parametrize("width", [15, 20])
def test_key_value_fields_on_a_pipe_are_the_old_text(width: int) -> None:
    assert lines(tables.fields(INFO, width)) == old_fields(INFO, width)


def test_a_key_longer_than_the_old_width_puts_every_value_in_line_and_the_words_stay() -> None:
    new, old = lines(tables.fields(INFO, 12)), old_fields(INFO, 12)  # apps.info: router_addresses is 17 wide
    assert [line.split(maxsplit=1) for line in new] == [line.split(maxsplit=1) for line in old]
    assert {line.index(value) for line, (_, value) in zip(new, INFO, strict=True) if isinstance(value, str)} == {len("process_types: ")}


def test_on_a_pipe_nothing_is_wrapped_cut_coloured_or_read_as_markup() -> None:
    long = "x" * 5000
    text = tables.render(tables.table(["NAME", "VALUE"], [("[bold]a[/bold] :smile:", long), ("b", "1")]))
    assert text.split("\n") == ["NAME                    VALUE", f"[bold]a[/bold] :smile:  {long}", "b                       1"]
    assert "\x1b" not in text


def test_show_prints_the_pipe_text_when_stdout_is_not_a_terminal(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    tables.show(tables.lab_nodes(LAB))
    assert capsys.readouterr().out == tables.render(tables.lab_nodes(LAB)) + "\n"


# -- on a terminal: the same columns and cells, drawn ----------------------------------------------------------------------
def test_on_a_terminal_the_header_is_bold_over_a_rule_and_the_cells_are_the_same() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system="standard", _environ={})
    console.print(tables.lab_nodes(LAB).rich(terminal=True))
    text = out.getvalue()
    assert "\x1b[1m" in text  # bold
    plain = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in text.splitlines()]
    assert any(set(line.strip()) == {"─"} for line in plain)  # the rule under the header
    rows = [line.split() for line in plain if line.strip() and "─" not in line]
    assert rows == [line.split() for line in old_lab(LAB)]
