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

__all__ = [
    "CERTIFICATE_EXPIRY",
    "RENEW_BEFORE",
    "certificate_expiry",
    "check_certificate",
    "watch_certificate",
]

log = logging.getLogger(__name__)

CERTIFICATE_EXPIRY = Gauge(
    "bacalhau_tls_certificate_expiry_timestamp_seconds",
    "When this node's TLS certificate expires (Unix time).",
)

#: How often the certificate is read again (it may be replaced on disk while the node runs).
CHECK_INTERVAL = 12 * 3600.0
#: A node that joined with the token renews its certificate this long before it expires
#: (certificates last a year), at a start or while it runs; the others warn from then on.
RENEW_BEFORE = datetime.timedelta(days=30)


def certificate_expiry(files: NodeFiles) -> datetime.datetime | None:
    """When the node's certificate expires (None if it cannot be read: the start said why)."""
    try:
        return x509.load_pem_x509_certificate(files.tls_cert.read_bytes()).not_valid_after_utc
    except (OSError, ValueError):
        return None


def check_certificate(files: NodeFiles, *, joined_with_token: bool) -> datetime.datetime | None:
    """Read the expiry, set the metric, and warn in the last month (blocking: file I/O)."""
    ends = certificate_expiry(files)
    if ends is not None:
        report_expiry(ends, joined_with_token=joined_with_token)
    return ends


def report_expiry(ends: datetime.datetime, *, joined_with_token: bool) -> None:
    """Set the metric to ``ends``, and warn when that is within :data:`RENEW_BEFORE`."""
    CERTIFICATE_EXPIRY.set(ends.timestamp())
    left = ends - datetime.datetime.now(datetime.UTC)
    if left > RENEW_BEFORE:
        return
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


async def watch_certificate(
    files: NodeFiles,
    *,
    renew: Callable[[], Awaitable[None]] | None = None,
    interval: float = CHECK_INTERVAL,
) -> None:
    """Report the certificate's expiry now and every ``interval`` seconds, until cancelled.
    ``renew`` is given for a node that joined with the token: in the last month it is tried
    first, and the certificate read again only if it ran."""
    while True:
        ends = await asyncio.to_thread(certificate_expiry, files)
        due = ends is not None and ends - datetime.datetime.now(datetime.UTC) <= RENEW_BEFORE
        if renew is not None and due:
            try:
                await renew()
            except BacalhauError as e:
                log.warning("renewing this node's certificate failed: %s", e.message)
            else:
                ends = await asyncio.to_thread(certificate_expiry, files)
        if ends is not None:
            report_expiry(ends, joined_with_token=renew is not None)
        await asyncio.sleep(interval)
