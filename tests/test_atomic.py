"""atomic.write_atomic on a real file system: the bytes, no leftovers, and durability of the rename."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from deadzone_build import atomic


def test_replaces_the_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "meta.json"
    atomic.write_atomic(target, "first")
    atomic.write_atomic(target, b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["meta.json"]


def test_the_directory_is_fsynced_after_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "db.sha256"
    synced: list[tuple[str, bool]] = []  # (what, target already renamed into place)
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        synced.append((kind, target.exists()))
        real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", recording_fsync)
    atomic.write_atomic(target, "abc  deadzone.db\n")
    assert synced == [("file", False), ("dir", True)]  # the temp file's bytes, then the rename itself


def test_a_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "manifest.json"
    atomic.write_atomic(target, "old")

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        atomic.write_atomic(target, "new")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["manifest.json"]
