"""Executors: the one layer that does I/O. Import SSHExecutor from fleet.exec.ssh."""

from fleet.exec.base import CommandResult, Executor, FanOutResult, fan_out
from fleet.exec.local import LocalExecutor, run_local
from fleet.exec.recording import Call, RecordingExecutor

__all__ = ["Call", "CommandResult", "Executor", "FanOutResult", "LocalExecutor", "RecordingExecutor", "fan_out", "run_local"]
