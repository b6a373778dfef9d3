"""A node's gossip membership: its runner, its record, and what a compute node does with it.

- :func:`gossip_settings` turns the node configuration into
  :class:`~bacalhau.gossip.GossipSettings` (the old ``heartbeat_interval`` and
  ``disconnect_timeout`` keys map onto it).
- :class:`RecordPublisher` keeps the node's record current: what its compute role offers
  (engines, publishers, capacity, running and queued counts) is re-read every
  ``interval`` and published when it changed, so capacity news spreads within a fraction
  of a second, at most once per interval.
- :class:`RequesterContact` (compute role) asks each seed address to prove its identity and
  trusts those that prove to be requesters (gossip records are self-declared: a member
  claiming the requester role in its record is not obeyed for that). It reports this node's
  executions to every requester it trusts when it first reaches it, when that requester
  restarts or comes back from dead (re-announcing this node's record too, so the requester
  learns of it at once), when this node had to refute its own death, and every
  ``report_interval`` as anti-entropy; the requester reconciles them with its job store.
  A report also lists what waits in the node's run queue, and one goes soon after an
  execution has waited there a while (the requester may move it to a node with room).
  A requester trusted by configuration (``trusted_requesters``) is reached at the address
  its gossip record gives, over a channel pinned to its node ID.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from types import TracebackType

from bacalhau.compute import ComputeEndpoint, RequesterTrust
from bacalhau.config import NodeConfig
from bacalhau.errors import BacalhauError
from bacalhau.gossip import (
    GossipSettings,
    MemberEvent,
    MemberEventKind,
    MembershipRunner,
    NodeRecord,
)
from bacalhau.identity import NodeFiles, NodeIdentity
from bacalhau.models import ExecutionReport, LivenessState, NodeType, is_new_start
from bacalhau.node._wiring import RequesterLinks
from bacalhau.orchestrator import REPORT_IN_FLIGHT
from bacalhau.transport import OrchestratorClient, TlsMaterial

log = logging.getLogger(__name__)

#: Seconds between the report sent when a requester is (re)found and a second one: past the
#: requester's in-flight window, with a margin for the restart's own delays.
FOLLOW_UP_REPORT_AFTER = REPORT_IN_FLIGHT + 2.0


def gossip_settings(config: NodeConfig) -> GossipSettings:
    """The node's gossip settings; ``heartbeat_interval`` and ``disconnect_timeout`` (when
    set, i.e. > 0) override the probe interval and the suspicion bounds."""
    probe_interval = config.gossip_probe_interval
    probe_timeout = config.gossip_probe_timeout
    if config.heartbeat_interval > 0:
        probe_interval = config.heartbeat_interval
        probe_timeout = min(probe_timeout, probe_interval * 0.4)
    suspicion_min = config.gossip_suspicion_min_seconds
    suspicion_max_mult = config.gossip_suspicion_max_mult
    if config.disconnect_timeout > 0:
        suspicion_min = config.disconnect_timeout / 3
        suspicion_max_mult = 3.0
    return GossipSettings(
        probe_interval=probe_interval,
        probe_timeout=probe_timeout,
        indirect_checks=config.gossip_indirect_checks,
        suspicion_mult=config.gossip_suspicion_mult,
        suspicion_max_mult=suspicion_max_mult,
        suspicion_min_seconds=suspicion_min,
        gossip_interval=config.gossip_interval,
        gossip_fanout=config.gossip_fanout,
        push_pull_interval=config.gossip_push_pull_interval,
        join_retry_interval=config.gossip_join_retry_interval,
        reconnect_interval=config.gossip_reconnect_interval,
        reap_after_seconds=config.gossip_reap_after_seconds,
    )


def seed_addresses(config: NodeConfig) -> list[str]:
    """``seeds`` and ``orchestrator_address``, each once, in the order given, as ``host:port``
    (a scheme such as Bacalhau's ``nats://`` in ``Compute.Orchestrators`` is dropped)."""
    seen: list[str] = []
    for address in (*config.seeds, config.orchestrator_address):
        address = address.strip().split("://", 1)[-1].rstrip("/")
        if address and address not in seen:
            seen.append(address)
    return seen


class RecordPublisher:
    """Re-publishes this node's record whenever what ``describe`` returns changes."""

    def __init__(
        self,
        runner: MembershipRunner,
        describe: Callable[[], Awaitable[NodeRecord]],
        *,
        interval: float = 0.25,
    ) -> None:
        self._runner = runner
        self._describe = describe
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RecordPublisher:
        await self.refresh()
        self._task = asyncio.create_task(self._run(), name="record-publisher")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def refresh(self) -> bool:
        """Publish the record now if it changed; True if it did."""
        current = self._runner.local_record
        fresh = replace(await self._describe(), version=current.version)
        if fresh == current:
            return False
        self._runner.publish(fresh)
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.refresh()
            except Exception:
                log.exception("refreshing this node's record failed")


class RequesterContact:
    """Identifies the requesters at the seed addresses and keeps them told what this compute
    node holds (see the module docstring). An async context manager."""

    def __init__(
        self,
        *,
        identity: NodeIdentity,
        files: NodeFiles | TlsMaterial,
        seeds: Sequence[str],
        trust: RequesterTrust,
        links: RequesterLinks,
        endpoint: ComputeEndpoint,
        runner: MembershipRunner,
        report_interval: float = 60.0,
        retry_backoff: tuple[float, float] = (0.2, 2.0),
        follow_up: float = FOLLOW_UP_REPORT_AFTER,
    ) -> None:
        self._identity = identity
        self._files = files
        self._seeds = list(seeds)
        self._trust = trust
        self._links = links
        self._endpoint = endpoint
        self._runner = runner
        self._report_interval = report_interval
        self._follow_up = follow_up
        self._backoff = retry_backoff
        self._clients: list[OrchestratorClient] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self._refutations = 0
        #: The last record version seen of each member (a jump means a restart).
        self._versions: dict[str, int] = {}
        #: Reports sent, by requester ID (for tests and logs).
        self.reports: dict[str, int] = {}

    async def __aenter__(self) -> RequesterContact:
        self._refutations = self._runner.metrics.refutations
        self._unsubscribe = self._runner.subscribe(self._on_member_event)
        # An execution waiting long in the run queue: its requester may move it at once.
        self._endpoint.queue_watch.listen(self._report_soon)
        for address in self._seeds:
            self._spawn(self._identify(address), f"identify-{address}")
        for requester_id in self._links.requester_ids():  # the local one, in a hybrid node
            self._spawn(self.report_settled(requester_id), f"report-{requester_id}")
        self._spawn(self._watch(), "execution-reports")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in self._clients:
            await client.close()

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _identify(self, address: str) -> None:
        """Ask the node at ``address`` who it is until it answers; trust it if it proves to
        be a requester. Commands from unknown senders wait while this is under way."""
        backoff, most = self._backoff
        with self._trust.identifying():
            while True:
                client = OrchestratorClient(self._identity, self._files, address)
                try:
                    claim = await client.identify()
                except asyncio.CancelledError:
                    await client.close()
                    raise
                except Exception as err:
                    await client.close()
                    log.warning(
                        "identifying the node at seed %s failed: %s; retrying in %.1fs%s",
                        address,
                        err,
                        backoff,
                        _seed_hint(address, err),
                    )
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, most)
                    continue
                break
            if claim.node_id == self._identity.node_id or not claim.is_requester:
                await client.close()
                if claim.node_id == self._identity.node_id:
                    log.info("seed %s is this node", address)
                    return
                # It joins the cluster through that node, but obeys no requester it learns
                # of there: an operator who seeded it only so would see it refuse every job.
                log.warning(
                    "seed %s is node %s, not a requester: this node joins the cluster through "
                    "it, but takes jobs only from requesters given as seeds or named with "
                    "--trusted-requester (trusted_requesters)",
                    address,
                    claim.node_id,
                )
                return
            self._clients.append(client)
            self._links.add_remote(claim.node_id, client)
            # Granted inside ``identifying`` so that commands waiting for it see it.
            self._trust.trust(claim.node_id, why=f"it proved its identity at {address}")
        await self.report_settled(claim.node_id)

    async def report_settled(self, requester_id: str) -> None:
        """Report now, and once more after the requester's in-flight window.

        A requester does not fail an execution missing from a report if it changed in the
        last ``FOLLOW_UP_REPORT_AFTER`` seconds: its ask may still be on the way. So after a
        restart (this node's or the requester's), executions placed just before it would
        wait for the next anti-entropy round (a minute) to be found lost; the second report
        settles them seconds later."""
        await self.report(requester_id)
        await asyncio.sleep(self._follow_up)
        await self.report(requester_id)

    async def report(self, requester_id: str) -> None:
        """Send this node's execution report to ``requester_id`` (failures are logged; the
        next trigger or the anti-entropy round sends it again)."""
        held = self._endpoint.store.unsettled_ids(requester_id)
        queued = self._endpoint.queue_watch.queued_for(requester_id)
        report = ExecutionReport(self._identity.node_id, execution_ids=held, queued=queued)
        try:
            await self._links.report_executions(requester_id, report)
        except (BacalhauError, OSError) as err:
            log.info("could not report executions to %s: %s", requester_id, err)
            return
        self.reports[requester_id] = self.reports.get(requester_id, 0) + 1
        log.info("reported %d execution(s) to requester %s", len(held), requester_id)

    def _report_soon(self, requester_id: str) -> None:
        self._spawn(self.report(requester_id), f"report-{requester_id}")

    def _on_member_event(self, event: MemberEvent) -> None:
        member = event.member
        before = self._versions.get(member.node_id, 0)
        self._versions[member.node_id] = member.record.version
        if not self._trust.is_trusted(member.node_id):
            return
        if member.node_id not in self._links.requester_ids():
            self._link_configured(member.record)
            return
        kind = event.kind
        back = kind is MemberEventKind.ALIVE and event.previous in (
            LivenessState.DEAD,
            LivenessState.LEFT,
        )
        # The runner says only "newer record": a new start shows as a jump in version.
        restarted = kind is MemberEventKind.UPDATED and is_new_start(before, member.record.version)
        if kind is MemberEventKind.JOINED or back or restarted:
            if kind is not MemberEventKind.JOINED:
                # A requester that restarted (or was cut off) may not know this node: a new
                # version of its record spreads at once, instead of at the next push-pull.
                self._runner.publish(self._runner.local_record)
                # Callbacks that waited out a growing backoff while it was away go now.
                self._endpoint.outbox.retry_now(member.node_id)
            self._spawn(self.report_settled(member.node_id), f"report-{member.node_id}")

    def _link_configured(self, record: NodeRecord) -> None:
        """A requester trusted by configuration (not reached at a seed) is reached at the
        address its record gives, over a channel pinned to its node ID: only that node can
        answer there, whatever the record claims."""
        if NodeType.REQUESTER not in record.roles or not record.grpc_address:
            return
        client = OrchestratorClient(
            self._identity, self._files, record.grpc_address, record.node_id
        )
        self._clients.append(client)
        self._links.add_remote(record.node_id, client)
        log.info("reaching trusted requester %s at %s", record.node_id, record.grpc_address)
        self._report_soon(record.node_id)

    async def _watch(self) -> None:
        """Report to everyone when this node had to refute its own death (the requesters
        may have failed its work meanwhile), and every ``report_interval`` anyway."""
        waited = 0.0
        while True:
            await asyncio.sleep(1.0)
            waited += 1.0
            refutations = self._runner.metrics.refutations
            if refutations != self._refutations or waited >= self._report_interval:
                self._refutations = refutations
                waited = 0.0
                for requester_id in self._links.requester_ids():
                    await self.report(requester_id)


def _seed_hint(address: str, err: BaseException) -> str:
    """What to do about a seed whose certificate this node cannot accept: one that does not
    name the address it is dialled by (a seed is checked by its address: its node ID is not
    known yet), or one that this node's cluster CA did not sign."""
    text = str(err)
    if "unable to get local issuer certificate" in text or "unknown ca" in text.lower():
        return (
            " (the node there has a certificate that this node's cluster CA did not sign, "
            "or refuses this node's: the two were certified by different CAs, so they are not "
            "of one cluster. Certify this node with that cluster's CA (`bacalhau ca issue "
            "--ca-dir <its CA>`), or, to join with the cluster's token, move this node's "
            "ca.crt, tls.crt and tls.key aside first: a node already certified keeps its "
            "certificate and does not use the token)"
        )
    if "Hostname Verification" not in text:
        return ""
    host = address.rsplit(":", 1)[0].strip("[]")
    return (
        f" (the node there is certified, but not for {host}: certify it for that name, "
        f"`bacalhau ca issue --host {host}` on its data dir, or seed through an address "
        "its certificate names)"
    )
