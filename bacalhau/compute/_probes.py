"""The operator's own job-selection programs: exec and HTTP probes (Bacalhau's
``JobAdmissionControl.ProbeExec`` / ``ProbeHTTP``), bid strategies like the built-in ones.

Probes are the operator's programs, so they fail in every way a program can: missing, not
executable, hanging, printing garbage, a server that is down or slow or answers nonsense.
Each such failure is a "no" for that job with the cause as its reason, logged once per cause
(not once per job), and never an exception out of the bidder. Unlike Bacalhau's, both probes
have a timeout: a hung probe must not hold a bid forever.

Contracts (as Bacalhau's, see the compatibility reference, section 7.3):

- exec: ``bash -c COMMAND`` with the JSON ``{"NodeID": ..., "Job": {...}}`` on stdin and in
  ``BACALHAU_JOB_SELECTION_PROBE_DATA`` (when under 100 KiB); the environment holds only that
  and ``PATH``. Exit 0
  bids; otherwise the first line of its stderr (else stdout) is the reason.
- HTTP: ``POST URL`` with the same JSON. A status >= 400 rejects; a body, when there is one,
  must be a JSON object ``{"ShouldBid": bool, "Reason": str}`` (keys in any case); an empty
  2xx body bids.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from typing import Any

import aiohttp

from bacalhau.compute._bidder import BidRequest, BidVerdict
from bacalhau.errors import InvalidConfiguration
from bacalhau.models import Job

_log = logging.getLogger(__name__)

#: Seconds a probe may take when the operator sets no timeout.
DEFAULT_PROBE_TIMEOUT = 10.0
#: Bytes of a probe's output (each stream) or answer that are read; the rest is ignored.
_MAX_OUTPUT = 64 * 1024
#: Bytes of payload also put in the probe's environment: Linux refuses to start a program
#: with one variable over 128 KiB, so larger jobs reach the probe on stdin only.
_MAX_ENV_PAYLOAD = 100 * 1024
#: Characters of a probe's reason kept in the bid's answer.
_MAX_REASON = 500


def probe_payload(node_id: str, job: Job) -> bytes:
    """What both probes are given: ``{"NodeID": ..., "Job": {...}}`` (Bacalhau v1.5.0's shape,
    read by probes written for any v1 release)."""
    return json.dumps({"NodeID": node_id, "Job": job.to_dict()}).encode()


class _OnceLog:
    """Logs a probe's failure the first time its cause is seen: a broken probe fails every
    job the same way, and one warning says it (later ones go to debug)."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._seen: set[str] = set()

    def failed(self, cause: str) -> None:
        if cause in self._seen:
            _log.debug("%s: %s", self._what, cause)
            return
        self._seen.add(cause)
        _log.warning("%s: %s (counted as a no for every job it fails on)", self._what, cause)


def _first_line(data: bytes) -> str:
    for line in data.decode("utf-8", "replace").splitlines():
        if line.strip():
            return line.strip()[:_MAX_REASON]
    return ""


async def _read_capped(stream: asyncio.StreamReader | None) -> bytes:
    """Read a stream to its end, keeping the first bytes only (a chatty probe cannot fill
    memory, and it never blocks on a full pipe)."""
    if stream is None:
        return b""
    kept = bytearray()
    while chunk := await stream.read(65536):
        if len(kept) < _MAX_OUTPUT:
            kept += chunk[: _MAX_OUTPUT - len(kept)]
    return bytes(kept)


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    # The probe runs in its own session: kill everything it started, not only bash.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


