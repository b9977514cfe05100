"""One Go file → the declarations go/doc reads, with their doc comments, via tree-sitter-go.

    parse_file(name, source) -> GoFile

Doc comments follow go/parser exactly: comments on consecutive lines with no token between form
a *group*; a group that starts on the line of a preceding token is a line comment, never a
doc; a declaration's doc is the group that ends on the line just before its first token
(`lead comment`). `comment_text` is `ast.CommentGroup.Text` (markers stripped, directives such
as `//go:noinline` dropped, blank-line runs collapsed).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from functools import lru_cache

from tree_sitter import Language, Node, Parser, Query, QueryCursor

_DIRECTIVE = re.compile(r"[a-z0-9]+:[a-z0-9]")


@dataclass
class Comment:
    text: str  # as in the source: "// x" or "/* x */"
    start: int
    end: int
    start_row: int
    end_row: int


@dataclass
class CommentGroup:
    comments: list[Comment]
    trailing: bool  # starts on the line of a preceding token: a line comment, never a doc

    @property
    def end_row(self) -> int:
        return self.comments[-1].end_row

    def text(self) -> str:
        return comment_text([c.text for c in self.comments])


@dataclass(frozen=True)
class TypeRef:
    """go/doc's baseTypeName of a type expression: "" when it has none (func, map, chan...)."""

    name: str
    imported: bool = False
    pointer: bool = False


@dataclass
class FuncDecl:
    name: str
    doc: str
    signature: str  # the declaration without its body, verbatim
    receiver: TypeRef | None  # None for a plain function
    receiver_text: str  # "(tr *Reader)", "" for a function
    receiver_var: str
    results: list[TypeRef]  # one per result field, `[]T` read as T (go/doc's factory rule)
    type_params: frozenset[str]
    line: int


@dataclass
class TypeDecl:
    name: str
    doc: str
    source: str  # `type Name ...` verbatim (a grouped spec gets its own `type`)
    is_struct: bool
    embedded: list[TypeRef]  # anonymous fields of a struct or embedded interface elements
    line: int


@dataclass
class ValueSpec:
    names: list[str]
    type: TypeRef | None  # None when the spec has no type
    has_values: bool
    source: str  # the spec's whole lines (its doc comment and line comment included)


@dataclass
class ValueDecl:
    token: str  # "const" | "var"
    doc: str
    specs: list[ValueSpec]
    grouped: bool
    source: str
    line: int


@dataclass
class GoFile:
    name: str
    package: str
    package_doc: str
    dot_import: bool
    decls: list[FuncDecl | TypeDecl | ValueDecl] = field(default_factory=list)
    comment_groups: list[CommentGroup] = field(default_factory=list)


@lru_cache(maxsize=1)
def _parser() -> tuple[Parser, Query]:
    import tree_sitter_go

    language = Language(tree_sitter_go.language())
    return Parser(language), Query(language, "(comment) @comment")


class GoSyntaxError(ValueError):
    """The file has no package clause (not Go source)."""


def comment_text(comments: list[str]) -> str:
    """go/ast CommentGroup.Text for the raw comments of one group."""
    lines: list[str] = []
    for raw in comments:
        text = raw.replace("\r", "")
        if text[1] == "/":
            text = text[2:]
            if text and text[0] == " ":
                text = text[1:]
            elif text and _is_directive(text):
                continue
        else:
            text = text[2:-2]
        lines.extend(line.rstrip(" \t\n\r") for line in text.split("\n"))
    kept: list[str] = []
    for line in lines:  # drop leading blank lines, collapse runs of blank lines
        if line or (kept and kept[-1]):
            kept.append(line)
    if kept and kept[-1]:
        kept.append("")
    return "\n".join(kept)


def _is_directive(text: str) -> bool:
    if text.startswith(("line ", "extern ", "export ")):
        return True
    colon = text.find(":")
    return colon > 0 and colon + 1 < len(text) and bool(_DIRECTIVE.fullmatch(text[:colon + 2]))


