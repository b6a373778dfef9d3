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
import json
import logging

import aiohttp

from bacalhau.compute._bidder import BidRequest, BidVerdict
from bacalhau.errors import InvalidConfiguration
from bacalhau.hooks import (
    AnswerTooLarge,
    HookProgramFailed,
    OnceLog,
    crashed,
    exit_description,
    first_line,
    json_object,
    key_any_case,
    missing_program,
    read_answer,
    reason_text,
    run_command,
)
from bacalhau.models import Job

_log = logging.getLogger(__name__)

#: Seconds a probe may take when the operator sets no timeout.
DEFAULT_PROBE_TIMEOUT = 10.0


def probe_payload(node_id: str, job: Job) -> bytes:
    """What both probes are given: ``{"NodeID": ..., "Job": {...}}`` (Bacalhau v1.5.0's shape,
    read by probes written for any v1 release)."""
    return json.dumps({"NodeID": node_id, "Job": job.to_dict()}).encode()


class ExecProbe:
    """``JobAdmissionControl.ProbeExec``: the operator's command decides (exit 0 = bid)."""

    def __init__(self, command: str, *, timeout: float = DEFAULT_PROBE_TIMEOUT) -> None:
        if not command.strip():
            raise InvalidConfiguration(
                "the exec probe needs a command", details={"Field": "JobAdmissionControl.ProbeExec"}
            )
        self.command = command
        self._timeout = timeout
        self._log = OnceLog(f"exec probe {command!r}", _log)
        if problem := missing_program(command):
            # Said at start, not first at a job's bid: every bid will be a "no" until fixed.
            _log.warning("exec probe %r: %s; this node will bid on no job", command, problem)

    async def evaluate(self, request: BidRequest) -> BidVerdict:
        data = probe_payload(request.node_id, request.job)
        try:
            outcome = await run_command(
                self.command,
                data,
                env_name="BACALHAU_JOB_SELECTION_PROBE_DATA",
                timeout=self._timeout,
            )
        except HookProgramFailed as err:
            return self._fail(str(err))
        code = outcome.exit_code
        if code == 0:
            return BidVerdict.accept(
                f"this node does accept jobs where external command {self.command!r} "
                "returns exit code 0"
            )
        reason = outcome.said
        if code in (126, 127):  # bash: not executable / command not found
            return self._fail(reason or exit_description(code))
        if crashed(code):  # killed by a signal: a crash, not a "no" (logged once per cause)
            return self._fail(exit_description(code))
        if not reason:
            reason = f"external command {self.command!r} {exit_description(code)}"
        return BidVerdict.reject(f"this node does not accept this job: {reason}")

    def _fail(self, cause: str) -> BidVerdict:
        self._log.failed(cause)
        return BidVerdict.reject(
            f"this node does not accept this job: exec probe {self.command!r} failed: {cause}"
        )


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
        self._log = OnceLog(f"HTTP probe {url}", _log)

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
        except AnswerTooLarge as err:
            return self._fail(str(err))
        except aiohttp.ClientError as err:
            return self._fail(f"unreachable ({type(err).__name__}: {err})")
        if status >= 500:  # the probe broke (logged once per cause), it did not say no
            cause = _answer_reason(body)
            return self._fail(f"HTTP status {status}" + (f": {cause}" if cause else ""))
        if status >= 400:
            reason = _answer_reason(body) or f"url {self.url!r} returned HTTP status {status}"
            return BidVerdict.reject(f"this node does not accept this job: {reason}")
        if not body.strip():
            return BidVerdict.accept(
                f"this node does accept jobs where url {self.url!r} returns HTTP status {status}"
            )
        answer = json_object(body)
        should_bid = key_any_case(answer, "shouldbid") if answer is not None else None
        if not isinstance(should_bid, bool):
            return self._fail(
                'answered something that is not {"ShouldBid": bool, "Reason": str}: '
                + first_line(body)[:80]
            )
        said = key_any_case(answer, "reason") if answer is not None else None
        text = reason_text(said) if said else ""
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
                return resp.status, await read_answer(resp)
        finally:
            if owned:
                await session.close()

    def _fail(self, cause: str) -> BidVerdict:
        self._log.failed(cause)
        return BidVerdict.reject(
            f"this node does not accept this job: HTTP probe {self.url} failed: {cause}"
        )


def _answer_reason(body: bytes) -> str:
    answer = json_object(body)
    reason = key_any_case(answer, "reason") if answer is not None else None
    return reason_text(reason) if reason else ""
