"""The localDirectory input source: only allow-listed paths, read-only unless allowed rw."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bacalhau.errors import InvalidConfiguration, InvalidJobSpec, PermissionDenied
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


async def test_glob_entries_as_bacalhau_documents_them(host: Path) -> None:
    # Bacalhau's docs: Compute.AllowListedLocalPaths=/etc/config:rw,/etc/*.conf:ro
    (host / "etc").mkdir()
    for name in ("a.conf", "b.txt"):
        (host / "etc" / name).write_text("x")
    (host / "data" / "deep" / "er").mkdir(parents=True)
    source = LocalDirectorySource([f"{host}/etc/*.conf:ro", f"{host}/data/**:rw"])
    assert (await source.prepare(local(host / "etc" / "a.conf"), host)).read_only
    with pytest.raises(PermissionDenied, match="is not allowed"):
        await source.validate(local(host / "etc" / "b.txt"))
    deep = await source.prepare(local(host / "data" / "deep" / "er", rw=True), host)
    assert not deep.read_only
    # Matched on the resolved path: a link cannot make a pattern match elsewhere.
    os.symlink(host / "private", host / "data" / "link")
    with pytest.raises(PermissionDenied, match="resolves to"):
        await source.validate(local(host / "data" / "link"))


async def test_a_read_only_entry_does_not_hide_a_later_read_write_one(host: Path) -> None:
    (host / "allowed" / "state").mkdir()
    source = LocalDirectorySource([str(host / "allowed"), f"{host / 'allowed' / 'state'}:rw"])
    state = await source.prepare(local(host / "allowed" / "state", rw=True), host)
    assert not state.read_only
    with pytest.raises(PermissionDenied, match="read-only, but the job asks to write"):
        await source.validate(local(host / "allowed" / "sub", rw=True))


async def test_create_as_makes_a_missing_path_a_job_writes_to(host: Path) -> None:
    source = LocalDirectorySource([f"{host / 'writable'}:rw", str(host / "allowed")])

    def spec(path: Path, create_as: str, rw: bool = True) -> SpecConfig:
        params = {"SourcePath": str(path), "ReadWrite": rw, "CreateAs": create_as}
        return SpecConfig("local", params)

    folder = host / "writable" / "job" / "out"
    await source.validate(spec(folder, "dir"))  # bidding creates nothing
    assert not folder.exists()
    made = await source.prepare(spec(folder, "dir"), host)
    assert made.path == folder and folder.is_dir() and not made.read_only
    file = host / "writable" / "state" / "db.json"
    await source.prepare(spec(file, "file"), host)
    assert file.is_file() and file.read_text() == ""
    # Not without ReadWrite, not where writing is not allowed, not with noCreate.
    for refused in (
        spec(host / "writable" / "x", "dir", rw=False),
        spec(host / "allowed" / "x", "dir"),
        spec(host / "writable" / "y", "noCreate"),
    ):
        with pytest.raises(PermissionDenied):
            await source.prepare(refused, host)
    assert not (host / "allowed" / "x").exists()
    with pytest.raises(InvalidJobSpec, match="CreateAs must be one of"):
        await source.validate(spec(host / "writable" / "z", "folder"))
