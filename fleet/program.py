"""The ``fleet`` command: an invoke Program over the same namespace as tasks.py.

invoke tasks take no variadic arguments, so the ``fleet`` command turns the
Heroku-style forms into repeated options first (``rewrite_argv``, pure):

    fleet config.set -a APP K=V K2=V2   ->  ... --pair=K=V --pair=K2=V2
    fleet config.unset -a APP K K2      ->  ... --key=K --key=K2
    fleet ps.scale -a APP web=2         ->  ... --spec=web=2
    fleet run -a APP python x.py --v    ->  ... --arg=python --arg=x.py --arg=--v
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version

from invoke.program import Program

from fleet.tasks import ns

try:
    VERSION = version("fleet")
except PackageNotFoundError:  # running from a checkout without install
    VERSION = "0.0.0"

VARIADIC = {"config.set": "pair", "config.unset": "key", "ps.scale": "spec", "run": "arg"}
VALUE_FLAGS = ("-a", "--app")
BOOL_FLAGS = ("--detached", "-d", "--help", "-h")

program = Program(namespace=ns, name="fleet", binary="fleet", version=VERSION)


def rewrite_argv(argv: list[str]) -> list[str]:
    if len(argv) < 2 or argv[1] not in VARIADIC:
        return list(argv)
    option = VARIADIC[argv[1]]
    is_run = argv[1] == "run"
    out, items = list(argv[:2]), []
    rest = argv[2:]
    i = 0
    in_items = False
    while i < len(rest):
        tok = rest[i]
        if in_items:
            items.append(tok)
        elif tok == "--":
            in_items = True
        elif tok in VALUE_FLAGS and i + 1 < len(rest):
            out += [tok, rest[i + 1]]
            i += 1
        elif (
            tok.startswith("--app=")
            or (tok.startswith("-a") and len(tok) > 2 and not tok.startswith("--"))
            or tok in BOOL_FLAGS
            or tok.startswith(f"--{option}=")
        ):
            out.append(tok)
        else:
            items.append(tok)
            in_items = is_run  # a command's own flags belong to it
        i += 1
    return out + [f"--{option}={item}" for item in items]


def main() -> None:
    program.run(rewrite_argv(sys.argv))
