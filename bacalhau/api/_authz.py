"""Who is calling the API, and whether they may (Bacalhau v1.7+'s users and capabilities).

One :class:`Authorizer` serves both edges (REST and gRPC). A request carries
``Authorization: Basic base64(username:password)`` or ``Authorization: Bearer <API key>``
(gRPC: the ``authorization`` metadata key). A route needs a capability named after its
resource and whether it reads: ``read:job`` for ``GET /api/v1/orchestrator/jobs``,
``write:node`` for ``PUT /api/v1/orchestrator/nodes/{id}``; a user holding ``*``, ``read:*``
(any read) or ``write:*`` (any write) has the matching ones too. Which route needs what is
decided by the edges (:mod:`bacalhau.api._auth_rest`, :mod:`bacalhau.api._grpc_auth`).

Failures are :class:`~bacalhau.errors.Unauthorized` (no credentials, or unknown ones: 401,
UNAUTHENTICATED) and :class:`~bacalhau.errors.Forbidden` (a known user without the
capability: 403, PERMISSION_DENIED), with Bacalhau's reasons in ``details["reason"]``.

bcrypt is slow on purpose (about 60 ms a check at cost 10), so a password's check runs in a
thread, at most two at a time (the event loop and the other threads' work go on), and its
outcome is remembered per credential for :data:`VERIFIED_TTL` seconds: a client that calls
again within that time costs one dictionary lookup. Concurrent first calls with the same
credential share one check.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from bacalhau.errors import Forbidden, Unauthorized

__all__ = [
    "CREDENTIALS_HINT",
    "VERIFIED_TTL",
    "ApiUser",
    "Authorizer",
    "Principal",
    "Resource",
    "has_capability",
    "required_capability",
]

#: Seconds a password check's outcome is remembered for the credential it checked.
VERIFIED_TTL = 60.0
#: Credentials remembered at most (the least recently used are forgotten first).
VERIFIED_MAX = 1024
#: bcrypt checks running at once: threads of their own would leave the default executor's
#: (the job store's encoders, signers) free, but two at a time already keeps both cores busy.
_BCRYPT_CONCURRENCY = 2

CREDENTIALS_HINT = (
    "send an API key (Authorization: Bearer <key>) or a username and password "
    "(Authorization: Basic): the bacalhau CLI and SDK read BACALHAU_API_KEY, or "
    "BACALHAU_API_USERNAME and BACALHAU_API_PASSWORD"
)

# The salt and hash of a real bcrypt hash (of a random password), checked at the users'
# cost when the username is unknown: the answer then takes as long as for a known user with
# a wrong password (the time would otherwise tell which usernames exist).
_DUMMY_SALT_AND_HASH = "yo/jMIMdEP1on4CkpaoYF.ltCEX8L4uYVUyicgsiXlHBl9VaVQb2e"

_log = logging.getLogger(__name__)


class Resource(StrEnum):
    """What a route reaches, which names the capability it needs (Bacalhau's resource
    types; ``other``: a route none of them names, which needs ``write:node``), and two of
    ours: ``any-user`` (any known user, whatever their capabilities) and
    ``identify`` (open, but credentials sent are checked: who am I)."""

    JOB = "job"
    NODE = "node"
    AGENT = "agent"
    OPEN = "open"
    OTHER = "other"
    ANY_USER = "any-user"
    IDENTIFY = "identify"


def required_capability(resource: Resource, read: bool) -> str:
    """The capability a route on ``resource`` needs; anything but a job, node or agent
    route needs ``write:node`` (Bacalhau's default, for safety)."""
    if resource in (Resource.JOB, Resource.NODE, Resource.AGENT):
        return f"{'read' if read else 'write'}:{resource.value}"
    return "write:node"


def has_capability(actions: Iterable[str], required: str) -> bool:
    """Whether a user holding ``actions`` has ``required``: itself, ``*``, or ``read:*`` /
    ``write:*`` for a capability of that kind (Bacalhau's rules)."""
    wildcard = "read:*" if required.startswith("read:") else "write:*"
    return any(a in ("*", required, wildcard) for a in actions)


class ApiUser(Protocol):
    """One configured user, as :class:`~bacalhau.config.ApiUserConfig` holds it: username
    and password (a bcrypt hash or plain text), or API key; alias; capability actions."""

    @property
    def username(self) -> str: ...
    @property
    def password(self) -> str: ...
    @property
    def api_key(self) -> str: ...
    @property
    def alias(self) -> str: ...
    @property
    def actions(self) -> tuple[str, ...]: ...
    @property
    def name(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Principal:
    """A caller the API knows: how messages name them, their username and alias (either may
    be empty), how they authenticated (``Basic`` or ``Bearer``) and their actions."""

    name: str
    username: str
    alias: str
    scheme: str
    actions: tuple[str, ...]

    @classmethod
    def of(cls, user: ApiUser, scheme: str) -> Principal:
        return cls(user.name, user.username, user.alias, scheme, tuple(user.actions))

    def to_dict(self) -> dict[str, object]:
        """As ``/api/v1/agent/whoami`` answers it."""
        return {
            "Name": self.name,
            "Username": self.username,
            "Alias": self.alias,
            "Method": self.scheme,
            "Capabilities": list(self.actions),
        }


def _digest(secret: bytes, value: bytes) -> bytes:
    return hmac.new(secret, value, hashlib.sha256).digest()


class Authorizer:
    """Checks credentials against ``users`` and capabilities against routes (see the module
    docstring). Usable from any one event loop; it holds no resources to close."""

    def __init__(
        self,
        users: Sequence[ApiUser],
        *,
        verified_ttl: float = VERIFIED_TTL,
        verified_max: int = VERIFIED_MAX,
    ) -> None:
        if not users:
            raise ValueError("an Authorizer needs users: with none, the API is open")
        # Keys of the lookup tables and the cache are keyed digests: what lives in memory
        # is no credential, and a lookup's time says nothing of how close a guess was.
        self._secret = os.urandom(32)
        self._by_username = {u.username.lower(): u for u in users if u.password}
        self._by_key = {_digest(self._secret, u.api_key.encode()): u for u in users if u.api_key}
        costs = [int(u.password[4:6]) for u in self._by_username.values() if _hashed(u.password)]
        self._dummy_hash = f"$2b${max(costs, default=10):02d}${_DUMMY_SALT_AND_HASH}".encode()
        self._ttl = verified_ttl
        self._max = verified_max
        self._verified: OrderedDict[bytes, tuple[float, Principal | None]] = OrderedDict()
        self._checking: dict[bytes, asyncio.Task[Principal | None]] = {}
        self._bcrypt_slots: asyncio.Semaphore | None = None
        #: bcrypt checks run (not answered from memory): for tests and metrics.
        self.password_checks = 0

    @property
    def schemes(self) -> tuple[str, ...]:
        """The ``Authorization`` schemes some user can authenticate with."""
        out = []
        if self._by_username:
            out.append("Basic")
        if self._by_key:
            out.append("Bearer")
        return tuple(out)

    def challenges(self) -> list[str]:
        """``WWW-Authenticate`` values for a 401: one per scheme in use."""
        out = []
        if self._by_username:
            out.append('Basic realm="bacalhau", charset="UTF-8"')
        if self._by_key:
            out.append('Bearer realm="bacalhau"')
        return out

    async def check(self, header: str | None, resource: Resource, read: bool) -> Principal | None:
        """The caller of a route on ``resource`` (None where no one needs to be known);
        raises :class:`Unauthorized` or :class:`Forbidden`."""
        if resource is Resource.OPEN or (resource is Resource.IDENTIFY and not header):
            return None
        principal = await self.authenticate(header)
        if resource in (Resource.ANY_USER, Resource.IDENTIFY):
            return principal
        required = required_capability(resource, read)
        if not has_capability(principal.actions, required):
            reason = f"user '{principal.name}' does not have the required capability '{required}'"
            # Recorded, as the hint tells the caller (and Bacalhau's API does).
            _log.warning("API request refused: %s (%s)", reason, resource.name)
            raise Forbidden(
                f"Request Forbidden: {reason}",
                hint="Check if user have access to this resource. Event has been recorded. "
                f"Ask the node's operator for the capability {required} (its "
                "API.Auth.Users Capabilities), or use credentials that have it",
                details={"reason": reason, "RequiredCapability": required},
            )
        return principal

    async def authenticate(self, header: str | None) -> Principal:
        """The user an ``Authorization`` header value names; raises :class:`Unauthorized`."""
        if not header:
            raise _unauthorized("Missing Authorization header")
        scheme, _, value = header.strip().partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "bearer":
            return self._api_key_user(value)
        if scheme == "basic":
            return await self._password_user(value)
        raise _unauthorized("unsupported authentication method")

    def _api_key_user(self, key: str) -> Principal:
        if not key:
            raise _unauthorized("empty API key provided")
        user = self._by_key.get(_digest(self._secret, key.encode()))
        if user is None or not hmac.compare_digest(user.api_key.encode(), key.encode()):
            raise _unauthorized("invalid API key")
        return Principal.of(user, "Bearer")

    async def _password_user(self, encoded: str) -> Principal:
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise _unauthorized("failed to decode basic auth credentials") from None
        username, colon, password = decoded.partition(":")
        if not colon:
            raise _unauthorized("invalid basic auth credentials format")
        user = self._by_username.get(username.lower())
        stored = user.password if user is not None else ""
        if user is not None and not _hashed(stored):
            # A plain-text password (Bacalhau accepts them): compared in constant time.
            if hmac.compare_digest(stored.encode(), password.encode()):
                return Principal.of(user, "Basic")
            raise _unauthorized("invalid basic auth credentials")
        principal = await self._remembered_check(decoded, user, password)
        if principal is None:
            raise _unauthorized("invalid basic auth credentials")
        return principal

    async def _remembered_check(
        self, credential: str, user: ApiUser | None, password: str
    ) -> Principal | None:
        key = _digest(self._secret, credential.encode())
        found = self._verified.get(key)
        if found is not None and found[0] > time.monotonic():
            self._verified.move_to_end(key)
            return found[1]
        # The check is a task of its own, shared by every request with this credential that
        # arrives meanwhile: a caller that goes away does not waste (or cancel) it.
        task = self._checking.get(key)
        if task is None:
            task = asyncio.create_task(self._check(key, user, password))
            self._checking[key] = task
            task.add_done_callback(lambda _: self._checking.pop(key, None))
        return await asyncio.shield(task)

    async def _check(self, key: bytes, user: ApiUser | None, password: str) -> Principal | None:
        ok = await self._bcrypt(password, user.password if user is not None else "")
        principal = Principal.of(user, "Basic") if ok and user is not None else None
        self._remember(key, time.monotonic() + self._ttl, principal)
        return principal

    async def _bcrypt(self, password: str, hashed: str) -> bool:
        import bcrypt

        if self._bcrypt_slots is None:
            self._bcrypt_slots = asyncio.Semaphore(_BCRYPT_CONCURRENCY)
        secret = password.encode()
        target = hashed.encode() if hashed else self._dummy_hash

        def check() -> bool:
            try:
                return bcrypt.checkpw(secret, target)
            except ValueError:  # longer than bcrypt's 72 bytes (bcrypt >= 5 refuses them)
                return False

        async with self._bcrypt_slots:
            self.password_checks += 1
            return await asyncio.to_thread(check) and bool(hashed)

    def _remember(self, key: bytes, expires: float, principal: Principal | None) -> None:
        self._verified[key] = (expires, principal)
        self._verified.move_to_end(key)
        while len(self._verified) > self._max:
            self._verified.popitem(last=False)


def _hashed(password: str) -> bool:
    # The configuration let through only well-formed hashes under this prefix.
    return password.startswith("$2")


def _unauthorized(reason: str) -> Unauthorized:
    return Unauthorized(
        f"Request Unauthorized: {reason}", hint=CREDENTIALS_HINT, details={"reason": reason}
    )
