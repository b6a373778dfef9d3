"""Docker image references, checked at submit as the Docker engine reads them.

The grammar is the distribution project's (``reference.go``):
``[domain[:port]/]path-component[/path-component...][:tag][@digest]``. The first component
is a registry's domain only when it holds a ``.`` or ``:``, is ``localhost`` or has an upper
case letter (the engine's own rule, so ``local/busybox`` is a path on Docker Hub); path
components are lower case, and the name is at most 255 characters.
"""

from __future__ import annotations

import re

__all__ = ["image_reference_problem"]

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH = re.compile(rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*(?:/{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*)*")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
)
_TAG = re.compile(r"\w[\w.-]{0,127}", re.ASCII)
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
#: The longest name (domain and path) the engine takes.
MAX_NAME = 255


def image_reference_problem(reference: str) -> str | None:
    """What is wrong with ``reference`` as a Docker image reference; None when nothing."""
    rest, at, digest = reference.partition("@")
    if at and "@" in digest:
        return "it holds more than one @"
    if at and not _DIGEST.fullmatch(digest):
        return f"{digest!r} is not a digest (algorithm:hex, e.g. sha256:<64 hex digits>)"
    name, tag = rest, ""
    slash, colon = rest.rfind("/"), rest.rfind(":")
    if colon > slash:
        name, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.fullmatch(tag):
            return (
                f"{tag!r} is not a tag (letters, digits, _, . and -, at most 128, not "
                "starting with . or -)"
            )
    if not name:
        return "it names no image"
    if len(name) > MAX_NAME:
        return f"the name is longer than {MAX_NAME} characters"
    first, sep, remainder = name.partition("/")
    if sep and (any(c in first for c in ".:") or first == "localhost" or first.lower() != first):
        if not _DOMAIN.fullmatch(first):
            return f"{first!r} is not a registry host (with an optional :port)"
        path = remainder
    else:
        path = name
    if not _PATH.fullmatch(path):
        return (
            f"{path!r} is not a repository path: lower-case letters and digits, separated "
            "by single . or _, a double _ or dashes, in components joined by /"
        )
    return None
