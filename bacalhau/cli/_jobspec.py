"""Job and task flags shared by ``docker run`` and ``wasm run``, and building the Job."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlparse

import click

from bacalhau.errors import InvalidJobSpec
from bacalhau.models import (
    InputSource,
    Job,
    NetworkConfig,
    NetworkType,
    ResourcesConfig,
    ResultPath,
    SpecConfig,
    Task,
    TimeoutConfig,
    VerificationPolicy,
    parse_selector,
)

F = TypeVar("F", bound=Callable[..., Any])


if TYPE_CHECKING:
    _FloatParam = click.ParamType[float]
else:  # generic only from click 8.2
    _FloatParam = click.ParamType


class Duration(_FloatParam):
    """Seconds, given as Bacalhau's flags take a duration (``5m``, ``1m30s``) or as a bare
    number of seconds (``300``, as this flag's ``-secs`` name says)."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = float(value)
        else:
            from bacalhau.config import parse_duration
            from bacalhau.errors import InvalidRequest

            try:
                seconds = parse_duration(param.name if param else "value", value)
            except InvalidRequest:
                self.fail(f"{value!r} is not a duration (300, 5m, 1m30s)", param, ctx)
        if seconds <= 0:
            self.fail(f"{value!r} must be more than nothing", param, ctx)
        return seconds


DEFAULT_INPUT_TARGET = "/inputs"


def _apply(options: list[Callable[[F], F]], f: F) -> F:
    for option in reversed(options):
        f = option(f)
    return f


def job_options(f: F) -> F:
    """Job- and task-level flags (Bacalhau's names and defaults)."""
    return _apply(
        [
            click.option("--name", default="", help="Job name (default: the job ID)."),
            click.option("--namespace", default="default", show_default=True),
            click.option("--priority", type=click.IntRange(min=0), default=0, show_default=True),
            click.option(
                "-l", "--labels", multiple=True, help="Job labels, k=v (repeatable, or k=v,k2=v2)."
            ),
            click.option(
                "--count",
                "--concurrency",
                type=click.IntRange(min=0),
                default=1,
                show_default=True,
                help="How many executions must complete.",
            ),
            click.option(
                "--verify",
                is_flag=True,
                default=False,
                help="Verify the results: run --count replicas (at least 2; 3 outvote one "
                "faulty node) on distinct nodes and accept the results a majority agrees on.",
            ),
            # Bacalhau v1.0's flags: --verifier deterministic is --verify; the others had
            # lost their meaning by v1.1 and are accepted with a notice.
            click.option("--verifier", default=None, hidden=True),
            click.option("--min-bids", default=None, hidden=True),
            click.option("--confidence", default=None, hidden=True),
            click.option("--skip-syntax-checking", is_flag=True, default=None, hidden=True),
            click.option(
                "--target",
                type=click.Choice(["any", "all"], case_sensitive=False),
                default="any",
                show_default=True,
                help="any: a batch job on --count nodes; all: an ops job on every matching node.",
            ),
            click.option(
                "--constraints",
                "-s",
                "--selector",
                "constraints",
                default="",
                help="Node label selector, e.g. 'region=eu,gpu notin (none)'.",
            ),
            click.option("--task-name", default="main", show_default=True),
            click.option(
                "-i",
                "--input",
                "inputs",
                multiple=True,
                help="Input: URI[:dst] or src=URI,dst=PATH,opt=K=V (ipfs://, http(s)://, s3://, "
                "file://).",
            ),
            click.option(
                "-v",
                "--volumes",
                "volumes",
                multiple=True,
                help="Legacy input spelling: CID:/path mounts that CID (an ipfs input) at /path.",
            ),
            click.option(
                "-o",
                "--output",
                "--output-volumes",  # Bacalhau v1.0's spelling
                "outputs",
                multiple=True,
                help="Result folder to publish: name:/path/in/job (repeatable).",
            ),
            click.option(
                "-p",
                "--publisher",
                default="",
                help="Where results go: local, noop, ipfs or s3://bucket/key.",
            ),
            click.option("--cpu", default="", help="CPU, e.g. 500m or 2."),
            click.option("--memory", default="", help="Memory, e.g. 512Mb or 1GiB."),
            click.option("--disk", default="", help="Disk, e.g. 10Gb."),
            click.option("--gpu", default="", help="Number of GPUs."),
            click.option(
                "--network",
                type=click.Choice(
                    ["None", "Default", "Host", "Bridge", "Full", "HTTP"], case_sensitive=False
                ),
                default="None",
                show_default=True,
            ),
            click.option("--domain", multiple=True, help="Domain the job may reach (HTTP)."),
            click.option(
                "--timeout",
                type=click.IntRange(min=0),
                default=0,
                help="The job's timeout in seconds, all its executions together (TotalTimeout; 0: "
                "none).",
            ),
            click.option(
                "--queue-timeout",
                type=click.IntRange(min=0),
                default=0,
                help="How long the job may wait for a node, in seconds.",
            ),
        ],
        f,
    )


def runtime_options(f: F) -> F:
    """What the CLI does after submitting."""
    return _apply(_runtime_flags(submit=True), f)


def rerun_options(f: F) -> F:
    """What the CLI does after a rerun (the runtime flags but those of a submission:
    ``--dry-run``, ``--force``), as Bacalhau's ``job rerun`` takes them."""
    return _apply(_runtime_flags(submit=False), f)


def _runtime_flags(*, submit: bool) -> list[Callable[[Any], Any]]:
    flags: list[Callable[[Any], Any]] = [
        click.option("--wait/--no-wait", default=True, show_default=True, help="Wait for the job."),
        click.option(
            "--wait-timeout-secs",
            type=click.IntRange(min=1),
            default=600,
            show_default=True,
            help="How long to wait for the job.",
        ),
        click.option("--id-only", is_flag=True, help="Print only the job ID."),
        click.option("--node-details", is_flag=True, help="Show the nodes that ran it."),
        click.option(
            "--hide-warnings",
            is_flag=True,
            help="Do not print the submission's warnings (printed on standard error "
            "unless --id-only).",
        ),
        # Our earlier opt-in: warnings are printed by default now, as Bacalhau does.
        click.option("--show-warnings", is_flag=True, hidden=True),
        click.option(
            "--group-events",
            is_flag=True,
            help="While waiting, show each execution's latest event instead of every event.",
        ),
    ]
    if submit:
        flags += [
            click.option(
                "--dry-run",
                is_flag=True,
                help="Submit nothing: print what submitting would change in the job of the "
                "same name (a diff), or the job as YAML when the name is new.",
            ),
            click.option(
                "--force",
                is_flag=True,
                help="Submit even when the job of the same name already has this very spec "
                "(a new version all the same).",
            ),
            # Bacalhau v1.0-v1.3: download the results once the job has completed.
            click.option(
                "--download", is_flag=True, help="Download the results once the job completes."
            ),
            click.option(
                "--output-dir",
                type=click.Path(file_okay=False, path_type=Path),
                default=None,
                help="With --download: where to write them (default: ./job-<job ID>).",
            ),
            click.option("--raw", is_flag=True, help="With --download: one folder per result."),
            click.option("--download-timeout-secs", type=Duration(), default=300, hidden=True),
            click.option("-g", "--gettimeout", type=int, default=10, hidden=True),
            # Bacalhau v1.0-v1.3: opt out of its telemetry; this node sends none.
            click.option("--do-not-track", is_flag=True, hidden=True),
        ]
    return flags


def split_csv(values: Iterable[str]) -> list[str]:
    """Repeatable flags whose values may also be comma-separated (Go's StringSlice)."""
    out: list[str] = []
    for value in values:
        out.extend(next(csv.reader([value], skipinitialspace=True), []))
    return out


def parse_key_values(
    values: Iterable[str], what: str, *, bare_keys: bool = False
) -> dict[str, str]:
    """``key=value`` items (repeatable, comma-separated); with ``bare_keys`` a lone ``key``
    is ``key=""`` (Bacalhau's labels)."""
    out: dict[str, str] = {}
    for item in split_csv(values):
        key, sep, value = item.partition("=")
        if bare_keys and not sep and key.strip():
            out[key.strip()] = ""
            continue
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not of the form key=value", param_hint=what)
        out[key.strip()] = value
    return out


def parse_outputs(values: Iterable[str]) -> list[ResultPath]:
    out: list[ResultPath] = []
    for item in values:
        name, sep, path = item.partition(":")
        if not sep or not name or not path:
            raise click.BadParameter(
                f"{item!r} is not of the form name:/path", param_hint="'-o' / '--output'"
            )
        out.append(ResultPath(name=name, path=path))
    return out


def _fields(
    text: str, what: str, keys: dict[str, str]
) -> tuple[str, dict[str, str], dict[str, str]]:
    """Bacalhau's storage and publisher flag grammar: comma-separated fields (CSV, so a
    field may be quoted), the first of which may be a bare URI; every other field is
    ``key=value`` with ``key`` one of ``keys`` (any spelling -> its name), or ``opt=K=V``.
    Returns (the bare URI or "", the named fields, the options by lower-cased key)."""
    named: dict[str, str] = {}
    options: dict[str, str] = {}
    bare = ""
    for i, part in enumerate(split_csv([text])):
        key, sep, value = part.partition("=")
        if i == 0 and (not sep or "://" in key):
            bare = part
            continue
        if not sep:
            raise click.BadParameter(
                f"invalid option {part!r} in {text!r}: it must be a key=value pair",
                param_hint=what,
            )
        key = key.strip().lower()
        if key in ("opt", "option"):
            name, _, opt_value = value.partition("=")
            if name.strip():
                options[name.strip().lower()] = opt_value
        elif key in keys:
            named[keys[key]] = value
        else:
            raise click.BadParameter(
                f"unknown key {key!r} in {text!r}: use "
                + ", ".join(sorted({f"{k}=" for k in keys} | {"opt=K=V"})),
                param_hint=what,
            )
    return bare, named, options


_PUBLISHER_HINT = "'-p' / '--publisher'"
#: Publisher types a ``-p`` may name (Bacalhau's, and the noop test double's).
_PUBLISHER_TYPES = ("ipfs", "local", "noop", "s3", "s3managed")


def parse_publisher(text: str) -> SpecConfig:
    """``local``, ``ipfs``, ``noop``, ``s3managed``, ``s3://bucket/key[,opt=region=...]``
    (options ``region``, ``endpoint``, ``bucket``, ``key``, ``encoding``, ``compress``), or
    the same as ``target=...``/``dst=...``, as Bacalhau's ``-p`` reads them."""
    if not text:
        return SpecConfig()
    bare, named, options = _fields(
        text, _PUBLISHER_HINT, {"target": "dst", "dst": "dst", "destination": "dst"}
    )
    uri = named.get("dst", bare).strip(" '\"")
    parsed = urlparse(uri)
    kind = (parsed.scheme or parsed.path).lower()
    if kind not in _PUBLISHER_TYPES:
        raise click.BadParameter(
            f"unknown publisher type: {kind or uri!r}; use one of "
            + ", ".join(_PUBLISHER_TYPES)
            + " (s3 as s3://BUCKET/KEY)",
            param_hint=_PUBLISHER_HINT,
        )
    if kind != "s3":
        return SpecConfig(type=kind)
    params: dict[str, Any] = {
        "Bucket": options.get("bucket", parsed.netloc),
        "Key": options.get("key", parsed.path.lstrip("/")),
    }
    for key, name in (
        ("region", "Region"),
        ("endpoint", "Endpoint"),
        ("compress", "Compress"),
        ("encoding", "Encoding"),
    ):
        if options.get(key):
            params[name] = options[key]
    return SpecConfig(type="s3", params=params)


_INPUT_HINT = "'-i' / '--input'"
#: The options an s3 input takes (any of Bacalhau's spellings -> its param).
_S3_OPTIONS = {
    "region": "Region",
    "endpoint": "Endpoint",
    "filter": "Filter",
    "versionid": "VersionID",
    "version-id": "VersionID",
    "version_id": "VersionID",
    "checksum-256": "ChecksumSHA256",
    "checksum256": "ChecksumSHA256",
    "checksum_256": "ChecksumSHA256",
}


def _source_from_uri(uri: str, options: dict[str, str]) -> SpecConfig:
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    if scheme == "ipfs":
        return SpecConfig("ipfs", {"CID": (parsed.netloc + parsed.path).strip("/")})
    if scheme in ("http", "https"):
        return SpecConfig("urlDownload", {"URL": uri})
    if scheme == "s3":
        params: dict[str, Any] = {"Bucket": parsed.netloc, "Key": parsed.path.lstrip("/")}
        for key, value in options.items():
            if key not in _S3_OPTIONS:
                raise click.BadParameter(
                    f"unknown option {key!r} for storage s3: use "
                    + ", ".join(sorted({"region", "endpoint", "filter", "versionID"}))
                    + " or checksum-256",
                    param_hint=_INPUT_HINT,
                )
            if value:
                params[_S3_OPTIONS[key]] = value
        return SpecConfig("s3", params)
    if scheme == "file":
        rw = options.get("rw", "").lower() in ("true", "1", "yes")
        return SpecConfig("localDirectory", {"SourcePath": parsed.path, "ReadWrite": rw})
    raise click.BadParameter(
        f"unsupported input {uri!r}: use ipfs://, http(s)://, s3:// or file://",
        param_hint=_INPUT_HINT,
    )


def parse_input(
    text: str, *, default_target: str = DEFAULT_INPUT_TARGET, what: str = _INPUT_HINT
) -> InputSource:
    """``URI[:/target][,dst=PATH][,opt=K=V...]`` or ``src=URI,dst=PATH,opt=K=V``, as
    Bacalhau's ``-i`` reads them (the target defaults to ``default_target``)."""
    bare, named, options = _fields(
        text,
        what,
        {
            "source": "src",
            "src": "src",
            "target": "dst",
            "dst": "dst",
            "destination": "dst",
        },
    )
    target = default_target
    head, sep, tail = bare.rpartition(":")
    if sep and tail.startswith("/") and "://" in head:
        bare, target = head, tail
    uri = named.get("src", bare).strip(" '\"")
    target = named.get("dst", target).strip(" '\"")
    if not uri:
        raise click.BadParameter(f"{text!r} names no source", param_hint=what)
    return InputSource(source=_source_from_uri(uri, options), alias=uri, target=target)


def parse_volume(text: str) -> InputSource:
    """The legacy ``-v CID:/path`` (``CID/sub/path:/path`` too): an ipfs input at /path."""
    cid, sep, target = text.partition(":")
    if not sep or not cid or not target.startswith("/"):
        raise click.BadParameter(
            f"{text!r} is not of the form CID:/path", param_hint="'-v' / '--volumes'"
        )
    return InputSource(
        source=SpecConfig("ipfs", {"CID": cid}), alias=f"ipfs://{cid}", target=target
    )


def build_job(
    engine: SpecConfig, flags: dict[str, Any], *, env: dict[str, str] | None = None
) -> Job:
    """A Job from the run flags (see :func:`job_options`); ``env``: the task's ``Env``."""
    if _v1_0_flags(flags):
        flags["verify"] = True
    try:
        network_type = NetworkType.parse(flags["network"])
    except InvalidJobSpec as err:
        raise click.BadParameter(err.message, param_hint="'--network'") from None
    task = Task(
        name=flags["task_name"],
        engine=engine,
        publisher=parse_publisher(flags["publisher"]),
        input_sources=[parse_input(i) for i in flags["inputs"]]
        + [parse_volume(v) for v in flags.get("volumes", ())],
        result_paths=parse_outputs(flags["outputs"]),
        resources=ResourcesConfig(
            cpu=flags["cpu"], memory=flags["memory"], disk=flags["disk"], gpu=flags["gpu"]
        ),
        network=NetworkConfig(type=network_type, domains=[d.lower() for d in flags["domain"]]),
        # Bacalhau's --timeout is the whole job's (its CLI sets TotalTimeout): a job that
        # outlives it fails, however many of its executions ran.
        timeouts=TimeoutConfig(
            total_timeout=flags["timeout"], queue_timeout=flags["queue_timeout"]
        ),
        env=dict(env or {}),
    )
    return Job(
        name=flags["name"],
        namespace=flags["namespace"],
        type="ops" if flags["target"].lower() == "all" else "batch",
        priority=flags["priority"],
        count=flags["count"],
        constraints=parse_selector(flags["constraints"], field="Constraints", error=InvalidJobSpec),
        labels=parse_key_values(flags["labels"], "'-l' / '--labels'", bare_keys=True),
        tasks=[task],
        verification=VerificationPolicy(mode="majority" if flags.get("verify") else ""),
    )


def _v1_0_flags(flags: dict[str, Any]) -> bool:
    """Take Bacalhau v1.0's run flags out of ``flags``, saying what each is now; True when
    ``--verifier deterministic`` asked for verified results."""
    verify = False
    verifier = flags.pop("verifier", None)
    if verifier is not None:
        kind = str(verifier).strip().lower()
        if kind not in ("noop", "deterministic"):
            raise click.BadParameter(
                f"unknown verifier {verifier!r}: use deterministic (or --verify) or noop",
                param_hint="'--verifier'",
            )
        verify = kind == "deterministic"
        click.echo("Flag --verifier is deprecated: use --verify", err=True)
    for name in ("min_bids", "confidence", "skip_syntax_checking"):
        if flags.pop(name, None) is not None:
            flag = "--" + name.replace("_", "-")
            click.echo(f"Flag {flag} is deprecated and has no effect", err=True)
    return verify
