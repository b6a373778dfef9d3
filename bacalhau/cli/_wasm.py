"""``bacalhau wasm run`` and ``wasm validate``: WebAssembly jobs from the command line, and
how a module named on it reaches the job (inline, uploaded, by CID, or as an input source)."""

from __future__ import annotations

import base64
import gzip
import io
import re
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from bacalhau.cli._jobspec import build_job, job_options, parse_input, runtime_options
from bacalhau.cli._root import BacalhauGroup, CliState, pass_state
from bacalhau.cli._run import follow_option, runtime_settings, submit_and_follow, task_env
from bacalhau.models import InputSource, SpecConfig
from bacalhau.models._task_io import looks_like_cid_path

#: Bacalhau's CLI sends modules up to this size as plain base64, larger ones as a gzip'd tar.
INLINE_PLAIN_LIMIT = 512
#: A local entry module larger than this is uploaded to the cluster and named by its CID
#: (``ipfs`` input) instead of riding inline in the job spec (the spec stays well under the
#: requester's max_job_size, and every reader of the job no longer carries the module).
INLINE_MODULE_LIMIT = 1024 * 1024
F = TypeVar("F", bound=Callable[..., Any])

#: Where the entry module named by a file or URI is mounted, unless the user says where.
ENTRY_TARGET = "/app/main.wasm"
_IMPORTS_HINT = "'-I' / '--import-modules'"
#: The storage URIs a module may be named by (Bacalhau v1.7+).
_MODULE_SCHEMES = ("http", "https", "s3", "ipfs", "file")
#: What a CID (optionally with a path inside it) looks like, to tell it from a file name.
_CID_LIKE = re.compile(r"(Qm|baf|z|k|f)[0-9A-Za-z]{20,}(/[^:]*)?")


