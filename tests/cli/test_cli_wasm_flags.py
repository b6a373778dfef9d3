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
        "QmCid:/modules/x.wasm",
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
            "Source": {"Type": "ipfs", "Params": {"CID": "QmCid"}},
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
