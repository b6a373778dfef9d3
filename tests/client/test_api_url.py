"""Where a client sends its requests: a host and a port, or, as Bacalhau's clients take it,
a URL in the host (``BACALHAU_API_HOST=https://node.example:4443``) whose scheme and port
win; anything else is refused naming where it came from."""

from __future__ import annotations

import pytest

from bacalhau.client._session import api_url, url_from_env
from bacalhau.errors import InvalidRequest


@pytest.mark.parametrize(
    ("host", "port", "https", "url"),
    [
        ("node.example", 1234, False, "http://node.example:1234"),
        ("node.example", 1234, True, "https://node.example:1234"),
        ("::1", 9, False, "http://[::1]:9"),
        ("[::1]", 9, False, "http://[::1]:9"),
        ("http://node.example", 1234, True, "http://node.example:1234"),
        ("https://node.example", 1234, False, "https://node.example:1234"),
        ("http://node.example:5555", 1234, False, "http://node.example:5555"),
        ("HTTPS://node.example:5555/", 1234, False, "https://node.example:5555"),
        ("http://[::1]:7", 9, False, "http://[::1]:7"),
        (" http://10.0.0.1 ", 80, False, "http://10.0.0.1:80"),
        # host:port, as people write an address: its port wins as a URL's does.
        ("127.0.0.1:39899", 1234, False, "http://127.0.0.1:39899"),
        ("node.example:443", 1234, True, "https://node.example:443"),
        ("[::1]:8080", 1234, False, "http://[::1]:8080"),
        ("fe80::1", 9, False, "http://[fe80::1]:9"),
    ],
)
def test_hosts_and_urls(host: str, port: int, https: bool, url: str) -> None:
    assert api_url(host, port, https=https) == url


@pytest.mark.parametrize(
    "host",
    [
        "ftp://x",
        "http://x/path",
        "http://x?q=1",
        "http://x#f",
        "http://",
        "http://u:p@x",
        "http://x:99999",
        "a b",
        "x/y",
        "",
        "node:http",
        "node:0",
        "node:70000",
    ],
)
def test_what_is_neither_a_host_nor_a_node_url_is_refused(host: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        api_url(host, 1234, source="--api-host")
    assert err.value.details == {"Field": "--api-host"}
    assert "https://node.example:1234" in err.value.hint


def test_the_environment_may_give_a_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACALHAU_API_HOST", "https://node.example:4443")
    monkeypatch.setenv("BACALHAU_API_PORT", "1234")
    monkeypatch.delenv("BACALHAU_HTTPS", raising=False)
    assert url_from_env() == "https://node.example:4443"
    monkeypatch.setenv("BACALHAU_API_HOST", "ftp://node.example")
    with pytest.raises(InvalidRequest, match=r"BACALHAU_API_HOST 'ftp://node\.example'"):
        url_from_env()