def inline_module(path: Path) -> dict[str, Any]:
    """A local module as an ``inline`` InputSource (a base64 ``data:`` URL, gzip'd tar when
    larger than 512 bytes, as Bacalhau's CLI does)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > INLINE_PLAIN_LIMIT:
        buf = io.BytesIO()
        # No time in the gzip header (nor in the tar entry): the same module always gives
        # the same URL, so the requester and compute nodes keep it once, by its hash.
        with (
            gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz,
            tarfile.open(fileobj=gz, mode="w") as tar,
        ):
            info = tarfile.TarInfo(path.name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
        url = "data:application/gzip;base64," + base64.b64encode(buf.getvalue()).decode()
    else:
        url = "data:application/wasm;base64," + base64.b64encode(data).decode()
    return {
        "Source": {"Type": "inline", "Params": {"URL": url}},
        "Alias": path.name,
        "Target": f"/app/{path.name}",
    }


def stored_module(state: CliState, path: Path) -> dict[str, Any]:
    """A local module uploaded to the cluster (``bacalhau data add``) as an ``ipfs`` input."""
    with state.data_client() as data:
        cid = data.add(path)
    return {
        "Source": {"Type": "ipfs", "Params": {"CID": cid}},
        "Alias": path.name,
        "Target": f"/app/{path.name}",
    }


def _named(text: str) -> tuple[str, str]:
    """``NAME=VALUE`` -> (NAME, VALUE); a value with no name (or a URL's ``=``) -> ("", text)."""
    name, sep, value = text.partition("=")
    if sep and name and "/" not in name and ":" not in name:
        return name, value
    return "", text


def import_module_url(text: str) -> dict[str, Any]:
    """``-U [NAME=]URL|FILE``: a module fetched from a URL, or a local file sent inline.

    Imports resolve by Alias: NAME when given; else the URL itself (as Bacalhau's CLI does)
    or, for a local file, its name without ``.wasm`` (``lib.wasm`` serves ``(import "lib" ...)``).
    """
    name, value = _named(text)
    if value.startswith(("http://", "https://")):
        file_name = value.rstrip("/").rsplit("/", 1)[-1] or "module.wasm"
        return {
            "Source": {"Type": "urlDownload", "Params": {"URL": value}},
            "Alias": name or value,
            "Target": f"/app/imports/{file_name}",
        }
    path = Path(value)
    if not path.is_file():
        raise click.BadParameter(
            f"{value!r} is neither an http(s) URL nor a local file",
            param_hint="'-U' / '--import-module-urls'",
        )
    module = inline_module(path)
    module["Alias"] = name or (path.name[:-5] if path.name.endswith(".wasm") else path.name)
    module["Target"] = f"/app/imports/{path.name}"
    return module


def import_module_volume(text: str) -> dict[str, Any]:
    """``-I [NAME=]CID:PATH``: a module stored by CID, mounted at PATH (Alias NAME, else PATH)."""
    name, value = _named(text)
    cid, sep, target = value.partition(":")
    if not sep or not cid or not target.startswith("/"):
        raise click.BadParameter(
            f"{text!r} is not the target path of an --input (/app/lib.wasm), FILE:/target, "
            "URI:/target, nor CID:/absolute/path",
            param_hint=_IMPORTS_HINT,
        )
    if Path(cid).is_file():
        # NAME=FILE:/target: the file travels inline, imported under NAME.
        module = inline_module(Path(cid))
        return {"Source": module["Source"], "Alias": name or target, "Target": target}
    if not looks_like_cid_path(cid):
        # Every node would fail it ("not a CID") after the submit.
        raise click.BadParameter(
            f"{cid!r} in {text!r} is neither a CID nor a file here",
            param_hint=_IMPORTS_HINT,
        )
    return {
        "Source": {"Type": "ipfs", "Params": {"CID": cid}},
        "Alias": name or target,
        "Target": target,
    }


@click.group("wasm", cls=BacalhauGroup)
def wasm_group() -> None:
    """Run WebAssembly jobs."""


def _entry_point_option(help_text: str) -> Callable[[F], F]:
    return click.option(
        "--entry-point",
        "--entrypoint",
        "entry_point",
        default="_start",
        show_default=True,
        help=help_text,
    )


@wasm_group.command("validate")
@click.argument("module", type=click.Path(dir_okay=False, path_type=Path))
@_entry_point_option("The function to call: it must take no parameters and return nothing.")
def wasm_validate(module: Path, entry_point: str) -> None:
    """Check that a WASM program is runnable on the network (prints OK)."""
    from bacalhau.executor.wasm._check import check_entry_module  # wasmtime: only here

    try:
        data = module.read_bytes()
    except OSError as exc:
        raise click.BadParameter(f"cannot read {module}: {exc.strerror}") from None
    check_entry_module(data, entry_point)
    click.echo("OK")


@wasm_group.command("run")
@job_options
@runtime_options
@follow_option
@_entry_point_option("Exported function to run.")
@click.option("-e", "--env", multiple=True, help="Environment variable K=V (repeatable).")
@click.option(
    "-U",
    "--import-module-urls",
    "import_urls",
    multiple=True,
    help="Module to import by name: [NAME=]URL or a local .wasm file (repeatable).",
)
@click.option(
    "-I",
    "--import-modules",
    "--import-module-volumes",
    "import_modules",
    multiple=True,
    help="Module to import (repeatable): the target path of an --input holding it, "
    "FILE:/target or URI:/target (Bacalhau v1.7+), or [NAME=]CID:/path (earlier versions).",
)
@click.option(
    "--deterministic/--no-deterministic",
    default=None,
    help="Fixed clocks and random bytes seeded by the job: the same output on every node.",
)
@click.argument("module")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@pass_state
def wasm_run(
    state: CliState,
    /,
    module: str,
    args: tuple[str, ...],
    entry_point: str,
    env: tuple[str, ...],
    import_urls: tuple[str, ...],
    import_modules: tuple[str, ...],
    deterministic: bool | None,
    **kwargs: Any,
) -> None:
    """Run MODULE with ARGS: bacalhau wasm run MODULE [-- ARGS...]

    MODULE is a local .wasm file, the CID of one, a storage URI (http(s)://, s3://,
    ipfs://, file://), or the target path of an --input holding it; a file or URI may name
    its target path as FILE:/target."""
    runtime = runtime_settings(kwargs)
    inputs: list[InputSource] = []
    entry: str | dict[str, Any]
    given = module_input(module, default_target=ENTRY_TARGET)
    local = Path(module)
    if given is not None:
        inputs.append(given)
        entry = given.target  # Bacalhau v1.7's shape: the entry module by its input's target
    elif local.is_file() and local.stat().st_size > INLINE_MODULE_LIMIT:
        entry = stored_module(state, local)
    elif local.is_file():
        entry = inline_module(local)
    elif _CID_LIKE.fullmatch(module):
        # A module stored by CID on the cluster's nodes (the server checks the CID itself).
        entry = {
            "Source": {"Type": "ipfs", "Params": {"CID": module}},
            "Alias": f"ipfs://{module}",
            "Target": ENTRY_TARGET,
        }
    elif module.startswith("/") and kwargs.get("inputs"):
        entry = module  # the target path of one of the --input sources
    else:
        raise click.BadParameter(
            f"{module!r} is not a local file, a CID, a storage URI or the target path of an "
            "--input",
            param_hint="MODULE",
        )
    params: dict[str, Any] = {
        "EntryModule": entry,
        "EntryPoint": entry_point,
        "Parameters": list(args),
    }
    imports: list[str | dict[str, Any]] = [import_module_url(u) for u in import_urls]
    for text in import_modules:
        found = module_input(text, default_target="")
        if found is not None or Path(text).is_file():  # FILE:/target or URI:/target (v1.7+)
            if found is None or not found.target:
                raise click.BadParameter(
                    f"import module {text!r} must name its target path: {text}:/app/lib.wasm",
                    param_hint=_IMPORTS_HINT,
                )
            inputs.append(found)
            imports.append(found.target)
        elif text.startswith("/"):
            imports.append(text)  # the target path of one of the --input sources (v1.7+)
        else:
            imports.append(import_module_volume(text))  # [NAME=]CID:/path (before v1.7)
    if imports:
        params["ImportModules"] = imports
    if deterministic is not None:
        params["Deterministic"] = deterministic
    job = build_job(SpecConfig("wasm", params), kwargs, env=task_env(env))
    job.task.input_sources.extend(inputs)
    submit_and_follow(state, job, runtime)


def module_input(text: str, *, default_target: str) -> InputSource | None:
    """A module named by a storage URI or a local file, each optionally ``:/target``, as
    the input source that holds it (Bacalhau v1.7+); None for anything else."""
    scheme, sep, _ = text.partition("://")
    if sep and scheme.lower() in _MODULE_SCHEMES:
        return parse_input(text, default_target=default_target, what="MODULE")
    path, sep, target = text.rpartition(":")
    if sep and target.startswith("/") and Path(path).is_file():
        found = inline_module(Path(path))
        # No Alias (as Bacalhau's CLI sends it): the job names the module by its target.
        return InputSource(source=SpecConfig("inline", found["Source"]["Params"]), target=target)
    return None
