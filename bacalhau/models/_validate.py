"""Normalisation and validation of submitted jobs (Bacalhau's submission pipeline, steps 1-3).

Validation errors name the dotted path of the field at fault (``Tasks[0].Engine.Type``) so the
user can fix the spec without guessing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

from bacalhau.errors import InvalidJobSpec
from bacalhau.models._codec import param
from bacalhau.models._image_ref import image_reference_problem
from bacalhau.models._job import (
    JOB_TYPES,
    VERIFICATION_META_KEY,
    VERIFICATION_MODES,
    WASM_DETERMINISTIC_PARAM,
    Job,
    ReschedulePolicy,
    Task,
    forwarded_env_name,
)
from bacalhau.models._module_paths import default_module_targets, module_mount
from bacalhau.models._modules import entry_module_url, referenced_module_digest
from bacalhau.models._ports import Fail, is_domain_entry, validate_ports
from bacalhau.models._runnable import check_runnable, nul_in
from bacalhau.models._selector import is_integer_label
from bacalhau.models._task_config import NetworkType
from bacalhau.models._task_io import validate_task_io

RESERVED_META_PREFIX = "bacalhau.org/"
_OPERATORS = {"=", "==", "!=", "in", "notin", "exists", "!", "gt", "lt"}

#: Deepest nesting a job document may have (engine params included). Real specs stay under
#: ten levels; the limit keeps every recursive encoder downstream far from Python's own.
MAX_DOCUMENT_DEPTH = 64
#: Largest value of the int64 fields of the wire protocol.
MAX_INT64 = 2**63 - 1
#: Longest timeout, in seconds: what Go's ``time.Duration`` (int64 nanoseconds) can hold.
MAX_TIMEOUT_SECONDS = MAX_INT64 // 1_000_000_000
#: Magnitude limit of any integer anywhere in a document (JSON numbers end up as float64 or
#: int64 on every other edge).
_MAX_ANY_INT = 2**64
_SURROGATE = re.compile("[\ud800-\udfff]")


def printable_key(key: object) -> str:
    """A map key as it may appear in a field path: lone surrogates escaped, so that an error
    naming the key can itself be encoded; the empty key as ``""`` (else the path would name
    its parent, or nothing at all)."""
    text = str(key)
    return text.encode("utf-8", "backslashreplace").decode("utf-8") if text else '""'


def _join(path: str, key: object) -> str:
    key = printable_key(key)
    return f"{path}.{key}" if path else key


#: Where a value sits in a document being checked: the document's own path, or (the parent's
#: place, the key or list index, whether it is an index). Rendered as a path only to name
#: a fault: building every path up front cost most of a submission's check.
_Place = str | tuple["_Place", object, bool]


def _render(place: _Place) -> str:
    steps: list[tuple[object, bool]] = []
    while isinstance(place, tuple):
        place, key, is_index = place
        steps.append((key, is_index))
    path = place
    for key, is_index in reversed(steps):
        path = f"{path}[{key}]" if is_index else _join(path, key)
    return path


def check_document(data: object, *, path: str = "") -> None:
    """Refuse what no part of a job may hold, wherever it is (unknown keys and plugin params
    included): invalid Unicode (lone UTF-16 surrogates, which cannot be encoded as UTF-8),
    NaN and infinities, integers beyond 64 bits and nesting deeper than
    :data:`MAX_DOCUMENT_DEPTH`. Iterative, so a hostile document cannot exhaust the stack.
    """
    stack: list[tuple[object, _Place, int]] = [(data, path, 0)]
    while stack:
        value, place, depth = stack.pop()
        kind = type(value)
        # The JSON types by exact type first (isinstance against the Mapping ABC is slow);
        # subclasses and other containers take the general branches below.
        if kind is str:
            if not value.isascii():  # type: ignore[attr-defined]
                _check_text(value, place)  # type: ignore[arg-type]
        elif kind is dict or kind is list:
            if depth >= MAX_DOCUMENT_DEPTH:
                _too_deep(place)
            if kind is dict:
                for key, item in value.items():  # type: ignore[attr-defined]
                    if type(key) is str and not key.isascii():
                        _check_text(key, (place, key, False), what="key")
                    stack.append((item, (place, key, False), depth + 1))
            else:
                for i, item in enumerate(value):  # type: ignore[arg-type]
                    stack.append((item, (place, i, True), depth + 1))
        elif value is None or kind is bool:
            continue
        elif isinstance(value, str):
            _check_text(value, place)
        elif isinstance(value, int):
            if not -_MAX_ANY_INT < value < _MAX_ANY_INT:
                where = _render(place)
                raise InvalidJobSpec(f"{where or 'value'} is out of range", field=where)
        elif isinstance(value, float):
            if not math.isfinite(value):
                where = _render(place)
                raise InvalidJobSpec(
                    f"{where or 'value'} must be a finite number, got {value}", field=where
                )
        elif isinstance(value, (Mapping, list, tuple)):
            if depth >= MAX_DOCUMENT_DEPTH:
                _too_deep(place)
            if isinstance(value, Mapping):
                for key, item in value.items():
                    if isinstance(key, str):
                        _check_text(key, (place, key, False), what="key")
                    stack.append((item, (place, key, False), depth + 1))
            else:
                for i, item in enumerate(value):
                    stack.append((item, (place, i, True), depth + 1))


def _too_deep(place: _Place) -> None:
    where = _render(place)
    raise InvalidJobSpec(
        f"{where or 'the document'} is nested more than {MAX_DOCUMENT_DEPTH} levels",
        field=where,
        hint="a job spec is a handful of levels deep; flatten the named value",
    )


def _check_text(text: str, place: _Place, *, what: str = "value") -> None:
    # ``isascii()`` reads a flag CPython keeps on every string (no scan), and a surrogate is
    # never ASCII: the regex runs only on text that may hold one (an inline module's 39 KB
    # data: URL is ASCII and was scanned twice per submit).
    if not text.isascii() and _SURROGATE.search(text):
        where = _render(place)
        raise InvalidJobSpec(
            f"{where or 'a string'}: the {what} is not valid Unicode (it holds a lone UTF-16 "
            "surrogate)",
            field=where,
            hint="send text as valid UTF-8; escape binary data (base64)",
        )


def _job_texts(job: Job) -> Iterator[tuple[str, object]]:
    """Every free-form part of a job with its wire path, without copying (plugin params can be
    large and deep)."""
    yield "ID", job.id
    yield "Name", job.name
    yield "Namespace", job.namespace
    yield "Type", job.type
    yield "Meta", job.meta
    yield "Labels", job.labels
    yield "State.Message", job.state_message
    yield "State.Details", job.state_details
    for i, c in enumerate(job.constraints):
        yield f"Constraints[{i}]", {"Key": c.key, "Operator": c.operator, "Values": c.values}
    for i, t in enumerate(job.tasks):
        p = f"Tasks[{i}]"
        yield f"{p}.Name", t.name
        yield f"{p}.Engine", {"Type": t.engine.type, "Params": t.engine.params}
        yield f"{p}.Publisher", {"Type": t.publisher.type, "Params": t.publisher.params}
        yield f"{p}.Env", t.env
        yield f"{p}.Meta", t.meta
        for n, s in enumerate(t.input_sources):
            yield (
                f"{p}.InputSources[{n}]",
                {
                    "Source": {"Type": s.source.type, "Params": s.source.params},
                    "Alias": s.alias,
                    "Target": s.target,
                },
            )
        for n, r in enumerate(t.result_paths):
            yield f"{p}.ResultPaths[{n}]", {"Name": r.name, "Path": r.path}
        yield f"{p}.Resources", t.resources.to_dict()
        yield f"{p}.Network.Domains", t.network.domains
        yield f"{p}.Network.Ports", [port.to_dict() for port in t.network.ports]


def _check_range(value: int, low: int, high: int, field: str) -> None:
    if not low <= value <= high:
        raise InvalidJobSpec(f"{field} must be between {low} and {high}, got {value}", field=field)


def normalise_job(job: Job) -> list[str]:
    """Fill defaults and sanitise a job in place; returns the warnings to show the user."""
    warnings: list[str] = []
    job.type = job.type.strip().lower()
    if not job.namespace:
        job.namespace = "default"
    if job.type in ("daemon", "ops") and job.count == 0:
        job.count = 1
    if job.state.value != 0:
        warnings.append("job state is ignored when submitting a job")
    if job.revision:
        warnings.append("job revision is ignored when submitting a job")
    if job.version:
        warnings.append("job version is ignored when submitting a job")
    if job.create_time:
        warnings.append("job create time is ignored when submitting a job")
    if job.modify_time:
        warnings.append("job modify time is ignored when submitting a job")
    if job.id and job.type in ("batch", "ops"):
        warnings.append(f"job ID is ignored when submitting a {job.type} job")
    if len(job.tasks) > 1:
        warnings.append("only one task is supported per job")
        job.tasks = job.tasks[:1]
    for key in list(job.meta):
        if key.startswith(RESERVED_META_PREFIX):
            warnings.append(f'job meta key "{key}" is reserved and will be ignored')
            del job.meta[key]
    for task in job.tasks:
        task.resources.normalise()
        task.engine.type = task.engine.type.strip()
        task.publisher.type = task.publisher.type.strip()
        _null_items_to_empty(task.engine.params)
        if task.engine.type.lower() == "wasm":
            default_module_targets(task.engine.params)
    _normalise_verification(job)
    return warnings


#: Engine params that are lists of strings, for the docker and wasm engines.
_STRING_LIST_PARAMS = ("Entrypoint", "Parameters", "EnvironmentVariables")


def _null_items_to_empty(params: dict[str, Any]) -> None:
    """A ``null`` item of a list of strings is the empty string, as Go decodes it (a
    template that renders an unset optional variable as ``- `` makes one)."""
    for key, value in params.items():
        if (
            key.lower() in _LOWER_STRING_LIST_PARAMS
            and isinstance(value, list)
            and any(item is None for item in value)
        ):
            params[key] = ["" if item is None else item for item in value]


_LOWER_STRING_LIST_PARAMS = frozenset(k.lower() for k in _STRING_LIST_PARAMS)


#: Replicas a verified job runs at least: with fewer, no result can be compared.
MIN_VERIFIED_REPLICAS = 2


def _normalise_verification(job: Job) -> None:
    """A verified job runs ``Count`` replicas (at least two), tells compute nodes it is
    verified (system meta), and a WASM one runs deterministically unless it said otherwise
    (which :func:`validate_job` refuses)."""
    job.verification.mode = job.verification.mode.strip().lower()
    if job.verification.is_empty():
        return
    job.meta[VERIFICATION_META_KEY] = job.verification.mode
    if job.type == "batch" and job.count < MIN_VERIFIED_REPLICAS:
        job.count = MIN_VERIFIED_REPLICAS
    for task in job.tasks:
        if task.engine.type.lower() == "wasm" and task.runs_deterministically(
            verification_requested=True
        ):
            task.engine.params[WASM_DETERMINISTIC_PARAM] = True


def validate_verification(job: Job) -> None:
    """Check a job's ``Verification`` block against the rest of the job, naming the field."""
    mode = job.verification.mode
    if not mode:
        return
    if mode not in VERIFICATION_MODES:
        raise InvalidJobSpec(
            f"unknown verification mode {mode!r}",
            field="Verification.Mode",
            hint="use one of: " + ", ".join(VERIFICATION_MODES),
        )
    if job.type != "batch":
        raise InvalidJobSpec(
            f"only batch jobs can be verified, not {job.type} jobs",
            field="Verification",
            hint="submit the job as Type batch, or drop Verification",
        )
    if job.count < MIN_VERIFIED_REPLICAS:
        raise InvalidJobSpec(
            f"a verified job runs at least {MIN_VERIFIED_REPLICAS} replicas, got Count {job.count}",
            field="Count",
        )
    for i, task in enumerate(job.tasks):
        if task.engine.type.lower() == "wasm" and not task.runs_deterministically(
            verification_requested=True
        ):
            raise InvalidJobSpec(
                "a verified WASM job must run deterministically",
                field=f"Tasks[{i}].Engine.Params.{WASM_DETERMINISTIC_PARAM}",
                hint="drop Deterministic: false (verification compares the bytes every "
                "replica wrote)",
            )


