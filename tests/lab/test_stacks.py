"""Stacks on a real lab (issue 12): dynos run on the stack image fleet built and shipped, see nothing of their
host outside the stack and their slug, and move to a new stack version only when they restart."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.services import stacks
from fleet.stack import STACKS_DIR, StackVersion, image_path, version_dir

from .conftest import run_fleet
from .test_dynos import ps, write_app
from .test_lab import _ssh

pytestmark = pytest.mark.lab

# answers with the stack the dyno runs on, as the stack itself says (/etc/fleet-stack)
STACK_APP = {
    "requirements.txt": "\n",
    "Procfile": "web: python3 web.py\n",
    "web.py": (
        "import http.server, os\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers()\n"
        "        self.wfile.write(open('/etc/fleet-stack').read().encode())\n"
        "    def log_message(self, *a): pass\n"
        "http.server.ThreadingHTTPServer(('0.0.0.0', int(os.environ['PORT'])), H).serve_forever()\n"
    ),
}


def answer(home: Path, app: str) -> str:
    web = next(d for d in ps(home, app) if d["type"] == "web")
    with urllib.request.urlopen(f"http://{web['address']}:{web['port']}/", timeout=10) as resp:
        return str(resp.read().decode().strip())


@pytest.fixture(scope="module")
def stackapp(lab: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    src = write_app(tmp_path_factory.mktemp("stackapp") / "src", STACK_APP)
    assert run_fleet(lab, "apps.create", "stackapp").code == 0
    res = run_fleet(lab, "deploy", "-a", "stackapp", str(src), timeout=900)
    assert res.code == 0, res.stdout + res.stderr
    return "stackapp"


def test_a_dyno_runs_on_the_stack_and_sees_nothing_of_its_host(lab: Path, stackapp: str) -> None:
    current = stacks.current("fleet-12")
    assert current is not None
    assert answer(lab, stackapp) == f"fleet-12 {current.version}"
    host = str(ps(lab, stackapp)[0]["host"])
    # a world-readable file on the host, and the host's own files a dyno on the host's root could read before
    _ssh(lab, host, "sh", "-c", "echo host-only > /etc/fleet-host-marker; chmod 0644 /etc/fleet-host-marker")
    probe = (
        "import os\n"
        "for p in ('/etc/fleet-host-marker', '/etc/ssh/ssh_host_ed25519_key.pub', '/etc/fleet/host.yml', '/usr/sbin/haproxy',"
        " '/usr/bin/systemd-nspawn', '/root'):\n"
        "    print(p, os.path.exists(p))\n"
        "print(open('/etc/os-release').read().split('VERSION_CODENAME=')[1].split()[0])\n"
        "print(open('/etc/fleet-stack').read().strip())\n"
    )
    res = run_fleet(lab, "run", "-a", stackapp, "--", "python3", "-c", probe)
    assert res.code == 0, res.stdout + res.stderr
    lines = res.stdout.strip().splitlines()
    assert [ln for ln in lines if ln.endswith(" True")] == ["/root True"]  # the stack's own (empty, root's) /root
    assert "bookworm" in lines and f"fleet-12 {current.version}" in lines
    # the same on every host it ran on: the host really has the marker and the key
    assert _ssh(lab, host, "cat", "/etc/fleet-host-marker").strip() == "host-only"
    # the stack on the host is the shipped image, root's, read-only under the dyno
    listing = _ssh(lab, host, "sh", "-c", f"readlink {STACKS_DIR}/fleet-12/current; stat -c %U {STACKS_DIR}/fleet-12/current/")
    assert listing.split() == [current.version, "root"]
    written = run_fleet(lab, "run", "-a", stackapp, "--", "sh", "-c", "touch /usr/x 2>&1; touch /etc/x 2>&1; true")
    assert written.stdout.count("Read-only file system") == 2, written.stdout


def _derive_version(base: StackVersion) -> StackVersion:
    """A second version of the stack: the base tree with another /etc/fleet-stack, packed and recorded as
    stacks.build does (a real build takes minutes with the day's packages; what differs here is what a dyno sees)."""
    version = f"{base.version.split('.')[0]}.{int(base.version.split('.')[1]) + 100}"
    tree = Path(version_dir("fleet-12", version))
    subprocess.run(["cp", "-a", version_dir("fleet-12", base.version), str(tree)], check=True)
    (tree / "etc/fleet-stack").write_text(f"fleet-12 {version}\n")
    sha, size = stacks._pack(tree)
    derived = StackVersion("fleet-12", version, sha, size, base.runtimes, base.built_at, 0.0)
    (Path(STACKS_DIR) / "fleet-12" / f"{version}.json").write_text(derived.to_json())
    return derived


@pytest.fixture
def second_version(lab: Path) -> Iterator[tuple[StackVersion, StackVersion]]:
    base = stacks.current("fleet-12")
    assert base is not None
    derived = _derive_version(base)
    try:
        yield base, derived
    finally:  # every host back on the base version, whatever the test did
        run_fleet(lab, "stacks.roll", "fleet-12", "--version", base.version, timeout=600)
        stacks.switch_local("fleet-12", base.version)
        shutil.rmtree(version_dir("fleet-12", derived.version), ignore_errors=True)
        (Path(STACKS_DIR) / "fleet-12" / f"{derived.version}.json").unlink(missing_ok=True)
        Path(image_path(derived.sha256)).unlink(missing_ok=True)


def test_a_new_stack_version_reaches_a_dyno_only_when_it_restarts(
    lab: Path, stackapp: str, second_version: tuple[StackVersion, StackVersion]
) -> None:
    base, new = second_version
    assert answer(lab, stackapp) == f"fleet-12 {base.version}"
    before = {str(d["name"]): d["since"] for d in ps(lab, stackapp)}
    res = run_fleet(lab, "stacks.roll", "fleet-12", "--version", new.version, timeout=600)
    assert res.code == 0, res.stdout + res.stderr
    host = str(ps(lab, stackapp)[0]["host"])
    assert f"{host}: fleet-12 {base.version} -> {new.version}" in res.stdout
    for node in ("node1", "node2", "node3"):  # those that had no dyno yet may have had no stack either
        assert re.search(rf"{node}: fleet-12 ({re.escape(base.version)}|none) -> {re.escape(new.version)}\n", res.stdout)
        assert _ssh(lab, node, "readlink", f"{STACKS_DIR}/fleet-12/current").strip() == new.version
    assert "running dynos move to it at their next restart or daily cycle" in res.stdout
    # the running dyno still runs on the version it started on
    assert answer(lab, stackapp) == f"fleet-12 {base.version}"
    assert {str(d["name"]): d["since"] for d in ps(lab, stackapp)} == before  # not restarted by the roll
    # a dyno started now gets the new one
    one_off = run_fleet(lab, "run", "-a", stackapp, "--", "cat", "/etc/fleet-stack")
    assert one_off.code == 0 and one_off.stdout.strip() == f"fleet-12 {new.version}", one_off.stdout + one_off.stderr
    # and the web dyno moves to it when it restarts
    assert run_fleet(lab, "ps.restart", "-a", stackapp, "web").code == 0
    assert answer(lab, stackapp) == f"fleet-12 {new.version}"
    listed = run_fleet(lab, "stacks", "--json", "--hosts")
    assert listed.code == 0, listed.stderr
    fleet12 = next(s for s in json.loads(listed.stdout) if s["name"] == "fleet-12")
    assert fleet12["current"] == new.version and stackapp in fleet12["apps"]
    assert all(f"current {new.version}; has " in had and base.version in had for had in fleet12["hosts"].values())
    # back to the base version: rolled again, the dyno moves back at its restart
    res = run_fleet(lab, "stacks.roll", "fleet-12", "--version", base.version, timeout=600)
    assert res.code == 0, res.stdout + res.stderr
    assert run_fleet(lab, "ps.restart", "-a", stackapp, "web").code == 0
    assert answer(lab, stackapp) == f"fleet-12 {base.version}"
    assert os.path.islink(f"{STACKS_DIR}/fleet-12/current")


def test_stack_commands_refuse_bad_input_and_change_nothing(lab: Path, stackapp: str) -> None:
    res = run_fleet(lab, "stack.set", "-a", stackapp, "heroku-24")
    assert res.code != 0
    assert res.stderr.strip() == "fleet: error: there is no stack 'heroku-24'; stacks: fleet-12, fleet-13 (see `fleet stacks`)"
    assert run_fleet(lab, "stack", "-a", stackapp).stdout.startswith(f"=== {stackapp} stack: fleet-12")
    res = run_fleet(lab, "stacks.roll", "fleet-12", "--version", "20200101.1")
    assert res.code != 0 and "stack fleet-12 has no version 20200101.1; built: " in res.stderr
    res = run_fleet(lab, "apps.create", "nostack", "--stack", "fleet-99")
    assert res.code != 0 and "there is no stack 'fleet-99'" in res.stderr
    assert "nostack" not in run_fleet(lab, "apps.list").stdout
