"""The scheduler in the dyno manager's pass, over a recording executor: a due job starts as a detached
scheduler.N of the current release with its time limit; a job whose run is still running is not started again
(its slot skipped, said once); a run killed at its limit is recorded and said; its failed unit reset."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.context import Fleet
from fleet.exec.base import CommandResult
from fleet.exec.recording import Call, RecordingExecutor
from fleet.services import manager
from fleet.services import scheduler as service
from fleet.settings import Settings
from tests.unit.test_manager_pass import INVENTORY, UNIT, Hosts, ran, stream


class SchedulerHosts(Hosts):
    """systemd-run starts its unit (active until a test says otherwise)."""

    def respond(self, call: Call) -> CommandResult:
        if call.argv[0] == "systemd-run":
            unit = next(a for a in call.argv if a.startswith("--unit=")).removeprefix("--unit=")
            self.units[call.host][unit] = ("active", "running", "success")
        return super().respond(call)


@pytest.fixture
def hosts() -> SchedulerHosts:
    h = SchedulerHosts()
    h.units["node1"][UNIT] = ("active", "running", "success")
    return h


@pytest.fixture
def fleet(tmp_path: Path, hosts: SchedulerHosts, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    for key, value in {"FLEET_HOST_DOWN_AFTER": "2", "FLEET_PROBE_TIMEOUT": "1", "FLEET_PROBE_INTERVAL": "1"}.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "inventory.yml").write_text(INVENTORY)
    f = Fleet(Settings(tmp_path / "home", str(tmp_path / "inventory.yml")), RecordingExecutor(hosts.respond))
    f.store.create_app("shop")
    f.store.add_release("shop", slug="ab" * 32, build_number=1, commit="c0ffee", process_types={"worker": "python3 w.py"},
                        config={}, description="Deploy c0ffee")  # fmt: skip
    f.store.set_release_status("shop", 1, "succeeded")
    f.store.set_formation("shop", {"worker": (1, "standard-1x")})
    from fleet.model import DynoRecord

    f.store.add_dyno(DynoRecord("d1", "shop", "worker", 1, 1, "node1", None, "standard-1x", UNIT, "2026-11-27T00:00:00+00:00"))
    yield f
    f.close()


def due_job(fleet: Fleet) -> int:
    """A job every 10m made 11 minutes ago: a slot has come since."""
    job = service.add(fleet, "shop", ["echo scheduled-$RANDOM"], "10m")
    fleet.store.db.execute("UPDATE scheduler_jobs SET created_at = ? WHERE id = ?", (time.time() - 660, job.id))
    return job.id


def started(fleet: Fleet) -> list[tuple[str, tuple[str, ...]]]:
    assert isinstance(fleet.executor, RecordingExecutor)
    return [(c.host, c.argv) for c in fleet.executor.calls if c.argv[0] == "systemd-run"]


def test_no_job_no_scheduler_work(fleet: Fleet) -> None:
    [report] = manager.run(fleet)
    assert report.actions == [] and started(fleet) == []


def test_a_due_job_starts_as_a_detached_one_off_with_its_limit(fleet: Fleet, hosts: SchedulerHosts) -> None:
    job_id = due_job(fleet)
    [report] = manager.run(fleet)
    [(host, argv)] = started(fleet)
    [run] = fleet.store.scheduler_runs(job_id, unfinished=True)
    assert run.dyno.startswith("scheduler.") and run.unit == f"fleet.shop.{run.dyno}.v1.service" and (run.host, run.release) == (host, 1)
    assert f"--unit={run.unit}" in argv and "--property=RuntimeMaxSec=600" in argv and "--property=LogExtraFields=FLEET_APP=shop" in argv
    assert "--collect" not in argv  # a failed run's unit stays, to say how it ended
    assert argv[-2:] == ("--command", "echo scheduled-$RANDOM")
    assert report.actions == [f"shop: scheduler job {job_id} started: {run.dyno} on {host} (due "
                              f"{service.clock(service.next_due(fleet.store.scheduler_job('shop', job_id), None, time.time()))})"]  # fmt: skip
    assert ("fleet", run.dyno, f"Starting process with command `echo scheduled-$RANDOM` (scheduler job {job_id}, every 10m, "
            "time limit 10m)") in stream(fleet)  # fmt: skip
    entry = fleet.store.audit_entries()[-1]
    assert (entry.command, entry.args["app"], entry.outcome) == ("manager.scheduler", "shop", "ok")
    # the next pass sees it running: nothing started, and the manager does not stop it as a unit it has no record of
    [again] = manager.run(fleet)
    assert len(started(fleet)) == 1 and again.actions == [] and ran(fleet, host, "systemctl", "disable") == []


def test_a_job_still_running_when_its_next_slot_comes_is_not_started_twice(fleet: Fleet, hosts: SchedulerHosts) -> None:
    job_id = due_job(fleet)
    manager.run(fleet)
    assert len(fleet.store.scheduler_runs(job_id)) == 1
    fleet.store.db.execute("UPDATE scheduler_runs SET started_at = started_at - 600")  # its next slot has come since
    [report] = manager.run(fleet)
    assert len(started(fleet)) == 1
    assert len(report.actions) == 1 and report.actions[0].startswith(f"shop: scheduler job {job_id} skips its run of ")
    assert report.actions[0].endswith(": its last run is still running")
    assert fleet.store.scheduler_job("shop", job_id).skipped_slot is not None
    [said] = [m for (_, d, m) in stream(fleet) if d == "scheduler"]
    assert said.startswith(f"Job {job_id} (every 10m) skips its run of ")
    [quiet] = manager.run(fleet)  # said once
    assert quiet.actions == [] and len(started(fleet)) == 1


def test_a_run_killed_at_its_limit_is_recorded_said_and_reset(fleet: Fleet, hosts: SchedulerHosts) -> None:
    job_id = due_job(fleet)
    manager.run(fleet)
    [run] = fleet.store.scheduler_runs(job_id)
    hosts.units[run.host][run.unit] = ("failed", "failed", "timeout")
    [report] = manager.run(fleet)
    [ended] = fleet.store.scheduler_runs(job_id)
    assert ended.result == "timeout" and ended.ended_at is not None
    assert report.actions == [f"shop: scheduler job {job_id} ({run.dyno} on {run.host}) ended: timeout"]
    assert ("fleet", run.dyno, "Process killed after its time limit (10m)") in stream(fleet)
    assert ran(fleet, run.host, "systemctl", "reset-failed") == [("systemctl", "reset-failed", run.unit)]


def test_a_run_that_exited_is_recorded_when_its_unit_is_gone(fleet: Fleet, hosts: SchedulerHosts) -> None:
    job_id = due_job(fleet)
    manager.run(fleet)
    [run] = fleet.store.scheduler_runs(job_id)
    del hosts.units[run.host][run.unit]
    manager.run(fleet)
    assert fleet.store.scheduler_runs(job_id)[0].result == "exited"
    assert ran(fleet, run.host, "systemctl", "reset-failed") == []


def test_a_run_on_a_host_that_does_not_answer_is_waited_for(fleet: Fleet, hosts: SchedulerHosts) -> None:
    job_id = due_job(fleet)
    manager.run(fleet)
    [run] = fleet.store.scheduler_runs(job_id)
    fleet.store.db.execute("UPDATE scheduler_runs SET started_at = started_at - 600")
    hosts.down.add(run.host)  # one miss: not down yet, its run's state not known
    [report] = manager.run(fleet)
    assert report.actions == [] and len(started(fleet)) == 1 and fleet.store.scheduler_runs(job_id, unfinished=True) != []


def test_a_dry_run_says_what_it_would_start_and_changes_nothing(fleet: Fleet) -> None:
    job_id = due_job(fleet)
    [report] = manager.run(fleet, dry_run=True)
    assert report.actions == [f"shop: start scheduler job {job_id} (due {report.actions[0].split('(due ')[1]}"]
    assert started(fleet) == [] and fleet.store.scheduler_runs() == []


def test_a_job_that_cannot_start_is_recorded_for_its_slot_not_retried_every_pass(fleet: Fleet) -> None:
    job_id = due_job(fleet)
    fleet.store.db.execute("UPDATE releases SET slug_sha256 = NULL")
    [report] = manager.run(fleet)
    assert report.errors == [f"shop: scheduler job {job_id} not started: shop has no release with code yet: "
                             "git push or `fleet deploy -a shop` first"]  # fmt: skip
    [run] = fleet.store.scheduler_runs(job_id)
    assert run.result is not None and run.result.startswith("not started: ")
    [again] = manager.run(fleet)
    assert again.errors == [] and len(fleet.store.scheduler_runs(job_id)) == 1


def test_run_now_asks_the_host_and_refuses_a_job_still_running(fleet: Fleet, hosts: SchedulerHosts) -> None:
    job_id = due_job(fleet)
    run = service.run_now(fleet, "shop", job_id)
    assert ("app", "api") in {(s, d) for (s, d, _) in stream(fleet)}
    real = hosts.respond

    def is_active(call: Call) -> CommandResult:
        if call.argv[:2] == ("systemctl", "is-active"):
            return CommandResult(call.host, call.argv, 0, "active\n", "")
        return real(call)

    assert isinstance(fleet.executor, RecordingExecutor)
    fleet.executor.responder = is_active
    with pytest.raises(Exception, match=f"scheduler job {job_id} is still running \\({run.dyno} on {run.host}"):
        service.run_now(fleet, "shop", job_id)
    assert ran(fleet, run.host, "systemctl", "is-active") == [("systemctl", "is-active", run.unit)]
    assert len(started(fleet)) == 1
