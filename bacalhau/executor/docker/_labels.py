"""The labels every container of a Docker executor carries.

The executor label holds the executor's name prefix: it is how the reaper tells this
executor's containers from every other container on a shared engine.
"""

__all__ = ["LABEL_EXECUTION_ID", "LABEL_EXECUTOR", "LABEL_JOB_ID"]

LABEL_EXECUTOR = "bacalhau-executor"
LABEL_JOB_ID = "bacalhau-jobID"
LABEL_EXECUTION_ID = "bacalhau-executionID"
