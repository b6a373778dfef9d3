"""A node's lifeline to the process that started it (the devstack).

The starter keeps the write end of a pipe and never writes to it; the node watches the read
end. When the starter dies, however it dies (SIGKILL included), the kernel closes the write
end and the node reads end-of-file: it then stops gracefully, as on SIGTERM, so it still
removes its containers. Unlike ``PR_SET_PDEATHSIG``, this needs no code between fork and
exec (unsafe in a threaded parent) and does not depend on which thread of the starter forked.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

#: How long a node whose starter is gone may take to stop gracefully before it exits anyway.
ORPHAN_STOP_SECONDS = 15.0


def watch_lifeline(
    fd: int,
    on_gone: Callable[[], None],
    *,
    hard_exit_after: float = ORPHAN_STOP_SECONDS,
) -> Callable[[], None]:
    """Call ``on_gone`` once ``fd`` reaches end of file; returns a function that stops watching.

    Should the graceful stop hang, the process exits ``hard_exit_after`` seconds later: an
    orphan must never linger.
    """
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)

    def readable() -> None:
        try:
            data = os.read(fd, 512)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            return  # nobody is meant to write; only the end of file matters
        loop.remove_reader(fd)
        log.warning("the process that started this node is gone: stopping")
        timer = threading.Timer(hard_exit_after, _exit_orphan, args=(hard_exit_after,))
        timer.daemon = True
        timer.start()
        on_gone()

    def unwatch() -> None:
        loop.remove_reader(fd)

    loop.add_reader(fd, readable)
    return unwatch


def _exit_orphan(after: float) -> None:
    log.error("graceful stop took more than %.0fs without a parent: exiting", after)
    os._exit(1)
