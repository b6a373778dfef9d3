"""``bacalhau job ...``: run, describe, list, executions, history, logs, stop, rerun,
versions, get, validate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from bacalhau.cli._follow import check_job_ended, print_logs, stop_following
from bacalhau.cli._job_file import read_spec, template_variables
from bacalhau.cli._jobspec import Duration, rerun_options, runtime_options
from bacalhau.cli._render import (
    cell_id,
    emit,
    next_page_hint,
    output_option,
    table,
    tabular,
    when,
    wide,
)
from bacalhau.cli._root import (
    BacalhauGroup,
    CliState,
    job_id_argument,
    namespace_option,
    pass_state,
)
from bacalhau.cli._run import download_results, follow_option, follow_submitted, submit_and_follow
from bacalhau.client import JobListPage
from bacalhau.errors import ConflictJobState, JobNotFound
from bacalhau.models import (
    TAIL_FLAG_LINES,
    Execution,
    HistoryType,
    Job,
    JobHistory,
    normalise_job,
    parse_job_document,
    render_template,
    short_id,
    validate_job,
)


@click.group("job", cls=BacalhauGroup)
def job_group() -> None:
    """Submit and inspect jobs."""


@job_group.command("run")
@runtime_options
@follow_option
@click.option(
    "-V",
    "--template-vars",
    multiple=True,
    help="Template variable key=value for {{.key}} in FILE (repeatable, or k=v,k2=v2).",
)
@click.option(
    "-E",
    "--template-envs",
    default="",
    help="Regular expression: environment variables whose names it finds a match in are "
    "template variables ('*': all of them).",
)
@click.option("--no-template", is_flag=True, help="Submit FILE as it is, without templating.")
@click.argument("file", required=False)
@pass_state
def job_run(
    state: CliState,
    /,
    file: str | None,
    template_vars: tuple[str, ...],
    template_envs: str,
    no_template: bool,
    **runtime: Any,
) -> None:
    """Submit the job described in FILE (YAML or JSON; '-', or none, reads standard input).

    FILE is a template (Go text/template variables, as in Bacalhau): {{.name}} is replaced
    by the value given with -V name=value or, with -E, by an environment variable; a
    missing variable is an error. --no-template submits FILE as it is.
    """
    text = read_spec(file)
    if not no_template:
        text = render_template(text, template_variables(template_vars, template_envs))
    submit_and_follow(state, parse_job_document(text), runtime)


@job_group.command("validate")
@click.argument("file", required=False)
def job_validate(file: str | None) -> None:
    """Check a job file locally, without submitting it ('-', or none, reads standard
    input)."""
    job = parse_job_document(read_spec(file))
    warnings = normalise_job(job)
    validate_job(job)
    for warning in warnings:
        click.echo(f"Warning: {warning}", err=True)
    click.echo("OK")  # as Bacalhau prints it (scripts look for it)


#: ``-v/--version`` of the commands that read one version of a job (Bacalhau v1.8).
version_option = click.option(
    "-v",
    "--version",
    "version",
    type=click.IntRange(min=0),
    default=0,
    help="This version of the job (versions count from 1; 0: the latest).",
)
#: ``--all-versions`` of the commands that list what every version of a job did.
all_versions_option = click.option(
    "--all-versions",
    is_flag=True,
    help="Every version's, not only the latest's (--version, when given, wins).",
)


def _exec_state(e: Execution) -> str:
    return e.compute_state.label


def _history_rows(items: list[JobHistory]) -> list[list[str]]:
    """Bacalhau's columns (cmd/util/cols/history.go), then with ``--wide`` the node, the
    revision and the states the entry moved between."""
    rows = []
    for h in items:
        if h.type == HistoryType.JOB:
            level = "Job"
            prev = h.job_state_previous.wire if h.job_state_previous else ""
            new = h.job_state_new.wire if h.job_state_new else ""
        else:
            level = "Execution"
            prev = h.exec_state_previous.label if h.exec_state_previous else ""
            new = h.exec_state_new.label if h.exec_state_new else ""
        row = [
            when(h.time),
            level,
            str(h.job_version),
            cell_id(h.execution_id) if h.execution_id else "",
            h.event.topic,
            h.event.message,
        ]
        if wide():
            row += [cell_id(h.node_id) if h.node_id else "", str(h.new_revision), prev, new]
        rows.append(row)
    return rows


def _history_headers() -> tuple[str, ...]:
    bacalhaus = ("TIME", "LEVEL", "JOB VERSION", "EXEC. ID", "TOPIC", "EVENT")
    return (*bacalhaus, "NODE ID", "REV.", "PREVIOUS", "NEW") if wide() else bacalhaus


def _execution_rows(executions: list[Execution]) -> list[list[str]]:
    return [
        [
            when(e.create_time),
            when(e.modify_time),
            cell_id(e.id),
            str(e.job_version),
            cell_id(e.node_id),
            str(e.revision),
            _exec_state(e),
            e.desired_state.label,
            e.compute_message,
        ]
        for e in executions
    ]


def _verification_rows(executions: list[Execution]) -> list[list[str]]:
    """Each replica the verifier judged: its verdict and the CID of its results."""
    return [
        [
            cell_id(e.id),
            cell_id(e.node_id),
            e.compute_details["Verification"],
            e.compute_details.get("ResultsCID") or "(no CID)",
        ]
        for e in executions
        if "Verification" in e.compute_details
    ]


def _print_verification(job: Job, executions: list[Execution]) -> None:
    """The job's verification: its mode, the verifier's outcome and each replica's verdict."""
    click.echo("\nVerification")
    click.echo(f"  Mode     = {job.verification.mode or 'majority'}")
    click.echo(f"  Replicas = {job.count}")
    if job.state_message.startswith("Verification"):
        click.echo(f"  Outcome  = {job.state_message}")
    rows = _verification_rows(executions)
    if rows:
        table(("EXEC. ID", "NODE ID", "VERDICT", "RESULTS CID"), rows)
    else:
        click.echo("  (no verdict yet: the replicas have not all finished)")


