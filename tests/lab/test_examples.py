"""The example apps as people deploy them, unchanged, through `git push`, answering through the router
(issue 12): Django (a static manifest, a release-phase migration, the PostgreSQL add-on its app.json asks
for, made on the first deploy), Flask, Express, and a Vite front end built by the nodejs buildpack and
served by the static one."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import run_fleet
from .test_dynos import ps
from .test_router import get

pytestmark = pytest.mark.lab

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}


def push(lab: Path, tmp_path: Path, example: str, app: str) -> str:
    """`git push` of the example, unchanged, to the app's remote; the push's remote output."""
    work = tmp_path / example
    shutil.copytree(EXAMPLES / example, work)
    env = {**os.environ, **GIT_ENV}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", example]):
        subprocess.run(["git", *args], cwd=work, check=True, capture_output=True, env=env, timeout=60)
    remote = json.loads(run_fleet(lab, "apps.info", "-a", app, "--json").stdout)["git_url"]
    res = subprocess.run(["git", "push", remote, "main"], cwd=work, capture_output=True, text=True, env={**env, "FLEET_HOME": str(lab)},
                         timeout=900)  # fmt: skip
    out = "\n".join(line.removeprefix("remote: ").rstrip() for line in res.stderr.splitlines())
    assert res.returncode == 0, out[-4000:]
    return out


@pytest.fixture
def app(lab: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"ex-{request.node.callspec.id}"
    assert run_fleet(lab, "apps.create", name).code == 0
    yield name
    destroy_app(lab, name)


def destroy_app(lab: Path, name: str) -> None:
    """The app's own add-ons first (an app that owns one is not destroyed), then the app."""
    listed = run_fleet(lab, "addons", "-a", name, "--json")
    for addon in listed.json() if listed.code == 0 else []:  # type: ignore[union-attr]
        if addon["app"] == name:
            run_fleet(lab, "addons.destroy", addon["name"], "-a", name, "--confirm", name)
    run_fleet(lab, "apps.destroy", name, "--confirm", name)


@pytest.mark.parametrize("example", ["django", "python", "express", "vite"], ids=["django", "flask", "express", "vite"])
def test_an_example_pushed_unchanged_answers_through_the_router(lab: Path, tmp_path: Path, app: str, example: str) -> None:
    if example == "vite":  # built by nodejs, served by static: the app's buildpacks, in order
        assert run_fleet(lab, "buildpacks.add", "-a", app, "nodejs").code == 0
        assert run_fleet(lab, "buildpacks.add", "-a", app, "static").code == 0
    out = push(lab, tmp_path, example, app)
    # Django's app.json asks for heroku-postgresql: its DATABASE_URL is v1 (a config release), the build v2
    assert f"-----> v{2 if example == 'django' else 1} deployed" in out, out[-2000:]
    [web] = ps(lab, app)
    assert web["state"] == "up"
    status, body, headers = get(f"{app}.fleet.test")
    assert status == 200, body[:2000]
    if example == "django":
        assert "-----> Provisioning the add-ons the app declares" in out, out[-4000:]
        assert re.search(r"Created postgres-[0-9a-f]{8} as DATABASE_URL", out), out[-4000:]
        assert "-----> $ python manage.py collectstatic --noinput" in out
        assert "-----> Running release command: python manage.py migrate --noinput" in out
        assert "Applying hello.0001_initial... OK" in out and "Applying hello.0002_note... OK" in out
        # the release phase is in the app's stream too, as release.N
        stream = run_fleet(lab, "logs", "-a", app, "--dyno", "release", "-n", "1500").stdout
        assert re.search(r"fleet\[release\.\d+\]: Starting process with command `python manage\.py migrate --noinput`", stream), stream
        assert re.search(r"app\[release\.\d+\]:   Applying hello\.0001_initial\.\.\. OK", stream), stream
        assert re.search(r"fleet\[release\.\d+\]: Process exited with status 0", stream), stream
        assert "Hello from Django on web.1" in body
        css = re.search(r'href="(/static/hello/site\.[0-9a-f]{12}\.css)"', body)
        assert css, body  # the manifest's hashed name (a missing manifest entry would be a 500)
        status, text, headers = get(f"{app}.fleet.test", css.group(1))
        assert status == 200 and "font-family" in text
        assert "max-age=315360000" in headers.get("cache-control", "")  # whitenoise: hashed files cached for good
    elif example == "python":
        assert body == f"Hello from web.1 of {app}\n"
    elif example == "express":
        assert json.loads(body) == {"hello": "from Express", "dyno": "web.1", "nodeEnv": "production"}
    else:
        assert "<title>Hello from Vite</title>" in body
        script = re.search(r'src="(/assets/index-[^"]+\.js)"', body)
        assert script, body  # the built page, not the source one (/src/main.js)
        status, text, _ = get(f"{app}.fleet.test", script.group(1))
        assert status == 200 and "bundled by Vite" in text
