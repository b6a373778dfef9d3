"""Printing a job's output (``job logs``, ``--follow`` on the run commands) and saying how the
job ended when its output does not."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, NoReturn

import click

from bacalhau.errors import BacalhauError, NotFound, error_from_code
from bacalhau.models import ExecutionStateType, JobStateType, LogStream

if TYPE_CHECKING:
    from bacalhau.client import Client, JobDetails

__all__ = ["check_job_ended", "job_failure", "print_logs", "stop_following"]


def job_failure(details: JobDetails) -> BacalhauError:
    """The error to show for a job that did not complete, with the most useful hint: the
    latest error event's own hint, else the default hint of its error code."""
    job = details.job
    errors = [h.event for h in reversed(details.history) if h.event.is_error]
    failed = [
        e
        for e in details.executions
        if e.compute_state == ExecutionStateType.FAILED and e.compute_message
    ]
    message = job.state_message or (errors[0].message if errors else "")
    if not message and failed:
        message = failed[-1].compute_message
    verb = "was stopped" if job.state == JobStateType.STOPPED else "failed"
    text = f"job {job.id} {verb}" + (f": {message}" if message else "")
    hint = next((e.details["Hint"] for e in errors if e.details.get("Hint")), None)
    code = next((e.details["ErrorCode"] for e in errors if e.details.get("ErrorCode")), "")
    err = error_from_code(code, text, hint=hint) if code else BacalhauError(text, hint=hint)
    if not err.hint:
        err.hint = f"see what happened with `bacalhau job describe {job.id}`"
    return err


def stop_following(job_id: str) -> NoReturn:
    """Ctrl+C while following: say the job goes on, and how to follow it again (exit 130, as
    a shell reports an interrupted command)."""
    click.echo(
        f"\nStopped following; the job keeps running. Follow it again with:\n"
        f"\tbacalhau job logs --follow {job_id}",
        err=True,
    )
    raise click.exceptions.Exit(130)


def print_logs(
    client: Client,
    job_id: str,
    *,
    execution_id: str = "",
    follow: bool = False,
    tail: int | None = None,
    version: int = 0,
) -> None:
    """Write the job's output as it arrives: stdout lines to stdout, stderr lines to stderr.
    ``tail``: the last N lines of each stream first (None: all of them; 0: none, and not
    with ``follow``).

    A job that ended without ever running (its queue timeout passed, it was stopped while
    queued) has no output to follow: that is reported as the job's failure, worded as the
    run commands word it when they wait, not as a missing execution."""
    if tail == 0:
        lines = _new_lines(
            client, job_id, execution_id=execution_id, follow=follow, version=version
        )
    else:
        lines = _lines(
            client,
            job_id,
            execution_id=execution_id,
            follow=follow,
            tail=tail or 0,
            version=version,
        )
    try:
        for stream, text in lines:
            click.echo(text, nl=False, err=stream is LogStream.STDERR)  # (flushed)
    except NotFound:
        if execution_id:
            raise  # the execution named is not there: that is the answer
        details = client.get_job(job_id, history=True, executions=True)
        if details.job.state.is_terminal() and details.job.state != JobStateType.COMPLETED:
            raise job_failure(details) from None
        raise


def _lines(
    client: Client, job_id: str, *, execution_id: str, follow: bool, tail: int, version: int
) -> Iterator[tuple[LogStream, str]]:
    for line in client.logs(
        job_id, execution_id=execution_id, follow=follow, tail=tail, version=version
    ):
        yield line.stream, line.text


def _new_lines(
    client: Client, job_id: str, *, execution_id: str, follow: bool, version: int
) -> Iterator[tuple[LogStream, str]]:
    """``--tail 0``: none of the output written so far (the job is still looked up, so a
    wrong ID is an error). Following from the end is refused rather than done racily: the
    logs endpoint reads ``tail=0`` as "from the beginning" and has no "from now"."""
    if follow:
        raise click.UsageError(
            "--tail 0 with --follow is not supported: the logs endpoint cannot start at the "
            "end of the output; use --tail 1 to start from the last line"
        )
    for _ in _lines(
        client, job_id, execution_id=execution_id, follow=False, tail=1, version=version
    ):
        pass
    yield from ()  # a generator, like _lines: the look-up runs when it is read


def check_job_ended(client: Client, job_id: str, *, version: int = 0) -> None:
    """After following a job's output to its end: a job that failed or was stopped is an
    error (as the run commands' ``--follow`` reports it), so that a follower's exit code
    tells how the job ended. A job that completed, or still runs (another execution of it,
    a long-running job), is not. ``version``: the one followed, when not the latest (whose
    end says nothing about it)."""
    details = client.get_job(job_id, history=True, executions=True)
    job = details.job
    if version and version != job.version:
        return
    if job.state in (JobStateType.FAILED, JobStateType.STOPPED):
        raise job_failure(details)
