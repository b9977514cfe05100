"""Cleaning: what a reader never sees goes, code stays byte for byte."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from deadzone_build.pipeline.clean import clean_markdown, document_markdown, split_front_matter
from deadzone_build.pipeline.markdown import code_line_ranges, line_of, line_starts, normalize_newlines
from deadzone_build.errors import ScrapeError

FIXTURES = Path(__file__).parent / "fixtures"
MD = FIXTURES / "md"
MIRROR = FIXTURES / "docs-mirror"


def mirror_documents() -> list[tuple[str, str]]:
    index = json.loads((MIRROR / "index.json").read_text())
    return [(url, (MIRROR / "files" / entry["sha256"]).read_text(encoding="utf-8"))
            for url, entry in index.items()]


def code_blocks(markdown: str) -> list[str]:
    lines = markdown.split("\n")
    return ["\n".join(lines[a:b]) for a, b in code_line_ranges(markdown)]


def prose_lines(markdown: str) -> list[str]:
    lines = markdown.split("\n")
    code = {n for a, b in code_line_ranges(markdown) for n in range(a, b)}
    return [line for n, line in enumerate(lines) if n not in code]


# --------------------------------------------------------------------------- front matter


def test_yaml_front_matter_goes_and_its_title_becomes_the_h1() -> None:
    out = clean_markdown("---\nid: crud\ntitle: 'CRUD API'\ntags: [a, b]\n---\n\nBody text.\n")
    assert out == "# CRUD API\n\nBody text.\n"


def test_front_matter_title_is_not_added_when_the_page_has_an_h1() -> None:
    out = clean_markdown("---\ntitle: Overview\n---\n# Overview of widgets\n\nText.\n")
    assert out == "# Overview of widgets\n\nText.\n"


def test_toml_front_matter_goes() -> None:
    out = clean_markdown('+++\ntitle = "Hugo page"\nweight = 3\n+++\n\nBody.\n')
    assert out == "# Hugo page\n\nBody.\n"


def test_front_matter_is_only_at_the_top_and_must_be_closed() -> None:
    text = "Intro.\n\n---\n\ntitle: not front matter\n\n---\n"
    assert clean_markdown(text) == text
    unclosed = "---\ntitle: x\n\nno closing line\n"
    assert split_front_matter(unclosed) == ("", unclosed)


def test_broken_yaml_front_matter_is_still_removed() -> None:
    assert clean_markdown("---\ntitle: [unclosed\n---\nBody.\n") == "Body.\n"


# --------------------------------------------------------------------------- comments, MDX, JSX


def test_html_comments_go_inline_and_multiline() -> None:
    text = "A <!-- inline --> B.\n\n<!--\n## Old section\n\nGone.\n-->\n\nC.\n"
    assert clean_markdown(text) == "A  B.\n\nC.\n"


def test_comment_in_inline_code_stays() -> None:
    text = "Write `<!-- more -->` to cut the excerpt.\n"
    assert clean_markdown(text) == text


def test_mdx_import_and_export_blocks_go_but_prose_stays() -> None:
    text = (
        "import Tabs from '@theme/Tabs';\nimport {\n  A,\n  B,\n} from './components';\n\n"
        "export const toc = [\n  {id: 'x'},\n];\n\n"
        "import the module and export the result,\nas the next section shows.\n"
    )
    assert clean_markdown(text) == (
        "import the module and export the result,\nas the next section shows.\n"
    )


@pytest.mark.parametrize("line", [
    "<Tabs>", "</TabItem>", '<Admonition type="x">', '<Foo bar="x" />', "<>", "</>",
    '<TabItem value="go" label="Go" default>', "{/* prettier-ignore */}", "<Card.Group cols={2}>",
    '<div id="enable-section-numbers" />', "<br>", '<p align="center">',
])
def test_tag_only_lines_go(line: str) -> None:
    assert clean_markdown(f"Before.\n\n{line}\n\nAfter.\n") == "Before.\n\nAfter.\n"


def test_multiline_jsx_tag_goes() -> None:
    text = ("<Tabs\n  defaultValue=\"sqlite\"\n  values={[\n    {label: 'SQLite', value: 'sqlite'},\n"
            "    {label: 'MySQL > 8', value: 'mysql'},\n  ]}>\n<TabItem value=\"sqlite\">\n\nText.\n")
    assert clean_markdown(text) == "Text.\n"


def test_jsx_wrapping_text_is_unwrapped() -> None:
    text = ('<Info>**Protocol Revision**: 2025-06-18</Info>\n\n'
            '<Highlight color="#25c2a0">Widgets</Highlight> render.\n\n'
            'Press <Kbd>Ctrl</Kbd>+<Kbd>C</Kbd>.\n')
    assert clean_markdown(text) == "**Protocol Revision**: 2025-06-18\n\nWidgets render.\n\nPress Ctrl+C.\n"


def test_script_and_style_blocks_go() -> None:
    text = ("# Registry\n\n<script setup>\nimport Registry from '/components/registry.vue';\n</script>\n\n"
            "<style>\n.x { color: red }\n</style>\n\nList of tools.\n")
    assert clean_markdown(text) == "# Registry\n\nList of tools.\n"


def test_generics_and_unknown_tags_in_prose_stay() -> None:
    text = "Returns Option<String> or Vec<T>.\n\n<url>\n    A HTTP URL.\n\nMail <me@example.org>.\n"
    assert clean_markdown(text) == text


# --------------------------------------------------------------------------- badges


def test_badges_go_other_images_stay() -> None:
    text = (
        "[![Build](https://github.com/o/r/actions/workflows/ci.yml/badge.svg)](https://github.com/o/r)\n"
        "[![PyPI](https://img.shields.io/pypi/v/x.svg)](https://pypi.org/project/x/)\n"
        "![coverage](https://codecov.io/gh/o/r/graph/badge.svg)\n\n"
        "![Architecture](docs/arch.png)\n"
    )
    assert clean_markdown(text) == "![Architecture](docs/arch.png)\n"


def test_blank_line_runs_collapse_outside_code_only() -> None:
    text = "A.\n\n\n\n\nB.\n\n```\nx\n\n\n\ny\n```\n\n\n"
    assert clean_markdown(text) == "A.\n\nB.\n\n```\nx\n\n\n\ny\n```\n"


def test_crlf_is_normalised_once_at_the_entry_for_markdown_and_rst() -> None:
    assert document_markdown("\ufeff# T\r\n\r\nText.\r\n", kind="github-md", url="a.md") == "# T\n\nText.\n"
    rst = "Title\r\n=====\r\n\r\n::\r\n\r\n   code\r\n"
    assert document_markdown(rst, kind="github-rst", url="a.rst") == "# Title\n\n```\ncode\n```\n"
    assert normalize_newlines("a\r\nb\rc\n") == "a\nb\nc\n"


def test_line_of_finds_the_line_holding_an_offset() -> None:
    text = "ab\n\ncde\nf"
    starts = line_starts(text)
    assert starts == [0, 3, 4, 8]
    assert [line_of(starts, pos) for pos in range(len(text))] == [0, 0, 0, 1, 2, 2, 2, 2, 3]


def test_nothing_left_gives_empty_string() -> None:
    assert clean_markdown("---\nid: x\n---\n<!-- only a comment -->\n\n<Tabs>\n") == ""


# --------------------------------------------------------------------------- code is untouched

NASTY_CODE = (
    "<!-- a comment in code -->\nimport Tabs from '@theme/Tabs';\nexport const x = 1;\n"
    "<Tabs>\n</TabItem>\n<Foo bar=\"x\" />\n{/* mdx */}\n"
    "[![b](https://img.shields.io/x)](https://e.org)\n---\n\n\n\n# not a heading  \n\ttab\n"
)


@pytest.mark.parametrize("opener, closer", [("```", "```"), ("~~~", "~~~"), ("````md", "````"),
                                            ("```` ", "`````"), ("~~~~~", "~~~~~~")])
def test_fenced_code_is_byte_for_byte(opener: str, closer: str) -> None:
    inner = "" if opener == "```" else "```\n"  # a shorter or other fence line is content
    fence = f"{opener}\n{NASTY_CODE}{inner}{closer}"
    out = clean_markdown(f"Intro.\n\n{fence}\n\n<Tabs>\n\nOutro.\n")
    assert out == f"Intro.\n\n{fence}\n\nOutro.\n"


def test_indented_code_and_list_fences_are_untouched() -> None:
    text = ("Text:\n\n    <Tabs>\n    <!-- kept -->\n\n- item\n\n  ```\n  <Foo />\n  import a from 'b'\n  ```\n")
    assert clean_markdown(text) == text


def test_fence_swallowed_by_a_jsx_block_is_still_code() -> None:
    # CommonMark reads `<TabItem>` + the fence as one HTML block; the fence must still be kept.
    text = '<TabItem value="go">\n```go\n<!-- keep -->\n<Foo bar="x" />\nimport x from "y"\n```\n</TabItem>\n'
    assert clean_markdown(text) == '```go\n<!-- keep -->\n<Foo bar="x" />\nimport x from "y"\n```\n'


def test_unclosed_fence_keeps_the_rest_of_the_document() -> None:
    text = (MD / "unclosed_fence.md").read_text()
    assert clean_markdown(text) == text


# --------------------------------------------------------------------------- fixtures


def test_mdx_fixture_is_clean() -> None:
    out = clean_markdown((MD / "mdx_page.mdx").read_text())
    assert out.startswith("# Getting Started\n\nThis guide walks you through the first steps.\n")
    assert "Start with the defaults; every option can be changed later." in out
    assert "```bash\nnpm install widgets\n```\n\n```bash\nyarn add widgets\n```" in out
    assert "**Requires**: Node 18 or later.\n\nWidgets render anywhere." in out
    assert "      <TabItem value=\"a\">{/* keep me */}</TabItem>\n" in out  # inside the jsx fence
    assert "To import the widget in plain JavaScript, use `require`." in out
    for line in prose_lines(out):
        assert not re.match(r"\s*(</?[A-Z]|import |export |\{/\*)", line), line


def test_readme_fixture_is_clean() -> None:
    out = clean_markdown((MD / "readme_badges.md").read_text())
    assert out.startswith("# widgets\n\nA toolkit of small widgets.  It has no dependencies.\n")
    assert "![Architecture diagram](docs/architecture.png)" in out
    assert "<!-- keep this comment: it is part of the example -->" in out
    assert "`<!-- not a comment -->` and `![badge](https://img.shields.io/x)`" in out
    assert "Old section" not in out and "generated" not in out and "logo" not in out
    assert "\n\n\n" not in out


# --------------------------------------------------------------------------- document kinds


def test_document_markdown_picks_rst_by_suffix_then_kind() -> None:
    rst = "Title\n=====\n\nSee :func:`os.getcwd`.\n"
    expected = "# Title\n\nSee `os.getcwd()`.\n"
    assert document_markdown(rst, kind="github-md", url="https://h/o/r/v1/docs/index.rst") == expected
    assert document_markdown(rst, kind="github-rst", url="https://h/o/r/v1/docs/intro.txt") == expected
    assert document_markdown(rst, kind="github-rst", url="https://h/x/y.rst?raw=1") == expected
    md = "# Title\n\n<!-- c -->Text.\n"
    assert document_markdown(md, kind="github-rst", url="https://h/o/r/v1/README.md") == "# Title\n\nText.\n"
    assert document_markdown(md, kind="github-md", url="https://h/o/r/v1/notes.txt") == "# Title\n\nText.\n"


def test_document_markdown_rejects_other_kinds_by_url() -> None:
    with pytest.raises(ScrapeError, match=r"https://h/pkg.*'godoc'.*kind"):
        document_markdown("x", kind="godoc", url="https://h/pkg")


# --------------------------------------------------------------------------- the whole mirror


def test_mirror_code_survives_cleaning_in_order_and_nothing_else_is_left() -> None:
    docs = mirror_documents()
    assert len(docs) == 324
    leftovers = re.compile(r"\s*(<!--|import \S.* from ['\"]|</?(Tabs|TabItem|Note|Info|Warning)\b)")
    for url, text in docs:
        _, body = split_front_matter(text.replace("\r\n", "\n"))
        out = clean_markdown(text)
        position = 0
        for block in code_blocks(body):
            found = out.find(block, position)
            assert found >= 0, f"{url}: a code block changed: {block[:80]!r}"
            position = found + len(block)
        assert not out.startswith("---\n"), url
        for line in prose_lines(out):
            assert not leftovers.match(line), f"{url}: {line!r}"
            assert "img.shields.io" not in line, f"{url}: {line!r}"
        assert clean_markdown(out) == out, f"{url}: cleaning is not idempotent"


# --------------------------------------------------------------------------- hostile input


@pytest.mark.parametrize("text", [
    "<!-- never closed\n" * 5000,  # each `<!--` must not rescan the rest of the document
    "![a](" * 5000,
    "[![badge](" * 2000,
    "` x " * 5000,
    "<Foo x={" * 2000,
    "<a " * 5000,
    "import {\n" * 3000,
])
def test_hostile_input_is_left_as_it_is(text: str) -> None:
    # none of these is a complete comment, badge, tag or import: nothing may go
    assert clean_markdown(text) == text.rstrip("\n") + "\n"


def test_unclosed_comment_is_kept() -> None:
    text = "Text <!-- not closed\n\nMore text.\n"
    assert clean_markdown(text) == text
