"""The noop executor: a real plugin that pretends to run jobs, for tests."""

from bacalhau.executor.noop._executor import NoopExecutor
from bacalhau.executor.noop._params import NoopEngineSpec

__all__ = ["NoopEngineSpec", "NoopExecutor"]
