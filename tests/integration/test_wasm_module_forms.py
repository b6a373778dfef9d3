"""``bacalhau wasm run`` with the module forms of Bacalhau v1.7+, on a real devstack: the
entry module from an HTTP URL or a local file at a target of the user's choosing (the job
names it by that target), and an import module given by the target of an ``--input``."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import wasmtime

from tests.executor.test_wasm_imports import LIB_WAT, MAIN_WAT
from tests.integration.devstack import Devstack

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("devstack-cli")]


@pytest.fixture
def served(tmp_path: Path, wasm_modules: Path) -> Iterator[str]:
    """The WASI test programs over plain HTTP on loopback."""
    root = tmp_path / "served"
    shutil.copytree(wasm_modules, root)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def spec_of(devstack: Devstack, job_id: str) -> dict[str, object]:
    described = json.loads(devstack.ok("job", "describe", job_id, "--output", "json"))
    assert described["Job"]["State"]["StateType"] == "Completed", described["Job"]["State"]
    task: dict[str, object] = described["Job"]["Tasks"][0]
    return task


def test_an_entry_module_from_a_url_runs_named_by_its_target(
    devstack: Devstack, served: str
) -> None:
    out = devstack.ok("wasm", "run", f"{served}/hello.wasm", "--", "world")
    assert "hello from wasm\n    arg[1]=world\n" in out, out
    job_id = devstack.ok(
        "wasm", "run", "--id-only", f"{served}/hello.wasm:/app/custom.wasm", "--", "x"
    ).strip()
    task = spec_of(devstack, job_id)
    assert task["Engine"]["Params"]["EntryModule"] == "/app/custom.wasm"  # type: ignore[index]
    (source,) = task["InputSources"]  # type: ignore[misc]
    assert source["Source"]["Type"] == "urlDownload" and source["Target"] == "/app/custom.wasm"


def test_a_local_entry_module_at_a_target_and_an_input_named_as_the_entry(
    devstack: Devstack, wasm_modules: Path, served: str
) -> None:
    local = devstack.ok("wasm", "run", f"{wasm_modules / 'hello.wasm'}:/app/x.wasm", "--", "y")
    assert "arg[1]=y" in local, local
    by_target = devstack.ok(
        "wasm", "run", "-i", f"{served}/hello.wasm:/app/main.wasm", "/app/main.wasm", "--", "z"
    )
    assert "arg[1]=z" in by_target, by_target


@pytest.mark.parametrize("target", ["", None], ids=["empty-target", "no-target"])
def test_bacalhau_v1_5_object_form_without_a_target_runs(
    devstack: Devstack, served: str, tmp_path: Path, target: str | None
) -> None:
    """Bacalhau v1.5's ``wasm run CID`` and its documents name the entry module by its
    Source alone, with ``Target: ""`` (or none): the module is fetched and run."""
    module: dict[str, object] = {
        "Source": {"Type": "urlDownload", "Params": {"URL": f"{served}/hello.wasm"}}
    }
    if target is not None:
        module["Target"] = target
    job = {
        "Type": "batch",
        "Count": 1,
        "Tasks": [
            {
                "Name": "main",
                "Engine": {
                    "Type": "wasm",
                    "Params": {"EntryModule": module, "Parameters": ["v15"]},
                },
            }
        ],
    }
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    out = devstack.ok("job", "run", str(path))
    assert "arg[1]=v15" in out, out


def test_a_spec_error_found_at_run_fails_the_job_on_its_first_node(
    devstack: Devstack, tmp_path: Path
) -> None:
    """An import no module provides shows only once the inputs are there (the module came
    as an input): every node would fail it the same way, so the job fails on its first,
    saying why, instead of trying each node in turn."""
    main = tmp_path / "main.wasm"
    main.write_bytes(wasmtime.wat2wasm(MAIN_WAT))
    lib = tmp_path / "lib.wasm"
    lib.write_bytes(wasmtime.wat2wasm(LIB_WAT))
    done = devstack.cli("wasm", "run", "--id-only", "-I", f"{lib}:/lib.wasm", str(main))
    assert done.returncode != 0, done.stdout
    job_id = done.stdout.strip().splitlines()[0]
    assert "of its own spec (not retried elsewhere)" in done.stderr, done.stderr
    assert "could not find WASM module with name 'middle'" in done.stderr, done.stderr
    executions = devstack.client.get_job(job_id, executions=True).executions
    assert len(executions) == 1, [(e.node_id, e.compute_message) for e in executions]
