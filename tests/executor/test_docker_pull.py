"""Pulling images: a node with pulls allowed bids for an image it lacks only once the image's
registry confirmed it, pulls it at the run, and refuses at once an image that no registry
has or whose registry cannot be reached. Against the real engine and a real registry on
loopback (``registry.py``)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import docker
import pytest

from bacalhau.errors import ImageNotFound, InvalidJobSpec
from bacalhau.executor import DockerExecutor
from bacalhau.executor.docker._images import FOUND_TTL, ImageCheck
from bacalhau.models import SpecConfig
from bacalhau.node._plugins import build_executors
from tests.executor.conftest import new_request
from tests.executor.registry import Registry, free_port, local_registry


@pytest.fixture
def registry(tmp_path: Path, busybox_image: str) -> Iterator[Registry]:
    with local_registry(tmp_path / "registry") as running:
        yield running


@pytest.fixture
async def pulling(tmp_path: Path, busybox_image: str) -> AsyncIterator[DockerExecutor]:
    executor = DockerExecutor(
        client=docker.from_env(),
        allow_pull=True,
        name_prefix=f"bp{uuid.uuid4().hex[:10]}",
        scratch_dir=tmp_path / "scratch",
    )
    yield executor
    await executor.close()


def _engine(image: str) -> SpecConfig:
    return SpecConfig("docker", {"Image": image})


def _present(image: str) -> bool:
    try:
        docker.from_env().images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


async def test_an_image_in_its_registry_is_bid_for_and_pulled_at_the_run(
    tmp_path: Path, pulling: DockerExecutor, registry: Registry, busybox_image: str
) -> None:
    image = registry.push(busybox_image)
    assert not _present(image)
    await pulling.validate(_engine(image))
    request = new_request(
        tmp_path,
        "docker",
        {"Image": image, "Entrypoint": ["sh", "-c"], "Parameters": ["echo pulled"]},
    )
    result = await pulling.run(request)
    assert result.exit_code == 0 and result.stdout == "pulled\n"
    assert _present(image)


async def test_an_image_its_registry_lacks_is_refused_at_once(
    pulling: DockerExecutor, registry: Registry
) -> None:
    image = f"{registry.host}/nothing-here:1.0"
    started = time.monotonic()
    with pytest.raises(ImageNotFound) as info:
        await pulling.validate(_engine(image))
    assert time.monotonic() - started < 5
    assert info.value.message.startswith(
        f"image {image} is not present on this node, and its registry does not have it: "
    )
    assert "manifest unknown" in info.value.message
    assert "docker login" in info.value.hint


async def test_an_unreachable_registry_is_refused_at_once(pulling: DockerExecutor) -> None:
    image = f"127.0.0.1:{free_port()}/anything:1.0"  # nothing listens there
    started = time.monotonic()
    with pytest.raises(ImageNotFound) as info:
        await pulling.validate(_engine(image))
    assert time.monotonic() - started < 5
    assert info.value.message.startswith(
        f"image {image} is not present on this node and its registry could not be reached: "
    )
    assert "registry" in info.value.hint


async def test_a_present_image_needs_no_registry(
    pulling: DockerExecutor, busybox_image: str
) -> None:
    # local/busybox is in no registry this machine can reach: only the engine is asked.
    await pulling.validate(_engine(busybox_image))


async def test_answers_are_kept_and_concurrent_bids_share_one_lookup(
    tmp_path: Path, pulling: DockerExecutor, busybox_image: str
) -> None:
    with local_registry(tmp_path / "registry") as registry:
        image = registry.push(busybox_image)
        missing = f"{registry.host}/nothing-here:1.0"
        # Ten bids at once for each image: each is answered, by one lookup per image.
        found = await asyncio.gather(
            *(pulling.validate(_engine(image)) for _ in range(10)), return_exceptions=True
        )
        assert found == [None] * 10
        refused = await asyncio.gather(
            *(pulling.validate(_engine(missing)) for _ in range(10)), return_exceptions=True
        )
        assert all(isinstance(e, ImageNotFound) for e in refused)
        # Each bid got an error of its own (one raised error is never shared).
        assert len({id(e) for e in refused}) == 10
        assert registry.manifest_checks(image) == 1
        assert registry.manifest_checks(missing) == 1
    # The registry is gone: the kept answers still hold.
    await pulling.validate(_engine(image))
    with pytest.raises(ImageNotFound, match="does not have it"):
        await pulling.validate(_engine(missing))


async def test_an_image_gone_from_its_registry_after_the_bid_fails_the_run(
    tmp_path: Path, pulling: DockerExecutor, registry: Registry, busybox_image: str
) -> None:
    image = registry.push(busybox_image)
    await pulling.validate(_engine(image))
    registry.stop()
    request = new_request(tmp_path, "docker", {"Image": image})
    with pytest.raises(ImageNotFound) as info:
        await pulling.run(request)
    assert info.value.message.startswith(
        f"image {image} is not present on this node and could not be pulled: "
    )


async def test_a_malformed_image_name_is_invalid_job_spec(pulling: DockerExecutor) -> None:
    with pytest.raises(InvalidJobSpec) as info:
        await pulling.validate(_engine("127.0.0.1:1/UPPER/case:1.0"))
    assert info.value.field == "Engine.Params.Image"


async def test_a_kept_answer_expires(tmp_path: Path, busybox_image: str) -> None:
    now = [0.0]
    check = ImageCheck(allow_pull=True, clock=lambda: now[0])
    api = docker.APIClient()
    with local_registry(tmp_path / "registry") as registry:
        image = registry.push(busybox_image)
        await check.check(api, image)
    now[0] = FOUND_TTL - 1
    await check.check(api, image)  # still kept
    now[0] = FOUND_TTL + 1
    with pytest.raises(ImageNotFound, match="could not be reached"):
        await check.check(api, image)


async def test_a_node_configured_to_keep_nothing_asks_at_every_bid(
    tmp_path: Path, busybox_image: str
) -> None:
    # As a node builds it from docker_image_cache_ttl (ManifestCache.TTL) = 0.
    [executor] = build_executors(
        ["docker"], allow_image_pull=True, node_id="12D3KooWkeepsnothing", docker_image_cache_ttl=0
    ).values()
    with local_registry(tmp_path / "registry") as registry:
        image = registry.push(busybox_image)
        await executor.validate(_engine(image))
        await executor.validate(_engine(image))
        assert registry.manifest_checks(image) == 2
