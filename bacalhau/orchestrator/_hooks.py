"""The operator's say on a bid before the requester accepts it: approval hooks, in a chain.

A hook is given the job, the bid (the execution the node bid for) and the node's record, and
answers accept, reject (with a reason) or defer (ask me again shortly). The chain asks its
hooks in the configured order: the first reject decides, every hook's reason is kept, and a
hook that defers is asked again after a delay, a bounded number of times (then it counts as
a reject). A hook that fails in any way (missing program, timeout, crash, garbage, server
down) is a reject with that cause, logged once per cause, never an error out of the chain.

Two kinds the operator plugs in by configuration (``Orchestrator.ApprovalHooks``):

- exec: ``bash -c COMMAND`` with the JSON payload on stdin (and in
  ``BACALHAU_BID_APPROVAL_DATA`` when under 100 KiB); exit 0 accepts, exit 75 (EX_TEMPFAIL)
  defers, anything else rejects with the first line of stderr (else stdout) as the reason.
- http: ``POST URL`` with the JSON payload; the answer is ``{"Accept": bool, "Defer": bool,
  "Reason": str}`` (keys in any case); a status >= 400 or an answer that is not that JSON
  rejects.

The payload: ``{"NodeID": ..., "Job": {...}, "Execution": {...}, "Node": {...}}``.

Hooks run in a background task per bid (``ApprovalChain.submit``), so a slow hook delays only
its own bid: the compute node's callback is answered at once, and other jobs keep moving.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, overload

import aiohttp

from bacalhau.errors import BacalhauError
from bacalhau.hooks import (
    AnswerTooLarge,
    HookProgramFailed,
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
from bacalhau.models import Execution, Job, NodeState

log = logging.getLogger(__name__)

#: Seconds a hook may take when the operator sets no timeout.
DEFAULT_HOOK_TIMEOUT = 10.0
#: Exit code with which an exec hook defers (sysexits' EX_TEMPFAIL: "try again later").
DEFER_EXIT_CODE = 75


class HookVerdict(StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"
    DEFER = "defer"


@dataclass(frozen=True, slots=True)
class HookDecision:
    """One hook's answer about one bid."""

    verdict: HookVerdict
    reason: str = ""

    @classmethod
    def accept(cls, reason: str = "") -> HookDecision:
        return cls(HookVerdict.ACCEPT, reason)

    @classmethod
    def reject(cls, reason: str) -> HookDecision:
        return cls(HookVerdict.REJECT, reason)

    @classmethod
    def defer(cls, reason: str = "") -> HookDecision:
        return cls(HookVerdict.DEFER, reason)


class BidApprovalHook(Protocol):
    """An operator's say on a bid before it is accepted (exec/HTTP hooks, reputation).

    ``approve`` answers a :class:`HookDecision`, or ``(accept?, reason)`` for hooks that
    never defer. Raising counts as a rejection with the error as its reason."""

    @property
    def name(self) -> str: ...

    async def approve(
        self, job: Job, execution: Execution, node: NodeState
    ) -> HookDecision | tuple[bool, str]: ...


@dataclass(frozen=True, slots=True)
class ChainDecision:
    """The chain's answer: accepted or not, the hook that decided (the first to reject; for
    an acceptance, empty), and each asked hook's reason as ``name: reason``."""

    accepted: bool
    decided_by: str = ""
    reason: str = ""
    reasons: tuple[str, ...] = ()


