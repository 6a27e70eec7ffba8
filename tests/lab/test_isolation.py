"""Dyno isolation on a real lab (issue 10): an app's owner is an untrusted tenant.

Each test is an attack or a property: the two reproductions that gave root on a host (config vars
reaching a root process, a process type from bin/release becoming a path), one identity per app,
checked names, limits per size (a fork bomb, a disk filled), nothing left behind.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.lab.plan import BRIDGE, HOST_ADDRESS, LabNode

from .conftest import run_fleet
from .test_dynos import ps, write_app
from .test_lab import _ssh

pytestmark = pytest.mark.lab

NODES = ("node1", "node2", "node3")
WEB = (
    "import http.server, os\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200); self.end_headers(); self.wfile.write(os.environ['DYNO'].encode())\n"
    "    def log_message(self, *a): pass\n"
    "http.server.ThreadingHTTPServer(('0.0.0.0', int(os.environ['PORT'])), H).serve_forever()\n"
)
# programs a tenant puts first on PATH: if a root process ever runs one, it leaves a mark on the host
TRAP = "#!/bin/sh\nid -u > /tmp/trap-ran-as 2>/dev/null; echo TRAP-RAN-AS-$(id -u) >&2\nexec /usr/bin/$(basename $0) \"$@\"\n"
STATUS = "grep -E '^(Uid|Gid|Groups|CapEff|CapPrm|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status"


def deploy(home: Path, app: str, src: Path, *scale: str) -> None:
    assert run_fleet(home, "apps.create", app).code == 0
    res = run_fleet(home, "deploy", "-a", app, str(src))
    assert res.code == 0, res.stdout + res.stderr
    if scale:
        res = run_fleet(home, "ps.scale", "-a", app, *scale)
        assert res.code == 0, res.stdout + res.stderr


def status_of(text: str) -> dict[str, str]:
    return {k: v.strip() for k, v in re.findall(r"^(\w+):[ \t]*(.*)$", text, re.M)}


def everywhere(home: Path, *argv: str) -> str:
    return "".join(_ssh(home, node, *argv) for node in NODES)


@pytest.fixture(scope="module")
def tenant(lab: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An app whose owner set traps: PATH and LD_PRELOAD point into its own slug."""
    files = {"Procfile": "web: python3 web.py\n", "web.py": WEB, "evil.c": "bogus"}
    files.update({f"bin/{name}": TRAP for name in ("chown", "cat", "setpriv", "install", "mount", "mkdir", "sh", "id")})
    src = write_app(tmp_path_factory.mktemp("tenant"), files)
    for trap in (src / "bin").iterdir():
        trap.chmod(0o755)
    deploy(lab, "tenant", src)
    res = run_fleet(lab, "config.set", "-a", "tenant", "PATH=/app/bin:/usr/bin:/bin", "LD_PRELOAD=/app/evil.so", "SECRET=hunter2-xyz")
    assert res.code == 0, res.stdout + res.stderr
    return "tenant"


def test_config_vars_never_reach_a_root_process(lab: Path, tenant: str) -> None:
    """Reproduction 1: PATH and LD_PRELOAD from config vars made the launcher run the app's `chown` as root."""
    res = run_fleet(lab, "run", "-a", tenant, "--", f"{STATUS}; echo uid=$(/usr/bin/id -u); echo path=$PATH")
    assert res.code == 0, res.stdout + res.stderr
    st = status_of(res.stdout)
    uid = int(st["Uid"].split()[0])
    assert uid >= 40000 and st["Uid"].split() == [str(uid)] * 4 and st["Gid"].split() == [str(uid)] * 4, st
    assert st["Groups"] == "" and st["NoNewPrivs"] == "1" and st["Seccomp"] == "2", st
    for caps in ("CapEff", "CapPrm", "CapBnd", "CapAmb"):
        assert int(st[caps], 16) == 0, st
    assert "path=/app/bin:/usr/bin:/bin" in res.stdout  # the config var is there, for the app's own processes
    assert "TRAP-RAN-AS-0" not in res.stdout + res.stderr
    # the web dyno started the same way: no trap ever ran as root on any host
    assert "trap-ran-as" not in everywhere(lab, "sh", "-c", "ls /tmp /var/tmp")
    # the old exploit's next step: remount the host's root read-write and write to its /etc
    res = run_fleet(lab, "run", "-a", tenant, "--", "/usr/bin/mount -o remount,rw / ; echo x > /etc/fleet-pwned; echo done")
    assert "done" in res.stdout, res.stdout + res.stderr
    assert "fleet-pwned" not in everywhere(lab, "ls", "/etc")


