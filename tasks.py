"""invoke's entry point: `invoke lab.up` is the same task as `fleet lab.up`, and its command line reads as fleet's
(`invoke config:set -a APP K=V`, `invoke ps.scale -a APP web=2`, `invoke rollback -a APP`: fleet.program.adopt)."""

import os

from invoke.main import program as invoke_program

from fleet.program import adopt
from fleet.tasks import ns

__all__ = ["ns"]

adopt(invoke_program, os.getcwd())
