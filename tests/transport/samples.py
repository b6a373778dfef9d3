"""Fully populated domain records: every field set to a non-default value."""

from __future__ import annotations

from bacalhau.models import (
    Event,
    Execution,
    ExecutionDesiredStateType,
    ExecutionStateType,
    InputSource,
    Job,
    JobStateType,
    LabelSelectorRequirement,
    NetworkConfig,
    NetworkType,
    Resources,
    ResourcesConfig,
    ResultPath,
    RunCommandResult,
    SpecConfig,
    Task,
    TimeoutConfig,
)


def full_task(name: str = "main") -> Task:
    return Task(
        name=name,
        engine=SpecConfig(
            type="docker",
            params={
                "Image": "local/busybox:1.37",
                "Entrypoint": ["/bin/sh", "-c"],
                "Parameters": ["echo héllo; exit 3"],
                "EnvironmentVariables": ["A=1", "B=two"],
                "WorkingDirectory": "/work",
                "Nested": {"Deep": {"List": [1, 2.5, True, None, {"x": "y"}]}, "Empty": {}},
                "Count": 7,
                "Ratio": 0.25,
                "Negative": -12,
                "Flag": False,
            },
        ),
        publisher=SpecConfig(type="local", params={"URLBase": "http://127.0.0.1:6001"}),
        env={"ENV_A": "a"},
        meta={"team": "data"},
        input_sources=[
            InputSource(
                source=SpecConfig(type="urldownload", params={"URL": "http://example.org/a"}),
                alias="http://example.org/a",
                target="/inputs/a",
            ),
            InputSource(
                source=SpecConfig(
                    type="localdirectory", params={"SourcePath": "/data", "ReadWrite": True}
                ),
                target="/inputs/local",
            ),
        ],
        result_paths=[
            ResultPath(name="out", path="/outputs"),
            ResultPath(name="logs", path="/logs"),
        ],
        resources=ResourcesConfig(cpu="500m", memory="1gb", disk="2gb", gpu="1"),
        network=NetworkConfig(type=NetworkType.HTTP, domains=["example.org", ".pypi.org"]),
        timeouts=TimeoutConfig(execution_timeout=60, queue_timeout=30, total_timeout=600),
    )


def full_job() -> Job:
    return Job(
        id="j-0b3ad4b7-5b54-4b0e-8f2c-6d2d0f1e2a3b",
        name="wordcount",
        namespace="research",
        type="batch",
        priority=5,
        count=3,
        constraints=[
            LabelSelectorRequirement(key="region", operator="in", values=["eu", "us"]),
            LabelSelectorRequirement(key="gpu", operator="exists"),
            LabelSelectorRequirement(key="favour_ssd", operator="=", values=["true"]),
        ],
        meta={"bacalhau.org/requester.id": "12D3KooW", "owner": "ana"},
        labels={"project": "x", "tier": "gold"},
        tasks=[full_task("main"), full_task("second")],
        state=JobStateType.RUNNING,
        state_message="running on 2 nodes",
        state_details={"Reason": "scheduled"},
        version=2,
        revision=9,
        create_time=1_732_874_645_123_456_789,
        modify_time=1_732_874_700_987_654_321,
    )


def full_execution(
    node_id: str = "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq",
) -> Execution:
    return Execution(
        id="e-7f1c1b9e-2d5e-4c3e-9a4b-0c1d2e3f4a5b",
        job_id="j-0b3ad4b7-5b54-4b0e-8f2c-6d2d0f1e2a3b",
        node_id=node_id,
        namespace="research",
        eval_id="4f0c9b8e-1d2c-4b3a-8e7f-6a5b4c3d2e1f",
        name="wordcount",
        job=full_job(),
        allocated=Resources(cpu=0.5, memory=10**9, disk=2 * 10**9, gpu=1),
        task_name="main",
        desired_state=ExecutionDesiredStateType.RUNNING,
        desired_message="bid accepted",
        compute_state=ExecutionStateType.PUBLISHING,
        compute_message="publishing results",
        compute_details={"Step": "publish"},
        published_result=SpecConfig(type="local", params={"URL": "http://127.0.0.1:6001/e.tgz"}),
        run_output=RunCommandResult(
            stdout="hello\n",
            stdout_truncated=True,
            stderr="warn\n",
            stderr_truncated=True,
            exit_code=3,
            error_msg="exit status 3",
        ),
        previous_execution="e-00000000-0000-4000-8000-000000000001",
        next_execution="e-00000000-0000-4000-8000-000000000002",
        followup_eval_id="4f0c9b8e-0000-4000-8000-000000000003",
        revision=4,
        create_time=1_732_874_645_000_000_001,
        modify_time=1_732_874_645_999_999_999,
    )


def full_event() -> Event:
    return Event(
        message="image not found",
        topic="Exec Scanning",
        timestamp=1_732_874_645_123_456_789,
        details={"IsError": "true", "ErrorCode": "ImageNotFound", "Hint": "docker load it"},
    )
