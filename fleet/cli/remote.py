"""Which app a git working directory deploys to, from its remotes (pure: `git remote -v` output in).

A fleet remote is the URL `apps.create` prints (``git_url``): ``ssh://USER@HOST<repos>/APP.git`` or the
local path ``<repos>/APP.git``, where <repos> is $FLEET_HOME/repos. The remote named ``fleet`` wins; else the
one app every remote under <repos> points to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from fleet.model import APP_NAME_RE

REMOTE_LINE_RE = re.compile(r"^(\S+)\s+(\S+)(?:\s+\((?:fetch|push)\))?$")


@dataclass(frozen=True)
class RemoteApp:
    app: str
    remote: str


def parse_remotes(text: str) -> dict[str, str]:
    """`git remote -v` output -> {remote name: URL} (the fetch URL)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        m = REMOTE_LINE_RE.match(line.strip())
        if m:
            found.setdefault(m.group(1), m.group(2))
    return found


def url_path(url: str) -> str:
    if "://" in url:
        return urlsplit(url).path
    if re.match(r"^[^/]+@[^/:]+:", url):  # scp-like user@host:path
        return url.split(":", 1)[1]
    return url


def app_of_url(url: str, repos_dir: str | None = None) -> str | None:
    """The app a URL pushes to: its last part without .git; with repos_dir, only a repository in it."""
    path = PurePosixPath(url_path(url))
    if path.suffix != ".git" or not APP_NAME_RE.fullmatch(path.stem):
        return None
    if repos_dir is not None and str(path.parent) != str(PurePosixPath(repos_dir)):
        return None
    return path.stem


def app_from_remotes(remotes: dict[str, str], repos_dir: str) -> RemoteApp | None:
    if "fleet" in remotes:
        app = app_of_url(remotes["fleet"])
        return RemoteApp(app, "fleet") if app else None
    ours = {name: app for name, url in sorted(remotes.items()) if (app := app_of_url(url, repos_dir))}
    if len(set(ours.values())) == 1:
        name, app = next(iter(ours.items()))
        return RemoteApp(app, name)
    return None
