"""Config files as Bacalhau's documentation writes them, ``-c`` options that are files or
``Key=Value``, and the order of the layers: defaults < ``<data_dir>/config.yaml`` < config
files in order < ``BACALHAU_NODE_*`` < ``-c Key=Value`` < flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bacalhau.config import load_config, read_config_file, split_config_options
from bacalhau.errors import InvalidConfiguration, InvalidRequest

#: Bacalhau's documented compute node configuration (its configuration reference).
COMPUTE_NODE_YAML = """\
NameProvider: 'hostname'
Labels:
  region: 'us-west'
  environment: 'production'
Compute:
  Enabled: true
  Orchestrators:
    - 'nats://orchestrator-1.example.com:4222'
  AllowListedLocalPaths:
    - '/data:ro'
    - '/outputs:rw'
  Auth:
    Token: 'secure-access-token'
  AllocatedCapacity:
    CPU: '80%'
    Memory: '80%'
    Disk: '80%'
    GPU: '100%'
JobAdmissionControl:
  RejectNetworkedJobs: true
JobDefaults:
  Batch:
    Task:
      Resources:
        CPU: '500m'
        Memory: '512Mb'
      Timeouts:
        ExecutionTimeout: '1h'
"""

#: Bacalhau's documented orchestrator configuration, without the API TLS this node refuses.
ORCHESTRATOR_YAML = """\
NameProvider: 'hostname'
API:
  Host: '0.0.0.0'
  Port: 1234
Orchestrator:
  Enabled: true
  Host: '0.0.0.0'
  Port: 4222
  Auth:
    Token: 'secure-access-token'
  NodeManager:
    DisconnectTimeout: '1m'
  Scheduler:
    WorkerCount: 4
    QueueBackoff: '30s'
JobDefaults:
  Batch:
    Task:
      Resources:
        CPU: '500m'
        Memory: '512Mb'
WebUI:
  Enabled: true
  Listen: '0.0.0.0:8438'
