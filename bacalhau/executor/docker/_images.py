"""Whether this node can run a job's image, answered at bid time.

An image present on the engine can always run. One that is not can run only if the operator
allows pulls and the image's registry has it: the node asks the registry for the image's
manifest (the engine's distribution endpoint, which uses the engine's own credentials and
mirrors) and bids only when it answers. A registry that has no such image, or cannot be
reached, is a refusal at once, with the registry's own words, instead of an accepted job
that fails later at its pull (or, on a node without network, hangs on it).

Answers are kept for a while (found: 5 minutes by default, refused: 30 seconds at most), so a
stream of jobs naming one image asks its registry once, and concurrent bids share one lookup.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import docker.errors

from bacalhau.errors import BacalhauError, ExecutionFailed, ImageNotFound, InvalidJobSpec
from bacalhau.executor.docker._defaults import DEFAULT_IMAGE_CACHE_SIZE, DEFAULT_IMAGE_CACHE_TTL
from bacalhau.executor.docker._errors import ENGINE_ERRORS, explain, unreachable

__all__ = ["ImageCheck", "image_missing"]

#: How long a registry's answer is kept: that it has the image, that it does not.
FOUND_TTL = DEFAULT_IMAGE_CACHE_TTL
REFUSED_TTL = 30.0
#: The longest a bid waits for a registry's answer.
LOOKUP_TIMEOUT = 10.0
#: Images whose answer is kept (the least recently asked go first).
MAX_KEPT = DEFAULT_IMAGE_CACHE_SIZE

#: A registry's answers meaning it has no such image for us (unknown, or not ours to read).
_NOT_THERE = frozenset({401, 403, 404})

_PULL_HINT = (
    "check the image's name and tag, log the node's Docker engine in to a private registry "
    "(`docker login`), or load the image on the node (`docker load`)"
)
_REACH_HINT = (
    "the compute node's Docker engine must reach the image's registry (or a mirror); "
    "otherwise load the image on the node (`docker load`, `docker import`)"
)


def image_missing(image: str) -> ImageNotFound:
    """The error for an image this node does not hold and may not pull."""
    return ImageNotFound(
        f"image {image} is not present on this node and pulling is disabled",
        hint="load the image on the compute node (`docker load`, `docker import`), or let "
        "the node pull images (`-c allow_image_pull=true`)",
    )


def _invalid_image(image: str, err: docker.errors.APIError) -> InvalidJobSpec:
    """A name the engine (or the registry, through it) refuses as an image reference."""
    return InvalidJobSpec(
        f"invalid image {image!r}: {explain(err)}",
        field="Engine.Params.Image",
        hint="name an image as the Docker CLI does: [registry/]name[:tag|@digest]",
    )


class ImageCheck:
    """Checks images against the engine and, when pulls are allowed, their registries."""

    def __init__(
        self,
        *,
        allow_pull: bool,
        found_ttl: float = FOUND_TTL,
        max_kept: int = MAX_KEPT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._allow_pull = allow_pull
        self._found_ttl = found_ttl
        self._max_kept = max_kept
        self._clock = clock
        #: Image -> (when the answer expires, the refusal or None when found).
        self._answers: OrderedDict[str, tuple[float, BacalhauError | None]] = OrderedDict()
        self._lookups: dict[str, asyncio.Future[BacalhauError | None]] = {}

    async def check(self, api: Any, image: str) -> None:
        """Return when this node can run ``image``; raise :class:`ImageNotFound` when it
        cannot, :class:`InvalidJobSpec` for a name the engine refuses."""
        try:
            await asyncio.to_thread(api.inspect_image, image)
            return
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            if e.status_code == 400:
                raise _invalid_image(image, e) from e
            raise ExecutionFailed(f"cannot inspect image {image}: {explain(e)}") from e
        except ENGINE_ERRORS as e:
            raise unreachable(e) from e
        if not self._allow_pull:
            raise image_missing(image)
        refusal = await self._registry_answer(api, image)
        if refusal is not None:
            # A fresh error each time: the kept one may be raised for many bids.
            raise copy.copy(refusal)

    async def _registry_answer(self, api: Any, image: str) -> BacalhauError | None:
        kept = self._answers.get(image)
        if kept is not None and kept[0] > self._clock():
            self._answers.move_to_end(image)
            return kept[1]
        lookup = self._lookups.get(image)
        if lookup is None:
            lookup = self._lookups[image] = asyncio.ensure_future(self._ask_registry(api, image))
            lookup.add_done_callback(lambda _: self._lookups.pop(image, None))
        # Shielded: a bid that gives up does not cancel the lookup other bids wait for.
        return await asyncio.shield(lookup)

    async def _ask_registry(self, api: Any, image: str) -> BacalhauError | None:
        refusal: BacalhauError | None
        try:
            async with asyncio.timeout(LOOKUP_TIMEOUT):
                await asyncio.to_thread(api.inspect_distribution, image)
            refusal = None
        except TimeoutError:
            refusal = ImageNotFound(
                f"image {image} is not present on this node and its registry did not answer "
                f"within {LOOKUP_TIMEOUT:g} s",
                hint=_REACH_HINT,
            )
        except docker.errors.APIError as e:
            if e.status_code in _NOT_THERE:
                refusal = ImageNotFound(
                    f"image {image} is not present on this node, and its registry does not "
                    f"have it: {explain(e)}",
                    hint=_PULL_HINT,
                )
            elif e.status_code == 400:
                refusal = _invalid_image(image, e)
            else:
                refusal = ImageNotFound(
                    f"image {image} is not present on this node and its registry could not "
                    f"be reached: {explain(e)}",
                    hint=_REACH_HINT,
                )
        except ENGINE_ERRORS as e:
            raise unreachable(e) from e  # the engine, not the registry: nothing to keep
        ttl = self._found_ttl if refusal is None else min(self._found_ttl, REFUSED_TTL)
        self._answers[image] = (self._clock() + ttl, refusal)
        self._answers.move_to_end(image)
        while len(self._answers) > self._max_kept:
            self._answers.popitem(last=False)
        return refusal
