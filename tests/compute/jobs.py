"""Building executions the way a requester sends them in AskForBid."""

from __future__ import annotations

from bacalhau.models import (
    Execution,
    Job,
    NetworkConfig,
    NetworkType,
    ResourcesConfig,
    ResultPath,
    SpecConfig,
    Task,
    TimeoutConfig,
    new_execution_id,
    new_job_id,
)


def noop_execution(
    *,
    publisher: str = "",
    result_paths: list[ResultPath] | None = None,
    timeout: int = 0,
    priority: int = 0,
    **params: object,
) -> Execution:
    """An execution of the noop executor (Stdout, ExitCode, SleepSeconds, ResultFiles...)."""
    return make_execution(
        engine="noop",
        params=dict(params),
        publisher=publisher,
        result_paths=result_paths,
        timeout=timeout,
        priority=priority,
    )


def make_execution(
    command: str = "echo hello",
    *,
    engine: str = "shell",
    publisher: str = "",
    priority: int = 0,
    cpu: str = "",
    memory: str = "",
    network: NetworkType = NetworkType.NONE,
    timeout: int = 0,
    result_paths: list[ResultPath] | None = None,
    error_message: str = "",
    node_id: str = "compute-node",
    params: dict[str, object] | None = None,
) -> Execution:
    """A batch job execution; ``params`` replaces the shell engine's ``Command`` params."""
    params = dict(params) if params is not None else {"Command": command}
    if error_message:
        params["ErrorMessage"] = error_message
    job = Job(
        id=new_job_id(),
        name="test",
        namespace="default",
        type="batch",
        priority=priority,
        count=1,
        tasks=[
            Task(
                name="main",
                engine=SpecConfig(type=engine, params=params),
                publisher=SpecConfig(type=publisher),
                resources=ResourcesConfig(cpu=cpu, memory=memory),
                network=NetworkConfig(type=network),
                timeouts=TimeoutConfig(execution_timeout=timeout),
                result_paths=list(result_paths or []),
            )
        ],
    )
    return Execution(id=new_execution_id(), job_id=job.id, node_id=node_id, job=job, name=job.name)
