"""The checks of a task's data: its input sources, its result paths and its publisher (what
can be told from the spec, at submit, rather than when a node prepares or publishes)."""

from __future__ import annotations

import base64
import binascii
import posixpath
import re
from typing import Any
from urllib.parse import urlsplit

from bacalhau.errors import InvalidJobSpec
from bacalhau.models._codec import param
from bacalhau.models._job import Task
from bacalhau.models._ports import Fail
from bacalhau.models._s3_partition import PartitionSpec

__all__ = [
    "MANAGED_PUBLISHER",
    "RESULT_CID_METADATA",
    "S3_ENCODINGS",
    "looks_like_cid_path",
    "validate_task_io",
]

#: The text forms of CIDs: v0 (base58btc multihash), and v1 in the multibases IPFS prints
#: (base32 lower/upper, base58btc, base36, base16). Syntax only: models stay free of the
#: CID store, which decodes and checks the multihash when the input is prepared.
_CID_TEXT = re.compile(
    r"Qm[1-9A-HJ-NP-Za-km-z]{44}|b[a-z2-7]{20,}|B[A-Z2-7]{20,}|z[1-9A-HJ-NP-Za-km-z]{20,}"
    r"|k[0-9a-z]{20,}|f[0-9a-f]{20,}"
)


def looks_like_cid_path(text: str) -> bool:
    """Whether ``text`` is ``CID`` or ``CID/sub/path`` (optionally ``/ipfs/``-prefixed), with
    no ``.`` or ``..`` in the path."""
    value = text.strip().removeprefix("ipfs://").removeprefix("/ipfs/")
    head, _, path = value.partition("/")
    if not _CID_TEXT.fullmatch(head):
        return False
    return not any(part in (".", "..") for part in path.split("/"))


#: The publisher whose bucket is the requester's (Bacalhau v1.8): jobs name it with no
#: parameters, compute nodes upload through URLs the requester signs.
MANAGED_PUBLISHER = "s3managed"

#: How the s3 publisher writes results (Bacalhau v1.7's ``Encoding``): one gzip'd tar, or
#: each file as an object.
S3_ENCODINGS = ("gzip", "plain")

#: The S3 object metadata (``x-amz-meta-bacalhau-cid``) an archived result is stamped with:
#: the CID of what it held when published, so a client can tell it was overwritten since.
RESULT_CID_METADATA = "bacalhau-cid"

#: Parameters a publisher of the type needs (Bacalhau's publisher specs refuse them empty).
_PUBLISHER_NEEDS = {"s3": ("Bucket", "Key")}


#: Where the container runtime keeps its own file systems: nothing can be mounted there.
_RUNTIME_TREES = ("/proc", "/sys", "/dev")