def validate_job(job: Job) -> None:
    """Raise :class:`InvalidJobSpec` for the first problem found, naming its field."""
    if not job.type:
        raise InvalidJobSpec("missing job type", field="Type", hint="set Type to batch or ops")
    if job.type not in JOB_TYPES:
        raise InvalidJobSpec(
            f'invalid job type: "{job.type}"',
            field="Type",
            hint="use one of: " + ", ".join(JOB_TYPES),
        )
    for where, value in _job_texts(job):
        check_document(value, path=where)
    for name, text in (("Name", job.name), ("Namespace", job.namespace)):
        if nul_in(text):
            # Every execution gets the job's name and namespace in its environment.
            raise InvalidJobSpec(
                f"{name} holds a NUL character", field=name, hint="remove the NUL character"
            )
    if job.count < 0:
        raise InvalidJobSpec("job count must be >= 0", field="Count")
    _check_range(job.count, 0, MAX_INT64, "Count")
    if job.count > 1 and job.type in ("daemon", "ops"):
        raise InvalidJobSpec(
            f"{job.type} jobs cannot specify count > 1 as they run on all matching nodes",
            field="Count",
            hint="drop Count (constraints choose the nodes), or use a batch or service job "
            "for N copies",
        )

    if job.type in ("batch", "service") and job.count == 0:
        # Bacalhau (v1.7+) reads an omitted Count as 1 for both; a job file that says 0
        # outright is refused where it is parsed (``_jobfile``), as Bacalhau refuses it.
        job.count = 1
    if job.priority < 0:
        raise InvalidJobSpec("job priority must be >= 0", field="Priority")
    _check_range(job.priority, 0, MAX_INT64, "Priority")
    if not job.tasks:
        raise InvalidJobSpec(
            "missing job tasks", field="Tasks", hint="a job needs exactly one task"
        )
    for i, req in enumerate(job.constraints):
        path = f"Constraints[{i}]"
        op = req.operator.strip()
        if not req.key:
            raise InvalidJobSpec(f"constraint {i} validation failed: missing key", field=path)
        if op not in _OPERATORS:
            raise InvalidJobSpec(
                f"constraint {i} validation failed: unknown operator {req.operator!r}",
                field=f"{path}.Operator",
            )
        if op in ("in", "notin") and not req.values:
            raise InvalidJobSpec(
                f"constraint {i} validation failed: operator {op} needs values",
                field=f"{path}.Values",
            )
        if op in ("exists", "!") and req.values:
            raise InvalidJobSpec(
                f"constraint {i} validation failed: operator {op} takes no values",
                field=f"{path}.Values",
            )
        if op in ("=", "==", "!=", "gt", "lt") and len(req.values) != 1:
            raise InvalidJobSpec(
                f"constraint {i} validation failed: operator {op} needs exactly one value",
                field=f"{path}.Values",
            )
        if op in ("gt", "lt") and not is_integer_label(req.values[0]):
            # As Kubernetes: Gt and Lt compare integers; no node label could ever match.
            raise InvalidJobSpec(
                f"constraint {i} validation failed: operator {op} needs an integer, got "
                f"{req.values[0]!r}",
                field=f"{path}.Values",
            )
    for i, task in enumerate(job.tasks):
        validate_task(task, f"Tasks[{i}]")
    if referenced_module_digest(entry_module_url(job)) is not None:
        # The requester's own wire form: a job naming another job's module by hash would run
        # a module its author never sent.
        raise InvalidJobSpec(
            "an inline entry module must be a data: URL, not a module reference",
            field="Tasks[0].Engine.Params.EntryModule.Source.Params.URL",
            hint="send the module itself (bacalhau wasm run does)",
        )
    validate_reschedule(job.reschedule)
    validate_verification(job)


