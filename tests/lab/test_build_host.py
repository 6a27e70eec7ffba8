"""Builds on a build host from the inventory (the `build_host` setting), on the real lab."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
import yaml

from .conftest import run_fleet
from .test_lab import _ssh

pytestmark = pytest.mark.lab

APP = "remotebuilt"
FILES = {
    "Procfile": "web: python3 web.py\n",
    "web.py": (
        "import http.server, os\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        body = open('/app/built-on').read().encode()\n"
        "        self.send_response(200); self.end_headers(); self.wfile.write(body)\n"
        "    def log_message(self, *a): pass\n"
        "http.server.ThreadingHTTPServer(('0.0.0.0', int(os.environ['PORT'])), H).serve_forever()\n"
    ),
}
# a buildpack that says where it ran: in the slug, in its output, and in the app's build cache. It sees only the
# stack and its own dirs, not the host's files: where it ran, it learns from the build cache of that machine
# (the test puts a marker in node2's)
BUILDPACK = {
    "bin/detect": "#!/bin/sh\necho Where\n",
    "bin/compile": '#!/bin/sh\nh=$(cat "$2/where" 2>/dev/null || echo "not node2")\necho "-----> compiling on $h"\n'
    'echo "$h" > "$1/built-on"\necho "$h" > "$2/cached-on"\n',
    "bin/release": "#!/bin/sh\necho '--- {}'\n",
}


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if name.startswith("bin/"):
            path.chmod(0o755)
    return root


def set_build_host(home: Path, value: str | None) -> None:
    config = home / "config.yml"
    data = yaml.safe_load(config.read_text()) or {}
    if value is None:
        data.pop("build_host", None)
    else:
        data["build_host"] = value
    config.write_text(yaml.safe_dump(data))


def test_a_build_runs_on_the_build_host_and_its_slug_deploys(lab: Path, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", FILES)
    buildpack = write_tree(tmp_path / "where-buildpack", BUILDPACK)
    assert run_fleet(lab, "apps.create", APP, "--buildpack", str(buildpack)).code == 0
    set_build_host(lab, "node2")
    _ssh(lab, "node2", "sh", "-c", f"mkdir -p /var/lib/fleet/cache/{APP} && echo node2 > /var/lib/fleet/cache/{APP}/where")
    try:
        res = run_fleet(lab, "deploy", "-a", APP, str(src))
        assert res.code == 0, res.stdout + res.stderr
        assert "-----> Building on node2" in res.stdout
        assert "-----> compiling on node2" in res.stdout  # streamed back over SSH as it ran
        assert "-----> v1 deployed" in res.stdout
        assert _ssh(lab, "node2", "cat", f"/var/lib/fleet/cache/{APP}/cached-on").strip() == "node2"
        assert _ssh(lab, "node2", "ls", "-A", "/var/lib/fleet/builds").strip() == ""  # workspace removed
        assert not (lab / "cache" / APP / "cached-on").exists()
        [web] = [d for d in json.loads(run_fleet(lab, "ps", "-a", APP, "--json").stdout) if d["type"] == "web"]
        with urllib.request.urlopen(f"http://{web['address']}:{web['port']}/", timeout=10) as resp:
            assert resp.read().decode().strip() == "node2"

        # a build host that is not in the inventory: one clear line, nothing built or released
        set_build_host(lab, "node9")
        bad = run_fleet(lab, "deploy", "-a", APP, str(src))
        assert bad.code == 1
        assert bad.stderr.strip().endswith(
            "config.yml: build_host: 'node9' is not a host of the inventory (node1, node2, node3); "
            "name one, or remove the setting to build on this machine"
        )
        assert len(bad.stderr.strip().splitlines()) == 1
        assert [r["version"] for r in json.loads(run_fleet(lab, "releases", "-a", APP, "--json").stdout)] == [1]
    finally:
        set_build_host(lab, None)
        assert run_fleet(lab, "apps.destroy", APP, "--confirm", APP).code == 0
