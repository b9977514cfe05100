"""HTML page → markdown of its main content, deterministically (no network, no model).

    extract_markdown(html, url) -> Extraction(markdown, code_blocks)

Route: selectolax (lexbor) finds the main content and removes the page chrome, then
html-to-markdown (Rust) converts it; every `<pre>` is cut out before the conversion and put back
afterwards as a fenced block holding its text exactly (HTML entities decoded, highlighting spans
removed, trailing newlines dropped), so no converter rule can touch code. Why these libraries
(measured with `bench/html_extract.py` on the Sphinx and MkDocs pages in tests/fixtures/html/:
289 `<pre>`, 115 headings, 80 navigation strings): this route keeps 289/289 blocks and 115/115
headings and leaks no navigation text. trafilatura kept 123 blocks and 12 headings (it drops the blank
lines inside code and leaves `¶` in headings) at ~8× the time; html-to-markdown on the whole page kept 271
(not the code inside MkDocs' layout tables), no heading intact and 12 navigation strings ("© Copyright",
"Created using Sphinx"); markdownify after the same selection kept 221 blocks at ~10× the time.

Main content, first match wins (MAIN_SELECTORS): Sphinx (`[itemprop=articleBody]` of the
Read-the-Docs theme, `div.body[role=main]` of the basic themes), MkDocs (`article.md-content__inner`
of Material, `div[role=main]` of the built-in themes), Docusaurus (`article .markdown`), then
`main`, `article`, `[role=main]`, and the whole `<body>` as a last resort. Inside it, DROP_SELECTORS
(navigation, permalinks, search, edit buttons, scripts, styles, forms) are removed. A table that
holds code or lists is a layout table: its cells become consecutive blocks (a markdown table
cannot hold a code block). A Sphinx API signature (`dt.sig`) becomes one code span of its text.
Links to other pages of the site or to anchors keep their text only
(a relative URL is useless in an offline index); absolute http(s) links stay.
"""

from __future__ import annotations

from html import escape as escape_html
import re
from dataclasses import dataclass
from importlib import metadata

from deadzone_build.errors import ScrapeError
from deadzone_build.sources.agent.route import EXTRACTOR_PINS

MAIN_SELECTORS = (
    "[itemprop=articleBody]",
    "article.md-content__inner",
    "div.body[role=main]",
    "article .markdown",
    "main [role=main]",
    "div[role=main]",
    "main",
    "article",
    "[role=main]",
)
DROP_SELECTORS = (
    "script", "style", "noscript", "template", "link", "meta", "iframe", "form", "button", "svg",
    "nav", "footer", "[role=navigation]", "[role=search]", "[role=contentinfo]",
    "a.headerlink", "a.hash-link", ".viewcode-link", ".sphinxsidebar", ".related", ".wy-breadcrumbs",
    ".rst-footer-buttons", ".md-source-file", ".md-content__button", ".md-sidebar", ".md-footer",
    ".theme-doc-toc-mobile", ".theme-doc-breadcrumbs", ".pagination-nav", ".theme-edit-this-page",
    ".linenos", ".linenodiv",
)
_LANGUAGE_CLASS = re.compile(r"^(?:highlight|language|lang)-([A-Za-z0-9_+#.-]+)$")
_NOT_A_LANGUAGE = frozenset({"default", "none", "text", "notranslate"})
_BLANK_RUN = re.compile(r"\n{3,}")
_ABSOLUTE = ("http://", "https://")
# html-to-markdown's own input limit: above the fetcher's 5 MiB document cap, so only a page that
# got past it through another path (a raised max_bytes) meets it, as an ExtractError.
MAX_CONVERT_BYTES = 64 * 1024 * 1024


class ExtractError(ScrapeError):
    """html-to-markdown refused a page (the source reports that page as dropped, with this reason)."""


@dataclass(frozen=True)
class Extraction:
    """`code_blocks` are the page's `<pre>` texts in document order, exactly as they appear
    (fenced) in `markdown`: what the endpoint's answer is checked against."""

    markdown: str
    code_blocks: tuple[str, ...]


def check_versions() -> None:
    """Refuse to extract with other library versions than the key names (the bytes would differ)."""
    for name, pinned in EXTRACTOR_PINS.items():
        try:
            found = metadata.version(name)
        except metadata.PackageNotFoundError:
            found = "not installed"
        if found != pinned:
            raise ScrapeError(f"scrape-via-agent needs {name}=={pinned} (the slot key names it) but finds "
                              f"{found}; install the optional HTML extractor: pip install 'deadzone-build[html]' "
                              "(the versions pinned in pyproject.toml).")


