"""Linux's capabilities, by the names Docker takes: read by the configuration (which must not
load the executors) and the Docker executor."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["CAPABILITY_NAMES", "capability_names"]

#: Every capability by its name without ``CAP_``, and ``ALL``.
CAPABILITY_NAMES = frozenset(
    [
        "ALL",
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_ADMIN",
        "NET_RAW",
        "IPC_LOCK",
        "IPC_OWNER",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_CHROOT",
        "SYS_PTRACE",
        "SYS_PACCT",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_NICE",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "MKNOD",
        "LEASE",
        "AUDIT_WRITE",
        "AUDIT_CONTROL",
        "SETFCAP",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "SYSLOG",
        "WAKE_ALARM",
        "BLOCK_SUSPEND",
        "AUDIT_READ",
        "PERFMON",
        "BPF",
        "CHECKPOINT_RESTORE",
    ]
)


def capability_names(names: Iterable[str]) -> tuple[str, ...]:
    """``names`` as Docker spells them: upper case, without ``CAP_`` (``cap_net_raw``:
    ``NET_RAW``). Raises :class:`ValueError` naming those that are no capability."""
    spelled = tuple(str(n).upper().removeprefix("CAP_") for n in names)
    unknown = [n for n in spelled if n not in CAPABILITY_NAMES]
    if unknown:
        raise ValueError(f"unknown capabilities: {', '.join(unknown)}")
    return spelled
