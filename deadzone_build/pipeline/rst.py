"""reStructuredText → markdown through docutils, with Sphinx's common markup understood.

    convert_rst(text, source)       -> RstConversion(markdown, warning)   never raises, never prints
    rst_to_markdown(text, source)   -> markdown only

docutils parses; a small writer here turns the doctree into the markdown the chunker reads:
section titles become `#` headings by depth, literal blocks and `code-block`/`sourcecode`/`code`
become fences, roles become inline code (`:func:` `x` → `x()`, `:class:` `~a.B` → `B`) or text
(`:ref:` `text <target>` → text), admonitions and `versionadded`-style notes become labelled
paragraphs, Python object descriptions (`.. function:: sig`) become headings one level below
their section (so each API entry gets its own heading path), `toctree`/`index`/`highlight`-like
directives are dropped.

Sphinx is not a dependency: its directives and roles, and a generic stand-in for any name
docutils has never heard of, are registered by rst_directives.py, so an unknown directive never
loses its body and never produces an error. docutils reports nothing (report level 5, a private
warning stream), reads no config file, includes no file and passes no raw HTML through. If
docutils or the writer still fail on some input, the document comes back as its own text, which
is readable markdown-ish prose, rather than a crash, and `RstConversion.warning` says so (the
URL's report in meta.json carries it).
"""

from __future__ import annotations

import copy
import io
import re
from dataclasses import dataclass

from docutils import frontend, nodes
from docutils.core import publish_doctree
from docutils.parsers.rst import Parser
from docutils.readers.standalone import Reader

from deadzone_build.pipeline.rst_directives import register_unknown_names

# --------------------------------------------------------------------------- settings

_SETTINGS_OVERRIDES = {
    "report_level": 5,  # nothing is reported ...
    "halt_level": 5,  # ... and nothing stops the parse
    "exit_status_level": 5,
    "traceback": True,
    "_disable_config": True,  # no docutils.conf from cwd or home: same input, same output
    "file_insertion_enabled": False,  # `.. include::` never reads a local file
    "raw_enabled": False,
    "line_length_limit": 10_000_000,  # docutils stops parsing at the first longer line
    "syntax_highlight": "none",
    "smart_quotes": False,
    "doctitle_xform": False,  # every title stays a section: depth → heading level
    "docinfo_xform": False,
    "sectsubtitle_xform": False,
    "pep_references": False,
    "rfc_references": False,
    "language_code": "en",
    "tab_width": 8,
}
_BASE_SETTINGS = None


def _settings(warnings: io.StringIO) -> object:
    global _BASE_SETTINGS
    if _BASE_SETTINGS is None:  # building docutils' option parser costs ~10 ms: once
        base = frontend.get_default_settings(Parser, Reader)
        for key, value in _SETTINGS_OVERRIDES.items():
            setattr(base, key, value)
        _BASE_SETTINGS = base
    settings = copy.copy(_BASE_SETTINGS)
    settings.warning_stream = warnings
    return settings


# --------------------------------------------------------------------------- entry point


@dataclass(frozen=True)
class RstConversion:
    markdown: str
    warning: str | None = None  # set when docutils or the writer failed and `markdown` is the raw text


def convert_rst(text: str, source: str = "<rst>") -> RstConversion:
    """Markdown for the reStructuredText `text` (named `source` in docutils' bookkeeping).

    `text` has `\\n` newlines (pipeline/markdown.py::normalize_newlines, applied by
    clean.document_markdown). A failure keeps the text as it is and says why in `warning`."""
    try:
        return RstConversion(convert(text, source))
    except Exception as exc:  # noqa: BLE001 - a document we cannot parse is kept as text, never a crash
        return RstConversion(text, f"docutils could not convert this RST ({type(exc).__name__}: "
                                   f"{str(exc)[:160]}); its raw text was indexed instead")


def rst_to_markdown(text: str, source: str = "<rst>") -> str:
    """`convert_rst(text, source).markdown`."""
    return convert_rst(text, source).markdown


def convert(text: str, source: str = "<rst>") -> str:
    """Like `convert_rst` but lets a docutils or writer failure through (for tests)."""
    register_unknown_names(text)
    doctree = publish_doctree(text, source_path=source, settings=_settings(io.StringIO()))
    return _Writer().document(doctree)


# --------------------------------------------------------------------------- writer

_BLOCK_START = re.compile(r"(#|>|\+{3}|[-+*](?:\s|$)|\d{1,9}[.)](?:\s|$)|```|~~~|<|=+\s*$|-{3,}\s*$|_{3,}\s*$|\*{3,}\s*$|\|)")
_ADMONITIONS = ("attention", "caution", "danger", "error", "hint", "important", "note", "tip",
                "warning")
