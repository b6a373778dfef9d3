"""A WASM module named by a path among the task's inputs (Bacalhau's v1.7+ name form), and
the data: URLs inline modules and inputs travel in."""

from __future__ import annotations

import base64

import pytest

from bacalhau.errors import InvalidJobSpec
from bacalhau.models import Job, decode_data_url, module_mount, validate_job

TARGETS = ["/wasm.main", "/inputs", "/inputs/lib", "/data/"]


@pytest.mark.parametrize(
    ("ref", "found"),
    [
        ("wasm.main", ("/wasm.main", "")),  # Bacalhau's testdata/jobs/wasm.yaml
        ("/wasm.main", ("/wasm.main", "")),
        ("//wasm.main/", ("/wasm.main", "")),
        ("inputs/app.wasm", ("/inputs", "app.wasm")),
        ("/inputs/lib/a.wasm", ("/inputs/lib", "a.wasm")),  # the deeper mount wins
        ("/inputs/../wasm.main", ("/wasm.main", "")),
        ("data", ("/data/", "")),
        ("wasm.mainx", None),
        ("../wasm.main", None),
        ("a/../../wasm.main", None),
        ("/", None),
        (".", None),
        ("", None),
    ],
)
def test_a_module_path_resolves_to_the_input_holding_it(
    ref: str, found: tuple[str, str] | None
) -> None:
    assert module_mount(ref, TARGETS) == found


def test_an_input_mounted_at_the_root_holds_every_path() -> None:
    assert module_mount("x.wasm", ["/"]) == ("/", "x.wasm")
    assert module_mount("a/x.wasm", ["/", "/a"]) == ("/a", "x.wasm")


def _wasm_job(entry: str, target: str) -> Job:
    return Job.from_dict(
        {
            "Type": "batch",
            "Tasks": [
                {
                    "Name": "main",
                    "Engine": {"Type": "wasm", "Params": {"EntryModule": entry}},
                    "InputSources": [
                        {
                            "Target": target,
                            "Source": {"Type": "inline", "Params": {"URL": "data:,x"}},
                        }
                    ],
                }
            ],
        }
    )


@pytest.mark.parametrize(
    ("entry", "target"),
    [("wasm.main", "/wasm.main"), ("/wasm.main", "/wasm.main"), ("inputs/a.wasm", "/inputs")],
)
def test_the_requester_accepts_a_module_named_by_its_path(entry: str, target: str) -> None:
    validate_job(_wasm_job(entry, target))


@pytest.mark.parametrize("entry", ["other.wasm", "../wasm.main", "/"])
def test_a_module_path_no_input_holds_is_refused_naming_the_field(entry: str) -> None:
    with pytest.raises(InvalidJobSpec) as err:
        validate_job(_wasm_job(entry, "/wasm.main"))
    assert err.value.field == "Tasks[0].Engine.Params.EntryModule"


def test_base64_broken_over_lines_decodes_as_bacalhau_reads_it() -> None:
    payload = bytes(range(256)) * 3
    encoded = base64.b64encode(payload).decode()
    url = "data:application/wasm;base64," + encoded[:100] + "\n" + encoded[100:]
    assert decode_data_url(url, field="URL") == payload
    assert decode_data_url("DATA:;base64," + encoded, field="URL") == payload
    assert decode_data_url("data:,a%20b", field="URL") == b"a b"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("data:;base64,@@@@", "not valid base64"),
        ("data:;base64", "no ','"),
        ("http://example.com/x.wasm", "must be a data: URL"),
    ],
)
def test_a_malformed_data_url_is_refused_naming_the_field(url: str, message: str) -> None:
    with pytest.raises(InvalidJobSpec, match=message) as err:
        decode_data_url(url, field="Source.Params.URL")
    assert err.value.field == "Source.Params.URL"