#: Most attempts a retry policy may ask for: more is a mistake, not a policy.
MAX_RESCHEDULE_ATTEMPTS = 1000


def validate_reschedule(policy: ReschedulePolicy) -> None:
    """Check a job's ``Reschedule`` block, naming the field at fault."""
    for name, value in (
        ("Attempts", policy.attempts),
        ("AttemptsPerNode", policy.attempts_per_node),
    ):
        if not 0 <= value <= MAX_RESCHEDULE_ATTEMPTS:
            raise InvalidJobSpec(
                f"Reschedule.{name} must be between 0 and {MAX_RESCHEDULE_ATTEMPTS}, got {value}",
                field=f"Reschedule.{name}",
                hint="0 means the operator's default",
            )
    delay = policy.delay_seconds()
    max_delay = policy.max_delay_seconds()
    for name, seconds in (("Delay", delay), ("MaxDelay", max_delay)):
        if seconds is not None and seconds > MAX_TIMEOUT_SECONDS:
            raise InvalidJobSpec(
                f"Reschedule.{name} must be at most {MAX_TIMEOUT_SECONDS} seconds",
                field=f"Reschedule.{name}",
            )
    if delay is not None and max_delay is not None and max_delay < delay:
        raise InvalidJobSpec(
            f"Reschedule.MaxDelay ({policy.max_delay}) is shorter than Delay ({policy.delay})",
            field="Reschedule.MaxDelay",
        )


