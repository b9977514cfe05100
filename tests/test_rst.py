"""reStructuredText through docutils: headings, code, roles, Sphinx directives; never a crash or a word on stderr."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from deadzone_build.pipeline.chunk import chunk_markdown
from deadzone_build.pipeline.sections import section_texts
from deadzone_build.pipeline.clean import document_markdown
from deadzone_build.pipeline.clean import clean_document
from deadzone_build.pipeline.rst import convert, convert_rst, rst_to_markdown

RST = Path(__file__).parent / "fixtures" / "rst"
SPHINX = (RST / "sphinx_module.rst").read_text()


@pytest.fixture(scope="module")
def sphinx_md() -> str:
    return convert(SPHINX, "sphinx_module.rst")


def test_section_titles_become_headings_by_depth(sphinx_md: str) -> None:
    headings = [line for line in sphinx_md.split("\n") if line.startswith("#")]
    assert headings == [
        "# `tinyqueue` --- A bounded work queue",
        "## Getting started",
        "### Blocking behaviour",
        "## Reference",
        "### `class tinyqueue.Queue(maxsize=0)`",
        "#### `tinyqueue.Queue.put(item, block=True, timeout=None)`",
        "#### `tinyqueue.Queue.get(block=True, timeout=None)`",
        "### `tinyqueue.make_queue(size)`",
        "### `exception tinyqueue.Full`",
        "### Options",
    ]


def test_literal_and_code_blocks_become_fences(sphinx_md: str) -> None:
    assert ("Create a queue and put a few items in it:\n\n```\n>>> from tinyqueue import Queue\n"
            ">>> q = Queue(maxsize=2)\n>>> q.put(\"a\")\n```") in sphinx_md
    assert "```python\nwhile not q.empty():\n    item = q.get()\n    print(item)\n```" in sphinx_md


def test_roles_become_code_or_text(sphinx_md: str) -> None:
    assert "The `tinyqueue` module" in sphinx_md
    assert "See the tutorial for a walk through, and `Queue` for the abstract interface." in sphinx_md
    assert "the older `make_queue()` helper; the 1234 discussion" in sphinx_md  # unknown :gh: role
    assert "blocks `Queue.put()` until a consumer calls `get()`:" in sphinx_md
    assert ":func:" not in sphinx_md and ":class:" not in sphinx_md and ":ref:" not in sphinx_md


def test_sphinx_directives(sphinx_md: str) -> None:
    assert "**Note:** Queues are not shared between processes" in sphinx_md
    assert "**Added in version 1.2:** The *timeout* parameter." in sphinx_md
    assert "**Changed in version 1.3:** Raises `ValueError` for a negative *timeout*." in sphinx_md
    assert "**Deprecated since version 1.0:** Use `Queue` directly." in sphinx_md
    assert "`tinyqueue.make_queue(size, kind)`" in sphinx_md  # second signature
    assert "producer -> queue -> consumer" in sphinx_md  # unknown directive: content kept
    assert "maxdepth" not in sphinx_md and "reference\n" not in sphinx_md  # toctree dropped
    assert "Jane Doe" not in sphinx_md and "synopsis" not in sphinx_md
    assert "| `maxsize` | Upper bound on the number of queued items. |" in sphinx_md
    assert "- **Platform:** Unix, Windows" in sphinx_md
    assert ".. " not in sphinx_md


def test_plain_docutils_readme() -> None:
    md = convert((RST / "plain_readme.rst").read_text())
    assert md.startswith("# tomlette\n\nA tiny TOML reader. It reads **TOML 1.0** documents")
    assert "## Installation\n\nInstall it from PyPI:\n\n```shell\npip install tomlette\n```" in md
    assert "### Reading a file\n\n```python\nimport tomlette\n\nwith open(" in md
    assert "1. Fix the line named in the message.\n2. Run the reader again." in md
    assert "- `-v, --verbose`: Print every key as it is read." in md
    assert "[the license file](https://example.org/LICENSE)" in md


def test_broken_document_converts_and_keeps_what_it_can() -> None:
    md = convert((RST / "broken.rst").read_text())
    assert md.startswith("# Broken document\n")
    assert "Body text of the unknown directive survives." in md
    assert "`payload`" in md  # unknown role
    assert "### Level jump\n\nText under a third-level title." in md
    assert '```python\nprint("still code")\n```' in md  # code-block with options docutils lacks
    assert "passwd" not in md and "<script>" not in md  # include and raw are never honoured


def test_nothing_is_printed(capfd: pytest.CaptureFixture[str]) -> None:
    for path in sorted(RST.glob("*.rst")):
        rst_to_markdown(path.read_text(), str(path))
    rst_to_markdown(".. nope::\n\n   :x:`y` `unclosed\n\n====\nbad\n")
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_nothing_is_printed_in_a_fresh_interpreter_with_all_warnings_on() -> None:
    script = (
        "import pathlib, sys\n"
        "from deadzone_build.pipeline.clean import document_markdown\n"
        "for p in sorted(pathlib.Path(sys.argv[1]).glob('*.rst')):\n"
        "    document_markdown(p.read_text(), kind='github-rst', url=p.name)\n"
    )
    done = subprocess.run([sys.executable, "-W", "always", "-c", script, str(RST)],
                          capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


@pytest.mark.parametrize("text", [
    "", "\x00\x01 binary-ish", ".. ::", ".. a::\n  :b:\n", "```", ":x:`", "=====\n\n=====",
    "*" * 10_000, "a\tb\n\t\tc", ".. |x| replace:: y\n\n|x| |z|", ".. [#] foot",
    ".. _a:\n.. _a:\n\n`a`_", "+--+\n|a|\n+--+\n+--+", "x" * 200_000,
    "Title\n=====\n\nSub\n~~~\n\nOther\n-----\n\nBack\n~~~~\n", ".. image:: x.png\n   :target: y\n",
    ".. code-block::\n   no blank line so this is the argument\n", ".. default-role:: math\n\n`x`\n",
    ".. role:: custom\n\n:custom:`x`\n",
])
def test_odd_inputs_never_raise(text: str) -> None:
    assert isinstance(convert(text), str)


def test_a_document_docutils_cannot_handle_comes_back_as_text() -> None:
    deep = "".join("  " * i + f"level {i}\n\n" for i in range(400))  # recursion in docutils
    with pytest.raises(RecursionError):
        convert(deep)
    assert rst_to_markdown(deep) == deep
    kept = convert_rst(deep)
    assert kept.markdown == deep and kept.warning.startswith("docutils could not convert this RST (RecursionError")
    assert "raw text was indexed instead" in kept.warning
    cleaned = clean_document(deep, kind="github-rst", url="deep.rst")
    assert cleaned.warning == kept.warning and "level 399" in cleaned.markdown


def test_a_document_docutils_converts_has_no_warning() -> None:
    assert convert_rst(SPHINX, "sphinx_module.rst").warning is None
    assert clean_document("Title\n=====\n", kind="github-rst", url="t.rst").warning is None


def test_threads_convert_the_same_as_one() -> None:
    texts = [p.read_text() for p in sorted(RST.glob("*.rst"))] * 4
    expected = [rst_to_markdown(t) for t in texts]
    results: list[str | None] = [None] * len(texts)

    def work(n: int) -> None:
        results[n] = rst_to_markdown(texts[n])

    threads = [threading.Thread(target=work, args=(n,)) for n in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == expected


def test_rst_sections_give_heading_paths_for_chunks() -> None:
    md = document_markdown(SPHINX, kind="github-rst", url="https://h/o/r/v1/Doc/tinyqueue.rst")
    paths = [path for path, text in section_texts(md) if text]
    title = "`tinyqueue` --- A bounded work queue"
    assert (title, "Reference", "`class tinyqueue.Queue(maxsize=0)`",
            "`tinyqueue.Queue.put(item, block=True, timeout=None)`") in paths
    chunks = chunk_markdown(md, "https://h/o/r/v1/Doc/tinyqueue.rst")
    assert chunks and all(c.tokens <= 256 for c in chunks)
    assert any(c.heading_path == (title, "Getting started") and "```python" in c.text for c in chunks)
