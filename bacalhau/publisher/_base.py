"""The publisher plugin contract.

A publisher takes an execution's results directory (``stdout``, ``stderr``, ``exitCode`` and one
folder per result path, see :mod:`bacalhau.executor`) and makes it retrievable, answering with
the ``PublishedResult`` the requester stores and clients download from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from bacalhau.models import Job, SpecConfig
from bacalhau.publisher._kept import KeptResults


@runtime_checkable
class Publisher(Protocol):
    """A way of making results retrievable (``local``, ``s3``, ``ipfs``, ``noop``)."""

    @property
    def name(self) -> str:
        """The ``Publisher.Type`` this plugin serves (lower case)."""
        ...

    @property
    def copies_results(self) -> bool:
        """True when :meth:`publish` leaves an independent copy of the results, so the compute
        node may delete the results directory once publishing succeeded."""
        ...

    async def is_installed(self) -> bool:
        """Whether this publisher can publish anything on this node right now."""
        ...

    async def validate(self, spec: SpecConfig) -> None:
        """Raise :class:`~bacalhau.errors.InvalidJobSpec` if ``spec`` can never be published."""
        ...

    async def publish(self, execution_id: str, job: Job, results_dir: Path) -> SpecConfig:
        """Publish ``results_dir`` and return where it went (``PublishedResult``).

        Raises :class:`~bacalhau.errors.PublishFailed` when the results could not be published.
        """
        ...


@runtime_checkable
class ResultsKeeper(Protocol):
    """A publisher that can leave small results to the compute node's store, which keeps
    them in the commit that records the execution's end (see ``publisher._kept``)."""

    def keep_small_results(self, results_dir: Path) -> KeptResults | None:
        """The results to keep instead of publishing them with ``publish``; None: publish."""
        ...

    def publish_kept(self, execution_id: str, kept: KeptResults) -> SpecConfig:
        """Where the kept results are retrieved from (``PublishedResult``); the caller must
        commit ``kept`` to the store before that address leaves the node."""
        ...
