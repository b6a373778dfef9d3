"""A module reference (``ni:///sha-256;...``) is the requester's wire form for an inline
module it holds; a submitted job must carry the module itself."""

from __future__ import annotations

import hashlib

import pytest

from bacalhau.errors import InvalidJobSpec
from bacalhau.models import module_digest, module_reference, validate_job
from tests.compute.wasm_jobs import module_url, wasm_job


def test_a_submitted_job_may_not_name_its_module_by_reference() -> None:
    url = module_url("mine")
    validate_job(wasm_job(url))

    with pytest.raises(InvalidJobSpec) as refused:
        validate_job(wasm_job(module_reference(module_digest(url))))
    assert refused.value.field == "Tasks[0].Engine.Params.EntryModule.Source.Params.URL"
    with pytest.raises(InvalidJobSpec):
        validate_job(wasm_job("ni:///sha-256;not-a-digest"))


def test_a_modules_digest_is_its_own_whatever_was_hashed_before() -> None:
    url = module_url("remembered")
    # Same length, one character apart: a module seen before never answers for another.
    twin = url[:-1] + ("A" if url[-1] != "A" else "B")
    for _ in range(2):
        for u in (url, twin, "".join(url)):  # an equal copy answers as the original
            assert module_digest(u) == hashlib.sha256(u.encode()).hexdigest()