#: An environment variable name (also what ``env:NAME`` may forward).
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Variables every execution gets from the compute node; a job may not set them itself.
RESERVED_ENV_PREFIX = "BACALHAU_"


def _validate_env(task: Task, fail: Fail) -> None:
    """``Task.Env``: valid names, none reserved, and ``env:NAME`` references well formed
    (whether a node forwards ``NAME`` is its operator's decision, made at bid time)."""
    for key, value in task.env.items():
        sub = f"Env.{printable_key(key)}"
        if not _ENV_NAME.fullmatch(key):
            raise fail(f"{key!r} is not a valid environment variable name", sub, None)
        if key.upper().startswith(RESERVED_ENV_PREFIX):
            raise fail(
                f"{key} is reserved: every execution gets the {RESERVED_ENV_PREFIX}* variables",
                sub,
                "choose another name",
            )
        name = forwarded_env_name(value)
        if name is not None and not _ENV_NAME.fullmatch(name):
            raise fail(
                f"{value!r} does not name a host variable",
                sub,
                'write "env:NAME" with NAME a variable of the compute node\'s environment',
            )


def _validate_module_names(task: Task, fail: Fail) -> None:
    """The v1.7+ WASM shape: ``EntryModule`` and each of ``ImportModules`` may name a module
    by the ``Alias`` of one of the task's input sources, or by its path among their
    ``Target``s (see ``_module_paths``)."""
    targets = [i.target for i in task.input_sources]
    aliases = {i.alias for i in task.input_sources if i.alias}
    refs: list[tuple[object, str]] = [
        (param(task.engine.params, "EntryModule"), "Engine.Params.EntryModule")
    ]
    imports = param(task.engine.params, "ImportModules")
    if imports is not None and not isinstance(imports, list):
        raise fail("ImportModules must be a list", "Engine.Params.ImportModules", None)
    refs += [(m, f"Engine.Params.ImportModules[{i}]") for i, m in enumerate(imports or [])]
    for ref, where in refs:
        if isinstance(ref, str) and ref not in aliases and module_mount(ref, targets) is None:
            raise fail(
                f"{ref!r} is not the Alias of any of the task's InputSources, nor a path "
                "under one's Target",
                where,
                "add an InputSources entry (inline, ipfs, urlDownload or localDirectory) "
                "with that Target holding the module",
            )
        if not isinstance(ref, (str, dict)) or not ref:
            raise fail("a module is an input source name or an InputSource", where, None)


