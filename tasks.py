"""invoke's entry point: `invoke lab.up` is the same task as `fleet lab.up`."""

from fleet.tasks import ns

__all__ = ["ns"]
