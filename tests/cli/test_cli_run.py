"""``docker run``, ``wasm run`` and ``job run``: flags, dry runs, waiting and outcomes."""

from __future__ import annotations

import base64
import gzip
import json
import socket
from pathlib import Path

import yaml
from click.testing import CliRunner

from bacalhau.cli import cli
from tests.cli.conftest import Cli


def test_docker_run_waits_and_prints_stdout(bacalhau: Cli) -> None:
    result = bacalhau(["docker", "run", "busybox:1.37.0", "--", "echo", "-n", "hello world"])
    assert result.exit_code == 0, result.output
    assert "Job successfully submitted. Job ID: j-" in result.stdout
    assert "Job Results By Node:" in result.stdout
    assert "-n hello world" in result.stdout
    assert "Completed successfully" in result.stdout  # the events, as they happened
    assert "bacalhau job get j-" in result.stdout


def test_id_only_and_no_wait(bacalhau: Cli) -> None:
    result = bacalhau(["docker", "run", "--id-only", "--no-wait", "busybox", "--", "echo", "x"])
    assert result.exit_code == 0
    job_id = result.stdout.strip()
    assert job_id.startswith("j-") and "\n" not in job_id
    waited = bacalhau(["docker", "run", "--id-only", "busybox", "--", "echo", "x"])
    assert waited.exit_code == 0 and waited.stdout.strip().startswith("j-")


def test_docker_dry_run_builds_the_job_from_flags(bacalhau: Cli) -> None:
    result = bacalhau(
        [
            "docker",
            "run",
            "--dry-run",
            "--name",
            "demo",
            "--namespace",
            "team",
            "-l",
            "a=1,b=2",
            "--labels",
            "c=3",
            "--count",
            "1",
            "--target",
            "all",
            "--constraints",
            "zone in (eu,us),!spot",
            "-e",
            "GREETING=hi there",
            "--entrypoint",
            "/bin/sh,-c",
            "-w",
            "/work",
            "-o",
            "outputs:/outputs",
            "-i",
            "https://example.com/data.csv:/data",
            "-p",
            "local",
            "--cpu",
            "500m",
            "--memory",
            "1Gb",
            "--network",
            "http",
            "--domain",
            "Example.com",
            "--timeout",
            "60",
            "busybox:1.37.0",
            "--",
            "echo $GREETING",
        ]
    )
    assert result.exit_code == 0, result.output
    job = yaml.safe_load(result.stdout)
    assert job["Name"] == "demo" and job["Namespace"] == "team"
    assert job["Type"] == "ops" and job["Count"] == 1
    assert job["Labels"] == {"a": "1", "b": "2", "c": "3"}
    assert job["Constraints"] == [
        {"Key": "zone", "Operator": "in", "Values": ["eu", "us"]},
        {"Key": "spot", "Operator": "!"},
    ]
    task = job["Tasks"][0]
    assert task["Name"] == "main"
    assert task["Engine"] == {
        "Type": "docker",
        "Params": {
            "Image": "busybox:1.37.0",
            "Entrypoint": ["/bin/sh", "-c"],
            "Parameters": ["echo $GREETING"],
            "WorkingDirectory": "/work",
        },
    }
    # -e is the task's Env, as Bacalhau (v1.7+) sends it.
    assert task["Env"] == {"GREETING": "hi there"}
    assert task["Publisher"] == {"Type": "local"}
    assert task["ResultPaths"] == [{"Name": "outputs", "Path": "/outputs"}]
    assert task["InputSources"] == [
        {
            "Source": {"Type": "urlDownload", "Params": {"URL": "https://example.com/data.csv"}},
            "Target": "/data",
            "Alias": "https://example.com/data.csv",
        }
    ]
    assert task["Resources"] == {"CPU": "500m", "Memory": "1Gb"}
    assert task["Network"] == {"Type": "HTTP", "Domains": ["example.com"]}
    # As Bacalhau's CLI sets it: the whole job's timeout.
    assert task["Timeouts"] == {"TotalTimeout": 60}
    assert bacalhau.orch.submissions == []  # nothing was submitted


