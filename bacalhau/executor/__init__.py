"""Executor plugins: docker, wasm and noop, behind one small Protocol."""

from bacalhau.executor._base import Executor, RunRequest

__all__ = ["Executor", "RunRequest"]