class _File:
    def __init__(self, source: bytes) -> None:
        parser, query = _parser()
        self.src = source
        self.tree = parser.parse(source)
        nodes = sorted(QueryCursor(query).captures(self.tree.root_node).get("comment", []),
                       key=lambda n: n.start_byte)
        self.comments = [Comment(n.text.decode("utf-8", "replace"), n.start_byte, n.end_byte,
                                 n.start_point[0], n.end_point[0]) for n in nodes]
        self.groups = self._group()
        self.group_of: dict[int, CommentGroup] = {id(c): g for g in self.groups for c in g.comments}
        self.ends = [c.end for c in self.comments]

    def text(self, node: Node) -> str:
        return self.src[node.start_byte:node.end_byte].decode("utf-8", "replace")

    def _token_between(self, start: int, end: int) -> bool:
        return bool(self.src[start:end].strip())

    def _group(self) -> list[CommentGroup]:
        groups: list[CommentGroup] = []
        for comment in self.comments:
            current = groups[-1] if groups else None
            if current is not None and not self._token_between(current.comments[-1].end, comment.start):
                limit = current.end_row + (0 if current.trailing else 1)
                if comment.start_row <= limit:
                    current.comments.append(comment)
                    continue
            # A comment after a token on its own line is that token's line comment (go/parser's
            # n=0 group): a comment before it on the line would have joined the current group.
            line_start = self.src.rfind(b"\n", 0, comment.start) + 1
            after_token = bool(self.src[line_start:comment.start].strip())
            groups.append(CommentGroup([comment], trailing=after_token))
        return groups

    def lead(self, node: Node) -> str:
        """The doc comment of the construct starting at `node` ("" when none)."""
        index = bisect.bisect_right(self.ends, node.start_byte) - 1
        if index < 0:
            return ""
        comment = self.comments[index]
        group = self.group_of[id(comment)]
        if group.trailing or group.comments[-1] is not comment or self._token_between(comment.end, node.start_byte):
            return ""
        return group.text() if comment.end_row + 1 == node.start_point[0] else ""

    def whole_lines(self, first: int, last: int) -> str:
        """Source from the start of `first`'s line (when only blanks precede it) to `last`."""
        line_start = self.src.rfind(b"\n", 0, first) + 1
        start = line_start if not self.src[line_start:first].strip() else first
        return self.src[start:last].decode("utf-8", "replace")


def type_ref(node: Node | None, f: _File) -> TypeRef:
    """go/doc's baseTypeName: strips `*`, parentheses and type arguments; `pkg.T` is imported."""
    pointer = False
    while node is not None:
        kind = node.type
        if kind == "type_identifier":
            return TypeRef(f.text(node), False, pointer)
        if kind == "qualified_type":
            return TypeRef(f.text(node.child_by_field_name("name")), True, pointer)
        if kind == "pointer_type":
            pointer = pointer or True
            node = node.named_children[-1] if node.named_children else None
        elif kind == "generic_type":
            node = node.child_by_field_name("type")
        elif kind == "parenthesized_type":
            node = node.named_children[0] if node.named_children else None
        else:
            break
    return TypeRef("", False, pointer)


def _factory_ref(node: Node | None, f: _File) -> TypeRef:
    if node is not None and node.type in ("slice_type", "array_type"):
        node = node.child_by_field_name("element")
    return type_ref(node, f)


def _names(node: Node, f: _File) -> list[str]:
    return [f.text(child) for child in node.children_by_field_name("name")]


def _signature(node: Node, f: _File) -> str:
    body = node.child_by_field_name("body")
    end = body.start_byte if body is not None else node.end_byte
    return f.src[node.start_byte:end].decode("utf-8", "replace").rstrip()


def _func(node: Node, f: _File) -> FuncDecl:
    name = f.text(node.child_by_field_name("name"))
    receiver = None
    receiver_text = receiver_var = ""
    if node.type == "method_declaration":
        recv = node.child_by_field_name("receiver")
        receiver_text = f.text(recv)
        params = [c for c in recv.named_children if c.type == "parameter_declaration"]
        if params:
            receiver = type_ref(params[0].child_by_field_name("type"), f)
            receiver_var = "".join(_names(params[0], f))
        else:
            receiver = TypeRef("")
    results: list[TypeRef] = []
    result = node.child_by_field_name("result")
    if result is not None:
        if result.type == "parameter_list":
            results = [_factory_ref(p.child_by_field_name("type"), f) for p in result.named_children
                       if p.type in ("parameter_declaration", "variadic_parameter_declaration")]
        else:
            results = [_factory_ref(result, f)]
    type_params: set[str] = set()
    params_node = node.child_by_field_name("type_parameters")
    if params_node is not None:
        for decl in params_node.named_children:
            type_params.update(_names(decl, f))
    return FuncDecl(name, f.lead(node), _signature(node, f), receiver, receiver_text, receiver_var,
                    results, frozenset(type_params), node.start_point[0] + 1)


