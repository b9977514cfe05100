"""Standard streams that several threads may write at once (for `doit -n N -P thread`).

CPython's `io.TextIOWrapper` is not safe for concurrent writes: a write that flushes releases the
GIL mid-update, and a second thread's write can then corrupt its pending buffer, dropping output
or crashing (python/cpython gh-118138, gh-119506). doit's thread runner writes its `.  task`
lines and every task's live output from the worker threads, so the doit entry point routes
stdout, stderr and doit's own reporter stream through one lock. (The other half of running
tasks in threads safely, never letting doit swap `sys.stdout`, is `tasks.doit_task`.)
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Iterable, TextIO

_LOCK = threading.RLock()  # one lock for both streams: a line written in one write() is never split


class SerializedStream:
    """A text stream whose writes and flushes hold a lock; everything else goes to the wrapped stream."""

    def __init__(self, stream: TextIO, lock: threading.RLock = _LOCK) -> None:
        self.wrapped = stream
        self._lock = lock

    def write(self, text: str) -> int:
        with self._lock:
            return self.wrapped.write(text)

    def writelines(self, lines: Iterable[str]) -> None:
        with self._lock:
            self.wrapped.writelines(lines)

    def flush(self) -> None:
        with self._lock:
            self.wrapped.flush()

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, ... (tqdm and doit ask)
        return getattr(self.wrapped, name)

    def __repr__(self) -> str:
        return f"SerializedStream({self.wrapped!r})"


def serialize_standard_streams() -> SerializedStream:
    """Wrap `sys.stdout` and `sys.stderr` (once; idempotent) and return the stdout wrapper.

    Anything that captured the original stream object before this call bypasses the lock, which
    is why doit's reporter must be handed the returned stream (its `outfile` option)."""
    if not isinstance(sys.stderr, SerializedStream):
        sys.stderr = SerializedStream(sys.stderr)  # type: ignore[assignment]
    if not isinstance(sys.stdout, SerializedStream):
        sys.stdout = SerializedStream(sys.stdout)  # type: ignore[assignment]
    return sys.stdout  # type: ignore[return-value]
