"""Client profiles (Bacalhau v1.9): named API endpoints with their credentials.

Laid out as Bacalhau lays them out, so either CLI reads the other's::

    <data-dir>/profiles/
        prod.yaml        endpoint, description, timeout, auth.token, tls.insecure
        staging.yaml
        current -> prod.yaml

A profile file holds only what was set (``endpoint: https://api.example.com:443``,
``auth: {token: ...}``), is written with mode 0600 (it may hold an API key) and replaced
atomically. ``auth.token`` is an API key, sent as ``Authorization: Bearer``; ours add
``auth.username`` and ``auth.password`` for Basic credentials (Bacalhau's CLI ignores them).

Which profile is in effect: ``--profile``, else ``BACALHAU_PROFILE``, else the ``current``
link; see :class:`~bacalhau.cli._root.CliState` for how it ranks with flags and variables.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import yaml

from bacalhau._yaml import load_yaml
from bacalhau.config import parse_duration
from bacalhau.errors import InvalidRequest, NotFound

if TYPE_CHECKING:
    from bacalhau.client import Credentials

__all__ = ["DEFAULT_TIMEOUT", "Profile", "ProfileStore", "endpoint_url"]

#: A profile's request timeout when it sets none (Bacalhau's).
DEFAULT_TIMEOUT = "30s"
_CURRENT = "current"
_SUFFIX = ".yaml"
_DEFAULT_PORT = 1234


#: A host name (letters, digits, dots, dashes; underscores as some resolvers allow them) or
#: an IPv4 or (unbracketed, as urlsplit gives it) IPv6 address.
_HOST = re.compile(r"[A-Za-z0-9._-]+|[0-9A-Fa-f:.]+(%[A-Za-z0-9._-]+)?")


def endpoint_url(endpoint: str) -> str:
    """``endpoint`` (``host``, ``host:port``, ``http(s)://host[:port]``) as a base URL, the
    port 1234 when it names none (as Bacalhau completes it); a path, query or another scheme
    is an :class:`InvalidRequest`."""
    text = endpoint.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    problem = ""
    if parts.scheme not in ("http", "https"):
        problem = f"the scheme must be http or https, not {parts.scheme!r}"
    elif not parts.hostname:
        problem = "it names no host"
    elif not _HOST.fullmatch(parts.hostname):
        problem = f"{parts.hostname!r} is not a host name or an IP address"
    elif parts.path not in ("", "/") or parts.query or parts.fragment:
        problem = "it must be host:port or a URL without a path"
    try:
        port = parts.port or _DEFAULT_PORT
    except ValueError:
        problem = problem or "its port is not a number from 1 to 65535"
        port = 0
    if problem:
        raise InvalidRequest(
            f"endpoint {endpoint!r} is not usable: {problem}",
            hint="write host:port (127.0.0.1:1234) or a URL (https://api.example.com:443)",
            details={"Field": "endpoint"},
        )
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}:{port}"


@dataclass(frozen=True, slots=True)
class Profile:
    """One profile. ``token`` is an API key (Bacalhau's ``auth.token``); ``username`` and
    ``password`` are ours (Basic credentials); ``timeout`` is a Go duration (``30s``)."""

    endpoint: str
    description: str = ""
    timeout: str = ""
    token: str = ""
    username: str = ""
    password: str = ""
    insecure: bool = False

    def check(self) -> Profile:
        """The profile, if usable (an endpoint, a duration for timeout); raises
        :class:`InvalidRequest` otherwise."""
        if not self.endpoint.strip():
            raise InvalidRequest("endpoint is required", details={"Field": "endpoint"})
        endpoint_url(self.endpoint)
        if self.timeout:
            parse_duration("timeout", self.timeout)
        if bool(self.username) != bool(self.password):
            raise InvalidRequest(
                "a profile's username needs its password (and the password its username)",
                details={"Field": "auth"},
            )
        return self

    @property
    def url(self) -> str:
        """The API's base URL."""
        return endpoint_url(self.endpoint)

    @property
    def timeout_seconds(self) -> float:
        return parse_duration("timeout", self.timeout or DEFAULT_TIMEOUT)

    def credentials(self, name: str) -> Credentials | None:
        """What the profile authenticates with (None: nothing)."""
        # Imported here: offline commands (profile list, --help) do not load the client.
        from bacalhau.client import Credentials

        source = f"profile {name!r}"
        if self.token:
            return Credentials.api_key(self.token, source=source)
        if self.username:
            return Credentials.basic(self.username, self.password, source=source)
        return None

    @property
    def auth_kind(self) -> str:
        """``token``, ``basic`` or ``""``: what ``profile list`` shows."""
        return "token" if self.token else "basic" if self.username else ""

    def to_dict(self) -> dict[str, Any]:
        """The file's content: only what is set, spelled as Bacalhau spells it."""
        out: dict[str, Any] = {"endpoint": self.endpoint}
        if self.description:
            out["description"] = self.description
        if self.timeout:
            out["timeout"] = self.timeout
        auth = {
            k: v
            for k, v in (
                ("token", self.token),
                ("username", self.username),
                ("password", self.password),
            )
            if v
        }
        if auth:
            out["auth"] = auth
        if self.insecure:
            out["tls"] = {"insecure": True}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        auth = data.get("auth") or {}
        tls = data.get("tls") or {}
        if not isinstance(auth, Mapping) or not isinstance(tls, Mapping):
            raise InvalidRequest("auth and tls must be mappings")
        return cls(
            endpoint=str(data.get("endpoint") or ""),
            description=str(data.get("description") or ""),
            timeout=str(data.get("timeout") or ""),
            token=str(auth.get("token") or ""),
            username=str(auth.get("username") or ""),
            password=str(auth.get("password") or ""),
            insecure=bool(tls.get("insecure", False)),
        )


class ProfileStore:
    """The profiles under ``<data_dir>/profiles``."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir / "profiles"

    def path(self, name: str) -> Path:
        """Where profile ``name`` lives; a name that is not a plain file name is refused."""
        clean = name.strip()
        if not clean:
            raise InvalidRequest("profile name cannot be empty", details={"Field": "name"})
        if clean != name or "/" in name or "\\" in name or name in (".", "..", _CURRENT):
            raise InvalidRequest(
                f"{name!r} cannot name a profile",
                hint="use a plain name such as prod or staging (no slashes; not 'current')",
                details={"Field": "name"},
            )
        return self.dir / f"{name}{_SUFFIX}"

    def exists(self, name: str) -> bool:
        return self.path(name).is_file()

    def names(self) -> list[str]:
        """Every profile's name, sorted."""
        if not self.dir.is_dir():
            return []
        return sorted(
            p.name[: -len(_SUFFIX)]
            for p in self.dir.iterdir()
            if p.name.endswith(_SUFFIX) and p.is_file() and not p.is_symlink()
        )

    def load(self, name: str) -> Profile:
        """Profile ``name``; :class:`NotFound` when there is none."""
        path = self.path(name)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise NotFound(
                f"profile {name!r} not found",
                hint=_listing_hint(self.names()),
                component="CLI",
            ) from None
        try:
            data = load_yaml(text) or {}
            if not isinstance(data, Mapping):
                raise InvalidRequest("it does not hold a mapping")
            return Profile.from_dict(data)
        except (yaml.YAMLError, InvalidRequest) as exc:
            raise InvalidRequest(
                f"profile {name!r} ({path}) cannot be read: {exc}",
                hint=f"fix the file, or save the profile again: bacalhau profile save {name} ...",
            ) from None

    def save(self, name: str, profile: Profile) -> Path:
        """Write profile ``name`` (mode 0600, replacing the old file in one step)."""
        path = self.path(name)
        profile.check()
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        text = yaml.safe_dump(profile.to_dict(), sort_keys=False, allow_unicode=True)
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=f".{name}.", suffix=".tmp")
        try:
            # mkstemp creates the file 0600 already: the key is never readable by others.
            with os.fdopen(fd, "w") as out:
                out.write(text)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return path

    def delete(self, name: str) -> None:
        """Remove profile ``name`` (and the ``current`` link when it points to it)."""
        path = self.path(name)
        if self.current() == name:
            self._current_link().unlink(missing_ok=True)
        try:
            path.unlink()
        except FileNotFoundError:
            raise NotFound(
                f"profile {name!r} not found", hint=_listing_hint(self.names()), component="CLI"
            ) from None

    def current(self) -> str | None:
        """The profile the ``current`` link points to (None: no link)."""
        try:
            target = os.readlink(self._current_link())
        except (FileNotFoundError, OSError):
            return None
        name = os.path.basename(target)
        return name[: -len(_SUFFIX)] if name.endswith(_SUFFIX) else name

    def select(self, name: str) -> None:
        """Make profile ``name`` the current one (a relative ``current`` link, as
        Bacalhau makes it)."""
        self.load(name)  # it must exist and be readable
        link = self._current_link()
        tmp = self.dir / f".{_CURRENT}.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        os.symlink(f"{name}{_SUFFIX}", tmp)
        os.replace(tmp, link)

    def _current_link(self) -> Path:
        return self.dir / _CURRENT


def _listing_hint(names: list[str]) -> str:
    if not names:
        return "create one: bacalhau profile save NAME --endpoint HOST:PORT"
    return f"the profiles are: {', '.join(names)} (bacalhau profile list)"
