"""``job list|describe|executions|history|stop|get`` with every output format."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bacalhau.models import SpecConfig
from tests.cli.conftest import Cli
from tests.client.test_download import tarball


def run_echo(bacalhau: Cli, text: str, *extra: str) -> str:
    result = bacalhau(["docker", "run", "--id-only", *extra, "busybox", "--", "echo", text])
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def test_job_list_formats_paging_and_labels(bacalhau: Cli) -> None:
    first = run_echo(bacalhau, "one", "-l", "team=a")
    second = run_echo(bacalhau, "two", "-l", "bacalhau_canary=true")
    table = bacalhau(["job", "list"])
    assert table.exit_code == 0
    header = ["CREATED", "ID", "NAME", "JOB", "TYPE", "STATE"]
    assert table.stdout.splitlines()[0].split() == header
    assert table.stdout.splitlines()[1].split()[-3:] == ["docker", "batch", "Completed"]
    assert first[:10] in table.stdout and second[:10] not in table.stdout  # canaries hidden
    listed = json.loads(bacalhau(["job", "list", "--output", "json", "--labels", ""]).stdout)
    assert [j["ID"] for j in listed] == [first, second]
    as_yaml = yaml.safe_load(bacalhau(["job", "list", "--output", "yaml"]).stdout)
    assert [j["ID"] for j in as_yaml] == [first]
    page = bacalhau(["job", "list", "--labels", "", "--limit", "1", "--output", "json"])
    assert [j["ID"] for j in json.loads(page.stdout)] == [first]
    token = page.stderr.split("--next-token")[1].split()[0]
    rest = bacalhau(["job", "list", "--labels", "", "--next-token", token, "--output", "json"])
    assert [j["ID"] for j in json.loads(rest.stdout)] == [second]
    newest = bacalhau(["job", "list", "--labels", "", "--order-reversed", "--output", "json"])
    assert json.loads(newest.stdout)[0]["ID"] == second
    headless = bacalhau(["job", "list", "--hide-header"])
    assert "CREATED" not in headless.stdout


def test_describe_executions_history(bacalhau: Cli) -> None:
    job_id = run_echo(bacalhau, "described")
    text = bacalhau(["job", "describe", job_id[:10]])
    assert text.exit_code == 0
    assert f"ID            = {job_id}" in text.stdout
    assert "State         = Completed" in text.stdout
    assert "Standard Output" in text.stdout and "described" in text.stdout
    as_json = json.loads(bacalhau(["job", "describe", job_id, "--output", "json"]).stdout)
    assert as_json["Job"]["ID"] == job_id
    assert as_json["Executions"]["Items"][0]["RunOutput"]["Stdout"] == "described\n"
    assert as_json["History"]["Items"][0]["Event"]["Message"] == "Job submitted"
    execs = bacalhau(["job", "executions", job_id])
    assert "Completed" in execs.stdout and "STATE" in execs.stdout
    items = json.loads(bacalhau(["job", "executions", job_id, "--output", "json"]).stdout)
    assert items[0]["ComputeState"]["StateType"] == 9  # the CLI speaks v1.5.2
    hist = yaml.safe_load(
        bacalhau(["job", "history", job_id, "--event-type", "job", "--output", "yaml"]).stdout
    )
    assert [h["JobState"]["New"] for h in hist] == ["Pending", "Running", "Completed"]
    # Bacalhau's list flags, as its scripts pass them: time order either way.
    flags = ["--order-by", "created_at", "--order-reversed", "--output", "json"]
    newest_first = bacalhau(["job", "history", job_id, "--event-type", "job", *flags])
    assert newest_first.exit_code == 0, newest_first.output
    states = [h["JobState"]["New"] for h in json.loads(newest_first.stdout)]
    assert states == ["Completed", "Running", "Pending"]
    unknown = bacalhau(["job", "history", job_id, "--order-by", "size"])
    assert unknown.exit_code == 2 and "--order-by" in unknown.stderr
    table = bacalhau(["job", "history", job_id])
    assert "Completed successfully" in table.stdout
    # Bacalhau's columns (cmd/util/cols/history.go); --wide adds ours after them.
    header = bacalhau(["job", "history", job_id, "--output", "csv"]).stdout.splitlines()[0]
    assert header == "TIME,LEVEL,JOB VERSION,EXEC. ID,TOPIC,EVENT"
    wide = bacalhau(["job", "history", job_id, "--output", "csv", "--wide"]).stdout
    assert wide.splitlines()[0] == header + ",NODE ID,REV.,PREVIOUS,NEW"
    missing = bacalhau(["job", "describe", "j-nope"])
    assert missing.exit_code == 1
    assert "Error: job not found: j-nope" in missing.stderr
    assert "Hint: check the job ID or name with `bacalhau job list`" in missing.stderr


def test_executions_page_with_next_token(bacalhau: Cli) -> None:
    """Bacalhau's list flags on ``job executions``: a page cut by --limit says how to go on."""
    job_id = run_echo(bacalhau, "paged")
    more = [bacalhau.server.run(bacalhau.orch.start_execution(job_id, f"n-{i}")) for i in range(2)]
    page = bacalhau(["job", "executions", job_id, "--limit", "2", "--output", "json"])
    assert page.exit_code == 0, page.output
    first = [e["ID"] for e in json.loads(page.stdout)]
    assert len(first) == 2 and first[1] == more[0]
    token = page.stderr.split("--next-token")[1].split()[0]
    # The whole command, as Bacalhau prints it.
    assert f"job executions {job_id} --limit 2 --next-token {token}\n" in page.stderr
    rest = bacalhau(["job", "executions", job_id, "--next-token", token, "--output", "json"])
    assert [e["ID"] for e in json.loads(rest.stdout)] == [more[1]]
    assert "--next-token" not in rest.stderr


