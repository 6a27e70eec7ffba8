"""Slug compilation for real: buildpacks in nspawn, the slug store, git push."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import EXAMPLES, FleetCLI, git

pytestmark = pytest.mark.lab

WORK_DIR = Path("/var/lib/fleet/builds")


def slug_names(fleet: FleetCLI, sha: str) -> list[str]:
    path = fleet.home / "slugs" / f"{sha}.tar.zst"
    out = subprocess.run(["tar", "-I", "zstd", "-tf", str(path)], capture_output=True, text=True, check=True).stdout
    return [n.removeprefix("./") for n in out.splitlines()]


def _nothing_changed(fleet: FleetCLI, app: str, slugs_before: set[str], builds_before: int) -> None:
    assert fleet.slugs() == slugs_before
    assert len(fleet.builds(app)) == builds_before
    assert not [p for p in WORK_DIR.iterdir() if p.name.startswith(app + "-")]


# -- apps ---------------------------------------------------------------------------
def test_app_names_follow_herokus_rule(fleet: FleetCLI) -> None:
    for bad in ("ab", "My-app", "1app", "app_x", "a" * 31):
        res = fleet("apps.create", bad)
        assert res.code == 2, res.output
        assert res.stderr.strip() == (
            f"fleet: error: {bad!r} is not a valid app name: use a lowercase letter first, "
            "then lowercase letters, digits and dashes, 3 to 30 characters in all"
        )
    assert fleet("apps.list").stdout.strip() == "no apps yet: `fleet apps.create NAME`"
    assert not (fleet.home / "repos").exists() or not list((fleet.home / "repos").iterdir())


def test_create_info_list_destroy(fleet: FleetCLI) -> None:
    res = fleet("apps.create", "doomed")
    assert res.code == 0, res.output
    repo = fleet.home / "repos" / "doomed.git"
    assert f"git remote: {repo}" in res.stdout
    info = json.loads(fleet("apps.info", "-a", "doomed", "--json").stdout)
    assert info["git_url"] == str(repo) and info["builds"] == 0
    assert (repo / "hooks" / "pre-receive").stat().st_mode & 0o111
    assert fleet("apps.create", "doomed").stderr.strip() == "fleet: error: app doomed already exists; pick another name"
    refused = fleet("apps.destroy", "doomed")
    assert refused.code == 2 and "--confirm doomed" in refused.stderr
    assert repo.exists()
    assert fleet("apps.destroy", "doomed", "--confirm", "doomed").code == 0
    assert not repo.exists()
    assert "no app named 'doomed'" in fleet("apps.info", "-a", "doomed").stderr


# -- the examples, each with its buildpack ------------------------------------------------
@pytest.mark.parametrize(
    ("example", "buildpack", "types", "expected_files"),
    [
        ("python", "python", {"web": "gunicorn --bind 0.0.0.0:$PORT --workers 2 app:app"}, ["app.py", ".venv/bin/gunicorn", ".profile.d/python.sh"]),
        ("node", "nodejs", {"web": "npm start"}, ["server.js", "package.json", ".profile.d/nodejs.sh"]),
        ("static", "static", {"web": "python3 -m http.server $PORT --bind 0.0.0.0 --directory /app/public"}, ["public/index.html"]),
        ("worker", "procfile", {"web": "python3 web.py", "worker": "python3 worker.py"}, ["web.py", "worker.py", "Procfile"]),
        ("express", "nodejs", {"web": "npm start"}, ["index.js", "node_modules/express/package.json", ".profile.d/nodejs.sh"]),
        ("django", "python", {"web": "gunicorn mysite.wsgi --bind 0.0.0.0:$PORT --workers 2 --log-file -",
                              "release": "python manage.py migrate --noinput"},
         ["manage.py", ".venv/bin/gunicorn", "staticfiles/staticfiles.json"]),  # collected at build time
    ],
)  # fmt: skip
def test_examples_build_with_their_buildpack(
    fleet: FleetCLI, example: str, buildpack: str, types: dict[str, str], expected_files: list[str]
) -> None:
    app = f"ex-{example}"
    assert fleet("apps.create", app).code == 0
    res = fleet("deploy", "-a", app, str(EXAMPLES / example))
    assert res.code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0] == f"-----> Building {app} from {EXAMPLES / example}"
    assert "-----> Detecting buildpack (order: python, nodejs, static, procfile)" in lines
    assert any(line.endswith(" app detected") for line in lines)
    assert "-----> Discovering process types" in lines
    assert any(line.startswith("-----> Compressing... done, ") for line in lines)
    [build] = fleet.builds(app)
    assert build["buildpack"] == buildpack and build["status"] == "succeeded"
    assert build["process_types"] == types
    names = slug_names(fleet, str(build["slug_sha256"]))
    for f in expected_files:
        assert f in names, (f, names[:20])
    assert build["slug_size"] == (fleet.home / "slugs" / f"{build['slug_sha256']}.tar.zst").stat().st_size


def test_python_slug_honours_slugignore_and_warm_build_reuses_cache(fleet: FleetCLI) -> None:
    [build] = fleet.builds("ex-python")
    names = slug_names(fleet, str(build["slug_sha256"]))
    assert not [n for n in names if n.startswith("tests/")]
    res = fleet("deploy", "-a", "ex-python", str(EXAMPLES / "python"))
    assert res.code == 0, res.output
    assert "-----> Dependencies unchanged since the last build: reusing the cached environment" in res.stdout
    assert "Installing dependencies" not in res.stdout
    assert [b["number"] for b in fleet.builds("ex-python")] == [2, 1]


def test_slug_files_belong_to_the_dyno_user_and_the_build_ran_unprivileged(fleet: FleetCLI, tmp_path: Path) -> None:
    src = tmp_path / "whoami"
    src.mkdir()
    (src / "Procfile").write_text("web: python3 -m http.server $PORT\n")
    bp = tmp_path / "bp"
    (bp / "bin").mkdir(parents=True)
    (bp / "bin" / "detect").write_text("#!/bin/sh\necho Whoami\n")
    (bp / "bin" / "compile").write_text(
        '#!/bin/sh\nid -un > "$1/built-by"\ntouch /etc/x 2>/dev/null && echo ROOT-WRITABLE\necho "env dir: $(ls -A "$3" | wc -l) files"\n'
        'cat "$3/GREETING" > "$1/greeting"; stat -c "%a %U" "$3/GREETING" "$3" > "$1/env-modes"\n'
        'echo "$3/WEIRD:$(cat "$3/WEIRD" | wc -c) bytes"\n'
    )
    (bp / "bin" / "release").write_text("#!/bin/sh\necho '--- {}'\n")
    for f in (bp / "bin").iterdir():
        f.chmod(0o755)
    assert fleet("apps.create", "whoami", "--buildpack", str(bp)).code == 0
    weird = "line one\n  'quoted' $HOME `x` é\n"
    assert fleet("config.set", "-a", "whoami", "GREETING=hello there", f"WEIRD={weird}", "SECRET=s3cr3t-value").code == 0
    res = fleet("deploy", "-a", "whoami", str(src))
    assert res.code == 0, res.output
    assert "ROOT-WRITABLE" not in res.stdout
    assert "env dir: 3 files" in res.stdout  # ENV_DIR: one file per config var, as Heroku gives them
    assert f"/tmp/env/WEIRD:{len(weird.encode())} bytes" in res.stdout  # byte for byte
    assert "s3cr3t-value" not in res.output
    [build] = fleet.builds("whoami")
    path = fleet.home / "slugs" / f"{build['slug_sha256']}.tar.zst"
    raw = subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        member = tar.getmember("./built-by")
        assert tar.extractfile(member).read() == b"dyno\n"  # type: ignore[union-attr]
        assert member.uid == 1500
        assert tar.extractfile("./greeting").read() == b"hello there"  # type: ignore[union-attr]
        assert tar.extractfile("./env-modes").read() == b"400 dyno\n500 dyno\n"  # type: ignore[union-attr]


# -- git push --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pushed(fleet: FleetCLI, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("gitwork") / "app"
    shutil.copytree(EXAMPLES / "worker", work)
    assert git(work, "init", "-q", "-b", "main").returncode == 0
    git(work, "add", "-A")
    git(work, "commit", "-qm", "first")
    assert fleet("apps.create", "pushy").code == 0
    return work


def test_push_to_main_builds_and_streams_remote_lines(fleet: FleetCLI, pushed: Path) -> None:
    repo = fleet.home / "repos" / "pushy.git"
    res = git(pushed, "push", str(repo), "main")
    assert res.returncode == 0, res.stderr
    remote = [line.removeprefix("remote: ").rstrip() for line in res.stderr.splitlines() if line.startswith("remote: ")]
    assert remote[0].startswith("-----> Building pushy from commit ")
    assert "-----> Procfile app detected" in remote
    assert "       Procfile declares types -> web, worker" in remote
    head = git(pushed, "rev-parse", "HEAD").stdout.strip()
    [build] = fleet.builds("pushy")
    assert build["commit"] == head


def test_push_to_other_branch_is_stored_not_built(fleet: FleetCLI, pushed: Path) -> None:
    repo = fleet.home / "repos" / "pushy.git"
    git(pushed, "checkout", "-q", "-b", "feature")
    (pushed / "web.py").write_text((pushed / "web.py").read_text() + "# feature\n")
    git(pushed, "commit", "-qam", "feature")
    res = git(pushed, "push", str(repo), "feature")
    assert res.returncode == 0, res.stderr
    assert "Building" not in res.stderr
    assert len(fleet.builds("pushy")) == 1
    assert git(repo, "rev-parse", "refs/heads/feature").stdout.strip() == git(pushed, "rev-parse", "HEAD").stdout.strip()
    res = git(pushed, "push", str(repo), "feature:main")
    assert res.returncode == 0, res.stderr
    builds = fleet.builds("pushy")
    assert len(builds) == 2 and builds[0]["commit"] == git(pushed, "rev-parse", "HEAD").stdout.strip()


def test_failed_build_rejects_push_and_changes_nothing(fleet: FleetCLI, pushed: Path) -> None:
    repo = fleet.home / "repos" / "pushy.git"
    main_before = git(repo, "rev-parse", "refs/heads/main").stdout.strip()
    slugs_before, builds_before = fleet.slugs(), len(fleet.builds("pushy"))
    (pushed / "Procfile").write_text("web python3 web.py\n")
    git(pushed, "commit", "-qam", "broken Procfile")
    res = git(pushed, "push", str(repo), "HEAD:main")
    assert res.returncode != 0
    assert (
        "remote:  !     Push rejected: Procfile line 1: expected '<process type>: <command>', got 'web python3 web.py'"
        in res.stderr
    )
    assert "pre-receive hook declined" in res.stderr
    assert git(repo, "rev-parse", "refs/heads/main").stdout.strip() == main_before
    _nothing_changed(fleet, "pushy", slugs_before, builds_before)


def test_push_to_an_app_that_does_not_exist(fleet: FleetCLI, pushed: Path) -> None:
    res = git(pushed, "push", str(fleet.home / "repos" / "ghost.git"), "HEAD:main")
    assert res.returncode != 0
    assert "does not appear to be a git repository" in res.stderr
    assert not (fleet.home / "repos" / "ghost.git").exists()


# -- bad input: a clear message, nothing left behind ---------------------------------------------
def _app_with_source(fleet: FleetCLI, tmp_path: Path, app: str, files: dict[str, str], buildpack: str = "") -> Path:
    src = tmp_path / app
    src.mkdir()
    for name, text in files.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(text)
    args = ["apps.create", app] + (["--buildpack", buildpack] if buildpack else [])
    assert fleet(*args).code == 0
    return src


def _deploy_fails(fleet: FleetCLI, app: str, src: Path, message: str, env: dict[str, str] | None = None) -> str:
    slugs_before, builds_before = fleet.slugs(), len(fleet.builds(app))
    res = fleet("deploy", "-a", app, str(src), env=env)
    assert res.code != 0, res.output
    assert res.stderr.strip() == f"fleet: error: {message}", res.output
    _nothing_changed(fleet, app, slugs_before, builds_before)
    return res.stdout


def test_no_buildpack_detects(fleet: FleetCLI, tmp_path: Path) -> None:
    src = _app_with_source(fleet, tmp_path, "nothing", {"README.txt": "hi\n"})
    _deploy_fails(
        fleet, "nothing", src,
        "no buildpack detected this app (tried: python, nodejs, static, procfile); add requirements.txt, package.json, "
        "index.html or a Procfile, or pick one with `apps.create --buildpack`",
    )  # fmt: skip


def test_compile_failure(fleet: FleetCLI, tmp_path: Path) -> None:
    src = _app_with_source(
        fleet, tmp_path, "badreq", {"requirements.txt": "this-package-does-not-exist-fleet==0.0.1\n", "Procfile": "web: x\n"}
    )
    out = _deploy_fails(fleet, "badreq", src, "the python buildpack's compile step failed (exit 1); see the output above")
    assert "-----> Installing dependencies from requirements.txt with pip" in out


def test_django_collectstatic_failure_fails_the_build_and_can_be_disabled(fleet: FleetCLI, tmp_path: Path) -> None:
    files = {p.relative_to(EXAMPLES / "django").as_posix(): p.read_text() for p in (EXAMPLES / "django").rglob("*") if p.is_file()}
    files["mysite/settings.py"] += "\nSTATIC_ROOT = None  # broken on purpose\n"
    src = _app_with_source(fleet, tmp_path, "djbroken", files)
    out = _deploy_fails(fleet, "djbroken", src, "the python buildpack's compile step failed (exit 1); see the output above")
    assert "-----> $ python manage.py collectstatic --noinput" in out
    assert "ImproperlyConfigured" in out
    assert fleet("config.set", "-a", "djbroken", "DISABLE_COLLECTSTATIC=1").code == 0
    res = fleet("deploy", "-a", "djbroken", str(src))
    assert res.code == 0, res.output
    assert "-----> Skipping Django collectstatic (DISABLE_COLLECTSTATIC is set)" in res.stdout


def test_a_vite_front_end_built_by_nodejs_and_served_by_static_in_that_order(fleet: FleetCLI) -> None:
    assert fleet("apps.create", "ex-vite").code == 0
    assert fleet("buildpacks.add", "-a", "ex-vite", "nodejs").code == 0
    assert fleet("buildpacks.add", "-a", "ex-vite", "static").code == 0
    res = fleet("deploy", "-a", "ex-vite", str(EXAMPLES / "vite"))
    assert res.code == 0, res.output
    lines = res.stdout.splitlines()
    order = ["-----> Buildpacks of ex-vite, in order: nodejs, static", "-----> Compiling with nodejs",
             "-----> Installing dependencies with npm ci --include=dev --no-progress", "-----> Running build",
             "-----> Pruning devDependencies", "-----> Compiling with static"]  # fmt: skip
    assert [line for line in lines if line in order] == order
    assert any(line.startswith("-----> Serving ") and line.endswith(" files from /app/dist") for line in lines)
    [build] = fleet.builds("ex-vite")
    assert build["buildpack"] == "nodejs,static"
    assert build["process_types"] == {"web": "python3 -m http.server $PORT --bind 0.0.0.0 --directory /app/dist"}
    names = slug_names(fleet, str(build["slug_sha256"]))
    assert "dist/index.html" in names and any(n.startswith("dist/assets/index-") and n.endswith(".js") for n in names)
    assert not [n for n in names if n.startswith("node_modules/vite/")]  # a devDependency: pruned after the build


def test_a_buildpack_of_the_list_that_does_not_detect_fails_the_build(fleet: FleetCLI, tmp_path: Path) -> None:
    src = _app_with_source(fleet, tmp_path, "nodetect", {"Procfile": "web: x\n"})
    assert fleet("buildpacks.add", "-a", "nodetect", "python").code == 0
    _deploy_fails(fleet, "nodetect", src, "the python buildpack does not detect this app (its bin/detect said no)")


@pytest.mark.parametrize("manager", ["pnpm", "yarn"])
def test_pnpm_and_yarn_lock_files_install_with_their_own_tool(fleet: FleetCLI, tmp_path: Path, manager: str) -> None:
    pkg = {"name": "lockapp", "version": "1.0.0", "private": True, "dependencies": {"ms": "^2.1.3"},
           "devDependencies": {"is-number": "^7.0.0"}, "scripts": {"start": "node -e 'console.log(1)'"}}  # fmt: skip
    src = _app_with_source(fleet, tmp_path, f"lock-{manager}", {"package.json": json.dumps(pkg)})
    tool = {"pnpm": ["--package=pnpm@9", "--", "pnpm", "install", "--lockfile-only"],
            "yarn": ["--package=yarn@1", "--", "yarn", "install", "--ignore-scripts"]}[manager]  # fmt: skip
    made = subprocess.run(["npm", "exec", "--yes", *tool], cwd=src, capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    shutil.rmtree(src / "node_modules", ignore_errors=True)
    res = fleet("deploy", "-a", f"lock-{manager}", str(src))
    assert res.code == 0, res.output
    frozen = {"pnpm": "--frozen-lockfile --prod=false", "yarn": "--frozen-lockfile"}[manager]
    assert f"-----> Installing dependencies with {manager} install {frozen}" in res.stdout
    assert "-----> Pruning devDependencies" in res.stdout
    [build] = fleet.builds(f"lock-{manager}")
    names = slug_names(fleet, str(build["slug_sha256"]))
    assert any(n.startswith("node_modules/") and "/ms/" in n for n in names)
    assert not [n for n in names if n.startswith("node_modules/is-number")]  # pruned: a devDependency cannot be required
    if manager == "yarn":
        assert not [n for n in names if "is-number" in n]  # (pnpm keeps it in its own store, node_modules/.pnpm)


def test_node_build_scripts_run_in_herokus_order_with_the_config_vars(fleet: FleetCLI, tmp_path: Path) -> None:
    scripts = {"heroku-prebuild": "echo pre > pre.txt", "heroku-postbuild": "echo \"$GREETING\" > post.txt",
               "build": "echo build > build.txt", "start": "node -e 1"}  # fmt: skip
    pkg = {"name": "hooks", "version": "1.0.0", "private": True, "scripts": scripts, "devDependencies": {"is-number": "^7.0.0"}}
    src = _app_with_source(fleet, tmp_path, "hooks", {"package.json": json.dumps(pkg)})
    assert fleet("config.set", "-a", "hooks", "GREETING=hi from config", "NPM_CONFIG_PRODUCTION=false").code == 0
    res = fleet("deploy", "-a", "hooks", str(src))
    assert res.code == 0, res.output
    assert "-----> Skipping pruning of devDependencies (NPM_CONFIG_PRODUCTION or YARN_PRODUCTION is false)" in res.stdout
    [build] = fleet.builds("hooks")
    names = slug_names(fleet, str(build["slug_sha256"]))
    assert "pre.txt" in names and "post.txt" in names and "build.txt" not in names  # heroku-postbuild instead of build
    assert "node_modules/is-number/package.json" in names  # kept
    path = fleet.home / "slugs" / f"{build['slug_sha256']}.tar.zst"
    raw = subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        assert tar.extractfile("./post.txt").read() == b"hi from config\n"  # type: ignore[union-attr]


def test_a_lock_file_that_disagrees_with_package_json_is_refused(fleet: FleetCLI, tmp_path: Path) -> None:
    pkg = json.loads((EXAMPLES / "express" / "package.json").read_text())
    pkg["dependencies"]["ms"] = "^2.1.3"  # not in the lock file
    src = _app_with_source(fleet, tmp_path, "badlock", {"package.json": json.dumps(pkg),
                           "package-lock.json": (EXAMPLES / "express" / "package-lock.json").read_text(), "index.js": ""})  # fmt: skip
    out = _deploy_fails(fleet, "badlock", src, "the nodejs buildpack's compile step failed (exit 1); see the output above")
    assert " !     package-lock.json does not match package.json: run `npm install` and commit package-lock.json" in out


@pytest.fixture(scope="module")
def lock_tools(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """uv, pipenv and Poetry on this machine, to write the lock files an app would commit."""
    venv = tmp_path_factory.mktemp("locktools") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    res = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "uv", "pipenv", "poetry"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    return venv / "bin"


def _pip_index(lock_tools: Path) -> str:
    """The package index pip uses: this machine's PyPI answers its simple index only (Poetry's own PyPI client reads the
    JSON API), so the Poetry project names it as a source, as a project on a private index would."""
    res = subprocess.run([str(lock_tools / "python"), "-c", "from pip._internal.models.index import PyPI; print(PyPI.simple_url)"],
                         capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    return res.stdout.strip()


LOCKED_PROJECTS = {
    "uv": ("pyproject.toml", "uv.lock", '[project]\nname = "locked"\nversion = "0.1.0"\nrequires-python = ">=3.11"\ndependencies = ["six>=1.16"]\n'),
    "pipenv": ("Pipfile", "Pipfile.lock", '[packages]\nsix = ">=1.16"\n\n[requires]\npython_version = "3.11"\n'),
    # a dev group, which the build leaves out, and the index the lock was made from
    "poetry": ("pyproject.toml", "poetry.lock", '[project]\nname = "locked"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
               'dependencies = ["six>=1.16"]\n\n[tool.poetry]\npackage-mode = false\n\n[tool.poetry.group.dev.dependencies]\n'
               'iniconfig = "*"\n\n[[tool.poetry.source]]\nname = "index"\nurl = "{index}"\npriority = "primary"\n'),
}  # fmt: skip


@pytest.mark.parametrize("manager", ["uv", "pipenv", "poetry"])
def test_uv_pipenv_and_poetry_lock_files_install_exactly_and_a_stale_lock_is_refused(
    fleet: FleetCLI, tmp_path: Path, lock_tools: Path, manager: str
) -> None:
    manifest, lock, text = LOCKED_PROJECTS[manager]
    if manager == "poetry":
        text = text.format(index=_pip_index(lock_tools))
    app = f"py-{manager}"
    src = _app_with_source(fleet, tmp_path, app, {manifest: text, "Procfile": "worker: python -c 'import six; print(six.__version__)'\n"})
    argv = {"uv": [str(lock_tools / "uv"), "lock", "-q"], "pipenv": [str(lock_tools / "pipenv"), "lock"],
            "poetry": [str(lock_tools / "poetry"), "lock", "--no-interaction"]}[manager]  # fmt: skip
    # pipenv's Pipfile hash counts this machine's pip settings: lock as on a plain developer machine (no PIP_*, own HOME)
    plain = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home"), "PIPENV_VENV_IN_PROJECT": "1"}
    made = subprocess.run(argv, cwd=src, capture_output=True, text=True, timeout=300, env=plain if manager == "pipenv" else
                          {**os.environ, "HOME": str(tmp_path / "home")})  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    assert (src / lock).is_file()
    shutil.rmtree(src / ".venv", ignore_errors=True)
    good = (src / manifest).read_text()
    stale = good.replace("[packages]\n", '[packages]\nidna = "*"\n') if manager == "pipenv" else good.replace('"six>=1.16"', '"six>=1.16", "idna"')
    assert stale != good
    (src / manifest).write_text(stale)  # a dependency the lock file does not have
    out = _deploy_fails(fleet, app, src, "the python buildpack's compile step failed (exit 1); see the output above")
    assert f" !     {lock} does not match {manifest}: run `{manager} lock` and commit {lock}" in out
    (src / manifest).write_text(good)
    res = fleet("deploy", "-a", app, str(src))
    assert res.code == 0, res.output
    assert f"-----> Installing dependencies from {lock} with {manager}" in res.stdout
    [build] = fleet.builds(app)
    names = slug_names(fleet, str(build["slug_sha256"]))
    assert ".venv/lib/python3.11/site-packages/six.py" in names
    assert not [n for n in names if "/site-packages/idna/" in n]  # what the stale manifest asked for: not installed
    assert not [n for n in names if "/site-packages/iniconfig" in n]  # poetry's dev group: not installed


def test_python_version_not_on_the_stack(fleet: FleetCLI, tmp_path: Path) -> None:
    src = _app_with_source(
        fleet, tmp_path, "oldpy", {"requirements.txt": "\n", ".python-version": "3.8\n", "Procfile": "web: x\n"}
    )
    res = fleet("deploy", "-a", "oldpy", str(src))
    assert res.code != 0
    assert " !     Python 3.8 is not available on this stack (fleet-12); available: 3.11" in res.stdout
    # what every stack offers, and how to move the app
    assert re.search(r" !     Stacks: fleet-12 \(python 3\.11\.[0-9]+, node 18\.[0-9.]+\); fleet-13 \(python 3\.13", res.stdout), res.stdout
    assert "or move the app with `fleet stack.set -a APP STACK`" in res.stdout
    assert fleet.builds("oldpy") == []


def test_node_engine_not_on_the_stack(fleet: FleetCLI, tmp_path: Path) -> None:
    pkg = json.dumps({"name": "x", "version": "1.0.0", "engines": {"node": "<10"}, "scripts": {"start": "node x.js"}})
    src = _app_with_source(fleet, tmp_path, "oldnode", {"package.json": pkg})
    res = fleet("deploy", "-a", "oldnode", str(src))
    assert res.code != 0
    assert "package.json asks for Node.js <10 (engines.node); this stack (fleet-12) has 18." in res.stdout
    assert " !     Stacks: fleet-12 (python 3.11" in res.stdout


@pytest.mark.parametrize(
    ("procfile", "message"),
    [
        ("web python app.py\n", "Procfile line 1: expected '<process type>: <command>', got 'web python app.py'"),
        ("# nothing here\n\n", "Procfile declares no process types; add a line such as 'web: python app.py'"),
        ("web: a\nweb: b\n", "Procfile line 2: process type 'web' is declared twice"),
        ("we b: x\n", "Procfile line 1: expected '<process type>: <command>', got 'we b: x'"),
    ],
)
def test_bad_procfiles(fleet: FleetCLI, tmp_path: Path, procfile: str, message: str) -> None:
    app = f"proc-{abs(hash(procfile)) % 100000}"
    src = _app_with_source(fleet, tmp_path, app, {"Procfile": procfile})
    _deploy_fails(fleet, app, src, message)


def test_slug_over_the_limit(fleet: FleetCLI, tmp_path: Path) -> None:
    src = _app_with_source(fleet, tmp_path, "toobig", {"Procfile": "web: x\n"})
    (src / "blob.bin").write_bytes(os.urandom(300_000))  # does not compress
    slugs_before = fleet.slugs()
    res = fleet("deploy", "-a", "toobig", str(src), env={"FLEET_SLUG_MAX_MB": "0.1"})
    assert res.code != 0
    assert res.stderr.startswith("fleet: error: slug is 30"), res.stderr
    assert res.stderr.rstrip().endswith("KB, over the 100.0KB limit; leave big files out with .slugignore")
    _nothing_changed(fleet, "toobig", slugs_before, 0)
    warn = fleet("deploy", "-a", "toobig", str(src), env={"FLEET_SLUG_WARN_MB": "0.1"})
    assert warn.code == 0 and " !     Warning: your slug size (30" in warn.stdout


def test_build_over_its_time_limit(fleet: FleetCLI, tmp_path: Path) -> None:
    bp = tmp_path / "slowbp"
    (bp / "bin").mkdir(parents=True)
    (bp / "bin" / "detect").write_text("#!/bin/sh\necho Slow\n")
    (bp / "bin" / "compile").write_text("#!/bin/sh\necho compiling slowly\nsleep 59.125 &\nsleep 59.125\n")
    (bp / "bin" / "release").write_text("#!/bin/sh\necho '--- {}'\n")
    for f in (bp / "bin").iterdir():
        f.chmod(0o755)
    src = _app_with_source(fleet, tmp_path, "slowpoke", {"Procfile": "web: x\n"}, buildpack=str(bp))
    start = time.monotonic()
    _deploy_fails(
        fleet, "slowpoke", src,
        "build exceeded its time limit of 3s; make it faster or raise build_timeout in $FLEET_HOME/config.yml",
        env={"FLEET_BUILD_TIMEOUT": "3"},
    )  # fmt: skip
    assert time.monotonic() - start < 20
    # the build itself was killed, not only the client: no process of it lives on (zombies aside)
    left = subprocess.run(["pgrep", "-r", "R,S,D", "-f", "sleep 59.125"], capture_output=True, text=True).stdout.split()
    assert left == []


def _tarball(path: Path, members: list[tarfile.TarInfo]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for m in members:
            data = b"x" if m.isfile() else None
            m.size = len(data) if data else 0
            tar.addfile(m, io.BytesIO(data) if data else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    m = tarfile.TarInfo(name)
    m.type = kind
    m.linkname = link
    m.mode = 0o644
    return m


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (_member("/etc/evil"), "source rejected: '/etc/evil' is an absolute path"),
        (_member("../evil"), "source rejected: '../evil' contains '..'"),
        (_member("dev/null", tarfile.CHRTYPE), "source rejected: 'dev/null' is a device file or FIFO"),
        (_member("out", tarfile.SYMTYPE, "/etc/shadow"), "source rejected: symlink 'out' points outside the app ('/etc/shadow')"),
        (_member("a/up", tarfile.SYMTYPE, "../../x"), "source rejected: symlink 'a/up' points outside the app ('../../x')"),
    ],
)
def test_tarballs_that_could_escape_are_refused(fleet: FleetCLI, tmp_path: Path, member: tarfile.TarInfo, message: str) -> None:
    if fleet("apps.info", "-a", "tarry").code != 0:
        assert fleet("apps.create", "tarry").code == 0
    tar = _tarball(tmp_path / "src.tar.gz", [_member("Procfile"), member])
    _deploy_fails(fleet, "tarry", tar, message)


def test_directory_with_symlink_outside_is_refused(fleet: FleetCLI, tmp_path: Path) -> None:
    src = _app_with_source(fleet, tmp_path, "linky", {"Procfile": "web: x\n"})
    (src / "secrets").symlink_to("/etc")
    _deploy_fails(fleet, "linky", src, "source rejected: symlink 'secrets' points outside the app ('/etc')")


def test_deploy_to_unknown_app_and_bad_paths(fleet: FleetCLI, tmp_path: Path) -> None:
    res = fleet("deploy", "-a", "ghost", str(EXAMPLES / "worker"))
    assert res.code == 1
    assert (
        res.stderr.strip()
        == "fleet: error: no app named 'ghost'; `fleet apps.list` shows the apps, `fleet apps.create NAME` makes one"
    )
    assert fleet("apps.create", "pathy").code == 0
    res = fleet("deploy", "-a", "pathy", str(tmp_path / "nope"))
    assert res.code == 2 and "does not exist" in res.stderr


def test_buildpack_from_a_git_repository(fleet: FleetCLI, tmp_path: Path) -> None:
    bp = tmp_path / "gitbp"
    shutil.copytree(Path(__file__).resolve().parents[2] / "buildpacks" / "procfile", bp)
    git(bp, "init", "-q", "-b", "main")
    git(bp, "add", "-A")
    git(bp, "commit", "-qm", "bp")
    src = _app_with_source(fleet, tmp_path, "gitpack", {"Procfile": "web: x\n"}, buildpack=f"file://{bp}")
    res = fleet("deploy", "-a", "gitpack", str(src))
    assert res.code == 0, res.output
    assert f"-----> Fetching buildpack file://{bp}" in res.stdout
    assert fleet.builds("gitpack")[0]["buildpack"] == "gitbp"


def test_bad_buildpack_setting_creates_no_app(fleet: FleetCLI, tmp_path: Path) -> None:
    res = fleet("apps.create", "nopack", "--buildpack", "cobol")
    assert res.code == 2
    assert res.stderr.strip() == (
        "fleet: error: buildpack 'cobol' is not one of python, nodejs, static, procfile, a buildpack directory, or a git repository"
    )
    assert fleet("apps.info", "-a", "nopack").code != 0
    assert not (fleet.home / "repos" / "nopack.git").exists()


def test_slugs_gc_keeps_recent_builds(fleet: FleetCLI) -> None:
    before = fleet.slugs()
    res = fleet("slugs.gc", env={"FLEET_KEEP_SLUGS": "1"})
    assert res.code == 0, res.output
    after = fleet.slugs()
    assert after < before or after == before
    for app in ("ex-python", "pushy"):
        newest = fleet.builds(app)[0]["slug_sha256"]
        assert f"{newest}.tar.zst" in after
    older = fleet.builds("ex-python")[1]["slug_sha256"]
    assert f"{older}.tar.zst" not in after


# -- git push over SSH to the control machine ---------------------------------------------
@pytest.fixture
def control_sshd(tmp_path: Path) -> Iterator[tuple[int, Path, Path]]:
    """A real sshd for the control machine on loopback, with keys of its own; stopped by pid."""
    d = tmp_path / "sshd"
    d.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_key")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "client_key")], check=True)
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    (d / "authorized_keys").chmod(0o600)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (d / "sshd_config").write_text(
        f"ListenAddress 127.0.0.1:{port}\nHostKey {d / 'host_key'}\nAuthorizedKeysFile {d / 'authorized_keys'}\n"
        f"PidFile {d / 'sshd.pid'}\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nUsePAM no\n"
        "StrictModes no\nSubsystem sftp internal-sftp\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(d / "sshd_config")], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    known = d / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {' '.join((d / 'host_key.pub').read_text().split()[:2])}\n")
    try:
        yield port, d / "client_key", known
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_push_over_ssh_to_the_control_machine(fleet: FleetCLI, pushed: Path, control_sshd: tuple[int, Path, Path]) -> None:
    port, key, known = control_sshd
    (fleet.home / "config.yml").write_text(f"git_host: 127.0.0.1:{port}\n")
    info = json.loads(fleet("apps.info", "-a", "pushy", "--json").stdout)
    repo = fleet.home / "repos" / "pushy.git"
    assert info["git_url"] == f"ssh://root@127.0.0.1:{port}{repo}"
    git(pushed, "checkout", "-q", "main")
    git(pushed, "reset", "-q", "--hard", "HEAD~1")  # drop the broken Procfile commit
    (pushed / "worker.py").write_text((pushed / "worker.py").read_text() + "# over ssh\n")
    git(pushed, "commit", "-qam", "over ssh")
    env_ssh = f"ssh -i {key} -o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes -o BatchMode=yes"
    before = len(fleet.builds("pushy"))
    res = subprocess.run(["git", "push", "--force", str(info["git_url"]), "main"], cwd=pushed, capture_output=True, text=True,
                         timeout=300, env={**os.environ, "GIT_SSH_COMMAND": env_ssh})  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "remote: -----> Building pushy from commit" in res.stderr
    builds = fleet.builds("pushy")
    assert len(builds) == before + 1
    assert builds[0]["commit"] == git(pushed, "rev-parse", "HEAD").stdout.strip()


@pytest.mark.parametrize("example", ["static", "worker"])  # the others are pushed to the lab (tests/lab/test_examples.py)
def test_git_push_of_each_example_builds_it(fleet: FleetCLI, tmp_path: Path, example: str) -> None:
    work = tmp_path / example
    shutil.copytree(EXAMPLES / example, work)
    git(work, "init", "-q", "-b", "main")
    git(work, "add", "-A")
    git(work, "commit", "-qm", example)
    app = f"push-{example}"
    assert fleet("apps.create", app).code == 0
    res = git(work, "push", str(fleet.home / "repos" / f"{app}.git"), "main")
    assert res.returncode == 0, res.stderr
    remote = [line.removeprefix("remote: ").rstrip() for line in res.stderr.splitlines() if line.startswith("remote: ")]
    assert any(line.endswith(" app detected") for line in remote)
    assert any(line.startswith("-----> Build 1 succeeded: slug ") for line in remote)
    [build] = fleet.builds(app)
    assert build["commit"] == git(work, "rev-parse", "HEAD").stdout.strip()
    assert (fleet.home / "slugs" / f"{build['slug_sha256']}.tar.zst").is_file()
