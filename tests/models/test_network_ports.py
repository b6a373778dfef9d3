"""``Network.Ports`` as Bacalhau v1.7+ writes it: decoded in any key case, written back with
Bacalhau's spellings (empty fields omitted), and every rule of ``pkg/models/network.go`` (and
the two stricter ones of ours) refused at submit, naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from bacalhau.errors import InvalidJobSpec
from bacalhau.models import (
    Job,
    NetworkType,
    PortMapping,
    normalise_job,
    parse_job_document,
    validate_job,
)


def _job(network: dict[str, Any], engine: str = "docker") -> Job:
    params: dict[str, Any] = {"Image": "busybox"} if engine == "docker" else {}
    if engine == "wasm":
        params = {"EntryModule": {"Source": {"Type": "inline", "Params": {"URL": "data:,x"}}}}
    return Job.from_dict(
        {
            "Type": "service",
            "Count": 1,
            "Tasks": [
                {"Name": "main", "Engine": {"Type": engine, "Params": params}, "Network": network}
            ],
        }
    )


def _submit(network: dict[str, Any], engine: str = "docker") -> Job:
    job = _job(network, engine)
    normalise_job(job)
    validate_job(job)
    return job


def _refused(network: dict[str, Any], engine: str = "docker") -> InvalidJobSpec:
    with pytest.raises(InvalidJobSpec) as err:
        _submit(network, engine)
    assert err.value.hint, "every refusal says what to do"
    return err.value


def test_ports_are_read_in_any_case_and_written_as_bacalhau_writes_them() -> None:
    job = _submit(
        {
            "type": "Bridge",
            "ports": [
                {"name": "http", "target": 8080},
                {"NAME": "admin", "STATIC": 9090, "HostNetwork": "127.0.0.1"},
                {"Name": "metrics", "Static": "9100", "Target": 9100},
            ],
        }
    )
    assert job.task.network.ports == [
        PortMapping(name="http", target=8080),
        PortMapping(name="admin", static=9090, host_network="127.0.0.1"),
        PortMapping(name="metrics", static=9100, target=9100),
    ]
    assert job.to_dict()["Tasks"][0]["Network"] == {
        "Type": "Bridge",
        "Ports": [
            {"Name": "http", "Target": 8080},
            {"Name": "admin", "Static": 9090, "HostNetwork": "127.0.0.1"},
            {"Name": "metrics", "Static": 9100, "Target": 9100},
        ],
    }
    again = Job.from_dict(job.to_dict())
    assert again.task.network == job.task.network


def test_a_network_without_ports_writes_none() -> None:
    job = _submit({"Type": "Host", "Ports": []})
    assert job.task.network.ports == []
    assert "Ports" not in job.to_dict()["Tasks"][0]["Network"]


def test_a_bacalhau_job_file_with_ports_is_read() -> None:
    document = """
Name: web
Type: service
Count: 1
Tasks:
  - Name: main
    Engine:
      Type: docker
      Params:
        Image: local/busybox:1.37
        Entrypoint: [httpd, -f, -p, "8080"]
    Network:
      Type: Bridge
      Ports:
        - Name: http
          Target: 8080
        - Name: debug
          Static: 30123
          Target: 6060
          HostNetwork: 127.0.0.1
