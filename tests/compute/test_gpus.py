"""GPU detection on recorded tool output, and GPUs handed out by device across executions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from bacalhau.compute import CapacityTracker
from bacalhau.compute._capacity import allocated_capacity
from bacalhau.compute._queue import RunQueue
from bacalhau.executor import GPU, GpuVendor, detect_gpus, docker_gpu_options, gpu_labels
from bacalhau.executor._gpus import parse_nvidia_smi, parse_rocm_smi, parse_xpu_smi
from bacalhau.models import Resources

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def recorded(outputs: dict[str, str]) -> object:
    """A tool runner answering from recorded output; a tool not recorded is not installed."""

    def run(argv: Sequence[str]) -> str | None:
        return outputs.get(argv[0])

    return run


def test_nvidia_smi_csv() -> None:
    gpus = parse_nvidia_smi(fixture("nvidia-smi-4xa100.csv"))
    assert [g.index for g in gpus] == [0, 1, 2, 3]
    assert gpus[1] == GPU(
        index=1,
        name="NVIDIA A100-SXM4-40GB",
        vendor=GpuVendor.NVIDIA,
        memory=40960,
        uuid="GPU-1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
        pci_address="0000:0f:00.0",
    )
    assert gpus[0].to_dict() == {
        "Index": 0,
        "Name": "NVIDIA A100-SXM4-40GB",
        "Vendor": "NVIDIA",
        "Memory": 40960,
        "PCIAddress": "0000:07:00.0",
    }


def test_nvidia_smi_unknown_memory_and_blank_lines() -> None:
    gpus = parse_nvidia_smi(fixture("nvidia-smi-mig-na.csv"))
    assert [(g.name, g.memory) for g in gpus] == [
        ("Tesla T4", 15360),
        ("NVIDIA GeForce RTX 3090", 0),
    ]


def test_rocm_smi_json() -> None:
    gpus = parse_rocm_smi(fixture("rocm-smi.json"))
    assert [(g.index, g.name, g.vendor, g.memory, g.pci_address) for g in gpus] == [
        (0, "Instinct MI210", GpuVendor.AMD, 65520, "0000:03:00.0"),
        (1, "Instinct MI210", GpuVendor.AMD, 65520, "0000:83:00.0"),
    ]


def test_xpu_smi_json() -> None:
    (gpu,) = parse_xpu_smi(fixture("xpu-smi-discovery.json"))
    assert (gpu.index, gpu.name, gpu.vendor, gpu.memory, gpu.pci_address) == (
        0,
        "Intel(R) Data Center GPU Flex 170",
        GpuVendor.INTEL,
        16288,
        "0000:4d:00.0",
    )


@pytest.mark.parametrize(
    ("parse", "text"),
    [
        (parse_nvidia_smi, "NVIDIA-SMI has failed because it couldn't communicate with the driver"),
        (parse_nvidia_smi, "x, GPU, 10, GPU-1"),
        (parse_rocm_smi, "ERROR: no GPUs"),
        (parse_xpu_smi, '{"device_list": [{"device_name": "no id"}]}'),
    ],
)
def test_unexpected_output_is_a_value_error(parse: object, text: str) -> None:
    with pytest.raises(ValueError):
        parse(text)  # type: ignore[operator]


def test_detection_joins_the_vendors_and_skips_a_tool_it_cannot_read() -> None:
    gpus = detect_gpus(
        recorded(  # type: ignore[arg-type]
            {
                "nvidia-smi": fixture("nvidia-smi-4xa100.csv"),
                "rocm-smi": fixture("rocm-smi.json"),
                "xpu-smi": "xpu-smi: command failed",
            }
        )
    )
    assert [(g.vendor, g.index) for g in gpus] == [
        *((GpuVendor.NVIDIA, i) for i in range(4)),
        (GpuVendor.AMD, 0),
        (GpuVendor.AMD, 1),
    ]
    assert detect_gpus(recorded({})) == []  # type: ignore[arg-type]


def test_labels_name_each_gpu_and_the_vendors() -> None:
    gpus = [
        *parse_nvidia_smi(fixture("nvidia-smi-mig-na.csv")),
        *parse_rocm_smi(fixture("rocm-smi.json")),
    ]
    assert gpu_labels(gpus) == {
        "GPU-0": "Tesla T4",
        "GPU-1": "NVIDIA GeForce RTX 3090",
        "GPU-2": "Instinct MI210",
        "GPU-3": "Instinct MI210",
        "gpu-vendor": "NVIDIA,AMDATI",
    }
    assert gpu_labels([]) == {}


def test_docker_options_name_exactly_the_given_devices() -> None:
    nvidia = parse_nvidia_smi(fixture("nvidia-smi-4xa100.csv"))
    options = docker_gpu_options(nvidia[2:])
    (request,) = options["device_requests"]
    assert request["Driver"] == "nvidia"
    assert request["DeviceIDs"] == [nvidia[2].uuid, nvidia[3].uuid]
    assert request["Capabilities"] == [["gpu"]]
    amd = parse_rocm_smi(fixture("rocm-smi.json"))
    assert docker_gpu_options(amd[1:]) == {
        "devices": [
            "/dev/kfd:/dev/kfd:rwm",
            "/dev/dri/by-path/pci-0000:83:00.0-card:/dev/dri/by-path/pci-0000:83:00.0-card:rwm",
            "/dev/dri/by-path/pci-0000:83:00.0-render:/dev/dri/by-path/pci-0000:83:00.0-render:rwm",
        ]
    }
    assert docker_gpu_options([]) == {}


def test_capacity_counts_the_detected_gpus(tmp_path: Path) -> None:
    gpus = parse_nvidia_smi(fixture("nvidia-smi-4xa100.csv"))
    assert allocated_capacity(tmp_path, gpus=gpus).gpu == 4
    assert allocated_capacity(tmp_path).gpu == 0


def test_concurrent_executions_get_distinct_gpus_and_release_them() -> None:
    gpus = parse_nvidia_smi(fixture("nvidia-smi-4xa100.csv"))
    tracker = CapacityTracker(Resources(cpu=8, memory=1 << 34, disk=1 << 34, gpu=4), gpus)
    started: list[str] = []
    queue = RunQueue(tracker, started.append)
    two = Resources(cpu=1, memory=1 << 20, gpu=2)
    queue.submit("e-a", two)
    queue.submit("e-b", two)
    queue.submit("e-c", Resources(cpu=1, memory=1 << 20, gpu=1))
    queue.submit("e-cpu", Resources(cpu=1, memory=1 << 20))
    assert started == ["e-a", "e-b", "e-cpu"]  # e-c waits: every GPU is taken
    assert [g.index for g in tracker.gpus_of("e-a")] == [0, 1]
    assert [g.index for g in tracker.gpus_of("e-b")] == [2, 3]
    assert tracker.gpus_of("e-cpu") == ()
    queue.finished("e-b")
    assert started[-1] == "e-c"
    assert [g.index for g in tracker.gpus_of("e-c")] == [2]
    assert tracker.gpus_of("e-b") == ()
    held = [g.index for e in ("e-a", "e-c") for g in tracker.gpus_of(e)]
    assert sorted(held) == [0, 1, 2]  # never one device twice


def test_an_operator_offering_fewer_gpus_than_detected_hands_out_only_those() -> None:
    gpus = parse_nvidia_smi(fixture("nvidia-smi-4xa100.csv"))
    tracker = CapacityTracker(Resources(cpu=8, memory=1 << 30, gpu=1), gpus)
    assert tracker.try_reserve("e-1", Resources(gpu=1))
    assert not tracker.try_reserve("e-2", Resources(gpu=1))
    assert [g.index for g in tracker.gpus_of("e-1")] == [0]
