"""The node's TLS certificate, watched while the node runs.

A node certificate lasts a year; a node past its expiry is refused by every member and drops
out of the cluster. A node that joined with a token renews its certificate in the last month
(:mod:`bacalhau.node._join`): at a start, or, while it runs, here; the new certificate takes
effect at once (:class:`~bacalhau.transport.TlsMaterial`). One whose certificate came from
``bacalhau ca issue`` needs its operator. Either way the expiry is a metric operators can
alert on, and a last month without renewal is a warning in the node's log twice a day.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Awaitable, Callable

from cryptography import x509
from prometheus_client import Gauge

from bacalhau.errors import BacalhauError
from bacalhau.identity import NodeFiles

__all__ = ["CERTIFICATE_EXPIRY", "certificate_expiry", "watch_certificate"]

log = logging.getLogger(__name__)

CERTIFICATE_EXPIRY = Gauge(
    "bacalhau_tls_certificate_expiry_timestamp_seconds",
    "When this node's TLS certificate expires (Unix time).",
)

#: How often the certificate is read again (it may be replaced on disk while the node runs).
CHECK_INTERVAL = 12 * 3600.0
#: Warnings start this long before the expiry (the start-time renewal's window too).
WARN_BEFORE = datetime.timedelta(days=30)


def certificate_expiry(files: NodeFiles) -> datetime.datetime | None:
    """When the node's certificate expires (None if it cannot be read: the start said why)."""
    try:
        return x509.load_pem_x509_certificate(files.tls_cert.read_bytes()).not_valid_after_utc
    except (OSError, ValueError):
        return None


def check_certificate(files: NodeFiles, *, joined_with_token: bool) -> datetime.datetime | None:
    """Read the expiry, set the metric, and warn in the last month (blocking: file I/O)."""
    ends = certificate_expiry(files)
    if ends is None:
        return None
    CERTIFICATE_EXPIRY.set(ends.timestamp())
    left = ends - datetime.datetime.now(datetime.UTC)
    if left > WARN_BEFORE:
        return ends
    renew = (
        "restart the node: it joined with Compute.Auth.Token and renews the certificate "
        "when it starts"
        if joined_with_token
        else "issue it a new one (`bacalhau ca issue --data-dir DIR`) and restart it"
    )
    if left.total_seconds() <= 0:
        log.error(
            "this node's TLS certificate expired on %s UTC: other members refuse its "
            "connections; %s",
            f"{ends:%Y-%m-%d %H:%M}",
            renew,
        )
    else:
        log.warning(
            "this node's TLS certificate expires on %s UTC (in %d days); %s",
            f"{ends:%Y-%m-%d %H:%M}",
            left.days,
            renew,
        )
    return ends


async def watch_certificate(
    files: NodeFiles,
    *,
    joined_with_token: bool,
    renew: Callable[[], Awaitable[None]] | None = None,
    interval: float = CHECK_INTERVAL,
) -> None:
    """:func:`check_certificate` now and every ``interval`` seconds, until cancelled; in the
    last month, ``renew`` (given for a node that joined with the token) is tried first."""
    while True:
        ends = await asyncio.to_thread(certificate_expiry, files)
        left = ends - datetime.datetime.now(datetime.UTC) if ends is not None else None
        if renew is not None and left is not None and left <= WARN_BEFORE:
            try:
                await renew()
            except BacalhauError as e:
                log.warning("renewing this node's certificate failed: %s", e.message)
        await asyncio.to_thread(check_certificate, files, joined_with_token=joined_with_token)
        await asyncio.sleep(interval)
