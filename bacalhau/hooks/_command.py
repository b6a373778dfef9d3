"""One run of an operator's command, and the small readers of what such programs answer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shlex
import signal
import subprocess
from dataclasses import dataclass
from typing import Any, BinaryIO

#: Bytes of a program's output (each stream) or answer that are read; the rest is ignored.
MAX_OUTPUT = 64 * 1024
#: Bytes of payload also put in the program's environment: Linux refuses to start a program
#: with one variable over 128 KiB, so larger payloads reach it on stdin only.
MAX_ENV_PAYLOAD = 100 * 1024
#: Characters of a program's reason that are kept.
MAX_REASON = 500


class HookProgramFailed(Exception):
    """The program could not be started or did not finish in time (``str()``: the cause)."""


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    exit_code: int
    stdout: bytes
    stderr: bytes

    @property
    def said(self) -> str:
        """The first line of stderr, else of stdout: the program's reason."""
        return first_line(self.stderr) or first_line(self.stdout)


async def run_command(
    command: str, payload: bytes, *, env_name: str, timeout: float
) -> CommandOutcome:
    """Run ``bash -c command`` with ``payload`` on stdin (and in ``env_name`` when small), in
    an environment holding only that and ``PATH``, in its own session. Past ``timeout``, or
    when the caller is cancelled, everything it started is killed."""
    env = {"PATH": os.environ.get("PATH", os.defpath)}
    if len(payload) <= MAX_ENV_PAYLOAD:
        env[env_name] = payload.decode()
    # Started by the subprocess module (vfork and exec), not by the event loop: uvloop forks
    # the whole process, and in a node full of gRPC threads a forked child can crash before
    # it execs. Its pipes are made here too, real pipes on any loop (bash reads ~/.bashrc
    # when its stdin is a socket, as uvloop's are).
    pipes = [os.pipe() for _ in range(3)]
    (stdin_read, stdin_write), (out_read, out_write), (err_read, err_write) = pipes
    try:
        # Returns once the child has exec'd, as in asyncio's own subprocess transport.
        proc = subprocess.Popen(  # noqa: ASYNC220
            ["bash", "-c", command],
            stdin=stdin_read,
            stdout=out_write,
            stderr=err_write,
            env=env,
            start_new_session=True,
        )
    except OSError as err:
        for fd in (stdin_write, out_read, err_read):
            os.close(fd)
        raise HookProgramFailed(f"could not start bash: {err.strerror or err}") from None
    finally:
        for fd in (stdin_read, out_write, err_write):
            os.close(fd)
    stdin = os.fdopen(stdin_write, "wb", buffering=0)
    stdout, stderr = os.fdopen(out_read, "rb", buffering=0), os.fdopen(err_read, "rb", buffering=0)
    #: The pipes handed to the loop: their transports close them.
    handed: list[BinaryIO] = []
    code: int | None = None
    try:
        async with asyncio.timeout(timeout):
            out, err_out, _ = await asyncio.gather(
                _read_capped(stdout, handed),
                _read_capped(stderr, handed),
                _feed(stdin, payload, handed),
            )
            code = await _exited(proc)
    except TimeoutError:
        _kill_group(proc)
        await _exited(proc)
        raise HookProgramFailed(f"did not answer within {timeout:g}s") from None
    finally:
        if code is None:  # cancelled while it ran: killed, and reaped off the loop
            _kill_group(proc)
            asyncio.get_running_loop().run_in_executor(None, proc.wait)
        for pipe in (stdin, stdout, stderr):
            if not any(pipe is h for h in handed):  # its reading or feeding never started
                pipe.close()
    return CommandOutcome(code, out, err_out)


class OnceLog:
    """Logs a program's failure the first time its cause is seen: a broken program fails
    every call the same way, and one warning says it (later ones go to debug)."""

    def __init__(self, what: str, logger: logging.Logger) -> None:
        self._what = what
        self._log = logger
        self._seen: set[str] = set()

    def failed(self, cause: str) -> None:
        if cause in self._seen:
            self._log.debug("%s: %s", self._what, cause)
            return
        self._seen.add(cause)
        self._log.warning("%s: %s (counted as a no for every call it fails)", self._what, cause)


def first_line(data: bytes) -> str:
    """The first non-blank line, as :func:`reason_text`."""
    for line in data.decode("utf-8", "replace").splitlines():
        if line.strip():
            return reason_text(line.strip())
    return ""


