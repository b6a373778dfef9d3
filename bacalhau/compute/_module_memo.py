"""The inline modules an execution store handed out or stored last, by digest.

A module that came by reference is read from the store (or fetched) once per ask, put into
the job, and the execution stored with it. Remembering the last modules by digest lets the
store answer the next ask without reading the module back, and know it is kept without
writing it again. Their digests come from ``module_digest``, which tells a module seen
lately without hashing it again.
"""

from __future__ import annotations

__all__ = ["ModuleMemo"]

#: How many modules are remembered, and the largest remembered (a larger one is read back
#: each time: its run costs far more than that anyway).
_LIMIT = 16
_MAX_URL_CHARS = 8 * 2**20


class ModuleMemo:
    """Digest -> ``data:`` URL of the last few modules."""

    def __init__(self) -> None:
        self._urls: dict[str, str] = {}

    def url(self, digest: str) -> str | None:
        """The URL remembered under ``digest``, if any."""
        return self._urls.get(digest)

    def remember(self, digest: str, url: str) -> None:
        """Note that ``url`` (which hashes to ``digest``) is the module kept under it."""
        if len(url) > _MAX_URL_CHARS or self._urls.get(digest) is url:
            return
        self._urls.pop(digest, None)
        self._urls[digest] = url  # newest last
        while len(self._urls) > _LIMIT:
            del self._urls[next(iter(self._urls))]

    def clear(self) -> None:
        self._urls.clear()