def test_config_values_stay_off_command_lines_and_the_audit_log(lab: Path, tenant: str) -> None:
    audit = run_fleet(lab, "audit", "--json", "--limit", "200")
    assert audit.code == 0 and "hunter2-xyz" not in audit.stdout
    # on the hosts: the env file belongs to the app's uid, 0600, in a dir only that uid's group can enter
    web = next(d for d in ps(lab, tenant) if d["type"] == "web")
    listing = _ssh(lab, str(web["host"]), "sh", "-c", "stat -c '%a %u %g %n' /var/lib/fleet/apps/tenant/v*/env /var/lib/fleet/apps/tenant/v*")
    rows = [line.split() for line in listing.splitlines()]
    envs = [r for r in rows if r[3].endswith("/env")]
    dirs = [r for r in rows if not r[3].endswith("/env")]
    assert envs and dirs
    for mode, owner, group, _ in envs:
        assert mode == "600" and owner == group and int(owner) >= 40000
    for mode, owner, group, _ in dirs:
        assert mode == "750" and owner == "0" and int(group) >= 40000
    assert "hunter2-xyz" not in _ssh(lab, str(web["host"]), "ps", "-eo", "args")


def test_process_types_from_bin_release_cannot_become_paths(lab: Path, tmp_path: Path) -> None:
    """Reproduction 2: a buildpack's default_process_types named ./../../../var/lib/fleet/PWNED wrote that file as root."""
    bp = tmp_path / "evilpack"
    (bp / "bin").mkdir(parents=True)
    (bp / "bin" / "detect").write_text("#!/bin/sh\necho evil\n")
    (bp / "bin" / "compile").write_text("#!/bin/sh\nexit 0\n")
    (bp / "bin" / "release").write_text(
        "#!/bin/sh\necho '---'\necho 'default_process_types:'\necho '  \"./..\\x2f..\\x2f..\\x2fvar\\x2flib\\x2ffleet\\x2fPWNED\": sleep 1000'\n"
    )
    for f in (bp / "bin").iterdir():
        f.chmod(0o755)
    src = write_app(tmp_path / "src", {"README": "nothing\n"})
    assert run_fleet(lab, "apps.create", "pathtype", "--buildpack", str(bp)).code == 0
    res = run_fleet(lab, "deploy", "-a", "pathtype", str(src))
    assert res.code != 0
    assert "process type './../../../var/lib/fleet/PWNED' is not valid" in res.stdout + res.stderr, res.stdout + res.stderr
    assert json.loads(run_fleet(lab, "releases", "-a", "pathtype", "--json").stdout) == []
    assert "PWNED" not in everywhere(lab, "ls", "/var/lib/fleet")


def test_a_type_with_an_underscore_starts(lab: Path, tmp_path: Path) -> None:
    """bg_job made an invalid nspawn machine name: the dyno never started."""
    src = write_app(tmp_path / "src", {"Procfile": "bg_job: echo started as $DYNO on $(hostname); sleep 3600\n"})
    deploy(lab, "underscore", src, "bg_job=1")
    [dyno] = ps(lab, "underscore")
    assert dyno["name"] == "bg_job.1" and dyno["state"] == "up", dyno
    journal = _ssh(lab, str(dyno["host"]), "journalctl", "--no-pager", "-o", "cat", "-u", str(dyno["unit"]))
    assert "started as bg_job.1 on underscore-bg-job-1" in journal


