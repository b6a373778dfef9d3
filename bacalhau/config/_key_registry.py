"""What a configuration key is to this node: the shapes of the key registry.

Every key is one of three kinds (:class:`KeyStatus`): it sets one of our settings
(``mapped``), it is accepted and has no effect here (``ignored``: one warning line at
startup names it and says why), or it asks for something this node does not do in a way
that would hurt if we ran anyway (``refused``: an error with a hint, before anything
starts). A refused key set to nothing (``false``, empty) asks for nothing and passes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bacalhau.errors import InvalidConfiguration

#: ``parse(key, value)``: the value checked and converted; errors name ``key``.
Parse = Callable[[str, Any], Any]
#: ``convert(key, parsed, current)``: the new value of the field the key sets, given the
#: field's current value (a key may set one part of a structured field).
Convert = Callable[[str, Any, Any], Any]


class KeyStatus(StrEnum):
    """What a configuration key does on this node."""

    MAPPED = "mapped"
    IGNORED = "ignored"
    REFUSED = "refused"


class KeyOrigin(StrEnum):
    """Who defines the key: Bacalhau (its ``generated_constants.go``, v1.5-v1.9) or us."""

    BACALHAU = "bacalhau"
    OURS = "ours"


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """One configuration key, as :func:`bacalhau.config.describe_key` describes it.

    ``key`` is the canonical spelling (Bacalhau's ``Compute.AllocatedCapacity.CPU``, or our
    field name such as ``api_port``); ``field`` the :class:`~bacalhau.config.NodeConfig`
    field it sets (None when ignored or refused); ``reason`` why it is ignored or refused
    (empty when mapped); ``hint`` what to do instead of a refused key.
    """

    key: str
    field: str | None
    status: KeyStatus
    origin: KeyOrigin
    reason: str = ""
    hint: str = ""


class IgnoredValue(Exception):
    """Raised by a mapped key's conversion for a value it accepts but cannot honour here
    (``NameProvider: aws``): the key is then ignored with this reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """A registered key: its description and how its values are read."""

    info: KeyInfo
    parse: Parse
    convert: Convert | None = None
    #: For a refused key: whether a (parsed) value asks for what is refused.
    asks: Callable[[Any], bool] | None = None

    def refusal(self, key: str, value: Any) -> InvalidConfiguration:
        return InvalidConfiguration(
            f"configuration key {self.info.key} = {_short(value)} is refused: {self.info.reason}",
            hint=self.info.hint or None,
            details={"Field": key},
        )


def normalise(key: str) -> str:
    """The spelling keys are matched by: any case, ``.`` or ``-`` for ``_``."""
    return re.sub(r"[.\-]", "_", key.strip().lower())


def is_empty(value: Any) -> bool:
    """Whether a value asks for nothing: false, zero, empty text or an empty collection."""
    if value is None or value is False:
        return True
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value == 0
    if isinstance(value, str):
        return value.strip() in ("", "0", "0s")
    if isinstance(value, (Mapping, list, tuple)):
        return len(value) == 0
    return False


def mapped(key: str, field: str, parse: Parse, convert: Convert | None = None) -> KeyEntry:
    """A Bacalhau key that sets our ``field`` (``parse`` gives the field's value, or
    ``convert`` does, from it and the field's current value)."""
    return KeyEntry(KeyInfo(key, field, KeyStatus.MAPPED, KeyOrigin.BACALHAU), parse, convert)


def ignored(key: str, parse: Parse, reason: str) -> KeyEntry:
    """A Bacalhau key accepted (its value still checked) and without effect here."""
    return KeyEntry(KeyInfo(key, None, KeyStatus.IGNORED, KeyOrigin.BACALHAU, reason), parse)


def refused(
    key: str,
    parse: Parse,
    reason: str,
    hint: str,
    asks: Callable[[Any], bool] = lambda value: not is_empty(value),
) -> KeyEntry:
    """A Bacalhau key refused when its value ``asks`` for something (by default: is not
    empty); an empty one asks for nothing and is accepted silently."""
    info = KeyInfo(key, None, KeyStatus.REFUSED, KeyOrigin.BACALHAU, reason, hint)
    return KeyEntry(info, parse, asks=asks)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