def test_wasm_run_sends_the_module_inline(bacalhau: Cli, tmp_path: Path) -> None:
    small = tmp_path / "small.wasm"
    small.write_bytes(b"\0asm\x01\0\0\0")
    big = tmp_path / "big.wasm"
    big.write_bytes(b"\0asm\x01\0\0\0" + bytes(2000))
    result = bacalhau(["wasm", "run", "--dry-run", "-e", "A=1", str(small), "--", "x", "-y"])
    assert result.exit_code == 0, result.output
    task = yaml.safe_load(result.stdout)["Tasks"][0]
    params = task["Engine"]["Params"]
    assert params["EntryPoint"] == "_start"
    assert params["Parameters"] == ["x", "-y"]
    assert task["Env"] == {"A": "1"} and "EnvironmentVariables" not in params
    url = params["EntryModule"]["Source"]["Params"]["URL"]
    assert params["EntryModule"]["Source"]["Type"] == "inline"
    assert base64.b64decode(url.split(",", 1)[1]) == small.read_bytes()
    result = bacalhau(["wasm", "run", "--dry-run", "--entrypoint", "main", str(big)])
    params = yaml.safe_load(result.stdout)["Tasks"][0]["Engine"]["Params"]
    assert params["EntryPoint"] == "main"
    blob = base64.b64decode(params["EntryModule"]["Source"]["Params"]["URL"].split(",", 1)[1])
    assert big.read_bytes() in gzip.decompress(blob)  # a gzip'd tar holding the module
    missing = bacalhau(["wasm", "run", str(tmp_path / "nope.wasm")])
    assert missing.exit_code == 2


def test_wasm_run_waits_for_the_job(bacalhau: Cli, tmp_path: Path) -> None:
    module = tmp_path / "m.wasm"
    module.write_bytes(b"\0asm\x01\0\0\0")
    result = bacalhau(["wasm", "run", str(module)])
    assert result.exit_code == 0, result.output
    assert "completed" in result.stdout


def test_failed_job_prints_error_and_hint(bacalhau: Cli) -> None:
    result = bacalhau(["docker", "run", "missing:image"])
    assert result.exit_code == 1
    assert "Error: job j-" in result.stderr and "failed" in result.stderr
    assert "image missing:image not found" in result.stderr
    assert "Hint: try a different image" in result.stderr


def test_server_side_validation_error_names_field_and_hint(bacalhau: Cli) -> None:
    result = bacalhau(["docker", "run", "--cpu", "lots", "busybox"])
    assert result.exit_code == 1
    assert "Error: invalid CPU quantity 'lots'" in result.stderr
    assert "Hint: use cores" in result.stderr


def test_usage_errors_exit_2(bacalhau: Cli) -> None:
    for args in (
        ["docker", "run"],
        ["docker", "run", "-e", "NOEQUALS", "busybox"],
        ["docker", "run", "-o", "nopath", "busybox"],
        ["docker", "run", "--network", "wifi", "busybox"],
        ["docker", "run", "--count", "-1", "busybox"],
        ["docker", "run", "-i", "git://x/y", "busybox"],
        ["job", "list", "--output", "xml"],
        ["no-such-command"],
    ):
        result = bacalhau(args)
        assert result.exit_code == 2, (args, result.output)
    # -e fills the task's Env, where the node's own variables are reserved.
    reserved = bacalhau(["docker", "run", "-e", "BACALHAU_JOB_ID=mine", "busybox"])
    assert reserved.exit_code == 1 and "BACALHAU_JOB_ID is reserved" in reserved.stderr


def test_bad_constraints_are_an_invalid_spec(bacalhau: Cli) -> None:
    result = bacalhau(["docker", "run", "--constraints", "zone in (a", "busybox"])
    assert result.exit_code == 1
    assert "Error: invalid label selector term 'zone in (a'" in result.stderr
    assert "Hint:" in result.stderr


def test_unreachable_node_explains_how_to_point_elsewhere() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = CliRunner().invoke(
        cli, ["job", "list"], env={"BACALHAU_API_HOST": "127.0.0.1", "BACALHAU_API_PORT": str(port)}
    )
    assert result.exit_code == 1
    assert f"Error: cannot reach the Bacalhau API at http://127.0.0.1:{port}" in result.stderr
    assert "--api-host/--api-port" in result.stderr and "BACALHAU_API_HOST" in result.stderr


