"""``bacalhau data ...``: add content to the cluster by CID, get it back, list it."""

from __future__ import annotations

from pathlib import Path

import click

from bacalhau.cli._render import emit, output_option, table, tabular
from bacalhau.cli._root import BacalhauGroup, CliState, pass_state
from bacalhau.client import DataClient, SkippedEntry
from bacalhau.models import format_size


@click.group("data", cls=BacalhauGroup)
def data_group() -> None:
    """Content addressed by CID: add it to the cluster, get it back, list it."""


def _client(state: CliState) -> DataClient:
    return state.data_client()


@data_group.command("add")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--cid-version",
    type=click.IntRange(0, 1),
    default=0,
    show_default=True,
    help="0: Qm... CIDs with dag-pb leaves (ipfs add); 1: bafy... with raw leaves.",
)
@click.option("--only-hash", is_flag=True, help="Print the CID without uploading anything.")
@pass_state
def data_add(state: CliState, path: Path, cid_version: int, only_hash: bool) -> None:
    """Print the CID of PATH (a file or a directory, as `ipfs add -r` computes it) and
    upload the content to the cluster through the requester, which keeps it pinned."""
    with _client(state) as client:
        click.echo(client.add(path, cid_version=cid_version, only_hash=only_hash))


@data_group.command("get")
@click.argument("cid")
@click.option(
    "-o",
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Directory to write into (created if missing).",
)
@click.option("--car", is_flag=True, help="Write CID.car (a CAR v1 file) instead of files.")
@pass_state
def data_get(state: CliState, cid: str, output_dir: Path, car: bool) -> None:
    """Download content by CID (from whichever node of the cluster holds it); CID/PATH
    downloads a file or folder inside it, named by its last name."""
    skipped: list[SkippedEntry] = []
    with _client(state) as client:
        written = client.get(cid, output_dir, car=car, skipped=skipped)
    if skipped:
        click.echo(f"Warning: {len(skipped)} entries were not created:", err=True)
        for entry in skipped:
            click.echo(f"  {entry}", err=True)
    click.echo(str(written))


@data_group.command("ls")
@click.argument("cid")
@output_option()
@pass_state
def data_ls(state: CliState, cid: str, output: str) -> None:
    """List the entries of a directory CID (or the one file a CID is); CID/PATH lists a
    directory inside it."""
    with _client(state) as client:
        entries = client.ls(cid)
    if not tabular(output):
        emit(
            [{"Name": e.name, "CID": e.cid, "Type": e.type, "Size": e.size} for e in entries],
            output,
        )
        return
    rows = [
        [e.name, e.type, format_size(e.size) if e.type == "file" else "-", e.cid] for e in entries
    ]
    table(["NAME", "TYPE", "SIZE", "CID"], rows)
