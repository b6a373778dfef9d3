"""``<data-dir>/bacalhau.run``: the shell lines that point a client at a running node.

Bacalhau's node (v1.4+) writes them when it starts and removes them when it stops; scripts
wait for the file and source it (``. ~/.bacalhau/bacalhau.run``) before their first
``bacalhau`` command. ``DEVSTACK_ENV_FILE`` names another path, as there.
"""

from __future__ import annotations

import os
from pathlib import Path

from bacalhau.api._server import local_address

__all__ = ["RUN_INFO_FILE", "run_info_lines", "write_run_info"]

RUN_INFO_FILE = "bacalhau.run"


def run_info_lines(api_host: str, api_port: int) -> str:
    """``export BACALHAU_API_HOST=...`` and ``..._PORT=...`` for a client on this machine
    (a wildcard bind address is dialled on loopback)."""
    host = local_address(api_host).strip("[]")
    return f"export BACALHAU_API_HOST={host}\nexport BACALHAU_API_PORT={api_port}\n"


def write_run_info(data_dir: Path, api_host: str, api_port: int) -> Path:
    """Write the file (readable by its owner only, whole or not at all); returns its path."""
    path = Path(os.environ.get("DEVSTACK_ENV_FILE") or data_dir / RUN_INFO_FILE)
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(run_info_lines(api_host, api_port))
    os.replace(partial, path)
    return path