class _OnceLog:
    """A failing hook fails every bid the same way: one warning per cause says it."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, str]] = set()

    def failed(self, hook: str, cause: str) -> None:
        key = (hook, cause)
        if key in self._seen:
            log.debug("approval hook %s: %s", hook, cause)
            return
        self._seen.add(key)
        log.warning("approval hook %s: %s (counted as a rejection)", hook, cause)


def hook_payload(job: Job, execution: Execution, node: NodeState) -> bytes:
    """What exec and HTTP hooks are given about a bid."""
    return json.dumps(
        {
            "NodeID": execution.node_id,
            "Job": job.to_dict(),
            "Execution": execution.to_dict(include_job=False),
            "Node": node.to_dict(),
        }
    ).encode()


class HookFailed(Exception):
    """A hook could not give an answer (the cause is the message); a rejection."""


class ExecApprovalHook:
    """The operator's program decides: exit 0 accepts, 75 defers, anything else rejects."""

    def __init__(self, name: str, command: str, *, timeout: float = DEFAULT_HOOK_TIMEOUT) -> None:
        self._name = name
        self.command = command
        self.timeout = timeout
        if problem := missing_program(command):
            # Said at start, not first at a bid: every bid it judges is rejected until fixed.
            log.warning("approval hook %s: %s; it will reject every bid", name, problem)

    @property
    def name(self) -> str:
        return self._name

    def describe(self) -> dict[str, Any]:
        return {
            "Name": self._name,
            "Type": "exec",
            "Command": self.command,
            "Timeout": self.timeout,
        }

    async def approve(self, job: Job, execution: Execution, node: NodeState) -> HookDecision:
        data = hook_payload(job, execution, node)
        try:
            outcome = await run_command(
                self.command, data, env_name="BACALHAU_BID_APPROVAL_DATA", timeout=self.timeout
            )
        except HookProgramFailed as err:
            raise HookFailed(str(err)) from None
        code = outcome.exit_code
        said = outcome.said
        if code == 0:
            return HookDecision.accept(said)
        if code == DEFER_EXIT_CODE:
            return HookDecision.defer(said)
        if code in (126, 127):  # bash: not executable / command not found
            raise HookFailed(said or exit_description(code))
        if crashed(code):  # killed by a signal: a crash, not a "no" (logged once per cause)
            raise HookFailed(exit_description(code))
        return HookDecision.reject(said or exit_description(code))


class HttpApprovalHook:
    """The operator's endpoint decides. Holds one HTTP session, opened on first use and
    closed by :meth:`aclose`."""

    def __init__(self, name: str, url: str, *, timeout: float = DEFAULT_HOOK_TIMEOUT) -> None:
        self._name = name
        self.url = url
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def name(self) -> str:
        return self._name

    def describe(self) -> dict[str, Any]:
        return {"Name": self._name, "Type": "http", "URL": self.url, "Timeout": self.timeout}

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def approve(self, job: Job, execution: Execution, node: NodeState) -> HookDecision:
        data = hook_payload(job, execution, node)
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with asyncio.timeout(self.timeout):
                async with self._session.post(
                    self.url, data=data, headers={"Content-Type": "application/json"}
                ) as resp:
                    status, body = resp.status, await read_answer(resp)
        except TimeoutError:
            raise HookFailed(f"did not answer within {self.timeout:g}s") from None
        except AnswerTooLarge as err:
            raise HookFailed(str(err)) from None
        except aiohttp.ClientError as err:
            raise HookFailed(f"unreachable ({type(err).__name__}: {err})") from None
        answer = json_object(body)
        if status >= 400:
            said = key_any_case(answer, "reason") if answer is not None else None
            if status >= 500:  # the hook broke (logged once per cause), it did not say no
                raise HookFailed(
                    f"HTTP status {status}" + (f": {reason_text(said)}" if said else "")
                )
            return HookDecision.reject(reason_text(said or f"HTTP status {status}"))
        accept = key_any_case(answer, "accept") if answer is not None else None
        defer = key_any_case(answer, "defer") if answer is not None else None
        if answer is None or not isinstance(accept, bool) or not isinstance(defer, bool | None):
            raise HookFailed(
                'answered something that is not {"Accept": bool, "Reason": str}: '
                + first_line(body)[:80]
            )
        said = key_any_case(answer, "reason")
        reason = reason_text(said) if said else ""
        if defer:
            return HookDecision.defer(reason)
        return HookDecision.accept(reason) if accept else HookDecision.reject(reason)


@dataclass(slots=True)
class _Asked:
    reasons: list[str] = field(default_factory=list)


