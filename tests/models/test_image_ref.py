"""Docker image references are checked at submit with the engine's own grammar: what it
takes passes, what it would refuse at every node's bid is a 400 naming the field."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bacalhau.models._image_ref import MAX_NAME, image_reference_problem

HEX = "0123456789abcdef" * 4


@pytest.mark.parametrize(
    "reference",
    [
        "ubuntu",
        "ubuntu:24.04",
        "library/ubuntu:latest",
        "docker.io/library/ubuntu",
        "ghcr.io/org/img:v1.2.3",
        "localhost/x",
        "localhost:5000/x",
        "127.0.0.1:5123/pulled-ab:1.0",
        "[::1]:5000/img",
        "local/busybox:1.37",
        f"busybox@sha256:{HEX}",
        f"busybox:1.37@sha256:{HEX}",
        "my_org/my-img__x:Tag_1",
        "a---b",
        "Registry.Example.com/img",
        "UPPER/case",  # an upper-case first component is a registry host, as the engine reads it
        "a" * MAX_NAME,
    ],
)
def test_what_the_engine_takes_passes(reference: str) -> None:
    assert image_reference_problem(reference) is None


@pytest.mark.parametrize(
    ("reference", "says"),
    [
        ("Ubuntu", "is not a repository path"),
        ("ubuntu:", "is not a tag"),
        ("ubuntu:.x", "is not a tag"),
        ("ubuntu:" + "x" * 129, "is not a tag"),
        (":tag", "names no image"),
        ("", "names no image"),
        ("a b", "is not a repository path"),
        ("ubuntu:tag:extra", "is not a repository path"),
        ("a//b", "is not a repository path"),
        ("a/", "is not a repository path"),
        ("a..b", "is not a repository path"),
        ("a___c", "is not a repository path"),
        ("a/b/../c", "is not a repository path"),
        ("foo?x=1", "is not a repository path"),
        ("127.0.0.1:1/UPPER/case:1.0", "is not a repository path"),
        ("bad_host.com:port/x", "is not a registry host"),
        ("img@sha256:abc", "is not a digest"),
        ("x@y@z", "more than one @"),
        ("a" * (MAX_NAME + 1), "longer than 255"),
        ("ubuntu:tägg", "is not a tag"),
    ],
)
def test_what_the_engine_refuses_is_named(reference: str, says: str) -> None:
    problem = image_reference_problem(reference)
    assert problem is not None and says in problem


@given(st.text(max_size=300))
def test_any_text_gets_an_answer(text: str) -> None:
    # Bounded input, any characters: an answer, never an exception.
    problem = image_reference_problem(text)
    assert problem is None or isinstance(problem, str)
