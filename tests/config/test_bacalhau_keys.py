"""Every Bacalhau v1.5-v1.9 configuration key is known here, and each is mapped to one of
our settings, ignored with one warning naming it, or refused with a reason and a hint."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from bacalhau.config import (
    KeyOrigin,
    KeyStatus,
    NodeConfig,
    bacalhau_document,
    describe_key,
    effective_settings,
)
from bacalhau.config._bacalhau_keys import BACALHAU_KEYS
from bacalhau.config._load import _SECTIONS
from bacalhau.errors import InvalidConfiguration, InvalidRequest

#: The keys of Bacalhau's ``pkg/config/types/generated_constants.go`` at v1.5.0, v1.6.0,
#: v1.7.0, v1.8.0, v1.9.0 and after v1.9.3, together.
BACALHAU_V1_5_TO_V1_9_KEYS = (
    "API.Auth.AccessPolicyPath",
    "API.Auth.Methods",
    "API.Auth.Oauth2.Audience",
    "API.Auth.Oauth2.DeviceAuthorizationEndpoint",
    "API.Auth.Oauth2.DeviceClientID",
    "API.Auth.Oauth2.Issuer",
    "API.Auth.Oauth2.JWKSUri",
    "API.Auth.Oauth2.PollingInterval",
    "API.Auth.Oauth2.ProviderID",
    "API.Auth.Oauth2.ProviderName",
    "API.Auth.Oauth2.Scopes",
    "API.Auth.Oauth2.TokenEndpoint",
    "API.Auth.Users",
    "API.Host",
    "API.Port",
    "API.TLS.AutoCert",
    "API.TLS.AutoCertCachePath",
    "API.TLS.CAFile",
    "API.TLS.CertFile",
    "API.TLS.Insecure",
    "API.TLS.KeyFile",
    "API.TLS.SelfSigned",
    "API.TLS.UseTLS",
    "Compute.AllocatedCapacity.CPU",
    "Compute.AllocatedCapacity.Disk",
    "Compute.AllocatedCapacity.GPU",
    "Compute.AllocatedCapacity.Memory",
    "Compute.AllowListedLocalPaths",
    "Compute.Auth.Token",
    "Compute.Enabled",
    "Compute.Env.AllowList",
    "Compute.Heartbeat.InfoUpdateInterval",
    "Compute.Heartbeat.Interval",
    "Compute.Heartbeat.ResourceUpdateInterval",
    "Compute.Network.AdvertisedAddress",
    "Compute.Network.PortRangeEnd",
    "Compute.Network.PortRangeStart",
    "Compute.Orchestrators",
    "Compute.TLS.CACert",
    "Compute.TLS.RequireTLS",
    "DataDir",
    "DisableAnalytics",
    "Engines.Disabled",
    "Engines.Types.Docker.ManifestCache.Refresh",
    "Engines.Types.Docker.ManifestCache.Size",
    "Engines.Types.Docker.ManifestCache.TTL",
    "FeatureFlags.ExecTranslation",
    "InputSources.Disabled",
    "InputSources.MaxRetryCount",
    "InputSources.ReadTimeout",
    "InputSources.Types.IPFS.Endpoint",
    "JobAdmissionControl.AcceptNetworkedJobs",
    "JobAdmissionControl.Locality",
    "JobAdmissionControl.ProbeExec",
    "JobAdmissionControl.ProbeHTTP",
    "JobAdmissionControl.RejectNetworkedJobs",
    "JobAdmissionControl.RejectStatelessJobs",
    "JobDefaults.Batch.Priority",
    "JobDefaults.Batch.Task.Publisher.Params",
    "JobDefaults.Batch.Task.Publisher.Type",
    "JobDefaults.Batch.Task.Resources.CPU",
    "JobDefaults.Batch.Task.Resources.Disk",
    "JobDefaults.Batch.Task.Resources.GPU",
    "JobDefaults.Batch.Task.Resources.Memory",
    "JobDefaults.Batch.Task.Timeouts.ExecutionTimeout",
    "JobDefaults.Batch.Task.Timeouts.TotalTimeout",
    "JobDefaults.Daemon.Priority",
    "JobDefaults.Daemon.Task.Resources.CPU",
    "JobDefaults.Daemon.Task.Resources.Disk",
    "JobDefaults.Daemon.Task.Resources.GPU",
    "JobDefaults.Daemon.Task.Resources.Memory",
    "JobDefaults.Ops.Priority",
    "JobDefaults.Ops.Task.Publisher.Params",
    "JobDefaults.Ops.Task.Publisher.Type",
    "JobDefaults.Ops.Task.Resources.CPU",
    "JobDefaults.Ops.Task.Resources.Disk",
    "JobDefaults.Ops.Task.Resources.GPU",
    "JobDefaults.Ops.Task.Resources.Memory",
    "JobDefaults.Ops.Task.Timeouts.ExecutionTimeout",
    "JobDefaults.Ops.Task.Timeouts.TotalTimeout",
    "JobDefaults.Service.Priority",
    "JobDefaults.Service.Task.Resources.CPU",
    "JobDefaults.Service.Task.Resources.Disk",
    "JobDefaults.Service.Task.Resources.GPU",
    "JobDefaults.Service.Task.Resources.Memory",
    "Labels",
    "Logging.Level",
    "Logging.LogDebugInfoInterval",
    "Logging.Mode",
    "NameProvider",
    "Orchestrator.Advertise",
    "Orchestrator.Auth.Token",
    "Orchestrator.Cluster.Advertise",
    "Orchestrator.Cluster.Host",
    "Orchestrator.Cluster.Name",
    "Orchestrator.Cluster.Peers",
    "Orchestrator.Cluster.Port",
    "Orchestrator.Enabled",
    "Orchestrator.EvaluationBroker.MaxRetryCount",
    "Orchestrator.EvaluationBroker.VisibilityTimeout",
    "Orchestrator.Host",
    "Orchestrator.License.LocalPath",
    "Orchestrator.NodeManager.DisconnectTimeout",
    "Orchestrator.NodeManager.ManualApproval",
    "Orchestrator.Port",
    "Orchestrator.Scheduler.HousekeepingInterval",
    "Orchestrator.Scheduler.HousekeepingTimeout",
    "Orchestrator.Scheduler.QueueBackoff",
    "Orchestrator.Scheduler.WorkerCount",
    "Orchestrator.SupportReverseProxy",
    "Orchestrator.TLS.CACert",
    "Orchestrator.TLS.ServerCert",
    "Orchestrator.TLS.ServerKey",
    "Orchestrator.TLS.ServerTimeout",
    "Publishers.Disabled",
    "Publishers.Types.IPFS.Endpoint",
    "Publishers.Types.Local.Address",
    "Publishers.Types.Local.Port",
    "Publishers.Types.S3.PreSignedURLDisabled",
    "Publishers.Types.S3.PreSignedURLExpiration",
    "Publishers.Types.S3Managed.Bucket",
    "Publishers.Types.S3Managed.Endpoint",
    "Publishers.Types.S3Managed.Key",
    "Publishers.Types.S3Managed.PreSignedURLExpiration",
    "Publishers.Types.S3Managed.Region",
    "ResultDownloaders.Disabled",
    "ResultDownloaders.Timeout",
    "ResultDownloaders.Types.IPFS.Endpoint",
    "StrictVersionMatch",
    "UpdateConfig.Interval",
    "WebUI.Backend",
    "WebUI.Enabled",
    "WebUI.Listen",
)


def test_every_bacalhau_key_is_known_and_nothing_else_is_claimed_as_bacalhaus() -> None:
    registered = {e.info.key for e in BACALHAU_KEYS.values()}
    bacalhau = {e.info.key for e in BACALHAU_KEYS.values() if e.info.origin is KeyOrigin.BACALHAU}
    assert bacalhau == set(BACALHAU_V1_5_TO_V1_9_KEYS)
    assert len(BACALHAU_KEYS) == len(registered)  # no two keys normalise alike
    ours = {f.name for f in fields(NodeConfig)}
    for key in BACALHAU_V1_5_TO_V1_9_KEYS:
        for spelling in (key, key.lower(), key.upper(), key.replace(".", "-")):
            # Spelled exactly as one of our fields (labels, api_port), a key is ours.
            expected = spelling if spelling.replace("-", "_") in ours else key
            assert describe_key(spelling).key == expected


def test_each_key_is_mapped_to_a_field_or_says_why_not() -> None:
    names = {f.name for f in fields(NodeConfig)}
    for entry in BACALHAU_KEYS.values():
        info = entry.info
        if info.status is KeyStatus.MAPPED:
            assert info.field in names and not info.reason, info
        else:
            assert info.field is None and len(info.reason) > 20, info
        if info.status is KeyStatus.REFUSED:
            assert info.hint, info


def test_where_bacalhau_and_we_spell_a_key_alike_it_means_the_same_field() -> None:
    for name in (f.name for f in fields(NodeConfig)):
        entry = BACALHAU_KEYS.get(name)
        if entry is not None:
            assert entry.info.field == name, entry.info


def test_no_key_taking_a_mapping_is_also_a_section() -> None:
    for key in ("labels", "api_auth_methods", "jobdefaults_batch_task_publisher_params"):
        assert key not in _SECTIONS


@pytest.mark.parametrize(
    ("key", "value", "field", "expected"),
    [
        ("API.Host", "127.0.0.1", "api_host", "127.0.0.1"),
        ("API.Port", "2345", "api_port", 2345),
        ("Orchestrator.Host", "10.0.0.1", "grpc_host", "10.0.0.1"),
        ("Orchestrator.Port", 4333, "grpc_port", 4333),
        ("Orchestrator.Advertise", "nats://node.example:4222", "advertise_host", "node.example"),
        ("Compute.Network.AdvertisedAddress", "10.1.2.3", "advertise_host", "10.1.2.3"),
        ("Compute.Network.AdvertisedAddress", "[::1]:4222", "advertise_host", "[::1]"),
        ("Compute.Orchestrators", "nats://a:4222,b:4222", "seeds", ("nats://a:4222", "b:4222")),
        ("Compute.Heartbeat.Interval", "15s", "heartbeat_interval", 15.0),
        ("Orchestrator.NodeManager.DisconnectTimeout", "1m", "disconnect_timeout", 60.0),
        ("InputSources.ReadTimeout", "5m", "input_read_timeout", 300.0),
        ("InputSources.MaxRetryCount", "5", "input_max_retries", 5),
        ("Orchestrator.Scheduler.WorkerCount", 8, "scheduler_workers", 8),
        ("Orchestrator.Scheduler.QueueBackoff", "30s", "queue_backoff", 30.0),
        ("Orchestrator.Scheduler.HousekeepingInterval", "30s", "housekeeping_interval", 30.0),
        ("Publishers.Types.S3.PreSignedURLExpiration", "2h", "s3_presigned_url_expiration", 7200),
        ("Logging.Level", "DEBUG", "log_level", "debug"),
        ("Logging.Mode", "json", "log_mode", "json"),
        ("NameProvider", "hostname", "name_provider", "hostname"),
        ("Labels", {"zone": "a", "n": 1}, "labels", {"zone": "a", "n": "1"}),
        ("DataDir", "~/node", "data_dir", Path("~/node").expanduser()),
        ("Compute.AllocatedCapacity.CPU", "50%", "allocated_cpu", "50%"),
        ("Compute.AllocatedCapacity.Memory", "2Gi", "allocated_memory", "2Gi"),
        ("Compute.AllocatedCapacity.GPU", "1", "allocated_gpu", "1"),
        ("JobAdmissionControl.RejectNetworkedJobs", "true", "accept_networked_jobs", False),
        ("JobAdmissionControl.AcceptNetworkedJobs", "true", "accept_networked_jobs", True),
        ("Engines.Disabled", ["docker"], "disabled_engines", ("docker",)),
        ("Engines.Types.Docker.ManifestCache.TTL", "1h", "docker_image_cache_ttl", 3600.0),
        ("Engines.Types.Docker.ManifestCache.Size", 50, "docker_image_cache_size", 50),
        ("Publishers.Types.S3Managed.Bucket", "results", "s3managed_bucket", "results"),
        ("Publishers.Types.S3Managed.Key", "job-results", "s3managed_key", "job-results"),
        ("Publishers.Types.S3Managed.Region", "us-east-1", "s3managed_region", "us-east-1"),
        (
            "Publishers.Types.S3Managed.Endpoint",
            "http://m:9000",
            "s3managed_endpoint",
            "http://m:9000",
        ),
        (
            "Publishers.Types.S3Managed.PreSignedURLExpiration",
            "2h",
            "s3managed_presigned_url_expiration",
            7200,
        ),
    ],
)
def test_mapped_keys_set_our_settings(key: str, value: Any, field: str, expected: Any) -> None:
    cfg = NodeConfig().with_overrides({key: value})
    assert getattr(cfg, field) == expected
    assert cfg.ignored_settings == ()


def test_job_defaults_are_set_per_job_type() -> None:
    cfg = NodeConfig().with_overrides(
        {
            "JobDefaults.Batch.Task.Resources.CPU": "250m",
            "JobDefaults.Batch.Task.Resources.Memory": "512Mb",
            "JobDefaults.Batch.Task.Timeouts.ExecutionTimeout": "1h",
            "JobDefaults.Batch.Task.Publisher.Type": "s3",
            "JobDefaults.Batch.Task.Publisher.Params": "Bucket=results,Region=eu-west-1",
            "JobDefaults.Ops.Priority": 5,
            "JobDefaults.Service.Task.Resources.GPU": "1",
        }
    )
    batch = cfg.job_defaults.batch
    assert (batch.cpu, batch.memory, batch.execution_timeout) == ("250m", "512Mb", 3600.0)
    assert batch.publisher_type == "s3"
    assert batch.publisher_params == {"Bucket": "results", "Region": "eu-west-1"}
    assert cfg.job_defaults.ops.priority == 5 and cfg.job_defaults.ops.cpu == ""
    assert cfg.job_defaults.service.gpu == "1"
    assert cfg.job_defaults.daemon == type(cfg.job_defaults.daemon)()
    # Later layers change one part and keep the others.
    later = cfg.with_overrides({"JobDefaults.Batch.Task.Resources.CPU": "1"})
    assert (later.job_defaults.batch.cpu, later.job_defaults.batch.memory) == ("1", "512Mb")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("JobDefaults.Batch.Task.Resources.CPU", "lots"),
        ("JobDefaults.Ops.Task.Resources.Memory", "2 parsecs"),
        ("JobDefaults.Batch.Task.Timeouts.TotalTimeout", "10days"),
        ("JobDefaults.Batch.Task.Timeouts.ExecutionTimeout", "500ms"),
        ("JobDefaults.Daemon.Priority", -1),
        ("JobDefaults.Service.Task.Resources.GPU", "one"),
    ],
)
def test_bad_job_defaults_name_the_key(key: str, value: Any) -> None:
    with pytest.raises(InvalidRequest) as caught:
        NodeConfig().with_overrides({key: value})
    assert caught.value.details["Field"] == key


def test_long_running_job_types_take_no_publisher_or_timeouts_as_in_bacalhau() -> None:
    for key in (
        "JobDefaults.Service.Task.Publisher.Type",
        "JobDefaults.Daemon.Task.Timeouts.ExecutionTimeout",
    ):
        with pytest.raises(InvalidRequest, match="unknown configuration key"):
            NodeConfig().with_overrides({key: "x"})


def test_ignored_keys_are_accepted_with_one_notice_each() -> None:
    cfg = NodeConfig().with_overrides(
        {
            "WebUI.Enabled": "true",
            "WebUI.Listen": "0.0.0.0:8438",
            "UpdateConfig.Interval": "24h",
        }
    )
    cfg = cfg.with_overrides({"webui.enabled": True})  # again, in another layer
    assert cfg.ignored_notices() == [
        "configuration key WebUI.Enabled is ignored: this node has no web UI",
        "configuration key WebUI.Listen is ignored: this node has no web UI",
        "configuration key UpdateConfig.Interval is ignored: this node never checks for updates",
    ]


def test_an_ignored_key_asking_for_nothing_says_nothing_and_its_value_is_still_checked() -> None:
    quiet = NodeConfig().with_overrides(
        {"WebUI.Enabled": False, "UpdateConfig.Interval": "0", "API.TLS.Insecure": "false"}
    )
    assert quiet.ignored_settings == ()
    with pytest.raises(InvalidRequest) as caught:
        NodeConfig().with_overrides({"UpdateConfig.Interval": "10days"})
    assert caught.value.details["Field"] == "UpdateConfig.Interval"
    with pytest.raises(InvalidRequest):
        NodeConfig().with_overrides({"WebUI.Enabled": "sometimes"})


def test_values_a_mapped_key_cannot_honour_are_ignored_with_the_reason() -> None:
    cfg = NodeConfig().with_overrides(
        {"NameProvider": "aws", "JobAdmissionControl.RejectNetworkedJobs": False}
    )
    assert cfg.name_provider == "puuid" and cfg.accept_networked_jobs is False
    reasons = dict(cfg.ignored_settings)
    assert "metadata service" in reasons["NameProvider"]
    assert "AcceptNetworkedJobs=true" in reasons["JobAdmissionControl.RejectNetworkedJobs"]
    # A later layer that sets the key to a value it honours takes the notice back.
    assert cfg.with_overrides({"NameProvider": "hostname"}).ignored_settings == (
        (
            "JobAdmissionControl.RejectNetworkedJobs",
            reasons["JobAdmissionControl.RejectNetworkedJobs"],
        ),
    )


@pytest.mark.parametrize(
    ("key", "value", "reason", "hint"),
    [
        ("API.TLS.CertFile", "/etc/bacalhau/server.crt", "without TLS", "reverse proxy"),
        ("API.TLS.KeyFile", "/etc/bacalhau/server.key", "without TLS", "reverse proxy"),
        ("API.TLS.AutoCert", "node.example.com", "without TLS", "reverse proxy"),
        ("API.TLS.SelfSigned", "true", "without TLS", "reverse proxy"),
        ("API.Auth.AccessPolicyPath", "/etc/policy.rego", "Rego", "Capabilities"),
        ("API.Auth.Oauth2.Issuer", "https://sso.example", "single sign-on", "API.Auth.Users"),
        ("API.Auth.Methods", {"Basic": {"Type": "password"}}, "older authentication", "proxy"),
        ("Orchestrator.Cluster.Peers", "nats://b:6222", "one requester", "--seed"),
    ],
)
def test_refused_keys_stop_the_node_with_a_reason_and_a_hint(
    key: str, value: Any, reason: str, hint: str
) -> None:
    with pytest.raises(InvalidConfiguration) as caught:
        NodeConfig().with_overrides({key: value})
    err = caught.value
    assert err.message.startswith(f"configuration key {key} = ") and "is refused" in err.message
    assert reason in err.message and hint in err.hint
    assert err.details == {"Field": key}


def test_the_client_tls_keys_are_settings() -> None:
    """``API.TLS.UseTLS``, ``Insecure`` and ``CAFile`` are how Bacalhau's client reaches an
    API behind a TLS proxy: read, not refused (a node refuses UseTLS only as it starts)."""
    cfg = NodeConfig().with_overrides(
        {"API.TLS.UseTLS": "true", "API.TLS.Insecure": True, "API.TLS.CAFile": "/ca.pem"}
    )
    assert (cfg.api_tls_use_tls, cfg.api_tls_insecure, cfg.api_tls_ca_file) == (
        True,
        True,
        "/ca.pem",
    )


def test_refused_keys_asking_for_nothing_pass() -> None:
    cfg = NodeConfig().with_overrides(
        {
            "API.TLS.UseTLS": False,
            "API.TLS.CertFile": "",
            "API.Auth.Users": [],
            "Orchestrator.Cluster.Peers": [],
        }
    )
    assert cfg.ignored_settings == ()
    # Bacalhau's default auth method lets every client in, as this API does: accepted.
    default = NodeConfig().with_overrides(
        {"API.Auth.Methods": {"ClientKey": {"Type": "challenge"}}}
    )
    assert [k for k, _ in default.ignored_settings] == ["API.Auth.Methods"]


def test_an_unknown_key_suggests_the_closest_of_both_key_sets() -> None:
    with pytest.raises(InvalidRequest) as caught:
        NodeConfig().with_overrides({"Compute.AllocatedCapacity.CPUs": "50%"})
    assert caught.value.message == ("unknown configuration key 'Compute.AllocatedCapacity.CPUs'")
    assert caught.value.hint.startswith("did you mean 'Compute.AllocatedCapacity.CPU'?")
    with pytest.raises(InvalidRequest) as ours:
        NodeConfig().with_overrides({"max_attempt": 2})
    assert ours.value.hint.startswith("did you mean 'max_attempts'?")
    with pytest.raises(InvalidRequest) as nothing_close:
        NodeConfig().with_overrides({"colour": "blue"})
    assert "Compute.AllocatedCapacity.CPU" in nothing_close.value.hint


def test_structured_fields_are_not_keys_of_their_own() -> None:
    for key in ("job_defaults", "ignored_settings"):
        with pytest.raises(InvalidRequest, match="cannot be set directly"):
            NodeConfig().with_overrides({key: "x"})


@pytest.mark.parametrize("key", ["Orchestrator.Auth.Token", "Compute.Auth.Token"])
def test_bacalhaus_node_tokens_set_the_join_token_and_are_never_shown(key: str) -> None:
    cfg = NodeConfig().with_overrides({key: "s3cret-value"})
    assert cfg.join_token == "s3cret-value"
    assert cfg.ignored_notices() == []
    settings = effective_settings(cfg)
    assert settings["join_token"] == settings[key] == "<redacted>"
    assert "s3cret-value" not in repr(bacalhau_document(cfg))
    # Unset, nothing is hidden: an empty value says there is no token.
    assert effective_settings(NodeConfig())["join_token"] == ""


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("Compute.AllocatedCapacity.CPU", "0"),
        ("Compute.AllocatedCapacity.CPU", "0%"),
        ("Compute.AllocatedCapacity.Memory", "0Gi"),
        ("allocated_cpu", "0m"),
    ],
)
def test_a_compute_node_with_no_cpu_or_memory_is_refused(key: str, value: str) -> None:
    """A node that could run nothing would leave every job only it matches queued for
    ever: none of its CPU or memory is a configuration error, naming the key."""
    with pytest.raises(InvalidRequest) as caught:
        NodeConfig().with_overrides({key: value})
    assert "could run no job" in caught.value.message
    assert "Compute.AllocatedCapacity" in caught.value.message or key in caught.value.message
    assert "70%" in (caught.value.hint or "")
    # None of the GPU, or a little CPU, is a node's own business.
    NodeConfig().with_overrides({"Compute.AllocatedCapacity.GPU": "0", "allocated_cpu": "1m"})
