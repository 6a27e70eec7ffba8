"""The shape of a command's ``--json`` output as README and ``fleet COMMAND --help`` write it, and a check of a
printed value against it (pure: text and values in, problems out).

    {app, domain}              an object with exactly the keys app and domain (their values not checked further)
    [{name, url}]              a list of such objects, each with exactly these keys
    {app, dynos: [string]}     a key's value given a shape after ':'
    {KEY: string}              an uppercase name: any keys (config vars, process types), each value of that shape
    {name, hosts?: {...}}      a key with '?' is there only sometimes (the table says when)
    {dyno, result}|null        one shape or another
    string, number, bool, null, any: the scalar shapes
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

SCALARS = ("string", "number", "bool", "null", "any")
_TOKEN = re.compile(r"\s*(?:([A-Za-z_][A-Za-z0-9_]*\??)|([{}\[\],:|]))")


@dataclass(frozen=True)
class Field:
    name: str
    shape: Shape | None  # None: the value is not checked
    optional: bool = False

    @property
    def free(self) -> bool:
        """An uppercase name (KEY, TYPE): it stands for any key."""
        return self.name.isupper()


@dataclass(frozen=True)
class Obj:
    fields: tuple[Field, ...]


@dataclass(frozen=True)
class ListOf:
    item: Shape


@dataclass(frozen=True)
class Scalar:
    name: str


@dataclass(frozen=True)
class OneOf:
    options: tuple[Shape, ...]


Shape = Obj | ListOf | Scalar | OneOf


class ShapeError(ValueError):
    pass


def _tokens(text: str) -> list[str]:
    out, at = [], 0
    while at < len(text.rstrip()):
        m = _TOKEN.match(text, at)
        if not m:
            raise ShapeError(f"{text!r}: cannot read {text[at:at + 10]!r}")
        out.append(m.group(1) or m.group(2))
        at = m.end()
    return out


def parse(text: str) -> Shape:
    """The shape a text writes; raises ShapeError."""
    tokens = _tokens(text)
    shape, at = _shape(tokens, 0, text)
    if at != len(tokens):
        raise ShapeError(f"{text!r}: unexpected {tokens[at]!r}")
    return shape


def _expect(tokens: list[str], at: int, want: str, text: str) -> int:
    if at >= len(tokens) or tokens[at] != want:
        raise ShapeError(f"{text!r}: expected {want!r}")
    return at + 1


def _shape(tokens: list[str], at: int, text: str) -> tuple[Shape, int]:
    options = []
    while True:
        one, at = _single(tokens, at, text)
        options.append(one)
        if at < len(tokens) and tokens[at] == "|":
            at += 1
            continue
        return (options[0] if len(options) == 1 else OneOf(tuple(options))), at


def _single(tokens: list[str], at: int, text: str) -> tuple[Shape, int]:
    if at >= len(tokens):
        raise ShapeError(f"{text!r}: ends too soon")
    tok = tokens[at]
    if tok == "[":
        item, at = _shape(tokens, at + 1, text)
        return ListOf(item), _expect(tokens, at, "]", text)
    if tok == "{":
        return _object(tokens, at + 1, text)
    if tok in SCALARS:
        return Scalar(tok), at + 1
    raise ShapeError(f"{text!r}: {tok!r} is not a shape ({', '.join(SCALARS)}, {{...}} or [...])")


def _object(tokens: list[str], at: int, text: str) -> tuple[Obj, int]:
    fields: list[Field] = []
    while at < len(tokens) and tokens[at] != "}":
        name = tokens[at]
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*\??", name):
            raise ShapeError(f"{text!r}: {name!r} is not a key")
        at += 1
        shape: Shape | None = None
        if at < len(tokens) and tokens[at] == ":":
            shape, at = _shape(tokens, at + 1, text)
        fields.append(Field(name.rstrip("?"), shape, name.endswith("?")))
        if at < len(tokens) and tokens[at] == ",":
            at += 1
    at = _expect(tokens, at, "}", text)
    names = [f.name for f in fields]
    if len(set(names)) != len(names):
        raise ShapeError(f"{text!r}: a key twice")
    if any(f.free for f in fields) and len(fields) != 1:
        raise ShapeError(f"{text!r}: an object of any keys ({names}) has no other")
    return Obj(tuple(fields)), at


def key_paths(shape: Shape, path: str = "$") -> Iterator[tuple[str, bool]]:
    """Every key the shape names, as a path ($.formation.TYPE.size, $[].name), and whether it is optional."""
    if isinstance(shape, ListOf):
        yield from key_paths(shape.item, f"{path}[]")
    elif isinstance(shape, OneOf):
        for option in shape.options:
            yield from key_paths(option, path)
    elif isinstance(shape, Obj):
        for f in shape.fields:
            here = f"{path}.{f.name}"
            yield here, f.optional
            if f.shape is not None:
                yield from key_paths(f.shape, here)


def check(shape: Shape, value: Any, path: str = "$", seen: set[str] | None = None) -> list[str]:
    """What in ``value`` does not fit ``shape`` (one line each, with its path); the key paths met go into ``seen``."""
    seen = set() if seen is None else seen
    if isinstance(shape, Scalar):
        return [] if _is(shape.name, value) else [f"{path}: {type(value).__name__} {value!r} is not {shape.name}"]
    if isinstance(shape, OneOf):
        tries = []
        for option in shape.options:
            met: set[str] = set()
            problems = check(option, value, path, met)
            if not problems:
                seen |= met
                return []
            tries += problems
        return [f"{path}: fits none of its shapes: {'; '.join(tries)}"]
    if isinstance(shape, ListOf):
        if not isinstance(value, list):
            return [f"{path}: {type(value).__name__} is not a list"]
        return [p for item in value for p in check(shape.item, item, f"{path}[]", seen)]
    if not isinstance(value, dict):
        return [f"{path}: {type(value).__name__} is not an object"]
    if shape.fields and shape.fields[0].free:
        free = shape.fields[0]
        out = []
        for item in value.values():
            seen.add(f"{path}.{free.name}")
            if free.shape is not None:
                out += check(free.shape, item, f"{path}.{free.name}", seen)
        return out
    named = {f.name: f for f in shape.fields}
    out = [f"{path}: key {k!r} is not documented" for k in value if k not in named]
    out += [f"{path}: documented key {f.name!r} is missing" for f in shape.fields if f.name not in value and not f.optional]
    for key, item in value.items():
        f = named.get(key)
        if f is None:
            continue
        seen.add(f"{path}.{key}")
        if f.shape is not None:
            out += check(f.shape, item, f"{path}.{key}", seen)
    return out


def _is(kind: str, value: Any) -> bool:
    return {
        "string": isinstance(value, str),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "null": value is None,
        "any": True,
    }[kind]
