"""Removing a dead node's containers at once, not when the node next starts.

A compute node killed outright (SIGKILL, the OOM killer, a crash) cannot remove its running
containers: they belong to the Docker engine, not to the node's process tree. The job is
placed again elsewhere, so until the node restarts the old copy would go on running, using the
machine and perhaps writing where the new one writes. So the executor starts a small watcher
process holding the read end of a pipe whose only write end the node keeps open. The kernel
closes it when the node's process ends, however it ends; the watcher then removes the
containers with the executor's label that existed at that moment. After a graceful stop the
node has removed them itself and the watcher finds none.

The watcher is its own session (a Ctrl-C in the node's terminal does not reach it) and ignores
SIGINT, SIGTERM and SIGHUP: it ends when the pipe closes. It runs this file as a script, so
nothing of the package is loaded, and it loads the Docker SDK only once the pipe closes: it
waits in a few megabytes. It reaches the engine the way a node with no explicit client does,
from the environment (``DOCKER_HOST`` etc.). Its imports are the standard library's only.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from datetime import datetime

__all__ = ["DeathWatch"]

_log = logging.getLogger(__name__)

#: How long a graceful close waits for the watcher to see the pipe close and exit.
_EXIT_TIMEOUT = 10.0


class DeathWatch:
    """The watcher of one executor's containers (``prefix`` is the executor's label value)."""

    def __init__(self, prefix: str, label: str) -> None:
        self._prefix = prefix
        self._label = label
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the watcher; a failure to start is logged, and costs only the early
        removal (the next start of the node still removes what is left)."""
        try:
            self._process = subprocess.Popen(
                # -P: the script's folder is not put first on the path (it would shadow
                # nothing today, but "docker" is a name a folder here could take).
                [sys.executable, "-P", __file__, self._label, self._prefix],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as err:
            _log.warning("cannot start the watcher of this node's containers: %s", err)

    def stop(self) -> None:
        """Close the pipe (the node's containers are gone by now) and reap the watcher
        (blocking: call it off the event loop)."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=_EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _created_before(attrs: dict[str, object], moment: float) -> bool:
    """True when the container's ``Created`` time (RFC 3339, nanoseconds) is before
    ``moment``: a container a restarted node made meanwhile is not the dead node's."""
    text = str(attrs.get("Created", ""))
    try:
        created = datetime.fromisoformat(text[:26].rstrip("Z") + "+00:00")
    except ValueError:
        return True  # unreadable: it is ours by its label, and the node is gone
    return created.timestamp() < moment + 1.0  # Docker's clock and ours, to the second


def _remove_containers(label: str, prefix: str, moment: float) -> int:
    import docker  # only now: a node's lifetime is spent waiting without it

    client = docker.from_env()
    removed = 0
    for container in client.containers.list(all=True, filters={"label": f"{label}={prefix}"}):
        if not _created_before(container.attrs, moment):
            continue
        try:
            container.remove(force=True)
            removed += 1
        except docker.errors.APIError as err:
            if getattr(err, "status_code", None) != 404:  # removed meanwhile: fine
                print(f"cannot remove container {container.name}: {err}", file=sys.stderr)
    return removed


def main(argv: list[str]) -> int:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    label, prefix = argv
    while os.read(sys.stdin.fileno(), 4096):
        pass
    gone = time.time()
    try:
        removed = _remove_containers(label, prefix, gone)
    except Exception as err:  # the engine down: the node's next start removes them
        print(f"cannot remove the containers of {prefix}: {err}", file=sys.stderr)
        return 1
    if removed:
        print(
            f"the compute node of {prefix} is gone: removed its {removed} container(s)",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
