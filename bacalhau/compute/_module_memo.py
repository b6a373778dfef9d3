"""The inline modules an execution store handed out or stored last, kept as string objects.

A module that came by reference is read from the store (or fetched) once per ask, put into
the job, and the execution stored with it, which hashed the module again. Remembering the
last modules by digest, as the very ``str`` objects handed out, lets the store answer the
next ask with the same object and know its digest from the object's identity, without
reading, hashing or writing its bytes again.
"""

from __future__ import annotations

from bacalhau.models import module_digest

__all__ = ["ModuleMemo"]

#: How many modules are remembered, and the largest remembered (a larger one is hashed each
#: time: its run costs far more than that anyway).
_LIMIT = 16
_MAX_URL_CHARS = 8 * 2**20


class ModuleMemo:
    """Digest -> ``data:`` URL of the last few modules, and back by object identity."""

    def __init__(self) -> None:
        self._urls: dict[str, str] = {}
        #: ``id(url)`` -> (url, digest); the url is held, so its id is not reused meanwhile.
        self._digests: dict[int, tuple[str, str]] = {}

    def url(self, digest: str) -> str | None:
        """The URL remembered under ``digest``, if any."""
        return self._urls.get(digest)

    def digest(self, url: str) -> str:
        """The digest of ``url``: remembered when ``url`` is an object handed out, else hashed."""
        hit = self._digests.get(id(url))
        if hit is not None and hit[0] is url:
            return hit[1]
        return module_digest(url)

    def remember(self, digest: str, url: str) -> None:
        """Note that ``url`` (which hashes to ``digest``) is the module kept under it."""
        if len(url) > _MAX_URL_CHARS or self._urls.get(digest) is url:
            return
        old = self._urls.pop(digest, None)
        if old is not None:
            self._digests.pop(id(old), None)
        self._urls[digest] = url
        self._digests[id(url)] = (url, digest)
        while len(self._urls) > _LIMIT:
            oldest = next(iter(self._urls))
            self._digests.pop(id(self._urls.pop(oldest)), None)

    def clear(self) -> None:
        self._urls.clear()
        self._digests.clear()
