"""The ``fleet`` command: an invoke Program over the same namespace as tasks.py."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from invoke.program import Program

from fleet.tasks import ns

try:
    VERSION = version("fleet")
except PackageNotFoundError:  # running from a checkout without install
    VERSION = "0.0.0"

program = Program(namespace=ns, name="fleet", binary="fleet", version=VERSION)


def main() -> None:
    program.run()
