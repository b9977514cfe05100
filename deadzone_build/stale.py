"""Leftovers of killed processes: temp files and directories named with their writer's pid.

A writer names its scratch `…<pid>…`; the next run removes those whose pid is no longer alive
(never another live process's, never its own).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path


def process_alive(pid: int) -> bool:
    """True when a process with this pid exists (ours, or another user's)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    except OSError:
        return False
    return True


def remove_stale(directory: Path, pattern: re.Pattern[str]) -> list[Path]:
    """Delete the entries of `directory` whose whole name matches `pattern` (which has a `pid`
    group) and whose pid is dead; returns what was removed. Missing directory: nothing to do."""
    removed = []
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or int(match["pid"]) == os.getpid() or process_alive(int(match["pid"])):
            continue
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed
