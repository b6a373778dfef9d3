"""The API's users as the operator configures them (``API.Auth.Users``, Bacalhau v1.7+).

Each user authenticates either with a username and password (HTTP Basic; the password a
bcrypt hash as ``bacalhau auth hash-password`` prints it, or plain text as Bacalhau also
accepts) or with an API key (``Authorization: Bearer <key>``), and holds capabilities: lists
of actions such as ``read:job``, ``write:node``, ``read:*`` or ``*``::

    API:
      Auth:
        Users:
          - Alias: Job Manager
            Username: jobmanager
            Password: $2b$10$...            # bacalhau auth hash-password
            Capabilities:
              - Actions: [read:job, write:job, read:node]
          - Alias: CI
            APIKey: 2E8D7F5B3A9C41608D2E6B7F4A5C3D9E
            Capabilities:
              - Actions: ["*"]

Every user is checked as the node starts, with Bacalhau's rules (one way to authenticate,
alphanumeric usernames, lengths, at least one capability, no duplicate username, alias or
key) and two more: a password that starts like a bcrypt hash must be a well-formed one
(Bacalhau would take a cut-off hash as a plain-text password), and every action must be one
Bacalhau defines (an action spelled wrong would grant nothing, silently).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from bacalhau._yaml import load_yaml
from bacalhau.errors import InvalidRequest

__all__ = ["CAPABILITY_ACTIONS", "ApiUserConfig", "is_bcrypt_hash"]

#: Every action a capability may hold (Bacalhau's ``pkg/authz/capabilities.go``): reading
#: (GET) or writing (any other method) jobs, nodes or the agent, and the wildcards.
CAPABILITY_ACTIONS = (
    "*",
    "read:*",
    "write:*",
    "read:job",
    "write:job",
    "read:node",
    "write:node",
    "read:agent",
    "write:agent",
)

# Bacalhau's limits (pkg/authz/entry_point_authorizer.go).
USERNAME_MAX = 100
PASSWORD_MIN, PASSWORD_MAX = 10, 255
API_KEY_MIN, API_KEY_MAX = 20, 255

_USERNAME = re.compile(r"[A-Za-z0-9]+")
#: ``$2a$``/``$2b$``/``$2y$``, a two-digit cost from 04 to 31, then 53 characters of
#: bcrypt's base64 (22 of salt, 31 of hash): the only shape a bcrypt library verifies.
_BCRYPT = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
_KEYS = {
    "alias": "Alias",
    "username": "Username",
    "password": "Password",
    "apikey": "APIKey",
    "capabilities": "Capabilities",
}
_HASH_HINT = "store the hash `bacalhau auth hash-password` prints, whole and quoted"


def is_bcrypt_hash(password: str) -> bool:
    """Whether ``password`` is a well-formed bcrypt hash (not: whether it looks like one)."""
    return _BCRYPT.fullmatch(password) is not None


@dataclass(frozen=True, slots=True)
class ApiUserConfig:
    """One user of the API: ``username`` and ``password`` (a bcrypt hash or plain text), or
    ``api_key``; ``alias`` names them in messages; ``actions`` are the actions of all their
    capabilities, in order."""

    username: str = ""
    password: str = ""
    api_key: str = ""
    alias: str = ""
    actions: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """How messages name the user: the alias, else the username, else the end of the
        API key (Bacalhau's wording)."""
        if self.alias:
            return self.alias
        if self.username:
            return self.username
        return f"API key ending in ...{self.api_key[-5:]}"

    @property
    def plain_text_password(self) -> bool:
        """Whether the password is stored as it is typed (Bacalhau accepts it; a hash is
        better, and a node says so once as it starts)."""
        return bool(self.password) and not is_bcrypt_hash(self.password)

    def to_dict(self) -> dict[str, Any]:
        """The user as a config file holds it (Bacalhau's spelling, unset fields left out)."""
        out: dict[str, Any] = {}
        for attr, key in (
            ("alias", "Alias"),
            ("username", "Username"),
            ("password", "Password"),
            ("api_key", "APIKey"),
        ):
            if getattr(self, attr):
                out[key] = getattr(self, attr)
        out["Capabilities"] = [{"Actions": list(self.actions)}]
        return out

    @classmethod
    def parse_list(cls, key: str, value: Any) -> tuple[ApiUserConfig, ...]:
        """The users of a config file (YAML) or of ``-c Key=[...]`` (JSON or YAML text),
        checked; each error names the key, the user's index and the field at fault."""
        if isinstance(value, str):
            try:
                value = load_yaml(value) if value.strip() else []
            except yaml.YAMLError as exc:
                raise InvalidRequest(
                    f"{key} is not a JSON or YAML list: {exc}", details={"Field": key}
                ) from None
        if value is None:
            value = []
        if isinstance(value, Mapping):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise InvalidRequest(f"{key} must be a list of users", details={"Field": key})
        users = tuple(cls._parse_one(f"{key}[{i}]", item) for i, item in enumerate(value))
        _check_unique(key, users)
        return users

    @classmethod
    def _parse_one(cls, where: str, item: Any) -> ApiUserConfig:
        if not isinstance(item, Mapping):
            raise InvalidRequest(f"{where} must be a mapping", details={"Field": where})
        raw: dict[str, Any] = {}
        for k, v in item.items():
            name = str(k).lower().replace("_", "")
            if name not in _KEYS:
                raise InvalidRequest(
                    f"{where} has an unknown key {k!r}",
                    hint="a user has Alias, Username and Password, or APIKey, and Capabilities",
                    details={"Field": f"{where}.{k}"},
                )
            raw[name] = v
        text = {k: _text(where, _KEYS[k], raw.get(k)) for k in ("alias", "username", "password")}
        api_key = _text(where, "APIKey", raw.get("apikey"))
        user = cls(
            username=text["username"],
            password=text["password"],
            api_key=api_key,
            alias=text["alias"],
            actions=_actions(where, raw.get("capabilities")),
        )
        _check_credentials(where, user)
        return user


def _text(where: str, name: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidRequest(f"{where}.{name} must be text", details={"Field": f"{where}.{name}"})
    return str(value)


def _actions(where: str, value: Any) -> tuple[str, ...]:
    field = f"{where}.Capabilities"
    if value is None or value == []:
        raise InvalidRequest(
            f"user {where} has no capabilities: it could do nothing",
            hint="give it Capabilities: [{Actions: [read:job, write:job]}] (or read:*, *)",
            details={"Field": field},
        )
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise InvalidRequest(f"{field} must be a list", details={"Field": field})
    actions: list[str] = []
    for i, capability in enumerate(value):
        here = f"{field}[{i}]"
        if not isinstance(capability, Mapping):
            raise InvalidRequest(f"{here} must be a mapping with Actions", details={"Field": here})
        found = {str(k).lower(): v for k, v in capability.items()}
        unknown = sorted(set(found) - {"actions"})
        if unknown:
            raise InvalidRequest(
                f"{here} has unknown keys: {', '.join(unknown)}",
                hint="a capability is {Actions: [...]}: the action names the resource "
                "(read:job, write:node, ...)",
                details={"Field": here},
            )
        listed = found.get("actions")
        if isinstance(listed, str):
            listed = [a for a in listed.split(",") if a.strip()]
        if not isinstance(listed, (list, tuple)) or not listed:
            raise InvalidRequest(
                f"{here}.Actions must be a list of actions", details={"Field": f"{here}.Actions"}
            )
        for action in listed:
            actions.append(_action(f"{here}.Actions", action))
    return tuple(actions)


def _action(where: str, action: Any) -> str:
    text = str(action).strip()
    if text in CAPABILITY_ACTIONS:
        return text
    hint = f"the actions are {', '.join(CAPABILITY_ACTIONS)}"
    if text.lower() in CAPABILITY_ACTIONS:
        hint = f"write it {text.lower()!r} (actions are matched exactly); {hint}"
    elif text.lower().rstrip("s") in CAPABILITY_ACTIONS:
        hint = f"did you mean {text.lower().rstrip('s')!r}? {hint}"
    raise InvalidRequest(
        f"{where} has an unknown action {text!r}", hint=hint, details={"Field": where}
    )


def _check_credentials(where: str, user: ApiUserConfig) -> None:
    has_password = bool(user.username and user.password)
    if has_password and user.api_key:
        raise InvalidRequest(
            f"user {where} ({user.name}) has both a username/password and an API key",
            hint="give each user one way to authenticate: Username and Password, or APIKey",
            details={"Field": where},
        )
    if not has_password and not user.api_key:
        missing = "Password" if user.username else "Username" if user.password else ""
        raise InvalidRequest(
            f"user {where} ({user.name}) has neither a username/password nor an API key"
            + (f" (it lacks a {missing})" if missing else ""),
            hint="give it Username and Password (a bcrypt hash: bacalhau auth hash-password), "
            "or APIKey",
            details={"Field": f"{where}.{missing}" if missing else where},
        )
    if user.username:
        field = f"{where}.Username"
        if len(user.username) > USERNAME_MAX:
            raise InvalidRequest(
                f"{field} is longer than {USERNAME_MAX} characters", details={"Field": field}
            )
        if not _USERNAME.fullmatch(user.username):
            raise InvalidRequest(
                f"{field} {user.username!r} must hold only letters and digits (a-z, A-Z, 0-9)",
                details={"Field": field},
            )
    if user.password:
        _check_password(f"{where}.Password", user)
    if user.api_key:
        field = f"{where}.APIKey"
        if not API_KEY_MIN <= len(user.api_key) <= API_KEY_MAX:
            raise InvalidRequest(
                f"{field} of {user.name} must be {API_KEY_MIN} to {API_KEY_MAX} characters long",
                hint="generate one with `openssl rand -hex 24`",
                details={"Field": field},
            )


def _check_password(field: str, user: ApiUserConfig) -> None:
    password = user.password
    if password.startswith("$2"):
        # Meant as a hash: one that is cut off or mistyped must not become a password.
        if not is_bcrypt_hash(password):
            raise InvalidRequest(
                f"{field} of {user.name} is not a valid bcrypt hash "
                "($2a$, $2b$ or $2y$, a cost from 04 to 31, and 53 characters of salt and hash)",
                hint=_HASH_HINT + " (YAML reads an unquoted $ as it is, but a shell does not)",
                details={"Field": field},
            )
        return
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise InvalidRequest(
            f"{field} of {user.name} must be {PASSWORD_MIN} to {PASSWORD_MAX} characters long",
            hint=_HASH_HINT,
            details={"Field": field},
        )


def _check_unique(key: str, users: tuple[ApiUserConfig, ...]) -> None:
    usernames: dict[str, str] = {}
    aliases: dict[str, str] = {}
    keys: set[str] = set()
    for i, user in enumerate(users):
        where = f"{key}[{i}]"
        for value, seen, what, field in (
            (user.username, usernames, "username", "Username"),
            (user.alias, aliases, "alias", "Alias"),
        ):
            if not value:
                continue
            if value.lower() in seen:
                raise InvalidRequest(
                    f"{key} names the {what} {value!r} twice ({seen[value.lower()]!r} comes "
                    f"before {where}; {what}s are matched in any case)",
                    details={"Field": f"{where}.{field}"},
                )
            seen[value.lower()] = value
        if user.api_key:
            if user.api_key in keys:
                raise InvalidRequest(
                    f"{key} holds the API key of {where} ({user.name}) twice",
                    hint="give every user a key of its own",
                    details={"Field": f"{where}.APIKey"},
                )
            keys.add(user.api_key)
