"""The Sphinx markup docutils does not know, taught to it: directive and role tables for rst.py.

Sphinx is not a dependency: its directives and roles are registered here with docutils'
registration functions when this module is imported (docutils keeps them in module-level
tables, so they are process-wide, and registering is idempotent). `register_unknown_names(text)`
registers, just before a parse, every other directive or role name `text` uses as a generic one
that keeps its argument and content as text, so an unknown directive never loses its body.

Directives hand their meaning to the writer (rst.py) as `nodes.container`s with class
`dz-<kind>` and attributes `dz_kind`, `dz_<name>`: what the writer renders as a labelled
paragraph, a heading for an object description, a fence, or only the content.
"""

from __future__ import annotations

import re
from typing import Callable

from docutils import nodes, utils
from docutils.parsers.rst import Directive, directives, roles
from docutils.parsers.rst.languages import en as _en

__all__ = ["register_unknown_names"]


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


def register_unknown_names(text: str) -> None:
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


_register_sphinx()  # at import: docutils keeps directives and roles process-wide