def _embedded(type_node: Node | None, f: _File) -> tuple[bool, list[TypeRef]]:
    if type_node is None:
        return False, []
    if type_node.type == "struct_type":
        fields = next((c for c in type_node.named_children if c.type == "field_declaration_list"), None)
        found = []
        for decl in fields.named_children if fields is not None else []:
            if decl.type == "field_declaration" and not decl.children_by_field_name("name"):
                ref = type_ref(decl.child_by_field_name("type"), f)
                pointer = any(c.type == "*" for c in decl.children)
                found.append(TypeRef(ref.name, ref.imported, pointer or ref.pointer))
        return True, found
    if type_node.type == "interface_type":
        return False, [type_ref(c.named_children[0], f) for c in type_node.named_children
                       if c.type == "type_elem" and len(c.named_children) == 1]
    return False, []


def _type_decls(node: Node, f: _File) -> list[TypeDecl]:
    decl_doc = f.lead(node)
    grouped = any(c.type == "(" for c in node.children)
    decls = []
    for spec in node.named_children:
        if spec.type not in ("type_spec", "type_alias"):
            continue
        name = f.text(spec.child_by_field_name("name"))
        doc = (f.lead(spec) or decl_doc) if grouped else decl_doc
        if grouped:
            lines = f.text(spec).split("\n")
            source = "type " + "\n".join([lines[0], *(line[1:] if line.startswith("\t") else line
                                                      for line in lines[1:])])
        else:
            source = f.text(node)
        is_struct, embedded = _embedded(spec.child_by_field_name("type") if spec.type == "type_spec" else None, f)
        decls.append(TypeDecl(name, doc, source, is_struct, embedded, spec.start_point[0] + 1))
    return decls


def _value_decl(node: Node, f: _File) -> ValueDecl:
    token = "const" if node.type == "const_declaration" else "var"
    holder = next((c for c in node.named_children if c.type == "var_spec_list"), node)
    grouped = any(c.type == "(" for c in holder.children)
    specs = []
    children = holder.children
    for i, spec in enumerate(children):
        if spec.type not in ("const_spec", "var_spec"):
            continue
        end = spec.end_byte
        following = children[i + 1] if i + 1 < len(children) else None
        if following is not None and following.type == "comment" and following.start_point[0] == spec.end_point[0]:
            end = following.end_byte  # its line comment
        first = spec.start_byte
        index = bisect.bisect_right(f.ends, spec.start_byte) - 1
        if f.lead(spec) and index >= 0:
            first = f.group_of[id(f.comments[index])].comments[0].start
        type_node = spec.child_by_field_name("type")
        specs.append(ValueSpec(_names(spec, f), type_ref(type_node, f) if type_node is not None else None,
                               spec.child_by_field_name("value") is not None,
                               f.whole_lines(first, end) if grouped else f.text(spec)))
    return ValueDecl(token, f.lead(node), specs, grouped, f.text(node), node.start_point[0] + 1)


def parse_file(name: str, source: bytes) -> GoFile:
    """The package clause, doc comments and top-level declarations of one Go file."""
    f = _File(source)
    root = f.tree.root_node
    clause = next((c for c in root.named_children if c.type == "package_clause"), None)
    if clause is None:
        raise GoSyntaxError(f"{name}: no package clause")
    package = f.text(next(c for c in clause.named_children if c.type == "package_identifier"))
    result = GoFile(name, package, f.lead(clause), dot_import=False, comment_groups=f.groups)
    for node in root.named_children:
        kind = node.type
        if kind in ("function_declaration", "method_declaration"):
            result.decls.append(_func(node, f))
        elif kind == "type_declaration":
            result.decls.extend(_type_decls(node, f))
        elif kind in ("const_declaration", "var_declaration"):
            result.decls.append(_value_decl(node, f))
        elif kind == "import_declaration":
            result.dot_import = result.dot_import or any(
                c.type == "dot" for spec in _descendants(node, "import_spec") for c in spec.children)
    return result


def _descendants(node: Node, kind: str) -> list[Node]:
    found = []
    for child in node.named_children:
        if child.type == kind:
            found.append(child)
        else:
            found.extend(_descendants(child, kind))
    return found
