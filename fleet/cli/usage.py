"""What `fleet --list` and `fleet COMMAND --help` show (pure: one table, text out).

USAGE holds, per command, its arguments as a user types them and one example;
JSON_FIELDS, per command that takes --json, what it prints (fleet.cli.jsonshape's
notation). The help of a command is built from them, the task's docstring and its
options; README's --json table is json_table().
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable, Sequence

# command -> (its arguments after the name, an example of them)
USAGE: dict[str, tuple[str, str]] = {
    "lab.up": ("[--nodes N]", "--nodes 3"),
    "lab.down": ("", ""),
    "lab.status": ("[--json]", ""),
    "lab.kill": ("NODE", "node2"),
    "lab.boot": ("NODE", "node2"),
    "lab.reboot": ("NODE", "node2"),
    "lab.partition": ("NODE", "node2"),
    "lab.heal": ("NODE", "node2"),
    "inventory.use": ("PATH", "inventory/example.yml"),
    "inventory.show": ("[--json]", ""),
    "nodes.status": ("[--json] [--node N ...] [--dry-run]", "--node node1 --node node2"),
    "nodes.provision": ("[--node N ...] [--check]", "--check"),
    "nodes.enroll": ("[--node N ...] [--replace] [--fingerprint SHA256:...]", "--node rack1-a"),
    "nodes.drain": ("NODE", "node2"),
    "nodes.undrain": ("NODE", "node2"),
    "audit": ("[--json] [--limit N]", "--limit 50"),
    "apps.create": ("NAME [--buildpack B] [--stack S] [--json]", "myapp --buildpack python"),
    "apps.list": ("[--json]", ""),
    "apps.info": ("-a APP [--json]", "-a myapp --json"),
    "apps.destroy": ("NAME --confirm NAME", "myapp --confirm myapp"),
    "stacks": ("[--hosts] [--json]", ""),
    "stacks.build": ("NAME", "fleet-12"),
    "stacks.roll": ("NAME [--version V]", "fleet-12"),
    "stack": ("-a APP", "-a myapp"),
    "stack.set": ("-a APP NAME", "-a myapp fleet-13"),
    "buildpacks": ("-a APP [--json]", "-a myapp"),
    "buildpacks.add": ("-a APP BUILDPACK [--index N]", "-a myapp nodejs --index 1"),
    "buildpacks.set": ("-a APP BUILDPACK [--index N]", "-a myapp python"),
    "buildpacks.remove": ("-a APP [BUILDPACK] [--index N]", "-a myapp nodejs"),
    "buildpacks.clear": ("-a APP", "-a myapp"),
    "deploy": ("-a APP [PATH]", "-a myapp examples/python"),
    "builds": ("-a APP [--json]", "-a myapp"),
    "slugs.gc": ("", ""),
    "releases": ("-a APP [--json]", "-a myapp"),
    "releases.info": ("-a APP vN [--json]", "-a myapp v3"),
    "rollback": ("-a APP [vN] [--json]", "-a myapp v3"),
    "config": ("-a APP [--json|--shell]", "-a myapp --shell"),
    "config.get": ("-a APP KEY", "-a myapp DATABASE_URL"),
    "config.set": ("-a APP KEY=VALUE... [--json]", "-a myapp DEBUG=0 GREETING='hi there'"),
    "config.unset": ("-a APP KEY... [--json]", "-a myapp DEBUG"),
    "ps": ("-a APP [--json]", "-a myapp"),
    "ps.scale": ("-a APP TYPE=N[:SIZE]... [--json]", "-a myapp web=2 worker=1:standard-2x"),
    "ps.restart": ("-a APP [TYPE|DYNO] [--json]", "-a myapp web.1"),
    "ps.stop": ("-a APP [TYPE|DYNO] [--json]", "-a myapp worker"),
    "run": ("-a APP [--detached] CMD...", "-a myapp python manage.py migrate"),
    "logs": ("-a APP [-n N] [--tail] [--source app|fleet] [--dyno DYNO] [--json]", "-a myapp --tail --dyno web"),
    "open": ("-a APP", "-a myapp"),
    "shell": ("[--stop-on-error]", "< commands.txt"),
    "domains": ("-a APP [--json]", "-a myapp"),
    "domains.add": ("-a APP HOSTNAME [--json]", "-a myapp www.example.com"),
    "domains.remove": ("-a APP HOSTNAME", "-a myapp www.example.com"),
    "maintenance.on": ("-a APP", "-a myapp"),
    "maintenance.off": ("-a APP", "-a myapp"),
    "router.sync": ("", ""),
    "drains": ("-a APP [--json]", "-a myapp"),
    "drains.add": ("-a APP URL [--json]", "-a myapp syslog+tls://logs.example.com:6514"),
    "drains.remove": ("-a APP URL|TOKEN", "-a myapp d.1b2c3d4e"),
    "drains.run": ("[--watch SECONDS]", ""),
    "scheduler": ("-a APP [--json]", "-a myapp --json"),
    "scheduler.add": ("-a APP --every 10m|1h|1d [--at HH:MM] [--limit 30m] -- CMD...", "-a myapp --every 1d --at 03:30 -- python sweep.py"),
    "scheduler.remove": ("-a APP ID", "-a myapp 3"),
    "scheduler.run": ("-a APP ID", "-a myapp 3"),
    "addons": ("-a APP [--json]", "-a myapp"),
    "addons.create": ("SERVICE -a APP [--as NAME] [--plan P] [--json]", "postgres -a myapp --plan basic"),
    "addons.info": ("NAME -a APP [--json]", "DATABASE -a myapp"),
    "addons.attach": ("NAME -a APP [--as NAME]", "postgres-1a2b3c4d -a myadmin --as SHOP_DB"),
    "addons.destroy": ("NAME -a APP --confirm APP", "postgres-1a2b3c4d -a myapp --confirm myapp"),
    "pg.psql": ("-a APP [NAME] [-c SQL]", "-a myapp -c 'SELECT count(*) FROM hello_note'"),
    "pg.backups": ("-a APP [--json]", "-a myapp"),
    "pg.backups.capture": ("-a APP [NAME] [--json]", "-a myapp"),
    "pg.backups.restore": ("[BACKUP] -a APP [NAME] --confirm APP", "otherapp::b003 -a myapp --confirm myapp"),
    "pg.backups.delete": ("BACKUP -a APP --confirm APP", "b003 -a myapp --confirm myapp"),
    "manager.run": ("[--dry-run] [--watch SECONDS]", "--dry-run"),
    "manager.status": ("[--json] [--passes N]", ""),
    "manager.install": ("[--watch SECONDS]", ""),
    "manager.uninstall": ("", ""),
    "usage": ("-a APP|--all [--month YYYY-MM] [--json]", "-a myapp --month 2026-01"),
}

_APP = ("{name, created_at, buildpack, buildpacks: [string], stack, git_url, git_path, builds, last_slug, web_url, domains: [string], "
        "router_addresses: [string]}")
_RELEASE = "{version, description, slug, build, commit, process_types: {TYPE: string}, config_keys: [string], actor, created_at, status}"
_MADE = "{app, release, description, status, keys: [string]}"
_BACKUP = "id, app, addon, attachment, source_app, size, sha256, created_at, seconds"  # a backup's keys
_ADDON = "name, service, plan, app, host, port, created_at, attachments: [{app, name, config_var}]"  # an add-on's keys
_DRAIN = "token, app, url, created_at"  # a drain's keys

# command -> (what its --json prints, in fleet.cli.jsonshape's notation; a note). `fleet COMMAND --help` shows it,
# README's "--json" table is json_table(), and tests/unit/test_json_fields.py runs every command against it.
JSON_FIELDS: dict[str, tuple[str, str]] = {
    "lab.status": ("[{name, address, running, init_pid, link}]", "link: up, down (partitioned) or absent"),
    "inventory.show": ("{source, hosts: [{name, address, port, user, groups: [string]}]}", ""),
    "nodes.status": ("[{name, address, groups: [string], reachable, error, load1, load5, load15, cpu_count, cpu_percent, mem_total, "
                     "mem_available, disk_path, disk_total, disk_free, uptime, systemd_state, failed_units: [string]}]",
                     "a host that does not answer: reachable false, its error, the measures null"),
    "audit": ("[{id, at, actor, source, client, command, args, outcome, detail}]", "newest last; secrets in args as `***`"),
    "apps.create": (_APP, "the new app, as apps.info shows it"),
    "apps.list": ("[{name, created_at, buildpack, buildpacks: [string], stack}]", ""),
    "apps.info": (_APP, ""),
    "builds": ("[{app, number, status, slug_sha256, slug_size, commit, buildpack, process_types: {TYPE: string}, source, created_at, "
               "duration, stack, stack_version, slug_id}]", ""),
    "releases": ("[" + _RELEASE + "]", "newest first; config var names only"),
    "releases.info": (_RELEASE, "config var names only"),
    "rollback": ("{app, release, description, status}", "the new release (release: its number)"),
    "config": ("{KEY: string}", "the app's config vars, values included (they are the app's own, as on Heroku)"),
    "config.set": (_MADE, "the new release (release: its number); keys: the config vars set"),
    "config.unset": (_MADE, "the new release (release: its number); keys: the config vars removed"),
    "ps": ("[{name, type, state, release, host, address, port, size, since, unit, restart_at}]", ""),
    "ps.scale": ("{app, formation: {TYPE: {quantity, size}}}", "the whole formation after the change"),
    "ps.restart": ("{app, action, dynos: [string]}", "action: restart; dynos: those restarted"),
    "ps.stop": ("{app, action, dynos: [string]}", "action: stop; dynos: those stopped"),
    "logs": ("{time, source, dyno, message}", "one object per line"),
    "drains": ("[{" + _DRAIN + "}]", ""),
    "drains.add": ("{" + _DRAIN + ", forwarder}", "the new drain, and what forwards to it"),
    "domains": ("[string]", "`APP.<domain>` first, then the custom domains"),
    "domains.add": ("{app, domain}", ""),
    "scheduler": ("[{id, app, command: [string], every, at, limit, created_at, created_by, "
                  "last_run: {dyno, host, release, started_at, ended_at, result}|null, next_due}]", ""),
    "addons": ("[{" + _ADDON + "}]", "never a password"),
    "addons.create": ("{" + _ADDON + "}", "the new add-on; never its password"),
    "addons.info": ("{" + _ADDON + ", url, connections, size_mb, limits}", "url: the password masked"),
    "pg.backups": ("[{" + _BACKUP + ", status}]", "status: completed, or file missing when its file is gone"),
    "pg.backups.capture": ("{" + _BACKUP + "}", "the new backup"),
    "buildpacks": ("[string]", "in the order builds run them"),
    "stacks": ("[{name, suite, debian, current, failed, versions: [{name, version, sha256, size, runtimes: {NAME: string}, built_at, "
               "seconds}], apps: [string], hosts?: {HOST: string}}]", "hosts: with --hosts"),
    "manager.status": ("{lease, installed, passes: [{id, started_at, finished_at, source, pid, outcome, actions: [string], detail}], "
                       "hosts: [{host, health, draining, misses, since, detail, answered}], due: [{app, dyno, host, what, at}]}", ""),
    "usage": ("{month, from, to, as_of, running, lines: [{app, kind, type, size, seconds, hours}], total_seconds, total_hours}", ""),
}

# fleet's own options (fleet.program.FleetProgram.core_args), as `fleet --help` shows them
CORE_OPTIONS = [
    ("-h, --help [COMMAND]", "this help, or a command's (fleet COMMAND --help works too)"),
    ("-l, --list", "the commands, grouped by topic"),
    ("-V, --version", "fleet's version"),
    ("--print-completion-script bash|zsh", 'a shell completion script: eval "$(fleet --print-completion-script bash)"'),
    ("--complete", "completion candidates (the completion script calls it)"),
    ("--debug", "invoke's debug output"),
]

# top-level commands listed under a topic, as Heroku lists rollback under releases
TOPIC = {"builds": "apps", "deploy": "apps", "open": "apps", "rollback": "releases", "run": "ps"}


def shown_name(name: str) -> str:
    """A collection's default task is shown as its collection: config.config -> config, pg.backups.backups -> pg.backups."""
    head, _, last = name.rpartition(".")
    return head if head and head.rpartition(".")[2] == last else name


