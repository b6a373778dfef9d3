"""``wasm run`` flags of this work: ``-U``/``-I`` import modules and ``--deterministic``.

The dry-run spec is run on a real WASM executor: what the CLI builds is what a node runs.
"""

from __future__ import annotations

from pathlib import Path

import wasmtime
import yaml
from click.testing import CliRunner

from bacalhau.cli import cli
from bacalhau.executor import WasmExecutor
from bacalhau.models import SpecConfig, Task
from tests.executor.conftest import new_request
from tests.executor.test_wasm_imports import CALLS_QUIT_WAT, QUIT_WAT

CID = "QmWoaAy8Wb2tB7pDPnYEbVxaNTXH4J5FeUqvX9XZsBEU6N"


def dry_run(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(cli, ["wasm", "run", "--dry-run", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    params: dict[str, object] = yaml.safe_load(result.stdout)["Tasks"][0]["Engine"]["Params"]
    return params


async def test_a_local_import_module_is_sent_inline_and_linked_by_its_name(
    tmp_path: Path,
) -> None:
    main = tmp_path / "main.wasm"
    main.write_bytes(wasmtime.wat2wasm(CALLS_QUIT_WAT))
    lib = tmp_path / "quitter.wasm"
    lib.write_bytes(wasmtime.wat2wasm(QUIT_WAT))
    params = dry_run("-U", str(lib), "--deterministic", str(main))
    assert params["Deterministic"] is True
    async with WasmExecutor() as executor:
        result = await executor.run(new_request(tmp_path, "wasm", params))
    assert (result.exit_code, result.error_msg) == (7, "")


def test_url_and_cid_import_modules_keep_their_names(tmp_path: Path) -> None:
    main = tmp_path / "main.wasm"
    main.write_bytes(wasmtime.wat2wasm(CALLS_QUIT_WAT))
    params = dry_run(
        "-U",
        "https://example.com/m/lib.wasm",
        "-U",
        "quitter=https://example.com/q.wasm",
        "-I",
        f"{CID}:/modules/x.wasm",
        "--no-deterministic",
        str(main),
    )
    assert params["ImportModules"] == [
        {
            "Source": {"Type": "urlDownload", "Params": {"URL": "https://example.com/m/lib.wasm"}},
            "Alias": "https://example.com/m/lib.wasm",
            "Target": "/app/imports/lib.wasm",
        },
        {
            "Source": {"Type": "urlDownload", "Params": {"URL": "https://example.com/q.wasm"}},
            "Alias": "quitter",
            "Target": "/app/imports/q.wasm",
        },
        {
            "Source": {
                "Type": "ipfs",
                "Params": {"CID": "QmWoaAy8Wb2tB7pDPnYEbVxaNTXH4J5FeUqvX9XZsBEU6N"},
            },
            "Alias": "/modules/x.wasm",
            "Target": "/modules/x.wasm",
        },
    ]
    assert params["Deterministic"] is False
    assert "Deterministic" not in dry_run(str(main))
    bad = CliRunner().invoke(cli, ["wasm", "run", "--dry-run", "-I", "QmCid", str(main)])
    assert bad.exit_code == 2


def test_determinism_is_the_flag_else_whether_verification_is_asked() -> None:
    def task(params: dict[str, object]) -> Task:
        return Task(engine=SpecConfig("wasm", params))

    assert task({"deterministic": "true"}).runs_deterministically()
    assert not task({"Deterministic": False}).runs_deterministically(verification_requested=True)
    assert task({}).runs_deterministically(verification_requested=True)
    assert not task({}).runs_deterministically()
    docker = Task(engine=SpecConfig("docker", {"Deterministic": True}))
    assert not docker.runs_deterministically(verification_requested=True)


def test_bacalhau_1_7_module_forms(tmp_path: Path) -> None:
    main = tmp_path / "main.wasm"
    main.write_bytes(wasmtime.wat2wasm(CALLS_QUIT_WAT))

    def task(*args: str) -> dict[str, object]:
        result = CliRunner().invoke(cli, ["wasm", "run", "--dry-run", *args])
        assert result.exit_code == 0, result.output
        found: dict[str, object] = yaml.safe_load(result.stdout)["Tasks"][0]
        return found

    def sources(t: dict[str, object]) -> list[tuple[str, str]]:
        return [(i["Source"]["Type"], i["Target"]) for i in t["InputSources"]]  # type: ignore[attr-defined,index]

    by_url = task("s3://bucket/main.wasm")
    assert by_url["Engine"]["Params"]["EntryModule"] == "/app/main.wasm"  # type: ignore[index]
    assert sources(by_url) == [("s3", "/app/main.wasm")]
    placed = task("https://example.com/m.wasm:/app/custom.wasm")
    assert placed["Engine"]["Params"]["EntryModule"] == "/app/custom.wasm"  # type: ignore[index]
    local = task(f"{main}:/app/x.wasm", "-I", f"{main}:/app/lib.wasm")
    assert sources(local) == [("inline", "/app/x.wasm"), ("inline", "/app/lib.wasm")]
    assert local["Engine"]["Params"]["ImportModules"] == ["/app/lib.wasm"]  # type: ignore[index]
    # Upstream's own example: the import module added with --input, named by its target.
    upstream = task(
        "--input", "s3://bucket/lib.wasm:/app/lib.wasm", "s3://bucket/main.wasm",
        "--import-modules", "/app/lib.wasm",
    )  # fmt: skip
    assert upstream["Engine"]["Params"]["ImportModules"] == ["/app/lib.wasm"]  # type: ignore[index]
    assert sources(upstream) == [("s3", "/app/lib.wasm"), ("s3", "/app/main.wasm")]
    # A module named by an input's target alone, and mistakes.
    cid = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"
    named = task("-i", f"ipfs://{cid}:/m.wasm", "/m.wasm")
    assert named["Engine"]["Params"]["EntryModule"] == "/m.wasm"  # type: ignore[index]
    for bad in (["nope.wasm"], ["-I", f"{main}", str(main)], ["-I", "s3://b/lib.wasm", str(main)]):
        result = CliRunner().invoke(cli, ["wasm", "run", "--dry-run", *bad])
        assert result.exit_code == 2, (bad, result.output)


async def test_a_named_local_import_module_is_sent_inline_and_a_non_cid_refused(
    tmp_path: Path,
) -> None:
    main = tmp_path / "main.wasm"
    main.write_bytes(wasmtime.wat2wasm(CALLS_QUIT_WAT))
    lib = tmp_path / "quitter.wasm"
    lib.write_bytes(wasmtime.wat2wasm(QUIT_WAT))
    # NAME=FILE:/target, as the README's -I grammar reads: the file travels inline.
    params = dry_run("-I", f"quitter={lib}:/app/lib.wasm", str(main))
    [module] = params["ImportModules"]  # type: ignore[misc]
    assert module["Source"]["Type"] == "inline" and module["Alias"] == "quitter"
    async with WasmExecutor() as executor:
        result = await executor.run(new_request(tmp_path, "wasm", params))
    assert (result.exit_code, result.error_msg) == (7, "")
    # Neither a CID nor a file here: refused before the submit, not on every node.
    bad = CliRunner().invoke(
        cli, ["wasm", "run", "--dry-run", "-I", "env=missing.wasm:/lib", str(main)]
    )
    assert bad.exit_code == 2 and "neither a CID nor a file here" in bad.output
