"""Job files: YAML or JSON, with or without a top-level ``Job`` wrapper."""

from __future__ import annotations

import json
from typing import Any

import yaml

from bacalhau._yaml import YamlTooLarge, load_yaml
from bacalhau.errors import InvalidJobSpec
from bacalhau.models._job import Job

#: What a YAML or JSON value that is not an object is called in an error.
_KINDS = {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}


def parse_job_document(text: str) -> Job:
    """Parse a job spec written in YAML or JSON (JSON is YAML, but its errors read better)."""
    stripped = text.lstrip()
    data: Any
    try:
        data = json.loads(text) if stripped.startswith("{") else load_yaml(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InvalidJobSpec(
            f"the job file is not valid YAML or JSON: {exc}",
            hint=None if isinstance(exc, YamlTooLarge) else "check indentation and quoting",
        ) from None
    except RecursionError:  # (JSON: YAML's is a YAMLError from load_yaml)
        raise InvalidJobSpec(
            "the job file is nested too deeply to read",
            hint="a job spec is a handful of levels deep",
        ) from None
    if data is None:
        raise InvalidJobSpec(
            "the job file is empty",
            hint="write the job as YAML or JSON: Type, and Tasks with an Engine each "
            "(`bacalhau docker run --dry-run IMAGE` prints one to start from)",
        )
    if not isinstance(data, dict):
        raise InvalidJobSpec(
            f"the job file must contain an object (keys Type, Tasks, ...), not a "
            f"{_KINDS.get(type(data), type(data).__name__)}",
            hint="write the job's keys at the top level of the file, or under Job",
        )
    if len(data) == 1 and str(next(iter(data))).lower() == "job":
        data = next(iter(data.values()))
        if not isinstance(data, dict):
            raise InvalidJobSpec("the job file's Job must be an object", field="Job")
    check_job_file_keys(data)
    return Job.from_dict(data)


#: Top-level keys a job file may set (Bacalhau's, and our ``Reschedule`` and
#: ``Verification``), lower-cased.
_JOB_FILE_KEYS = frozenset(
    [
        "name",
        "namespace",
        "type",
        "priority",
        "count",
        "constraints",
        "meta",
        "labels",
        "tasks",
        "reschedule",
        "verification",
    ]
)
#: Keys the server sets: a job file holding one is refused (Bacalhau's ``validateRawJob``).
_SERVER_OWNED = {
    k.lower(): k for k in ("ID", "State", "Version", "Revision", "CreateTime", "ModifyTime")
}


def _is_unset(value: object) -> bool:
    """Whether a server-owned field says nothing (as in a ``--dry-run`` printout: ``ID: ''``,
    ``State: {StateType: Undefined}``, zero revision and times), so the file may be sent."""
    if isinstance(value, dict):
        return all(
            _is_unset(v) or (str(k).lower() == "statetype" and str(v).lower() == "undefined")
            for k, v in value.items()
        )
    return value in (None, "", 0)


def check_job_file_keys(data: dict[Any, Any]) -> None:
    """Refuse unknown top-level keys and the fields the server owns, naming the key (as
    Bacalhau does for job files; keys compare case-insensitively). A server-owned field
    that is empty or zero (a ``--dry-run`` printout sent back) says nothing and passes."""
    version = next((v for k, v in data.items() if str(k).lower() == "apiversion"), None)
    if str(version).lower().startswith("v1beta"):
        # The job format of Bacalhau up to v1.3 (APIVersion: V1beta1/V1beta2, Spec.Engine),
        # which v1.0-v1.3's `create` read and v1.4 stopped reading.
        raise InvalidJobSpec(
            f"this job file is in the format of Bacalhau v1.3 and earlier (APIVersion: "
            f"{str(version)[:40]}), which Bacalhau v1.4 and later, like this version, no "
            "longer read",
            field="APIVersion",
            hint="rewrite it in the v1 job format: Type, Count and Tasks (each with its "
            "Engine, Publisher, InputSources and ResultPaths); `bacalhau docker run --dry-run "
            "...` prints one to start from",
        )
    for key, value in data.items():
        low = str(key).lower()
        if low in _SERVER_OWNED and not _is_unset(value):
            raise InvalidJobSpec(
                f'field "{key}" is not allowed in a job file: the server sets it',
                field=str(key),
                hint=f"remove {_SERVER_OWNED[low]} from the job file",
            )
        if low not in _JOB_FILE_KEYS and low not in _SERVER_OWNED:
            raise InvalidJobSpec(
                f'unknown field "{key}" in the job file',
                field=str(key),
                hint="a job's top-level keys are Name, Namespace, Type, Priority, Count, "
                "Constraints, Meta, Labels, Tasks (and Reschedule, Verification)",
            )
    count = next((v for k, v in data.items() if str(k).lower() == "count"), None)
    job_type = str(next((v for k, v in data.items() if str(k).lower() == "type"), "")).lower()
    if count == 0 and job_type in ("batch", "service"):
        raise InvalidJobSpec(
            f"Count must be at least 1 for a {job_type} job, got 0",
            field="Count",
            hint="Count is how many partitions (batch) or replicas (service) run; "
            "leave it out for 1",
        )
