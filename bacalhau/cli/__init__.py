"""The ``bacalhau`` command line (click), Bacalhau v1 compatible.

Commands talk to a node through :mod:`bacalhau.client`; errors are printed once, as
``Error: ...`` and ``Hint: ...``, with exit code 1 (2 for usage errors).
"""

from bacalhau.cli._agent import agent_group, version
from bacalhau.cli._auth_cmd import auth_group
from bacalhau.cli._ca import ca_group
from bacalhau.cli._completion import completion
from bacalhau.cli._config_cmd import config_group
from bacalhau.cli._data import data_group
from bacalhau.cli._help import help_command
from bacalhau.cli._job import job_group
from bacalhau.cli._legacy import legacy_commands
from bacalhau.cli._node import node_group
from bacalhau.cli._profile_cmd import profile_group
from bacalhau.cli._root import cli, main
from bacalhau.cli._run import docker_group
from bacalhau.cli._serve import devstack, serve
from bacalhau.cli._wasm import wasm_group

for _command in (
    docker_group,
    wasm_group,
    job_group,
    node_group,
    data_group,
    agent_group,
    auth_group,
    profile_group,
    version,
    ca_group,
    completion,
    help_command,
    config_group,
    serve,
    devstack,
):
    cli.add_command(_command)
for _command in legacy_commands(cli):
    cli.add_command(_command)

__all__ = ["cli", "main"]
