"""reStructuredText → markdown through docutils, with Sphinx's common markup understood.

    rst_to_markdown(text, source)   never raises, never prints

docutils parses; a small writer here turns the doctree into the markdown the chunker reads:
section titles become `#` headings by depth, literal blocks and `code-block`/`sourcecode`/`code`
become fences, roles become inline code (`:func:` `x` → `x()`, `:class:` `~a.B` → `B`) or text
(`:ref:` `text <target>` → text), admonitions and `versionadded`-style notes become labelled
paragraphs, Python object descriptions (`.. function:: sig`) become headings one level below
their section (so each API entry gets its own heading path), `toctree`/`index`/`highlight`-like
directives are dropped.

Sphinx is not a dependency: its directives and roles are registered here with docutils'
registration functions (docutils keeps them in module-level tables, so they are process-wide,
and registering is idempotent). A directive or role this module has never heard of is
registered just before parsing as a generic one that keeps its argument and content as text,
so an unknown directive never loses its body and never produces an error. docutils reports
nothing (report level 5, a private warning stream), reads no config file, includes no file and
passes no raw HTML through. If docutils or the writer still fail on some input, the document
comes back as its own text, which is readable markdown-ish prose, rather than a crash.
"""

from __future__ import annotations

import copy
import io
import re
from typing import Callable

from docutils import frontend, nodes, utils
from docutils.core import publish_doctree
from docutils.parsers.rst import Directive, Parser, directives, roles
from docutils.parsers.rst.languages import en as _en
from docutils.readers.standalone import Reader

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


