"""The localDirectory input source: only allow-listed paths, read-only unless allowed rw."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bacalhau.errors import InvalidConfiguration, PermissionDenied
from bacalhau.models import SpecConfig
from bacalhau.storage import LocalDirectorySource


def local(path: str | Path, rw: bool | str = False) -> SpecConfig:
    return SpecConfig("localDirectory", {"SourcePath": str(path), "ReadWrite": rw})


@pytest.fixture
def host(tmp_path: Path) -> Path:
    (tmp_path / "allowed" / "sub").mkdir(parents=True)
    (tmp_path / "writable").mkdir()
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "key").write_text("secret")
    return tmp_path


async def test_allowed_paths_bind_read_only_unless_rw_is_allowed(host: Path) -> None:
    source = LocalDirectorySource([str(host / "allowed"), f"{host / 'writable'}:rw"])
    ro = await source.prepare(local(host / "allowed" / "sub"), host)
    assert ro.path == host / "allowed" / "sub" and ro.read_only
    rw = await source.prepare(local(host / "writable", "true"), host)
    assert rw.path == host / "writable" and not rw.read_only
    # Not asked for: read-only even where writing is allowed.
    assert (await source.prepare(local(host / "writable"), host)).read_only

    with pytest.raises(PermissionDenied, match="allowed on this node read-only"):
        await source.validate(local(host / "allowed", rw=True))


async def test_paths_not_allow_listed_are_refused(host: Path) -> None:
    source = LocalDirectorySource([str(host / "allowed")])
    with pytest.raises(PermissionDenied, match=f"local path {host / 'private'} is not allowed"):
        await source.validate(local(host / "private"))
    # A sibling whose name merely starts like an allowed path is not inside it.
    (host / "allowed-not").mkdir()
    with pytest.raises(PermissionDenied):
        await source.validate(local(host / "allowed-not"))


async def test_no_escape_through_dotdot_or_symlinks(host: Path) -> None:
    source = LocalDirectorySource([str(host / "allowed")])
    with pytest.raises(PermissionDenied, match="resolves to"):
        await source.validate(local(f"{host}/allowed/../private"))
    os.symlink(host / "private", host / "allowed" / "link")
    with pytest.raises(PermissionDenied, match=f"resolves to {host / 'private'}"):
        await source.validate(local(host / "allowed" / "link"))


def test_allow_list_entries_must_be_absolute() -> None:
    with pytest.raises(InvalidConfiguration):
        LocalDirectorySource(["relative/path"])
