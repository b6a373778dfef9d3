"""Job files: YAML or JSON, with or without a top-level ``Job`` wrapper."""

from __future__ import annotations

import json
from typing import Any

import yaml

from bacalhau.errors import InvalidJobSpec
from bacalhau.models._job import Job


def parse_job_document(text: str) -> Job:
    """Parse a job spec written in YAML or JSON (JSON is YAML, but its errors read better)."""
    stripped = text.lstrip()
    data: Any
    try:
        data = json.loads(text) if stripped.startswith("{") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InvalidJobSpec(
            f"the job file is not valid YAML or JSON: {exc}",
            hint="check indentation and quoting",
        ) from None
    if not isinstance(data, dict):
        raise InvalidJobSpec("the job file must contain an object")
    if len(data) == 1 and str(next(iter(data))).lower() == "job":
        data = next(iter(data.values()))
    return Job.from_dict(data)