def rst_to_markdown(text: str, source: str = "<rst>") -> str:
    """Markdown for the reStructuredText `text` (named `source` in docutils' bookkeeping)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    try:
        return convert(text, source)
    except Exception:  # noqa: BLE001 - a document we cannot parse is kept as text, never a crash
        return text


def convert(text: str, source: str = "<rst>") -> str:
    """Like `rst_to_markdown` but lets a docutils or writer failure through (for tests)."""
    _register_unknown_names(text)
    doctree = publish_doctree(text, source_path=source, settings=_settings(io.StringIO()))
    return _Writer().document(doctree)


# --------------------------------------------------------------------------- directives


class _AnyOption(dict):
    """An option spec that accepts every option (Sphinx adds many docutils does not know)."""

    def __missing__(self, key: str) -> Callable[[str], str]:
        return directives.unchanged

    def __bool__(self) -> bool:
        return True


def _container(kind: str, **attributes: object) -> nodes.container:
    node = nodes.container(classes=[f"dz-{kind}"])
    node["dz_kind"] = kind
    for key, value in attributes.items():
        node[f"dz_{key}"] = value
    return node


class _Generic(Directive):
    """A directive we do not know: its argument as a paragraph, its content parsed."""

    optional_arguments = 1
    final_argument_whitespace = True
    has_content = True
    option_spec = _AnyOption()
    keep_argument = True

    def run(self) -> list[nodes.Node]:
        node = _container("directive", name=self.name)
        if self.arguments and self.keep_argument:
            node += self._paragraph(self.arguments[0])
        self._parse_content(node)
        return [node]

    def _paragraph(self, text: str) -> nodes.paragraph:
        inline, messages = self.state.inline_text(" ".join(text.split()), self.lineno)
        paragraph = nodes.paragraph()
        paragraph += inline
        return paragraph

    def _parse_content(self, node: nodes.Element) -> None:
        if self.content:
            self.state.nested_parse(self.content, self.content_offset, node)


class _ContentOnly(_Generic):
    """`only`, `tabs`, `glossary`, `hlist` ...: the content matters, the argument does not."""

    keep_argument = False


class _Dropped(_Generic):
    """`toctree`, `index`, `literalinclude`, `role`, `default-role` ...: nothing to read."""

    def run(self) -> list[nodes.Node]:
        return []


class _Highlight(_Generic):
    """`highlight:: lang` sets the language of the `::` literal blocks that follow."""

    def run(self) -> list[nodes.Node]:
        language = self.arguments[0].split()[0] if self.arguments and self.arguments[0].split() else ""
        return [_container("highlight", language=language)]


class _Module(_Generic):
    """`module::`/`currentmodule::` name the module that later descriptions belong to."""

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0].strip() if self.arguments else ""
        self.state.document.dz_module = "" if name == "None" else name
        return []


class _Code(_Generic):
    """`code-block`, `sourcecode`, `code`, `doctest`, ...: the content as a fenced block."""

    language = ""

    def run(self) -> list[nodes.Node]:
        argument = self.arguments[0] if self.arguments else ""
        body = "\n".join(self.content)
        if self.language:  # the argument is a name (doctest group), not code
            language = self.language
            body = body if body.strip() else argument
        elif len(argument.split()) == 1:  # code-block:: python
            language = argument.strip()
        else:  # productionlist, or code written right under the directive
            language = ""
            body = "\n".join(part for part in (argument, body) if part)
        block = nodes.literal_block(body, body)
        block["language"] = language
        return [block]


def _code_directive(language: str) -> type[_Code]:
    return type(f"_Code_{language or 'plain'}", (_Code,), {"language": language})


class _Labelled(_Generic):
    """`versionadded:: 3.2 text`, `seealso::`, `availability:: Unix` ...: a label, then text."""

    optional_arguments = 3
    label: Callable[[list[str]], str] = staticmethod(lambda args: "")
    argument_count = 1  # leading arguments used by the label; the rest is text

    def run(self) -> list[nodes.Node]:
        args = self.arguments
        node = _container("labelled", label=self.label(args[: self.argument_count]))
        rest = " ".join(args[self.argument_count:])
        if rest.strip():
            node += self._paragraph(rest)
        self._parse_content(node)
        return [node]


def _labelled(label: Callable[[list[str]], str], argument_count: int, arguments: int = 3) -> type:
    return type("_Labelled", (_Labelled,), {
        "label": staticmethod(label), "argument_count": argument_count,
        "optional_arguments": arguments,
    })


def _arg(args: list[str], i: int) -> str:
    return args[i].strip() if len(args) > i else ""


_VERSION_LABELS = {
    "versionadded": lambda a: f"Added in version {_arg(a, 0)}",
    "versionchanged": lambda a: f"Changed in version {_arg(a, 0)}",
    "deprecated": lambda a: f"Deprecated since version {_arg(a, 0)}",
    "versionremoved": lambda a: f"Removed in version {_arg(a, 0)}",
}


class _Description(_Generic):
    """A documented object (`function:: sig`, `class::`, `c:macro::`, `envvar::` ...)."""

    optional_arguments = 1
    objtype = "function"
    python = True

    def run(self) -> list[nodes.Node]:
        document = self.state.document
        signatures = [s.strip() for s in (self.arguments[0] if self.arguments else "").split("\n")]
        signatures = [self._qualify(s, document) for s in signatures if s]
        node = _container("description", objtype=self.objtype, signatures=signatures)
        stack: list[str] = document.__dict__.setdefault("dz_parents", [])
        stack.append(_object_name(signatures[0]) if signatures and self.python else "")
        try:
            self._parse_content(node)
        finally:
            stack.pop()
        return [node]

    def _qualify(self, signature: str, document: nodes.document) -> str:
        if not self.python:
            return signature
        match = _PY_NAME.match(signature)
        if not match:
            return signature
        name = match.group(1)
        parents = [p for p in document.__dict__.get("dz_parents", []) if p]
        module = document.__dict__.get("dz_module", "")
        if parents and "." not in name:
            prefix = parents[-1] + "."
        elif module and not name.startswith(module + ".") and not parents:
            prefix = module + "."
        else:
            prefix = ""
        return signature[: match.start(1)] + prefix + signature[match.start(1):]


_PY_NAME = re.compile(r"\s*(?:(?:async|await|class|final|abstract|static|classmethod|staticmethod)\s+)*([A-Za-z_][\w.]*)")


def _object_name(signature: str) -> str:
    match = _PY_NAME.match(signature)
    return match.group(1) if match else ""


def _description(objtype: str, python: bool) -> type[_Description]:
    return type("_Description", (_Description,), {"objtype": objtype, "python": python})


_PY_OBJECTS = ("function", "method", "classmethod", "staticmethod", "class", "exception",
               "attribute", "property", "data", "decorator", "decoratormethod", "type",
               "coroutinefunction", "coroutinemethod", "abstractmethod")
_OTHER_OBJECTS = ("describe", "object", "cmdoption", "option", "envvar", "opcode", "pdbcommand",
                  "2to3fixer", "confval", "setting", "templatetag", "templatefilter",
                  "django-admin", "django-admin-option", "fieldlookup", "monitoring-event",
                  "event", "macro", "member", "var", "struct", "union", "enum", "enumerator",
                  "concept", "directive", "role", "directive:option", "namespace", "typedef",
                  "module-level")
_DOMAINS = ("py", "c", "cpp", "js", "rst", "std", "js", "go", "rb", "php")
_CODE_LANGUAGES = {
    "code-block": "", "sourcecode": "", "code": "", "testcode": "python", "testsetup": "python",
    "testcleanup": "python", "testoutput": "", "doctest": "pycon", "ipython": "ipython",
    "jupyter-execute": "python", "productionlist": "", "graphviz": "dot", "digraph": "dot",
    "graph": "dot", "mermaid": "mermaid", "plot": "python", "code-cell": "python",
    "prompt": "console", "program-output": "", "command-output": "",
}
_CONTENT_ONLY = ("only", "ifconfig", "tabs", "tab-set", "glossary", "hlist", "centered-content",
                 "rst-class", "cssclass", "grid", "card-carousel", "div", "container-fluid",
                 "auto-content", "versionlinks")
# Dropped: navigation, indexing, file inclusion (never read here) and state we do not model.
_DROPPED = ("toctree", "index", "literalinclude", "role", "default-role", "tabularcolumns",
            "sectionauthor", "moduleauthor", "codeauthor", "autosummary", "automodule",
            "autoclass", "autofunction", "automethod", "autoattribute", "autodata",
            "autoexception", "autoprogram", "include", "raw", "contents", "sectnum",
            "section-numbering", "meta", "title", "header", "footer", "image",
            "inheritance-diagram", "automodsumm", "automodapi", "program", "todolist",
            "spelling:word-list")
_LABELLED: dict[str, tuple[Callable[[list[str]], str], int]] = {
    **{name: (label, 1) for name, label in _VERSION_LABELS.items()},
    "deprecated-removed": (lambda a: f"Deprecated since version {_arg(a, 0)}, will be removed in "
                                     f"version {_arg(a, 1)}", 2),
    "seealso": (lambda a: "See also", 0),
    "availability": (lambda a: "Availability", 0),
    "impl-detail": (lambda a: "CPython implementation detail", 0),
    "audit-event": (lambda a: f"Raises an auditing event {_arg(a, 0)} with arguments "
                              f"{_arg(a, 1)}", 3),
    "audit-event-table": (lambda a: "Audit events", 0),
    "todo": (lambda a: "Todo", 0),
    "centered": (lambda a: "", 0),
}
# Labelled by their whole argument (a tab or card title).
_TITLED = ("tab", "tab-item", "group-tab", "dropdown", "card", "grid-item-card")


def _register_sphinx() -> None:
    """Teach docutils the Sphinx markup found in real documentation trees."""
    for name in _DROPPED:
        directives.register_directive(name, _Dropped)
    for name in _CONTENT_ONLY:
        directives.register_directive(name, _ContentOnly)
    for name, language in _CODE_LANGUAGES.items():
        directives.register_directive(name, _code_directive(language))
    for name, (label, count) in _LABELLED.items():
        directives.register_directive(name, _labelled(label, count))
    for name in _TITLED:
        directives.register_directive(name, _labelled(lambda a: _arg(a, 0), 1, arguments=1))
    for name in ("highlight", "highlightlang"):
        directives.register_directive(name, _Highlight)
    for name in ("module", "currentmodule", "py:module", "py:currentmodule"):
        directives.register_directive(name, _Module)
    for objtype in _PY_OBJECTS:
        directives.register_directive(objtype, _description(objtype, True))
        directives.register_directive(f"py:{objtype}", _description(objtype, True))
    for domain in _DOMAINS:
        for objtype in _PY_OBJECTS + _OTHER_OBJECTS:
            if domain != "py":
                directives.register_directive(f"{domain}:{objtype}", _description(objtype, False))
    for objtype in _OTHER_OBJECTS:
        directives.register_directive(objtype, _description(objtype, False))
    for name in _CODE_ROLES:
        roles.register_local_role(name, _code_role)
    for name in _TEXT_ROLES:
        roles.register_local_role(name, _text_role)
    for domain in _DOMAINS:
        for name in _CODE_ROLES:
            roles.register_local_role(f"{domain}:{name}", _code_role)


# --------------------------------------------------------------------------- roles

_CODE_ROLES = ("func", "meth", "class", "mod", "attr", "exc", "data", "const", "obj", "type",
               "any", "envvar", "option", "program", "file", "samp", "command", "makevar",
               "regexp", "token", "keyword", "kbd", "macro", "member", "var", "struct", "union",
               "enum", "enumerator", "expr", "texpr", "func-ref", "source", "cdata", "cfunc",
               "cmacro", "ctype", "cmember", "opcode", "mimetype", "manpage", "setting",
               "lookup", "ttag", "tfilter", "djadmin", "confval", "directive", "role",
               "event", "monitoring-event", "pdbcmd", "2to3fixer", "c-expr", "default-value")
_TEXT_ROLES = ("ref", "doc", "term", "numref", "download", "abbr", "dfn", "menuselection",
               "guilabel", "mailheader", "newsgroup", "gh", "issue", "pypi", "bpo", "cve",
               "cwe", "pr", "user", "commit", "label", "bdg", "bdg-primary", "bdg-secondary",
               "octicon", "fa", "sup-ref", "ticket", "strike", "del", "ins")
_EXPLICIT_TITLE = re.compile(r"^(.+?)\s*(?<!\x00)<([^<]*?)>$", re.S)
_CALLABLE_ROLES = ("func", "meth")
_INVENTORY = re.compile(r"^[A-Za-z_][\w-]*:(?!:)(?=\S)")  # intersphinx `py3:str` shows as `str`


def _split_title(text: str) -> tuple[str, str, bool]:
    """(title, target, explicit) of Sphinx's `title <target>` role syntax."""
    match = _EXPLICIT_TITLE.match(text)
    if match:
        return utils.unescape(match.group(1)), utils.unescape(match.group(2)), True
    plain = utils.unescape(text)
    return plain, plain, False


