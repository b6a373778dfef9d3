"""GPUs reserved for an execution reach its container, and only those.

The container arguments are checked against the real Docker engine's API client; running a
GPU container needs a GPU host, where the last test runs (it is skipped elsewhere, saying so:
detection itself is tested on recorded tool output in tests/compute/test_gpus.py).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import docker
import pytest

from bacalhau.executor import GPU, GpuVendor, detect_gpus
from bacalhau.executor.docker._container import NO_NETWORK, Confinement, container_kwargs
from bacalhau.executor.docker._params import DockerEngineSpec
from tests.executor.conftest import new_request

A100 = [
    GPU(index=i, name="NVIDIA A100", vendor=GpuVendor.NVIDIA, memory=40960, uuid=f"GPU-{i}")
    for i in range(4)
]


def kwargs_for(tmp_path: Path, gpus: tuple[GPU, ...]) -> dict[str, object]:
    request = new_request(tmp_path, "docker", {"Image": "local/busybox:1.37"}, gpus=gpus)
    with docker.APIClient(version="auto") as api:
        return container_kwargs(
            api,
            request=request,
            spec=DockerEngineSpec.from_spec(request.engine),
            name="gpu-test",
            labels={},
            result_sources={},
            confinement=Confinement(pids_limit=64, read_only_rootfs=True, tmp_size=1 << 20),
            network=NO_NETWORK,
        )


def test_reserved_gpus_become_one_device_request(tmp_path: Path) -> None:
    host_config = kwargs_for(tmp_path, (A100[1], A100[3]))["host_config"]
    assert host_config["DeviceRequests"] == [  # type: ignore[index]
        {
            "Driver": "nvidia",
            "Count": 0,
            "DeviceIDs": ["GPU-1", "GPU-3"],
            "Capabilities": [["gpu"]],
            "Options": {},
        }
    ]


def test_no_gpu_no_device_request(tmp_path: Path) -> None:
    host_config = kwargs_for(tmp_path, ())["host_config"]
    assert "DeviceRequests" not in host_config  # type: ignore[operator]
    assert "Devices" not in host_config  # type: ignore[operator]


@pytest.mark.skipif(
    shutil.which("nvidia-smi") is None,
    reason="no nvidia-smi on this host: real GPU detection and device requests need an "
    "NVIDIA GPU (parsing is tested on recorded output)",
)
def test_real_nvidia_gpus_are_detected_and_one_reaches_a_container(
    tmp_path: Path, busybox_image: str
) -> None:
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=True)
    gpus = [g for g in detect_gpus() if g.vendor == GpuVendor.NVIDIA]
    assert len(gpus) == len(listed.stdout.strip().splitlines())
    kwargs = kwargs_for(tmp_path, (gpus[0],))
    kwargs["command"] = ["ls", "/dev"]
    with docker.APIClient(version="auto") as api:
        container = api.create_container(**kwargs)
        try:
            api.start(container)
            api.wait(container, timeout=60)
            devices = api.logs(container).decode().split()
        finally:
            api.remove_container(container, force=True)
    assert "nvidia0" in devices