_SKIPPED = (nodes.comment, nodes.substitution_definition, nodes.target, nodes.system_message,
            nodes.pending, nodes.raw, nodes.meta, nodes.decoration, nodes.colspec, nodes.image)


class _Writer:
    """Doctree → markdown. Block methods return a list of markdown blocks (joined by a blank line)."""

    def __init__(self) -> None:
        self.language = ""  # set by `highlight::`, used by `::` literal blocks

    def document(self, doctree: nodes.document) -> str:
        blocks = self.children(doctree, depth=1, top=True)
        return "\n\n".join(b for b in blocks if b.strip()) + "\n" if blocks else ""

    # ---- blocks

    def children(self, node: nodes.Element, depth: int, top: bool) -> list[str]:
        blocks: list[str] = []
        for child in node.children:
            blocks.extend(self.block(child, depth, top))
        return [b for b in blocks if b.strip()]

    def block(self, node: nodes.Node, depth: int, top: bool) -> list[str]:
        if isinstance(node, _SKIPPED):
            return []
        if isinstance(node, nodes.Text):
            return [_escape_block_start(_one_line(str(node)))]
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is not None:
            return method(node, depth, top)
        if isinstance(node, nodes.Admonition):
            return self._admonition(node, depth, top)
        if isinstance(node, nodes.TextElement):
            return self._paragraph(node, depth, top)
        return self.children(node, depth, top) if isinstance(node, nodes.Element) else []

    def _section(self, node: nodes.section, depth: int, top: bool) -> list[str]:
        title = next((c for c in node.children if isinstance(c, nodes.title)), None)
        blocks = [_heading(depth, self.inline(title)) if top else f"**{self.inline(title)}**"] if title else []
        body = [c for c in node.children if c is not title]
        for child in body:
            blocks.extend(self.block(child, depth + 1, top))
        return blocks

    def _title(self, node: nodes.title, depth: int, top: bool) -> list[str]:
        text = self.inline(node)
        return [f"**{text}**"] if text else []

    _rubric = _title
    _subtitle = _title

    def _paragraph(self, node: nodes.Element, depth: int, top: bool) -> list[str]:
        text = self.inline(node)
        return [_escape_block_start(_one_line(text))] if text.strip() else []

    def _literal_block(self, node: nodes.literal_block, depth: int, top: bool) -> list[str]:
        language = node.get("language") or next(
            (c for c in node.get("classes", []) if c not in ("code", "literal-block")), ""
        ) or self.language
        return [_fence(node.astext(), language)]

    def _doctest_block(self, node: nodes.Element, depth: int, top: bool) -> list[str]:
        return [_fence(node.astext(), "pycon")]

    def _math_block(self, node: nodes.Element, depth: int, top: bool) -> list[str]:
        return [_fence(node.astext(), "math")]

    def _line_block(self, node: nodes.Element, depth: int, top: bool) -> list[str]:
        lines = [self.inline(line) for line in node.findall(nodes.line)]
        text = "\n".join(_escape_block_start(line.strip()) for line in lines if line.strip())
        return [text] if text else []

    def _block_quote(self, node: nodes.Element, depth: int, top: bool) -> list[str]:
        inner = "\n\n".join(self.children(node, depth, top=False))
        if not inner.strip():
            return []
        return ["\n".join(f"> {line}" if line else ">" for line in inner.split("\n"))]

    def _attribution(self, node: nodes.Element, depth: int, top: bool) -> list[str]:
        return [f"— {self.inline(node)}"]

    def _bullet_list(self, node: nodes.Element, depth: int, top: bool) -> list[str]:
        return [self._list([(f"- ", item) for item in node.children], depth)]

    def _enumerated_list(self, node: nodes.Element, depth: int, top: bool) -> list[str]:
        start = node.get("start", 1)
        return [self._list([(f"{start + i}. ", item) for i, item in enumerate(node.children)], depth)]

    def _list(self, items: list[tuple[str, nodes.Node]], depth: int) -> str:
        rendered = [(marker, self.children(item, depth, top=False)) for marker, item in items]
        tight = all(len(blocks) <= 1 for _, blocks in rendered)
        out = [_list_item(marker, blocks) for marker, blocks in rendered]
        return ("\n" if tight else "\n\n").join(out)

    def _definition_list(self, node: nodes.Element, depth: int, top: bool) -> list[str]:
        items = []
        for item in node.children:
            if not isinstance(item, nodes.definition_list_item):
                continue
            term = " : ".join(self.inline(c) for c in item.children
                              if isinstance(c, (nodes.term, nodes.classifier)))
            body: list[str] = []
            for child in item.children:
                if isinstance(child, nodes.definition):
                    body.extend(self.children(child, depth, top=False))
            items.append(_list_item("- ", [_one_line(term)] + body))
        return ["\n\n".join(items)] if items else []

    def _field_list(self, node: nodes.Element, depth: int, top: bool) -> list[str]:
        items = []
        for field in node.children:
            if isinstance(field, nodes.field) and len(field.children) >= 2:
                name = _one_line(self.inline(field[0]))
                blocks = _labelled_blocks(name, self.children(field[1], depth, top=False))
                items.append(_list_item("- ", blocks))
        tight = all("\n" not in item for item in items)
        return [("\n" if tight else "\n\n").join(items)] if items else []

    def _option_list(self, node: nodes.Element, depth: int, top: bool) -> list[str]:
        items = []
        for item in node.children:
            group = next((c for c in item.children if isinstance(c, nodes.option_group)), None)
            description = next((c for c in item.children if isinstance(c, nodes.description)), None)
            options = _code_span(group.astext()) if group is not None else ""
            body = self.children(description, depth, top=False) if description is not None else []
            first = f"{options}: {body[0]}" if body else options
            items.append(_list_item("- ", [first] + body[1:]))
        return ["\n".join(items)] if items else []

    def _admonition(self, node: nodes.Element, depth: int, top: bool) -> list[str]:
        title = next((c for c in node.children if isinstance(c, nodes.title)), None)
        label = self.inline(title) if title is not None else type(node).__name__.capitalize()
        body = [c for c in node.children if c is not title]
        blocks: list[str] = []
        for child in body:
            blocks.extend(self.block(child, depth, top=False))
        return _labelled_blocks(label, blocks)

    def _topic(self, node: nodes.Element, depth: int, top: bool) -> list[str]:
        if "contents" in node.get("classes", []):
            return []  # a generated table of contents: nothing a search should return
        return self.children(node, depth, top=False)

    _sidebar = _topic

    def _transition(self, node: nodes.Element, depth: int, top: bool) -> list[str]:
        return ["* * *"]  # not `---`: at the top of a page that would read as front matter

    def _footnote(self, node: nodes.Element, depth: int, top: bool) -> list[str]:
        label = next((c.astext() for c in node.children if isinstance(c, nodes.label)), "")
        blocks = [b for c in node.children if not isinstance(c, nodes.label)
                  for b in self.block(c, depth, top=False)]
        if blocks and label:
            blocks[0] = f"[{label}] {blocks[0]}"
        return blocks

    _citation = _footnote

    def _figure(self, node: nodes.Element, depth: int, top: bool) -> list[str]:
        return [b for c in node.children if isinstance(c, (nodes.caption, nodes.legend))
                for b in self.block(c, depth, top)]

    def _table(self, node: nodes.Element, depth: int, top: bool) -> list[str]:
        blocks = [b for c in node.children if isinstance(c, nodes.title) for b in self._title(c, depth, top)]
        head: list[list[str]] = []
        body: list[list[str]] = []
        for group in (c for c in node.children if isinstance(c, nodes.tgroup)):
            for part in group.children:  # not findall: a table inside a cell is that cell's text
                if isinstance(part, nodes.thead):
                    head.extend(self._rows(part))
                elif isinstance(part, nodes.tbody):
                    body.extend(self._rows(part))
        rows = head[-1:] + body if head else body
        if rows:
            blocks.append(_pipe_table(rows))
        return blocks

    def _rows(self, part: nodes.Element) -> list[list[str]]:
        rows = []
        for row in part.children:
            if isinstance(row, nodes.row):
                cells = []
                for entry in row.children:
                    text = " ".join(_one_line(b) for b in self.children(entry, 1, top=False))
                    cells.append(text.replace("|", "\\|"))
                    cells.extend([""] * entry.get("morecols", 0))
                rows.append(cells)
        return rows

    def _container(self, node: nodes.Element, depth: int, top: bool) -> list[str]:
        kind = node.get("dz_kind")
        if kind == "highlight":
            self.language = node.get("dz_language", "")
            return []
        if kind == "labelled":
            blocks = self.children(node, depth, top=False)
            return _labelled_blocks(node.get("dz_label", ""), blocks)
        if kind == "description":
            return self._description(node, depth, top)
        return self.children(node, depth, top)

    def _description(self, node: nodes.Element, depth: int, top: bool) -> list[str]:
        signatures = node.get("dz_signatures", [])
        objtype = node.get("dz_objtype", "")
        shown = [f"{objtype} {s}" if objtype in ("class", "exception") else s for s in signatures]
        blocks: list[str] = []
        if shown:
            title = _code_span(shown[0])
            blocks.append(_heading(depth, title) if top and depth <= 6 else f"**{title}**")
            if len(shown) > 1:
                blocks.append("\n".join(_code_span(s) for s in shown[1:]))
        blocks.extend(self.children(node, depth + 1, top))
        return blocks

    # ---- inline

    def inline(self, node: nodes.Node | None) -> str:
        if node is None:
            return ""
        if isinstance(node, nodes.Text):
            return str(node).replace("`", "\\`")
        if isinstance(node, (nodes.system_message, nodes.comment, nodes.substitution_definition,
                             nodes.pending, nodes.raw)):
            return ""
        method = getattr(self, f"_i_{type(node).__name__}", None)
        if method is not None:
            return method(node)
        return "".join(self.inline(c) for c in node.children) if isinstance(node, nodes.Element) else ""

    def _inner(self, node: nodes.Element) -> str:
        return "".join(self.inline(c) for c in node.children)

    def _i_emphasis(self, node: nodes.Element) -> str:
        return _wrap("*", self._inner(node))

    def _i_strong(self, node: nodes.Element) -> str:
        return _wrap("**", self._inner(node))

    def _i_literal(self, node: nodes.Element) -> str:
        return _code_span(node.astext())

    _i_title_reference = _i_literal
    _i_math = _i_literal

    def _i_reference(self, node: nodes.Element) -> str:
        if any(isinstance(c, nodes.image) for c in node.children):
            return ""  # a linked image: a badge or a logo
        text = self._inner(node)
        uri = node.get("refuri", "")
        if uri and re.match(r"(https?|mailto|ftp):", uri) and _one_line(text) != uri:
            return f"[{text}]({uri})"
        return text

    def _i_footnote_reference(self, node: nodes.Element) -> str:
        return f"[{node.astext()}]"

    _i_citation_reference = _i_footnote_reference

    def _i_image(self, node: nodes.Element) -> str:
        return node.get("alt", "")

    def _i_problematic(self, node: nodes.Element) -> str:
        return node.astext()


