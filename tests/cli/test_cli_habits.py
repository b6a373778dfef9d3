"""Command lines as Bacalhau's users and documents write them: root flags after any
subcommand, cobra's ``--flag=false``, the shared output flags, the older command spellings,
and the API address taken from the configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from bacalhau.cli import cli
from bacalhau.cli._run import default_job_folder
from tests.cli.conftest import Cli


def invoke(args: list[str], env: dict[str, str] | None = None) -> Result:
    """The CLI with no address on the root: only what ``args`` and ``env`` say."""
    clean = {"BACALHAU_API_HOST": None, "BACALHAU_API_PORT": None, "BACALHAU_DIR": None}
    return CliRunner().invoke(cli, args, env={**clean, **(env or {})}, catch_exceptions=False)


def submit(bacalhau: Cli, text: str) -> str:
    done = bacalhau(["docker", "run", "--id-only", "busybox", "--", "echo", text])
    assert done.exit_code == 0, done.output
    return done.stdout.strip()


def test_root_flags_are_read_after_any_subcommand(bacalhau: Cli) -> None:
    port = str(bacalhau.server.port)
    job_id = submit(bacalhau, "anywhere")
    for args in (
        ["job", "list", "--api-host", "127.0.0.1", "--api-port", port, "--output", "json"],
        ["job", "list", "--output", "json", "--api-port=" + port],
        ["job", "--api-port", port, "list", "--output", "json"],
        ["--api-port", "1", "job", "list", "--api-port", port, "--output", "json"],  # last wins
    ):
        listed = invoke(args)
        assert listed.exit_code == 0, (args, listed.output)
        assert job_id in [j["ID"] for j in json.loads(listed.stdout)], args
    # A flag wins over the environment, as anywhere else.
    flagged = invoke(["agent", "alive", "--api-port", port], env={"BACALHAU_API_PORT": "1"})
    assert flagged.exit_code == 0, flagged.output
    # A flag without its value is a usage error, as click's own.
    assert invoke(["job", "list", "--api-port"]).exit_code == 2


def test_the_job_command_after_a_double_dash_keeps_its_flags(bacalhau: Cli) -> None:
    # `--api-port 5` after `--` is the job's own argument, not the client's.
    run = bacalhau(["docker", "run", "busybox", "--", "echo", "--api-port", "5"])
    assert run.exit_code == 0, run.output
    assert "--api-port 5" in run.stdout


def test_boolean_flags_take_cobra_values(bacalhau: Cli) -> None:
    no_wait = bacalhau(["docker", "run", "--wait=false", "--id-only=true", "busybox", "echo", "x"])
    assert no_wait.exit_code == 0, no_wait.output
    assert no_wait.stdout.strip().startswith("j-")
    waited = bacalhau(["docker", "run", "--wait=true", "busybox", "--", "echo", "waited"])
    assert waited.exit_code == 0 and "waited" in waited.stdout
    # false for a flag that is off by default changes nothing.
    plain = bacalhau(["docker", "run", "--id-only=false", "busybox", "--", "echo", "plain"])
    assert "Job successfully submitted" in plain.stdout
    wrong = bacalhau(["docker", "run", "--wait=perhaps", "busybox", "echo", "x"])
    assert wrong.exit_code == 2 and "'perhaps' is not a boolean" in wrong.stderr


def test_output_flags(bacalhau: Cli) -> None:
    job_id = submit(bacalhau, "shaped")
    compact = bacalhau(["job", "list", "--output", "json"]).stdout
    assert len(compact.strip().splitlines()) == 1  # one line, as Bacalhau prints it
    pretty = bacalhau(["job", "list", "--output", "json", "--pretty"]).stdout
    assert len(pretty.splitlines()) > 1 and json.loads(pretty) == json.loads(compact)
    rows = bacalhau(["job", "list", "--output", "csv"]).stdout.splitlines()
    assert rows[0] == "CREATED,ID,NAME,JOB,TYPE,STATE"
    assert any(r.split(",")[1] == job_id[:10] for r in rows[1:])
    wide = bacalhau(["job", "list", "--wide", "--no-style", "--hide-header"]).stdout
    assert "CREATED" not in wide and job_id in wide.split()
    [row] = bacalhau(["job", "executions", job_id, "--wide", "--hide-header"]).stdout.splitlines()
    exec_id = row.split()[4]  # after two dates and times
    assert exec_id.startswith("e-") and len(exec_id) == 38
    headless = bacalhau(["job", "executions", job_id, "--output", "csv", "--hide-header"])
    assert headless.stdout.count(",") >= 7 and "STATE" not in headless.stdout
    nodes = bacalhau(["node", "list", "--output", "json", "--pretty"])
    assert nodes.exit_code == 0 and json.loads(nodes.stdout)
    alive = bacalhau(["agent", "alive", "--output", "json", "--pretty"])
    assert json.loads(alive.stdout) == {"Status": "OK"}
    # A document has no table to shape: no csv for describe.
    assert bacalhau(["job", "describe", job_id, "--output", "csv"]).exit_code == 2


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("list", "job list"),
        ("describe", "job describe"),
        ("get", "job get"),
        ("cancel", "job stop"),
        ("validate", "job validate"),
        ("create", "job run"),
        ("id", "agent node"),
        ("logs", "job logs"),
    ],
)
def test_older_spellings_work_and_name_the_new_one(
    bacalhau: Cli, tmp_path: Path, old: str, new: str
) -> None:
    job_id = submit(bacalhau, "legacy")
    spec = tmp_path / "job.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "Type": "batch",
                "Count": 1,
                "Tasks": [
                    {
                        "Name": "main",
                        "Engine": {
                            "Type": "docker",
                            "Params": {"Image": "busybox", "Entrypoint": ["echo", "created"]},
                        },
                    }
                ],
            }
        )
    )
    args = {
        "list": ["list", "--output", "json"],
        "describe": ["describe", job_id, "--output", "json"],
        "get": ["get", job_id, "--output-dir", str(tmp_path / "out")],
        "cancel": ["cancel", job_id],
        "validate": ["validate", str(spec)],
        "create": ["create", str(spec)],
        "id": ["id", "--output", "json"],
        "logs": ["logs", job_id],
    }[old]
    done = bacalhau(args)
    assert f"Command '{old}' is deprecated: use 'bacalhau {new}'." in done.stderr
    assert f"bacalhau {new}" not in done.stdout  # scripts read stdout: the notice stays out
    if old == "list":
        assert job_id in [j["ID"] for j in json.loads(done.stdout)]
    elif old == "describe":
        assert json.loads(done.stdout)["Job"]["ID"] == job_id
    elif old == "get":
        # This stand-in cluster publishes nothing: `job get`'s own answer.
        assert done.exit_code == 1 and "has no results" in done.stderr
    elif old == "cancel":
        # The job finished already: `job stop`'s own answer, through the old spelling.
        assert done.exit_code == 1 and "The current state is: Completed" in done.stderr
    elif old == "validate":
        assert done.exit_code == 0, done.output
    elif old == "create":
        assert done.exit_code == 0 and "created" in done.stdout
    elif old == "logs":
        pass  # the notice above is the point (this stand-in cluster streams no logs)
    else:
        assert json.loads(done.stdout)["NodeType"] == "Requester"


def test_agent_config(bacalhau: Cli) -> None:
    done = bacalhau(["agent", "config", "--output", "json"])
    assert done.exit_code == 0, done.output
    assert isinstance(json.loads(done.stdout), dict)


def test_the_api_address_from_the_configuration(bacalhau: Cli, tmp_path: Path) -> None:
    port = bacalhau.server.port
    # -c Key=Value, in Bacalhau's spelling.
    assert invoke(["-c", f"API.Port={port}", "agent", "alive"]).exit_code == 0
    assert invoke(["agent", "alive", "--config", f"api.port={port}"]).exit_code == 0
    # <data-dir>/config.yaml, found through --data-dir or BACALHAU_DIR.
    data_dir = tmp_path / "repo"
    data_dir.mkdir()
    (data_dir / "config.yaml").write_text(f"API.Port: {port}\nAPI.Host: 127.0.0.1\n")
    assert invoke(["--data-dir", str(data_dir), "agent", "alive"]).exit_code == 0
    assert invoke(["agent", "alive"], env={"BACALHAU_DIR": str(data_dir)}).exit_code == 0
    # A file given with -c replaces the default file.
    other = tmp_path / "other.yaml"
    other.write_text("API.Port: 1\n")
    replaced = invoke(["--data-dir", str(data_dir), "-c", str(other), "agent", "alive"])
    assert replaced.exit_code == 1 and "127.0.0.1:1" in replaced.stderr
    # The environment wins over the configuration.
    env = {"BACALHAU_API_PORT": str(port)}
    assert invoke(["-c", str(other), "agent", "alive"], env=env).exit_code == 0


def test_bad_configuration_is_a_clear_error(tmp_path: Path) -> None:
    unknown = invoke(["-c", "API.Prot=1234", "agent", "alive"])
    assert unknown.exit_code == 1 and "unknown configuration key 'API.Prot'" in unknown.stderr
    missing = invoke(["-c", str(tmp_path / "nope.yaml"), "agent", "alive"])
    assert missing.exit_code == 1 and "does not exist" in missing.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("API.Port: [1\n")
    bad = invoke(["-c", str(broken), "agent", "alive"])
    assert bad.exit_code == 1 and "is not valid YAML" in bad.stderr
    port = invoke(["agent", "alive", "--api-port", "seventy"])
    assert port.exit_code == 2 and "'seventy' is not a port" in port.stderr


def test_log_flags(bacalhau: Cli) -> None:
    assert bacalhau(["--log-level", "debug", "agent", "alive"]).exit_code == 0
    assert bacalhau(["agent", "alive", "--log-level", "error", "--log-mode", "json"]).exit_code == 0
    assert bacalhau(["agent", "alive", "--log-level", "loud"]).exit_code == 2


def test_group_events_shows_each_executions_latest_event(bacalhau: Cli) -> None:
    every = bacalhau(["docker", "run", "--count", "2", "busybox", "--", "echo", "all"])
    grouped = bacalhau(
        ["docker", "run", "--count", "2", "--group-events", "busybox", "--", "echo", "few"]
    )
    assert grouped.exit_code == 0, grouped.output

    def rows(result: Result) -> list[str]:
        table = result.stdout.split("EVENT\n", 1)[1].split("\n\n", 1)[0]
        return table.splitlines()

    # Every event, against one row per execution (its last) and one for the job.
    assert len(rows(every)) > 4
    executions, job = rows(grouped)[:-1], rows(grouped)[-1]
    ids = [r.split()[1] for r in executions]
    assert ids and all(i.startswith("e-") for i in ids) and len(set(ids)) == len(ids)
    assert all("Completed" in r for r in executions), executions
    assert " e-" not in job and "Completed" in job
    assert grouped.stdout.count("EVENT") == 1  # not a terminal: drawn once, at the end


def test_a_nodes_log_flags_become_its_logging_settings(tmp_path: Path) -> None:
    # serve and devstack log as their configuration says: the root's --log-level and
    # --log-mode reach it as Logging.Level/Logging.Mode, checked before anything starts.
    for args in (
        ["devstack", "--log-level", "loud", "--compute-nodes", "0"],
        ["serve", "--orchestrator", "--data-dir", str(tmp_path), "--log-mode", "fancy"],
    ):
        done = invoke(args)
        assert done.exit_code == 1, (args, done.output)
        assert "configuration key 'Logging." in done.stderr, done.stderr
    # Before the subcommand, the root's own choices check them (a usage error).
    early = invoke(["--log-mode", "fancy", "serve", "--orchestrator"])
    assert early.exit_code == 2 and "'fancy' is not one of" in early.stderr


def test_a_job_file_is_read_from_standard_input_or_refused_clearly(tmp_path: Path) -> None:
    """As Bacalhau reads a job piped in (``cat job.yaml | bacalhau job run``); a file that
    is no text, or a module given by mistake, is a usage error, not a traceback."""
    job = "Type: batch\nTasks:\n- Name: m\n  Engine: {Type: docker, Params: {Image: busybox}}\n"
    piped = CliRunner().invoke(cli, ["job", "validate"], input=job)
    assert piped.exit_code == 0, piped.output
    assert piped.stdout.strip() == "OK"
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(b"Name: caf\xe9\n" + job.encode())
    done = CliRunner().invoke(cli, ["job", "validate", str(latin1)])
    assert done.exit_code == 2, done.output
    assert "is not UTF-8 text (byte 9 is 0xe9)" in done.stderr
    module = tmp_path / "main.wasm"
    module.write_bytes(b"\0asm\x01\0\0\0")
    for args in (["job", "run", str(module)], ["job", "validate", "-"]):
        done = CliRunner().invoke(cli, args, input=module.read_bytes())
        assert done.exit_code == 2, done.output
        assert "is a WebAssembly module, not a job file" in done.stderr


def test_v1_0_to_1_3_list_and_describe_options(bacalhau: Cli) -> None:
    """The options of the old ``list`` and ``describe``, as their documents used them."""
    first, second = submit(bacalhau, "one"), submit(bacalhau, "two")
    done = bacalhau(["docker", "run", "--id-only", "-l", "keep=yes", "busybox", "--", "true"])
    tagged = done.stdout.strip()

    def listed(*args: str) -> list[str]:
        done = bacalhau(["list", *args, "--output", "json"])
        assert done.exit_code == 0, done.output
        return [j["ID"] for j in json.loads(done.stdout)]

    assert listed("--id-filter", second) == [second]
    assert listed("--id-filter", second[:10]) == [second]  # a short ID, as the table shows
    assert listed("--id-filter", "j-00000000-0000-0000-0000-000000000000") == []
    oldest_first = listed("--sort-by", "created_at", "--reverse=false")
    assert oldest_first == [first, second, tagged]
    assert listed("--sort-by", "created_at", "--reverse") == oldest_first[::-1]
    assert listed("-n", "2", "--sort-by", "created_at", "--reverse=false") == [first, second]
    assert listed("--include-tag", "keep", "--all") == [tagged]
    assert set(listed("--exclude-tag", "keep")) == {first, second}

    done = bacalhau(["describe", first, "--json", "--include-events"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["Job"]["ID"] == first
    spec = bacalhau(["describe", first, "--spec"])
    assert spec.exit_code == 0, spec.output
    assert yaml.safe_load(spec.stdout)["ID"] == first
    assert json.loads(bacalhau(["describe", first, "--spec", "--json"]).stdout)["ID"] == first


def test_v1_0_to_1_3_run_flags_still_parse(bacalhau: Cli) -> None:
    """``--do-not-track`` and ``-g`` of the v1.0-1.3 documents: accepted, nothing to do."""
    done = bacalhau(
        ["docker", "run", "--do-not-track", "-g", "30", "--id-only", "busybox", "--", "true"]
    )
    assert done.exit_code == 0, done.output
    assert done.stdout.strip().startswith("j-")


def test_results_go_to_bacalhaus_default_folder() -> None:
    """``job get`` with no --output-dir writes where Bacalhau's does (cmd/util/download.go):
    ``job-<the job as named>``, with the namespace first outside ``default``."""
    assert default_job_folder("j-1234abcd") == "job-j-1234abcd"
    assert default_job_folder("my-job", "default") == "job-my-job"
    assert default_job_folder("my-job", "team-a") == "job-team-a-my-job"
    assert default_job_folder("a/b") == "job-a_b"  # never a folder below another


def test_help_as_cobra_gives_it() -> None:
    """``bacalhau help job run`` is ``bacalhau job run --help``; a group typed alone shows
    its help on stdout and exits 0, as cobra's do."""
    shown = invoke(["help", "job", "run"])
    assert shown.exit_code == 0
    assert shown.stdout == invoke(["job", "run", "--help"]).stdout
    assert invoke(["help"]).stdout == invoke(["--help"]).stdout
    for group in ([], ["job"], ["node"]):
        alone = invoke(group)
        assert alone.exit_code == 0 and alone.stdout.startswith("Usage: "), group
        assert "Commands:" in alone.stdout
    unknown = invoke(["help", "job", "nope"])
    assert unknown.exit_code == 1
    assert "unknown help topic 'job nope'" in unknown.stderr
    assert "job --help` lists the commands" in unknown.stderr
