"""Releases, config vars and dynos on a real lab: nspawn units under systemd on three hosts."""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from pathlib import Path

import pytest

from fleet.state import Store

from .conftest import run_fleet
from .test_lab import _ssh

pytestmark = pytest.mark.lab

ENV_APP = {
    "Procfile": "web: python3 web.py\nworker: python3 -c 'import time; time.sleep(3600)'\n",
    "web.py": (
        "import http.server, json, os\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        body = json.dumps(dict(os.environ)).encode()\n"
        "        self.send_response(200); self.end_headers(); self.wfile.write(body)\n"
        "    def log_message(self, *a): pass\n"
        "http.server.ThreadingHTTPServer(('0.0.0.0', int(os.environ['PORT'])), H).serve_forever()\n"
    ),
}
TRICKY = "it's \"quoted\" $HOME `x` \\n\nsecond line ünïcødé ✓ 'end'"


def write_app(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    return path


def ps(home: Path, app: str) -> list[dict[str, object]]:
    res = run_fleet(home, "ps", "-a", app, "--json")
    assert res.code == 0, res.stderr
    return list(res.json())  # type: ignore[arg-type]


def get_env(dyno: dict[str, object]) -> dict[str, str]:
    with urllib.request.urlopen(f"http://{dyno['address']}:{dyno['port']}/", timeout=10) as resp:
        return dict(json.loads(resp.read()))


@pytest.fixture(scope="module")
def envapp(lab: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    src = write_app(tmp_path_factory.mktemp("envapp") / "src", ENV_APP)
    assert run_fleet(lab, "apps.create", "envapp").code == 0
    res = run_fleet(lab, "deploy", "-a", "envapp", str(src))
    assert res.code == 0, res.stdout + res.stderr
    assert "-----> v1 deployed" in res.stdout
    return "envapp"


def test_first_deploy_runs_one_web_dyno_that_answers(lab: Path, envapp: str) -> None:
    [web] = ps(lab, envapp)
    assert web["name"] == "web.1" and web["state"] == "up" and web["release"] == 1
    env = get_env(web)
    assert env["PORT"] == str(web["port"]) and env["DYNO"] == "web.1"
    assert env["FLEET_APP_NAME"] == "envapp" and env["FLEET_RELEASE_VERSION"] == "v1"
    assert len(env["FLEET_DYNO_ID"]) == 16
    assert env["HOME"] == "/app"
    opened = run_fleet(lab, "open", "-a", envapp)
    assert opened.code == 0, opened.stderr
    assert opened.stdout.startswith("http://envapp.fleet.test/  (router 169.254.77.11 answered 200")


def test_scale_spreads_over_hosts_and_is_idempotent(lab: Path, envapp: str) -> None:
    res = run_fleet(lab, "ps.scale", "-a", envapp, "web=3", "worker=1")
    assert res.code == 0, res.stderr
    # piped: plain lines only, and the wait for the new dynos is named with its limit before it starts
    waits = [line for line in res.stdout.splitlines() if line.startswith("-----> waiting for ") and line.endswith(" (up to 60 s)")]
    assert waits and "\x1b" not in res.stdout, res.stdout
    dynos = ps(lab, envapp)
    web = [d for d in dynos if d["type"] == "web"]
    assert sorted(d["host"] for d in web) == ["node1", "node2", "node3"]
    assert all(d["state"] == "up" for d in dynos), dynos
    assert [d["name"] for d in dynos if d["type"] == "worker"] == ["worker.1"]
    units = sorted(str(d["unit"]) for d in dynos)
    again = run_fleet(lab, "ps.scale", "-a", envapp, "web=3", "worker=1")
    assert again.code == 0 and "Starting" not in again.stdout and "Stopping" not in again.stdout
    assert sorted(str(d["unit"]) for d in ps(lab, envapp)) == units


def test_config_values_arrive_byte_for_byte_as_a_new_release(lab: Path, envapp: str) -> None:
    res = run_fleet(lab, "config.set", "-a", envapp, f"TRICKY={TRICKY}", "EMPTY=", "DOLLAR=$PATH")
    assert res.code == 0, res.stderr
    assert "Releasing v2: Set TRICKY, EMPTY, DOLLAR config vars" in res.stdout
    assert "to end (up to 30 s)" in res.stdout, res.stdout  # the old web dynos' drain at the router, named before it waits
    dynos = ps(lab, envapp)
    assert {d["release"] for d in dynos} == {2} and all(d["state"] == "up" for d in dynos)
    webs = [d for d in dynos if d["type"] == "web"]
    assert len(webs) == 3, dynos  # test_scale_spreads_over_hosts_and_is_idempotent left web=3, one on each host
    for web in webs:
        env = get_env(web)
        assert env["TRICKY"] == TRICKY and env["EMPTY"] == "" and env["DOLLAR"] == "$PATH"
        assert env["FLEET_RELEASE_VERSION"] == "v2"
    got = run_fleet(lab, "config.get", "-a", envapp, "TRICKY")
    assert got.stdout == TRICKY + "\n"
    assert json.loads(run_fleet(lab, "config", "-a", envapp, "--json").stdout)["TRICKY"] == TRICKY
    # the value is not in the audit log, nor logged on a host that got it (a command line of a transient unit, a
    # script tracing its env), nor in a unit file
    audit = run_fleet(lab, "audit", "--json", "--limit", "5").stdout
    assert "second line" not in audit and "TRICKY=***" in audit
    for node in sorted({str(d["host"]) for d in webs}):
        assert "second line" not in _ssh(lab, node, "journalctl", "--no-pager", "-o", "cat"), node
        assert "second line" not in _ssh(lab, node, "sh", "-c", "cat /etc/systemd/system/fleet.envapp.*"), node
    node = str(webs[0]["host"])
    mode, owner, group = _ssh(lab, node, "stat", "-c", "%a %u %g", "/var/lib/fleet/apps/envapp/v2/env").split()
    assert mode == "600" and owner == group and int(owner) > 40000  # the app's own uid: only its dynos read it


def test_run_passes_output_and_exit_code(lab: Path, envapp: str) -> None:
    res = run_fleet(lab, "run", "-a", envapp, "--", "python3", "-c",
                    "import os, sys; print(os.environ['TRICKY']); print(os.getuid(), os.environ['DYNO']); sys.exit(7)")  # fmt: skip
    assert res.code == 7, res.stderr
    lines = res.stdout.splitlines()
    assert "\n".join(lines[:2]) == TRICKY
    uid, dyno = lines[2].split()
    assert int(uid) > 40000 and dyno.startswith("run.")  # the app's own uid (issue 10)
    piped = run_fleet(lab, "run", "-a", envapp, "cat")
    assert piped.code == 0 and piped.stdout == ""


def test_files_of_one_app_are_not_visible_to_another(lab: Path, envapp: str, tmp_path: Path) -> None:
    other = write_app(tmp_path / "other", {**ENV_APP, "secret-of-other.txt": "s3cret\n"})
    assert run_fleet(lab, "apps.create", "otherapp").code == 0
    assert run_fleet(lab, "deploy", "-a", "otherapp", str(other)).code == 0
    probe = (
        "import os; hits = [os.path.join(d, f) for top in ('/var', '/run', '/tmp', '/home', '/srv', '/opt', '/root', '/etc', '/app', '/usr/local')"
        " for d, _, fs in os.walk(top) for f in fs if f == 'secret-of-other.txt'];"
        " print('hits', hits); print('fleet dir', os.listdir('/var/lib/fleet')); open('/app/mine', 'w').write('x'); print('wrote')"
    )
    res = run_fleet(lab, "run", "-a", envapp, "--", "python3", "-c", probe)
    assert res.code == 0, res.stderr
    assert "hits []" in res.stdout and "fleet dir []" in res.stdout and "wrote" in res.stdout
    mine = run_fleet(lab, "run", "-a", "otherapp", "--", "python3", "-c", "import glob; print(glob.glob('/app/*'))")
    assert "/app/secret-of-other.txt" in mine.stdout and "/app/mine" not in mine.stdout


def test_crashing_release_leaves_the_old_one_serving(lab: Path, envapp: str, tmp_path: Path) -> None:
    before = ps(lab, envapp)
    crash = write_app(tmp_path / "crash", {"Procfile": "web: python3 -c 'import sys; print(\"boom\"); sys.exit(1)'\n"})
    res = run_fleet(lab, "deploy", "-a", envapp, str(crash))
    assert res.code == 1
    assert "crashed while booting" in res.stderr
    assert "the previous ones keep running" in res.stdout
    after = ps(lab, envapp)
    assert [(d["name"], d["release"], d["unit"]) for d in after] == [(d["name"], d["release"], d["unit"]) for d in before]
    webs = [d for d in after if d["type"] == "web"]
    assert webs, after  # the app has web dynos before the bad deploy: they must still be there
    assert [d["state"] for d in after] == ["up"] * len(after)
    for web in webs:
        assert get_env(web)["TRICKY"] == TRICKY
    releases = json.loads(run_fleet(lab, "releases", "-a", envapp, "--json").stdout)
    assert releases[0]["status"] == "failed" and releases[1]["status"] == "succeeded"


def test_failing_release_phase_stops_the_release(lab: Path, envapp: str, tmp_path: Path) -> None:
    src = write_app(tmp_path / "relphase", {**ENV_APP, "Procfile": ENV_APP["Procfile"] + "release: echo migrating; exit 4\n"})
    before = ps(lab, envapp)
    assert before, "envapp has no dynos: an unchanged (empty) list would prove nothing"
    res = run_fleet(lab, "deploy", "-a", envapp, str(src))
    assert res.code == 1
    assert "-----> Running release command: echo migrating; exit 4" in res.stdout
    assert "       migrating" in res.stdout
    assert res.stderr.strip().endswith("was not deployed")
    assert [d["unit"] for d in ps(lab, envapp)] == [d["unit"] for d in before]


def test_releases_and_rollback(lab: Path, envapp: str) -> None:
    releases = json.loads(run_fleet(lab, "releases", "-a", envapp, "--json").stdout)
    versions = [r["version"] for r in releases]
    assert versions == sorted(versions, reverse=True) and versions[-1] == 1
    res = run_fleet(lab, "rollback", "-a", envapp, "v1")
    assert res.code == 0, res.stderr
    latest = json.loads(run_fleet(lab, "releases", "-a", envapp, "--json").stdout)[0]
    assert latest["version"] == versions[0] + 1 and latest["description"] == "Rollback to v1"
    assert latest["status"] == "succeeded" and latest["config_keys"] == []
    web = next(d for d in ps(lab, envapp) if d["type"] == "web")
    assert "TRICKY" not in get_env(web)
    assert get_env(web)["FLEET_RELEASE_VERSION"] == f"v{latest['version']}"
    info = run_fleet(lab, "releases.info", "-a", envapp, f"v{latest['version']}", "--json")
    assert json.loads(info.stdout)["description"] == "Rollback to v1"


def main_pid(home: Path, dyno: dict[str, object]) -> int:
    """The MainPID systemd has for the dyno's unit on its host (0: not running)."""
    return int(_ssh(home, str(dyno["host"]), "systemctl", "show", "-p", "MainPID", "--value", str(dyno["unit"])))


def test_restart_and_stop(lab: Path, envapp: str) -> None:
    web1 = next(d for d in ps(lab, envapp) if d["name"] == "web.1")
    pid_before = main_pid(lab, web1)
    assert pid_before != 0, web1
    res = run_fleet(lab, "ps.restart", "-a", envapp, "web.1")
    assert res.code == 0, res.stderr
    dynos = ps(lab, envapp)
    assert dynos and all(d["state"] == "up" for d in dynos), dynos
    web1 = next(d for d in dynos if d["name"] == "web.1")
    pid_after = main_pid(lab, web1)
    assert pid_after not in (0, pid_before), (pid_before, pid_after)  # web.1 was restarted: a new process
    res = run_fleet(lab, "ps.stop", "-a", envapp, "worker")
    assert res.code == 0
    states = {d["name"]: d["state"] for d in ps(lab, envapp)}
    assert states["worker.1"] == "down" and states["web.1"] == "up"
    assert run_fleet(lab, "ps.restart", "-a", envapp, "worker").code == 0
    assert {d["name"]: d["state"] for d in ps(lab, envapp)}["worker.1"] == "up"


def test_a_dyno_is_held_to_its_size(lab: Path, envapp: str) -> None:
    """standard-1x is 512 MB: a one-off dyno that touches 800 MB is killed, one that touches 200 MB is not."""
    # "start" shows the command ran (any other failure, before python got going, has no "start")
    touch = "print('start', flush=True); b = bytearray({} * 2**20); print('kept', len(b) >> 20)"
    small = run_fleet(lab, "run", "-a", envapp, "--", "python3", "-c", touch.format(200))
    assert small.code == 0 and small.stdout.splitlines()[:2] == ["start", "kept 200"], small.stdout + small.stderr
    big = run_fleet(lab, "run", "-a", envapp, "--", "python3", "-c", touch.format(800))
    assert big.code != 0, big.stdout + big.stderr
    assert "start" in big.stdout.splitlines() and "kept" not in big.stdout, big.stdout + big.stderr


def test_dynos_come_back_after_their_host_reboots(lab: Path, envapp: str) -> None:
    before = {str(d["name"]): d for d in ps(lab, envapp)}
    assert before["web.1"]["state"] == "up"
    host = str(before["web.1"]["host"])
    on_host = sorted(n for n, d in before.items() if d["host"] == host and d["state"] == "up")
    init_age = int(_ssh(lab, host, "ps", "-o", "etimes=", "-p", "1"))
    res = run_fleet(lab, "lab.reboot", "--node", host)
    assert res.code == 0, res.stderr
    assert int(_ssh(lab, host, "ps", "-o", "etimes=", "-p", "1")) < init_age  # a new boot
    deadline = time.monotonic() + 90
    while True:
        after = {str(d["name"]): d for d in ps(lab, envapp)}
        if all(after[n]["state"] == "up" for n in on_host) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert {n: after[n]["state"] for n in on_host} == {n: "up" for n in on_host}
    assert get_env(after["web.1"])["DYNO"] == "web.1"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("ps.scale", "-a", "envapp", "clock=1"), "no process type 'clock' in the current release (types: web, worker)"),
        (("ps.scale", "-a", "envapp", "web=-1"), "'web=-1': the count cannot be negative"),
        (("ps.scale", "-a", "envapp", "web=2:huge-9x"), "unknown dyno size 'huge-9x'; sizes: standard-1x (512 MB), standard-2x (1024 MB), performance-m (2560 MB)"),
        (("config.set", "-a", "envapp", "BAD KEY=1"), "config key 'BAD KEY' is not valid: use letters, digits and underscores, not starting with a digit"),
        (("config.set", "-a", "envapp", "=1"), "config key '' is not valid: use letters, digits and underscores, not starting with a digit"),
        (("config.unset", "-a", "envapp", "A=B"), "config key 'A=B' is not valid: use letters, digits and underscores, not starting with a digit"),
        (("run", "-a", "envapp"), "fleet run needs a command, e.g. `fleet run -a APP -- python manage.py migrate`"),
        (("rollback", "-a", "envapp", "v999"), "envapp has no release v999; `fleet releases -a envapp` lists them"),
    ],
)  # fmt: skip
def test_bad_input_changes_nothing(lab: Path, envapp: str, args: tuple[str, ...], message: str) -> None:
    before = ps(lab, envapp)
    assert before, "envapp has no dynos: an unchanged (empty) list would prove nothing"
    releases_before = run_fleet(lab, "releases", "-a", envapp, "--json").stdout
    res = run_fleet(lab, *args)
    assert res.code != 0
    assert res.stderr.strip() == f"fleet: error: {message}"
    assert [d["unit"] for d in ps(lab, envapp)] == [d["unit"] for d in before]
    assert run_fleet(lab, "releases", "-a", envapp, "--json").stdout == releases_before


