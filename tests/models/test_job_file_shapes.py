"""A job file that holds no job, or a value that is not an object, is refused saying which,
with a hint on how to write one."""

from __future__ import annotations

import pytest

from bacalhau.errors import InvalidJobSpec
from bacalhau.models._jobfile import parse_job_document


@pytest.mark.parametrize("text", ["", "   \n", "---\n", "# only a comment\n", "null"])
def test_an_empty_job_file_says_it_is_empty(text: str) -> None:
    with pytest.raises(InvalidJobSpec) as err:
        parse_job_document(text)
    assert err.value.message == "the job file is empty"
    assert "--dry-run" in err.value.hint


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("[1, 2]", "list"),
        ("- a\n- b\n", "list"),
        ("hello", "string"),
        ("42", "number"),
        ("true", "boolean"),
    ],
)
def test_a_job_file_holding_no_object_names_what_it_holds(text: str, kind: str) -> None:
    with pytest.raises(InvalidJobSpec) as err:
        parse_job_document(text)
    assert err.value.message.endswith(f"not a {kind}")
    assert "top level" in err.value.hint
