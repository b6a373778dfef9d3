"""Reading the answer of an operator's HTTP hook (a requester's approval hook, a compute
node's HTTP probe), shared by both roles."""

from __future__ import annotations

import aiohttp

from bacalhau.hooks._command import MAX_OUTPUT

__all__ = ["AnswerTooLarge", "read_answer"]


class AnswerTooLarge(Exception):
    """The hook answered more than the bytes a hook's answer may take."""

    def __init__(self, cap: int) -> None:
        super().__init__(f"answered more than {cap // 1024} KiB")


async def read_answer(resp: aiohttp.ClientResponse, cap: int = MAX_OUTPUT) -> bytes:
    """The whole body of ``resp``, up to its end: an answer arrives in as many pieces as the
    network and the server make of it (chunked, or written in parts), and one read gives
    only what has arrived. Raises :class:`AnswerTooLarge` past ``cap`` bytes."""
    parts: list[bytes] = []
    size = 0
    while chunk := await resp.content.read(cap + 1 - size):
        parts.append(chunk)
        size += len(chunk)
        if size > cap:
            raise AnswerTooLarge(cap)
    return b"".join(parts)