def test_address_from_the_environment(bacalhau: Cli) -> None:
    env = {"BACALHAU_API_HOST": "127.0.0.1", "BACALHAU_API_PORT": str(bacalhau.server.port)}
    result = CliRunner().invoke(cli, ["agent", "alive", "--output", "json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"Status": "OK"}


def test_job_run_from_file_and_stdin(bacalhau: Cli, tmp_path: Path) -> None:
    spec = {
        "Job": {
            "Type": "batch",
            "Count": 1,
            "Tasks": [
                {
                    "Name": "main",
                    "Engine": {
                        "Type": "docker",
                        "Params": {"Image": "busybox", "Entrypoint": ["echo", "from-file"]},
                    },
                }
            ],
        }
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = bacalhau(["job", "run", str(path)])
    assert result.exit_code == 0, result.output
    assert "from-file" in result.stdout
    piped = bacalhau(["job", "run", "--id-only", "--no-wait", "-"], input=json.dumps(spec))
    assert piped.exit_code == 0 and piped.stdout.strip().startswith("j-")
    dry = bacalhau(["job", "run", "--dry-run", str(path)])
    assert yaml.safe_load(dry.stdout)["Tasks"][0]["Engine"]["Params"]["Image"] == "busybox"


def test_job_validate(bacalhau: Cli, tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(
        "Type: batch\nTasks:\n  - Name: main\n    Engine:\n      Type: docker\n"
        "      Params:\n        Image: busybox\n"
    )
    result = bacalhau(["job", "validate", str(good)])
    assert result.exit_code == 0 and result.stdout == "OK\n"
    bad = tmp_path / "bad.yaml"
    bad.write_text("Type: batch\nTasks:\n  - Name: main\n    Engine: {Type: docker}\n")
    result = bacalhau(["job", "validate", str(bad)])
    assert result.exit_code == 1
    assert "Error: task main validation failed: docker engine needs an image" in result.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("Type: [unclosed\n")
    result = bacalhau(["job", "validate", str(broken)])
    assert result.exit_code == 1 and "not valid YAML or JSON" in result.stderr


def test_invalid_spec_is_caught_before_submitting(bacalhau: Cli) -> None:
    """A bad spec names its field and never reaches the server (so no job is created)."""
    result = bacalhau(["docker", "run", "-o", "out:relative/path", "busybox"])
    assert result.exit_code == 1
    assert "Field: Tasks[0].ResultPaths[0].Path" in result.stderr
    listed = bacalhau(["job", "list", "--output", "json"])
    assert json.loads(listed.stdout) == []


def test_queue_timeout_reaches_the_task_of_docker_and_wasm_jobs(
    bacalhau: Cli, tmp_path: Path
) -> None:
    module = tmp_path / "m.wasm"
    module.write_bytes(b"\0asm\x01\0\0\0")
    for args in (["docker", "run", "busybox"], ["wasm", "run", str(module)]):
        dry = bacalhau([*args[:2], "--dry-run", "--queue-timeout", "90", *args[2:]])
        assert dry.exit_code == 0, dry.output
        assert yaml.safe_load(dry.stdout)["Tasks"][0]["Timeouts"] == {"QueueTimeout": 90}
        sent = bacalhau([*args[:2], "--id-only", "--no-wait", "--queue-timeout", "90", *args[2:]])
        assert sent.exit_code == 0, sent.output
        job = bacalhau.orch._jobs[sent.stdout.strip()].job
        assert job.task.timeouts.queue_timeout == 90
    refused = bacalhau(["docker", "run", "--queue-timeout", "-1", "busybox"])
    assert refused.exit_code == 2 and "--queue-timeout" in refused.output


def test_submission_warnings_print_unless_hidden_or_id_only(bacalhau: Cli, tmp_path: Path) -> None:
    """As Bacalhau prints them: on by default (here on standard error), off with
    ``--hide-warnings`` or ``--id-only``; ``--show-warnings``, our earlier opt-in, is still
    accepted."""
    spec = {
        "Type": "batch",
        "Meta": {"bacalhau.org/requester.id": "mine"},
        "Tasks": [
            {
                "Name": "main",
                "Engine": {
                    "Type": "docker",
                    "Params": {"Image": "busybox", "Entrypoint": ["echo", "hi"]},
                },
            }
        ],
    }
    path = tmp_path / "warned.yaml"
    path.write_text(yaml.safe_dump(spec))
    warning = 'Warning: job meta key "bacalhau.org/requester.id" is reserved and will be ignored'
    shown = bacalhau(["job", "run", "--no-wait", str(path)])
    assert shown.exit_code == 0, shown.output
    assert warning in shown.stderr and warning not in shown.stdout
    for quiet in (["--hide-warnings"], ["--id-only"]):
        result = bacalhau(["job", "run", "--no-wait", *quiet, str(path)])
        assert result.exit_code == 0 and "Warning" not in result.stderr, quiet
    old = bacalhau(["job", "run", "--no-wait", "--show-warnings", str(path)])
    assert old.exit_code == 0 and warning in old.stderr
    docker = bacalhau(["docker", "run", "--no-wait", "--hide-warnings", "busybox", "--", "true"])
    assert docker.exit_code == 0, docker.output
