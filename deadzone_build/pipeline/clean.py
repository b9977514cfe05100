"""Cleaning fetched documents into the markdown the chunker reads.

    clean_document(body, kind=, url=)      RST (docutils, see rst.py) or markdown → CleanedDocument
    document_markdown(body, kind=, url=)   the same, markdown only
    clean_markdown(text)                   strip what a reader of the rendered page never sees

Removed, outside code only: YAML (`---`) / TOML (`+++`) front matter (its `title` becomes the
`# H1` when the body has none, so the heading path keeps the page title), HTML comments, MDX
`import`/`export` blocks and `{/* */}` comments, JSX-only lines (`<Tabs>`, `</TabItem>`,
multi-line `<Tabs values={[...]}>`), tag-only HTML lines (`<p align="center">`, `<img ...>`),
badge images, and runs of blank lines (collapsed to one). A capitalised JSX tag that wraps text
on one line (`<Info>text</Info>`) is unwrapped, the text kept.

What is code is decided by markdown-it-py, never by a regex: fenced blocks of any length or
`~~~`, indented code blocks and `<pre>` blocks keep every byte. A fence that CommonMark would
swallow into an HTML block (`<TabItem value="go">` directly followed by ```` ``` ````, common in
MDX) is found by re-parsing that block without HTML, so it is kept verbatim too.
"""

from __future__ import annotations

import bisect
import re
import tomllib
from dataclasses import dataclass

import yaml

from deadzone_build.errors import ScrapeError
from deadzone_build.pipeline.markdown import code_line_ranges, line_of, line_starts, markdown_tokens, normalize_newlines

MARKDOWN_KIND = "github-md"
RST_KIND = "github-rst"
_RST_SUFFIXES = (".rst", ".rest")
_MARKDOWN_SUFFIXES = (".md", ".mdx", ".markdown")

# --------------------------------------------------------------------------- entry points


@dataclass(frozen=True)
class CleanedDocument:
    markdown: str
    warning: str | None = None  # something the URL's report should say (e.g. RST kept as raw text)


def clean_document(body: str, *, kind: str, url: str) -> CleanedDocument:
    """Cleaned markdown for a fetched document of registry `kind` at `url`, and any warning.

    The URL's suffix wins when it is unambiguous (`.rst` is RST even under `github-md`, as in
    Sphinx-MyST trees; `.md`/`.mdx` is markdown even under `github-rst`); otherwise `kind`
    decides (Django's `.txt` docs are RST under `github-rst`).
    """
    body = normalize_newlines(body)  # the one place: RST and markdown alike, before any parser
    if _is_rst(kind, url):
        from deadzone_build.pipeline.rst import convert_rst  # docutils is imported only when a slot has RST

        converted = convert_rst(body, source=url)
        return CleanedDocument(clean_markdown(converted.markdown), converted.warning)
    if kind not in (MARKDOWN_KIND, RST_KIND):
        raise ScrapeError(
            f"{url}: documents of kind {kind!r} cannot be cleaned here (only {MARKDOWN_KIND} and "
            f"{RST_KIND}). Fetch them with the tool for that kind, or fix the entry's `kind:`."
        )
    return CleanedDocument(clean_markdown(body))


def document_markdown(body: str, *, kind: str, url: str) -> str:
    """`clean_document(body, kind=kind, url=url).markdown`."""
    return clean_document(body, kind=kind, url=url).markdown


def _is_rst(kind: str, url: str) -> bool:
    path = url.split("?", 1)[0].split("#", 1)[0].lower()
    if path.endswith(_RST_SUFFIXES):
        return True
    if path.endswith(_MARKDOWN_SUFFIXES):
        return False
    return kind == RST_KIND


def clean_markdown(text: str) -> str:
    """`text` without front matter, comments, MDX/JSX scaffolding and badges; code untouched.

    `text` has `\\n` newlines (`document_markdown`, the pipeline's entry, normalises them). The
    result has no leading or trailing blank lines and ends with one newline, or is "" when nothing
    is left.
    """
    title, text = split_front_matter(text)
    lines = text.split("\n")
    tokens = markdown_tokens(text)
    for start, end in _hidden_line_ranges(tokens):
        lines[start:end] = [""] * (end - start)
    out: list[str] = []
    is_code: list[bool] = []
    cursor = 0
    for start, end in code_line_ranges(text, tokens):
        _append(out, is_code, _clean_prose(lines[cursor:start]), False)
        _append(out, is_code, lines[start:end], True)
        cursor = end
    _append(out, is_code, _clean_prose(lines[cursor:]), False)
    body = _collapse_blank_lines(out, is_code)
    if title and not _has_h1(tokens):
        body = f"# {title}\n\n{body}" if body else f"# {title}\n"
    return body


