"""The app from the current directory's git remote: the pure parser, and `git remote -v` in a real repository."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleet.cli.remote import RemoteApp, app_from_remotes, app_of_url, parse_remotes
from fleet.program import app_from_git

REPOS = "/root/.fleet/repos"


def test_parse_remotes() -> None:
    text = (
        "fleet\tssh://root@10.0.0.1/root/.fleet/repos/myapp.git (fetch)\n"
        "fleet\tssh://root@10.0.0.1/root/.fleet/repos/myapp.git (push)\n"
        "origin\tgit@github.com:me/myapp.git (fetch)\n"
    )
    assert parse_remotes(text) == {"fleet": "ssh://root@10.0.0.1/root/.fleet/repos/myapp.git", "origin": "git@github.com:me/myapp.git"}


@pytest.mark.parametrize(
    ("remotes", "found"),
    [
        ({"fleet": "ssh://root@h/srv/fleet/repos/myapp.git"}, RemoteApp("myapp", "fleet")),  # named fleet: any fleet URL
        ({"fleet": "/root/.fleet/repos/my-app.git", "origin": "/root/.fleet/repos/other.git"}, RemoteApp("my-app", "fleet")),
        ({"prod": f"{REPOS}/shop.git", "origin": "git@github.com:me/shop.git"}, RemoteApp("shop", "prod")),
        ({"a": f"ssh://root@h{REPOS}/shop.git", "b": f"{REPOS}/shop.git"}, RemoteApp("shop", "a")),  # one app, two remotes
        ({"a": f"{REPOS}/shop.git", "b": f"{REPOS}/blog.git"}, None),  # two apps: say -a
        ({"origin": "git@github.com:me/shop.git"}, None),
        ({}, None),
        ({"fleet": "https://example.com/NotAnApp.git"}, None),
    ],
)
def test_app_from_remotes(remotes: dict[str, str], found: RemoteApp | None) -> None:
    assert app_from_remotes(remotes, REPOS) == found


def test_app_of_url() -> None:
    assert app_of_url("ssh://root@10.0.0.1:2222/var/fleet/repos/web-1.git") == "web-1"
    assert app_of_url("root@host:/var/fleet/repos/web-1.git") == "web-1"
    assert app_of_url("/var/fleet/repos/web-1.git", "/elsewhere/repos") is None
    assert app_of_url("/var/fleet/repos/web-1") is None


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def test_app_from_git_in_a_real_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "home"))
    work = tmp_path / "work"
    work.mkdir()
    assert app_from_git(str(work)) is None  # not a repository
    _git(work, "init", "-q")
    assert app_from_git(str(work)) is None  # no remote
    _git(work, "remote", "add", "prod", str(tmp_path / "home" / "repos" / "myapp.git"))
    assert app_from_git(str(work)) == RemoteApp("myapp", "prod")
    _git(work, "remote", "add", "fleet", "ssh://root@192.0.2.1/srv/repos/other-app.git")
    assert app_from_git(str(work)) == RemoteApp("other-app", "fleet")


def test_fleet_takes_the_app_from_the_git_remote(tmp_path: Path) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "FLEET_HOME": str(home)}
    env.pop("FLEET_INVENTORY", None)
    fleet = [sys.executable, "-c", "import sys; sys.argv[0] = 'fleet'; from fleet.program import main; main()"]
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")])

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*fleet, *args], cwd=work, env=env, capture_output=True, text=True, timeout=60)

    res = run("config")
    assert (res.returncode, res.stderr) == (2, "fleet: error: config needs an app: -a APP (or run it in a git repository "
                                               "with a `fleet` remote); usage: fleet config -a APP [--json|--shell]\n")  # fmt: skip
    assert run("apps.create", "myapp").returncode == 0
    _git(work, "init", "-q")
    _git(work, "remote", "add", "fleet", str(home / "repos" / "myapp.git"))
    res = run("config:set", "K=V")
    assert res.returncode == 0, res.stderr
    assert res.stderr == "fleet: using app 'myapp' from git remote 'fleet'\n"
    res = run("config:get", "K")
    assert (res.stdout, res.returncode) == ("V\n", 0)
    assert run("config", "-a", "myapp").stderr == ""  # -a given: no remote asked
