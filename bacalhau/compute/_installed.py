"""Which of a node's plugins (executors, publishers) can be used on this host now."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

_log = logging.getLogger(__name__)


class _Installable(Protocol):
    async def is_installed(self) -> bool: ...


async def installed_names(plugins: Mapping[str, _Installable]) -> list[str]:
    """The names of ``plugins`` that say they are installed, sorted (a plugin whose check
    fails counts as not installed, and the failure is logged)."""
    names: list[str] = []
    for name, plugin in plugins.items():
        try:
            if await plugin.is_installed():
                names.append(name)
        except Exception:
            _log.exception("checking whether %s is installed failed", name)
    return sorted(names)