def _is_sha256(value: object) -> bool:
    """A SHA-256 digest in base64 (S3's ChecksumSHA256) or in hex."""
    if not isinstance(value, str):
        return False
    text = value.strip()
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return True
    try:
        return len(base64.b64decode(text, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def _check_mount_point(path: str, field: str, fail: Fail) -> None:
    """Refuse a Docker mount point written with ``..``, or in the runtime's own trees: every
    node would fail the container's start (runc: "cannot be mounted because it is inside
    /proc")."""
    if ".." in path.split("/"):
        raise fail(
            f"{path!r} holds '..'",
            field,
            f"write the folder itself ({posixpath.normpath(path)})",
        )
    clean = posixpath.normpath(path)
    for tree in _RUNTIME_TREES:
        if clean == tree or clean.startswith(tree + "/"):
            raise fail(
                f"{path!r} is inside {tree}, which the container runtime provides",
                field,
                "use a folder of its own, such as /inputs or /outputs",
            )


def _input_mount_points(task: Task, docker: bool, fail: Fail) -> dict[str, int]:
    """The inputs' targets (normalised) by input index. A Docker input cannot be mounted
    inside another: inputs are read-only, so the runtime cannot make its mount point there
    (every node would fail the container's start)."""
    mounted: dict[str, int] = {}
    for i, inp in enumerate(task.input_sources):
        if inp.target.startswith("/"):
            mounted.setdefault(posixpath.normpath(inp.target), i)
    if docker:
        for target, i in mounted.items():
            for other, j in mounted.items():
                if i != j and target.startswith(other.rstrip("/") + "/"):
                    raise fail(
                        f"input target {target!r} is inside the target {other!r} of "
                        f"InputSources[{j}]",
                        f"InputSources[{i}].Target",
                        "inputs are mounted read-only, so no other can be mounted inside "
                        "one: give each a folder of its own, such as /inputs/a and /inputs/b",
                    )
    return mounted


def _check_result_against_inputs(
    norm: str, path: str, mounted: dict[str, int], docker: bool, field: str, fail: Fail
) -> None:
    """A result folder at an input's target is two mounts at one place (Docker: "Duplicate
    mount point"; WASM: two folders under one name); inside a Docker input, it cannot be
    made (the input is read-only)."""
    if norm in mounted:
        raise fail(
            f"result path {path!r} is also the target of InputSources[{mounted[norm]}]",
            field,
            "publish a folder of its own, such as /outputs, and read the input elsewhere",
        )
    if docker:
        for target, j in mounted.items():
            if norm.startswith(target.rstrip("/") + "/"):
                raise fail(
                    f"result path {path!r} is inside the target {target!r} of InputSources[{j}]",
                    field,
                    "inputs are mounted read-only: publish a folder outside them, such as /outputs",
                )


def validate_task_io(task: Task, fail: Fail) -> None:
    """Check ``task``'s input sources, result paths and publisher, raising what ``fail``
    builds (``fail(message, field under the task, hint)``) for the first fault."""
    aliases: set[str] = set()
    targets: set[str] = set()
    docker = task.engine.type.strip().lower() == "docker"
    for i, inp in enumerate(task.input_sources):
        sub = f"InputSources[{i}]"
        if not inp.source.type:
            raise fail("missing input source type", f"{sub}.Source.Type")
        if not inp.target:
            raise fail("missing artifact target", f"{sub}.Target")
        if inp.alias and inp.alias in aliases:
            raise fail(f"duplicate input alias {inp.alias!r}", f"{sub}.Alias")
        if inp.target in targets:
            raise fail(f"duplicate input target {inp.target!r}", f"{sub}.Target")
        below_root = inp.target.startswith("/") and posixpath.normpath(inp.target).strip("/")
        if docker and not below_root:
            # Docker refuses the mount ("mount path must be absolute", "destination can't
            # be '/'") on every node.
            raise fail(
                f"input target {inp.target!r} must be an absolute path below /"
                if not inp.target.startswith("/")
                else "an input cannot be mounted at the root folder /",
                f"{sub}.Target",
                "mount inputs at a folder of their own, such as /inputs",
            )
        if docker:
            _check_mount_point(inp.target, f"{sub}.Target", fail)
        if inp.source.type.lower() == "urldownload":
            url = param(inp.source.params, "URL")
            if not _is_http_url(url):
                raise fail(
                    f"{url!r} is not an http(s) URL",
                    f"{sub}.Source.Params.URL",
                    "write http://HOST/PATH or https://HOST/PATH",
                )
        if inp.source.type.lower() == "s3":
            bucket = param(inp.source.params, "Bucket")
            if not isinstance(bucket, str) or not bucket.strip():
                raise fail(
                    "an s3 input needs a Bucket",
                    f"{sub}.Source.Params.Bucket",
                    "read from s3://BUCKET/KEY (the key may be a prefix/ or end in *)",
                )
            try:
                PartitionSpec.from_spec(inp.source)
            except InvalidJobSpec as err:
                raise fail(err.message, f"{sub}.{err.field}", err.hint) from None
            checksum = param(inp.source.params, "ChecksumSHA256")
            if checksum not in (None, "") and not _is_sha256(checksum):
                # Every node would download the object, then fail it as not matching.
                raise fail(
                    f"{checksum!r} is not a SHA-256 checksum",
                    f"{sub}.Source.Params.ChecksumSHA256",
                    "give the object's SHA-256 in base64, as S3 reports it, or in hex",
                )
        if inp.source.type.lower() == "ipfs":
            cid = param(inp.source.params, "CID")
            if not isinstance(cid, str) or not looks_like_cid_path(cid):
                raise fail(
                    f"{cid!r} is not a CID" if cid else "an ipfs input needs a CID",
                    f"{sub}.Source.Params.CID",
                    "pass a CIDv0 (Qm...) or a CIDv1 (bafy..., bafk...), optionally "
                    "followed by /a/path inside it",
                )
        aliases.add(inp.alias)
        targets.add(inp.target)
    mounted = _input_mount_points(task, docker, fail)
    names: set[str] = set()
    paths: set[str] = set()
    for i, rp in enumerate(task.result_paths):
        sub = f"ResultPaths[{i}]"
        if not rp.name:
            raise fail("missing name", f"{sub}.Name")
        if not rp.path:
            raise fail("missing path", f"{sub}.Path")
        if not rp.path.startswith("/"):
            raise fail(f"result path {rp.path!r} must be absolute", f"{sub}.Path")
        if not posixpath.normpath(rp.path).strip("/"):
            raise fail(
                "a result path cannot be the root folder /",
                f"{sub}.Path",
                "publish a folder of its own, such as /outputs",
            )
        if docker:
            _check_mount_point(rp.path, f"{sub}.Path", fail)
        folder = rp.folder
        if (
            not folder
            or "/" in folder
            or "\\" in folder
            or folder in (".", "..")
            or (folder in ("stdout", "stderr", "exitCode"))
        ):
            raise fail(
                f"result name {rp.name!r} is not a valid folder name",
                f"{sub}.Name",
                "use a plain name; stdout, stderr and exitCode are reserved",
            )
        if folder in names:
            raise fail(f"duplicate result name {rp.name!r}", f"{sub}.Name")
        norm = posixpath.normpath(rp.path)
        if norm in paths:
            raise fail(f"duplicate result path {rp.path!r}", f"{sub}.Path")
        _check_result_against_inputs(norm, rp.path, mounted, docker, f"{sub}.Path", fail)
        names.add(folder)
        paths.add(norm)
    publisher = task.publisher.type.strip().lower()
    for key in _PUBLISHER_NEEDS.get(publisher, ()):
        value = param(task.publisher.params, key)
        if not isinstance(value, str) or not value.strip():
            raise fail(
                f"the {publisher} publisher needs {key}",
                f"Publisher.Params.{key}",
                "publish to s3://BUCKET/KEY (the key may hold {jobID}, {executionID}, ...)",
            )
    encoding = param(task.publisher.params, "Encoding") if publisher == "s3" else None
    if encoding not in (None, "") and (
        not isinstance(encoding, str) or encoding.strip().lower() not in S3_ENCODINGS
    ):
        raise fail(
            f"Encoding must be gzip or plain, not {encoding!r}",
            "Publisher.Params.Encoding",
            "gzip (the default) uploads one .tar.gz; plain uploads each file as an object",
        )


def _is_http_url(url: Any) -> bool:
    """An http or https URL naming a host, with no whitespace in it."""
    if not isinstance(url, str) or not url or any(c.isspace() for c in url):
        return False
    try:
        parts = urlsplit(url)
        return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:  # an unclosed IPv6 bracket, a port out of range
        return False
