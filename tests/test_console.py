"""Standard output under `doit -n N -P thread`: no crash, no torn line (deadzone_build/console.py, tasks.py)."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from deadzone_build.console import SerializedStream

CHATTY_DODO = textwrap.dedent("""\
    import sys
    from deadzone_build.tasks import doit_config, doit_task, say

    DOIT_CONFIG = doit_config()

    def _chatter(n):
        for i in range(LINES):
            # plain print() as third-party code does (one write per line keeps lines whole)
            print(f"task {n} line {i} " + "x" * (i % 50) + "\\n", end="")
            if i % 500 == 0:
                say(f"task {n} progress {i}", err=True)

    def task_chatter():
        for n in range(TASKS):
            yield doit_task(name=str(n), actions=[(_chatter, (n,))], uptodate=[False])
    """)


class OverlapDetector(io.RawIOBase):
    """A raw stream that sleeps in write() and records whether two writes ever overlapped."""

    def __init__(self) -> None:
        self.active = 0
        self.overlapped = False
        self.data = bytearray()
        self._guard = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[override]
        with self._guard:
            self.active += 1
            self.overlapped |= self.active > 1
        time.sleep(0.0005)  # releases the GIL, as a real write(2) does
        self.data += bytes(b)
        with self._guard:
            self.active -= 1
        return len(b)


def _hammer(stream, threads: int = 4, lines: int = 300) -> None:
    def work(n: int) -> None:
        for i in range(lines):
            stream.write(f"thread {n} line {i}\n")
            if i % 7 == 0:
                stream.flush()

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stream.flush()


def test_serialized_stream_never_lets_two_threads_into_the_underlying_stream() -> None:
    raw = OverlapDetector()
    text = io.TextIOWrapper(io.BufferedWriter(raw, buffer_size=64), encoding="utf-8", write_through=True)
    _hammer(SerializedStream(text))
    assert not raw.overlapped
    lines = raw.data.decode().splitlines()
    assert sorted(lines) == sorted(f"thread {n} line {i}" for n in range(4) for i in range(300))


def test_the_detector_does_see_overlap_without_the_lock() -> None:
    """The check above can fail: unserialized writers overlap in the raw stream."""
    raw = OverlapDetector()
    text = io.TextIOWrapper(io.BufferedWriter(raw, buffer_size=64), encoding="utf-8", write_through=True)

    class Unlocked:
        def write(self, s: str) -> int:
            return raw.write(s.encode())

        def flush(self) -> None:
            pass

    _hammer(Unlocked())
    assert raw.overlapped
    text.detach()


def test_serialized_stream_answers_like_the_stream_it_wraps() -> None:
    inner = io.StringIO()
    stream = SerializedStream(inner)
    assert stream.write("abc") == 3
    stream.writelines(["d\n", "e\n"])
    assert inner.getvalue() == "abcd\ne\n"
    assert stream.isatty() is False and stream.getvalue() == "abcd\ne\n"


def test_doit_config_wraps_stdout_stderr_and_reporter_once() -> None:
    code = textwrap.dedent("""\
        import sys
        from deadzone_build.console import SerializedStream
        from deadzone_build.tasks import doit_config
        first = doit_config()["outfile"]
        second = doit_config()["outfile"]
        assert first is second is sys.stdout, (first, second, sys.stdout)
        assert isinstance(sys.stderr, SerializedStream) and not isinstance(sys.stderr.wrapped, SerializedStream)
        assert sys.stdout.wrapped is sys.__stdout__
        print("ok")
        """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == "ok\n", proc.stderr


def test_chatty_tasks_in_doit_threads_neither_crash_nor_tear_lines(tmp_path: Path) -> None:
    """Before tasks ran uncaptured, this crashed (SIGSEGV) in about half the runs."""
    tasks, lines = 8, 20000
    (tmp_path / "dodo.py").write_text(CHATTY_DODO.replace("LINES", str(lines)).replace("TASKS", str(tasks)))
    expected = {f"task {n} line {i} " + "x" * (i % 50) for n in range(tasks) for i in range(lines)}
    for run in range(3):
        proc = subprocess.run([sys.executable, "-m", "doit", "-n", "2", "-P", "thread", "chatter"],
                              cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, (run, proc.returncode, proc.stderr[-3000:])
        out = proc.stdout.splitlines()
        chatter = [line for line in out if line.startswith("task ")]
        assert len(chatter) == len(expected) and set(chatter) == expected, run
        assert sorted(line for line in out if line.startswith(".  ")) == sorted(
            f".  chatter:{n}" for n in range(tasks))
        assert proc.stderr.count("progress") == tasks * (lines // 500)
