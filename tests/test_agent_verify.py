"""The code-block rule, the section split and the answer cache of scrape-via-agent."""

from __future__ import annotations

import json

import pytest
from markdown_it import MarkdownIt

from deadzone_build.sources.agent.answers import AnswerCache, answer_digest
from deadzone_build.sources.agent.endpoint import request_body
from deadzone_build.sources.agent.extract import extract_markdown
from deadzone_build.sources.agent.sections import split_pieces
from deadzone_build.sources.agent.verify import check_answer, code_blocks, normalise, tidy_answer
from fx_htmlsite import HTML_DIR

SOURCE = ["def f(x):\n    return x < 1", "$ pip install click"]
PAGE = "# T\n\nIntro.\n\n```python\ndef f(x):\n    return x < 1\n```\n\nRun:\n\n```\n$ pip install click\n```\n"


# ── verify ───────────────────────────────────────────────────────────────────


def test_rule_normalises_entities_and_whitespace_inside_lines_only() -> None:
    assert normalise("\n  a\t\t b  \n\nx &lt; y\n\n") == ("a b", "", "x < y")
    assert normalise("a\nb") != normalise("ab")  # line breaks are significant


def test_a_faithful_answer_passes_unchanged() -> None:
    assert check_answer(PAGE, SOURCE) == (None, PAGE)


def test_whitespace_changes_pass_and_the_page_bytes_come_back() -> None:
    answer = PAGE.replace("    return", "        return").replace("x < 1", "x &lt; 1").replace("$ pip", "$  pip")
    problem, fixed = check_answer(answer, SOURCE)
    assert problem is None and fixed == PAGE


def test_fences_in_lists_are_restored_at_their_indentation() -> None:
    answer = "- step\n\n  ```\n  $  pip install click\n  ```\n\n```python\ndef f(x):\n  return x < 1\n```\n"
    problem, fixed = check_answer(answer, SOURCE)
    assert problem is None
    assert [b.content for b in code_blocks(fixed)] == ["$ pip install click", SOURCE[0]]
    assert "  ```\n  $ pip install click\n  ```" in fixed


def test_an_invented_code_block_fails() -> None:
    answer = PAGE + "\n```python\nimport os\n```\n"
    problem, _ = check_answer(answer, SOURCE)
    assert problem is not None and "not in the page" in problem and "import os" in problem


def test_a_lost_or_rewritten_code_block_fails() -> None:
    lost = PAGE.replace("```\n$ pip install click\n```\n", "")
    assert "lost or changed" in (check_answer(lost, SOURCE)[0] or "")
    rewritten = PAGE.replace("return x < 1", "return x <= 1")
    assert check_answer(rewritten, SOURCE)[0] is not None


def test_quoting_part_of_a_block_is_allowed_when_the_block_is_also_there() -> None:
    answer = PAGE + "\nThe key line:\n\n```\nreturn x < 1\n```\n"
    assert check_answer(answer, SOURCE)[0] is None


def test_tidy_answer_unwraps_only_a_markdown_fence_around_everything() -> None:
    assert tidy_answer("<think>hmm</think>\n\n# T\n") == "# T\n"
    assert tidy_answer("```markdown\n# T\n\n```py\nx\n```\n```\n") == "# T\n\n```py\nx\n```\n"
    assert tidy_answer("```\nonly code\n```\n") == "```\nonly code\n```\n"  # a real code block stays
    assert tidy_answer(PAGE) == PAGE


# ── sections ─────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("cap", [200, 2_000, 48 * 1024])
def test_split_loses_nothing_and_respects_the_cap_except_single_blocks(cap: int) -> None:
    markdown = extract_markdown((HTML_DIR / "jinja2" / "templates.html").read_text("utf-8"), "").markdown
    pieces = split_pieces(markdown, cap)
    assert "".join(pieces) == markdown
    assert len(pieces) >= 2
    for piece in pieces:
        if len(piece.encode()) > cap:  # only a single block may exceed the cap
            top_level = [t for t in MarkdownIt("commonmark").parse(piece) if t.level == 0 and t.nesting >= 0 and t.map]
            assert len(top_level) == 1, piece[:200]
    # no fence is cut: every code block of the page is whole inside one piece
    assert sum(len(code_blocks(p)) for p in pieces) == len(code_blocks(markdown))


def test_split_starts_pieces_at_headings_when_sections_fit() -> None:
    markdown = "# A\n\none\n\n## B\n\ntwo\n\n## C\n\nthree\n"
    assert split_pieces(markdown, 14) == ["# A\n\none\n\n", "## B\n\ntwo\n\n", "## C\n\nthree\n"]
    assert split_pieces(markdown, 10_000) == [markdown]
    assert split_pieces("", 10) == []
    with pytest.raises(ValueError):
        split_pieces(markdown, 0)


# ── answer cache ─────────────────────────────────────────────────────────────


def test_digest_covers_model_prompt_version_and_body() -> None:
    body = request_body("m", "section")
    base = answer_digest("m", "1", body)
    assert base == answer_digest("m", "1", json.loads(json.dumps(body)))
    assert len({base, answer_digest("m2", "1", body), answer_digest("m", "2", body),
                answer_digest("m", "1", request_body("m", "other"))}) == 4


def test_cache_round_trip_is_atomic_and_damage_is_a_miss(tmp_path) -> None:
    cache = AnswerCache(tmp_path)
    digest = answer_digest("m", "1", request_body("m", "x"))
    assert cache.get(digest) is None
    cache.put(digest, "# Answer ’\n", model="m")
    assert cache.get(digest) == "# Answer ’\n"
    path = cache.path_for(digest)
    assert path.parent.parent == tmp_path / "agent-answers"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind
    path.write_text('{"format": 1, "digest": "' + digest + '", "content": ', encoding="utf-8")  # torn
    assert cache.get(digest) is None
    cache.put(digest, "# Answer\n", model="m")  # a torn entry is simply written again
    assert cache.get(digest) == "# Answer\n"
    other = answer_digest("m", "1", request_body("m", "y"))
    moved = cache.path_for(other)
    moved.parent.mkdir(parents=True, exist_ok=True)
    moved.write_bytes(path.read_bytes())  # an entry under the wrong name is not trusted
    assert cache.get(other) is None
