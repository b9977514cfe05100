"""A read package → markdown Documents, one per listed identifier, for the generic chunker.

Every document starts with `# <import path>`; a function, type or const/var group is `## …`
below it; a type's constructors, methods and typed const/var groups are `### …` below the
type. So each chunk's heading path is [package, identifier] or [package, Type, member], and
every listed identifier is declared by exactly one heading:

    # archive/tar                  (package doc + BUG/TODO notes)
    ## tar.Reader                  (declaration in a ```go fence, then the doc comment)
    ### func NewReader
    ### func (tr *Reader) Next
    ## const TypeReg, TypeRegA, …  (groups of more than GROUP_NAMES names are split, doc repeated)

Declarations and signatures are verbatim source in fences. Doc comments stay plain text; a
line markdown would read as a heading, a setext underline, a fence or an HTML block is indented
four spaces so it cannot open a section or swallow the next one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from deadzone_build.sources.godoc.reader import Func, Package, Type, Value

GROUP_NAMES = 8  # names per const/var heading: the heading path is embedded with every chunk
GROUP_TITLE_CHARS = 100
_MARKDOWN_HAZARD = re.compile(r"^ {0,3}(#|=+\s*$|-+\s*$|```|~~~|<)")
_TITLE_ESCAPE = re.compile(r"([\\`*_\[\]<>!&#~|])")


@dataclass(frozen=True)
class RenderedDoc:
    anchor: str  # "" for the package doc, else "Name" or "Type.Method"
    markdown: str


def render_package(package: Package) -> list[RenderedDoc]:
    """The package's documents, in go doc's order (package, consts, vars, funcs, types)."""
    head = f"# {title(package.import_path)}\n\n"
    docs: list[RenderedDoc] = []
    intro = _package_text(package)
    if intro:
        docs.append(RenderedDoc("", head + intro))
    for value in [*package.consts, *package.vars]:
        for names, text in _value_parts(value, "##"):
            docs.append(RenderedDoc(names[0], head + text))
    for func in package.funcs:
        docs.append(RenderedDoc(func.name, head + _func_text(f"{package.name}.{func.name}", func, "##")))
    for typ in package.types:
        docs.extend(_type_docs(package, typ, head))
    return docs


def title(text: str) -> str:
    """`text` as a heading title that markdown reads back verbatim."""
    return _TITLE_ESCAPE.sub(r"\\\1", " ".join(text.split()))


def fence(code: str) -> str:
    """`code` in a ```go fence longer than any backtick run inside it."""
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    marks = "`" * max(3, longest + 1)
    return f"{marks}go\n{code.rstrip()}\n{marks}"


def doc_markdown(doc: str) -> str:
    """A doc comment as plain markdown text: only lines that would change the section structure move."""
    lines = [("    " + line.lstrip(" ")) if _MARKDOWN_HAZARD.match(line) else line
             for line in doc.rstrip("\n").split("\n")]
    return "\n".join(lines)


def _package_text(package: Package) -> str:
    parts = [doc_markdown(package.doc)] if package.doc.strip() else []
    for note in package.notes:
        if note.marker in ("BUG", "TODO"):
            parts.append(doc_markdown(f"{note.marker}({note.uid}): {note.body}"))
    return "\n\n".join(parts) + "\n" if parts else ""


def _section(level: str, heading: str, code: str, doc: str) -> str:
    body = [f"{level} {title(heading)}", fence(code)]
    if doc.strip():
        body.append(doc_markdown(doc))
    return "\n\n".join(body) + "\n"


def _func_text(heading: str, func: Func, level: str) -> str:
    return _section(level, heading, func.signature, func.doc)


def _method_heading(func: Func) -> str:
    return f"func {func.receiver} {func.name}" if func.receiver else f"func {func.name}"


def _type_docs(package: Package, typ: Type, head: str) -> list[RenderedDoc]:
    type_head = f"## {title(f'{package.name}.{typ.name}')}\n\n"
    docs = [RenderedDoc(typ.name, head + _section("##", f"{package.name}.{typ.name}", typ.source, typ.doc))]
    for value in [*typ.consts, *typ.vars]:
        for names, text in _value_parts(value, "###"):
            docs.append(RenderedDoc(names[0], head + type_head + text))
    for func in typ.funcs:
        docs.append(RenderedDoc(func.name, head + type_head + _func_text(f"func {func.name}", func, "###")))
    for method in typ.methods:
        docs.append(RenderedDoc(f"{typ.name}.{method.name}",
                                head + type_head + _func_text(_method_heading(method), method, "###")))
    return docs


def _value_parts(value: Value, level: str) -> list[tuple[list[str], str]]:
    """One section per run of names (a long group is cut between specs; its doc is repeated)."""
    if not value.names:
        return []
    runs: list[list[tuple[list[str], str]]] = [[]]
    run_names: list[str] = []
    for names, source in value.specs:
        too_long = len(", ".join([*run_names, *names])) > GROUP_TITLE_CHARS
        if runs[-1] and (len(run_names) + len(names) > GROUP_NAMES or too_long):
            runs.append([])
            run_names = []
        runs[-1].append((names, source))
        run_names.extend(names)
    if len(runs) == 1:
        return [(value.names, _section(level, f"{value.token} {', '.join(value.names)}", value.source, value.doc))]
    parts = []
    for run in runs:
        names = [n for spec_names, _ in run for n in spec_names]
        if not names:
            continue
        code = f"{value.token} (\n" + "\n".join(source.rstrip() for _, source in run) + "\n)"
        parts.append((names, _section(level, f"{value.token} {', '.join(names)}", code, value.doc)))
    return parts