# --------------------------------------------------------------------------- markdown helpers


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _escape_block_start(text: str) -> str:
    """Keep a paragraph a paragraph: `#`, `- `, `1. `, `>`, `<` ... at its start are escaped."""
    return "\\" + text if _BLOCK_START.match(text) else text


def _heading(depth: int, title: str) -> str:
    return f"{'#' * min(max(depth, 1), 6)} {_one_line(title)}"


def _wrap(marker: str, text: str) -> str:
    stripped = text.strip()
    return f"{marker}{stripped}{marker}" if stripped else text


def _code_span(text: str) -> str:
    text = _one_line(text)
    if not text:
        return ""
    ticks = "`" * (max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def _fence(code: str, language: str) -> str:
    longest = max((len(m) for m in re.findall(r"^[ \t]*(`{3,})", code, re.M)), default=2)
    ticks = "`" * max(3, longest + 1)
    info = language.split()[0] if language.strip() else ""
    return f"{ticks}{info}\n{code.rstrip(chr(10))}\n{ticks}"


def _list_item(marker: str, blocks: list[str]) -> str:
    if not blocks:
        return marker.rstrip()
    indent = " " * len(marker)
    text = "\n\n".join(blocks)
    lines = text.split("\n")
    return marker + lines[0] + "".join(f"\n{indent}{line}" if line else "\n" for line in lines[1:])


def _labelled_blocks(label: str, blocks: list[str]) -> list[str]:
    label = _one_line(label)
    if not label:
        return blocks
    if blocks and not blocks[0].startswith(("```", "~~~", "#", "- ", ">", "|", "**")):
        return [f"**{label}:** {blocks[0]}"] + blocks[1:]
    return [f"**{label}:**"] + blocks


def _pipe_table(rows: list[list[str]]) -> str:
    width = max(len(r) for r in rows)
    padded = [r + [""] * (width - len(r)) for r in rows]
    lines = ["| " + " | ".join(padded[0]) + " |", "|" + "---|" * width]
    lines.extend("| " + " | ".join(r) + " |" for r in padded[1:])
    return "\n".join(lines)
