"""boto3 clients built from the node's standard AWS configuration, and what S3 errors mean.

Credentials are never part of a job: boto3 finds them on the compute node the usual way
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE`` and the shared files, an
instance role). ``Endpoint`` and ``Region`` come from the spec; an S3-compatible server
(SeaweedFS, MinIO) is reached with path-style addressing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
import boto3.exceptions
import botocore.config
import botocore.exceptions

from bacalhau.errors import BacalhauError, ExecutionFailed

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client as S3Client
else:
    S3Client = Any

DEFAULT_REGION = "us-east-1"
_DENIED = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "403",
}
_MISSING = {"NoSuchKey", "404", "NotFound", "NoSuchVersion"}


def missing_aws_credentials() -> str | None:
    """Why boto3 finds no credentials on this node the usual way (environment, profile and
    shared files, container or instance role), or None when it finds some. Without any, an
    S3 call fails before it is sent, so a node offers neither S3 inputs nor the S3
    publisher, as Bacalhau's S3 client counts as installed only with credentials. May ask an
    instance-metadata endpoint: call it off the event loop."""
    try:
        found = boto3.session.Session().get_credentials()
    except botocore.exceptions.BotoCoreError as err:  # a profile named but not found...
        return str(err)
    return None if found is not None else "no AWS credentials"


def s3_client(*, endpoint: str = "", region: str = "", sigv4: bool = False) -> S3Client:
    """A client for ``endpoint`` (AWS when empty) with the node's credentials. ``sigv4``
    signs (and pre-signs) with Signature Version 4 whatever the endpoint: a pre-signed PUT
    then covers only the host, not the Content-Type an uploader sends."""
    config = botocore.config.Config(
        retries={"max_attempts": 3, "mode": "standard"},
        s3={"addressing_style": "path"} if endpoint else {},
        connect_timeout=10,
        read_timeout=60,
        signature_version="s3v4" if sigv4 else None,
    )
    session = boto3.session.Session()
    return session.client(
        "s3",
        endpoint_url=endpoint or None,
        region_name=region or session.region_name or DEFAULT_REGION,
        config=config,
    )


def s3_error(err: Exception, what: str, *, component: str, kind: str) -> BacalhauError:
    """``err`` from boto3 as an error naming the cause: missing object or bucket, refused
    credentials, no credentials, unreachable endpoint."""
    details = {"InputSource": kind} if kind else {}
    cause = err.__cause__ or err.__context__
    if isinstance(err, boto3.exceptions.S3UploadFailedError) and isinstance(cause, Exception):
        return s3_error(cause, what, component=component, kind=kind)  # the client's own error
    if isinstance(err, botocore.exceptions.NoCredentialsError):
        return ExecutionFailed(
            f"{what}: the compute node has no AWS credentials",
            hint="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE on the node",
            component=component,
            details=details,
        )
    if isinstance(err, botocore.exceptions.EndpointConnectionError):
        return ExecutionFailed(
            f"{what}: cannot reach the S3 endpoint ({err})",
            hint="check the Endpoint param and that the server is up",
            component=component,
            details=details,
        )
    if isinstance(err, botocore.exceptions.ClientError):
        error = err.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = str(error.get("Message", "")) or code
        if code in _DENIED:
            return ExecutionFailed(
                f"{what}: S3 refused the compute node's credentials ({code}: {message})",
                hint="check the AWS credentials on the compute node and the bucket's policy",
                component=component,
                details=details,
            )
        if code == "NoSuchBucket":
            return ExecutionFailed(f"{what}: no such bucket", component=component, details=details)
        if code in _MISSING:
            return ExecutionFailed(
                f"{what}: no such key",
                hint="check Bucket and Key",
                component=component,
                details=details,
            )
        return ExecutionFailed(f"{what}: {code}: {message}", component=component, details=details)
    if isinstance(err, botocore.exceptions.BotoCoreError):
        return ExecutionFailed(f"{what}: {err}", component=component, details=details)
    return ExecutionFailed(
        f"{what}: {type(err).__name__}: {err}", component=component, details=details
    )
