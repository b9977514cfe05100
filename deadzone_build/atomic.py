"""Atomic, durable file writes: the one way the project puts bytes on disk.

Write to a temp file in the same directory, fsync, rename over the target, fsync the directory:
a crash or Ctrl-C at any point leaves the old file or the new one, never a torn one, and once
`write_atomic` returns the new one survives a power loss (the rename lives in the directory, so
without the directory's fsync it may be lost even though the file's bytes are on disk).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Callable


def write_synced(path: Path, data: bytes) -> None:
    """Write `data` to `path` (a fresh file inside a scratch directory) and fsync it."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def fsync_dir(path: Path) -> None:
    """Make renames inside `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes | str) -> None:
    """Replace `path` with `data` (str is UTF-8) via a synced temp file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(6)}")
    try:
        write_synced(tmp, data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def swap_in_dir(staging: Path, target: Path, is_good: Callable[[Path], bool], *, replace: bool = False) -> None:
    """Rename directory `staging` to `target` (the caller removes `staging` afterwards if it is left).

    A `target` that `is_good` (another process finished first) is kept unless `replace`: its
    files may be open. Any other existing `target` is moved aside first, because a rename cannot
    replace a non-empty directory. Losing the final rename to a process that put a good `target`
    in place is not an error."""
    if target.exists():
        if not replace and is_good(target):
            return
        stale = Path(tempfile.mkdtemp(prefix=f".{target.name}.stale-", dir=target.parent))
        os.replace(target, stale / "old")
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.rename(staging, target)
    except OSError:
        if not is_good(target):
            raise


def sha256_file(path: Path, fsync: bool = False) -> str:
    """sha256 of a file, read in blocks; with `fsync`, also make it durable (the db is built with synchronous=OFF)."""
    with open(path, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
        if fsync:
            os.fsync(fh.fileno())
    return digest
