"""Opening, reopening, transactions, history and undo; bad images and addresses."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import transaction

from batos_lab.errors import (
    ImageCorrupted,
    ImageError,
    ImageLocked,
    ImageNotFound,
    TransactionFailed,
    UndoUnavailable,
    ZEOUnreachable,
)
from batos_lab.genesis import PERSONAS, tour
from batos_lab.image import Image, check_image, open_image
from batos_lab.zeo import free_port


def test_genesis_creates_primordial_objects_once(image_path: Path) -> None:
    with open_image(image_path) as image:
        root = image.root
        assert set(root["personas"].keys()) == set(PERSONAS)
        robin = root["personas"]["ROBIN"]
        assert "sage_facet_" in robin.pillars and robin.core_mission
        for home in ("traits", "genesis", "pLLM_obj", "memory_manager", "heartbeat", "forge"):
            assert home in root
        created = root["genesis"].created
        notes = [h["note"] for h in image.history()]
        assert notes.count("genesis: the primordial objects") == 1
    with open_image(image_path) as image:
        assert image.root["genesis"].created == created  # reopening resumes
        assert [h["note"] for h in image.history()].count("genesis: the primordial objects") == 1
        assert "ROBIN" in tour(image)


def test_objects_methods_survive_close_and_reopen(image_path: Path) -> None:
    with open_image(image_path) as image:
        with image.transaction("teach a counter"):
            counter = image.new("counter", count=0)
            counter.define(
                "bump",
                "def bump(self, by=1):\n    self.count = self.count + by\n"
                "    self._p_changed = True\n    return self.count",
            )
        with image.transaction("bump"):
            counter.bump(5)
    with open_image(image_path) as image:
        counter = image["counter"]
        assert counter.count == 5
        assert counter.bump() == 6
        assert counter.get_slot("parent*") is image.root["traits"]


def test_uncommitted_changes_are_lost_on_close(image_path: Path) -> None:
    with open_image(image_path) as image:
        image.new("draft", x=1)
    with open_image(image_path) as image:
        assert "draft" not in image


def test_history_and_undo_last(file_image: Image) -> None:
    with file_image.transaction("set colour"):
        obj = file_image.new("paint", colour="red")
    with file_image.transaction("repaint"):
        obj.colour = "blue"
    assert [h["note"] for h in file_image.history(2)] == ["repaint", "set colour"]
    undone = file_image.undo_last()
    assert undone["note"] == "repaint"
    assert file_image["paint"].colour == "red"
    assert file_image.history(1)[0]["note"] == "undo: repaint"


def test_undo_refuses_genesis_and_memory_images(image_path: Path, image: Image) -> None:
    with open_image(image_path) as fresh:
        with pytest.raises(UndoUnavailable, match="genesis"):
            fresh.undo_last()
    with pytest.raises(UndoUnavailable, match="keeps no history"):
        image.undo_last()


def test_transaction_with_block_rolls_back_on_error(image: Image) -> None:
    with pytest.raises(ZeroDivisionError):
        with image.transaction("will fail"):
            image.new("half", x=1)
            1 / 0
    assert "half" not in image


def test_transact_retries_conflicts_and_loses_nothing(image: Image) -> None:
    with image.transaction("counter"):
        image.new("shared", count=0)
    other_tm = transaction.TransactionManager()
    other = image.db.open(transaction_manager=other_tm)
    runs = []

    def increment() -> int:
        counter = image["shared"]
        value = counter.count
        if not runs:  # a concurrent writer commits between our read and our commit
            other.root()["objects"]["shared"].count = 100
            other_tm.commit()
        runs.append(value)
        counter.count = value + 1
        return counter.count

    assert image.transact(increment, note="increment") == 101
    assert len(runs) == 2
    other.close()


def test_transact_gives_up_after_bounded_retries_and_commits_nothing(image: Image) -> None:
    with image.transaction("counter"):
        image.new("hot", count=0)
    other_tm = transaction.TransactionManager()
    other = image.db.open(transaction_manager=other_tm)

    def always_conflicts() -> None:
        image["hot"].count = image["hot"].count + 1
        other_tm.begin()
        other.root()["objects"]["hot"].count = -1
        other_tm.commit()

    with pytest.raises(TransactionFailed, match="after 2 retries"):
        image.transact(always_conflicts, note="doomed", retries=2)
    image.sync()
    assert image["hot"].count == -1
    other.close()


def test_single_with_block_reports_a_conflict(image: Image) -> None:
    with image.transaction("counter"):
        image.new("c", count=0)
    other_tm = transaction.TransactionManager()
    other = image.db.open(transaction_manager=other_tm)
    with pytest.raises(TransactionFailed, match="conflicted"):
        with image.transaction("mine"):
            image["c"].count = 1
            other.root()["objects"]["c"].count = 2
            other_tm.commit()
    other.close()


def test_missing_image_without_create(tmp_path: Path) -> None:
    with pytest.raises(ImageNotFound, match="batos genesis"):
        open_image(tmp_path / "none.fs", create=False)


def test_locked_image_names_the_cause_and_points_to_zeo(image_path: Path) -> None:
    open_image(image_path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import sys, time
            from batos_lab.image import open_image
            image = open_image({str(image_path)!r})
            print("open", flush=True)
            time.sleep(60)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(ImageLocked, match=r"open in another process.*serve-image.*zeo://"):
            open_image(image_path)
    finally:
        holder.kill()
        holder.wait()
    open_image(image_path).close()  # the lock went with the process


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[:-37])
    elif how == "garbage":
        middle = len(data) // 2
        path.write_bytes(data[:middle] + b"\xff" * 64 + data[middle + 64 :])
    else:
        path.write_bytes(b"this is not an image")
    index = path.with_name(path.name + ".index")
    if index.exists():
        index.unlink()


@pytest.mark.parametrize("how", ["truncate", "header"])
def test_structurally_damaged_image_refuses_to_open(image_path: Path, how: str) -> None:
    with open_image(image_path) as image, image.transaction("something"):
        image.new("x", data=list(range(50)))
    _damage(image_path, how)
    before = image_path.read_bytes()
    with pytest.raises(ImageCorrupted, match="damaged.*fsrecover"):
        open_image(image_path)
    with pytest.raises(ImageCorrupted):
        check_image(image_path, deep=True)
    assert image_path.read_bytes() == before  # nothing was "repaired" behind the user's back


def test_damaged_record_is_found_by_the_deep_check(image_path: Path) -> None:
    with open_image(image_path) as image, image.transaction("something"):
        image.new("x", data=list(range(2000)))
    _damage(image_path, "garbage")
    with pytest.raises(ImageCorrupted, match="unreadable record|damaged"):
        check_image(image_path, deep=True)


def test_check_image_reports_a_sound_file(file_image: Image) -> None:
    report = check_image(file_image.location, deep=True)
    assert report["transactions"] >= 2 and report["records"] > 10


def test_zeo_unreachable_times_out_with_a_clear_message() -> None:
    port = free_port()
    started = time.monotonic()
    with pytest.raises(ZEOUnreachable, match=rf"No ZEO server answered at 127.0.0.1:{port}"):
        open_image(f"zeo://127.0.0.1:{port}", timeout=1.0)
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("url", ["zeo://", "zeo://host", "zeo://host:port", "zeo://:81"])
def test_bad_zeo_address(url: str) -> None:
    with pytest.raises(ImageError, match="zeo://127.0.0.1:8100"):
        open_image(url)


def test_image_lookup_error_lists_known_names(image: Image) -> None:
    with pytest.raises(KeyError, match="known: .*personas"):
        image["nothing"]
