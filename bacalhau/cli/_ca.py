"""``bacalhau ca ...``: the private cluster's certificate authority."""

from __future__ import annotations

from pathlib import Path

import click

from bacalhau.cli._root import BacalhauGroup


@click.group("ca", cls=BacalhauGroup)
def ca_group() -> None:
    """Create the cluster CA and issue node certificates."""


@ca_group.command("init")
@click.option(
    "--ca-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to create the CA in (ca.key, ca.crt).",
)
def ca_init(ca_dir: Path) -> None:
    """Create a new cluster CA."""
    from bacalhau.identity import CA_CERT_FILE, ClusterCA

    ca_dir.mkdir(parents=True, exist_ok=True)
    ClusterCA.create(ca_dir)
    click.echo(f"Created the cluster CA in {ca_dir} (certificate: {ca_dir / CA_CERT_FILE}).")


@ca_group.command("issue")
@click.option(
    "--ca-dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="The CA."
)
@click.option(
    "--data-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The node's data directory (its identity is created there if missing).",
)
@click.option(
    "--host",
    "hosts",
    multiple=True,
    help="Name or IP address the node is reached at (repeatable; default: localhost names).",
)
def ca_issue(ca_dir: Path, data_dir: Path, hosts: tuple[str, ...]) -> None:
    """Issue a TLS certificate for the node whose data directory is DATA_DIR."""
    from bacalhau.identity import DEFAULT_HOSTS, ClusterCA, NodeIdentity

    ca = ClusterCA.load(ca_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    identity = NodeIdentity.load_or_create(data_dir)
    files = ca.issue_node_certificate(
        identity, data_dir=data_dir, hosts=list(hosts) if hosts else DEFAULT_HOSTS
    )
    click.echo(f"Node ID: {identity.node_id}")
    click.echo(f"Certificate: {files.tls_cert}")
    click.echo(f"Key: {files.tls_key}")
    click.echo(f"CA certificate: {files.ca_cert}")
