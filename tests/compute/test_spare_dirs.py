"""Results folders made ahead: an execution takes one by renaming it, holding only the
layout's empty files; one that cannot be taken is never half-used; a restart keeps the
pristine ones and drops any other; a folder given back is emptied in place and taken again."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bacalhau.compute._spare_dirs import LAYOUT, SpareDirs
from tests.compute.waiting import eventually


def _layout(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


async def test_a_taken_folder_holds_the_empty_layout_and_is_replaced(tmp_path: Path) -> None:
    spares = SpareDirs(tmp_path, reserve=3)
    try:
        spares.start()
        for rounds in range(2):
            await eventually(lambda: spares.ready == 3)  # made again once told to
            for n in range(3):
                target = tmp_path / f"e-{rounds}-{n}"
                assert spares.take(target)
                assert _layout(target) == {name: b"" for name in LAYOUT}
            assert not spares.take(tmp_path / "e-none")
            spares.replenish()
    finally:
        spares.close()


async def test_a_folder_in_the_way_is_left_alone(tmp_path: Path) -> None:
    spares = SpareDirs(tmp_path, reserve=1)
    try:
        spares.start()
        await eventually(lambda: spares.ready == 1)
        taken = tmp_path / "e-earlier"
        taken.mkdir()
        (taken / "stdout").write_text("an earlier attempt's output")
        assert not spares.take(taken)
        assert _layout(taken) == {"stdout": b"an earlier attempt's output"}
        spares.replenish()
        await eventually(lambda: spares.ready == 1)
        assert len(list((tmp_path / ".spare").iterdir())) == 1  # the refused one is gone
    finally:
        spares.close()


async def test_a_restart_keeps_pristine_spares_only(tmp_path: Path) -> None:
    first = SpareDirs(tmp_path, reserve=3)
    first.start()
    await eventually(lambda: first.ready == 3)
    first.close()
    made = sorted((tmp_path / ".spare").iterdir())
    assert len(made) == 3
    # One was written to, one holds something more: neither may reach an execution.
    (made[0] / "stdout").write_text("stale")
    (made[1] / "extra").write_text("")
    (tmp_path / ".spare" / "stray-file").write_text("")

    second = SpareDirs(tmp_path, reserve=3)
    try:
        second.start()  # adopts what the first left, then makes more
        await eventually(lambda: second.ready == 3)
        kept = set((tmp_path / ".spare").iterdir())
        assert made[2] in kept and made[0] not in kept and made[1] not in kept
        assert not (tmp_path / ".spare" / "stray-file").exists()
        for folder in kept:
            assert _layout(folder) == {name: b"" for name in LAYOUT}
    finally:
        second.close()


async def test_folders_given_back_are_emptied_and_taken_again(tmp_path: Path) -> None:
    spares = SpareDirs(tmp_path, reserve=1)
    try:
        spares.start()
        await eventually(lambda: spares.ready == 1)
        taken = tmp_path / "e-1"
        assert spares.take(taken)
        (taken / "stdout").write_text("written")
        (taken / "exitCode").write_text("3")
        inodes = {p.name: p.stat().st_ino for p in taken.iterdir()}
        assert spares.give_back(taken)
        assert not taken.exists()
        await eventually(lambda: spares.ready == 1)

        again = tmp_path / "e-2"
        assert spares.take(again)
        assert _layout(again) == {n: b"" for n in LAYOUT}
        # Emptied in place: no new file (an inode costs the disk more than a cut).
        assert {p.name: p.stat().st_ino for p in again.iterdir()} == inodes

        # One holding anything else is not reused.
        (again / "extra").write_text("")
        assert spares.give_back(again)
        await eventually(lambda: len(list((tmp_path / ".spare").iterdir())) == 1)
        spares.replenish()
        await eventually(lambda: spares.ready == 1)
        (kept,) = (tmp_path / ".spare").iterdir()
        assert sorted(p.name for p in kept.iterdir()) == sorted(LAYOUT)
    finally:
        spares.close()


async def test_a_folder_given_back_before_a_stop_is_emptied_at_the_next_start(
    tmp_path: Path,
) -> None:
    first = SpareDirs(tmp_path, reserve=1)
    first.start()
    await eventually(lambda: first.ready == 1)
    first.close()  # stopped: a folder given back now waits, written, for the next start
    (tmp_path / ".spare" / "used-0000").mkdir()
    (tmp_path / ".spare" / "used-0000" / "stdout").write_text("stale")

    second = SpareDirs(tmp_path, reserve=1)
    try:
        second.start()
        await eventually(lambda: second.ready == 2)
        for n in range(2):
            target = tmp_path / f"e-{n}"
            assert second.take(target)
            assert {p.name: p.read_bytes() for p in target.iterdir()} == {
                name: b"" for name in LAYOUT
            }
    finally:
        second.close()


async def test_a_folder_given_back_at_once_after_the_start_is_taken_back(tmp_path: Path) -> None:
    """An execution that ends before the thread has done anything (the first, a short one)
    gives its folder back all the same, and it is emptied once, not twice."""
    spares = SpareDirs(tmp_path, reserve=0)
    try:
        spares.start()
        done = tmp_path / "e-1"
        done.mkdir()
        (done / "stdout").write_text("written")
        assert spares.give_back(done)
        assert not done.exists()
        await eventually(lambda: spares.ready == 1)
        assert spares.take(tmp_path / "e-2")
        assert _layout(tmp_path / "e-2") == {name: b"" for name in LAYOUT}
        spares.replenish()
        await asyncio.sleep(0.2)  # a second emptying of the same folder would show here
        assert spares.ready == 0 and list((tmp_path / ".spare").iterdir()) == []
    finally:
        spares.close()
