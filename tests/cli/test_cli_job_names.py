"""The CLI and jobs by name, against a real requester (the real orchestrator behind the REST
API, no compute nodes): a name submitted again updates the job, ``--force`` submits an
unchanged spec again, ``--dry-run`` prints the diff against the job of the same name, and the
commands that take a job ID take its name."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from bacalhau.cli import cli
from bacalhau.models import NodeInfo, NodeType
from bacalhau.orchestrator import Orchestrator
from tests.api.conftest import NoComputeNodes
from tests.api.server_thread import ServerThread
from tests.cli.conftest import Cli
from tests.orchestrator.node_view import StaticNodeView


@pytest.fixture
def bacalhau(tmp_path: Path) -> Iterator[Cli]:
    orch = Orchestrator(
        node_info=NodeInfo(node_id="n-cli-requester", node_type=NodeType.REQUESTER),
        data_dir=tmp_path / "requester",
        compute=NoComputeNodes(),
        node_view=StaticNodeView(),
    )
    server = ServerThread(orch).start()
    server.run(orch.__aenter__())
    try:
        yield Cli(server)
    finally:
        server.run(orch.__aexit__(None, None, None))
        server.stop()


def _job_file(tmp_path: Path, name: str, words: str) -> Path:
    path = tmp_path / f"{name}-{abs(hash(words))}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "Name": name,
                "Type": "batch",
                "Count": 1,
                "Tasks": [
                    {
                        "Name": "main",
                        "Engine": {
                            "Type": "docker",
                            "Params": {"Image": "busybox", "Parameters": words.split()},
                        },
                    }
                ],
            }
        )
    )
    return path


def test_job_run_by_name_updates_and_force_submits_it_unchanged(
    bacalhau: Cli, tmp_path: Path
) -> None:
    first = bacalhau(["job", "run", "--no-wait", "--id-only", str(_job_file(tmp_path, "n", "a"))])
    assert first.exit_code == 0, first.output
    job_id = first.stdout.strip()
    changed = _job_file(tmp_path, "n", "b")
    second = bacalhau(["job", "run", "--no-wait", "--id-only", str(changed)])
    assert second.exit_code == 0 and second.stdout.strip() == job_id
    refused = bacalhau(["job", "run", "--no-wait", str(changed)])
    assert refused.exit_code != 0
    # Bacalhau's words, which its own suite looks for.
    assert "no changes detected for new job spec. Job Name: 'n'" in refused.stderr
    assert "Use the --force flag to override this warning" in refused.stderr
    assert "Hint: Use the --force flag" in refused.stderr
    forced = bacalhau(["job", "run", "--no-wait", "--id-only", "--force", str(changed)])
    assert forced.exit_code == 0 and forced.stdout.strip() == job_id
    versions = yaml.safe_load(bacalhau(["job", "versions", "n", "--output", "yaml"]).stdout)
    assert [v["Version"] for v in versions] == [1, 2, 3]
    rows = bacalhau(["job", "versions", "n"]).stdout.splitlines()
    assert rows[0].split() == ["CREATED", "AT", "JOB", "VERSION"]  # Bacalhau's columns
    assert [r.split()[-1] for r in rows[1:]] == ["1", "2", "3"]


def test_docker_run_with_a_name_twice_is_one_job_found_by_its_name(bacalhau: Cli) -> None:
    run = ["docker", "run", "--no-wait", "--id-only", "--name", "web", "busybox", "--", "echo"]
    one = bacalhau([*run, "one"]).stdout.strip()
    two = bacalhau([*run, "two"]).stdout.strip()
    assert one == two and one.startswith("j-")
    described = yaml.safe_load(bacalhau(["job", "describe", "web", "--output", "yaml"]).stdout)
    assert described["Job"]["ID"] == one and described["Job"]["Version"] == 2
    history = bacalhau(["job", "history", "web", "--event-type", "job"])
    assert "Job updated as version 2" in history.stdout
    assert bacalhau(["job", "executions", "web"]).exit_code == 0
    # Found by its name: this stand-in cluster ended it already, so it is not stopped.
    stopped = bacalhau(["job", "stop", "web"])
    state = described["Job"]["State"]["StateType"]
    assert stopped.exit_code == 1, stopped.output
    assert f"Job is already in a terminal state.\nThe current state is: {state}" in stopped.stderr
    # Unknown names still say so.
    missing = bacalhau(["job", "describe", "nobody"])
    assert missing.exit_code == 1 and "job not found: nobody" in missing.stderr


def test_dry_run_prints_the_diff_against_the_job_of_the_same_name(
    bacalhau: Cli, tmp_path: Path
) -> None:
    original = _job_file(tmp_path, "report", "a")
    assert bacalhau(["job", "run", "--no-wait", str(original)]).exit_code == 0
    diff = bacalhau(["job", "run", "--dry-run", str(_job_file(tmp_path, "report", "b"))])
    assert diff.exit_code == 0, diff.output
    assert "--- report (version 1, j-" in diff.stdout and "+++ report (submitted)" in diff.stdout
    assert "-      - a" in diff.stdout and "+      - b" in diff.stdout
    assert diff.stderr == ""
    same = bacalhau(["job", "run", "--dry-run", str(original)])
    assert same.stdout.strip() == "No diff detected." and same.stderr == ""
    # A new name: the job as YAML, as before, with nothing on standard error.
    new = bacalhau(["job", "run", "--dry-run", str(_job_file(tmp_path, "fresh", "a"))])
    assert yaml.safe_load(new.stdout)["Name"] == "fresh" and new.stderr == ""
    # docker run builds the same job from its flags as the file holds.
    docker = ["docker", "run", "--dry-run", "--name", "report", "busybox", "--"]
    assert bacalhau([*docker, "a"]).stdout.strip() == "No diff detected."
    assert "+      - c" in bacalhau([*docker, "c"]).stdout
    # Nothing was submitted.
    versions = yaml.safe_load(bacalhau(["job", "versions", "report", "--output", "yaml"]).stdout)
    assert len(versions) == 1


def test_dry_run_without_a_reachable_cluster_prints_the_yaml_and_one_warning(
    tmp_path: Path,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once closed
    result = CliRunner().invoke(
        cli,
        ["--api-port", str(port), "job", "run", "--dry-run", str(_job_file(tmp_path, "x", "a"))],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["Name"] == "x"
    warnings = result.stderr.strip().splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("Warning: cannot compare with the job")


def test_job_commands_look_names_up_in_their_namespace(bacalhau: Cli) -> None:
    run = ["docker", "run", "--no-wait", "--id-only", "--namespace", "team", "--name", "etl"]
    job_id = bacalhau([*run, "busybox", "--", "echo", "x"]).stdout.strip()
    assert job_id.startswith("j-")
    # Not in the default namespace...
    missing = bacalhau(["job", "describe", "etl"])
    assert missing.exit_code == 1 and "job not found: etl" in missing.stderr
    # ...but there with --namespace, on every command that takes a job (old spellings too).
    for args in (
        ["job", "describe", "etl", "--namespace", "team", "--output", "json"],
        ["describe", "etl", "--namespace", "team", "--output", "json"],
        ["job", "executions", "etl", "--namespace", "team"],
        ["job", "history", "etl", "--namespace", "team"],
        ["job", "versions", "etl", "--namespace", "team"],
    ):
        found = bacalhau(args)
        assert found.exit_code == 0, (args, found.output)
    described = bacalhau(["job", "describe", "--namespace", "team", "etl", "--output", "yaml"])
    assert yaml.safe_load(described.stdout)["Job"]["ID"] == job_id
    stopped = bacalhau(["job", "stop", "etl", "--namespace", "team"])
    assert stopped.exit_code == 1 and "The current state is:" in stopped.stderr, stopped.output
