"""An app's buildpacks (Heroku's buildpacks:add/set/remove/clear): the order kept, bad input refused with nothing changed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.context import Fleet
from fleet.errors import UsageError
from fleet.exec.recording import RecordingExecutor
from fleet.services import apps
from fleet.services.builds import buildpack_list
from fleet.settings import Settings


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    f = Fleet(Settings(tmp_path / "home", None), RecordingExecutor())
    f.store.create_app("shop")
    yield f
    f.close()


def test_add_set_remove_clear_keep_the_order(fleet: Fleet, tmp_path: Path) -> None:
    assert apps.buildpacks(fleet, "shop") == []
    assert apps.change_buildpacks(fleet, "shop", "add", "nodejs") == ["nodejs"]
    assert apps.change_buildpacks(fleet, "shop", "add", "static") == ["nodejs", "static"]
    assert apps.change_buildpacks(fleet, "shop", "add", "python", index=1) == ["python", "nodejs", "static"]
    assert apps.change_buildpacks(fleet, "shop", "set", "procfile", index=3) == ["python", "nodejs", "procfile"]
    assert apps.change_buildpacks(fleet, "shop", "set", "static") == ["static", "nodejs", "procfile"]  # the first
    assert apps.change_buildpacks(fleet, "shop", "remove", "nodejs") == ["static", "procfile"]
    assert apps.change_buildpacks(fleet, "shop", "remove", index=2) == ["static"]
    assert apps.info(fleet, "shop").to_dict()["buildpacks"] == ["static"]
    assert apps.change_buildpacks(fleet, "shop", "clear") == []
    assert fleet.store.app("shop").buildpack == ""
    assert apps.change_buildpacks(fleet, "shop", "set", "python") == ["python"]  # set on none: the first


@pytest.mark.parametrize(
    ("action", "value", "index", "message"),
    [
        ("add", "static", None, "static is already a buildpack of shop (number 2)"),
        ("add", "nodejs", 4, "--index 4 is out of range: use 1 to 3"),
        ("set", "python", 3, "--index 3 is out of range: use 1 to 2"),
        ("add", "/no/such/dir", None, "buildpack '/no/such/dir' is not one of python, nodejs, static, procfile, a buildpack directory, or a git repository"),
        ("add", "https://example.com/bp.git\npython", None, "a buildpack name, path or URL cannot hold control characters (a newline, a tab, ...)"),
        ("add", "", None, "say which buildpack, e.g. `fleet buildpacks.add -a shop nodejs`"),
        ("remove", "python", None, "python is not a buildpack of shop (`fleet buildpacks -a shop` lists them)"),
        ("remove", "", None, "say which buildpack to remove, or --index, e.g. `fleet buildpacks.remove -a shop static`"),
        ("remove", "static", 1, "give the buildpack or --index, not both"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_and_changes_nothing(fleet: Fleet, action: str, value: str, index: int | None, message: str) -> None:
    apps.change_buildpacks(fleet, "shop", "add", "nodejs")
    apps.change_buildpacks(fleet, "shop", "add", "static")
    with pytest.raises(UsageError) as e:
        apps.change_buildpacks(fleet, "shop", action, value, index)
    assert str(e.value) == message
    assert apps.buildpacks(fleet, "shop") == ["nodejs", "static"]


def test_the_setting_is_one_buildpack_per_line_and_an_old_single_value_still_reads() -> None:
    assert buildpack_list("") == []
    assert buildpack_list("python") == ["python"]
    assert buildpack_list("https://example.com/a.git\nstatic") == ["https://example.com/a.git", "static"]


def test_an_apps_stack_is_set_for_its_next_build_and_bad_names_change_nothing(fleet: Fleet) -> None:
    assert fleet.store.app("shop").stack == "fleet-12"  # the default
    assert apps.set_stack(fleet, "shop", "fleet-13") == "fleet-12"
    assert fleet.store.app("shop").stack == "fleet-13"
    assert apps.info(fleet, "shop").to_dict()["stack"] == "fleet-13"
    with pytest.raises(UsageError, match=r"^shop is already on fleet-13$"):
        apps.set_stack(fleet, "shop", "fleet-13")
    with pytest.raises(UsageError, match=r"^there is no stack 'cedar-14'; stacks: fleet-12, fleet-13"):
        apps.set_stack(fleet, "shop", "cedar-14")
    assert fleet.store.app("shop").stack == "fleet-13"
    # a release keeps the stack it was made with
    r = fleet.store.add_release("shop", slug="ab" * 32, build_number=1, commit="", process_types={"web": "x"}, config={},
                                description="Deploy", stack="fleet-13")  # fmt: skip
    assert fleet.store.release("shop", r.version).stack == "fleet-13"