def _code_role(name: str, rawtext: str, text: str, lineno: int, inliner: object,
               options: dict | None = None, content: list | None = None) -> tuple[list, list]:
    title, target, explicit = _split_title(text)
    if explicit:
        shown = title
    else:
        shown = _INVENTORY.sub("", target.lstrip("!"))
        if shown.startswith("~"):
            shown = re.split(r"\.|::", shown[1:])[-1]
        if name.split(":")[-1] in _CALLABLE_ROLES and shown and not shown.endswith(")"):
            shown += "()"
    return [nodes.literal(rawtext, shown)], []


def _text_role(name: str, rawtext: str, text: str, lineno: int, inliner: object,
               options: dict | None = None, content: list | None = None) -> tuple[list, list]:
    title, _target, _explicit = _split_title(text)
    return [nodes.inline(rawtext, title.lstrip("~!"))], []


# --------------------------------------------------------------------------- unknown names

_DIRECTIVE_NAME = re.compile(r"^[ \t]*\.\.[ \t]+([A-Za-z0-9][\w:.+-]*?)[ \t]*::", re.M)
_ROLE_NAME = re.compile(r"(?<![\w`:]):([A-Za-z][\w.+-]*(?::[A-Za-z][\w.+-]*)*):`")


def _register_unknown_names(text: str) -> None:
    """Register every directive and role name `text` uses that docutils does not know."""
    for name in {m.group(1).lower() for m in _DIRECTIVE_NAME.finditer(text)}:
        if name not in directives._directives and name not in _en.directives:
            directives.register_directive(name, _unknown_directive(name))
    for name in {m.group(1).lower() for m in _ROLE_NAME.finditer(text)}:
        if name not in roles._roles and name not in _en.roles:
            roles.register_local_role(name, _code_role)


def _unknown_directive(name: str) -> type[Directive]:
    objtype = name.split(":")[-1]
    if ":" in name and objtype in _PY_OBJECTS + _OTHER_OBJECTS:
        return _description(objtype, name.startswith("py:"))
    return _Generic


_register_sphinx()

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