class ExecProbe:
    """``JobAdmissionControl.ProbeExec``: the operator's command decides (exit 0 = bid)."""

    def __init__(self, command: str, *, timeout: float = DEFAULT_PROBE_TIMEOUT) -> None:
        if not command.strip():
            raise InvalidConfiguration(
                "the exec probe needs a command", details={"Field": "JobAdmissionControl.ProbeExec"}
            )
        self.command = command
        self._timeout = timeout
        self._log = _OnceLog(f"exec probe {command!r}")

    async def evaluate(self, request: BidRequest) -> BidVerdict:
        data = probe_payload(request.node_id, request.job)
        env = {"PATH": os.environ.get("PATH", os.defpath)}
        if len(data) <= _MAX_ENV_PAYLOAD:
            env["BACALHAU_JOB_SELECTION_PROBE_DATA"] = data.decode()
        try:
            proc = await asyncio.create_subprocess_exec(
                "bash",
                "-c",
                self.command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
        except OSError as err:
            return self._fail(f"could not start bash: {err.strerror or err}")
        try:
            async with asyncio.timeout(self._timeout):
                out, err_out, _ = await asyncio.gather(
                    _read_capped(proc.stdout),
                    _read_capped(proc.stderr),
                    _feed(proc, data),
                )
                code = await proc.wait()
        except TimeoutError:
            _kill_group(proc)
            await proc.wait()
            return self._fail(f"did not answer within {self._timeout:g}s")
        finally:
            if proc.returncode is None:  # cancelled while it ran
                _kill_group(proc)
        if code == 0:
            return BidVerdict.accept(
                f"this node does accept jobs where external command {self.command!r} "
                "returns exit code 0"
            )
        reason = _first_line(err_out) or _first_line(out)
        if code in (126, 127):  # bash: not executable / command not found
            return self._fail(reason or f"exit code {code}")
        if not reason:
            reason = f"external command {self.command!r} returned exit code {code}"
        return BidVerdict.reject(f"this node does not accept this job: {reason}")

    def _fail(self, cause: str) -> BidVerdict:
        self._log.failed(cause)
        return BidVerdict.reject(f"exec probe {self.command!r} failed: {cause}")


async def _feed(proc: asyncio.subprocess.Process, data: bytes) -> None:
    """Write the payload to the probe's stdin; a probe that does not read it is fine."""
    if proc.stdin is None:
        return
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        proc.stdin.write(data)
        await proc.stdin.drain()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        proc.stdin.close()
        await proc.stdin.wait_closed()


class HttpProbe:
    """``JobAdmissionControl.ProbeHTTP``: the operator's endpoint decides.

    An async context manager (it holds one HTTP session); used outside one, it opens a
    session per call."""

    def __init__(self, url: str, *, timeout: float = DEFAULT_PROBE_TIMEOUT) -> None:
        if not url.startswith(("http://", "https://")):
            raise InvalidConfiguration(
                f"the HTTP probe needs an http(s) URL, not {url!r}",
                details={"Field": "JobAdmissionControl.ProbeHTTP"},
            )
        self.url = url
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._log = _OnceLog(f"HTTP probe {url}")

    async def __aenter__(self) -> HttpProbe:
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def evaluate(self, request: BidRequest) -> BidVerdict:
        data = probe_payload(request.node_id, request.job)
        try:
            async with asyncio.timeout(self._timeout):
                status, body = await self._post(data)
        except TimeoutError:
            return self._fail(f"did not answer within {self._timeout:g}s")
        except aiohttp.ClientError as err:
            return self._fail(f"unreachable ({type(err).__name__}: {err})")
        if status >= 400:
            reason = _answer_reason(body) or f"url {self.url!r} returned HTTP status {status}"
            return BidVerdict.reject(f"this node does not accept this job: {reason}")
        if not body.strip():
            return BidVerdict.accept(
                f"this node does accept jobs where url {self.url!r} returns HTTP status {status}"
            )
        answer = _json_object(body)
        should_bid = _key(answer, "shouldbid") if answer is not None else None
        if not isinstance(should_bid, bool):
            return self._fail(
                'answered something that is not {"ShouldBid": bool, "Reason": str}: '
                + _first_line(body)[:80]
            )
        said = _key(answer, "reason") if answer is not None else None
        text = str(said)[:_MAX_REASON] if said else ""
        if should_bid:
            return BidVerdict.accept(text or f"this node does accept jobs url {self.url!r} accepts")
        return BidVerdict.reject(
            f"this node does not accept this job: {text}"
            if text
            else f"this node does not accept jobs url {self.url!r} rejects"
        )

    async def _post(self, data: bytes) -> tuple[int, bytes]:
        owned = self._session is None
        session = self._session or aiohttp.ClientSession()
        try:
            async with session.post(
                self.url, data=data, headers={"Content-Type": "application/json"}
            ) as resp:
                return resp.status, await resp.content.read(_MAX_OUTPUT)
        finally:
            if owned:
                await session.close()

    def _fail(self, cause: str) -> BidVerdict:
        self._log.failed(cause)
        return BidVerdict.reject(f"HTTP probe {self.url} failed: {cause}")


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _key(obj: dict[str, Any], lower: str) -> Any:
    """A key in any case (Bacalhau v1.5.0 wrote ``shouldBid``, v1.5.2 ``ShouldBid``)."""
    for key, value in obj.items():
        if key.lower() == lower:
            return value
    return None


def _answer_reason(body: bytes) -> str:
    answer = _json_object(body)
    reason = _key(answer, "reason") if answer is not None else None
    return str(reason)[:_MAX_REASON] if reason else ""
