"""A requester's first start: its own cluster CA when it has no certificate yet.

Bacalhau starts with ``bacalhau serve --orchestrator`` (or ``--config FILE``) on a fresh
machine and nothing else. Here every node needs a certificate from the cluster's CA, so a
requester whose data directory holds none of the TLS files creates the cluster CA in
``<data-dir>/cluster-ca`` (the key mode 0600, never sent anywhere) and issues its own
certificate from it, and says so once, with the command that certifies compute nodes. An
operator who keeps the CA elsewhere (``bacalhau ca init``/``issue``) is unaffected: a node
with any of its TLS files is never bootstrapped, and a compute node never makes a CA.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from pathlib import Path

from bacalhau.config import NodeConfig
from bacalhau.identity import CA_KEY_FILE, DEFAULT_HOSTS, ClusterCA, NodeFiles, NodeIdentity
from bacalhau.node._addresses import WILDCARDS, interface_addresses

__all__ = ["CLUSTER_CA_DIR", "bootstrap_certificates", "own_hosts"]

log = logging.getLogger(__name__)

#: Where a bootstrapped requester keeps the cluster CA, under its data directory.
CLUSTER_CA_DIR = "cluster-ca"


def bootstrap_certificates(config: NodeConfig, identity: NodeIdentity) -> Path | None:
    """Give a requester with no TLS files a cluster CA and a certificate (see the module
    docstring); returns the CA's directory when it did, None otherwise."""
    files = NodeFiles.in_dir(config.data_dir)
    if not config.orchestrator or any(
        p.exists() for p in (files.ca_cert, files.tls_cert, files.tls_key)
    ):
        return None
    ca_dir = config.data_dir / CLUSTER_CA_DIR
    if (ca_dir / CA_KEY_FILE).exists():
        ca = ClusterCA.load(ca_dir)  # made by an earlier start that stopped before issuing
    else:
        ca_dir.mkdir(parents=True, exist_ok=True)
        ca = ClusterCA.create(ca_dir)
    hosts = own_hosts(config)
    ca.issue_node_certificate(identity, data_dir=config.data_dir, hosts=hosts)
    log.warning(
        "this requester had no certificate: it created the cluster CA in %s and certified "
        "itself for %s. Certify each compute node with `bacalhau ca issue --ca-dir %s "
        "--data-dir NODE_DATA_DIR --host NODE_ADDRESS`, and this node for more addresses "
        "with `--data-dir %s --host ...`",
        ca_dir,
        ", ".join(hosts),
        ca_dir,
        config.data_dir,
    )
    return ca_dir


def own_hosts(config: NodeConfig) -> list[str]:
    """The names and addresses compute nodes may dial this node by: loopback, the hosts
    the configuration gives, this machine's name with the addresses it resolves to, and
    every address of its interfaces (a host name often resolves to loopback alone)."""
    hosts = list(DEFAULT_HOSTS)
    name = socket.gethostname()
    candidates = [config.advertise_host, config.grpc_host, name]
    # (A machine whose own name does not resolve: its name alone.)
    with contextlib.suppress(OSError):
        candidates += [str(info[4][0]) for info in socket.getaddrinfo(name, None)]
    candidates += interface_addresses()
    for host in candidates:
        host = host.strip().strip("[]")
        # (A link-local address with its zone, fe80::1%eth0, is no certificate entry.)
        if host not in WILDCARDS and "%" not in host and host not in hosts:
            hosts.append(host)
    return hosts
