"""A reader that leaves early (``bacalhau job describe ID | head``) ends the command quietly."""

from __future__ import annotations

import subprocess
import sys

from tests.cli.conftest import Cli


def test_a_reader_that_leaves_early_ends_the_command_quietly(bacalhau: Cli) -> None:
    big = "x" * 100_000  # the description outgrows a pipe's buffer
    args = ["docker", "run", "--id-only", "-e", f"BIG={big}", "img", "--", "echo", "hi"]
    submitted = bacalhau(args)
    assert submitted.exit_code == 0, submitted.output
    job_id = submitted.output.strip().splitlines()[-1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bacalhau",
            "--api-host",
            "127.0.0.1",
            "--api-port",
            str(bacalhau.server.port),
            "job",
            "describe",
            job_id,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.read(10)  # more than a pipe's buffer is on its way: leave early
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141, stderr
    assert "Error" not in stderr and "Traceback" not in stderr, stderr