"""


def _file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_bacalhaus_documented_compute_node_file(tmp_path: Path) -> None:
    path = _file(tmp_path, "compute.yaml", COMPUTE_NODE_YAML)
    cfg = load_config({"data_dir": str(tmp_path / "node")}, environ={}, config_files=[path])
    assert cfg.compute and not cfg.orchestrator
    assert cfg.name_provider == "hostname"
    assert cfg.labels == {"region": "us-west", "environment": "production"}
    assert cfg.seeds == ("nats://orchestrator-1.example.com:4222",)
    assert cfg.allow_listed_local_paths == ("/data:ro", "/outputs:rw")
    assert (cfg.allocated_cpu, cfg.allocated_memory, cfg.allocated_gpu) == ("80%", "80%", "100%")
    assert cfg.accept_networked_jobs is False
    batch = cfg.job_defaults.batch
    assert (batch.cpu, batch.memory, batch.execution_timeout) == ("500m", "512Mb", 3600.0)
    assert cfg.ignored_settings == ()
    assert cfg.join_token == "secure-access-token"


def test_bacalhaus_documented_orchestrator_file_as_json(tmp_path: Path) -> None:
    import yaml

    path = _file(tmp_path, "orch.json", json.dumps(yaml.safe_load(ORCHESTRATOR_YAML)))
    cfg = load_config({"data_dir": str(tmp_path / "node")}, environ={}, config_files=[path])
    assert cfg.orchestrator and (cfg.api_host, cfg.api_port) == ("0.0.0.0", 1234)
    assert (cfg.grpc_host, cfg.grpc_port) == ("0.0.0.0", 4222)
    assert (cfg.disconnect_timeout, cfg.scheduler_workers, cfg.queue_backoff) == (60.0, 4, 30.0)
    assert cfg.join_token == "secure-access-token"
    assert sorted(key for key, _ in cfg.ignored_settings) == [
        "WebUI.Enabled",
        "WebUI.Listen",
    ]


def test_flat_and_sectioned_keys_ours_and_bacalhaus_mix(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        "mixed.yaml",
        "max_attempts: 5\n"
        "gossip:\n  probe_interval: 0.3\n"
        "Compute.AllocatedCapacity.CPU: 2\n"
        "compute:\n  allocatedcapacity:\n    memory: 1Gi\n"
        "Orchestrator:\n  ApprovalHooks:\n    - {Name: a, Type: exec, Command: /bin/true}\n",
    )
    cfg = load_config({"data_dir": str(tmp_path)}, environ={}, config_files=[path])
    assert (cfg.max_attempts, cfg.gossip_probe_interval) == (5, 0.3)
    assert (cfg.allocated_cpu, cfg.allocated_memory) == ("2", "1Gi")
    assert [h.name for h in cfg.approval_hooks] == ["a"]


def test_layers_in_order(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    data_dir.mkdir()
    (data_dir / "config.yaml").write_text("API: {Port: 1000, Host: 10.0.0.1}\nmax_attempts: 1\n")
    first = _file(tmp_path, "first.yaml", "API.Port: 2000\nretry_delay: 2\nmax_attempts: 2\n")
    second = _file(tmp_path, "second.yml", "API: {Port: 3000}\n")
    env = {"BACALHAU_NODE_RETRY_DELAY": "3", "BACALHAU_NODE_MAX_ATTEMPTS": "3"}
    cfg = load_config(
        {"data_dir": str(data_dir), "max_attempts": None, "api_port": None},
        environ=env,
        config_files=[first, second],
        config_values={"max_attempts": "4"},
    )
    assert cfg.api_host == "10.0.0.1"  # the data dir's file, nothing above it
    assert cfg.api_port == 3000  # the later file wins
    assert cfg.retry_delay == 3.0  # the environment beats files
    assert cfg.max_attempts == 4  # -c beats the environment; an unset flag changes nothing
    flagged = load_config(
        {"data_dir": str(data_dir), "api_port": 5000}, environ=env, config_files=[second]
    )
    assert flagged.api_port == 5000


def test_the_data_dir_named_by_a_config_file_is_where_config_yaml_is_read(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "elsewhere"
    data_dir.mkdir()
    (data_dir / "config.yaml").write_text("max_attempts: 9\n")
    path = _file(tmp_path, "c.yaml", f"DataDir: {data_dir}\n")
    cfg = load_config({}, environ={}, config_files=[path])
    assert (cfg.data_dir, cfg.max_attempts) == (data_dir, 9)


def test_bacalhau_keys_come_through_the_environment(tmp_path: Path) -> None:
    env = {
        "BACALHAU_DIR": str(tmp_path),
        "BACALHAU_NODE_COMPUTE_ALLOCATEDCAPACITY_CPU": "50%",
        "BACALHAU_NODE_WEBUI_ENABLED": "true",
    }
    cfg = load_config({}, environ=env)
    assert (cfg.data_dir, cfg.allocated_cpu) == (tmp_path, "50%")
    assert [key for key, _ in cfg.ignored_settings] == ["WebUI.Enabled"]


def test_bacalhaus_own_environment_variables_set_its_keys(tmp_path: Path) -> None:
    # viper's AutomaticEnv: BACALHAU_ + the key, its sections joined by "_".
    env = {
        "BACALHAU_DIR": str(tmp_path),
        "BACALHAU_COMPUTE_ENABLED": "true",
        "BACALHAU_COMPUTE_ALLOCATEDCAPACITY_CPU": "1",
        "BACALHAU_ORCHESTRATOR_PORT": "4647",
        "BACALHAU_API_PORT": "4656",
        "BACALHAU_LABELS": "zone=b",
        "BACALHAU_NODE_API_PORT": "4657",  # ours win over Bacalhau's spelling
        "BACALHAU_API_KEY": "not-a-key",  # a client's variable: no key of that name
    }
    cfg = load_config({}, environ=env)
    assert cfg.compute and cfg.allocated_cpu == "1" and cfg.grpc_port == 4647
    assert cfg.api_port == 4657 and cfg.labels == {"zone": "b"}
    # -c and flags still win over the environment.
    assert load_config({}, environ=env, config_values={"API.Port": "4658"}).api_port == 4658


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("BACALHAU_COMPUTE_ALLOCATEDCAPACITY_CPU", "banana"),
        ("BACALHAU_API_PORT", "99999"),
        ("BACALHAU_NODE_MAX_ATTEMPTS", "many"),
    ],
)
def test_a_bad_environment_value_names_its_variable(
    tmp_path: Path, variable: str, value: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        load_config({}, environ={"BACALHAU_DIR": str(tmp_path), variable: value})
    assert caught.value.message.startswith(f"{variable}: invalid value {value!r}")


def test_an_error_in_a_file_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = _file(tmp_path, "bad.yaml", "Compute:\n  Heartbeat:\n    Interval: 10days\n")
    with pytest.raises(InvalidRequest) as caught:
        load_config({"data_dir": str(tmp_path)}, environ={}, config_files=[path])
    assert caught.value.message.startswith(f"{path}: invalid value '10days'")
    assert caught.value.details["Field"] == "Compute.Heartbeat.Interval"
    refused = _file(tmp_path, "tls.yaml", "API:\n  TLS:\n    CertFile: /etc/server.crt\n")
    with pytest.raises(InvalidConfiguration) as stop:
        load_config({"data_dir": str(tmp_path)}, environ={}, config_files=[refused])
    assert stop.value.message.startswith(f"{refused}: configuration key API.TLS.CertFile")
    unknown = _file(tmp_path, "typo.yaml", "Comptue:\n  Enabled: true\n")
    with pytest.raises(InvalidRequest) as typo:
        load_config({"data_dir": str(tmp_path)}, environ={}, config_files=[unknown])
    assert "unknown configuration key 'Comptue'" in typo.value.message


@pytest.mark.parametrize(
    ("name", "text", "why"),
    [
        ("a.yaml", "API: [\n", "is not valid YAML"),
        ("a.json", "{", "is not valid JSON"),
        ("a.yaml", "- a\n- b\n", "must hold a mapping"),
    ],
)
def test_unreadable_files(tmp_path: Path, name: str, text: str, why: str) -> None:
    with pytest.raises(InvalidRequest, match=why):
        read_config_file(_file(tmp_path, name, text))


def test_an_empty_file_sets_nothing(tmp_path: Path) -> None:
    assert read_config_file(_file(tmp_path, "empty.yaml", "")) == {}


def test_config_options_are_files_or_settings(tmp_path: Path) -> None:
    path = _file(tmp_path, "config.yaml", "WebUI: {Enabled: true}\n")
    options = split_config_options(
        [
            str(path),
            "WebUI.Enabled=true",
            "labels=zone=a,tier=b",
            "Compute.AllocatedCapacity.CPU=50%",
        ]
    )
    assert options.files == (path,)
    assert options.values == {
        "WebUI.Enabled": "true",
        "labels": "zone=a,tier=b",
        "Compute.AllocatedCapacity.CPU": "50%",
    }
    # Bacalhau's `--config Orchestrator.Enabled`: a dotted key alone sets it to true.
    bare = split_config_options(["Orchestrator.Enabled", "Compute.Enabled"])
    assert bare.values == {"Orchestrator.Enabled": "true", "Compute.Enabled": "true"}
    assert load_config({}, config_values=bare.values).orchestrator is True
    # ... and so does one of Bacalhau's top-level keys (`-c DisableAnalytics`).
    top = split_config_options(["DisableAnalytics", "StrictVersionMatch"])
    assert top.values == {"DisableAnalytics": "true", "StrictVersionMatch": "true"}
    load_config({}, config_values=top.values)  # both known (and ignored, with the reason)
    # A file without a known suffix, named by a path, is a file too.
    plain = _file(tmp_path, "node-config", "max_attempts: 2\n")
    assert split_config_options([str(plain)]).files == (plain,)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("missing.yaml", "configuration file 'missing.yaml' does not exist"),
        ("conf/missing", "configuration file 'conf/missing' does not exist"),
        ("labels", "'labels' is not of the form Key=Value"),
        ("=value", "'=value' is not of the form Key=Value"),
    ],
)
def test_bad_config_options(option: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        split_config_options([option])
    assert message in caught.value.message
    assert caught.value.details["Field"] == "--config"


def test_a_config_file_that_is_not_text_is_named(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(b"API:\n  Port: 1234\n\xbe\xef\x00binary")
    with pytest.raises(InvalidRequest, match="is not UTF-8 text") as refused:
        read_config_file(path)
    assert str(path) in str(refused.value)
