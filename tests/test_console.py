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
            # plain print() as third-party code calls it; `end=""` makes each line one write, which
            # only keeps lines whole for the assertions below (a two-write print may interleave)
            print(f"task {n} line {i} " + "x" * (i % 50) + "\\n", end="")
            if i % 500 == 0:
                say(f"task {n} progress {i}", err=True)

    def task_chatter():
        for n in range(TASKS):
            yield doit_task(name=str(n), actions=[(_chatter, (n,))], uptodate=[False])
    """)


class RacyStream:
    """A text stream whose write is a read-modify-write that lets other threads in midway (as
    TextIOWrapper's pending buffer does when a flush releases the GIL): unserialized, writes get lost."""

    def __init__(self) -> None:
        self.data = ""

    def write(self, text: str) -> int:
        before = self.data
        time.sleep(0.0001)  # releases the GIL
        self.data = before + text
        return len(text)

    def flush(self) -> None:
        pass


def _hammer(stream, threads: int = 4, lines: int = 100) -> None:
    def work(n: int) -> None:
        for i in range(lines):
            stream.write(f"thread {n} line {i}\n")

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


EXPECTED = sorted(f"thread {n} line {i}" for n in range(4) for i in range(100))


def test_serialized_stream_loses_no_write_of_concurrent_threads() -> None:
    racy = RacyStream()
    _hammer(SerializedStream(racy, threading.RLock()))
    assert sorted(racy.data.splitlines()) == EXPECTED


def test_the_racy_stream_does_lose_writes_without_the_lock() -> None:
    """The check above can fail: the same threads on the bare stream lose lines."""
    racy = RacyStream()
    _hammer(racy)
    assert len(racy.data.splitlines()) < len(EXPECTED)


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
