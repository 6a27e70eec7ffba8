"""fleet.dyno.units: what a dyno's unit runs, compared whole (golden file), and the facts read back."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from fleet.dyno.units import (
    PREPARE,
    START,
    DynoSpec,
    UnitState,
    dyno_argv,
    dyno_state,
    listeners_argv,
    parse_listeners,
    parse_systemctl_show,
    render_unit,
)
from fleet.services.oneoff import systemd_run_argv

GOLDEN = Path(__file__).parent / "golden"
SHA = "ab" * 32


def spec(type_: str = "web", size: str = "standard-2x", port: int | None = 20001) -> DynoSpec:
    return DynoSpec("shop", type_, 2, 7, SHA, port, size, "0123456789abcdef", 40003)


def test_unit_file_is_the_golden_one() -> None:
    assert render_unit(spec()) == (GOLDEN / "dyno-shop-web.2.service").read_text()


def test_nothing_of_the_app_is_on_the_root_side_of_setpriv() -> None:
    argv = dyno_argv(spec())
    setpriv = argv.index("/usr/bin/setpriv")
    root_side, app_side = argv[:setpriv], argv[setpriv:]
    # root runs fleet's own programs by absolute path; the first program past setpriv is fleet's start script
    assert root_side[:3] == ("/usr/bin/python3", "-I", "/var/lib/fleet/apps/shop/v7/prepare")
    assert "/usr/bin/systemd-nspawn" in root_side
    assert app_side == (
        "/usr/bin/setpriv", "--reuid=40003", "--regid=40003", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
        "--no-new-privs", "--", "/bin/bash", "/run/fleet/release/start", "web",
    )  # fmt: skip
    assert "--no-new-privileges=yes" in root_side
    # config vars never on the command line: only fleet's own variables are set there
    assert sorted(a.split("=")[1] for a in argv if a.startswith("--setenv=")) == ["DYNO", "FLEET_DYNO_ID", "PORT"]


def test_machine_names_are_valid_hostnames() -> None:
    assert spec("bg_job").machine == "shop-bg-job-2"
    assert "--machine=shop-bg-job-2" in dyno_argv(spec("bg_job"))
    long = spec("w" * 26)
    assert len(long.machine) <= 64 and long.machine.startswith("shop-www")


def test_sizes_set_memory_cpu_tasks_and_disk() -> None:
    small, big = render_unit(spec(size="standard-1x")), render_unit(spec(size="performance-m"))
    assert "MemoryMax=512M\n" in small and "CPUWeight=100\n" in small and "TasksMax=256\n" in small
    assert "MemoryMax=2560M\n" in big and "CPUWeight=1200\n" in big and "TasksMax=16384\n" in big
    assert "--tmpfs=/tmp:mode=1777,size=256m,nosuid,nodev" in small and " --disk-mb 256 " in small
    assert "--tmpfs=/tmp:mode=1777,size=1024m,nosuid,nodev" in big and " --disk-mb 1024 " in big


def test_one_off_dyno_has_the_limits_and_a_lifetime() -> None:
    argv = systemd_run_argv(spec("run", "standard-1x", None), "bash", "pipe", 3600)
    for prop in ("MemoryMax=512M", "TasksMax=256", "CPUWeight=100", "RuntimeMaxSec=3600", "LogExtraFields=FLEET_APP=shop",
                 "LogRateLimitIntervalSec=0"):  # fmt: skip
        assert f"--property={prop}" in argv
    assert "--console=pipe" in argv
    assert argv[-3:] == ("/run/fleet/release/start", "--command", "bash")


def test_scripts_read_app_data_only_after_dropping_privileges() -> None:
    # prepare runs as root: it must not read the env file, the slug or a command, and runs with a fixed PATH
    assert "/env" not in PREPARE and "cmd." not in PREPARE and "/app/" not in PREPARE and "slugs" not in PREPARE
    assert 'os.environ.clear()' in PREPARE and 'PATH = "/usr/sbin:/usr/bin:/sbin:/bin"' in PREPARE
    assert START.index(". /run/fleet/release/env") < START.index("exec /bin/bash")


HOST_SS = """LISTEN 0      128          0.0.0.0:22         0.0.0.0:*
LISTEN 0      5            0.0.0.0:20009      0.0.0.0:*
"""
IN_DYNOS = """fleet.shop.web.1.v7.service LISTEN 0      5            0.0.0.0:20001      0.0.0.0:*
fleet.shop.web.1.v7.service LISTEN 0      5            127.0.0.1:9000      0.0.0.0:*
fleet.evil.worker.1.v2.service LISTEN 0      5               [::]:20002         [::]:*
not-a-unit LISTEN 0 5 0.0.0.0:20003 0.0.0.0:*
"""


def test_listeners_inside_dynos_belong_to_their_dyno() -> None:
    assert parse_listeners(HOST_SS + "--\n" + IN_DYNOS) == {
        22: set(),
        20009: set(),
        20001: {"fleet.shop.web.1.v7.service"},
        9000: {"fleet.shop.web.1.v7.service"},
        20002: {"fleet.evil.worker.1.v2.service"},
    }


def test_listeners_are_asked_of_each_running_dyno_by_its_main_pid() -> None:
    units = {
        "fleet.shop.web.1.v7.service": UnitState("fleet.shop.web.1.v7.service", "loaded", "active", "running", 0, 812),
        "fleet.shop.web.2.v7.service": UnitState("fleet.shop.web.2.v7.service", "loaded", "activating", "auto-restart", 3, 0),
    }
    argv = listeners_argv(units)
    assert argv[:2] == ("sh", "-c") and argv[3:] == ("fleet-listeners", "fleet.shop.web.1.v7.service", "812")


def test_memory_use_is_read_per_dyno_unit_from_cgroup_v2_or_v1() -> None:
    from fleet.dyno.units import parse_memory_usage, soft_quota_mb

    text = (
        "fleet.shop.web.1.v7.service 503316480\n"  # memory.current (v2) or memory.usage_in_bytes (v1): the same line
        "haproxy.service 1000\n"  # not a dyno
        "fleet.shop.web.2.v7.service \n"  # unreadable: skipped
    )
    assert parse_memory_usage(text) == {"fleet.shop.web.1.v7.service": 503316480}
    assert soft_quota_mb("standard-1x") == 460 and soft_quota_mb("performance-m") == 2304


def test_systemctl_show_gives_times_and_how_the_last_run_ended() -> None:
    text = (
        "Id=fleet.shop.web.1.v7.service\nLoadState=loaded\nActiveState=failed\nSubState=failed\nNRestarts=0\nMainPID=0\n"
        "ExecMainStartTimestamp=@1764200000\nStateChangeTimestamp=@1764200042\nResult=oom-kill\n\n"
        "Id=fleet.shop.web.2.v7.service\nLoadState=loaded\nActiveState=inactive\nSubState=dead\nNRestarts=0\nMainPID=0\n"
        "ExecMainStartTimestamp=\nStateChangeTimestamp=\nResult=success\n"
    )
    states = parse_systemctl_show(text)
    one, two = states["fleet.shop.web.1.v7.service"], states["fleet.shop.web.2.v7.service"]
    assert (one.started_at, one.changed_at, one.result) == (1764200000.0, 1764200042.0, "oom-kill")
    assert (two.started_at, two.changed_at, two.result) == (0.0, 0.0, "success")
    assert dyno_state(one, True, False) == "crashed" and dyno_state(two, False, False) == "down"


def test_the_host_look_ends_with_the_disk_free_for_fleets_files(tmp_path: Path) -> None:
    from fleet.dyno.units import LISTENERS, parse_free_disk

    script = LISTENERS.replace("/var/lib/fleet/apps", str(tmp_path)).replace("/var/lib/fleet", str(tmp_path)).replace("ss -Hltn", "true")  # no ss needed to test the df part
    out = subprocess.run(["sh", "-c", script, "fleet-listeners"], capture_output=True, text=True, check=True).stdout
    free = parse_free_disk(out)
    assert free is not None and abs(free - shutil.disk_usage(tmp_path).free // 2**20) <= 64
    assert parse_listeners(out) == {}  # the extra line is no listener
    assert parse_free_disk("--\nfree-kb 2048\n") == 2 and parse_free_disk("--\n") is None
