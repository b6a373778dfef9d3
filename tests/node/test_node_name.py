"""A node's name: given at its first start and kept, as Bacalhau keeps it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bacalhau.config import NodeConfig
from bacalhau.node._serve import NAME_FILE, _node_name


def test_the_first_name_stays(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    first = NodeConfig(data_dir=tmp_path, name="c1")
    assert _node_name(first) == "c1"
    assert (tmp_path / NAME_FILE).read_text() == "c1\n"
    # Started again without --name: still c1; with another: c1, and the log says why.
    assert _node_name(NodeConfig(data_dir=tmp_path)) == "c1"
    assert _node_name(NodeConfig(data_dir=tmp_path, name="c2")) == "c1"
    assert "named 'c1' since its first start: the name 'c2' is ignored" in caplog.text


def test_without_a_name_the_node_goes_by_its_id(tmp_path: Path) -> None:
    assert _node_name(NodeConfig(data_dir=tmp_path)) == ""
    assert not (tmp_path / NAME_FILE).exists()
    host = _node_name(NodeConfig(data_dir=tmp_path, name_provider="hostname"))
    assert host and (tmp_path / NAME_FILE).read_text() == host + "\n"
