"""An empty job or node ID is refused by the client before any request: in a URL it would
address the collection (``/jobs/``) rather than a member, and the server's answer (404 for an
unknown route) would not say what was wrong."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bacalhau.client import AsyncClient
from bacalhau.errors import InvalidRequest


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CALLS: list[Callable[[AsyncClient, str], Awaitable[Any]]] = [
    lambda c, i: c.get_job(i),
    lambda c, i: c.stop_job(i),
    lambda c, i: c.rerun_job(i),
    lambda c, i: c.job_versions(i),
    lambda c, i: c.get_node(i),
]


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("ident", ["", "   "])
async def test_an_empty_id_is_refused_without_a_request(
    call: Callable[[AsyncClient, str], Awaitable[Any]], ident: str
) -> None:
    # Nothing listens there: a request would fail as Unavailable, not InvalidRequest.
    async with AsyncClient(f"http://127.0.0.1:{_closed_port()}") as client:
        with pytest.raises(InvalidRequest, match="the ID given is empty") as err:
            await call(client, ident)
    assert "bacalhau job list" in (err.value.hint or "")


def test_the_cli_says_so() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bacalhau", "job", "describe", ""],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "BACALHAU_API_HOST": "127.0.0.1",
            "BACALHAU_API_PORT": str(_closed_port()),
        },
    )
    # A usage error (2), before any request: the API address is closed.
    assert run.returncode == 2, run.stderr
    assert "a job ID (or name) is required" in run.stderr
    assert "Traceback" not in run.stderr