def colon_name(name: str) -> str:
    return shown_name(name).replace(".", ":")


def usage_line(name: str) -> str:
    args, _ = USAGE.get(shown_name(name), ("[OPTIONS]", ""))
    return f"fleet {colon_name(name)} {args}".rstrip()


def example_line(name: str) -> str:
    _, example = USAGE.get(shown_name(name), ("", ""))
    return f"fleet {colon_name(name)} {example}".rstrip()


def topic_of(name: str) -> str:
    shown = shown_name(name)
    return TOPIC.get(shown, shown.partition(".")[0])


def listing(tasks: Iterable[tuple[str, str]], options: Sequence[tuple[str, str]] = ()) -> str:
    """The commands grouped by topic, one line each: (task name, its help line) in; fleet's own options first if given."""
    rows = sorted((topic_of(n), shown_name(n) != topic_of(n), shown_name(n), h) for n, h in tasks)
    width = max((len(r[2]) for r in rows), default=0)
    out = [
        "Usage: fleet COMMAND [-a APP] [ARGS...]",
        "`fleet COMMAND --help` shows its usage and an example; topic:command works as well as topic.command.",
        "Without -a, the app is taken from the current directory's git remote named `fleet`.",
    ]
    if options:
        out += ["", "Options:", *_columns(options)]
    last = None
    for topic, _, shown, helpline in rows:
        if topic != last:
            out += ["", topic]
            last = topic
        out.append(f"  {shown.ljust(width)}  {helpline}".rstrip())
    return "\n".join(out) + "\n"


