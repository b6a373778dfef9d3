"""Network types as Bacalhau v1.7+ spells them: None, Default, Host, Bridge, Full, HTTP, in
any case; Default closed here. Port mappings are in test_network_ports."""

from __future__ import annotations

import pytest

from bacalhau.errors import InvalidJobSpec
from bacalhau.models import Job, NetworkType, validate_job
from bacalhau.models._ports import is_domain_entry


def _job(network: dict[str, object]) -> Job:
    return Job.from_dict(
        {
            "Type": "batch",
            "Tasks": [
                {
                    "Name": "main",
                    "Engine": {"Type": "docker", "Params": {"Image": "busybox"}},
                    "Network": network,
                }
            ],
        }
    )


@pytest.mark.parametrize(
    ("spelling", "kind", "networked"),
    [
        ("host", NetworkType.HOST, True),
        ("Host", NetworkType.HOST, True),
        ("bridge", NetworkType.BRIDGE, True),
        (" Bridge ", NetworkType.BRIDGE, True),
        ("full", NetworkType.FULL, True),
        ("HTTP", NetworkType.HTTP, True),
        ("default", NetworkType.DEFAULT, False),
        ("None", NetworkType.NONE, False),
        ("", NetworkType.NONE, False),
    ],
)
def test_every_bacalhau_spelling_is_read(spelling: str, kind: NetworkType, networked: bool) -> None:
    job = _job({"Type": spelling})
    assert job.task.network.type is kind
    assert job.task.network.type.networked is networked
    # Written back as Bacalhau writes it.
    assert Job.from_dict(job.to_dict()).task.network.type is kind
    assert job.to_dict()["Tasks"][0]["Network"]["Type"] == kind.value


def test_an_unknown_type_names_the_field_and_the_choices() -> None:
    with pytest.raises(InvalidJobSpec) as err:
        _job({"Type": "wormhole"})
    assert err.value.field == "Tasks[0].Network.Type"
    assert "Bridge" in (err.value.hint or "")


@pytest.mark.parametrize(
    "entry",
    [
        "example.com",
        ".example.com",
        "*.example.com",
        "example.com.",
        "EXAMPLE.com",
        "a_b.example.com",
        "localhost",
        "10.0.0.1",
        "::1",
        "[::1]",
    ],
)
def test_domain_entries_the_gateway_can_match_are_accepted(entry: str) -> None:
    assert is_domain_entry(entry)


@pytest.mark.parametrize(
    "entry",
    [
        "",
        " ",
        ".",
        "*",
        "*.",
        "bad domain!",
        "-a.com",
        "a..com",
        "x" * 64 + ".com",
        "http://example.com",
        "example.com:80",
        "a/b",
    ],
)
def test_domain_entries_that_would_match_nothing_are_refused(entry: str) -> None:
    assert not is_domain_entry(entry)


@pytest.mark.parametrize("kind", ["None", "Full", "Host", "Bridge", "Default"])
def test_domains_outside_http_are_refused_as_bacalhau_refuses_them(kind: str) -> None:
    """Only the HTTP gateway reads Domains: kept on another network they would look like a
    restriction nothing applies (Bacalhau: "domains can only be set for HTTP network mode")."""
    job = _job({"Type": kind, "Domains": ["example.com"]})
    with pytest.raises(InvalidJobSpec) as err:
        validate_job(job)
    assert err.value.field == "Tasks[0].Network.Domains"
    assert "domains can only be set for HTTP network mode" in err.value.message
    assert "Network.Type: HTTP" in (err.value.hint or "")
    validate_job(_job({"Type": "HTTP", "Domains": ["example.com"]}))
