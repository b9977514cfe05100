"""Scratch directories of artifact writers, and the sweep that recovers what crashed writers left.

A writer builds `artifacts/.tmp-<slug>-<pid>-<token>/` and swaps it in through
`.old-<slug>-<pid>-<token>/` (pipeline/artifact.py). `recover` undoes a swap a crash interrupted
and deletes scratch dirs of dead writers; `recover_once` runs it the first time a process touches
an artifacts directory, so an up-to-date check costs O(1) in the number of slots.
"""

from __future__ import annotations

import os
import re
import shutil
import secrets
import threading
from pathlib import Path

from deadzone_build.atomic import fsync_dir
from deadzone_build.stale import process_alive

_SCRATCH = re.compile(r"\.(?P<kind>tmp|old)-(?P<slug>.+)-(?P<pid>[0-9]+)-(?P<token>[0-9a-f]{12})")
_SCRATCH_PREFIXES = (".tmp-", ".old-")
_in_flight: set[str] = set()  # scratch dir names this process is writing right now
_in_flight_lock = threading.Lock()
_swept: set[str] = set()  # artifacts dirs `recover` has swept in this process (as given, and resolved)
_swept_lock = threading.Lock()


def scratch_dir(artifacts_dir: Path, kind: str, slug: str) -> Path:
    """A fresh `.<kind>-<slug>-<pid>-<token>` path in `artifacts_dir`, marked in flight until `release`."""
    path = artifacts_dir / f".{kind}-{slug}-{os.getpid()}-{secrets.token_hex(6)}"
    with _in_flight_lock:
        _in_flight.add(path.name)
    return path


def release(path: Path) -> None:
    with _in_flight_lock:
        _in_flight.discard(path.name)


def recover(artifacts_dir: Path) -> None:
    """Undo the swaps crashes interrupted and drop the scratch dirs dead writers left, for every slug.

    Lists `artifacts_dir` once: for each slug whose directory is gone, the newest `.old-<slug>-*` of
    a dead writer is renamed back into place; every other stale `.tmp-`/`.old-` dir is deleted.
    Scratch dirs of a live writer (this process's threads, or another live process) are left alone.
    """
    artifacts_dir = Path(artifacts_dir)
    try:
        entries = [e for e in os.scandir(artifacts_dir) if e.name.startswith(_SCRATCH_PREFIXES)]
    except FileNotFoundError:
        return
    by_slug: dict[str, list[os.DirEntry[str]]] = {}
    for entry in entries:
        slug = _stale_scratch_slug(entry.name)
        if slug is not None:
            by_slug.setdefault(slug, []).append(entry)
    restored = False
    for slug, stale in by_slug.items():
        target = artifacts_dir / slug
        olds = sorted((e for e in stale if e.name.startswith(".old-")), key=lambda e: e.stat().st_mtime_ns)
        if olds and not (target.exists() or target.is_symlink()):
            newest = olds[-1]
            os.rename(newest.path, target)
            restored = True
            stale = [e for e in stale if e.name != newest.name]
        for entry in stale:
            shutil.rmtree(entry.path, ignore_errors=True)
    if restored:
        fsync_dir(artifacts_dir)


def recover_once(artifacts_dir: Path | str) -> None:
    """`recover(artifacts_dir)` the first time this process touches that directory, then never again.

    Leftovers exist only where a writer died, and a writer of this process never leaves any (its
    scratch dirs are removed in `finally`), so one sweep when a run starts finds them all; a writer
    of another process that dies later is swept by the next run. Until then its slot is merely not
    current (rebuilt), never wrongly current: currency is decided by verifying `<slug>/` alone.
    """
    given = os.fspath(artifacts_dir)
    if given in _swept:  # the common case: one set lookup, no resolve() (a syscall per path component)
        return
    resolved = os.path.realpath(given)
    with _swept_lock:
        if resolved not in _swept:
            recover(Path(resolved))
            _swept.add(resolved)
        _swept.add(given)


def _stale_scratch_slug(name: str) -> str | None:
    """The slug of a scratch dir no live writer owns; None for a live one or any other name."""
    match = _SCRATCH.fullmatch(name)
    if match is None:
        return None
    pid = int(match["pid"])
    if pid == os.getpid():
        with _in_flight_lock:
            live = name in _in_flight
    else:
        live = process_alive(pid)
    return None if live else match["slug"]
