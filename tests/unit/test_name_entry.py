"""Names are checked where they enter: process types into releases, ps.scale/restart/stop arguments.

A release stored before the process-type rule existed may carry a type such as
'./../../../var/lib/fleet/PWNED', which becomes the path cmd.<type> written as root
on every host at deploy: no new release may be made from it (config.set, rollback).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from invoke.context import Context
from invoke.exceptions import Exit

from fleet.context import Fleet
from fleet.errors import FleetError
from fleet.exec.recording import RecordingExecutor
from fleet.model import Build
from fleet.services import releases
from fleet.settings import Settings
from fleet.slugstore import SlugStore
from fleet.state import Store
from fleet.tasks import ps_restart, ps_scale, ps_stop

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventory" / "example.yml"
BAD = "./../../../var/lib/fleet/PWNED"
RULE = "use a letter or digit first, then letters, digits, '_' and '-', at most 26 characters"
BAD_PROBLEM = f"process type {BAD!r} is not valid: {RULE}"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    monkeypatch.setenv("FLEET_HOME", str(h))
    monkeypatch.delenv("FLEET_INVENTORY", raising=False)
    return h


@pytest.fixture
def fleet(home: Path) -> Iterator[Fleet]:
    f = Fleet(Settings(home=home), RecordingExecutor())
    yield f
    f.close()


def _slug(fleet: Fleet, tmp_path: Path, content: bytes) -> str:
    tarball = tmp_path / "slug.tar.zst"
    tarball.write_bytes(content)
    return SlugStore(fleet.settings.slugs_dir).add(tarball)[0]


def _release(store: Store, app: str, slug: str | None, types: dict[str, str]) -> int:
    """A succeeded release as stored before the rule (the store itself does not check names)."""
    r = store.add_release(app, slug=slug, build_number=None, commit="", process_types=types, config={}, description="old")
    store.set_release_status(app, r.version, "succeeded")
    return r.version


# -- releases: a stored bad type never goes into a new release ------------------------------
def test_config_set_on_a_release_with_a_bad_type_is_refused_and_makes_no_release(fleet: Fleet, tmp_path: Path) -> None:
    fleet.store.create_app("myapp")
    _release(fleet.store, "myapp", _slug(fleet, tmp_path, b"one"), {"web": "python app.py", BAD: "true"})
    before = fleet.store.releases("myapp")
    with pytest.raises(FleetError) as info:
        releases.set_config(fleet, "myapp", ["DEBUG=1"], lambda line: None)
    assert str(info.value) == f"v1 of myapp: {BAD_PROBLEM}; push a build with a fixed Procfile or buildpack"
    assert fleet.store.releases("myapp") == before
    assert fleet.executor.calls == []  # type: ignore[attr-defined]


def test_rollback_to_a_release_with_a_bad_type_is_refused_and_makes_no_release(fleet: Fleet, tmp_path: Path) -> None:
    fleet.store.create_app("myapp")
    _release(fleet.store, "myapp", _slug(fleet, tmp_path, b"one"), {"web": "python app.py", BAD: "true"})
    _release(fleet.store, "myapp", _slug(fleet, tmp_path, b"two"), {"web": "python app.py"})
    before = fleet.store.releases("myapp")
    with pytest.raises(FleetError) as info:
        releases.rollback(fleet, "myapp", 1, lambda line: None)
    assert str(info.value) == f"v1 of myapp: {BAD_PROBLEM}; push a build with a fixed Procfile or buildpack"
    assert fleet.store.releases("myapp") == before


def test_a_build_with_a_bad_type_is_not_released(fleet: Fleet) -> None:
    fleet.store.create_app("myapp")
    build = Build("myapp", 3, "succeeded", "0" * 64, 1, "", "evil", (("web", "x"), (BAD, "y")), "dir", "2026-01-01", 1.0)
    with pytest.raises(FleetError) as info:
        releases.release_build(fleet, build, lambda line: None)
    assert str(info.value) == f"build 3 of myapp: {BAD_PROBLEM}; push a build with a fixed Procfile or buildpack"
    assert fleet.store.releases("myapp") == []
    assert fleet.store.formation("myapp") == {}


# -- ps.scale, ps.restart, ps.stop: the arguments, at the command line ---------------------
def _exit_of(task: object, **kwargs: object) -> Exit:
    with pytest.raises(Exit) as info:
        task(Context(), **kwargs)  # type: ignore[operator]
    return info.value


def test_ps_scale_refuses_a_bad_type_even_one_the_stored_release_has(fleet: Fleet, tmp_path: Path) -> None:
    fleet.store.create_app("myapp")
    _release(fleet.store, "myapp", _slug(fleet, tmp_path, b"one"), {"web": "python app.py", BAD: "true"})
    err = _exit_of(ps_scale, app="myapp", spec=["web=1", f"{BAD}=1"])  # before: accepted, on to placing dynos
    assert (err.code, err.message) == (2, f"fleet: error: {BAD_PROBLEM}")
    assert fleet.store.formation("myapp") == {}
    assert fleet.store.dynos("myapp") == []


@pytest.mark.parametrize("task", [ps_restart, ps_stop])
def test_ps_restart_and_stop_of_an_unknown_app_is_an_error(home: Path, monkeypatch: pytest.MonkeyPatch, task: object) -> None:
    monkeypatch.setenv("FLEET_INVENTORY", str(EXAMPLE))
    err = _exit_of(task, app="nope")
    assert err.code == 1
    assert err.message == (
        "fleet: error: no app named 'nope'; `fleet apps.list` shows the apps, `fleet apps.create NAME` makes one"
    )


@pytest.mark.parametrize("task", [ps_restart, ps_stop])
@pytest.mark.parametrize("which", ["../web.1", "web.0", f"{BAD}.1"])
def test_ps_restart_and_stop_refuse_a_name_outside_the_rule(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch, task: object, which: str
) -> None:
    monkeypatch.setenv("FLEET_INVENTORY", str(EXAMPLE))
    fleet.store.create_app("myapp")
    err = _exit_of(task, app="myapp", which=which)
    assert err.code == 2
    assert err.message is not None
    assert err.message.startswith(f"fleet: error: {which!r} is neither a process type nor a dyno name such as web.1: ")