@pytest.fixture(scope="module")
def neighbour(lab: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Another tenant's app on the same hosts, with a secret file and a secret config var."""
    src = write_app(tmp_path_factory.mktemp("neighbour"), {"Procfile": "web: python3 web.py\n", "web.py": WEB, "secret-of-other.txt": "s3cret\n"})
    deploy(lab, "neighbour", src)
    assert run_fleet(lab, "config.set", "-a", "neighbour", "NEIGHBOUR_SECRET=n-secret-123").code == 0
    return "neighbour"


def test_each_app_has_its_own_identity_and_sees_nothing_of_another(lab: Path, tenant: str, neighbour: str) -> None:
    [web] = ps(lab, neighbour)
    host = str(web["host"])
    # even with a wrong mode on the host, the neighbour's env file and slug are out of reach
    _ssh(lab, host, "sh", "-c", "chmod 0644 /var/lib/fleet/apps/neighbour/v*/env; chmod 0755 /var/lib/fleet/apps/neighbour/v*")
    probe = (
        "import os; print('uid', os.getuid());"
        " print('fleet', os.listdir('/var/lib/fleet'));"
        " tops = ('/var', '/run', '/tmp', '/home', '/srv', '/opt', '/root', '/etc', '/app', '/usr/local', '/mnt', '/media');"
        " print('found', [os.path.join(d, f) for t in tops for d, _, fs in os.walk(t) for f in fs if f == 'secret-of-other.txt']);"
        " print('procs', sorted(open(f'/proc/{p}/cmdline').read().replace(chr(0), ' ') for p in os.listdir('/proc') if p.isdigit()))"
    )
    mine = run_fleet(lab, "run", "-a", tenant, "--", "/usr/bin/python3", "-c", probe)
    theirs = run_fleet(lab, "run", "-a", "neighbour", "--", "/usr/bin/python3", "-c", "import os; print('uid', os.getuid())")
    assert mine.code == 0 and theirs.code == 0, mine.stderr + theirs.stderr
    my_uid, their_uid = (int(re.search(r"^uid (\d+)$", r.stdout, re.M).group(1)) for r in (mine, theirs))  # type: ignore[union-attr]
    assert my_uid != their_uid and min(my_uid, their_uid) >= 40000
    assert "fleet []" in mine.stdout and "found []" in mine.stdout, mine.stdout
    procs = re.search(r"^procs (.*)$", mine.stdout, re.M)
    # its own processes only: the probe itself, not the web.py of any dyno on the host (its own app's included)
    assert procs and "print('uid', os.getuid())" in procs.group(1) and "web.py" not in procs.group(1), mine.stdout
    assert "n-secret-123" not in mine.stdout
    # a process of another app is not the owner of this app's port: its web dyno answers as itself
    with urllib.request.urlopen(f"http://{web['address']}:{web['port']}/", timeout=10) as resp:
        assert resp.read() == b"web.1"


def test_a_fork_bomb_stays_in_its_dyno(lab: Path, tenant: str) -> None:
    """standard-1x allows 256 tasks: forking stops there with EAGAIN, and other dynos keep answering."""
    bomb = (
        "import os, time\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n            time.sleep(20); os._exit(0)\n        n += 1\n"
        "except OSError as e:\n    print('forks', n, 'errno', e.errno, flush=True)\n"
    )
    [web] = [d for d in ps(lab, tenant) if d["type"] == "web"]
    answers: list[int] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            with urllib.request.urlopen(f"http://{web['address']}:{web['port']}/", timeout=5) as resp:
                answers.append(resp.status)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        res = run_fleet(lab, "run", "-a", tenant, "--", "/usr/bin/python3", "-c", bomb, timeout=120)
    finally:
        stop.set()
        poller.join()
    m = re.search(r"forks (\d+) errno (\d+)", res.stdout)
    assert m, res.stdout + res.stderr
    assert 100 < int(m.group(1)) < 256 and int(m.group(2)) == 11  # EAGAIN at the dyno's task limit
    assert answers and set(answers) == {200}


def test_a_dyno_that_fills_its_disk_gets_enospc_and_the_host_disk_is_untouched(lab: Path, tenant: str) -> None:
    def free_mb() -> int:
        return sum(int(_ssh(lab, n, "df", "--output=avail", "-B1M", "/var/tmp", "/").split()[i]) for n in NODES for i in (1, 2))

    before = free_mb()
    # one at a time (a tmpfs counts against the dyno's memory too): /app's writable layer, then /tmp
    fill = "for d in /app /tmp; do /usr/bin/dd if=/dev/zero of=$d/fill bs=1M count=400 2>&1 | /usr/bin/tail -4; /usr/bin/rm $d/fill; done"
    res = run_fleet(lab, "run", "-a", tenant, "--", fill)
    out = res.stdout + res.stderr
    assert out.count("No space left on device") == 2, out
    written = [int(n) for n in re.findall(r"^(\d+) bytes", res.stdout, re.M)]
    assert len(written) == 2 and all(200 * 2**20 < w <= 256 * 2**20 for w in written), written
    assert free_mb() > before - 100, (before, free_mb())


def test_a_one_off_dyno_is_stopped_after_its_lifetime(lab: Path, tenant: str) -> None:
    res = run_fleet(lab, "run", "-a", tenant, "--", "echo begun; sleep 60; echo never", env={"FLEET_RUN_MAX_SECONDS": "3"})
    assert "begun" in res.stdout and "never" not in res.stdout, res.stdout + res.stderr
    assert res.code != 0


def test_old_release_files_leave_the_hosts(lab: Path, tenant: str) -> None:
    for i in range(3):
        assert run_fleet(lab, "config.set", "-a", tenant, f"ROUND={i}").code == 0
    current = json.loads(run_fleet(lab, "releases", "-a", tenant, "--json").stdout)[0]
    kept = {f"v{current['version']}", "slugs", current["slug"], f"{current['slug']}.tar.zst"}
    seen = set()
    for node in NODES:
        listing = set(_ssh(lab, node, "sh", "-c", "cd /var/lib/fleet/apps/tenant 2>/dev/null && ls -A . slugs || true").split())
        listing -= {".:", "slugs:"}
        assert listing <= kept, (node, listing - kept)  # no older release dir (env file) and no older slug
        seen |= listing
    assert f"v{current['version']}" in seen  # where its web dyno runs


def test_destroy_removes_units_files_and_slugs_from_every_host(lab: Path, tmp_path: Path) -> None:
    src = write_app(tmp_path / "src", {"Procfile": "web: python3 web.py\nworker: sleep 3600\n", "web.py": WEB, "unique.txt": str(tmp_path)})
    deploy(lab, "doomed", src, "web=2", "worker=1")
    assert run_fleet(lab, "run", "-a", "doomed", "--detached", "--", "sleep 600").code == 0
    slug = json.loads(run_fleet(lab, "releases", "-a", "doomed", "--json").stdout)[0]["slug"]
    assert slug and f"/var/lib/fleet/apps/doomed/slugs/{slug}" in everywhere(lab, "find", "/var/lib/fleet/apps", "-name", f"{slug}*")
    res = run_fleet(lab, "apps.destroy", "doomed", "--confirm", "doomed")
    assert res.code == 0, res.stderr
    left = everywhere(lab, "sh", "-c", "systemctl list-units --all --plain --no-legend 'fleet.doomed.*'; ls /etc/systemd/system; find /var/lib/fleet -path /var/lib/fleet/stacks -prune -o -print")
    assert [line for line in left.splitlines() if "doomed" in line or slug in line] == []



PROBE = """
import socket, sys
for spec in sys.argv[1:]:
    host, port = spec.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        print(spec, "open")
    except OSError as e:
        print(spec, "closed", type(e).__name__)
"""


@pytest.fixture
def outside_listener() -> Iterator[str]:
    """A TCP listener on this machine at an address of the lab's bridge that is no fleet host: "the internet"."""
    address = "169.254.77.250"
    subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", BRIDGE], check=True)
    server = socket.create_server((address, 0))
    server.settimeout(30)
    try:
        yield f"{address}:{server.getsockname()[1]}"
    finally:
        server.close()
        subprocess.run(["ip", "addr", "del", f"{address}/32", "dev", BRIDGE], check=False)


def test_a_dyno_reaches_out_but_not_fleets_endpoints_or_other_dynos(
    lab: Path, tenant: str, neighbour: str, outside_listener: str
) -> None:
    [nb] = ps(lab, neighbour)
    targets = [f"{LabNode(i).address}:22" for i in (1, 2, 3)] + [
        f"{LabNode(1).address}:8404",  # HAProxy's stats and exporter
        f"{HOST_ADDRESS}:22",  # the control machine's sshd (git over SSH too)
        f"{nb['address']}:{nb['port']}",  # another app's dyno, through its host
        "169.254.128.1:22",  # the dyno network's gateway: the dyno's own host
    ]
    res = run_fleet(lab, "run", "-a", tenant, "--", "/usr/bin/python3", "-c", PROBE, *targets, outside_listener)
    assert res.code == 0, res.stdout + res.stderr
    seen = dict(line.split(" ", 1) for line in res.stdout.splitlines() if line.count(" ") >= 1 and ":" in line.split()[0])
    for target in targets:
        assert seen.get(target, "").startswith("closed"), (target, res.stdout)
    assert seen.get(outside_listener) == "open", res.stdout
    # the router still reaches both apps' dynos, and the neighbour's port is still its own
    grab = f"import socket; s = socket.create_server(('0.0.0.0', {nb['port']})); print('bound in my own namespace')"
    assert "bound in my own namespace" in run_fleet(lab, "run", "-a", tenant, "--", "/usr/bin/python3", "-c", grab).stdout
    with urllib.request.urlopen(f"http://{nb['address']}:{nb['port']}/", timeout=10) as resp:
        assert resp.read() == b"web.1"
