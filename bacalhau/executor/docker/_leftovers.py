"""Removing what this executor left behind: stray containers and result filesystems.

Containers of executions that died with a previous process, or whose removal failed, carry
this executor's prefix label and would otherwise linger forever; so would the capped result
filesystems of executions no longer running. What is "ours" is read from the executor's live
maps of the runs under way and the filesystems being released, at the moment of each sweep.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

from bacalhau.executor._disk import list_volumes, remove_volumes
from bacalhau.executor.docker._engine import EngineConnection
from bacalhau.executor.docker._errors import ENGINE_ERRORS, unreachable
from bacalhau.executor.docker._labels import LABEL_EXECUTION_ID, LABEL_EXECUTOR
from bacalhau.executor.docker._removal import Removals

__all__ = ["Leftovers"]


class Leftovers:
    """Finds and removes one executor's leftovers.

    ``runs`` and ``releasing`` are the executor's own maps, keyed by execution ID, of the runs
    under way and of the result filesystems being released: read, never written, here.
    """

    def __init__(
        self,
        *,
        engine: EngineConnection,
        removals: Removals,
        prefix: str,
        scratch: Path,
        runs: Mapping[str, object],
        releasing: Mapping[str, object],
    ) -> None:
        self._engine = engine
        self._removals = removals
        self._prefix = prefix
        self._scratch = scratch
        self._runs = runs
        self._releasing = releasing

    async def remove(self) -> int:
        """Remove the containers and result filesystems no run owns; return how many containers."""
        removed = await self.sweep(include_owned=False)
        await self.remove_stale_volumes()
        return removed

    async def remove_stale_volumes(self) -> None:
        """Remove the capped result filesystems of executions neither running nor releasing."""
        found = await asyncio.to_thread(list_volumes, self._scratch)
        # Filtered here, on the event loop, after listing: a run registers itself before it
        # lays out its folders, so one that started meanwhile is seen as busy.
        busy = {*self._runs, *self._releasing}
        stale = [name for name in found if name not in busy]
        if stale:
            await asyncio.to_thread(remove_volumes, self._scratch, stale)

    async def sweep(self, *, include_owned: bool) -> int:
        """Remove this prefix's containers that no run owns (all, with ``include_owned``)."""
        api = await self._engine.api()
        try:
            found = await asyncio.to_thread(
                api.containers,
                all=True,
                filters={"label": f"{LABEL_EXECUTOR}={self._prefix}"},
            )
        except ENGINE_ERRORS as e:
            raise unreachable(e) from e
        # Ownership goes by execution ID, which a run records before it creates its container;
        # a container ID is only known once the create call has returned.
        owned = set() if include_owned else set(self._runs)
        stale = [
            c["Id"] for c in found if (c.get("Labels") or {}).get(LABEL_EXECUTION_ID) not in owned
        ]
        await asyncio.gather(*(self._removals.remove(api, cid) for cid in stale))
        return len(stale)
