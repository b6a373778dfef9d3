"""Joining with a token, as Bacalhau's nodes do: ``Orchestrator.Auth.Token`` on the
requester, the same value as ``Compute.Auth.Token`` on each compute node.

A compute node whose data directory holds no TLS key and that has a token asks a seed (its
requester) for a cluster certificate before it starts, and keeps it: later starts use the
certificate, until one finds it within a month of its expiry and asks for a new one. A
requester with a token serves those requests from the cluster CA that its first start made
in ``<data-dir>/cluster-ca``. The scheme and its guarantees are in
:mod:`bacalhau.identity._join_token`.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from bacalhau.config import NodeConfig
from bacalhau.errors import InvalidConfiguration, InvalidRequest, Unavailable
from bacalhau.identity import (
    CA_KEY_FILE,
    MIN_TOKEN_LENGTH,
    ClusterCA,
    JoinAuthority,
    NodeFiles,
    NodeIdentity,
    certified_hosts,
    node_id_from_certificate,
)
from bacalhau.identity._files import write_private, write_public
from bacalhau.node._bootstrap import CLUSTER_CA_DIR, own_hosts
from bacalhau.node._cert_watch import RENEW_BEFORE, certificate_expiry
from bacalhau.transport import Certify, Joined, TlsMaterial, join_cluster

__all__ = ["RENEW_BEFORE", "join_service", "join_with_token", "renew_while_running"]

log = logging.getLogger(__name__)
#: Names every node asks to be certified for (its own loopback).
_LOOPBACK_NAMES = frozenset({"127.0.0.1", "::1", "localhost"})

#: Waits between attempts while no seed answers (the requester may start after this node).
_RETRY_SECONDS = (1.0, 2.0, 5.0, 10.0)


async def _authority(config: NodeConfig) -> JoinAuthority:
    if len(config.join_token) < MIN_TOKEN_LENGTH:
        log.warning(
            "the join token is shorter than %d characters: anyone who guesses it can add "
            "nodes to this cluster; prefer a long random one (`openssl rand -hex 32`)",
            MIN_TOKEN_LENGTH,
        )
    # scrypt takes a while on purpose: not on the event loop.
    return await asyncio.to_thread(JoinAuthority.from_token, config.join_token)


async def join_with_token(config: NodeConfig, identity: NodeIdentity, seeds: Sequence[str]) -> bool:
    """Get this compute node a cluster certificate with its join token, if it needs one:
    it has a token and no requester role, and has no TLS key or a certificate that expires
    within :data:`RENEW_BEFORE` (a node that joined once renews its certificate so, at a
    start). Tries the seeds in turn until one answers; returns whether it joined. Raises
    when a requester refuses the token."""
    files = NodeFiles.in_dir(config.data_dir)
    if not config.join_token or config.orchestrator:
        return False
    expiring = _expiring(files)
    if files.tls_key.exists() and not expiring:
        return False
    if expiring:
        log.warning("this node's certificate expires %s: renewing it with the join token", expiring)
    authority = await _authority(config)
    hosts = own_hosts(config)
    attempt = 0
    while True:
        for seed in seeds:
            try:
                joined = await join_cluster(seed, identity, authority, hosts)
            except Unavailable as e:
                log.warning("joining through %s: %s", seed, e.message)
                continue
            _install(files, identity, joined)
            log.warning(
                "joined the cluster with the join token through %s: this node's certificate "
                "is in %s, and later starts use it",
                seed,
                config.data_dir,
            )
            return True
        delay = _RETRY_SECONDS[min(attempt, len(_RETRY_SECONDS) - 1)]
        attempt += 1
        log.warning("no requester let this node join yet; trying again in %.0fs", delay)
        await asyncio.sleep(delay)


def _expiring(files: NodeFiles) -> str:
    """When the node's certificate expires, if that is within :data:`RENEW_BEFORE` ("" if
    not, or if there is no readable certificate: the start checks it, saying what is wrong)."""
    ends = certificate_expiry(files)
    if ends is None or ends - datetime.datetime.now(datetime.UTC) > RENEW_BEFORE:
        return ""
    return f"on {ends:%Y-%m-%d %H:%M} UTC"


async def renew_while_running(
    config: NodeConfig, identity: NodeIdentity, seeds: Sequence[str], tls: TlsMaterial
) -> None:
    """Renew the certificate of a running node that joined with the token (when it is
    within :data:`RENEW_BEFORE` of its expiry), and put it to use at once."""
    if await join_with_token(config, identity, seeds):
        tls.reload()


def _install(files: NodeFiles, identity: NodeIdentity, joined: Joined) -> None:
    """Check what the requester sent, then write it. The old TLS key goes first and the new
    one last: a node stopped half-way has no key, and joins again at its next start."""
    try:
        cert = x509.load_pem_x509_certificate(joined.certificate)
        ca = x509.load_pem_x509_certificate(joined.ca_certificate)
        cert.verify_directly_issued_by(ca)
        named = node_id_from_certificate(cert)
    except (ValueError, TypeError, InvalidRequest) as e:
        raise InvalidConfiguration(
            f"the requester sent a certificate this node cannot use: {e}",
            hint="check the requester's cluster CA (its data dir's cluster-ca folder)",
        ) from None
    if named != identity.node_id:
        raise InvalidConfiguration(
            f"the requester certified node {named}, not this node ({identity.node_id})"
        )
    files.tls_key.unlink(missing_ok=True)
    write_public(files.ca_cert, joined.ca_certificate)
    write_public(files.tls_cert, joined.certificate)
    write_private(files.tls_key, joined.tls_key)


async def join_service(config: NodeConfig) -> tuple[JoinAuthority, Certify] | None:
    """What a requester with a join token serves joining nodes with: its join authority and
    the cluster CA in ``<data-dir>/cluster-ca`` (None without a token, or without that CA,
    which is said once)."""
    if not config.join_token or not config.orchestrator:
        return None
    ca_dir = config.data_dir / CLUSTER_CA_DIR
    if not (ca_dir / CA_KEY_FILE).exists():
        # Certified by a CA kept elsewhere (`bacalhau ca issue`): it cannot certify anyone.
        log.warning(
            "the join token (Orchestrator.Auth.Token) lets no node join here: this requester "
            "does not hold the cluster CA's key in %s (its first start makes it there); "
            "certify compute nodes with `bacalhau ca issue`",
            ca_dir,
        )
        return None
    ca = ClusterCA.load(ca_dir)
    authority = await _authority(config)
    own = certified_hosts(NodeFiles.in_dir(config.data_dir))

    def certify(
        node_id: str, tls_key: ec.EllipticCurvePublicKey, hosts: Sequence[str]
    ) -> tuple[bytes, bytes]:
        # Compute nodes reach a seed by its address before they know its node ID: the
        # address's name in a certificate is what they check then. A node that joined with
        # the token must not be certified for the requester's own names (it could answer
        # for the requester at its address); other nodes reach it by its node ID anyway.
        taken = [h for h in hosts if h.lower() in own]
        if taken:
            # Every node asks for loopback (it may be reached on its own machine): routine.
            routine = all(h.lower() in _LOOPBACK_NAMES for h in taken)
            log.log(
                logging.INFO if routine else logging.WARNING,
                "node %s asked to be certified for this requester's own host names (%s): left out",
                node_id,
                ", ".join(taken),
            )
        kept = [h for h in hosts if h.lower() not in own]
        cert = ca.sign_node_certificate(node_id, tls_key, hosts=kept)
        log.warning(
            "node %s joined with the join token: certified for %s",
            node_id,
            ", ".join(kept) or "no host name",
        )
        return cert.public_bytes(Encoding.PEM), ca.certificate_pem

    return authority, certify