_EXECUTION_HEADERS = (
    "CREATED",
    "MODIFIED",
    "ID",
    "JOB VERSION",
    "NODE ID",
    "REV.",
    "STATE",
    "DESIRED",
    "COMMENT",
)


@job_group.command("describe")
@namespace_option
@job_id_argument
@version_option
@output_option(csv=False)
@pass_state
def job_describe(state: CliState, job_id: str, version: int, output: str) -> None:
    """Show a job with its executions, history and output (of its latest version, or of
    --version)."""
    client = state.client()
    if output != "table":
        emit(client.get_job_raw(job_id, history=True, executions=True, version=version), output)
        return
    details = client.get_job(job_id, history=True, executions=True, version=version)
    job = details.job
    fields = [
        ("ID", job.id),
        ("Name", job.name),
        ("Namespace", job.namespace),
        ("Type", job.type),
        ("State", job.state.wire),
        ("Message", job.state_message),
        ("Count", str(job.count)),
        ("Created Time", when(job.create_time)),
        ("Modified Time", when(job.modify_time)),
        ("Revision", str(job.revision)),
        ("Version", str(job.version)),
    ]
    width = max(len(k) for k, _ in fields)
    for key, value in fields:
        if value:
            click.echo(f"{key:<{width}} = {value}")
    if job.labels:
        click.echo(f"{'Labels':<{width}} = " + ", ".join(f"{k}={v}" for k, v in job.labels.items()))
    counts: dict[str, int] = {}
    for e in details.executions:
        counts[_exec_state(e)] = counts.get(_exec_state(e), 0) + 1
    if counts:
        click.echo("\nSummary")
        for name, n in counts.items():
            click.echo(f"  {name} = {n}")
    if job.verified:
        _print_verification(job, details.executions)
    click.echo("\nJob History")
    table(_history_headers(), _history_rows(details.history))
    click.echo("\nExecutions")
    table(_EXECUTION_HEADERS, _execution_rows(details.executions))
    for e in details.executions:
        out = e.run_output
        if out is None:
            continue
        click.echo(f"\nStandard Output ({short_id(e.id)})")
        click.echo(out.stdout.rstrip("\n"))
        if out.stderr:
            click.echo(f"\nStandard Error ({short_id(e.id)})")
            click.echo(out.stderr.rstrip("\n"))


