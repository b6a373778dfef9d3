"""Accept hooks as the operator configures them: ``Orchestrator.ApprovalHooks`` and Bacalhau's
``JobAdmissionControl.*`` keys, from a config file written as Bacalhau writes it (sections)
and from ``-c Key=Value``; bad hook lists are refused naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from bacalhau.config import ApprovalHookConfig, NodeConfig, load_config
from bacalhau.errors import InvalidRequest


def test_a_bacalhau_style_config_file_sets_hooks_and_admission(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        """
Orchestrator:
  Enabled: true
  NodeManager:
    ManualApproval: true
  ApprovalHooks:
    - Name: budget
      Type: exec
      Command: /etc/bacalhau/budget.sh
      Timeout: 5
    - name: steer
      type: HTTP
      url: http://127.0.0.1:8080/approve
Publishers:
  Disabled: [s3, ipfs]
JobAdmissionControl:
  RejectStatelessJobs: true
  Locality: local
  ProbeExec: exit 0
"""
    )
    cfg = load_config({"data_dir": str(tmp_path)}, environ={})
    assert cfg.orchestrator and cfg.manual_approval
    assert cfg.approval_hooks == (
        ApprovalHookConfig("budget", "exec", command="/etc/bacalhau/budget.sh", timeout=5.0),
        ApprovalHookConfig("steer", "http", url="http://127.0.0.1:8080/approve"),
    )
    assert cfg.reject_stateless_jobs and cfg.locality == "local"
    assert cfg.probe_exec == "exit 0"
    assert cfg.disabled_publishers == ("s3", "ipfs")


def test_hooks_from_a_command_line_json_list() -> None:
    cfg = NodeConfig().with_overrides(
        {
            "Orchestrator.ApprovalHooks": '[{"Name": "a", "Type": "exec", "Command": "true"}]',
            "JobAdmissionControl.ProbeHTTP": "http://127.0.0.1:9000/probe",
            "JobAdmissionControl.ProbeTimeout": "2.5",
            "InputSources.Disabled": "s3,urlDownload",
        }
    )
    assert cfg.disabled_input_sources == ("s3", "urlDownload")
    assert [h.name for h in cfg.approval_hooks] == ["a"]
    assert cfg.probe_http == "http://127.0.0.1:9000/probe" and cfg.probe_timeout == 2.5


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("[{", "Orchestrator.ApprovalHooks"),
        ('"just text"', "Orchestrator.ApprovalHooks"),
        ('[{"Type": "exec", "Command": "true"}]', "Orchestrator.ApprovalHooks[0].Name"),
        ('[{"Name": "a", "Type": "grpc"}]', "Orchestrator.ApprovalHooks[0].Type"),
        ('[{"Name": "a", "Type": "exec"}]', "Orchestrator.ApprovalHooks[0].Command"),
        ('[{"Name": "a", "Type": "http", "URL": "ftp://x"}]', "Orchestrator.ApprovalHooks[0].URL"),
        (
            '[{"Name": "a", "Type": "exec", "Command": "true", "Timeout": 0}]',
            "Orchestrator.ApprovalHooks[0].Timeout",
        ),
        (
            '[{"Name": "a", "Type": "exec", "Command": "true", "Retries": 3}]',
            "Orchestrator.ApprovalHooks[0]",
        ),
        (
            '[{"Name": "a", "Type": "exec", "Command": "true"},'
            ' {"Name": "a", "Type": "exec", "Command": "false"}]',
            "Orchestrator.ApprovalHooks",
        ),
    ],
    ids=[
        "not-json",
        "not-a-list",
        "no-name",
        "bad-type",
        "no-command",
        "bad-url",
        "zero-timeout",
        "unknown-key",
        "duplicate-name",
    ],
)
def test_bad_hook_lists_are_refused_naming_the_field(value: str, field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        NodeConfig().with_overrides({"Orchestrator.ApprovalHooks": value})
    assert caught.value.details["Field"] == field


def test_locality_must_be_anywhere_or_local() -> None:
    with pytest.raises(InvalidRequest) as caught:
        NodeConfig().with_overrides({"JobAdmissionControl.Locality": "nearby"})
    assert caught.value.details["Field"] == "JobAdmissionControl.Locality"