def _hidden_line_ranges(tokens: list) -> list[tuple[int, int]]:
    """`<script>` and `<style>` blocks (VitePress `<script setup>` imports): never shown."""
    return [tuple(t.map) for t in tokens if t.type == "html_block" and t.map
            and t.content.lstrip()[:7].lower() in ("<script", "<style>", "<style ")]


def _append(out: list[str], is_code: list[bool], lines: list[str], code: bool) -> None:
    out.extend(lines)
    is_code.extend([code] * len(lines))


def _has_h1(tokens: list) -> bool:
    return any(t.type == "heading_open" and t.tag == "h1" and t.level == 0 for t in tokens)


def _collapse_blank_lines(lines: list[str], is_code: list[bool]) -> str:
    kept: list[str] = []
    previous_blank = True  # drops leading blank lines
    for line, code in zip(lines, is_code):
        if not code and not line.strip():
            if not previous_blank:
                kept.append("")
            previous_blank = True
            continue
        kept.append(line)
        previous_blank = False
    while kept and kept[-1] == "":
        kept.pop()
    return "\n".join(kept) + "\n" if kept else ""


# --------------------------------------------------------------------------- front matter

_YAML_FRONT = re.compile(r"---[ \t]*\n(.*?\n)?(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
_TOML_FRONT = re.compile(r"\+\+\+[ \t]*\n(.*?\n)?\+\+\+[ \t]*(?:\n|\Z)", re.S)


def split_front_matter(text: str) -> tuple[str, str]:
    """(title or "", text without its leading YAML/TOML front matter)."""
    for pattern, parse in ((_YAML_FRONT, _yaml_title), (_TOML_FRONT, _toml_title)):
        match = pattern.match(text)
        if match:
            return parse(match.group(1) or ""), text[match.end():]
    return "", text


def _yaml_title(block: str) -> str:
    try:
        data = yaml.load(block, Loader=yaml.BaseLoader)  # every scalar a string, no tags run
    except yaml.YAMLError:
        return ""
    return _title_of(data)


def _toml_title(block: str) -> str:
    try:
        return _title_of(tomllib.loads(block))
    except tomllib.TOMLDecodeError:
        return ""


def _title_of(data: object) -> str:
    title = data.get("title") if isinstance(data, dict) else None
    return " ".join(title.split()) if isinstance(title, str) else ""


# --------------------------------------------------------------------------- prose cleaning


def _clean_prose(lines: list[str]) -> list[str]:
    """Clean a run of non-code lines; returns the kept lines (blank ones still there)."""
    if not lines:
        return lines
    text = "\n".join(lines)
    if "<!--" in text:
        text = _remove_comments(text, _code_spans(text))
    lines = [_remove_badges(line) if "![" in line else line for line in text.split("\n")]
    lines = _drop_esm_blocks(lines)
    return _drop_jsx(lines)


_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(?:(?!\n[ \t]*\n)[^`]|`(?!\1))+?(?<!`)\1(?!`)")


def _code_spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _CODE_SPAN.finditer(text)] if "`" in text else []


def _inside(pos: int, spans: list[tuple[int, int]]) -> bool:
    """Whether `pos` falls in one of the sorted, disjoint `spans`."""
    n = bisect.bisect_right(spans, (pos, float("inf"))) - 1
    return n >= 0 and spans[n][0] <= pos < spans[n][1]


def _remove_comments(text: str, spans: list[tuple[int, int]]) -> str:
    """`<!-- ... -->` removed unless it starts inside a code span (a linear scan: an unclosed
    `<!--` ends the search instead of being retried at every later `<!--`)."""
    out, position = [], 0
    while True:
        start = text.find("<!--", position)
        end = text.find("-->", start + 4) if start >= 0 else -1
        if end < 0:
            break
        if _inside(start, spans):
            out.append(text[position:start + 4])
            position = start + 4
            continue
        out.append(text[position:start])
        position = end + 3
    out.append(text[position:])
    return "".join(out)


# --------------------------------------------------------------------------- badges

# Bounded repeats: an unclosed `![a](` must not make the search quadratic.
_IMAGE = (r"!\[[^\]\n]{0,500}\]\(\s*<?(?P<src>[^)\s>]{1,2000})>?"
          r"(?:\s+(?:\"[^\"\n]{0,500}\"|'[^'\n]{0,500}'))?\s*\)")
_LINKED_IMAGE = re.compile(r"\[\s*" + _IMAGE + r"\s*\]\(\s*[^)\s]{0,2000}(?:\s+\"[^\"\n]{0,500}\")?\s*\)")
_LONE_IMAGE = re.compile(_IMAGE)
_BADGE_HINT = re.compile(r"badge|shields\.io|badgen|travis-ci|circleci|codecov|coveralls|appveyor|"
                         r"codeclimate|codacy|snyk\.io|pepy\.tech|netlify", re.I)
BADGE_HOSTS = (
    "shields.io", "badgen.net", "badge.fury.io", "travis-ci.org", "travis-ci.com", "circleci.com",
    "codecov.io", "coveralls.io", "ci.appveyor.com", "api.codeclimate.com", "app.codacy.com",
    "api.codacy.com", "snyk.io", "pepy.tech", "api.netlify.com",
)


def is_badge_url(url: str) -> bool:
    """A status/version badge: a badge host, or `badge` in the image URL."""
    lower = url.lower()
    host = re.sub(r"^[a-z][a-z0-9+.-]*://", "", lower).split("/", 1)[0]
    return "badge" in lower or any(host == h or host.endswith("." + h) for h in BADGE_HOSTS)


def _remove_badges(line: str) -> str:
    """A line without its badge images (badges live on one line; code spans are left alone)."""
    if not _BADGE_HINT.search(line):
        return line
    spans = _code_spans(line)

    def drop(match: re.Match) -> str:
        keep = _inside(match.start(), spans) or not is_badge_url(match.group("src"))
        return match.group(0) if keep else ""

    line = _LINKED_IMAGE.sub(drop, line)
    return _LONE_IMAGE.sub(drop, line) if "![" in line else line


# --------------------------------------------------------------------------- MDX: ESM blocks

_ESM_START = re.compile(
    r"(?:import\s*(?:['\"]|[\w$*{])|export\s+(?:const|let|var|function|class|default|async|\{|\*))"
)
_IMPORT_FROM = re.compile(r"\bfrom\s*['\"][^'\"\n]+['\"]|^import\s*['\"]")
_CODE_PUNCT = re.compile(r"[=({;]")


def _drop_esm_blocks(lines: list[str]) -> list[str]:
    """Drop MDX `import`/`export` blocks: at column 0, after a blank line, up to the next blank line."""
    kept: list[str] = []
    i = 0
    while i < len(lines):
        at_block_start = i == 0 or not lines[i - 1].strip()
        if at_block_start and _ESM_START.match(lines[i]):
            end = i
            while end < len(lines) and lines[end].strip():
                end += 1
            if _is_esm(lines[i:end]):
                i = end
                continue
        kept.append(lines[i])
        i += 1
    return kept


def _is_esm(block: list[str]) -> bool:
    """An ESM statement, not prose that happens to start with "import" or "export"."""
    joined = "\n".join(block)
    if block[0].startswith("import"):
        return bool(_IMPORT_FROM.search(joined))
    return bool(_CODE_PUNCT.search(block[0]))


# --------------------------------------------------------------------------- JSX / HTML tag lines

_TAG_NAME = re.compile(r"[A-Za-z][\w.-]*")
_ATTR_NAME = re.compile(r"[^\s\"'<>/={}]+")
_UNQUOTED = re.compile(r"[^\s\"'=<>`]+")
_MAX_TAG_CHARS = 4000  # a tag longer than this is not scaffolding; bounds the scan
# Lowercase tags dropped from tag-only lines. Others (`<url>`, `<integrity-hash>` used as terms
# in man-page style docs) are words a reader needs, and stay.
HTML_ELEMENTS = frozenset("""
a abbr address article aside audio b bdi bdo big blockquote br button caption center cite code col
colgroup dd del details dfn dialog div dl dt em embed fieldset figcaption figure font footer form
h1 h2 h3 h4 h5 h6 header hr i iframe img input ins kbd label legend li main mark nav noscript object
ol p picture pre q s samp section small source span strike strong sub summary sup svg table tbody
td tfoot th thead time tr tt u ul var video wbr path g
""".split())
_TRAILING_JSX_CLOSE = re.compile(r"(?:\s*(?:</[A-Z][\w.-]*\s*>|<[A-Z][\w.-]*\s*/>))+\s*$")
_MDX_COMMENT = re.compile(r"\{/\*.*?\*/\}", re.S)
_JSX_PAIR = re.compile(r"<([A-Z][\w.-]*)(?:\s[^<>]*)?>(.*?)</\1\s*>")
_JSX_SELF_CLOSING = re.compile(r"<[A-Z][\w.-]*(?:\s[^<>]*)?/>")


def _drop_jsx(lines: list[str]) -> list[str]:
    """Drop lines that hold only tags (JSX or HTML), unwrap text held by capitalised JSX tags."""
    text = "\n".join(lines)
    starts = line_starts(text)
    kept: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        if not stripped.startswith(("<", "{/*")):
            kept.append(_strip_trailing_jsx(line))
            i += 1
            continue
        pos = starts[i] + len(line) - len(stripped)
        end, jsx, known = _scan_tags(text, pos)
        if end == pos or not known:
            kept.append(_strip_trailing_jsx(line))
            i += 1
            continue
        last = line_of(starts, end - 1 if end > pos else pos)
        rest = text[end:starts[last] + len(lines[last])]
        if rest.strip() and jsx:
            indent = line[: len(line) - len(stripped)]
            if last == i:  # unwrap pairs first: `<Highlight>Widgets</Highlight> render`
                line = _strip_trailing_jsx(line)
                end, _, _ = _scan_tags(line, len(indent))
                rest = line[end:]
            if rest.strip():
                kept.append(_strip_trailing_jsx(indent + rest.lstrip()))
        elif rest.strip():
            kept.extend(lines[i:last + 1])  # lowercase HTML around text: leave it as written
        i = last + 1
    return kept


def _strip_trailing_jsx(line: str) -> str:
    """Unwrap inline JSX (`<Highlight>x</Highlight>`, `<Icon />`) and drop a closing tag that
    ends the line. A lone `<String>` stays: in plain markdown it is a generic (`Vec<String>`)."""
    if "</" not in line and "/>" not in line:
        return line
    out, last = [], 0
    for start, end in _code_spans(line):  # never inside a code span
        out += [_unwrap_jsx(line[last:start]), line[start:end]]
        last = end
    out.append(_unwrap_jsx(line[last:]))
    return "".join(out)


def _unwrap_jsx(text: str) -> str:
    previous = None
    while previous != text:
        previous = text
        text = _JSX_PAIR.sub(r"\2", text)
    text = _JSX_SELF_CLOSING.sub("", text)
    match = _TRAILING_JSX_CLOSE.search(text)
    return text[: match.start()] if match and text[: match.start()].strip() else text


def _scan_tags(text: str, pos: int) -> tuple[int, bool, bool]:
    """(end, any JSX, all known) for the run of tags/MDX comments starting at `pos`.

    A tag may span lines (JSX attributes); between tags only spaces and tabs are allowed.
    "Known" means JSX, an MDX comment or an HTML element. Returns (pos, False, True) when no
    tag starts at `pos`.
    """
    end, jsx, known = pos, False, True
    while True:
        if text.startswith("{/*", end):
            match = _MDX_COMMENT.match(text, end)
            tag_end, name = (match.end(), "") if match else (-1, "")
        else:
            tag_end, name = _scan_tag(text, end)
        if tag_end < 0:
            return end, jsx, known
        is_jsx = not name or name[0].isupper() or "." in name
        jsx = jsx or is_jsx
        known = known and (is_jsx or name.lower() in HTML_ELEMENTS)
        end = tag_end
        while end < len(text) and text[end] in " \t":
            end += 1


def _scan_tag(text: str, i: int) -> tuple[int, str]:
    """(end, name) of the HTML/JSX tag at `i` ("" for a fragment `<>`), or (-1, "")."""
    if not text.startswith("<", i):
        return -1, ""
    limit = min(len(text), i + _MAX_TAG_CHARS)
    j = i + 1
    closing = text.startswith("/", j)
    j += closing
    if text.startswith(">", j):  # a fragment: <> or </>
        return j + 1, ""
    match = _TAG_NAME.match(text, j)
    if not match:
        return -1, ""
    name, j = match.group(0), match.end()
    while j < limit:
        ws = j
        while j < limit and text[j].isspace():
            j += 1
        if text.startswith("/>", j) and not closing:
            return j + 2, name
        if text.startswith(">", j):
            return j + 1, name
        if j == ws or closing or j >= limit:
            return -1, ""
        j = _scan_attribute(text, j, limit)
        if j < 0:
            return -1, ""
    return -1, ""


def _scan_attribute(text: str, j: int, limit: int) -> int:
    if text[j] == "{":
        return _match_braces(text, j, limit)
    name = _ATTR_NAME.match(text, j)
    if not name:
        return -1
    j = name.end()
    k = j
    while k < limit and text[k] in " \t":
        k += 1
    if not text.startswith("=", k):
        return j
    k += 1
    while k < limit and text[k] in " \t\n":
        k += 1
    if k >= limit:
        return -1
    if text[k] in "\"'":
        close = text.find(text[k], k + 1, limit)
        return close + 1 if close > 0 else -1
    if text[k] == "{":
        return _match_braces(text, k, limit)
    value = _UNQUOTED.match(text, k)
    return value.end() if value else -1


def _match_braces(text: str, j: int, limit: int) -> int:
    """End of the balanced `{...}` JSX expression at `j` (strings skipped), or -1."""
    depth = 0
    while j < limit:
        ch = text[j]
        if ch in "\"'`":
            close = text.find(ch, j + 1, limit)
            if close < 0:
                return -1
            j = close
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    return -1
