"""The Docker executor: one container per execution on the local Docker engine.

The executor (and the Docker SDK under it, some 16 MB of a node's memory) is loaded when
first named: a node that runs no Docker engine, a requester, never loads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bacalhau._lazy import lazy_attributes
from bacalhau.executor.docker._defaults import (
    DEFAULT_CAP_DROP,
    DEFAULT_IMAGE_CACHE_SIZE,
    DEFAULT_IMAGE_CACHE_TTL,
    DEFAULT_PIDS_LIMIT,
    DEFAULT_READ_ONLY_ROOTFS,
    DEFAULT_REAP_INTERVAL,
    DEFAULT_RESULT_DISK_LIMIT,
    DEFAULT_TMP_SIZE,
    DEFAULT_WRITABLE_LAYER_LIMIT,
)
from bacalhau.executor.docker._labels import LABEL_EXECUTION_ID, LABEL_EXECUTOR, LABEL_JOB_ID
from bacalhau.executor.docker._params import DockerEngineSpec

if TYPE_CHECKING:
    from bacalhau.executor.docker._executor import DockerExecutor

__all__ = [
    "DEFAULT_CAP_DROP",
    "DEFAULT_IMAGE_CACHE_SIZE",
    "DEFAULT_IMAGE_CACHE_TTL",
    "DEFAULT_PIDS_LIMIT",
    "DEFAULT_READ_ONLY_ROOTFS",
    "DEFAULT_REAP_INTERVAL",
    "DEFAULT_RESULT_DISK_LIMIT",
    "DEFAULT_TMP_SIZE",
    "DEFAULT_WRITABLE_LAYER_LIMIT",
    "LABEL_EXECUTION_ID",
    "LABEL_EXECUTOR",
    "LABEL_JOB_ID",
    "DockerEngineSpec",
    "DockerExecutor",
]


__getattr__ = lazy_attributes(__name__, {"DockerExecutor": "bacalhau.executor.docker._executor"})
