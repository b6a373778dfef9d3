"""The settings of node trust: trusted requesters and manual node approval, in every layer."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from bacalhau.cli import cli
from bacalhau.config import load_config

A = "12D3KooWA"
B = "12D3KooWB"


def test_trusted_requesters_from_file_env_and_flags(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(f"trusted_requesters: [{A}, {B}]\n")
    flags: dict[str, object] = {"data_dir": str(tmp_path)}
    assert load_config(flags, environ={}).trusted_requesters == (A, B)
    env = {"BACALHAU_NODE_TRUSTED_REQUESTERS": f"{B},{A}"}
    assert load_config(flags, environ=env).trusted_requesters == (B, A)
    flagged = load_config({**flags, "trusted_requesters": (A,)}, environ=env)
    assert flagged.trusted_requesters == (A,)


def test_manual_approval_under_our_name_and_bacalhaus(tmp_path: Path) -> None:
    flags: dict[str, object] = {"data_dir": str(tmp_path)}
    assert load_config(flags, environ={}).manual_approval is False
    env = {"BACALHAU_NODE_MANUAL_APPROVAL": "true"}
    assert load_config(flags, environ=env).manual_approval is True
    (tmp_path / "config.yaml").write_text("Orchestrator.NodeManager.ManualApproval: true\n")
    assert load_config(flags, environ={}).manual_approval is True


def test_serve_refuses_a_bad_trusted_requester_before_starting(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "serve",
            "--compute",
            "--data-dir",
            str(tmp_path),
            "--orchestrator-address",
            "127.0.0.1:1",
            "--trusted-requester",
            "not-a-node-id",
        ],
    )
    assert result.exit_code != 0
    assert "not-a-node-id" in result.output
