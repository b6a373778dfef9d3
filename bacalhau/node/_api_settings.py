"""What a requester's public APIs are given, derived from its configuration: who may use
them, which metrics they serve, how result locations are answered, and the configuration
``agent config`` shows."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bacalhau._metrics import Role
from bacalhau.api import Authorizer
from bacalhau.config import NodeConfig, bacalhau_document
from bacalhau.errors import InvalidConfiguration
from bacalhau.models import MANAGED_PUBLISHER, SpecConfig
from bacalhau.orchestrator import ApprovalChain
from bacalhau.publisher import ManagedBucket

__all__ = ["agent_config", "authorizer_of", "managed_bucket", "metrics_roles", "presigner"]

log = logging.getLogger(__name__)


def metrics_roles(config: NodeConfig) -> list[Role]:
    """The roles whose series this node's ``/metrics`` serves."""
    roles: list[Role] = []
    if config.orchestrator:
        roles.append("requester")
    if config.compute:
        roles.append("compute")
    return roles


def authorizer_of(config: NodeConfig) -> Authorizer | None:
    """Who may use the APIs (``API.Auth.Users``); None leaves them open, as without users."""
    if not config.api_users:
        log.info("API: no users configured (API.Auth.Users): open to every client")
        return None
    for user in config.api_users:
        if user.plain_text_password:
            log.warning(
                "API user %s has a plain-text password in the configuration: store its "
                "bcrypt hash instead (bacalhau auth hash-password)",
                user.name,
            )
    log.info("API: %d users; requests need credentials (Basic or Bearer)", len(config.api_users))
    return Authorizer(config.api_users)


def managed_bucket(config: NodeConfig) -> ManagedBucket | None:
    """The requester's bucket for the s3managed publisher, when the operator set one."""
    if not config.s3managed_bucket.strip():
        if config.s3managed_key or config.s3managed_region or config.s3managed_endpoint:
            raise InvalidConfiguration(
                "Publishers.Types.S3Managed needs a Bucket (s3managed_bucket)",
                hint="name the bucket the requester keeps s3managed results in, or remove "
                "the other S3Managed keys",
            )
        return None
    return ManagedBucket(
        bucket=config.s3managed_bucket.strip(),
        prefix=config.s3managed_key,
        region=config.s3managed_region,
        endpoint=config.s3managed_endpoint,
        expires=int(config.s3managed_presigned_url_expiration),
    )


def presigner(
    config: NodeConfig, managed: ManagedBucket | None
) -> Callable[[SpecConfig], SpecConfig] | None:
    """How results are answered: ``s3`` ones pre-signed for ``s3_presigned_url_expiration``
    seconds (as they are when the operator turned pre-signing off), ``s3managed`` ones with
    a download URL from the requester's bucket."""
    expires = None if config.s3_presigned_url_disabled else int(config.s3_presigned_url_expiration)
    if expires is None and managed is None:
        return None

    def presign(result: SpecConfig) -> SpecConfig:
        kind = result.type.lower()
        if kind == MANAGED_PUBLISHER and managed is not None:
            return managed.rewrite(result)
        if kind != "s3" or expires is None:
            return result  # (boto3 is loaded by the first S3 result asked for, not before)
        from bacalhau.publisher import presign_result

        return presign_result(result, expires=expires)

    return presign


def agent_config(config: NodeConfig, hooks: ApprovalChain) -> dict[str, object]:
    """The node's configuration as ``/api/v1/agent/config`` shows it (Bacalhau's shape,
    secrets redacted by the API), with its accept hooks as ``node describe`` shows them."""
    out: dict[str, Any] = bacalhau_document(config)
    # Where the node keeps its data, whatever directory it was started from.
    out["DataDir"] = str(config.data_dir.resolve())
    out.setdefault("Orchestrator", {})["ApprovalHooks"] = hooks.describe()
    # Every role shows the same keys, as Bacalhau's nodes do (they matter on compute nodes).
    out["JobAdmissionControl"] = {
        "AcceptNetworkedJobs": config.accept_networked_jobs,
        "RejectStatelessJobs": config.reject_stateless_jobs,
        "Locality": config.locality.lower(),
        "ProbeExec": config.probe_exec,
        "ProbeHTTP": config.probe_http,
        "ProbeTimeout": config.probe_timeout,
    }
    return out