@job_group.command("list")
@click.option("--limit", type=click.IntRange(min=0), default=10, show_default=True)
@click.option("--next-token", default="", help="Page token from a previous listing.")
@click.option(
    "--order-by",
    type=click.Choice(["created_at", "modified_at", "id"], case_sensitive=False),
    default="created_at",
    show_default=True,
)
@click.option("--order-reversed", is_flag=True, help="Reverse the order.")
@click.option(
    "--labels",
    default="bacalhau_canary != true",
    show_default=True,
    help="Label selector the jobs must match.",
)
@click.option("--namespace", default="", help="Only this namespace (default: all).")
# Bacalhau v1.0-1.3's `list --id-filter ID`, still in old scripts: that job alone.
@click.option("--id-filter", default="", hidden=True)
@output_option()
@pass_state
def job_list(
    state: CliState,
    limit: int,
    next_token: str,
    order_by: str,
    order_reversed: bool,
    labels: str,
    namespace: str,
    id_filter: str,
    output: str,
) -> None:
    """List jobs."""
    if id_filter:
        page = JobListPage(items=_job_with_id(state, id_filter))
    else:
        page = state.client().list_jobs(
            namespace=namespace,
            labels=labels,
            limit=limit,
            next_token=next_token,
            order_by=order_by,
            reverse=order_reversed,
        )
    if not tabular(output):
        emit([j.to_dict() for j in page.items], output)
    else:
        # Bacalhau's columns (v1.8+): JOB is the task's engine.
        rows = [
            [when(j.create_time), cell_id(j.id), j.name, _engine(j), j.type, j.state.wire]
            for j in page.items
        ]
        table(("CREATED", "ID", "NAME", "JOB", "TYPE", "STATE"), rows)
    next_page_hint(page.next_token, limit)


def _job_with_id(state: CliState, job_id: str) -> list[Job]:
    """The job ``job_id`` names (an ID, a unique prefix or a name) as a list: none if there
    is no such job, as Bacalhau's filtered listing answered."""
    try:
        return [state.client().get_job(job_id).job]
    except JobNotFound:
        return []


@job_group.command("executions")
@namespace_option
@job_id_argument
@click.option("--order-by", default="", help="created_at, modified_at, id or state.")
@click.option("--order-reversed", is_flag=True)
@click.option("--limit", type=click.IntRange(min=0), default=0, help="0: all.")
@click.option("--next-token", default="", help="Go on from a previous page (its token).")
@version_option
@all_versions_option
@output_option()
@pass_state
def job_executions(
    state: CliState,
    job_id: str,
    order_by: str,
    order_reversed: bool,
    limit: int,
    next_token: str,
    version: int,
    all_versions: bool,
    output: str,
) -> None:
    """List the executions of a job (of its latest version, of --version, or of every
    version with --all-versions)."""
    page = state.client().execution_page(
        job_id,
        order_by=order_by,
        reverse=order_reversed,
        limit=limit,
        next_token=next_token,
        version=version,
        all_versions=all_versions,
    )
    if not tabular(output):
        emit([e.to_dict(v152=True, include_job=False) for e in page.items], output)
    else:
        table(_EXECUTION_HEADERS, _execution_rows(page.items))
    next_page_hint(page.next_token, limit, job_id)


@job_group.command("history")
@namespace_option
@job_id_argument
@click.option(
    "--event-type",
    type=click.Choice(["all", "job", "execution"], case_sensitive=False),
    default="all",
    show_default=True,
)
@click.option("--execution-id", default="", help="Only this execution (ID or prefix).")
@click.option("--node-id", default="", help="Only executions on this node (ID or prefix).")
@click.option("--limit", type=click.IntRange(min=0), default=0, help="0: the server's default.")
@click.option("--next-token", default="")
@click.option(
    "--order-by",
    type=click.Choice(["", "time", "created_at", "modified_at"], case_sensitive=False),
    default="",
    help="History is in time order whichever is given (Bacalhau's list flag, kept so that "
    "its command lines work).",
)
@click.option("--order-reversed", is_flag=True, help="Newest first (within the page fetched).")
@version_option
@all_versions_option
@output_option()
@pass_state
def job_history(
    state: CliState,
    job_id: str,
    event_type: str,
    execution_id: str,
    node_id: str,
    limit: int,
    next_token: str,
    order_by: str,
    order_reversed: bool,
    version: int,
    all_versions: bool,
    output: str,
) -> None:
    """Show the history of a job (of its latest version, of --version, or of every version
    with --all-versions)."""
    page = state.client().history(
        job_id,
        event_type=event_type,
        execution_id=execution_id,
        node_id=node_id,
        limit=limit,
        next_token=next_token,
        version=version,
        all_versions=all_versions,
    )
    items = page.items[::-1] if order_reversed else page.items
    if not tabular(output):
        emit([h.to_dict(v152=True) for h in items], output)
    else:
        table(_history_headers(), _history_rows(items))
    next_page_hint(page.next_token, limit, job_id)


