"""``bacalhau config list|set``: keys checked as a starting node checks them, written in
Bacalhau's sections into the file a node and this client then read."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import yaml
from click.testing import CliRunner, Result

from bacalhau.cli import cli
from bacalhau.config import load_config
from tests.cli.conftest import Cli


def config(data_dir: Path, *args: str) -> Result:
    env = {"BACALHAU_DIR": str(data_dir), "BACALHAU_API_HOST": None, "BACALHAU_API_PORT": None}
    return CliRunner().invoke(cli, ["config", *args], env=env, catch_exceptions=False)


def test_set_writes_sections_a_node_reads(tmp_path: Path) -> None:
    assert config(tmp_path, "set", "api.port=4321").exit_code == 0
    assert config(tmp_path, "set", "Compute.AllocatedCapacity.CPU", "50%").exit_code == 0
    assert config(tmp_path, "set", "labels=zone=a,tier=b").exit_code == 0
    assert config(tmp_path, "set", "Engines.Disabled", "docker", "wasm").exit_code == 0
    # Another spelling of a key the file holds replaces it.
    assert config(tmp_path, "set", "API.PORT=4322").exit_code == 0
    written = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert written == {
        "API": {"Port": 4322},
        "Compute": {"AllocatedCapacity": {"CPU": "50%"}},
        "labels": {"zone": "a", "tier": "b"},
        "Engines": {"Disabled": ["docker", "wasm"]},
    }
    node = load_config({"data_dir": str(tmp_path)})
    assert node.api_port == 4322 and node.labels == {"zone": "a", "tier": "b"}
    assert node.disabled_engines == ("docker", "wasm") and node.allocated_cpu


def test_set_keeps_the_file_private_and_a_token_out_of_config_list(tmp_path: Path) -> None:
    assert config(tmp_path, "set", "Orchestrator.Auth.Token=s3cret-join-token").exit_code == 0
    path = tmp_path / "config.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert yaml.safe_load(path.read_text()) == {
        "Orchestrator": {"Auth": {"Token": "s3cret-join-token"}}
    }
    assert load_config({"data_dir": str(tmp_path)}).join_token == "s3cret-join-token"
    listed = config(tmp_path, "list")
    assert listed.exit_code == 0 and "s3cret-join-token" not in listed.output


def test_set_refuses_what_a_node_would_refuse_and_writes_nothing(tmp_path: Path) -> None:
    unknown = config(tmp_path, "set", "node.loggingmode", "json")
    assert unknown.exit_code == 1
    assert "unknown configuration key 'node.loggingmode'" in unknown.stderr
    assert "did you mean 'Logging.Mode'" in unknown.stderr
    bad = config(tmp_path, "set", "API.Port=many")
    assert bad.exit_code == 1 and "expected a whole number" in bad.stderr
    refused = config(tmp_path, "set", "API.TLS.CertFile=/etc/cert.pem")
    assert refused.exit_code == 1 and "refused" in refused.stderr and "Hint:" in refused.stderr
    assert not (tmp_path / "config.yaml").exists()
    assert config(tmp_path, "set", "API.Port").exit_code == 2  # no value
    ignored = config(tmp_path, "set", "WebUI.Enabled=true")
    assert ignored.exit_code == 0 and "has no effect on this node" in ignored.stderr


def test_set_writes_the_file_named_with_its_own_config_option(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.yaml"
    done = config(tmp_path / "unused", "set", "--config", str(target), "max_attempts=4")
    assert done.exit_code == 0, done.output
    assert yaml.safe_load(target.read_text()) == {"max_attempts": 4}
    wrong = config(tmp_path, "set", "-c", str(tmp_path / "c.json"), "max_attempts=4")
    assert wrong.exit_code == 1 and "not a YAML file" in wrong.stderr


def test_list_shows_the_values_in_effect(tmp_path: Path) -> None:
    config(tmp_path, "set", "API.Port=4444")
    listed = json.loads(config(tmp_path, "list", "--output", "json").stdout)
    by_key = {e["Key"]: e for e in listed}
    assert by_key["api_port"]["Value"] == 4444
    assert by_key["API.Port"]["Value"] == 4444 and by_key["API.Port"]["Description"]
    # -c settings count, as for a node.
    env = {"BACALHAU_DIR": str(tmp_path)}
    overridden = CliRunner().invoke(
        cli, ["config", "list", "-c", "API.Port=5555", "--output", "json"], env=env
    )
    assert {e["Key"]: e["Value"] for e in json.loads(overridden.stdout)}["api_port"] == 5555
    rows = config(tmp_path, "list").stdout.splitlines()
    assert rows[0].split() == ["KEY", "VALUE", "DESCRIPTION"]
    # Booleans as a config file writes them, not Python's True/False.
    assert next(r for r in rows if r.startswith("Orchestrator.Enabled ")).split()[1] == "false"
    # As YAML, the configuration nested as a config file (as Bacalhau prints it).
    nested = yaml.safe_load(config(tmp_path, "list", "--output", "yaml").stdout)
    assert nested["API"]["Port"] == 4444


def test_the_client_reads_a_sectioned_config_file(bacalhau: Cli, tmp_path: Path) -> None:
    config(tmp_path, "set", f"API.Port={bacalhau.server.port}")
    config(tmp_path, "set", "API.Host=127.0.0.1")
    env = {"BACALHAU_DIR": str(tmp_path), "BACALHAU_API_HOST": None, "BACALHAU_API_PORT": None}
    alive = CliRunner().invoke(cli, ["agent", "alive"], env=env)
    assert alive.exit_code == 0, alive.output


def test_config_show_and_default_print_the_nested_document(tmp_path: Path) -> None:
    runner = CliRunner()
    shown = runner.invoke(
        cli, ["--data-dir", str(tmp_path), "-c", "API.Port=9999", "config", "show"]
    )
    assert shown.exit_code == 0, shown.output
    assert yaml.safe_load(shown.stdout)["API"]["Port"] == 9999
    default = runner.invoke(cli, ["config", "default", "--output", "json"])
    assert default.exit_code == 0, default.output
    assert json.loads(default.stdout)["API"]["Port"] == 1234


def test_our_dotted_keys_show_as_set(tmp_path: Path) -> None:
    """Keys of ours spelled as Bacalhau would (Orchestrator.ApprovalHooks) are listed under
    that spelling and nested in `config show`, as Bacalhau's own keys are."""
    hooks = '[{"Name":"steer","Type":"http","URL":"http://127.0.0.1:9/x"}]'
    assert config(tmp_path, "set", f"Orchestrator.ApprovalHooks={hooks}").exit_code == 0
    shown = yaml.safe_load(config(tmp_path, "show").stdout)
    [hook] = shown["Orchestrator"]["ApprovalHooks"]
    assert (hook["Name"], hook["URL"]) == ("steer", "http://127.0.0.1:9/x")
    listed = json.loads(config(tmp_path, "list", "--output", "json").stdout)
    keys = {row["Key"] for row in listed}
    assert {"Orchestrator.ApprovalHooks", "JobAdmissionControl.ProbeTimeout"} <= keys