def extract_markdown(html: str, url: str) -> Extraction:
    """The main content of `html` as markdown; every `<pre>` kept verbatim as a fenced block."""
    from html_to_markdown import ConversionError, ConversionOptions, convert
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(html)
    main = _main_node(tree)
    if main is None:
        return Extraction("", ())
    for selector in DROP_SELECTORS:
        for node in main.css(selector):
            node.decompose()
    for signature in main.css("dt.sig"):  # Sphinx API signatures: one code span, not a run of emphasis
        signature.inner_html = f"<code>{escape_html(' '.join(signature.text(deep=True).split()))}</code>"
    for link in main.css("a"):
        if not (link.attributes.get("href") or "").startswith(_ABSOLUTE):
            link.unwrap()
    salt = _salt(html)
    codes: list[str] = []
    fenced: list[str] = []
    for pre in main.css("pre"):
        code = pre.text(deep=True).rstrip("\n")
        fenced.append("\n\n" + _fence(code, _language(pre)) + "\n\n")
        pre.replace_with(f"DZCODEBLOCK{salt}N{len(codes)}E")
        codes.append(code)
    _unwrap_layout_tables(main, LexborHTMLParser, f"DZCODEBLOCK{salt}N")
    options = ConversionOptions(heading_style="atx", code_block_style="backticks", extract_metadata=False,
                                skip_images=True, wrap=False, escape_asterisks=False,
                                escape_underscores=False, escape_misc=False, autolinks=False,
                                max_input_size=MAX_CONVERT_BYTES)
    try:
        markdown = convert(main.html or "", options).content
    except ConversionError as exc:
        raise ExtractError(f"html-to-markdown could not convert the page ({type(exc).__name__}: {exc}); "
                           "link a smaller or well-formed page, or remove the URL.") from None
    placed: set[int] = set()

    def put_back(match: re.Match[str]) -> str:
        index = int(match.group(1))
        placed.add(index)
        return fenced[index]

    markdown = re.sub(rf"[ \t>]*DZCODEBLOCK{salt}N([0-9]+)E[ \t]*", put_back, markdown)
    # the converter dropped a container (e.g. a hidden element): keep its code anyway, at the end
    markdown += "".join(block for index, block in enumerate(fenced) if index not in placed)
    return Extraction(_tidy(markdown), tuple(codes))


def _main_node(tree):  # -> selectolax Node | None
    for selector in MAIN_SELECTORS:
        node = tree.css_first(selector)
        if node is not None:
            return node
    return tree.body


def _salt(html: str) -> str:
    """A placeholder prefix the page itself does not contain (so no real text is ever replaced)."""
    salt = 0
    while f"DZCODEBLOCK{salt}N" in html:
        salt += 1
    return str(salt)


def _language(pre) -> str:
    """The info string: Sphinx puts `highlight-python` on the wrapper, MkDocs `language-py` on code."""
    nodes = [pre.child] if pre.child is not None and pre.child.tag == "code" else []
    nodes += [pre, pre.parent, pre.parent.parent if pre.parent is not None else None]
    for node in nodes:
        if node is None:
            continue
        for cls in (node.attributes.get("class") or "").split():
            match = _LANGUAGE_CLASS.match(cls)
            if match and match.group(1).lower() not in _NOT_A_LANGUAGE:
                return match.group(1).lower()
    return ""


def _fence(code: str, language: str) -> str:
    """A backtick fence longer than any backtick run inside the code."""
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{language}\n{code}\n{ticks}"


def _unwrap_layout_tables(main, parser_cls, placeholder: str) -> None:
    """A table whose cells hold code (placeholders), lists or tables → one block per cell."""
    for table in reversed(main.css("table")):  # innermost first
        inner = table.css("ul, ol, table")
        layout = any(node.mem_id != table.mem_id for node in inner) or placeholder in (table.text() or "")
        if layout:
            cells = "".join(f"<div>{cell.inner_html}</div>" for cell in table.css("th, td"))
            table.replace_with(parser_cls(f"<div>{cells}</div>").css_first("div"))


def _tidy(markdown: str) -> str:
    """At most one blank line between blocks (outside code), no trailing spaces at the end."""
    out: list[str] = []
    fence: str | None = None
    blank = 0
    for line in markdown.split("\n"):
        stripped = line.strip()
        if fence is None:
            match = re.match(r"^(`{3,}|~{3,})", stripped)
            if match and line.startswith(match.group(1)):
                fence = match.group(1)
            elif not stripped:
                blank += 1
                if blank > 1 or not out:
                    continue
                out.append("")
                continue
            blank = 0
            out.append(line.rstrip() if fence is None else line)
        else:
            out.append(line)
            if stripped == fence[0] * len(stripped) and len(stripped) >= len(fence) and line.startswith(stripped):
                fence = None
            blank = 0
    return "\n".join(out).strip("\n") + "\n" if out else ""