def logs_command(name: str) -> click.Command:
    """``job logs``."""

    @click.command(name)
    @namespace_option
    @job_id_argument
    @click.option(
        "-f", "--follow", is_flag=True, help="Keep printing new output until the job ends."
    )
    @click.option(
        "-t",
        "--tail",
        type=click.IntRange(min=0),
        default=None,
        help="Start with the last N lines of each stream (0: none, only new output with "
        f"--follow; --tail alone: {TAIL_FLAG_LINES}).",
    )
    @click.option(
        "-e",
        "--execution-id",
        default="",
        help="This execution (ID or prefix), not the latest.",
    )
    @version_option
    @pass_state
    def logs(
        state: CliState,
        job_id: str,
        follow: bool,
        tail: int | None,
        execution_id: str,
        version: int,
    ) -> None:
        """Print a job's output: stdout here, stderr on standard error. Finished jobs replay
        it whole; with --follow a running job's output is printed as it is written, and a
        job that failed or was stopped ends it non-zero. The latest execution of the job's
        latest version, or of --version."""
        client = state.client()
        try:
            print_logs(
                client, job_id, execution_id=execution_id, follow=follow, tail=tail, version=version
            )
        except KeyboardInterrupt:
            if follow:
                stop_following(job_id)
            raise click.exceptions.Exit(130) from None
        if follow:
            check_job_ended(client, job_id, version=version)

    return logs


job_group.add_command(logs_command("logs"))


@job_group.command("stop")
@namespace_option
@job_id_argument
@click.option("--reason", default="", help="Why the job is stopped (shown in its history).")
@click.option("--quiet", is_flag=True, help="Print nothing.")
@pass_state
def job_stop(state: CliState, job_id: str, reason: str, quiet: bool) -> None:
    """Stop a job."""
    client = state.client()
    # As Bacalhau's CLI: a job that already ended is not stopped (the API would turn a
    # Failed job into a Stopped one, and its failure would read as a user's stop).
    job = client.get_job(job_id).job
    if job.state.is_terminal():
        raise ConflictJobState(
            f"Job is already in a terminal state.\nThe current state is: {job.state.wire}",
            hint="nothing to stop: `bacalhau job describe` shows how it ended",
        )
    evaluation_id = client.stop_job(job.id, reason)
    if not quiet:
        click.echo(f"Job stop successfully submitted with evaluation ID: {evaluation_id}")


@job_group.command("rerun")
@namespace_option
@job_id_argument
@click.option("--reason", default="", help="Why the job is rerun (shown in its history).")
@version_option
@rerun_options
@follow_option
@pass_state
def job_rerun(state: CliState, /, job_id: str, reason: str, version: int, **kwargs: Any) -> None:
    """Run a job again: a new version of the same spec, its latest version's or that of
    --version (what still runs is stopped). Waits for it, as ``job run`` does, unless
    --wait=false."""
    runtime = {**kwargs, "follow": kwargs.get("follow", False)}
    client = state.client()
    response = client.rerun_job(job_id, reason, version=version)
    # As the run commands: with --wait=false standard output holds the job ID alone (for
    # `JOB_ID=$(bacalhau job rerun --wait=false ...)`) and what else is said goes to stderr.
    scripted = runtime["id_only"] or not (runtime["wait"] or runtime["follow"])
    if scripted:
        click.echo(response.job_id)
    if not runtime["id_only"]:
        done = f"Job successfully rerun. Job ID: {response.job_id}, version: {response.job_version}"
        click.echo(done, err=scripted)
    follow_submitted(client, response.job_id, runtime)


@job_group.command("versions")
@namespace_option
@job_id_argument
@output_option()
@pass_state
def job_versions(state: CliState, job_id: str, output: str) -> None:
    """List the versions of a job (each rerun adds one)."""
    versions = state.client().job_versions(job_id)
    if not tabular(output):
        emit([v.to_dict() for v in versions], output)
        return
    # Bacalhau's columns (cmd/cli/job/versions.go).
    rows = [[when(v.modify_time), str(v.version)] for v in versions]
    table(("CREATED AT", "JOB VERSION"), rows)


@job_group.command("get")
@namespace_option
@job_id_argument
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to write the results (default: ./job-<ID or name as given>).",
)
@click.option("--raw", is_flag=True, help="Keep each result in its own folder under raw/.")
@click.option(
    "--download-timeout-secs",
    type=Duration(),
    default=300,
    help="How long the download may take: seconds, or a duration (5m).",
)
@pass_state
def job_get(
    state: CliState,
    job_id: str,
    output_dir: Path | None,
    raw: bool,
    download_timeout_secs: float,
) -> None:
    """Download the results of a job.

    Links that would point outside the results are not created; they are named on standard
    error. A job without results (failed, stopped, still running) is an error: no folder is
    created.
    """
    download_results(
        state.client(),
        job_id,
        output_dir,
        raw=raw,
        timeout=float(download_timeout_secs),
        namespace=state.namespace,
    )


def _engine(job: Job) -> str:
    return job.tasks[0].engine.type if job.tasks else ""
