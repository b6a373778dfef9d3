"""Credentials the clients send, as Bacalhau's clients send them (v1.7+).

An API key travels as ``Authorization: Bearer <key>``, a username and password as
``Authorization: Basic base64(username:password)`` (on gRPC: the ``authorization`` metadata
key). By default the clients take them from the environment, as Bacalhau's CLI does:
``BACALHAU_API_KEY``, or ``BACALHAU_API_USERNAME`` and ``BACALHAU_API_PASSWORD`` (values
trimmed; giving both kinds, or half a pair, is an error). A server's 401 or 403 comes back as
:class:`~bacalhau.errors.Unauthorized` or :class:`~bacalhau.errors.Forbidden` with a hint
that says which credentials were sent, from where, and what to set instead.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bacalhau.errors import BacalhauError, Forbidden, InvalidRequest, Unauthorized

__all__ = [
    "API_KEY_ENV",
    "PASSWORD_ENV",
    "USERNAME_ENV",
    "AuthStatus",
    "Credentials",
    "Identity",
    "explain_refusal",
]

API_KEY_ENV = "BACALHAU_API_KEY"
USERNAME_ENV = "BACALHAU_API_USERNAME"
PASSWORD_ENV = "BACALHAU_API_PASSWORD"

_SET_THEM = (
    f"set {API_KEY_ENV}, or {USERNAME_ENV} and {PASSWORD_ENV} (the CLI also takes them "
    "from a profile: bacalhau profile save NAME --api-key ...)"
)


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a client authenticates with: ``scheme`` ``Bearer`` (``secret`` an API key) or
    ``Basic`` (``username`` and ``secret`` the password), or nothing (empty ``scheme``).
    ``source`` says where they came from, for messages (``BACALHAU_API_KEY``, a profile)."""

    scheme: str = ""
    secret: str = ""
    username: str = ""
    source: str = ""

    @classmethod
    def api_key(cls, key: str, *, source: str = "the client's arguments") -> Credentials:
        """An API key, sent as ``Authorization: Bearer <key>``."""
        return cls("Bearer", key, "", source)

    @classmethod
    def basic(
        cls, username: str, password: str, *, source: str = "the client's arguments"
    ) -> Credentials:
        """A username and password, sent as ``Authorization: Basic ...``."""
        return cls("Basic", password, username, source)

    @classmethod
    def none(cls) -> Credentials:
        """No credentials (the environment is not read either)."""
        return cls()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Credentials:
        """The credentials the environment gives (none when it gives none); raises
        :class:`~bacalhau.errors.InvalidRequest` when it gives both kinds or half a pair."""
        env = os.environ if environ is None else environ
        key = env.get(API_KEY_ENV, "").strip()
        username = env.get(USERNAME_ENV, "").strip()
        password = env.get(PASSWORD_ENV, "").strip()
        if key and (username or password):
            raise InvalidRequest(
                f"can't use both {API_KEY_ENV} and {USERNAME_ENV}/{PASSWORD_ENV} simultaneously",
                hint="unset one of them: an API key, or a username and password",
                component="Client",
            )
        if key:
            return cls.api_key(key, source=API_KEY_ENV)
        if username and password:
            return cls.basic(username, password, source=f"{USERNAME_ENV}/{PASSWORD_ENV}")
        if username or password:
            given, missing = (
                (USERNAME_ENV, PASSWORD_ENV) if username else (PASSWORD_ENV, USERNAME_ENV)
            )
            raise InvalidRequest(
                f"{given} provided but not {missing}",
                hint=f"set {missing} too, or unset {given}",
                component="Client",
            )
        return cls()

    def __bool__(self) -> bool:
        return bool(self.scheme)

    @property
    def header(self) -> str | None:
        """The ``Authorization`` header value (None: send none)."""
        if self.scheme == "Bearer":
            return f"Bearer {self.secret}"
        if self.scheme == "Basic":
            token = base64.b64encode(f"{self.username}:{self.secret}".encode()).decode()
            return f"Basic {token}"
        return None

    def describe(self) -> str:
        """The credentials for humans, with no secret in it: ``API key ...3D9E``,
        ``username alice``, ``no credentials``."""
        if self.scheme == "Bearer":
            return f"API key ...{self.secret[-4:]}" if len(self.secret) > 8 else "API key ****"
        if self.scheme == "Basic":
            return f"username {self.username}"
        return "no credentials"

    def __repr__(self) -> str:
        # Never print a secret, even in a traceback.
        return f"Credentials({self.describe()!r}, source={self.source!r})"


#: How Bacalhau's API hints at a refused capability.
FORBIDDEN_HINT = "Check if user have access to this resource. Event has been recorded."


def explain_refusal(err: BacalhauError, credentials: Credentials) -> BacalhauError:
    """``err`` with a hint saying what was sent and what to do, when the API refused the
    credentials (401) or their capabilities (403); any other error as it is."""
    reason = err.details.get("reason", "")
    if isinstance(err, Unauthorized):
        if not credentials:
            err.hint = f"this API asks for credentials: {_SET_THEM}"
        else:
            why = f" ({reason})" if reason else ""
            err.hint = (
                f"the API refused the {credentials.describe()} from {credentials.source}"
                f"{why}: check it, or {_SET_THEM}"
            )
    elif isinstance(err, Forbidden):
        needed = err.details.get("RequiredCapability", "")
        what = f"the capability {needed}" if needed else "the capability this call needs"
        # Bacalhau's words first (its own suite looks for them), then ours.
        err.hint = (
            f"{FORBIDDEN_HINT} The {credentials.describe()} from {credentials.source} lacks "
            f"{what}: ask the node's operator to grant it (API.Auth.Users Capabilities), or "
            "use credentials that have it"
        )
    return err


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the API takes a client's credentials for: how it names them, their username and
    alias (either may be empty), the scheme they used (``Basic``, ``Bearer``) and the
    actions of their capabilities."""

    name: str
    username: str
    alias: str
    method: str
    capabilities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AuthStatus:
    """What the API says of authentication (our ``GET /api/v1/agent/whoami``): whether it
    asks for credentials, the ``Authorization`` schemes it takes, and who the credentials
    sent are (None: none were sent, or the API is open)."""

    auth_required: bool
    methods: tuple[str, ...]
    user: Identity | None

    @classmethod
    def from_dict(cls, data: Any) -> AuthStatus:
        body = data if isinstance(data, Mapping) else {}
        user = body.get("User")
        identity = None
        if isinstance(user, Mapping):
            identity = Identity(
                name=str(user.get("Name") or ""),
                username=str(user.get("Username") or ""),
                alias=str(user.get("Alias") or ""),
                method=str(user.get("Method") or ""),
                capabilities=tuple(str(c) for c in user.get("Capabilities") or ()),
            )
        return cls(
            auth_required=bool(body.get("AuthRequired")),
            methods=tuple(str(m) for m in body.get("Methods") or ()),
            user=identity,
        )
