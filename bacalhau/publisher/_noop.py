"""The ``noop`` publisher: results stay on the compute node, nothing is published."""

from __future__ import annotations

from pathlib import Path

from bacalhau.models import Job, SpecConfig


class NoopPublisher:
    """Publishes nothing and answers an empty ``PublishedResult`` (excluded from ``/results``)."""

    @property
    def name(self) -> str:
        return "noop"

    @property
    def copies_results(self) -> bool:
        # Nothing was copied: the results directory is the only copy and must stay.
        return False

    async def is_installed(self) -> bool:
        return True

    async def validate(self, spec: SpecConfig) -> None:
        return None

    async def publish(self, execution_id: str, job: Job, results_dir: Path) -> SpecConfig:
        return SpecConfig()
