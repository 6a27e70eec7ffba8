"""Add-ons an app declares (app.json's "addons", a buildpack's bin/release "addons:"): parsed the Heroku way, checked
against the services fleet offers when the build runs, and made on the app's first deploy only, before its first
release (so the release phase sees DATABASE_URL)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType

import pytest

from fleet.addons import AddonProvider, Plan, providers
from fleet.addons import store as records
from fleet.addons.declared import APP_JSON_MAX_BYTES, Declared, from_app_json, from_release
from fleet.context import Fleet
from fleet.exec.recording import RecordingExecutor
from fleet.model import Build
from fleet.services import declared_addons, releases
from fleet.services.builds import read_app_json
from fleet.services.declared_addons import Wanted, resolve
from fleet.settings import Settings
from fleet.slug.compiler import BuildError
from tests.unit.addon_fixtures import INVENTORY, fleet_on


# -- parsing ------------------------------------------------------------------------------------------------------
def test_app_json_strings_and_objects() -> None:
    text = '{"name": "x", "addons": ["heroku-postgresql", "heroku-redis:mini", "postgres:basic", {"plan": "heroku-postgresql:essential-0", "as": "REPORTS", "options": {"version": "16"}}]}'
    assert from_app_json(text) == [
        Declared("postgres", None, None, "app.json addons entry 1 ('heroku-postgresql')", heroku=True),
        Declared("redis", "mini", None, "app.json addons entry 2 ('heroku-redis:mini')", heroku=True),
        Declared("postgres", "basic", None, "app.json addons entry 3 ('postgres:basic')"),
        Declared("postgres", "essential-0", "REPORTS", 'app.json addons entry 4 (\'{"plan": "heroku-postgresql:essential-0", "as": "REPORTS", "...\')',
                 heroku=True),
    ]  # fmt: skip
    assert from_app_json('{"name": "no add-ons"}') == [] and from_app_json('{"addons": []}') == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{nope", "app.json is not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1)); fix it or remove it"),
        ("[]", "app.json must hold a JSON object"),
        ('{"addons": "heroku-postgresql"}', 'app.json: "addons" must be a list, e.g. ["heroku-postgresql"]'),
        ('{"addons": [42]}', "app.json addons entry 1 ('42'): not an add-on; write SERVICE or SERVICE:PLAN, e.g. heroku-postgresql or postgres:basic"),
        ('{"addons": ["ok", "Bad Name; rm -rf /"]}', "app.json addons entry 2 ('Bad Name; rm -rf /'): not an add-on; write SERVICE or SERVICE:PLAN"),
        ('{"addons": [{"as": "DATABASE"}]}', "app.json addons entry 1 ('{\"as\": \"DATABASE\"}'): an object needs \"plan\""),
        ('{"addons": [{"plan": "heroku-postgresql", "as": 3}]}', "\"as\" must be a name such as DATABASE"),
    ],
)  # fmt: skip
def test_bad_app_json(text: str, message: str) -> None:
    with pytest.raises(BuildError) as info:
        from_app_json(text)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_bin_release_addons() -> None:
    text = "---\naddons:\n  - heroku-postgresql:hobby-dev\n  - redis\ndefault_process_types:\n  web: python app.py\n"
    assert from_release(text, "python") == [
        Declared("postgres", "hobby-dev", None, "python buildpack's bin/release addons entry 1 ('heroku-postgresql:hobby-dev')", heroku=True),
        Declared("redis", None, None, "python buildpack's bin/release addons entry 2 ('redis')"),
    ]  # fmt: skip
    assert from_release("---\ndefault_process_types: {}\n", "python") == [] and from_release("", "python") == []
    with pytest.raises(BuildError, match=r"^python buildpack: bin/release: addons must be a list"):
        from_release("addons: heroku-postgresql\n", "python")
    with pytest.raises(BuildError, match=r"^python buildpack's bin/release addons entry 1 \('\{\}'\): not an add-on"):
        from_release("addons:\n  - {}\n", "python")


def test_app_json_is_read_as_a_small_regular_file_only(tmp_path: Path) -> None:
    assert read_app_json(tmp_path) is None
    (tmp_path / "app.json").write_text('{"addons": []}')
    assert read_app_json(tmp_path) == '{"addons": []}'
    (tmp_path / "app.json").unlink()
    os.symlink("/etc/shadow", tmp_path / "app.json")
    with pytest.raises(BuildError, match=r"^app.json is a symlink or cannot be read"):
        read_app_json(tmp_path)
    (tmp_path / "app.json").unlink()
    (tmp_path / "app.json").mkdir()
    with pytest.raises(BuildError, match=r"^app.json is not a regular file$"):
        read_app_json(tmp_path)
    (tmp_path / "app.json").rmdir()
    (tmp_path / "app.json").write_text(" " * (APP_JSON_MAX_BYTES + 1))
    with pytest.raises(BuildError, match=r"^app.json is over 1 MiB"):
        read_app_json(tmp_path)


# -- what fleet offers, at run time ------------------------------------------------------------------------------
class FakeRedis:
    """Stands for a Redis provider: only what `resolve` reads (the real one is another module's)."""

    name = "redis"
    plans: Mapping[str, Plan] = MappingProxyType({"mini": Plan("mini", 20, 25, "")})
    default_plan = "mini"
    config_var_default = "REDIS_URL"


def offered(redis: bool = False) -> dict[str, AddonProvider]:
    out = dict(providers())
    if redis:
        out["redis"] = FakeRedis()  # type: ignore[assignment]
    return out


def test_resolve_maps_heroku_names_through_the_providers_at_run_time() -> None:
    declared = from_app_json('{"addons": ["heroku-postgresql", "heroku-redis", {"plan": "postgres:basic", "as": "REPORTS"}]}')
    assert resolve(declared, offered(redis=True)) == [
        Wanted("postgres", "mini", "DATABASE", "app.json addons entry 1 ('heroku-postgresql')"),
        Wanted("redis", "mini", "REDIS", "app.json addons entry 2 ('heroku-redis')"),
        Wanted("postgres", "basic", "REPORTS", 'app.json addons entry 3 (\'{"plan": "postgres:basic", "as": "REPORTS"}\')'),
    ]  # fmt: skip
    with pytest.raises(BuildError) as info:  # a fleet without a Redis provider
        resolve(declared, {k: v for k, v in offered(redis=True).items() if k != "redis"})
    assert str(info.value) == "app.json addons entry 2 ('heroku-redis'): fleet has no add-on service 'redis'; it offers: postgres"


def test_resolve_plans_names_and_duplicates() -> None:
    heroku_plan = from_app_json('{"addons": ["heroku-postgresql:essential-0"]}')
    assert resolve(heroku_plan, offered()) == [Wanted("postgres", "mini", "DATABASE", "app.json addons entry 1 ('heroku-postgresql:essential-0')",
        "app.json addons entry 1 ('heroku-postgresql:essential-0'): fleet's postgres has no plan 'essential-0'; using mini")]  # fmt: skip
    both = from_app_json('{"addons": ["heroku-postgresql"]}') + from_release("addons:\n  - heroku-postgresql\n", "python")
    assert [w.name for w in resolve(both, offered())] == ["DATABASE"]  # one database, not two
    for text, message in [
        ('{"addons": ["postgres:huge"]}', "app.json addons entry 1 ('postgres:huge'): postgres has no plan 'huge'; plans: mini, basic"),
        ('{"addons": ["heroku-kafka"]}', "app.json addons entry 1 ('heroku-kafka'): fleet has no add-on service 'heroku-kafka'; it offers: postgres"),
        ('{"addons": [{"plan": "postgres", "as": "db"}]}', "\"as\": 'db' is not valid: use an uppercase letter first"),
        ('{"addons": ["postgres", {"plan": "redis", "as": "DATABASE"}]}', "DATABASE is declared twice, as postgres and as redis"),
    ]:  # fmt: skip
        with pytest.raises(BuildError) as info:
            resolve(from_app_json(text), offered(redis=True))
        assert message in str(info.value), str(info.value)


# -- provisioning on the first deploy -----------------------------------------------------------------------------
@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    f = fleet_on(tmp_path, apps=("shop",))
    yield f
    f.close()


def wanted(text: str = '{"addons": ["heroku-postgresql"]}') -> list[Wanted]:
    return resolve(from_app_json(text), offered())


def test_first_deploy_makes_what_is_missing_before_the_release(fleet: Fleet) -> None:
    said: list[str] = []
    made = declared_addons.provision(fleet, "shop", wanted('{"addons": ["heroku-postgresql", "postgres:basic"]}'), said.append)
    [addon] = records.addons(fleet.store, "shop")
    assert made == [addon.name] and addon.plan == "mini" and [a.var for a in addon.attachments] == ["DATABASE_URL"]
    assert releases.current_config(fleet, "shop")["DATABASE_URL"].startswith(f"postgres://{addon.resource}:")
    assert said[0] == "-----> Provisioning the add-ons the app declares"
    assert said[1].startswith(f"       Creating {addon.name} (postgres:mini) on db1 for shop")
    assert not any(addon.password in line for line in said)
    # the first build's release comes after: web=1 as on any first deploy (the add-on's config release does not count)
    monkey = pytest.MonkeyPatch()
    monkey.setattr(releases, "_roll_out", lambda fleet, release, on_line: release)
    try:
        build = Build("shop", 1, "succeeded", "a" * 64, 10, "abc1234", "python", (("web", "gunicorn x"),), "src", "t", 1.0)
        release = releases.release_build(fleet, build, lambda _: None)
    finally:
        monkey.undo()
    assert release.version == 2 and "DATABASE_URL" in release.config_vars
    assert fleet.store.formation("shop") == {"web": (1, "standard-1x")}
    # a later deploy makes nothing
    assert declared_addons.provision(fleet, "shop", wanted('{"addons": ["heroku-postgresql"]}'), said.append) == []
    assert len(records.addons(fleet.store, "shop")) == 1


def test_what_the_app_has_already_is_not_made(fleet: Fleet) -> None:
    releases.set_config(fleet, "shop", ["REPORTS_URL=postgres://elsewhere/db"], lambda _: None)
    said: list[str] = []
    text = '{"addons": [{"plan": "heroku-postgresql", "as": "REPORTS"}, "heroku-postgresql"]}'
    made = declared_addons.provision(fleet, "shop", wanted(text), said.append)
    assert len(made) == 1 and [x.name for a in records.addons(fleet.store, "shop") for x in a.attachments] == ["DATABASE"]
    assert "       postgres (app.json addons entry 1 ('{\"plan\": \"heroku-postgresql\", \"as\": \"REPORTS\"}')): not made, REPORTS_URL is set already" in said
    assert releases.current_config(fleet, "shop")["REPORTS_URL"] == "postgres://elsewhere/db"


def test_later_deploys_only_say_what_is_missing(fleet: Fleet) -> None:
    fleet.store.add_release("shop", slug="b" * 64, build_number=1, commit="abc", process_types={"web": "x"}, config={},
                            description="Deploy abc", stack="fleet-12")  # fmt: skip
    said: list[str] = []
    assert declared_addons.provision(fleet, "shop", wanted(), said.append) == []
    assert records.addons(fleet.store, "shop") == [] and isinstance(fleet.executor, RecordingExecutor) and fleet.executor.calls == []
    assert said == [" !     app.json addons entry 1 ('heroku-postgresql') asks for postgres, which shop lacks: declared add-ons are made "
                    "on the first deploy only; `fleet addons:create postgres -a shop --as DATABASE` makes it"]  # fmt: skip


def test_a_failure_fails_the_build_naming_the_entry(fleet: Fleet, tmp_path: Path) -> None:
    (tmp_path / "inventory.yml").write_text(INVENTORY.split("    addon_hosts:")[0])
    with pytest.raises(BuildError) as info:
        declared_addons.provision(fleet, "shop", wanted(), lambda _: None)
    assert str(info.value).startswith("app.json addons entry 1 ('heroku-postgresql'): could not provision postgres: no add-on host: ")
    assert records.addons(fleet.store, "shop") == [] and releases.current_config(fleet, "shop") == {}


def test_a_build_with_no_inventory_makes_nothing_and_says_so(tmp_path: Path) -> None:
    f = Fleet(Settings(tmp_path / "home"), RecordingExecutor())  # `fleet deploy` before any `lab.up` or `inventory.use`
    try:
        f.store.create_app("shop")
        said: list[str] = []
        assert declared_addons.provision(f, "shop", wanted(), said.append) == []
        assert records.addons(f.store, "shop") == [] and said == [
            " !     app.json addons entry 1 ('heroku-postgresql') asks for postgres: not made, no inventory is chosen "
            "(`fleet lab.up` or `fleet inventory.use`); then `fleet addons:create postgres -a shop --as DATABASE`"]  # fmt: skip
    finally:
        f.close()


# -- in the build ------------------------------------------------------------------------------------------------
class FakeRunner:
    """The buildpack steps of a build, answered without running anything: detect says yes, bin/release prints ``release``."""

    def __init__(self, release: str) -> None:
        from fleet.stack import StackVersion

        self.release = release
        self.stack = StackVersion("fleet-12", "20261127.1", "a" * 64, 1, (("python", "3.11.2"),), "", 0.0)
        self.steps: list[str] = []

    def container(self, bp: object) -> object:
        from fleet.slug.compiler import BuildContainer

        return BuildContainer(Path("/stack"), Path("/app"), Path("/cache"), Path("/env"), Path("/bp"), "build-shop")

    def run(self, argv: tuple[str, ...], timeout: float) -> object:
        from fleet.exec.base import CommandResult

        step = argv[-2].rsplit("/", 1)[1]
        self.steps.append(step)
        return CommandResult("localhost", argv, 0, self.release if step == "release" else "Python\n", "")

    def stream(self, argv: tuple[str, ...], on_line: object, timeout: float) -> int:
        self.steps.append("compile")
        return 0

    def slug(self, out: Path, max_unpacked: int, timeout: float) -> object:
        from fleet.exec.base import CommandResult

        self.steps.append("slug")
        out.write_bytes(b"a slug")
        return CommandResult("localhost", (), 0, "", "")


def _buildpacks(fleet: Fleet, tmp_path: Path, runner: FakeRunner, declared: list[Declared], said: list[str]) -> object:
    import time

    from fleet.services import builds

    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return builds._run_buildpacks(fleet, "shop", builds.DirectorySource(tmp_path / "src"), runner,  # type: ignore[arg-type]
                                  [builds.Buildpack("python", Path("/bp"))], False, {"web": "python3 app.py"}, declared, work,
                                  time.monotonic() + 60, time.monotonic(), said.append)  # fmt: skip


def test_a_build_makes_the_declared_addons_before_it_is_recorded(fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fleet.exec.base import CommandResult
    from fleet.services import builds

    monkeypatch.setattr(builds, "run_local", lambda argv, **kw: CommandResult("localhost", tuple(argv), 0, "6\n", ""))
    runner = FakeRunner("---\naddons:\n  - heroku-postgresql:hobby-dev\ndefault_process_types:\n  web: python3 app.py\n")
    said: list[str] = []
    build = _buildpacks(fleet, tmp_path, runner, from_app_json('{"addons": ["heroku-postgresql"]}'), said)
    assert runner.steps == ["detect", "compile", "release", "slug"]
    assert len(records.addons(fleet.store, "shop")) == 1  # app.json's and bin/release's heroku-postgresql: one database
    assert "DATABASE_URL" in releases.current_config(fleet, "shop") and [b.number for b in fleet.store.builds("shop")] == [1]
    assert said.index("-----> Provisioning the add-ons the app declares") < next(i for i, s in enumerate(said) if s.startswith("-----> Build 1 succeeded"))
    assert build == fleet.store.builds("shop")[0]
    # an add-on fleet does not offer, in bin/release: the build fails before its slug is packed, nothing recorded
    runner = FakeRunner("---\naddons:\n  - heroku-kafka\n")
    with pytest.raises(BuildError, match=r"^python buildpack's bin/release addons entry 1 \('heroku-kafka'\): fleet has no add-on service"):
        _buildpacks(fleet, tmp_path, runner, [], said)
    assert runner.steps == ["detect", "compile", "release"] and len(fleet.store.builds("shop")) == 1
