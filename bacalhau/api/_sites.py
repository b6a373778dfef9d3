"""Starting an aiohttp application's listening site (the API's, the metrics port's)."""

from __future__ import annotations

from aiohttp import web


async def start_site(runner: web.AppRunner, host: str, port: int) -> int:
    """Set ``runner`` up and listen on ``host:port`` (port 0 picks a free one); the bound
    port. On failure (a port in use: ``OSError``) the runner is cleaned up and it raises."""
    await runner.setup()
    site = web.TCPSite(runner, host or None, port, reuse_address=True)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return next((int(a[1]) for a in runner.addresses if isinstance(a, tuple) and len(a) >= 2), 0)