class ApprovalChain(Sequence[BidApprovalHook]):
    """The configured hooks, in order. Empty: no approval needed (``needs_approval`` is
    false, so the requester may send asks pre-approved). An async context manager only in
    that :meth:`aclose` stops bids being decided and closes the hooks' sessions."""

    def __init__(
        self,
        hooks: Sequence[BidApprovalHook] = (),
        *,
        defer_delay: float = 1.0,
        max_defers: int = 5,
    ) -> None:
        names = [h.name for h in hooks]
        if len(set(names)) != len(names):
            raise ValueError(f"approval hook names must be unique: {names}")
        self._hooks = list(hooks)
        self.defer_delay = defer_delay
        self.max_defers = max_defers
        self._failures = _OnceLog()
        self._tasks: set[asyncio.Task[None]] = set()

    @overload
    def __getitem__(self, index: int) -> BidApprovalHook: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[BidApprovalHook]: ...
    def __getitem__(self, index: int | slice) -> BidApprovalHook | Sequence[BidApprovalHook]:
        return self._hooks[index]

    def __len__(self) -> int:
        return len(self._hooks)

    def __iter__(self) -> Iterator[BidApprovalHook]:
        return iter(self._hooks)

    @property
    def needs_approval(self) -> bool:
        """Whether a bid must wait for the hooks (false: asks may go out pre-approved)."""
        return bool(self._hooks)

    def describe(self) -> list[dict[str, Any]]:
        """The hooks as configured, in order (for ``node describe``)."""
        out: list[dict[str, Any]] = []
        for hook in self._hooks:
            describe = getattr(hook, "describe", None)
            out.append(describe() if callable(describe) else {"Name": hook.name})
        return out

    async def decide(
        self,
        job: Job,
        execution: Execution,
        node: NodeState,
        *,
        on_defer: Callable[[str, str], None] | None = None,
    ) -> ChainDecision:
        """Ask every hook in order; the first rejection decides. ``on_defer(hook, reason)``
        is told each time a hook defers."""
        asked = _Asked()
        for hook in self._hooks:
            decision = await self._ask(hook, job, execution, node, on_defer)
            asked.reasons.append(f"{hook.name}: {decision.reason or decision.verdict.value}")
            if decision.verdict is not HookVerdict.ACCEPT:
                return ChainDecision(
                    accepted=False,
                    decided_by=hook.name,
                    reason=decision.reason or "rejected",
                    reasons=tuple(asked.reasons),
                )
        return ChainDecision(accepted=True, reasons=tuple(asked.reasons))

    async def _ask(
        self,
        hook: BidApprovalHook,
        job: Job,
        execution: Execution,
        node: NodeState,
        on_defer: Callable[[str, str], None] | None,
    ) -> HookDecision:
        for attempt in range(self.max_defers + 1):
            decision = await self._ask_once(hook, job, execution, node)
            if decision.verdict is not HookVerdict.DEFER:
                return decision
            if attempt == self.max_defers:
                break
            if on_defer is not None:
                on_defer(hook.name, decision.reason)
            await asyncio.sleep(self.defer_delay)
        return HookDecision.reject(
            f"still deferring after {self.max_defers + 1} asks"
            + (f" ({decision.reason})" if decision.reason else "")
        )

    async def _ask_once(
        self, hook: BidApprovalHook, job: Job, execution: Execution, node: NodeState
    ) -> HookDecision:
        try:
            answer = await hook.approve(job, execution, node)
        except HookFailed as err:
            self._failures.failed(hook.name, str(err))
            return HookDecision.reject(f"hook failed: {err}")
        except BacalhauError as err:
            return HookDecision.reject(err.message)
        except Exception as err:  # the operator's hook must never take the requester down
            cause = f"crashed: {type(err).__name__}: {err}"
            self._failures.failed(hook.name, cause)
            return HookDecision.reject(f"hook {cause}")
        if isinstance(answer, HookDecision):
            return answer
        ok, why = answer
        return HookDecision.accept(why) if ok else HookDecision.reject(why)

    def submit(self, decide: Callable[[], Awaitable[None]]) -> None:
        """Run one bid's decision in the background, kept until :meth:`aclose`; its errors
        are logged (the bid then waits for the scheduler's own timeouts)."""

        async def run() -> None:
            try:
                await decide()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("deciding on a bid failed")

        task = asyncio.get_running_loop().create_task(run(), name="bid-approval")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Stop deciding (a bid still being decided stays unanswered) and close the hooks'
        sessions."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for hook in self._hooks:
            close = getattr(hook, "aclose", None)
            if callable(close):
                await close()

    async def __aenter__(self) -> ApprovalChain:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def build_hook(
    kind: str, *, name: str, command: str = "", url: str = "", timeout: float
) -> BidApprovalHook:
    """An exec or HTTP hook from its configuration."""
    if kind == "exec":
        return ExecApprovalHook(name, command, timeout=timeout)
    if kind == "http":
        return HttpApprovalHook(name, url, timeout=timeout)
    raise ValueError(f"unknown approval hook type {kind!r}")