def task_help(name: str, doc: str, options: Sequence[tuple[str, str]]) -> str:
    """`fleet COMMAND --help`: usage, what it does, options (name, help), an example."""
    out = [f"Usage: {usage_line(name)}", ""]
    out += [f"  {line}".rstrip() for line in doc.strip().splitlines()] + [""]
    if options:
        out += ["Options:", *_columns(options), ""]
    if example_line(name) != usage_line(name) and USAGE.get(shown_name(name), ("", ""))[1]:
        out += ["Example:", f"  {example_line(name)}", ""]
    if shown_name(name) in JSON_FIELDS:
        shape, note = JSON_FIELDS[shown_name(name)]
        out += ["--json prints:", *textwrap.wrap(shape, 100, initial_indent="  ", subsequent_indent="    ", break_on_hyphens=False)]
        out += [f"  ({note})", ""] if note else [""]
    return "\n".join(out)


def json_table() -> str:
    """README's table of what --json prints, one row per command (tests/unit/test_json_fields.py holds them equal)."""
    rows = ["| command | `--json` prints | |", "|---|---|---|"]
    for name, (shape, note) in sorted(JSON_FIELDS.items()):
        escaped = shape.replace("|", "\\|")  # a | inside a table cell, code span or not, ends the cell
        rows.append(f"| `{name}` | `{escaped}` | {note} |")
    return "\n".join(rows) + "\n"


def _metavar(spec: str) -> str:
    """invoke's "-a STRING, --app=STRING" -> "-a APP, --app=APP"."""
    spec = spec.removeprefix("-h, ")  # -h is help after any command (stacks' --hosts keeps its long name)
    longs = re.findall(r"--([\w-]+)\[?=", spec)
    name = (longs[0] if longs else "value").upper().replace("-", "_")
    return re.sub(r"\b(STRING|INT|FLOAT)\b", name, spec)


def _columns(options: Sequence[tuple[str, str]]) -> list[str]:
    specs = [_metavar(o) for o, _ in options]
    width = max(len(s) for s in specs)
    return [f"  {s.ljust(width)}  {h}".rstrip() for s, (_, h) in zip(specs, options, strict=True)]
