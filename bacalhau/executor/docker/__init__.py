"""The Docker executor: one container per execution on the local Docker engine."""

from bacalhau.executor.docker._executor import (
    DEFAULT_PIDS_LIMIT,
    DEFAULT_REAP_INTERVAL,
    DEFAULT_RESULT_DISK_LIMIT,
    DEFAULT_TMP_SIZE,
    LABEL_EXECUTION_ID,
    LABEL_EXECUTOR,
    LABEL_JOB_ID,
    DockerExecutor,
)
from bacalhau.executor.docker._params import DockerEngineSpec

__all__ = [
    "DEFAULT_PIDS_LIMIT",
    "DEFAULT_REAP_INTERVAL",
    "DEFAULT_RESULT_DISK_LIMIT",
    "DEFAULT_TMP_SIZE",
    "LABEL_EXECUTION_ID",
    "LABEL_EXECUTOR",
    "LABEL_JOB_ID",
    "DockerEngineSpec",
    "DockerExecutor",
]