"""
    job = parse_job_document(document)
    normalise_job(job)
    validate_job(job)
    assert [p.to_dict() for p in job.task.network.ports] == [
        {"Name": "http", "Target": 8080},
        {"Name": "debug", "Static": 30123, "Target": 6060, "HostNetwork": "127.0.0.1"},
    ]


@pytest.mark.parametrize("kind", ["Host", "Full", "Bridge"])
def test_ports_are_allowed_on_host_full_and_bridge(kind: str) -> None:
    job = _submit({"Type": kind, "Ports": [{"Name": "web"}, {"Name": "api", "Static": 20001}]})
    assert job.task.network.type is NetworkType(kind)
    assert len(job.task.network.ports) == 2


@pytest.mark.parametrize("kind", ["None", "Default", "HTTP"])
def test_ports_are_refused_on_other_network_types(kind: str) -> None:
    network: dict[str, Any] = {"Type": kind, "Ports": [{"Name": "web"}]}
    if kind == "HTTP":
        network["Domains"] = ["example.com"]
    err = _refused(network)
    assert err.field == "Tasks[0].Network.Ports"
    assert "Host, Full or Bridge" in err.message


def test_wasm_tasks_cannot_have_ports() -> None:
    err = _refused({"Type": "Host", "Ports": [{"Name": "web"}]}, engine="wasm")
    assert err.field == "Tasks[0].Network.Ports"
    assert "wasm" in err.message


@pytest.mark.parametrize(
    ("port", "field", "words"),
    [
        ({"Static": 20000}, "Name", "name is required"),
        ({"Name": "1http"}, "Name", "environment variable"),
        ({"Name": "web-ui"}, "Name", "environment variable"),
        ({"Name": "wéb"}, "Name", "environment variable"),
        ({"Name": "x" * 238}, "Name", "too long"),
        ({"Name": "web", "Static": 80}, "Static", "between 1024 and 65535"),
        ({"Name": "web", "Static": 1023}, "Static", "between 1024 and 65535"),
        ({"Name": "web", "Static": 65536}, "Static", "between 1024 and 65535"),
        ({"Name": "web", "Static": -5}, "Static", "between 1024 and 65535"),
        ({"Name": "web", "Target": 65536}, "Target", "between 1 and 65535"),
        ({"Name": "web", "Target": -1}, "Target", "between 1 and 65535"),
        ({"Name": "web", "HostNetwork": "localhost"}, "HostNetwork", "IP address"),
        ({"Name": "web", "HostNetwork": "300.1.1.1"}, "HostNetwork", "IP address"),
        ({"Name": "web", "HostNetwork": "fe80::1%eth0"}, "HostNetwork", "IP address"),
    ],
)
def test_each_mapping_rule_names_its_field(port: dict[str, Any], field: str, words: str) -> None:
    err = _refused({"Type": "Bridge", "Ports": [{"Name": "ok"}, port]})
    assert err.field == f"Tasks[0].Network.Ports[1].{field}"
    assert words in err.message


def test_the_longest_name_and_the_port_bounds_are_accepted() -> None:
    _submit(
        {
            "Type": "Bridge",
            "Ports": [
                {"Name": "_" + "x" * 236},
                {"Name": "low", "Static": 1024, "Target": 1},
                {"Name": "high", "Static": 65535, "Target": 65535},
                {"Name": "v6", "HostNetwork": "::1"},
            ],
        }
    )


@pytest.mark.parametrize("kind", ["Host", "Full"])
def test_target_and_host_network_are_bridge_only(kind: str) -> None:
    err = _refused({"Type": kind, "Ports": [{"Name": "web", "Target": 8080}]})
    assert err.field == "Tasks[0].Network.Ports[0].Target"
    # Ours: on the host's network the task picks its address; a HostNetwork would be ignored.
    err = _refused({"Type": kind, "Ports": [{"Name": "web", "HostNetwork": "127.0.0.1"}]})
    assert err.field == "Tasks[0].Network.Ports[0].HostNetwork"


@pytest.mark.parametrize(
    ("ports", "field", "words"),
    [
        ([{"Name": "a"}, {"Name": "a", "Static": 20001}], "Ports[1].Name", "duplicate"),
        (
            [{"Name": "a", "Static": 20001}, {"Name": "b", "Static": 20001, "Target": 1}],
            "Ports[1].Static",
            "duplicate",
        ),
        ([{"Name": "a", "Target": 80}, {"Name": "b", "Target": 80}], "Ports[1].Target", "80"),
        # Ours: a Bridge mapping without Target goes to its host port in the container.
        ([{"Name": "a", "Static": 20001}, {"Name": "b", "Target": 20001}], "Ports[1].Target", ""),
        ([{"Name": "a", "Target": 20001}, {"Name": "b", "Static": 20001}], "Ports[1].Static", ""),
    ],
)
def test_duplicates_are_refused(ports: list[dict[str, Any]], field: str, words: str) -> None:
    err = _refused({"Type": "Bridge", "Ports": ports})
    assert err.field == f"Tasks[0].Network.{field}"
    assert words in err.message


def test_equal_host_ports_on_the_host_network_are_refused_as_duplicates() -> None:
    err = _refused(
        {"Type": "Host", "Ports": [{"Name": "a", "Static": 20001}, {"Name": "b", "Static": 20001}]}
    )
    assert err.field == "Tasks[0].Network.Ports[1].Static"


@pytest.mark.parametrize(
    ("ports", "field"),
    [
        ("8080", "Tasks[0].Network.Ports"),
        (["http"], "Tasks[0].Network.Ports[0]"),
        ([{"Name": "web", "Static": "eighty"}], "Tasks[0].Network.Ports[0].Static"),
        ([{"Name": "web", "Target": True}], "Tasks[0].Network.Ports[0].Target"),
        ([{"Name": ["web"]}], "Tasks[0].Network.Ports[0].Name"),
    ],
)
def test_malformed_ports_are_refused_when_decoded(ports: object, field: str) -> None:
    with pytest.raises(InvalidJobSpec) as err:
        _job({"Type": "Bridge", "Ports": ports})
    assert err.value.field == field


def test_bad_text_in_a_port_is_refused_like_any_other() -> None:
    err = _refused({"Type": "Bridge", "Ports": [{"Name": "ok", "HostNetwork": "\ud800"}]})
    assert err.field is not None and err.field.startswith("Tasks[0].Network.Ports")
