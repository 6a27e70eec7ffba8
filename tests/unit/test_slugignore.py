"""fleet.slug.slugignore: .gitignore-like patterns for paths removed before the build."""

from __future__ import annotations

import pytest

from fleet.slug.slugignore import Pattern, is_ignored, parse_slugignore


def ignored(text: str, relpath: str, is_dir: bool = False) -> bool:
    return is_ignored(parse_slugignore(text), relpath, is_dir)


def test_parse_patterns() -> None:
    text = "# comment\n\n*.md\n/tests\ndocs/*.png\nlogs/\n/build/\n  spaced.txt  \n/\n"
    assert parse_slugignore(text) == [
        Pattern("*.md", anchored=False, dir_only=False),
        Pattern("tests", anchored=True, dir_only=False),
        Pattern("docs/*.png", anchored=True, dir_only=False),
        Pattern("logs", anchored=False, dir_only=True),
        Pattern("build", anchored=True, dir_only=True),
        Pattern("spaced.txt", anchored=False, dir_only=False),
    ]


def test_only_comments_and_blank_lines() -> None:
    assert parse_slugignore("# a\n\n   \n#b/\n") == []
    assert not ignored("# README.md\n", "README.md")


@pytest.mark.parametrize("path", ["README.md", "docs/a.md", "a/b/c/CHANGES.md"])
def test_unanchored_name_pattern_matches_at_any_depth(path: str) -> None:
    assert ignored("*.md", path)


@pytest.mark.parametrize("path", ["README.mdx", "md", "docs/a.md.txt", "README.MD"])
def test_unanchored_name_pattern_no_match(path: str) -> None:
    assert not ignored("*.md", path)


def test_unanchored_plain_name_matches_file_or_dir_anywhere() -> None:
    assert ignored("tests", "tests", is_dir=True)
    assert ignored("tests", "pkg/tests", is_dir=True)
    assert ignored("tests", "pkg/tests", is_dir=False)
    assert not ignored("tests", "pkg/tests_old", is_dir=True)


def test_anchored_leading_slash_matches_only_from_root() -> None:
    assert ignored("/tests", "tests", is_dir=True)
    assert ignored("/tests", "tests", is_dir=False)
    assert not ignored("/tests", "pkg/tests", is_dir=True)
    assert not ignored("/tests", "tests/test_a.py", is_dir=False)  # the walker removes the directory itself


def test_anchored_pattern_with_inner_slash() -> None:
    assert ignored("docs/*.png", "docs/a.png")
    assert not ignored("docs/*.png", "sub/docs/a.png")
    assert not ignored("docs/*.png", "docs/a.jpg")
    assert not ignored("docs/*.png", "a.png")
    assert ignored("/docs/*.png", "docs/logo.png")


def test_star_does_not_cross_directories() -> None:
    assert not ignored("docs/*.png", "docs/img/a.png")


def test_trailing_slash_matches_directories_only() -> None:
    assert ignored("logs/", "logs", is_dir=True)
    assert ignored("logs/", "app/logs", is_dir=True)
    assert not ignored("logs/", "logs", is_dir=False)
    assert not ignored("logs/", "app/logs", is_dir=False)
    assert ignored("/build/", "build", is_dir=True)
    assert not ignored("/build/", "src/build", is_dir=True)
    assert not ignored("/build/", "build", is_dir=False)


def test_question_mark_glob() -> None:
    assert ignored("file?.txt", "file1.txt")
    assert ignored("file?.txt", "sub/fileA.txt")
    assert not ignored("file?.txt", "file.txt")
    assert not ignored("file?.txt", "file12.txt")


def test_bracket_glob() -> None:
    assert ignored("[ab].log", "a.log")
    assert ignored("[ab].log", "x/b.log")
    assert not ignored("[ab].log", "c.log")
    assert not ignored("[ab].log", "ab.log")
    assert ignored("[!ab].log", "c.log")
    assert not ignored("[!ab].log", "a.log")


def test_any_of_several_patterns() -> None:
    patterns = parse_slugignore("*.md\n/tests\n")
    assert is_ignored(patterns, "docs/x.md", False)
    assert is_ignored(patterns, "tests", True)
    assert not is_ignored(patterns, "app.py", False)
    assert not is_ignored(patterns, "src", True)


def test_no_patterns_ignore_nothing() -> None:
    assert not is_ignored([], "anything", is_dir=False)
    assert not is_ignored([], "anything", is_dir=True)
