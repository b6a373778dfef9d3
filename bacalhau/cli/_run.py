"""``docker run`` and the submit-then-follow behaviour the run commands share."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bacalhau.cli._follow import job_failure, print_logs, stop_following
from bacalhau.cli._jobspec import (
    build_job,
    job_options,
    parse_key_values,
    runtime_options,
    split_csv,
)
from bacalhau.cli._render import when
from bacalhau.cli._root import BacalhauGroup, CliState, pass_state
from bacalhau.client import LONG_RUNNING_JOB_TYPES
from bacalhau.errors import BacalhauError, NotFound
from bacalhau.models import (
    ExecutionStateType,
    Job,
    JobHistory,
    JobStateType,
    SpecConfig,
    normalise_job,
    short_id,
    validate_job,
)

if TYPE_CHECKING:
    from bacalhau.client import Client, JobDetails

_EVENTS_HEADER = f" {'TIME':<13} {'EXEC. ID':<11} {'TOPIC':<21} EVENT"


def _event_row(item: JobHistory) -> str:
    exec_id = short_id(item.execution_id) if item.execution_id else ""
    message = item.event.message
    if item.event.is_error and item.event.details.get("Hint"):
        message += f" (hint: {item.event.details['Hint']})"
    return f" {when(item.time, clock=True):<13} {exec_id:<11} {item.event.topic:<21} {message}"


class _EventPrinter:
    """Prints history events as they arrive while the CLI waits for a job."""

    def __init__(self) -> None:
        self._header = False

    def __call__(self, item: JobHistory) -> None:
        if not self._header:
            click.echo("\n" + _EVENTS_HEADER)
            self._header = True
        click.echo(_event_row(item))

    def close(self) -> None:
        """Nothing is left to print: every event was printed as it came."""


class _GroupedEventPrinter:
    """``--group-events``: one row per execution (its latest event, in the order they
    appeared) and one for the job, redrawn in place on a terminal as events arrive; elsewhere
    (a pipe, a file) the table is printed once, when the wait ends."""

    def __init__(self, *, live: bool) -> None:
        self._live = live
        self._executions: dict[str, JobHistory] = {}
        self._job: JobHistory | None = None
        self._drawn = 0

    def __call__(self, item: JobHistory) -> None:
        if item.execution_id:
            self._executions[item.execution_id] = item
        else:
            self._job = item
        if self._live:
            self._draw()

    def close(self) -> None:
        if not self._live and (self._executions or self._job):
            self._draw()

    def _draw(self) -> None:
        rows = [*self._executions.values(), *([self._job] if self._job else [])]
        lines = [_EVENTS_HEADER, *(_event_row(r) for r in rows)]
        if self._drawn:
            # Back to the table's first line, and clear from there down.
            click.echo(f"\x1b[{self._drawn}F\x1b[J", nl=False)
        else:
            click.echo()
        click.echo("\n".join(lines))
        self._drawn = len(lines)


#: ``-f/--follow`` on ``docker run``, ``wasm run`` and ``job run``.
follow_option = click.option(
    "-f",
    "--follow",
    is_flag=True,
    help="Print the job's output as it runs (stdout here, stderr on standard error).",
)


def print_outcome(details: JobDetails, *, node_details: bool) -> None:
    job = details.job
    completed = [e for e in details.executions if e.compute_state == ExecutionStateType.COMPLETED]
    click.echo(f"\nJob {job.id} {job.state.wire.lower()}.")
    if completed:
        click.echo("\nJob Results By Node:")
        for e in completed:
            click.echo(f"• Node {e.node_id if node_details else short_id(e.node_id)}:")
            out = e.run_output
            if out is None:
                continue
            if out.exit_code:
                click.echo(f"  Exit Code: {out.exit_code}")
            if out.stdout:
                click.echo("  Stdout:")
                for line in out.stdout.rstrip("\n").split("\n"):
                    click.echo(f"    {line}")
                if out.stdout_truncated:
                    click.echo("    ... (truncated; `bacalhau job get` downloads it all)")
            if out.stderr:
                click.echo("  Stderr:")
                for line in out.stderr.rstrip("\n").split("\n"):
                    click.echo(f"    {line}")
    click.echo(
        "\nTo get more details about the run, execute:\n"
        f"\tbacalhau job describe {job.id}\n"
        "\nTo get more details about the run executions, execute:\n"
        f"\tbacalhau job executions {job.id}"
    )
    if job.state == JobStateType.COMPLETED:
        click.echo(f"\nTo download the results, execute:\n\tbacalhau job get {job.id}")


def _dry_run(state: CliState, job: Job) -> None:
    """``--dry-run``: what submitting ``job`` would change in the job of its name (a diff,
    or "No diff detected."), asked of the cluster; the job as YAML when its name is new (or
    it has none). A cluster that cannot answer gets one warning line and the YAML."""
    if job.name:
        try:
            diff = state.client().diff_job(job)
        except NotFound:
            pass  # a new name: submitting creates the job
        except BacalhauError as err:
            click.echo(
                f"Warning: cannot compare with the job named {job.name!r} on the cluster "
                f"({err.message}); this is the job as it would be submitted:",
                err=True,
            )
        else:
            for warning in diff.warnings:
                click.echo(f"Warning: {warning}", err=True)
            if not diff.diff:
                click.echo("No diff detected.")
            for line in diff.diff.splitlines():
                click.echo(_diff_line(line))
            return
    import yaml

    click.echo(yaml.safe_dump(job.to_dict(), sort_keys=False).rstrip("\n"))


def _diff_line(line: str) -> str:
    """A line of a unified diff, coloured as git colours it (click drops the colour when
    standard output is not a terminal)."""
    if line.startswith(("+++", "---")):
        return click.style(line, bold=True)
    if line.startswith("+"):
        return click.style(line, fg="green")
    if line.startswith("-"):
        return click.style(line, fg="red")
    if line.startswith("@@"):
        return click.style(line, fg="cyan")
    return line


def submit_and_follow(state: CliState, job: Job, runtime: dict[str, Any]) -> None:
    """Submit ``job`` then, per the runtime flags, wait for it and print what happened."""
    # Validate locally first: a bad spec is reported (with the field at fault) even when no
    # node is reachable, and without a round trip. The server validates again.
    check = job.copy()
    normalise_job(check)
    validate_job(check)
    if runtime["dry_run"]:
        _dry_run(state, job)
        return
    client = state.client()
    response = client.submit(job, force=bool(runtime.get("force")))
    id_only = runtime["id_only"]
    if not (runtime["hide_warnings"] or id_only):
        for warning in response.warnings:
            click.echo(f"Warning: {warning}", err=True)
    if id_only or not (runtime["wait"] or runtime.get("follow")):
        # As Bacalhau prints it: `JOB_ID=$(bacalhau docker run --wait=false ...)` works.
        click.echo(response.job_id)
    else:
        click.echo(f"Job successfully submitted. Job ID: {response.job_id}")
    follow_submitted(client, response.job_id, runtime)


def follow_submitted(client: Client, job_id: str, runtime: dict[str, Any]) -> None:
    """Per the runtime flags, follow the job just submitted (or rerun): its logs, or its
    events until it ends, then what happened; a job that failed ends non-zero."""
    id_only = runtime["id_only"]
    if runtime.get("follow"):
        # Like Bacalhau's --follow: the output is the answer; a failure still ends non-zero.
        if not id_only:  # on stderr, as cobra's Printf writes it: stdout is the job's output
            click.echo(
                "Waiting for logs... (Enter Ctrl+C to exit at any time, your job will "
                "continue running):\n",
                err=True,
            )
        try:
            print_logs(client, job_id, follow=True)
        except KeyboardInterrupt:
            stop_following(job_id)
        if runtime["wait"]:
            details = client.wait_for_job(job_id, timeout=float(runtime["wait_timeout_secs"]))
            if not details.job.state.is_terminal() or details.job.state == JobStateType.COMPLETED:
                return
            full = client.get_job(job_id, history=True, executions=True)
            raise job_failure(full)
        return
    if not runtime["wait"]:
        if not id_only:  # on stderr: stdout holds the job ID alone, for scripts
            click.echo(f"To follow it, execute:\n\tbacalhau job describe {job_id}", err=True)
        return
    if not id_only:
        click.echo(
            "Checking job status... (Enter Ctrl+C to exit at any time, "
            "your job will continue running):"
        )
    printer = (
        _GroupedEventPrinter(live=sys.stdout.isatty())
        if runtime["group_events"]
        else _EventPrinter()
    )
    try:
        try:
            details = client.wait_for_job(
                job_id,
                timeout=float(runtime["wait_timeout_secs"]),
                on_event=None if id_only else printer,
            )
        finally:
            if not id_only:
                printer.close()
    except KeyboardInterrupt:
        click.echo(
            f"\nStopped waiting; the job keeps running. Follow it with:\n"
            f"\tbacalhau job describe {job_id}",
            err=True,
        )
        raise click.exceptions.Exit(130) from None
    job = details.job
    if job.type in LONG_RUNNING_JOB_TYPES and job.state == JobStateType.RUNNING:
        # Daemon and service jobs run until stopped: waiting ends once they run.
        if not id_only:
            running = sum(1 for e in details.executions if e.is_active())
            short = f"\n{job.state_message.splitlines()[0]}" if job.state_message else ""
            click.echo(
                f"\nJob {job.id} is running ({job.type}, {running} execution(s)); it runs "
                f"until stopped:\n\tbacalhau job stop {job.id}{short}"
            )
        return
    if job.type in LONG_RUNNING_JOB_TYPES and job.state == JobStateType.QUEUED:
        # No node takes it now (all full, or turned down): it may wait as long as that
        # lasts, and runs once one does. Say why, rather than wait with it.
        if not id_only:
            click.echo(
                f"\nJob {job.id} is queued ({job.type}): {job.state_message.splitlines()[0]}\n"
                f"It runs once a node takes it; follow it with:\n\tbacalhau job describe "
                f"{job.id}"
            )
        return
    if job.state != JobStateType.COMPLETED:
        full = client.get_job(job_id, history=True, executions=True)
        raise job_failure(full)
    if not id_only:
        print_outcome(details, node_details=runtime["node_details"])
    if runtime.get("download"):
        download_results(
            client,
            job_id,
            runtime["output_dir"],
            raw=runtime["raw"],
            timeout=float(runtime["download_timeout_secs"]),
            namespace=job.namespace,
        )


def download_results(
    client: Client,
    job_id: str,
    output_dir: Path | None,
    *,
    raw: bool,
    timeout: float,
    namespace: str = "",
) -> None:
    """Download a job's results (``job get``, and ``--download`` on the run commands) and
    say where they went, naming any entry that was not created. ``job_id`` is the job as the
    user named it; the default folder is Bacalhau's, ``./job-<it>`` (``job-<namespace>-<it>``
    outside the default namespace), so ``bacalhau job get $ID; cat job-$ID/stdout`` works."""
    if output_dir is None:
        output_dir = Path.cwd() / default_job_folder(job_id, namespace)
    downloaded = client.download_results(job_id, output_dir, raw=raw, timeout=timeout)
    if downloaded.skipped:
        click.echo(
            f"Warning: {len(downloaded.skipped)} entries of the results were not created:", err=True
        )
        for entry in downloaded.skipped:
            click.echo(f"  {entry}", err=True)
    click.echo(f"Results for job '{job_id}' have been written to...\n{downloaded.path}")


def default_job_folder(job_ref: str, namespace: str = "") -> str:
    """Where Bacalhau's CLI writes a job's results when told no folder: ``job-<ref>``, with
    the namespace before the reference outside ``default``."""
    ref = job_ref.replace(os.sep, "_")
    if namespace in ("", "default"):
        return f"job-{ref}"
    return f"job-{namespace.replace(os.sep, '_')}-{ref}"


def runtime_settings(kwargs: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "wait",
        "wait_timeout_secs",
        "id_only",
        "node_details",
        "dry_run",
        "hide_warnings",
        "show_warnings",
        "group_events",
        "force",
    )
    runtime = {k: kwargs.pop(k) for k in keys}
    runtime["follow"] = kwargs.pop("follow", False)
    for key, default in (
        ("download", False),
        ("output_dir", None),
        ("raw", False),
        ("download_timeout_secs", 300),
    ):
        runtime[key] = kwargs.pop(key, default)
    kwargs.pop("gettimeout", None)  # Bacalhau v1.0-v1.3's IPFS timeout: nothing to set here
    kwargs.pop("do_not_track", None)
    return runtime


@click.group("docker", cls=BacalhauGroup)
def docker_group() -> None:
    """Run Docker jobs."""


@docker_group.command("run")
@job_options
@runtime_options
@follow_option
@click.option(
    "--entrypoint",
    multiple=True,
    help="Replace the image's ENTRYPOINT (repeatable or comma-separated).",
)
@click.option("-w", "--workdir", default="", help="Working directory (absolute) in the container.")
@click.option("-e", "--env", multiple=True, help="Environment variable K=V (repeatable).")
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@pass_state
def docker_run(
    state: CliState,
    /,
    image: str,
    command: tuple[str, ...],
    entrypoint: tuple[str, ...],
    workdir: str,
    env: tuple[str, ...],
    **kwargs: Any,
) -> None:
    """Run IMAGE with COMMAND on the network: bacalhau docker run IMAGE [-- CMD ARGS...]"""
    runtime = runtime_settings(kwargs)
    params: dict[str, Any] = {"Image": image}
    if entrypoint:
        params["Entrypoint"] = split_csv(entrypoint)
    if command:
        params["Parameters"] = list(command)
    if workdir:
        params["WorkingDirectory"] = workdir
    job = build_job(SpecConfig("docker", params), kwargs, env=task_env(env))
    submit_and_follow(state, job, runtime)


def task_env(env: tuple[str, ...]) -> dict[str, str]:
    """``-e NAME=VALUE`` as Bacalhau (v1.7+) reads it: the task's ``Env``, where a value
    ``env:HOST_VAR`` is forwarded from the compute node's environment (if its operator
    allows it)."""
    return parse_key_values(env, "'-e' / '--env'")
