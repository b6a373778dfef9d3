"""Where a node's key material lives, and writing secrets safely.

A node's data directory holds::

    node.key   the node's ed25519 identity key (PEM, PKCS#8, mode 0600)
    tls.key    the private key of its TLS certificate (PEM, mode 0600)
    tls.crt    its certificate, issued by the cluster CA
    ca.crt     the cluster CA's certificate (the only root it trusts)

A cluster CA directory holds ``ca.key`` (mode 0600) and ``ca.crt``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from bacalhau.errors import InvalidConfiguration

NODE_KEY_FILE = "node.key"
TLS_KEY_FILE = "tls.key"
TLS_CERT_FILE = "tls.crt"
CA_CERT_FILE = "ca.crt"
CA_KEY_FILE = "ca.key"


@dataclass(frozen=True, slots=True)
class NodeFiles:
    """Paths of the identity and TLS files in one node's data directory."""

    data_dir: Path
    node_key: Path
    tls_key: Path
    tls_cert: Path
    ca_cert: Path

    @classmethod
    def in_dir(cls, data_dir: str | os.PathLike[str]) -> NodeFiles:
        d = Path(data_dir)
        return cls(
            data_dir=d,
            node_key=d / NODE_KEY_FILE,
            tls_key=d / TLS_KEY_FILE,
            tls_cert=d / TLS_CERT_FILE,
            ca_cert=d / CA_CERT_FILE,
        )


def write_private(path: Path, data: bytes, *, exclusive: bool = False) -> bool:
    """Write a secret file with mode 0600, atomically.

    The content goes to a temporary file created 0600 in the same directory, is flushed to
    disk, then moved into place, so a crash never leaves a half-written key and the secret is
    never readable by others, even briefly. With ``exclusive``, an existing file is kept and
    ``False`` is returned (two processes creating the same key race safely).
    """
    return _write(path, data, 0o600, exclusive=exclusive)


def write_public(path: Path, data: bytes) -> None:
    """Write a non-secret file (a certificate) atomically, mode 0644."""
    _write(path, data, 0o644, exclusive=False)


def _write(path: Path, data: bytes, mode: int, *, exclusive: bool) -> bool:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # the umask may have narrowed it
        if exclusive:
            try:
                os.link(tmp, path)  # fails if the file appeared meanwhile
            except FileExistsError:
                return False
        else:
            os.replace(tmp, path)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def read_private(path: Path, *, what: str, hint: str) -> bytes:
    """Read a secret file, refusing one that others can read (as ssh does)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InvalidConfiguration(f"{what} {path} does not exist", hint=hint) from None
    if not stat.S_ISREG(st.st_mode):
        raise InvalidConfiguration(
            f"{what} {path} is not a file", hint=f"put the {what} file at {path}"
        )
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InvalidConfiguration(
            f"{what} {path} is accessible by other users (mode {stat.S_IMODE(st.st_mode):04o})",
            hint=f"restrict it with `chmod 600 {path}`",
        )
    return _read(path, what=what, hint=hint)


def read_public(path: Path, *, what: str, hint: str) -> bytes:
    return _read(path, what=what, hint=hint)


def _read(path: Path, *, what: str, hint: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InvalidConfiguration(f"{what} {path} does not exist", hint=hint) from None
    except OSError as e:
        # It exists: the hint for a missing file would mislead.
        raise InvalidConfiguration(
            f"cannot read {what} {path}: {e.strerror}",
            hint="the node must be able to read it: check the file's owner and mode, and "
            "that it is a file",
        ) from e