#: The least memory the Docker engine lets a container have.
DOCKER_MIN_MEMORY = 6 * 1024 * 1024


def validate_task(task: Task, path: str) -> None:
    def fail(msg: str, sub: str, hint: str | None = None) -> InvalidJobSpec:
        return InvalidJobSpec(
            f"task {task.name or '<unnamed>'} validation failed: {msg}",
            field=f"{path}.{sub}",
            hint=hint,
        )

    if not task.name:
        raise fail("missing task name", "Name")
    if nul_in(task.name):
        # The task's name names its result folders and reaches the execution's environment.
        raise fail("task name cannot contain null characters", "Name", "remove the NUL character")
    if not task.engine.type:
        raise fail("missing spec type", "Engine.Type", "set Engine.Type to docker or wasm")
    engine = task.engine.type.lower()
    if engine == "docker":
        image = param(task.engine.params, "Image")
        if not isinstance(image, str) or not image.strip():
            raise fail("docker engine needs an image", "Engine.Params.Image")
        problem = image_reference_problem(image.strip())
        if problem is not None:
            raise fail(
                f"invalid image reference {image!r}: {problem}",
                "Engine.Params.Image",
                "name an image as the Docker CLI does: [registry[:port]/]name[:tag][@digest], "
                "e.g. ubuntu:24.04",
            )
        for key in ("Entrypoint", "Parameters", "EnvironmentVariables"):
            value = param(task.engine.params, key)
            if value is not None and (
                not isinstance(value, list) or not all(isinstance(v, str) for v in value)
            ):
                raise fail(f"{key} must be a list of strings", f"Engine.Params.{key}")
        workdir = param(task.engine.params, "WorkingDirectory")
        if workdir and (not isinstance(workdir, str) or not workdir.startswith("/")):
            raise fail(
                "WorkingDirectory must be an absolute path", "Engine.Params.WorkingDirectory"
            )
    elif engine == "wasm":
        module = param(task.engine.params, "EntryModule")
        if not module or not isinstance(module, (dict, str)):
            raise fail(
                "wasm engine needs an entry module",
                "Engine.Params.EntryModule",
                "pass a .wasm file to `bacalhau wasm run`",
            )
        _validate_module_names(task, fail)
        for key in ("Parameters",):
            value = param(task.engine.params, key)
            if value is not None and (
                not isinstance(value, list) or not all(isinstance(v, str) for v in value)
            ):
                raise fail(f"{key} must be a list of strings", f"Engine.Params.{key}")
        env = param(task.engine.params, "EnvironmentVariables")
        if env is not None and not isinstance(env, dict):
            raise fail("EnvironmentVariables must be a map", "Engine.Params.EnvironmentVariables")
    _validate_env(task, fail)
    t = task.timeouts
    for name, value in (
        ("ExecutionTimeout", t.execution_timeout),
        ("QueueTimeout", t.queue_timeout),
        ("TotalTimeout", t.total_timeout),
    ):
        if value < 0:
            raise fail(f"{name} must be >= 0", f"Timeouts.{name}")
        if value > MAX_TIMEOUT_SECONDS:
            raise fail(
                f"{name} must be at most {MAX_TIMEOUT_SECONDS} seconds, got {value}",
                f"Timeouts.{name}",
            )
    resources = task.resources.parse(path=f"{path}.Resources")
    if engine == "docker" and 0 < resources.memory < DOCKER_MIN_MEMORY:
        # The engine refuses such a container on every node ("Minimum memory limit allowed
        # is 6MB").
        raise fail(
            f"{task.resources.memory!r} is less memory than Docker allows a container (6MB)",
            "Resources.Memory",
            "ask for 6MB or more",
        )
    if task.network.type == NetworkType.HTTP and not task.network.domains:
        raise fail("HTTP networking needs at least one domain", "Network.Domains")
    if task.network.domains and task.network.type != NetworkType.HTTP:
        # Only the HTTP gateway reads them: kept on another network, they would look like a
        # restriction that nothing applies.
        raise fail(
            f"domains can only be set for HTTP network mode (this task's is "
            f"{task.network.type.value})",
            "Network.Domains",
            "set Network.Type: HTTP (--network http) to reach only those domains, or drop "
            "Network.Domains (--domain)",
        )
    for i, domain in enumerate(task.network.domains):
        if not is_domain_entry(domain):
            # The gateway would match nothing with it: every request of the job refused.
            raise fail(
                f"{domain!r} is not a domain name or an IP address",
                f"Network.Domains[{i}]",
                "write example.com, .example.com (it and every name below it) or an address",
            )
    if task.network.ports and engine == "wasm":
        # Bacalhau allocates them and the module can never listen on them (WASI gives it
        # no server sockets): refused here rather than held for nothing.
        raise fail(
            "the wasm engine cannot listen on ports",
            "Network.Ports",
            "drop Network.Ports, or run the server in a docker task",
        )
    validate_ports(task.network.ports, task.network.type, fail)
    validate_task_io(task, fail)
    check_runnable(task, engine, fail)
