"""``shallow_copy``: a new record with the same values, for the model's slotted classes."""

from __future__ import annotations

from dataclasses import dataclass, fields

import pytest

from bacalhau.models import Execution, Job, NodeInfo, NodeState, NodeType, shallow_copy


@dataclass(slots=True)
class _Base:
    a: int
    shared: list[int]


@dataclass(slots=True)
class _Derived(_Base):
    b: str


def test_every_field_is_copied_inherited_ones_too() -> None:
    src = _Derived(a=1, shared=[1], b="x")
    out = shallow_copy(src)
    assert out == src and out is not src
    assert out.shared is src.shared  # shallow: the values themselves are shared
    out.a, out.b = 2, "y"
    assert (src.a, src.b) == (1, "x")


@pytest.mark.parametrize(
    "src",
    [
        Job.from_dict({"Type": "batch", "Tasks": [{"Name": "t", "Engine": {"Type": "noop"}}]}),
        Execution(id="e-1", job_id="j-1", node_id="n-1"),
        NodeState(info=NodeInfo(node_id="n-1", node_type=NodeType.COMPUTE)),
    ],
    ids=lambda src: type(src).__name__,
)
def test_model_records_copy_equal(src: object) -> None:
    out = shallow_copy(src)
    assert out == src and out is not src
    assert [f.name for f in fields(out)] == [f.name for f in fields(src)]


def test_classes_without_slots_or_frozen_are_refused() -> None:
    @dataclass
    class Plain:
        a: int

    @dataclass(slots=True, frozen=True)
    class Frozen:
        a: int

    with pytest.raises(TypeError):
        shallow_copy(Plain(1))
    with pytest.raises(TypeError):
        shallow_copy(Frozen(1))
