"""The invoke task namespace: thin tasks that parse, call one service, print; one module per area.

``tasks.py`` at the project root and the ``fleet`` program expose this same
namespace, so ``invoke lab.up`` and ``fleet lab.up`` are the same task.
Errors become one-line messages and exit codes in ``fleet.tasks.base.fleet_task``.
"""

from __future__ import annotations

from invoke.collection import Collection

from fleet.tasks.addons import addons_ns
from fleet.tasks.apps import apps_ns, builds_list, deploy, slugs_ns
from fleet.tasks.base import mask_pairs, pair_secrets, scrub, without_url_credentials
from fleet.tasks.dynos import ps_ns, ps_restart, ps_scale, ps_stop, run_task
from fleet.tasks.lab import lab_ns
from fleet.tasks.logs import drains_ns, logs_task
from fleet.tasks.manager import manager_ns
from fleet.tasks.nodes import audit, inventory_ns, nodes_ns
from fleet.tasks.pg import pg_ns
from fleet.tasks.releases import config_ns, config_set, releases_ns, rollback
from fleet.tasks.router import domains_ns, maintenance_ns, open_app, router_ns
from fleet.tasks.scheduler import scheduler_ns
from fleet.tasks.shell import shell_task
from fleet.tasks.stacks import buildpacks_ns, stack_ns, stacks_ns
from fleet.tasks.usage import usage_task

__all__ = ["config_set", "main", "mask_pairs", "ns", "pair_secrets", "ps_restart", "ps_scale", "ps_stop", "scrub",
           "without_url_credentials"]  # fmt: skip

ns = Collection(lab_ns, nodes_ns, manager_ns, inventory_ns, apps_ns, slugs_ns, releases_ns, config_ns, ps_ns, domains_ns, maintenance_ns, router_ns, drains_ns,
                scheduler_ns, addons_ns, pg_ns, buildpacks_ns, stacks_ns, stack_ns,
                audit, builds_list, deploy,
                rollback, run_task, open_app, logs_task, shell_task, usage_task)  # fmt: skip


def main() -> None:
    from fleet.program import main as program_main

    program_main()