def test_missing_capacity_is_refused_before_anything_changes(lab: Path, envapp: str) -> None:
    before = ps(lab, envapp)  # web=3 and worker=1 (512 MB) run; 30 x 2560 MB + 512 MB are asked for
    res = run_fleet(lab, "ps.scale", "-a", envapp, "web=30:performance-m")
    assert res.code == 1
    assert res.stderr.startswith(
        "fleet: error: the fleet cannot hold this formation: it needs 77312 MB for dynos, the hosts have "
    )
    assert "MB missing; add hosts, scale down, or pick a smaller size" in res.stderr
    assert [d["unit"] for d in ps(lab, envapp)] == [d["unit"] for d in before]
    assert "=== web (standard-1x): 3" in run_fleet(lab, "ps", "-a", envapp).stdout


def test_two_operators_on_one_app(lab: Path, envapp: str) -> None:
    store = Store(lab / "state.db")
    try:
        with store.lock(f"app:{envapp}", "ps.scale (the other operator)"):
            res = run_fleet(lab, "config.set", "-a", envapp, "X=1")
    finally:
        store.close()
    assert res.code == 4
    assert f"app:{envapp} is locked by " in res.stderr and "ps.scale (the other operator)" in res.stderr
    assert "X" not in json.loads(run_fleet(lab, "config", "-a", envapp, "--json").stdout)


def test_scale_to_zero_and_destroy_cleans_hosts(lab: Path, envapp: str) -> None:
    res = run_fleet(lab, "ps.scale", "-a", envapp, "web=0", "worker=0")
    assert res.code == 0, res.stderr
    assert ps(lab, envapp) == []
    from .test_lab import _ssh

    for node in ("node1", "node2", "node3"):
        assert "fleet.envapp." not in _ssh(
            lab, node, "sh", "-c", "ls /etc/systemd/system; systemctl list-units --all --plain --no-legend"
        )
    shutil.rmtree(lab / "cache" / "envapp", ignore_errors=True)
