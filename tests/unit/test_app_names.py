"""fleet.model.validate_app_name: Heroku's app-name rule."""

from __future__ import annotations

import pytest

from fleet.errors import UsageError
from fleet.model import validate_app_name

RULE = "a lowercase letter first, then lowercase letters, digits and dashes, 3 to 30 characters in all"


@pytest.mark.parametrize("name", ["abc", "my-app-2", "a" * 30, "a--", "z99", "app-"])
def test_valid(name: str) -> None:
    assert validate_app_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["ab", "a" * 31, "My-app", "1app", "-app", "app_x", "app.x", "app\n", "", "app x", "\u00e4pp", "appé"],
)
def test_invalid(name: str) -> None:
    with pytest.raises(UsageError) as info:
        validate_app_name(name)
    assert str(info.value) == f"{name!r} is not a valid app name: use {RULE}"
    assert "a lowercase letter first" in str(info.value)
    assert info.value.exit_code == 2


def test_not_a_string() -> None:
    with pytest.raises(UsageError) as info:
        validate_app_name(123)  # type: ignore[arg-type]
    assert str(info.value) == f"123 is not a valid app name: use {RULE}"
