"""Config files given to ``bacalhau devstack -c FILE``: checked once before anything starts
(a key the devstack sets per node is refused in a file too, naming the file), then handed to
every node by absolute path, below the ``-c Key=Value`` settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from bacalhau.errors import InvalidConfiguration, InvalidRequest
from bacalhau.node._devstack_plan import check_devstack_config, plan_devstack


def test_files_reach_every_node_by_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("capacity.yaml").write_text("Compute:\n  AllocatedCapacity:\n    CPU: 50%\n")
    nodes = plan_devstack(
        data_dir=Path("stack"),
        compute_nodes=1,
        api_port=0,
        config={"WebUI.Enabled": "true"},
        config_files=[Path("capacity.yaml")],
    )
    for n in nodes:
        given = [n.args[i + 1] for i, arg in enumerate(n.args) if arg == "-c"]
        assert given == [str(tmp_path / "capacity.yaml"), "WebUI.Enabled=true"]


def test_what_every_node_will_ignore_is_known_before_they_start(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("WebUI: {Enabled: true}\nUpdateConfig: {Interval: 24h}\n")
    checked = check_devstack_config({"Compute.AllocatedCapacity.Memory": "2Gi"}, [path])
    assert [key for key, _ in checked.ignored_settings] == [
        "WebUI.Enabled",
        "UpdateConfig.Interval",
    ]
    assert checked.allocated_memory == "2Gi"


@pytest.mark.parametrize(
    ("text", "key", "error"),
    [
        ("Compute: {Enabled: true}\n", "Compute.Enabled", InvalidRequest),
        ("API: {Port: 1234}\n", "API.Port", InvalidRequest),
        ("DataDir: /srv/node\n", "DataDir", InvalidRequest),
        ("Comptue: {Enabled: true}\n", "Comptue", InvalidRequest),
        ("API: {TLS: {CertFile: /x.crt}}\n", "API.TLS.CertFile", InvalidConfiguration),
    ],
)
def test_a_file_with_a_bad_or_devstack_owned_key_stops_the_devstack_naming_both(
    tmp_path: Path, text: str, key: str, error: type[Exception]
) -> None:
    path = tmp_path / "node.yaml"
    path.write_text(text)
    with pytest.raises(error) as caught:
        plan_devstack(data_dir=tmp_path / "stack", compute_nodes=1, api_port=0, config_files=[path])
    assert str(path) in str(caught.value) and key in str(caught.value)
    assert not (tmp_path / "stack").exists()