def test_stop(bacalhau: Cli) -> None:
    job_id = bacalhau(["docker", "run", "--id-only", "--no-wait", "busybox"]).stdout.strip()
    stopped = bacalhau(["job", "stop", job_id, "--reason", "enough"])
    assert stopped.exit_code == 0
    assert "evaluation ID" in stopped.stdout
    other = bacalhau(["docker", "run", "--id-only", "--no-wait", "busybox"]).stdout.strip()
    quiet = bacalhau(["job", "stop", "--quiet", other])
    assert quiet.exit_code == 0 and quiet.stdout == ""
    # A job that already ended is not stopped, as Bacalhau's CLI has it: a Failed job stays
    # Failed (the API alone would record a stop over its failure).
    again = bacalhau(["job", "stop", job_id])
    assert again.exit_code == 1
    assert "Job is already in a terminal state.\nThe current state is: Stopped" in again.stderr
    done = run_echo(bacalhau, "x")
    refused = bacalhau(["job", "stop", done])
    assert refused.exit_code == 1 and "The current state is: Completed" in refused.stderr
    failed = bacalhau(["docker", "run", "--id-only", "missing:image"]).stdout.strip()
    kept = bacalhau(["job", "stop", failed])
    assert kept.exit_code == 1 and "The current state is: Failed" in kept.stderr
    assert "State         = Failed" in bacalhau(["job", "describe", failed]).stdout
    legacy = bacalhau(["cancel", failed])
    assert legacy.exit_code == 1 and "The current state is: Failed" in legacy.stderr


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def test_job_get_downloads_and_merges(
    bacalhau: Cli, file_server: tuple[str, Path], tmp_path: Path
) -> None:
    url, root = file_server
    (root / "e-1.tar.gz").write_bytes(tarball({"stdout": b"out\n", "outputs/f.txt": b"data"}))
    job_id = bacalhau(["docker", "run", "--id-only", "--no-wait", "busybox"]).stdout.strip()
    orch = bacalhau.orch
    ex = bacalhau.server.run(orch.start_execution(job_id))
    spec = SpecConfig("urlDownload", {"URL": f"{url}/e-1.tar.gz"})
    bacalhau.server.run(orch.complete_execution(ex, published=spec))
    out = tmp_path / "results"
    result = bacalhau(["job", "get", job_id, "--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    assert str(out) in result.stdout
    assert (out / "stdout").read_text() == "out\n"
    assert (out / "outputs" / "f.txt").read_text() == "data"
    # Bacalhau's flag takes a Go duration, and a bare number of seconds is ours.
    raw_dir = str(tmp_path / "raw")
    raw = bacalhau(
        ["job", "get", job_id, "--output-dir", raw_dir, "--raw", "--download-timeout-secs", "5m"]
    )
    assert raw.exit_code == 0, raw.output
    assert (tmp_path / "raw" / "raw" / "e-1" / "stdout").is_file()


def test_unwritable_output_dir_is_a_clean_error(
    bacalhau: Cli, file_server: tuple[str, Path], tmp_path: Path
) -> None:
    url, root = file_server
    (root / "e.tar.gz").write_bytes(tarball({"stdout": b"x"}))
    job_id = bacalhau(["docker", "run", "--id-only", "--no-wait", "busybox"]).stdout.strip()
    ex = bacalhau.server.run(bacalhau.orch.start_execution(job_id))
    spec = SpecConfig("urlDownload", {"URL": f"{url}/e.tar.gz"})
    bacalhau.server.run(bacalhau.orch.complete_execution(ex, published=spec))
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = bacalhau(["job", "get", job_id, "--output-dir", str(blocker / "out")])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and str(blocker) in result.stderr
    assert "Hint:" in result.stderr