def reason_text(value: object) -> str:
    """A program's or server's reason as it may be stored and shown: control characters
    escaped (``\\x1b``: a reason must not drive the terminal that prints it), at most
    :data:`MAX_REASON` characters, ending with "…" when it was cut."""
    whole = str(value)
    text = whole[: MAX_REASON + 1]  # one more: whether it must be cut shows
    if not text.isprintable():
        text = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)
    if len(text) > MAX_REASON:
        return text[: MAX_REASON - 1] + "…"  # cut: say so
    return text


#: Signals whose death means the program broke or was killed, not that it answered. A shell
#: running the program reports such a death as its own exit code 128+N.
_CRASH_SIGNALS = frozenset(
    {
        signal.SIGILL,
        signal.SIGTRAP,
        signal.SIGABRT,
        signal.SIGBUS,
        signal.SIGFPE,
        signal.SIGKILL,
        signal.SIGSEGV,
        signal.SIGTERM,
        signal.SIGSYS,
    }
)


def crashed(code: int) -> bool:
    """Whether ``code`` says the program died rather than answered: killed by a signal, or
    a shell wrapping it reporting a crash signal as 128+N (``sh wrapper.sh`` whose program
    segfaulted exits 139)."""
    return code < 0 or (code - 128) in _CRASH_SIGNALS


def exit_description(code: int) -> str:
    """How a program ended: ``exited with code 3``, ``was killed by SIGSEGV``, or ``exited
    with code 139 (SIGSEGV, as a shell reports it)``."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    if (code - 128) in _CRASH_SIGNALS:
        name = signal.Signals(code - 128).name
        return f"exited with code {code} ({name}, as a shell reports it)"
    return f"exited with code {code}"


def missing_program(command: str) -> str | None:
    """Why ``command``'s program cannot run now, or None: the first word of the command is
    looked up as bash will (a file, builtin, keyword or program on ``PATH``). Commands that
    do not start with a plain word (a variable, a redirection) are not judged."""
    try:
        words = shlex.split(command)
    except ValueError as err:
        return f"is not a valid command: {err}"
    if not words or not _PLAIN_WORD.fullmatch(words[0]):
        return None
    env = {"PATH": os.environ.get("PATH", os.defpath)}
    found = subprocess.run(
        ["bash", "-c", 'type -t -- "$1"', "bash", words[0]],
        env=env,
        capture_output=True,
        check=False,
    )
    if found.returncode == 0:
        return None
    if "/" in words[0]:
        return f"{words[0]!r} does not exist or is not executable"
    return f"{words[0]!r} is not found on PATH"


_PLAIN_WORD = re.compile(r"[\w./+@:,%-]+")


def json_object(body: bytes) -> dict[str, Any] | None:
    """``body`` as a JSON object, or None when it is not one."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def key_any_case(obj: dict[str, Any], lower: str) -> Any:
    """The value of a key in any case (Bacalhau v1.5.0 wrote ``shouldBid``, v1.5.2
    ``ShouldBid``)."""
    for key, value in obj.items():
        if key.lower() == lower:
            return value
    return None


async def _read_capped(pipe: BinaryIO, handed: list[BinaryIO]) -> bytes:
    """Read a pipe to its end, keeping the first bytes only (a chatty program cannot fill
    memory, and it never blocks on a full pipe)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    handed.append(pipe)
    try:
        protocol = asyncio.StreamReaderProtocol(reader)
        transport, _ = await loop.connect_read_pipe(lambda: protocol, pipe)
    except BaseException:
        pipe.close()
        raise
    kept = bytearray()
    try:
        while chunk := await reader.read(65536):
            if len(kept) < MAX_OUTPUT:
                kept += chunk[: MAX_OUTPUT - len(kept)]
    finally:
        transport.close()
    return bytes(kept)


async def _exited(proc: subprocess.Popen[bytes]) -> int:
    """Wait for ``proc`` to end without blocking the loop; its exit code (-N: signal N).
    Linux says so on a pidfd; elsewhere a thread waits."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        return await asyncio.to_thread(proc.wait)
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not ended.done():
            ended.set_result(None)

    loop.add_reader(pidfd, readable)
    try:
        await ended
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
    return proc.wait()  # it has ended: this reaps it at once


async def _feed(pipe: BinaryIO, data: bytes, handed: list[BinaryIO]) -> None:
    """Write the payload to the program's stdin (the write end of its pipe, closed here); a
    program that does not read it is fine."""
    loop = asyncio.get_running_loop()
    handed.append(pipe)
    try:
        protocol = asyncio.StreamReaderProtocol(asyncio.StreamReader())
        transport, _ = await loop.connect_write_pipe(lambda: protocol, pipe)
    except BaseException:
        pipe.close()
        raise
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    try:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        await writer.wait_closed()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    # The program runs in its own session: kill everything it started, not only bash.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
